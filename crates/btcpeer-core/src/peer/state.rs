//! [`ProtocolState`]: one connection's protocol state (documented on the type).

use std::time::{Duration, Instant};

use super::RemoteInfo;
use super::inventory::{KnownInventory, Pending, TrickleQueue};
use super::liveness::{Liveness, Timeouts};
use super::reason::{DisconnectReason, Violation};
use super::rules::{BloomPolicy, Preferences, Rule, classify, learn_inventory};
use super::stats::Traffic;
use crate::wire::version::is_defined;
use crate::wire::{Command, Inventory, Message, PayloadError};

/// The first locator hash and the stop hash of a `getblocks` or `getheaders`.
type LocatorKey = (Option<bitcoin::BlockHash>, bitcoin::BlockHash);

/// [`ProtocolState`]: what one connection's protocol knows and owes after the handshake, and the
/// compound operations on it. [`PeerCore`](super::PeerCore) owns one (every driver runs a
/// `PeerCore`: `btcpeer`'s tokio `Peer` keeps its core under the peer's one lock, as `quinn`
/// keeps `quinn-proto`'s `Connection`), so that each compound step (check what the remote knows,
/// mark it, queue the announcement) happens in one critical section. Drivers and applications
/// read it through its accessors ([`PeerCore::state`](super::PeerCore::state)); its fields are
/// the core's own.
#[derive(Debug)]
pub struct ProtocolState {
    /// What the remote knows.
    pub(crate) known: KnownInventory,
    /// Announcements waiting for the trickle tick.
    pub(crate) trickle: TrickleQueue,
    /// Deadlines, from the end of the handshake.
    pub(crate) liveness: Option<Liveness>,
    /// What the handshake learned, once the remote's version is in.
    pub(crate) remote: Option<RemoteInfo>,
    /// The remote's preferences.
    pub(crate) prefs: Preferences,
    /// The remote's relay flag, then switched on by `filterload` / `filterclear` (BIP37).
    pub(crate) relay: bool,
    /// Announcements refused (transactions to a remote that wants none, or of the wrong id kind).
    pub(crate) refused_announcements: u64,
    /// Messages of commands we do not know.
    pub(crate) unknown_received: u64,
    /// Messages ignored, as Core ignores them.
    pub(crate) ignored_received: u64,
    /// Our ping in flight: its nonce and when it was written.
    pub(crate) ping_outstanding: Option<(u64, Instant)>,
    /// The last round trip.
    pub(crate) last_rtt: Option<Duration>,
    /// The smallest round trip.
    pub(crate) min_rtt: Option<Duration>,
    /// The last block the remote announced (`inv` or `headers`), as btcd's sync manager tracks it.
    pub(crate) last_announced_block: Option<bitcoin::BlockHash>,
    /// Bytes and messages each way, per command, and frames dropped unread.
    pub(crate) traffic: Traffic,
    /// The last `getblocks` and `getheaders` sent (first locator hash, stop hash).
    /// Boxed on first use: most connections never send either.
    last_locators: Option<Box<[Option<LocatorKey>; 2]>>,
}

/// What [`ProtocolState::locator_request`] replaced, to put back if the request could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LocatorUndo {
    slot: usize,
    key: LocatorKey,
    previous: Option<LocatorKey>,
}

/// What became of an announcement ([`PeerCore::announce_at`](crate::peer::PeerCore::announce_at)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Announced {
    /// Waiting for the tick; `scheduled` when this announcement scheduled it (tell the timer).
    Queued {
        /// This announcement scheduled the tick.
        scheduled: bool,
    },
    /// A transaction to a remote that asked for none: refused and counted.
    NotWanted,
    /// The remote knows it already.
    Known,
    /// Too many announcements are waiting.
    Full,
}

impl ProtocolState {
    /// What the remote is known to have (it announced or sent it, or we announced it): the
    /// application may add to it and take from it.
    pub fn known(&mut self) -> &mut KnownInventory {
        &mut self.known
    }

    /// What the handshake learned, once the remote's version is in.
    pub fn remote(&self) -> Option<&RemoteInfo> {
        self.remote.as_ref()
    }

    /// The remote's preferences.
    pub fn prefs(&self) -> Preferences {
        self.prefs
    }

    /// Whether the remote wants transaction announcements: its version's relay flag, then
    /// switched on by `filterload` / `filterclear` (BIP37).
    pub fn relay(&self) -> bool {
        self.relay
    }

    /// Announcements refused (transactions to a remote that wants none, or of the wrong id kind).
    pub fn refused_announcements(&self) -> u64 {
        self.refused_announcements
    }

