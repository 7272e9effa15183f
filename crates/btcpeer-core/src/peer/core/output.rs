//! [`PeerCore`]'s outbound side: the byte-bounded, numbered queue, announcements, pings, locator
//! requests, and taking what is to be written (then hearing that it was).

use std::time::{Duration, Instant};

use bitcoin::BlockHash;
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::message_blockdata::{GetBlocksMessage, GetHeadersMessage};
use bytes::{Bytes, BytesMut};

use super::PeerCore;
use crate::peer::inventory::Pending;
use crate::peer::liveness::poisson_delay_from;
use crate::peer::outbound::{Outgoing, Progress, QueueError};
use crate::peer::state::Announced;
use crate::wire::frame::HEADER_LEN;
use crate::wire::limits::MAX_LOCATOR_HASHES;
use crate::wire::version::ping_has_nonce;
use crate::wire::{Command, Inventory, Message};

/// A message taken for writing, not yet reported written.
#[derive(Debug)]
pub(super) struct Inflight {
    /// Its sequence number (0: a handshake message or a last reject, outside the queue).
    seq: u64,
    command: Command,
    /// Its size on the wire.
    wire: usize,
    /// What it holds of the queue's byte budget.
    size: usize,
    /// Its payload (shared, not copied), for the driver's log.
    payload: Bytes,
}

impl PeerCore {
    /// Queues `message` (encoded now, once): its sequence number, which
    /// [`progress`](PeerCore::progress) later reports written or dropped, or why it was not
    /// queued. Messages wait for the handshake to complete; a block or transaction to a remote
    /// without `NODE_WITNESS` loses its witnesses (Core's `TX_NO_WITNESS` serialization). Once the
    /// connection ended, the number is `u64::MAX`: dropped at once.
    ///
    /// ```
    /// use std::time::{Instant, SystemTime};
    /// use btcpeer_core::peer::{CoreConfig, Direction, PeerCore, SendOutcome};
    /// use btcpeer_core::wire::Message;
    ///
    /// let now = Instant::now();
    /// let mut core = PeerCore::new(CoreConfig::seeded(Direction::Outbound, 1), now, SystemTime::now());
    /// let seq = core.queue_message(&Message::GetAddr).unwrap();
    /// assert_eq!(core.progress().outcome(seq), None, "held until the handshake completes");
    /// core.disconnect();
    /// assert!(matches!(core.progress().outcome(seq), Some(SendOutcome::Dropped(_))));
    /// ```
    pub fn queue_message(&mut self, message: &Message) -> Result<u64, QueueError> {
        let lacks_witness = self.state.remote.as_ref().is_some_and(|r| !r.version.services.has(ServiceFlags::WITNESS));
        if lacks_witness {
            if let Some(stripped) = crate::wire::without_witness(message) {
                return self.queue.push(&stripped);
            }
        }
        self.queue.push(message)
    }

    /// Queues an already-encoded payload under `command`, with its v1 checksum when known (a
    /// message encoded once for many peers).
    pub fn queue_raw(
        &mut self,
        command: Command,
        payload: Bytes,
        checksum: Option<[u8; 4]>,
    ) -> Result<u64, QueueError> {
        self.queue.push_raw(command, payload, checksum)
    }

    /// Queues an application message; false if the connection ended or the queue is full (see
    /// [`queue_message`](PeerCore::queue_message)).
    pub fn send(&mut self, message: Message) -> bool {
        !self.ended && self.queue_message(&message).is_ok()
    }

    /// What became of the queued messages: every number up to `written` was written; once
    /// `closed`, every other one was dropped for that reason.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Messages and bytes waiting in the queue or being written.
    pub fn queue_depth(&self) -> (usize, usize) {
        self.queue.depth()
    }

    /// Announces inventory: blocks at once, the rest at the next trickle tick (a Poisson delay,
    /// as Core's `SendMessages`), nothing the remote already knows. Returns false when it was not
    /// queued (known, refused by the remote's relay preference, or a full queue).
    pub fn announce(&mut self, inv: Inventory, now: Instant) -> bool {
        matches!(self.announce_at(Pending::Plain(inv), now, None), Ok(Announced::Queued { .. }))
    }

