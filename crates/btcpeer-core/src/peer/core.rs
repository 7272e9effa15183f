//! [`PeerCore`]: one connection driven from outside (documented on the type).

mod config;
mod decide;
mod framed;
mod handler_time;
mod output;

pub use config::CoreConfig;
pub use framed::Read;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::handshake::{HandshakeStep, VersionHandshake};
use super::outbound::{OutboundQueue, Progress};
use super::rules::{Preferences, Rule, before_decode};
use super::state::ProtocolState;
use super::{DisconnectReason, RemoteInfo};
use crate::transport::framing::{Framed, Framing};
use crate::transport::v1::{V1Codec, V1Error};
use crate::wire::frame::{HEADER_LEN, RawFrame};
use crate::wire::version::REJECT_VERSION;
use crate::wire::{Command, Inventory, Message, Reject, RejectCode};

/// Events waiting for the application at most; beyond it messages are dropped and counted.
const MAX_EVENTS: usize = 4_096;

/// What happened, for the application.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The remote's version arrived and [`CoreConfig::version_decision`] is on: the core waits
    /// for [`PeerCore::decide_version`] (the driver's checks: a node-wide nonce registry, the
    /// application's refusal) before it answers.
    Version(RemoteInfo),
    /// The handshake completed.
    Handshake(RemoteInfo),
    /// A message after the handshake, after the peer's own handling (its payload as received:
    /// [`PeerCore::poll_event_with_payload`]).
    Message(Message),
    /// A block kept undecoded ([`CoreConfig::raw_blocks`]), checked as decoding would check it.
    RawBlock(Bytes),
    /// A frame was read (with [`CoreConfig::report_reads`]), in order with the other events: for
    /// a driver that shows each read to its application or log.
    Read(Read),
    /// Our ping was answered.
    Pong {
        /// The round trip.
        rtt: Duration,
    },
    /// The connection ended; nothing more happens. Stop writing and close the stream.
    Disconnected(DisconnectReason),
}