    /// An announcement the driver refused before it reached the state (counted with the rest).
    pub fn refuse_announcement(&mut self) {
        self.refused_announcements = self.refused_announcements.saturating_add(1);
    }

    /// Messages of commands we do not know.
    pub fn unknown_received(&self) -> u64 {
        self.unknown_received
    }

    /// Messages ignored, as Core ignores them.
    pub fn ignored_received(&self) -> u64 {
        self.ignored_received
    }

    /// Our ping in flight: its nonce and when it was taken for writing.
    pub fn ping_outstanding(&self) -> Option<(u64, Instant)> {
        self.ping_outstanding
    }

    /// The last and the smallest round trip.
    pub fn rtts(&self) -> (Option<Duration>, Option<Duration>) {
        (self.last_rtt, self.min_rtt)
    }

    /// The last block the remote announced (`inv` or `headers`), as btcd's sync manager tracks it.
    pub fn last_announced_block(&self) -> Option<bitcoin::BlockHash> {
        self.last_announced_block
    }

    /// Records a block the remote is known to have (learnt by other means).
    pub fn set_last_announced_block(&mut self, hash: bitcoin::BlockHash) {
        self.last_announced_block = Some(hash);
    }

    /// Bytes and messages each way, per command, and frames dropped unread.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// Requests waiting for an answer under a stall deadline.
    pub fn pending_requests(&self) -> usize {
        self.liveness.as_ref().map_or(0, Liveness::pending_requests)
    }

    /// Announcements waiting for the trickle tick, and those dropped because too many waited.
    pub fn pending_announcements(&self) -> (usize, u64) {
        (self.trickle.len(), self.trickle.dropped())
    }
    /// A fresh state remembering up to `known_capacity` items, with up to `trickle_limit`
    /// announcements waiting.
    pub(crate) fn new(known_capacity: usize, trickle_limit: usize) -> Self {
        ProtocolState {
            known: KnownInventory::new(known_capacity),
            trickle: TrickleQueue::new(trickle_limit),
            liveness: None,
            remote: None,
            prefs: Preferences::default(),
            relay: true,
            refused_announcements: 0,
            unknown_received: 0,
            ignored_received: 0,
            ping_outstanding: None,
            last_rtt: None,
            min_rtt: None,
            last_announced_block: None,
            traffic: Traffic::default(),
            last_locators: None,
        }
    }

    /// Frames ignored or dropped so far: what the misbehaviour limit counts.
    pub(crate) fn misbehaviour(&self) -> u64 {
        self.ignored_received.saturating_add(self.traffic.dropped_frames())
    }

    /// The misbehaviour limit (`None`: none, as Core, which only logs such frames): the end once
    /// more frames than `limit` were ignored or dropped.
    pub(crate) fn check_misbehaviour(&self, limit: Option<u64>) -> Result<(), DisconnectReason> {
        let count = self.misbehaviour();
        match limit {
            Some(limit) if count > limit => Err(DisconnectReason::Protocol(Violation::TooManyIgnored { count })),
            _ => Ok(()),
        }
    }

    /// A `getblocks` or `getheaders` (`command`) with this first locator hash and stop hash is about
    /// to be queued: `None` when it repeats the previous one of its kind, which is then not sent
    /// (btcd's `PushGetBlocksMsg` / `PushGetHeadersMsg` filter; an empty locator is never taken for
    /// a repeat). Otherwise it is recorded, and the returned undo puts the previous one back if
    /// queueing fails, so that a retry is not taken for a duplicate.
    pub(crate) fn locator_request(
        &mut self,
        command: Command,
        first: Option<bitcoin::BlockHash>,
        stop: bitcoin::BlockHash,
    ) -> Option<LocatorUndo> {
        let slot = usize::from(command != Command::GETBLOCKS);
        let key = (first, stop);
        let last = self.last_locators.get_or_insert_with(|| Box::new([None, None])).get_mut(slot)?;
        if first.is_some() && *last == Some(key) {
            return None;
        }
        let previous = last.replace(key);
        Some(LocatorUndo { slot, key, previous })
    }

    /// The request [`ProtocolState::locator_request`] recorded could not be queued.
    pub(crate) fn locator_failed(&mut self, undo: LocatorUndo) {
        if let Some(last) = self.last_locators.as_mut().and_then(|l| l.get_mut(undo.slot)) {
            if *last == Some(undo.key) {
                *last = undo.previous;
            }
        }
    }

