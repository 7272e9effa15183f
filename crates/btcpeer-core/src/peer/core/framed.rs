//! [`PeerCore`] driven with bytes: its [`Framing`] (v1 or BIP324 v2) between the socket and the
//! frames, so that a driver only moves bytes and time.

use std::time::{Instant, SystemTime};

use bytes::BytesMut;

use super::{Framed, Framing, PeerCore};
use crate::peer::outbound::OutboundQueue;
use crate::peer::{CoreConfig, DisconnectReason, Transport};
use crate::transport::framing::Dropped;
use crate::wire::Command;

/// Events [`PeerCore::handle_bytes`] lets wait before it stops taking frames, so that
/// a driver delivers them before reading on (a slow application slows the remote, nothing is
/// dropped).
const EVENT_BATCH: usize = 64;

/// A frame read, as [`Event::Read`](crate::peer::Event::Read) reports it (with
/// [`CoreConfig::report_reads`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Read {
    /// A frame taken.
    Frame {
        /// Its command.
        command: Command,
        /// Its size on the wire.
        wire: usize,
        /// Its payload (shared, not copied).
        payload: bytes::Bytes,
    },
    /// A frame dropped unread, as Core drops it.
    Dropped {
        /// Why.
        error: Dropped,
        /// Its size on the wire.
        wire: usize,
    },
}

impl PeerCore {
    /// A connection driven with bytes through `framing` ([`handle_bytes`](PeerCore::handle_bytes)
    /// in, [`poll_transmit_bytes`](PeerCore::poll_transmit_bytes) or
    /// [`poll_transmit_batch`](PeerCore::poll_transmit_batch) out), starting at `now`.
    ///
    /// ```
    /// use std::time::{Instant, SystemTime};
    /// use bytes::BytesMut;
    /// use btcpeer_core::network::Network;
    /// use btcpeer_core::peer::{CoreConfig, Direction, Event, PeerCore, Transport};
    /// use btcpeer_core::transport::framing::{Framing, TransportPolicy};
    ///
    /// let now = Instant::now();
    /// let side = |direction, seed| {
    ///     let framing = Framing::new(Network::REGTEST, direction, TransportPolicy::Auto, Default::default()).unwrap();
    ///     PeerCore::framed(CoreConfig::seeded(direction, seed), framing, now, SystemTime::now())
    /// };
    /// let (mut a, mut b) = (side(Direction::Outbound, 1), side(Direction::Inbound, 2));
    /// let (mut ab, mut ba) = (BytesMut::new(), BytesMut::new());
    /// for _ in 0..6 {
    ///     a.poll_transmit_bytes(now, &mut ab);
    ///     b.handle_bytes(&mut ab, now, SystemTime::now());
    ///     b.poll_transmit_bytes(now, &mut ba);
    ///     a.handle_bytes(&mut ba, now, SystemTime::now());
    /// }
    /// let Some(Event::Handshake(info)) = a.poll_event() else { panic!("no handshake") };
    /// assert_eq!(info.transport, Transport::V2);
    /// ```
    pub fn framed(mut config: CoreConfig, framing: Framing, now: Instant, wall: SystemTime) -> PeerCore {
        if let Some(t) = framing.transport() {
            config.transport = t;
        }
        config.max_payload = framing.network().max_payload();
        let seed = config.seed;
        Self::framed_shared(std::sync::Arc::new(config), seed, framing, now, wall)
    }

    /// [`framed`](PeerCore::framed) on a configuration shared with other connections, seeded with
    /// `seed` (see [`with_shared_config`](PeerCore::with_shared_config)). The configuration's
    /// `max_payload` should be the framing network's.
    pub fn framed_shared(
        config: std::sync::Arc<CoreConfig>,
        seed: u64,
        framing: Framing,
        now: Instant,
        wall: SystemTime,
    ) -> PeerCore {
        let v2_possible = framing.transport() != Some(Transport::V1);
        let mut core = PeerCore::with_shared_config(config, seed, now, wall);
        if let Some(t) = framing.transport() {
            core.transport = t;
            if let Some(hs) = core.handshake.as_mut() {
                hs.set_transport(t);
            }
        }
        core.queue = OutboundQueue::new(core.config.max_queue_bytes, core.config.max_payload, v2_possible);
        core.framing = Some(Box::new(framing));
        core
    }

    /// Takes the bytes read from the remote at the front of `buf` (whole frames are consumed, a
    /// partial one stays for the next call). Returns true when it stopped early, with events
    /// waiting and perhaps whole frames left in `buf`: take the events, then call it again
    /// before reading more.
    pub fn handle_bytes(&mut self, buf: &mut BytesMut, now: Instant, wall: SystemTime) -> bool {
        self.handle_bytes_until(buf, now, wall, EVENT_BATCH)
    }

