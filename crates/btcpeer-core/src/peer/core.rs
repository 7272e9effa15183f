//! [`PeerCore`]: one connection driven from outside (documented on the type).

mod config;
mod decide;
mod framed;
mod handler_time;

pub use config::CoreConfig;

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use bitcoin::p2p::ServiceFlags;

use super::handshake::{HandshakeStep, VersionHandshake};
use super::inventory::Pending;
use super::liveness::poisson_delay_from;
use super::rules::{Preferences, Rule, before_decode};
use super::state::{Announced, ProtocolState};
use super::{DisconnectReason, RemoteInfo};
use crate::transport::framing::{Framed, Framing};
use crate::transport::v1::{V1Codec, V1Error};
use crate::wire::frame::{HEADER_LEN, RawFrame};
use crate::wire::limits::MAX_LOCATOR_HASHES;
use crate::wire::version::{REJECT_VERSION, ping_has_nonce};
use crate::wire::{Command, Inventory, Message, Reject, RejectCode};
use bitcoin::BlockHash;
use bitcoin::p2p::message_blockdata::{GetBlocksMessage, GetHeadersMessage};

/// Messages waiting to be written at most; what the remote makes us send beyond it (pongs) is
/// dropped and counted, as a full send buffer would.
const MAX_OUTGOING: usize = 4_096;
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
    /// A message after the handshake, after the peer's own handling.
    Message(Message),
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
/// Inputs are frames read ([`PeerCore::handle_frame`]), the time ([`PeerCore::handle_timeout`],
/// whenever [`PeerCore::poll_timeout`]'s instant passes) and the application's commands
/// ([`PeerCore::send`], [`PeerCore::announce`], [`PeerCore::disconnect`]). Outputs are messages to
/// write ([`PeerCore::poll_transmit`]) and events ([`PeerCore::poll_event`]). Nothing here reads a
/// socket or a clock, so the same core runs under tokio, in a blocking loop, in the simulator and
/// in a fuzzer; randomness (ping nonces, trickle delays) comes from a seeded generator, so a seeded
/// run is reproducible.
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
    config: CoreConfig,
    nonce: u64,
    handshake: Option<VersionHandshake>,
    handshake_deadline: Instant,
    /// Set once the handshake completed (the state's `remote` is set from the remote's version).
    established: bool,
    state: ProtocolState,
    out: VecDeque<Message>,
    /// Application messages queued before the handshake completed.
    held: VecDeque<Message>,
    events: VecDeque<Event>,
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
    paused: VecDeque<(RawFrame, usize)>,
}