    /// Announces `item` as [`announce`](PeerCore::announce) does, saying what became of it. `at`
    /// is when the trickle tick comes if this announcement schedules it: a driver running many
    /// inbound connections of one node passes the node's one instant (Core's
    /// `NextInvToInbounds`, so that more connections hear nothing sooner); `None` draws this
    /// connection's own Poisson delay. A block goes out at once; a full queue gives it back
    /// (not marked known) with the queue's error.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use btcpeer_core::bitcoin::{hashes::Hash, Txid};
    /// use btcpeer_core::peer::{Announced, CoreConfig, Direction, PeerCore};
    /// use btcpeer_core::peer::inventory::Pending;
    /// use btcpeer_core::wire::Inventory;
    ///
    /// let now = Instant::now();
    /// let mut core = PeerCore::new(CoreConfig::seeded(Direction::Inbound, 1), now, SystemTime::now());
    /// let tx = Pending::Plain(Inventory::Tx(Txid::all_zeros()));
    /// let shared_tick = now + Duration::from_secs(3);
    /// assert!(matches!(core.announce_at(tx, now, Some(shared_tick)), Ok(Announced::Queued { .. })));
    /// assert_eq!(core.announce_at(tx, now, Some(shared_tick)), Ok(Announced::Known));
    /// ```
    pub fn announce_at(&mut self, item: Pending, now: Instant, at: Option<Instant>) -> Result<Announced, QueueError> {
        if self.ended {
            return Ok(Announced::Full);
        }
        if let Pending::Plain(inv) = item {
            if inv.is_block() {
                // Checked and marked in one step, given back when it cannot be queued, so that a
                // retry is sent rather than taken for a duplicate.
                let queue = &mut self.queue;
                let sent = self.state.announce_block_with(&inv, |m| queue.push(&m).map(drop))?;
                return Ok(if sent { Announced::Queued { scheduled: false } } else { Announced::Known });
            }
        }
        let (mean, random) = (self.config.trickle_mean, crate::rng::next(&mut self.rng));
        let delay = || match at {
            Some(at) => at.saturating_duration_since(now),
            None => poisson_delay_from(mean, random),
        };
        let announced = self.state.announce(item, now, delay);
        if matches!(announced, Announced::Queued { .. }) && mean.is_zero() && self.established {
            // No trickle delay: the tick is now.
            self.flush_trickle(now);
        }
        Ok(announced)
    }

    /// Asks for the headers after `locator` (at most 101 hashes) up to `stop`. A request repeating
    /// the previous `getheaders` (same first locator hash and stop hash) is not sent again, as btcd
    /// filters it. Returns whether it was queued.
    pub fn get_headers(&mut self, locator: Vec<BlockHash>, stop: BlockHash) -> bool {
        matches!(self.locator_request(Command::GETHEADERS, locator, stop), Ok(Some(_)))
    }

    /// Asks for the block inventory after `locator`, with the same rules as
    /// [`get_headers`](PeerCore::get_headers).
    pub fn get_blocks(&mut self, locator: Vec<BlockHash>, stop: BlockHash) -> bool {
        matches!(self.locator_request(Command::GETBLOCKS, locator, stop), Ok(Some(_)))
    }

    /// A `getblocks` or `getheaders` (`command`) for `locator` and `stop`: its sequence number,
    /// `Ok(None)` when it repeats the previous one of its kind (not sent), or why it could not
    /// be queued (then the previous one is remembered again, so that a retry is sent). A locator
    /// of more than 101 hashes is refused as [`QueueError::Encode`].
    pub fn locator_request(
        &mut self,
        command: Command,
        locator: Vec<BlockHash>,
        stop: BlockHash,
    ) -> Result<Option<u64>, QueueError> {
        if locator.len() as u64 > MAX_LOCATOR_HASHES {
            let reason = "more than 101 locator hashes";
            return Err(QueueError::Encode(crate::wire::EncodeError::Invalid { command, field: "locator", reason }));
        }
        let Some(undo) = self.state.locator_request(command, locator.first().copied(), stop) else { return Ok(None) };
        let version = self.state.negotiated(self.config.rules.protocol_version);
        let message = if command == Command::GETBLOCKS {
            Message::GetBlocks(GetBlocksMessage { version, locator_hashes: locator, stop_hash: stop })
        } else {
            Message::GetHeaders(GetHeadersMessage { version, locator_hashes: locator, stop_hash: stop })
        };
        match self.queue_message(&message) {
            Ok(seq) => Ok(Some(seq)),
            Err(e) => {
                self.state.locator_failed(undo);
                Err(e)
            }
        }
    }

    /// Sends a ping now (one at a time); its round trip comes as
    /// [`Event::Pong`](crate::peer::Event::Pong).
    pub fn ping(&mut self, now: Instant) -> bool {
        let _ = now;
        let negotiated = self.state.negotiated(0);
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
        if self.queue_message(&Message::Ping(nonce)).is_err() {
            return false;
        }
        self.ping_queued = Some(nonce);
        true
    }

    /// The trickle tick, by the state's rule ([`ProtocolState::flush_trickle`]): what does not
    /// fit a full queue goes back for a later tick.
    ///
    /// [`ProtocolState::flush_trickle`]: crate::peer::ProtocolState::flush_trickle
    pub(super) fn flush_trickle(&mut self, now: Instant) {
        let retry = self.config.trickle_mean.max(Duration::from_millis(100));
        let queue = &mut self.queue;
        self.state.flush_trickle(now, retry, |m| queue.push(&m).is_ok());
    }