    /// [`handle_bytes`](PeerCore::handle_bytes), stopping once `events` events wait: a driver
    /// whose application takes events one at a time (a bounded channel) passes 1, so that it
    /// reads no further than the application keeps up (nothing is dropped, the remote is slowed).
    pub fn handle_bytes_until(&mut self, buf: &mut BytesMut, now: Instant, wall: SystemTime, events: usize) -> bool {
        let most = events.clamp(1, EVENT_BATCH);
        // While the driver decides on the remote's version, bytes wait in `buf`.
        while !self.ended && !self.deciding {
            if self.events.len() >= most {
                return true;
            }
            let Some(framing) = self.framing.as_mut() else { return false };
            match framing.poll_input(buf) {
                Ok(Some(Framed::Frame { frame, wire })) => self.receive_frame(frame, wire, now, wall),
                Ok(Some(Framed::Dropped { error, wire })) => {
                    if self.config.report_reads {
                        self.push_event(crate::peer::Event::Read(Read::Dropped { error, wire }), None);
                    }
                    self.dropped(wire, now);
                }
                Ok(Some(Framed::Established(transport))) => {
                    let (sent, received) = framing.handshake_bytes();
                    self.state.traffic.handshake_bytes(sent, received);
                    self.transport = transport;
                    self.queue.set_v2(transport == Transport::V2);
                    if let Some(hs) = self.handshake.as_mut() {
                        hs.set_transport(transport);
                    }
                }
                Ok(None) => return false,
                Err(reason) => self.end(reason),
            }
        }
        false
    }

    /// The transport, once settled (v1 until then for a core driven with frames).
    pub fn transport(&self) -> Option<Transport> {
        match self.framing.as_ref() {
            Some(f) => f.transport(),
            None => Some(self.transport),
        }
    }

    /// Nothing waits to be read: let go of what can be rebuilt (the v2 decoder's cipher state,
    /// the buffers of the events taken), so that an idle connection holds as little as
    /// it can. See [`release_writer`](PeerCore::release_writer) for the other direction.
    pub fn release_reader(&mut self) {
        if let Some(f) = self.framing.as_mut() {
            f.release_reader();
        }
        SPARE_EVENTS.with(|spare| park(&mut self.events, spare));
    }

    /// Everything was written: let go of what can be rebuilt (the v2 encoder's cipher state, the
    /// buffers of the messages written).
    pub fn release_writer(&mut self) {
        if let Some(f) = self.framing.as_mut() {
            f.release_writer();
        }
        release(&mut self.control);
        SPARE_INFLIGHT.with(|spare| park(&mut self.inflight, spare));
    }

    /// The stream ended (`error`, if a read or write failed): the reason follows the transport's
    /// stage (a v2 handshake the remote closed before any byte advises a v1 retry).
    pub fn stream_closed(&mut self, error: Option<&std::io::Error>) {
        let established = self.established;
        let reason = match self.framing.as_ref() {
            Some(f) => f.closed(error, established),
            None => match error {
                Some(e) => DisconnectReason::io(e),
                None => DisconnectReason::RemoteClosed { during_handshake: !established },
            },
        };
        self.end(reason);
    }
}

type EventQueue = std::collections::VecDeque<(crate::peer::Event, Option<bytes::Bytes>)>;
type InflightQueue = std::collections::VecDeque<super::output::Inflight>;

thread_local! {
    /// One spare event queue per thread: a connection that goes quiet parks its (empty) queue here
    /// and the next connection on the thread to need one takes it, so that a busy peer that goes
    /// quiet after every message (a ping-pong) does not allocate it anew each time, while idle
    /// connections hold none.
    static SPARE_EVENTS: std::cell::Cell<EventQueue> = const { std::cell::Cell::new(EventQueue::new()) };
    /// The same for the queue of messages being written.
    static SPARE_INFLIGHT: std::cell::Cell<InflightQueue> = const { std::cell::Cell::new(InflightQueue::new()) };
}

/// Parks an empty queue's buffer in the thread's spare slot (keeping the larger of the two, at
/// most a few kilobytes: the queues are bounded).
fn park<T>(queue: &mut std::collections::VecDeque<T>, spare: &std::cell::Cell<std::collections::VecDeque<T>>) {
    if queue.is_empty() && queue.capacity() > 0 {
        let parked = std::mem::take(queue);
        let kept = spare.take();
        spare.set(if parked.capacity() >= kept.capacity() { parked } else { kept });
    }
}

/// Takes the thread's spare buffer for an empty queue that has none.
pub(super) fn unpark_events(queue: &mut EventQueue) {
    if queue.capacity() == 0 {
        *queue = SPARE_EVENTS.with(std::cell::Cell::take);
    }
}

/// [`unpark_events`] for the queue of messages being written.
pub(super) fn unpark_inflight(queue: &mut InflightQueue) {
    if queue.capacity() == 0 {
        *queue = SPARE_INFLIGHT.with(std::cell::Cell::take);
    }
}

/// Lets an empty queue's buffer go.
fn release<T>(queue: &mut std::collections::VecDeque<T>) {
    if queue.is_empty() && queue.capacity() > 0 {
        *queue = std::collections::VecDeque::new();
    }
}