/// [`PeerCore`]: one connection's protocol state, owned in one place and driven from outside.
///
/// Inputs are bytes read ([`PeerCore::handle_bytes`], for a core built with
/// [`PeerCore::framed`]) or frames ([`PeerCore::handle_frame`]), the time
/// ([`PeerCore::handle_timeout`], whenever [`PeerCore::poll_timeout`]'s instant passes) and the
/// application's commands ([`PeerCore::queue_message`], [`PeerCore::announce`],
/// [`PeerCore::disconnect`]). Outputs are bytes or messages to write
/// ([`PeerCore::poll_transmit_batch`] then [`PeerCore::transmitted`], or
/// [`PeerCore::poll_transmit`]) and events ([`PeerCore::poll_event`]). The outbound queue is
/// bounded in bytes and numbers each message; [`PeerCore::progress`] says what became of each.
/// Nothing here reads a socket or a clock, so the same core runs under tokio (`btcpeer`'s `Peer`
/// holds one), in a blocking loop, in the simulator and in a fuzzer; randomness (nonces, trickle
/// delays) comes from a seeded generator, so a seeded run is reproducible.
///
/// ```
/// use std::time::{Instant, SystemTime};
/// use btcpeer_core::peer::{CoreConfig, Direction, Event, PeerCore};
/// use btcpeer_core::wire::frame::RawFrame;
///
/// let now = Instant::now();
/// let mut a = PeerCore::new(CoreConfig::new(Direction::Outbound).seed(1), now, SystemTime::now());
/// let mut b = PeerCore::new(CoreConfig::new(Direction::Inbound).seed(2), now, SystemTime::now());
/// // Carry messages both ways until both handshakes are done.
/// for _ in 0..4 {
///     while let Some(m) = a.poll_transmit(now) { b.handle_frame(RawFrame::from_message(&m).unwrap(), now, SystemTime::now()); }
///     while let Some(m) = b.poll_transmit(now) { a.handle_frame(RawFrame::from_message(&m).unwrap(), now, SystemTime::now()); }
/// }
/// assert!(matches!(a.poll_event(), Some(Event::Handshake(_))));
/// assert!(matches!(b.poll_event(), Some(Event::Handshake(_))));
/// ```
#[derive(Debug)]
pub struct PeerCore {
    /// Shared by the connections of one configuration ([`PeerCore::with_shared_config`]).
    config: Arc<CoreConfig>,
    /// The transport (the configuration's until the framing settles it).
    transport: super::Transport,
    /// The address our version gives for the remote (the configuration's unless set).
    receiver: Option<Box<bitcoin::p2p::Address>>,
    nonce: u64,
    handshake: Option<Box<VersionHandshake>>,
    handshake_deadline: Instant,
    /// Set once the handshake completed (the state's `remote` is set from the remote's version).
    established: bool,
    state: ProtocolState,
    /// The handshake's messages and a last `reject`: written before the queue, and alone before
    /// the handshake completes.
    control: VecDeque<Message>,
    /// Everything else, encoded once, bounded in bytes, numbered (held until the handshake
    /// completes).
    queue: OutboundQueue,
    /// What became of the queue's messages.
    progress: Progress,
    /// Messages taken for writing and not yet reported written.
    inflight: VecDeque<output::Inflight>,
    events: VecDeque<(Event, Option<Bytes>)>,
    /// A ping queued and not yet taken for writing.
    ping_queued: Option<u64>,
    dropped: u64,
    ended: bool,
    rng: u64,
    /// Bytes ⇄ frames, when the core is driven with bytes ([`PeerCore::framed`]).
    framing: Option<Box<Framing>>,
    /// Waiting for [`PeerCore::decide_version`].
    deciding: bool,
    /// Frames handed in while deciding, taken once decided.
    /// Boxed (only a core driven with frames ever holds some): an idle connection's size counts.
    #[allow(clippy::box_collection)]
    paused: Option<Box<VecDeque<(RawFrame, usize)>>>,
}

impl PeerCore {
    /// A connection starting at `now` (`wall` is the wall clock, for our version's timestamp). An
    /// outbound core has its version ready to write.
    pub fn new(config: CoreConfig, now: Instant, wall: SystemTime) -> Self {
        let seed = config.seed;
        Self::with_shared_config(Arc::new(config), seed, now, wall)
    }

    /// A connection on a configuration shared with others (a node's many connections hold one
    /// copy of it), its generator seeded with `seed` (each connection its own: nonces and delays
    /// must not repeat across connections).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::{Instant, SystemTime};
    /// use btcpeer_core::peer::{CoreConfig, Direction, PeerCore};
    ///
    /// let shared = Arc::new(CoreConfig::seeded(Direction::Inbound, 0));
    /// let now = Instant::now();
    /// let a = PeerCore::with_shared_config(shared.clone(), 1, now, SystemTime::now());
    /// let b = PeerCore::with_shared_config(shared, 2, now, SystemTime::now());
    /// assert_ne!(a.nonce(), b.nonce());
    /// ```
    pub fn with_shared_config(config: Arc<CoreConfig>, seed: u64, now: Instant, wall: SystemTime) -> Self {
        let mut rng = seed | 1;
        let nonce = crate::rng::next(&mut rng);
        let queue = OutboundQueue::new(config.max_queue_bytes, config.max_payload, false);
        let mut core = PeerCore {
            transport: config.transport,
            receiver: config.receiver.clone().map(Box::new),
            nonce,
            handshake: None,
            handshake_deadline: now,
            established: false,
            state: ProtocolState::new(config.known_capacity, config.trickle_limit),
            control: VecDeque::new(),
            queue,
            progress: Progress::default(),
            inflight: VecDeque::new(),
            events: VecDeque::new(),
            ping_queued: None,
            dropped: 0,
            ended: false,
            rng,
            config,
            framing: None,
            deciding: false,
            paused: None,
        };
        core.begin(now, wall);
        core
    }