impl PeerCore {
    /// A connection starting at `now` (`wall` is the wall clock, for our version's timestamp). An
    /// outbound core has its version ready to write.
    pub fn new(config: CoreConfig, now: Instant, wall: SystemTime) -> Self {
        let mut rng = config.seed | 1;
        let nonce = crate::rng::next(&mut rng);
        let ours = config.rules.version(config.services, nonce, &config.user_agent, config.start_height, wall);
        let handshake = VersionHandshake::new(config.direction, config.rules.clone(), ours, config.transport);
        let mut core = PeerCore {
            nonce,
            handshake: Some(handshake),
            handshake_deadline: now.checked_add(config.handshake_timeout).unwrap_or(now),
            established: false,
            state: ProtocolState::new(config.known_capacity, config.trickle_limit),
            out: VecDeque::new(),
            held: VecDeque::new(),
            events: VecDeque::new(),
            ping_queued: None,
            dropped: 0,
            ended: false,
            rng,
            config,
            framing: None,
            deciding: false,
            paused: VecDeque::new(),
        };
        core.pull_handshake_output();
        core
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

    /// Frames ignored (Core's leniencies) and messages dropped because a bounded queue was full.
    pub fn ignored_and_dropped(&self) -> (u64, u64) {
        (self.state.ignored_received, self.dropped)
    }

    /// Whether the connection ended.
    pub fn is_ended(&self) -> bool {
        self.ended
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
        while let Some(m) = self.handshake.as_mut().and_then(VersionHandshake::poll_transmit) {
            self.out.push_back(m);
        }
    }

    /// Ends the connection with `reason` (once): queued messages are dropped, except a `reject`
    /// already queued for this end, and the last event is [`Event::Disconnected`].
    fn end(&mut self, reason: DisconnectReason) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.out.retain(|m| matches!(m, Message::Reject(_)));
        self.held.clear();
        self.events.push_back(Event::Disconnected(reason));
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.dropped = self.dropped.saturating_add(1);
        } else {
            self.events.push_back(event);
        }
    }

    fn push_out(&mut self, message: Message) {
        if self.out.len() >= MAX_OUTGOING {
            self.dropped = self.dropped.saturating_add(1);
        } else {
            self.out.push_back(message);
        }
    }

    /// The transport ended (the remote closed, or a read failed with `reason`). A core driven
    /// with bytes ([`PeerCore::framed`]) should be told with [`PeerCore::stream_closed`], whose
    /// reason follows the transport's stage.
    pub fn closed(&mut self, reason: Option<DisconnectReason>) {
        let during_handshake = !self.established;
        self.end(reason.unwrap_or(DisconnectReason::RemoteClosed { during_handshake }));
    }

    /// The application ends the connection.
    pub fn disconnect(&mut self) {
        self.end(DisconnectReason::LocalRequest);
    }

    /// Queues an application message (held until the handshake completes; a block or transaction
    /// to a remote without `NODE_WITNESS` loses its witnesses). Returns false if the connection
    /// ended or the queue is full.
    pub fn send(&mut self, message: Message) -> bool {
        if self.ended || self.out.len().saturating_add(self.held.len()) >= MAX_OUTGOING {
            return false;
        }
        // Blocks and transactions go to a remote without NODE_WITNESS without their witnesses, as
        // Core serializes them for such a peer.
        let lacks_witness = self.state.remote.as_ref().is_some_and(|r| !r.version.services.has(ServiceFlags::WITNESS));
        let message = match lacks_witness.then(|| crate::wire::without_witness(&message)).flatten() {
            Some(stripped) => stripped,
            None => message,
        };
        if self.established {
            self.out.push_back(message)
        } else {
            self.held.push_back(message)
        }
        true
    }

    /// Announces inventory: blocks at once, transactions at the next trickle tick (a Poisson delay,
    /// as Core's `SendMessages`), and nothing the remote already knows. Returns false when it was
    /// not queued (known, refused by the remote's relay preference, or a full queue).
    pub fn announce(&mut self, inv: Inventory, now: Instant) -> bool {
        if self.ended {
            return false;
        }
        if !inv.is_transaction() && self.established {
            // The state's rule: checked and marked in one step, given back when it cannot be
            // queued, so that a retry is sent rather than taken for a duplicate.
            let room = self.out.len().saturating_add(self.held.len()) < MAX_OUTGOING;
            let out = &mut self.out;
            let queued = self.state.announce_block_with(&inv, |m| {
                if !room {
                    return Err(());
                }
                out.push_back(m);
                Ok(())
            });
            return queued == Ok(true);
        }
        let (mean, random) = (self.config.trickle_mean, crate::rng::next(&mut self.rng));
        matches!(
            self.state.announce(Pending::Plain(inv), now, || poisson_delay_from(mean, random)),
            Announced::Queued { .. }
        )
    }

    /// Asks for the headers after `locator` (at most 101 hashes) up to `stop`. A request repeating
    /// the previous `getheaders` (same first locator hash and stop hash) is not sent again, as btcd
    /// filters it. Returns whether it was queued.
    pub fn get_headers(&mut self, locator: Vec<BlockHash>, stop: BlockHash) -> bool {
        self.locator_request(Command::GETHEADERS, locator, stop)
    }

    /// Asks for the block inventory after `locator`, with the same rules as
    /// [`get_headers`](PeerCore::get_headers).
    pub fn get_blocks(&mut self, locator: Vec<BlockHash>, stop: BlockHash) -> bool {
        self.locator_request(Command::GETBLOCKS, locator, stop)
    }

    fn locator_request(&mut self, command: Command, locator: Vec<BlockHash>, stop: BlockHash) -> bool {
        if self.ended || locator.len() as u64 > MAX_LOCATOR_HASHES {
            return false;
        }
        let Some(undo) = self.state.locator_request(command, locator.first().copied(), stop) else { return false };
        let version = self.state.negotiated(self.config.rules.protocol_version);
        let message = if command == Command::GETBLOCKS {
            Message::GetBlocks(GetBlocksMessage { version, locator_hashes: locator, stop_hash: stop })
        } else {
            Message::GetHeaders(GetHeadersMessage { version, locator_hashes: locator, stop_hash: stop })
        };
        let queued = self.send(message);
        if !queued {
            self.state.locator_failed(undo);
        }
        queued
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
                        self.push_event(Event::Version(info));
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
                self.established = true;
                self.state.handshake_complete(info.clone(), self.config.timeouts, now);
                self.out.extend(self.held.drain(..));
                self.push_event(Event::Handshake(info));
            }
            _ => {}
        }
        Ok(())
    }

    fn after_handshake(&mut self, frame: RawFrame, now: Instant) -> Result<(), DisconnectReason> {
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
                    self.push_out(Message::Pong(nonce));
                }
                if let Some(rtt) = rtt {
                    self.push_event(Event::Pong { rtt });
                }
                self.push_event(Event::Message(message));
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
            self.out.push_back(Message::Reject(reject));
        }
        DisconnectReason::Payload(e)
    }

    /// Sends a ping now (one at a time); its round trip comes as [`Event::Pong`].
    pub fn ping(&mut self, now: Instant) -> bool {
        let negotiated = self.state.negotiated(0);
        let _ = now;
        if self.ended
            || self.state.ping_outstanding.is_some()
            || self.ping_queued.is_some()
            || !ping_has_nonce(negotiated)
        {
            return false;
        }
        let nonce = crate::rng::next(&mut self.rng);
        // Marked queued only once it is: a ping refused by a full queue must not block every
        // later one (nor count as outstanding for the pong deadline).
        if !self.send(Message::Ping(nonce)) {
            return false;
        }
        self.ping_queued = Some(nonce);
        true
    }

    /// The next message to write. Take them all, write them, then wait; the stall and pong clocks
    /// start as they are taken.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Message> {
        let message = self.out.pop_front()?;
        if let Some(l) = self.state.liveness.as_mut() {
            // Only a `getblocks`' stall rule reads the payload (its stop hash); every other
            // message is told by its command, without encoding it here too.
            match &message {
                Message::GetBlocks(_) => {
                    if let Ok(raw) = RawFrame::from_message(&message) {
                        l.sent(raw.command, &raw.payload, now);
                    }
                }
                other => l.sent(other.command(), &[], now),
            }
        }
        if let Message::Ping(nonce) = message {
            // The round trip counts from when the ping is taken for writing.
            self.ping_queued = None;
            self.state.ping_sent(nonce, now);
        }
        Some(message)
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](PeerCore::handle_timeout) should next run (`None`: never, the
    /// connection ended).
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        if self.ended {
            return None;
        }
        match self.state.liveness.as_ref() {
            Some(l) if self.established => l.next_wakeup(now),
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
        match liveness.check(now, outstanding) {
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

    /// The trickle tick, by the state's rule ([`ProtocolState::flush_trickle`]): what does not
    /// fit a full queue goes back for a later tick.
    fn flush_trickle(&mut self, now: Instant) {
        let retry = self.config.trickle_mean.max(Duration::from_millis(100));
        let out = &mut self.out;
        self.state.flush_trickle(now, retry, |m| {
            let room = out.len() < MAX_OUTGOING;
            if room {
                out.push_back(m);
            }
            room
        });
    }
}