    /// The negotiated version (`ours` until the remote's version is in).
    pub fn negotiated(&self, ours: u32) -> u32 {
        self.remote.as_ref().map_or(ours, |r| r.negotiated_version)
    }

    /// The remote's version arrived: its details and relay flag are recorded.
    pub(crate) fn version_received(&mut self, info: &RemoteInfo) {
        self.relay = info.version.relay;
        self.remote = Some(info.clone());
    }

    /// The handshake completed at `now`: the deadlines start, and announcements queued before it
    /// go out at the first tick.
    pub(crate) fn handshake_complete(&mut self, info: RemoteInfo, timeouts: Timeouts, now: Instant) {
        let mut liveness = Liveness::new(now);
        liveness.handshake_complete(&timeouts, now);
        if !self.trickle.is_empty() {
            liveness.schedule_trickle(now, Duration::ZERO);
        }
        self.liveness = Some(liveness);
        self.remote = Some(info);
    }

    /// A frame was ignored.
    pub(crate) fn ignored(&mut self) {
        self.ignored_received = self.ignored_received.saturating_add(1);
    }

    /// A message after the handshake: the remote is alive and may have answered a request; what it
    /// announced or sent it knows; then the peer's own rule for it, with what the
    /// rule records (preferences, relay, a pong's round trip, an unknown command) applied here.
    /// Returns the rule and, for a pong answering our ping, its round trip.
    pub(crate) fn receive(
        &mut self,
        message: &Message,
        payload_len: usize,
        ours: u32,
        bloom: BloomPolicy,
        now: Instant,
    ) -> (Rule, Option<Duration>) {
        let negotiated = self.negotiated(ours);
        let command = message.command();
        if let Some(l) = self.liveness.as_mut() {
            l.received(command, now);
        }
        if is_defined(command, negotiated) {
            learn_inventory(message, &mut self.known);
            self.note_announcement(message);
        }
        let rule = classify(message, payload_len, negotiated, bloom, &mut self.prefs);
        let mut rtt = None;
        match &rule {
            Rule::Ignore => self.ignored(),
            Rule::Deliver(builtin) => {
                if let Some(nonce) = builtin.pong_received {
                    rtt = self.pong(nonce, now);
                }
                if builtin.relay_on {
                    self.relay = true;
                }
                if builtin.unknown {
                    self.unknown_received = self.unknown_received.saturating_add(1);
                }
            }
            _ => {}
        }
        (rule, rtt)
    }

    /// A block kept undecoded (a driver's raw-block mode), through the same rules as a decoded
    /// one: refused when decoding it would fail, else the remote is alive, answered a request,
    /// and knows the block. The check ([`check_block`](crate::wire::check_block), a walk of the
    /// whole payload) is the caller's to run first, outside any lock; `checked` is its result.
    pub(crate) fn receive_raw_block(
        &mut self,
        checked: Result<bitcoin::BlockHash, PayloadError>,
        now: Instant,
    ) -> Result<bitcoin::BlockHash, PayloadError> {
        let hash = checked?;
        if let Some(l) = self.liveness.as_mut() {
            l.received(Command::BLOCK, now);
        }
        self.known.insert(&Inventory::Block(hash));
        Ok(hash)
    }

    /// Keeps the last block the remote announced up to date.
    fn note_announcement(&mut self, message: &Message) {
        let announced = match message {
            Message::Inv(items) => items.iter().rev().find_map(|i| match i {
                Inventory::Block(h) | Inventory::WitnessBlock(h) => Some(*h),
                _ => None,
            }),
            Message::Headers(headers) => headers.last().map(|h| h.block_hash()),
            _ => None,
        };
        if announced.is_some() {
            self.last_announced_block = announced;
        }
    }

    /// Our ping with `nonce` was written at `now`.
    pub(crate) fn ping_sent(&mut self, nonce: u64, now: Instant) {
        self.ping_outstanding = Some((nonce, now));
    }

    /// A pong arrived: if it answers the outstanding ping, the round trip is recorded and returned.
    pub(crate) fn pong(&mut self, nonce: u64, now: Instant) -> Option<Duration> {
        match self.ping_outstanding {
            Some((n, sent)) if n == nonce => {
                let rtt = now.saturating_duration_since(sent);
                self.ping_outstanding = None;
                self.last_rtt = Some(rtt);
                self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
                if let Some(l) = self.liveness.as_mut() {
                    l.pong();
                }
                Some(rtt)
            }
            _ => None,
        }
    }