    /// (Re)starts the handshake at `now`: its deadline, and our version with its timestamp.
    fn begin(&mut self, now: Instant, wall: SystemTime) {
        self.begin_at_height(now, wall, self.config.start_height);
    }

    fn begin_at_height(&mut self, now: Instant, wall: SystemTime, start_height: i32) {
        let c = &self.config;
        let mut ours = c.rules.version(c.services, self.nonce, &c.user_agent, start_height, wall);
        if let Some(sender) = &c.sender {
            ours.sender = sender.clone();
        }
        if let Some(receiver) = &self.receiver {
            ours.receiver = (**receiver).clone();
        }
        let handshake = VersionHandshake::new(c.direction, c.rules.clone(), ours, self.transport);
        self.handshake = Some(Box::new(handshake));
        self.handshake_deadline = now.checked_add(c.handshake_timeout).unwrap_or(now);
        self.control.clear();
        self.pull_handshake_output();
    }

    /// The stream is connected now, for a core built before it was (to hold messages queued
    /// early): the handshake deadline starts at `now`, and our version takes `wall` as its
    /// timestamp, `start_height`, and `nonce` when given (a node-wide registry's). Nothing happens
    /// once anything was read or taken for writing.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use btcpeer_core::peer::{CoreConfig, Direction, PeerCore};
    /// use btcpeer_core::wire::Message;
    ///
    /// let created = Instant::now();
    /// let mut core = PeerCore::new(CoreConfig::seeded(Direction::Outbound, 3), created, SystemTime::now());
    /// let connected = created + Duration::from_secs(8);
    /// core.connected(connected, SystemTime::now(), 812_000, Some(42));
    /// assert_eq!(core.poll_timeout(connected), Some(connected + Duration::from_secs(30)));
    /// let Some(Message::Version(v)) = core.poll_transmit(connected) else { unreachable!() };
    /// assert_eq!((v.start_height, v.nonce), (812_000, 42));
    /// ```
    pub fn connected(&mut self, now: Instant, wall: SystemTime, start_height: i32, nonce: Option<u64>) {
        let untouched = self.handshake.as_ref().is_some_and(|h| h.remote().is_none())
            && !self.ended
            && self.state.traffic.bytes_received() == 0
            && self.state.traffic.bytes_sent() == 0
            && self.inflight.is_empty();
        if !untouched {
            return;
        }
        if let Some(nonce) = nonce {
            self.nonce = nonce;
        }
        self.begin_at_height(now, wall, start_height);
    }

    /// The address our version gives for the remote (before [`connected`](PeerCore::connected),
    /// which writes the version anew; a core built on a shared configuration has its own).
    pub fn set_receiver(&mut self, receiver: bitcoin::p2p::Address) {
        self.receiver = Some(Box::new(receiver));
    }

    /// The configuration.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// What the handshake learned about the remote, once its version is in.
    pub fn remote(&self) -> Option<&RemoteInfo> {
        self.state.remote.as_ref()
    }

    /// The remote's preferences (`sendheaders`, `sendcmpct`, `feefilter`).
    pub fn preferences(&self) -> Preferences {
        self.state.prefs
    }

    /// The last ping's round trip.
    pub fn last_rtt(&self) -> Option<Duration> {
        self.state.last_rtt
    }

    /// The protocol state (what the remote knows, its preferences, counts, deadlines).
    pub fn state(&self) -> &ProtocolState {
        &self.state
    }

    /// The protocol state, for a driver's bookkeeping (what the remote knows, the last block it
    /// announced).
    pub fn state_mut(&mut self) -> &mut ProtocolState {
        &mut self.state
    }

    /// Frames ignored (Core's leniencies) and messages dropped because a bounded queue was full.
    pub fn ignored_and_dropped(&self) -> (u64, u64) {
        (self.state.ignored_received, self.dropped)
    }