    /// A message taken for writing: the clocks that wait on it start (a ping's round trip, a
    /// request's stall deadline) before its bytes can reach the remote, so an answer never comes
    /// before its question was counted.
    fn taking(&mut self, command: Command, payload: &[u8], now: Instant) {
        if let Some(l) = self.state.liveness.as_mut() {
            l.sent(&self.config.timeouts, command, payload, now);
        }
        if command == Command::PING {
            if let Some(nonce) = payload.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                self.ping_queued = None;
                self.state.ping_sent(u64::from_le_bytes(nonce), now);
            }
        }
    }

    /// The next message to write, for a core driven with frames (encoding it is the caller's):
    /// take them all, write them, then wait. It counts as written when taken.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Message> {
        if let Some(message) = self.control.pop_front() {
            let mut payload = BytesMut::new();
            let wire =
                message.encode_payload(&mut payload).map_or(HEADER_LEN, |()| payload.len().saturating_add(HEADER_LEN));
            self.state.traffic.sent(message.command(), wire);
            return Some(message);
        }
        if !self.established {
            return None;
        }
        loop {
            let item = self.queue.pop()?;
            self.taking(item.command, &item.payload, now);
            let size = item.payload.len().saturating_add(HEADER_LEN);
            self.state.traffic.sent(item.command, size);
            self.progress.written = self.progress.written.max(item.seq);
            self.queue.written(size);
            // Our own encoding decodes; anything else is not sent.
            if let Ok(message) = Message::decode(item.command, item.payload) {
                return Some(message);
            }
        }
    }

    /// Takes what is to be written next, framed, into `out`, until it holds about `max` bytes:
    /// the transport's own bytes, the handshake's messages, then (once the handshake is done) the
    /// queue's. A v1 payload of at least `direct` bytes ends the batch: its header is in `out`
    /// and the payload is returned, to be written after `out` without a copy. Report the batch
    /// written with [`transmitted`](PeerCore::transmitted). Only for a core driven with bytes
    /// ([`PeerCore::framed`]); see [`poll_transmit_bytes`](PeerCore::poll_transmit_bytes) for
    /// a driver that writes everything at once.
    pub fn poll_transmit_batch(
        &mut self,
        now: Instant,
        max: usize,
        out: &mut BytesMut,
        direct: usize,
    ) -> Option<Bytes> {
        let start = out.len();
        let framing = self.framing.as_mut()?;
        framing.take_output(out);
        if !framing.is_ready() {
            return None;
        }
        if !self.control.is_empty() || (self.established && !self.queue.is_empty()) {
            // Only when something is taken: a connection that finds nothing keeps no buffer.
            super::framed::unpark_inflight(&mut self.inflight);
        }
        let mut scratch = BytesMut::new();
        while let Some(message) = self.control.pop_front() {
            scratch.clear();
            // Our own handshake messages encode.
            if message.encode_payload(&mut scratch).is_err() {
                continue;
            }
            let command = message.command();
            let Some(wire) = self.framing.as_mut().and_then(|f| f.encode(command, &scratch, None, out)) else { break };
            let payload = scratch.split().freeze();
            self.inflight.push_back(Inflight { seq: 0, command, wire, size: 0, payload });
        }
        if !self.established || self.ended {
            return None;
        }
        while out.len().saturating_sub(start) < max {
            let Some(Outgoing { command, payload, checksum, seq }) = self.queue.pop() else { break };
            self.taking(command, &payload, now);
            let size = payload.len().saturating_add(HEADER_LEN);
            let framing = self.framing.as_mut()?;
            if payload.len() >= direct {
                if let Some(wire) = framing.encode_v1_header(command, &payload, checksum, out) {
                    self.inflight.push_back(Inflight { seq, command, wire, size, payload: payload.clone() });
                    return Some(payload);
                }
            }
            let wire = framing.encode(command, &payload, checksum, out).unwrap_or(size);
            self.inflight.push_back(Inflight { seq, command, wire, size, payload });
        }
        None
    }

    /// Everything taken by [`poll_transmit_batch`](PeerCore::poll_transmit_batch) was written:
    /// it is counted in the statistics, `each` sees each message's command, size on the wire and
    /// payload, and [`progress`](PeerCore::progress) reports them written.
    pub fn transmitted(&mut self, mut each: impl FnMut(Command, usize, &Bytes)) {
        while let Some(item) = self.inflight.pop_front() {
            self.state.traffic.sent(item.command, item.wire);
            each(item.command, item.wire, &item.payload);
            if item.seq != 0 {
                self.progress.written = self.progress.written.max(item.seq);
                self.queue.written(item.size);
            }
        }
    }

    /// Appends everything to be written to `out` and returns how many bytes (the transport's
    /// handshake bytes, then every message once the transport is settled), counting it written:
    /// for a driver that writes it all before doing anything else.
    pub fn poll_transmit_bytes(&mut self, now: Instant, out: &mut BytesMut) -> usize {
        let start = out.len();
        if let Some(large) = self.poll_transmit_batch(now, usize::MAX, out, usize::MAX) {
            out.extend_from_slice(&large);
        }
        self.transmitted(|_, _, _| {});
        out.len().saturating_sub(start)
    }
}