    /// A block announcement: true (and marked known) unless the remote knows it. Checked and marked
    /// in one step, so two callers cannot both announce it; [`KnownInventory::remove`] gives it
    /// back if it could not be queued.
    pub(crate) fn announce_block(&mut self, inv: &Inventory) -> bool {
        let fresh = !self.known.contains(inv);
        if fresh {
            self.known.insert(inv);
        }
        fresh
    }

    /// Announces a block at once unless the remote knows it: checked and marked in one step (so
    /// two callers cannot both announce it), then handed to `queue` as an `inv`; if `queue`
    /// refuses it (a full outbound queue) the mark is given back, so that a retry is sent. `Ok(false)`:
    /// the remote knows it.
    pub(crate) fn announce_block_with<E>(
        &mut self,
        inv: &Inventory,
        queue: impl FnOnce(Message) -> Result<(), E>,
    ) -> Result<bool, E> {
        if !self.announce_block(inv) {
            return Ok(false);
        }
        match queue(Message::Inv(vec![*inv])) {
            Ok(()) => Ok(true),
            Err(e) => {
                self.known.remove(inv);
                Err(e)
            }
        }
    }

    /// The trickle tick: everything waiting goes to `queue` in `inv` messages of at most 1,000
    /// entries, until `queue` refuses one (a full outbound queue); what did not fit goes back for
    /// a tick `retry` from `now` (still marked known: it will be sent). Transactions the remote
    /// must not get are left out and counted ([`take_trickle`](ProtocolState::take_trickle)).
    pub(crate) fn flush_trickle(&mut self, now: Instant, retry: Duration, mut queue: impl FnMut(Message) -> bool) {
        let (kept, items) = self.take_trickle();
        let mut done: usize = 0;
        for batch in super::inventory::inv_batches(&items) {
            let n = batch.len();
            if !queue(Message::Inv(batch)) {
                break;
            }
            done = done.saturating_add(n);
        }
        if let Some(rest) = kept.get(done..).filter(|r| !r.is_empty()) {
            self.requeue(rest, now, retry);
        }
    }

    /// Queues an announcement for the trickle tick unless the remote knows it or wants no
    /// transactions, marking it known at once so that a second request before the tick is not a
    /// duplicate. The first item waiting schedules the tick after `delay()` (the caller's Poisson
    /// delay, or a node-wide instant for inbound peers as Core's `NextInvToInbounds`).
    pub(crate) fn announce(&mut self, item: Pending, now: Instant, delay: impl FnOnce() -> Duration) -> Announced {
        if item.is_transaction() && !self.relay {
            // Core disconnects a block-relay-only peer that announces a transaction to it.
            self.refused_announcements = self.refused_announcements.saturating_add(1);
            return Announced::NotWanted;
        }
        let keys = item.keys();
        if keys.iter().flatten().any(|k| self.known.contains_key(k)) {
            return Announced::Known;
        }
        if !self.trickle.push(item) {
            return Announced::Full;
        }
        for k in keys.into_iter().flatten() {
            self.known.insert_key(k);
        }
        let mut scheduled = false;
        if let Some(l) = self.liveness.as_mut().filter(|l| !l.trickle_scheduled()) {
            l.schedule_trickle(now, delay());
            scheduled = true;
        }
        Announced::Queued { scheduled }
    }

    /// Takes everything waiting for the tick: the items that may go out and their inventory
    /// entries. Transactions the remote must not get (it asked for none, or they are named by the
    /// kind of id the negotiation excludes) are left out, counted, and forgotten as known.
    pub(crate) fn take_trickle(&mut self) -> (Vec<Pending>, Vec<Inventory>) {
        let wtxid_relay = self.remote.as_ref().is_some_and(|r| r.wtxid_relay);
        let items = self.trickle.take();
        let mut kept = Vec::with_capacity(items.len());
        let mut announce = Vec::with_capacity(items.len());
        for item in items {
            match item.announce(wtxid_relay, self.relay) {
                Some(inv) => {
                    kept.push(item);
                    announce.push(inv);
                }
                None => {
                    self.refused_announcements = self.refused_announcements.saturating_add(1);
                    // Never announced, so the remote does not know it.
                    for key in item.keys().into_iter().flatten() {
                        self.known.remove_key(&key);
                    }
                }
            }
        }
        (kept, announce)
    }

    /// Items that could not be queued go back for a tick after `delay`.
    pub(crate) fn requeue(&mut self, rest: &[Pending], now: Instant, delay: Duration) {
        for item in rest {
            self.trickle.push(*item);
        }
        if let Some(l) = self.liveness.as_mut() {
            l.schedule_trickle(now, delay);
        }
    }
}