    /// Whether the connection ended.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Why the connection ended, once it has.
    pub fn end_reason(&self) -> Option<&DisconnectReason> {
        self.progress.closed.as_ref()
    }

    /// Whether the handshake completed.
    pub fn is_established(&self) -> bool {
        self.established && !self.ended
    }

    /// Whether the remote is known to have `inv` (it announced or sent it, or we announced it).
    pub fn knows(&mut self, inv: &Inventory) -> bool {
        self.state.known.contains(inv)
    }

    fn pull_handshake_output(&mut self) {
        while let Some(m) = self.handshake.as_mut().and_then(|h| h.poll_transmit()) {
            self.control.push_back(m);
        }
    }

    /// Ends the connection with `reason` (once): queued messages are dropped, except a `reject`
    /// already queued for this end, and the last event is [`Event::Disconnected`].
    fn end(&mut self, reason: DisconnectReason) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.control.retain(|m| matches!(m, Message::Reject(_)));
        self.queue.close();
        self.progress.closed = Some(reason.clone());
        self.paused = None;
        self.events.push_back((Event::Disconnected(reason), None));
    }

    fn push_event(&mut self, event: Event, payload: Option<Bytes>) {
        if self.events.len() >= MAX_EVENTS {
            self.dropped = self.dropped.saturating_add(1);
        } else {
            framed::unpark_events(&mut self.events);
            self.events.push_back((event, payload));
        }
    }

    /// The transport ended (the remote closed, or a read or write failed with `reason`; a driver
    /// ends with its own reasons here too). A core driven with bytes ([`PeerCore::framed`])
    /// should be told of a closed stream with [`PeerCore::stream_closed`], whose reason follows
    /// the transport's stage.
    pub fn closed(&mut self, reason: Option<DisconnectReason>) {
        let during_handshake = !self.established;
        self.end(reason.unwrap_or(DisconnectReason::RemoteClosed { during_handshake }));
    }

    /// The application ends the connection.
    pub fn disconnect(&mut self) {
        self.end(DisconnectReason::LocalRequest);
    }

    /// Takes every whole v1 frame at the front of `buf` (bytes read from the remote) through
    /// `codec`. A frame Core would drop (a bad checksum) is skipped; any other framing error ends
    /// the connection with its reason.
    pub fn handle_v1_bytes(&mut self, codec: &mut V1Codec, buf: &mut bytes::BytesMut, now: Instant, wall: SystemTime) {
        while !self.ended {
            match codec.decode_frame(buf) {
                Ok(Some(frame)) => self.handle_frame(frame, now, wall),
                Ok(None) => return,
                // Core keeps a connection whose frame had a bad checksum; so do we, counting it.
                Err(V1Error::Dropped { bytes, .. }) => self.dropped(bytes, now),
                Err(V1Error::Frame(e)) => self.closed(Some(DisconnectReason::Frame(e))),
                Err(e) => self.closed(Some(DisconnectReason::io(&std::io::Error::other(e.to_string())))),
            }
        }
    }

    /// A frame dropped unread (Core's leniency): counted, the remote is alive, and the
    /// misbehaviour limit applies.
    fn dropped(&mut self, wire: usize, now: Instant) {
        self.state.traffic.dropped(wire);
        if let Some(l) = self.state.liveness.as_mut() {
            l.alive(now);
        }
        if let Err(reason) = self.state.check_misbehaviour(self.config.ignored_limit) {
            self.end(reason);
        }
    }

    /// Takes one frame read from the remote (counted as a v1 frame on the wire).
    pub fn handle_frame(&mut self, frame: RawFrame, now: Instant, wall: SystemTime) {
        let wire = frame.payload.len().saturating_add(HEADER_LEN);
        self.receive_frame(frame, wire, now, wall);
    }

    fn receive_frame(&mut self, frame: RawFrame, wire: usize, now: Instant, wall: SystemTime) {
        if self.ended {
            return;
        }
        if self.deciding {
            self.hold_while_deciding(frame, wire);
            return;
        }
        if let Some(l) = self.state.liveness.as_mut() {
            l.alive(now);
        }
        self.state.traffic.received(frame.command, wire);
        if self.config.report_reads {
            let read = Read::Frame { command: frame.command, wire, payload: frame.payload.clone() };
            self.push_event(Event::Read(read), None);
        }
        let result =
            if self.established { self.after_handshake(frame, now) } else { self.in_handshake(&frame, now, wall) };
        if let Err(reason) = result.and_then(|()| self.state.check_misbehaviour(self.config.ignored_limit)) {
            self.end(reason);
        }
    }

    fn in_handshake(&mut self, frame: &RawFrame, now: Instant, wall: SystemTime) -> Result<(), DisconnectReason> {
        let Some(hs) = self.handshake.as_mut() else { return Ok(()) };
        let step = hs.handle_frame(frame, wall)?;
        match step {
            HandshakeStep::Ignored => self.state.ignored(),
            HandshakeStep::Unknown => self.state.unknown_received = self.state.unknown_received.saturating_add(1),
            HandshakeStep::Preference(m) if !self.state.prefs.record(&m) => self.state.ignored(),
            HandshakeStep::Version => {
                if let Some(info) = hs.remote() {
                    self.state.version_received(info);
                }
                let theirs = hs.remote().map(|r| r.version.nonce);
                if theirs != Some(self.nonce) && self.config.version_decision {
                    if let Some(info) = hs.remote().cloned() {
                        self.deciding = true;
                        self.push_event(Event::Version(info), None);
                        return Ok(());
                    }
                }
                let accepted =
                    if theirs == Some(self.nonce) { Err(DisconnectReason::SelfConnection) } else { hs.accept() };
                self.pull_handshake_output();
                accepted?;
            }
            HandshakeStep::Done(info) => {
                self.handshake = None;
                // Our version is written: what it was built from is no longer needed.
                self.receiver = None;
                self.established = true;
                self.state.handshake_complete(info.clone(), self.config.timeouts, now);
                self.push_event(Event::Handshake(info), None);
            }
            _ => {}
        }
        Ok(())
    }

    fn after_handshake(&mut self, frame: RawFrame, now: Instant) -> Result<(), DisconnectReason> {
        if frame.command == Command::BLOCK && self.config.raw_blocks {
            // The rule for an undecoded block: refused as a decoded one would be, else the same
            // bookkeeping (the remote answered, it knows the block).
            let checked = crate::wire::check_block(&frame.payload);
            let negotiated = self.state.negotiated(self.config.rules.protocol_version);
            return match self.state.receive_raw_block(checked, now) {
                Ok(_) => {
                    self.push_event(Event::RawBlock(frame.payload), None);
                    Ok(())
                }
                Err(e) => Err(self.malformed(e, negotiated)),
            };
        }
        before_decode(frame.command)?;
        let ours = self.config.rules.protocol_version;
        let negotiated = self.state.negotiated(ours);
        let message = match frame.decode() {
            Ok(m) => m,
            Err(e) => return Err(self.malformed(e, negotiated)),
        };
        let (rule, rtt) = self.state.receive(&message, frame.payload.len(), ours, self.config.bloom, now);
        match rule {
            Rule::Deliver(builtin) => {
                if let Some(nonce) = builtin.pong {
                    // A full queue drops the pong, counted, as a full send buffer would: a remote
                    // that never reads cannot make the queue grow past its limit.
                    if self.queue_message(&Message::Pong(nonce)).is_err() {
                        self.dropped = self.dropped.saturating_add(1);
                    }
                }
                if let Some(rtt) = rtt {
                    self.push_event(Event::Pong { rtt }, None);
                }
                self.push_event(Event::Message(message), Some(frame.payload));
            }
            Rule::Malformed(e) => return Err(self.malformed(e, negotiated)),
            Rule::End(reason) => return Err(reason),
            // Ignored (and counted by the state), and any rule this core does not act on.
            _ => {}
        }
        Ok(())
    }

    /// A `reject` (`malformed`) where the version has them, then the end.
    fn malformed(&mut self, e: crate::wire::PayloadError, negotiated: u32) -> DisconnectReason {
        if negotiated >= REJECT_VERSION {
            let reject = Reject {
                message: e.command.as_str().to_string(),
                code: RejectCode::MALFORMED,
                reason: "malformed message".into(),
                hash: None,
            };
            self.control.push_back(Message::Reject(reject));
        }
        DisconnectReason::Payload(e)
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front().map(|(event, _)| event)
    }

    /// The next event, with the payload of an [`Event::Message`] as it was received (for an
    /// application that keeps or forwards it without encoding it again).
    ///
    /// ```
    /// use std::time::{Instant, SystemTime};
    /// use btcpeer_core::peer::{CoreConfig, Direction, Event, PeerCore};
    /// use btcpeer_core::wire::frame::RawFrame;
    /// use btcpeer_core::wire::Message;
    ///
    /// let now = Instant::now();
    /// let mut a = PeerCore::new(CoreConfig::seeded(Direction::Outbound, 1), now, SystemTime::now());
    /// let mut b = PeerCore::new(CoreConfig::seeded(Direction::Inbound, 2), now, SystemTime::now());
    /// for _ in 0..4 {
    ///     while let Some(m) = a.poll_transmit(now) { b.handle_frame(RawFrame::from_message(&m).unwrap(), now, SystemTime::now()); }
    ///     while let Some(m) = b.poll_transmit(now) { a.handle_frame(RawFrame::from_message(&m).unwrap(), now, SystemTime::now()); }
    /// }
    /// while b.poll_event().is_some() {}
    /// b.handle_frame(RawFrame::from_message(&Message::FeeFilter(1_000)).unwrap(), now, SystemTime::now());
    /// let (event, raw) = b.poll_event_with_payload().unwrap();
    /// assert_eq!(event, Event::Message(Message::FeeFilter(1_000)));
    /// assert_eq!(raw.unwrap().as_ref(), &1_000i64.to_le_bytes());
    /// ```
    pub fn poll_event_with_payload(&mut self) -> Option<(Event, Option<Bytes>)> {
        self.events.pop_front()
    }

    /// Whether events wait for [`poll_event`](PeerCore::poll_event).
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// When [`handle_timeout`](PeerCore::handle_timeout) should next run (`None`: never, the
    /// connection ended).
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        if self.ended {
            return None;
        }
        match self.state.liveness.as_ref() {
            Some(l) if self.established => l.next_wakeup(&self.config.timeouts, now),
            _ => Some(self.handshake_deadline),
        }
    }

    /// Runs what is due at `now`: the handshake deadline, the idle, pong and stall deadlines, the
    /// ping schedule and the trickle tick.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        let outstanding = self.state.ping_outstanding.is_some() || self.ping_queued.is_some();
        let Some(liveness) = self.state.liveness.as_mut().filter(|_| self.established) else {
            if now >= self.handshake_deadline {
                self.end(DisconnectReason::HandshakeTimeout);
            }
            return;
        };
        match liveness.check(&self.config.timeouts, now, outstanding) {
            Err(reason) => self.end(reason),
            Ok(due) => {
                if due.ping {
                    self.ping(now);
                }
                if due.trickle {
                    self.flush_trickle(now);
                }
            }
        }
    }

    /// Whether everything to be written was taken and reported written.
    pub fn is_flushed(&self) -> bool {
        !self.wants_transmit() && self.inflight.is_empty()
    }

    /// Whether anything waits to be written now.
    pub fn wants_transmit(&self) -> bool {
        let framing_out = self.framing.as_ref().is_some_and(|f| f.has_output());
        framing_out || !self.control.is_empty() || (self.established && !self.queue.is_empty())
    }
}
