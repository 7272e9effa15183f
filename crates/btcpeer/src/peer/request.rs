//! The requests in flight: what each waits for, and the matching of received messages to them.
//!
//! Each awaitable request ([`Peer::ping`](super::Peer::ping), [`Peer::get_block`](super::Peer::get_block)
//! …) registers what answers it; every message received after the handshake is offered here
//! before it reaches the application. A message that answers a request goes to that request only
//! (the handler or channel never sees it); everything else, an answer that came after its request
//! was dropped included, is delivered as usual.
//!
//! A request is registered and its message queued in one step under the peer's lock, so requests
//! are in the table in the order their messages go out: where several could take the same answer
//! (two `getheaders` from the same locator), the remote's answers, which come in the order asked
//! (Core processes one message of a peer at a time), go to them in that order.
//!
//! No answer is lost: a request's channel holds everything it can be given (a range of filters, up
//! to Core's `MAX_GETCFILTERS_SIZE`, each matched to its place by the filter hash the remote's
//! `cfheaders` gave for it or by the block hash the caller gave), so a consumer that is slow to
//! read is never bypassed. At most [`MAX_REQUESTS`] wait at once; more wait for a slot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::block::Header;
use bitcoin::hashes::Hash as _;
use bitcoin::p2p::address::AddrV2Message;
use bitcoin::p2p::message_filter::CFilter;
use bitcoin::{BlockHash, FilterHash, Txid, Wtxid};
use tokio::sync::{Notify, mpsc};

use super::Assoc;
use super::ask::RequestError;
use crate::wire::{Inventory, Message};

/// Requests waiting at once, at most; more wait for a slot.
pub(crate) const MAX_REQUESTS: usize = 1_024;
/// Answers waiting to be taken by one request whose answers are not counted in advance (addresses,
/// the `getdata`s of a broadcast): a remote that sends faster than the request reads gets the rest
/// delivered as unsolicited, never a growing queue.
const MAX_WAITING_ANSWERS: usize = 32;
/// Filters one `getcfilters` is answered with, at most (Core: `MAX_GETCFILTERS_SIZE`).
pub(crate) const MAX_CFILTERS: usize = 1_000;
/// Filter bytes one `getcfilters` request holds at most. A range of 1,000 filters of up to a whole
/// message each could otherwise hold 4 GB that the remote chose; an honest mainnet range is tens of
/// MB (a basic filter averages tens of KB). Past it the request ends with an invalid answer, and the
/// caller can ask a shorter range.
pub(crate) const MAX_CFILTER_RANGE_BYTES: usize = 256 << 20;
/// Filter hashes one `getcfheaders` is answered with, at most (Core: `MAX_GETCFHEADERS_SIZE`).
pub(crate) const MAX_CFHEADERS: usize = 2_000;
/// Headers one `getheaders` is answered with, at most (Core: `MAX_HEADERS_RESULTS`).
pub(crate) const MAX_HEADERS: usize = 2_000;

/// What a request waits for.
#[derive(Debug, Clone)]
pub(crate) enum Want {
    /// The pong with this nonce.
    Pong(u64),
    /// A `headers` answering a `getheaders` with this locator and stop.
    Headers {
        locator: Vec<BlockHash>,
        stop: BlockHash,
        /// The network's genesis block: a remote that knows none of the locator starts after it
        /// (Core: `FindForkInGlobalIndex` falls back to the genesis block).
        genesis: Option<BlockHash>,
    },
    /// This block (or a `notfound` for it).
    Block(BlockHash),
    /// This transaction, by txid or wtxid (or a `notfound` for it).
    Tx([u8; 32]),
    /// The `merkleblock` of this block (or a `notfound` for it).
    MerkleBlock(BlockHash),
    /// `cfilter`s of this type, `expected` in that order, the last the block `stop`'s; `next` is
    /// the position of the next one; `held` the filter bytes given so far (at most
    /// [`MAX_CFILTER_RANGE_BYTES`]).
    CFilters { filter_type: u8, stop: BlockHash, expected: Range, next: usize, held: usize },
    /// The `cfheaders` ending at `stop`.
    CFHeaders { filter_type: u8, stop: BlockHash },
    /// The `cfcheckpt` ending at `stop`.
    CFCheckpt { filter_type: u8, stop: BlockHash },
    /// Addresses (`addr` or `addrv2`), until the request has enough.
    Addr,
    /// The `getdata` for a transaction we announced, then a `reject` of it.
    Broadcast { txid: Txid, wtxid: Wtxid },
}

/// What each filter of a range is known by, in order.
#[derive(Debug, Clone)]
pub(crate) enum Range {
    /// Its hash (the remote's `cfheaders` for the range).
    Hashes(Vec<FilterHash>),
    /// Its block (the caller's headers).
    Blocks(Vec<BlockHash>),
}

impl Range {
    pub(crate) fn len(&self) -> usize {
        match self {
            Range::Hashes(h) => h.len(),
            Range::Blocks(b) => b.len(),
        }
    }

    /// Whether the filter of `block` whose hash is `hash` is the one at `at`.
    fn is_at(&self, at: usize, block: &BlockHash, hash: Option<&FilterHash>) -> bool {
        match self {
            Range::Hashes(h) => hash.is_some() && h.get(at) == hash,
            Range::Blocks(b) => b.get(at) == Some(block),
        }
    }

    /// Whether the filter of `block` belongs after `at` (then the ones before it were left out).
    fn is_after(&self, at: usize, block: &BlockHash) -> bool {
        match self {
            Range::Hashes(_) => false,
            Range::Blocks(b) => b.get(at.saturating_add(1)..).is_some_and(|rest| rest.contains(block)),
        }
    }
}

impl Want {
    /// Answers the request's channel must hold so that none is ever handed back for want of room.
    fn capacity(&self) -> usize {
        match self {
            Want::CFilters { expected, .. } => expected.len().clamp(1, MAX_CFILTERS),
            Want::Addr | Want::Broadcast { .. } => MAX_WAITING_ANSWERS,
            // One answer, then the request is forgotten.
            _ => 1,
        }
    }
}

/// What a request is given.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The answering message.
    Message(Message),
    /// The remote's pong, with the round trip measured from when the ping was written (when the
    /// writer recorded it).
    Pong(Option<Duration>),
    /// The remote said `notfound`.
    NotFound,
    /// Addresses (`addr` entries converted).
    Addrs(Vec<AddrV2Message>),
    /// The remote asked for the broadcast transaction with this inventory kind.
    Requested(Inventory),
    /// The remote's answer cannot be right (why); the request is over.
    Invalid(&'static str),
}

#[derive(Debug)]
struct Entry {
    id: u64,
    want: Want,
    tx: mpsc::Sender<Answer>,
}

/// The requests in flight, in the order their messages were queued.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    next_id: u64,
    entries: Vec<Entry>,
    /// Wakes callers waiting for a slot (made when the first has to wait).
    slots: Option<Arc<Notify>>,
}

impl InFlight {
    /// Registers a request; `None` when [`MAX_REQUESTS`] already wait.
    fn add(&mut self, want: Want) -> Option<(u64, mpsc::Receiver<Answer>)> {
        if self.entries.len() >= MAX_REQUESTS {
            return None;
        }
        let (tx, rx) = mpsc::channel(want.capacity());
        self.next_id = self.next_id.wrapping_add(1);
        self.entries.push(Entry { id: self.next_id, want, tx });
        Some((self.next_id, rx))
    }

    /// Whether a slot is free.
    fn has_slot(&self) -> bool {
        self.entries.len() < MAX_REQUESTS
    }

    /// The wake-up of callers waiting for a slot.
    fn slot_waiters(&mut self) -> Arc<Notify> {
        Arc::clone(self.slots.get_or_insert_with(Arc::default))
    }

    fn freed(&self) {
        if let Some(n) = &self.slots {
            n.notify_one();
        }
    }

    /// Forgets a request (done, or its future dropped).
    pub(crate) fn remove(&mut self, id: u64) {
        let before = self.entries.len();
        self.entries.retain(|e| e.id != id);
        if self.entries.len() < before {
            self.freed();
        }
    }

    fn remove_at(&mut self, i: usize) {
        if i < self.entries.len() {
            self.entries.remove(i);
            self.freed();
        }
    }

    /// Forgets every request: their receivers end, and they report the disconnect; callers waiting
    /// for a slot look again (and find the peer ended).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        if let Some(n) = &self.slots {
            n.notify_waiters();
        }
    }

    /// Requests waiting.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no request waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gives `answer` to the oldest request `matches` accepts (`None`), `once` requests being then
    /// forgotten; or hands it back (`Some`) when none takes it.
    fn give(&mut self, matches: impl Fn(&Want) -> bool, once: bool, answer: Answer) -> Option<Answer> {
        match self.entries.iter().position(|e| matches(&e.want)) {
            Some(i) => self.give_at(i, once, answer),
            None => Some(answer),
        }
    }

    /// Gives `answer` to the request at `i` (see [`InFlight::give`]).
    fn give_at(&mut self, i: usize, once: bool, answer: Answer) -> Option<Answer> {
        let Some(entry) = self.entries.get_mut(i) else { return Some(answer) };
        let (back, gone) = match entry.tx.try_send(answer) {
            Ok(()) => (None, false),
            // Only requests of uncounted answers (addresses, a broadcast's getdatas) can be full:
            // what they do not hold is unsolicited after all.
            Err(mpsc::error::TrySendError::Full(a)) => (Some(a), false),
            // Its future is gone.
            Err(mpsc::error::TrySendError::Closed(a)) => (Some(a), true),
        };
        if once && back.is_none() || gone {
            self.remove_at(i);
        }
        back
    }

    /// A filter goes to the request whose next expected filter it is (its type, and its hash the
    /// one the remote's `cfheaders` gave for that position): never to a request it cannot belong
    /// to, and a request is complete only with every filter of its range, in order. The stop
    /// block's filter where a range still waits for others (a filter left out), or in the last
    /// place a filter that is not the stop block's, ends that request with an error at once.
    fn give_filter(&mut self, filter: CFilter) -> Option<Message> {
        let ranges = || {
            self.entries.iter().filter_map(|e| match &e.want {
                Want::CFilters { expected, .. } => Some(expected),
                _ => None,
            })
        };
        if ranges().next().is_none() {
            return Some(Message::CFilter(filter));
        }
        // Hashed only when a range is known by its hashes.
        let hash = ranges().any(|r| matches!(r, Range::Hashes(_))).then(|| FilterHash::hash(&filter.filter));
        let (t, block) = (filter.filter_type, filter.block_hash);
        let next_of = |w: &Want| matches!(w, Want::CFilters { filter_type, expected, next, .. } if *filter_type == t && expected.is_at(*next, &block, hash.as_ref()));
        let Some(i) = self.entries.iter().position(|e| next_of(&e.want)) else {
            // The filter of the stop block, or of a later block of the range, for a range still
            // short of it: a filter was left out.
            let short = |w: &Want| matches!(w, Want::CFilters { filter_type, stop, expected, next, .. } if *filter_type == t && (*stop == block || expected.is_after(*next, &block)));
            if let Some(i) = self.entries.iter().position(|e| short(&e.want)) {
                self.fail(i, "a filter of the range was left out");
            }
            return Some(Message::CFilter(filter));
        };
        let Some(Entry { want: Want::CFilters { stop, expected, next, held, .. }, tx, .. }) = self.entries.get_mut(i)
        else {
            return Some(Message::CFilter(filter));
        };
        let last = next.saturating_add(1) >= expected.len();
        if last && block != *stop {
            self.fail(i, "the range's last filter is not the stop block's");
            return Some(Message::CFilter(filter));
        }
        *held = held.saturating_add(filter.filter.len());
        if *held > MAX_CFILTER_RANGE_BYTES {
            self.fail(i, "the range's filters exceed 256 MiB (ask a shorter range)");
            return Some(Message::CFilter(filter));
        }
        match tx.try_send(Answer::Message(Message::CFilter(filter))) {
            Ok(()) => {
                *next = next.saturating_add(1);
                if last {
                    self.remove_at(i);
                }
                None
            }
            // The channel holds the whole range: full cannot happen; closed: the request is gone.
            Err(mpsc::error::TrySendError::Full(a) | mpsc::error::TrySendError::Closed(a)) => {
                self.remove_at(i);
                match a {
                    Answer::Message(m) => Some(m),
                    _ => None,
                }
            }
        }
    }

    /// Ends the request at `i` with an invalid answer (it has room: it was given fewer answers
    /// than its channel holds).
    fn fail(&mut self, i: usize, why: &'static str) {
        if let Some(e) = self.entries.get(i) {
            let _ = e.tx.try_send(Answer::Invalid(why));
        }
        self.remove_at(i);
    }

    /// Offers a received message to the requests: `None` when one took it, else the message (or
    /// what is left of it: a `notfound` or `getdata` some of whose entries answered requests).
    /// `rtt` is the writer's round trip for a pong.
    pub(crate) fn offer(&mut self, message: Message, rtt: Option<Duration>) -> Option<Message> {
        if self.entries.is_empty() {
            return Some(message);
        }
        let back = |a: Answer| match a {
            Answer::Message(m) => Some(m),
            _ => None,
        };
        match message {
            Message::Pong(nonce) => self
                .give(|w| matches!(w, Want::Pong(n) if *n == nonce), true, Answer::Pong(rtt))
                .map(|_| Message::Pong(nonce)),
            Message::Headers(headers) => {
                let i = self.entries.iter().position(|e| {
                    matches!(&e.want, Want::Headers { locator, stop, genesis } if answers_getheaders(&headers, locator, *stop, *genesis))
                });
                match i {
                    Some(i) => self.give_at(i, true, Answer::Message(Message::Headers(headers))).and_then(back),
                    None => Some(Message::Headers(headers)),
                }
            }
            Message::Block(block) => {
                let hash = block.block_hash();
                self.give(|w| matches!(w, Want::Block(h) if *h == hash), true, Answer::Message(Message::Block(block)))
                    .and_then(back)
            }
            Message::Tx(tx) => {
                let (txid, wtxid) = (tx.compute_txid().to_byte_array(), tx.compute_wtxid().to_byte_array());
                self.give(
                    |w| matches!(w, Want::Tx(id) if *id == txid || *id == wtxid),
                    true,
                    Answer::Message(Message::Tx(tx)),
                )
                .and_then(back)
            }
            Message::MerkleBlock(m) => {
                let hash = m.header.block_hash();
                self.give(
                    |w| matches!(w, Want::MerkleBlock(h) if *h == hash),
                    true,
                    Answer::Message(Message::MerkleBlock(m)),
                )
                .and_then(back)
            }
            Message::CFilter(f) => self.give_filter(f),
            Message::CFHeaders(h) => {
                let (t, stop) = (h.filter_type, h.stop_hash);
                self.give(
                    |w| matches!(w, Want::CFHeaders { filter_type, stop: s } if *filter_type == t && *s == stop),
                    true,
                    Answer::Message(Message::CFHeaders(h)),
                )
                .and_then(back)
            }
            Message::CFCheckpt(c) => {
                let (t, stop) = (c.filter_type, c.stop_hash);
                self.give(
                    |w| matches!(w, Want::CFCheckpt { filter_type, stop: s } if *filter_type == t && *s == stop),
                    true,
                    Answer::Message(Message::CFCheckpt(c)),
                )
                .and_then(back)
            }
            // A single address is an announcement, not an answer: Core announces its own address
            // alone (`MaybeSendAddr`, `m_next_local_addr_send`) and relays unsolicited addresses
            // from messages of at most 10 (`ProcessMessage`, `ADDR`: `vAddr.size() <= 10`).
            Message::AddrV2(addrs) if addrs.len() <= 1 => Some(Message::AddrV2(addrs)),
            Message::Addr(addrs) if addrs.len() <= 1 => Some(Message::Addr(addrs)),
            Message::AddrV2(addrs) => {
                self.give(|w| matches!(w, Want::Addr), false, Answer::Addrs(addrs)).and_then(|a| match a {
                    Answer::Addrs(a) => Some(Message::AddrV2(a)),
                    _ => None,
                })
            }
            Message::Addr(addrs) => {
                if !self.entries.iter().any(|e| matches!(e.want, Want::Addr)) {
                    return Some(Message::Addr(addrs));
                }
                let converted = addrs.iter().filter_map(|(time, a)| to_addrv2(*time, a)).collect();
                self.give(|w| matches!(w, Want::Addr), false, Answer::Addrs(converted)).map(|_| Message::Addr(addrs))
            }
            Message::NotFound(items) => {
                let rest: Vec<Inventory> = items
                    .into_iter()
                    .filter(|inv| self.give(|w| answers(w, inv), true, Answer::NotFound).is_some())
                    .collect();
                (!rest.is_empty()).then_some(Message::NotFound(rest))
            }
            Message::GetData(items) => {
                let rest: Vec<Inventory> = items
                    .into_iter()
                    .filter(|inv| {
                        let ours =
                            |w: &Want| matches!(w, Want::Broadcast { txid, wtxid } if broadcast_item(inv, txid, wtxid));
                        self.give(ours, false, Answer::Requested(*inv)).is_some()
                    })
                    .collect();
                (!rest.is_empty()).then_some(Message::GetData(rest))
            }
            Message::Reject(r) => {
                let hash = r.hash;
                let ours = |w: &Want| matches!(w, Want::Broadcast { txid, .. } if r.message == "tx" && hash == Some(txid.to_byte_array()));
                if self.entries.iter().any(|e| ours(&e.want)) {
                    self.give(ours, true, Answer::Message(Message::Reject(r.clone()))).and_then(back)
                } else {
                    Some(Message::Reject(r))
                }
            }
            other => Some(other),
        }
    }
}

/// Whether `headers` can be the answer to a `getheaders` of `locator` and `stop`: nothing (the
/// remote has nothing after the locator); the one header `stop` for an empty locator (Core:
/// `ProcessMessage`, `GETHEADERS`, "If locator is null, return the hashStop block"); else headers
/// that start right after a block of the locator, or after the genesis block when the remote knows
/// none of it (`FindForkInGlobalIndex`). An announcement of new blocks that does not start on the
/// locator is not an answer.
fn answers_getheaders(headers: &[Header], locator: &[BlockHash], stop: BlockHash, genesis: Option<BlockHash>) -> bool {
    let Some(first) = headers.first() else { return true };
    if locator.is_empty() {
        return headers.len() == 1 && first.block_hash() == stop;
    }
    locator.contains(&first.prev_blockhash) || genesis == Some(first.prev_blockhash)
}

/// Whether a `notfound` entry answers a request.
fn answers(want: &Want, inv: &Inventory) -> bool {
    match (want, inv) {
        (Want::Block(h), Inventory::Block(b) | Inventory::WitnessBlock(b)) => h == b,
        (Want::MerkleBlock(h), Inventory::FilteredBlock(b) | Inventory::FilteredWitnessBlock(b)) => h == b,
        (Want::Tx(id), Inventory::Tx(t) | Inventory::WitnessTx(t)) => *id == t.to_byte_array(),
        (Want::Tx(id), Inventory::WTx(w)) => *id == w.to_byte_array(),
        _ => false,
    }
}

/// Whether a `getdata` entry asks for the broadcast transaction.
fn broadcast_item(inv: &Inventory, txid: &Txid, wtxid: &Wtxid) -> bool {
    match inv {
        Inventory::Tx(t) | Inventory::WitnessTx(t) => t == txid,
        Inventory::WTx(w) => w == wtxid,
        _ => false,
    }
}

/// An `addr` entry as an `addrv2` one.
fn to_addrv2(time: u32, addr: &bitcoin::p2p::Address) -> Option<AddrV2Message> {
    use bitcoin::p2p::address::AddrV2;
    let socket = addr.socket_addr().ok()?;
    let addr_v2 = match socket.ip() {
        std::net::IpAddr::V4(ip) => AddrV2::Ipv4(ip),
        std::net::IpAddr::V6(ip) => AddrV2::Ipv6(ip),
    };
    Some(AddrV2Message { time, services: addr.services, addr: addr_v2, port: socket.port() })
}

/// A request's registration, forgotten when dropped (a cancelled request leaves nothing behind).
pub(crate) struct Registration<'a> {
    pub(crate) peer: &'a super::Peer,
    pub(crate) id: u64,
    pub(crate) answers: mpsc::Receiver<Answer>,
    pub(crate) started: Instant,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.peer.forget_request(self.id);
    }
}

impl super::Peer {
    /// Registers a request and queues its `message` in one step (so that the table's order is the
    /// order sent), waiting for a slot while [`MAX_REQUESTS`] wait. Fails when the peer has ended or
    /// the message cannot be queued (then nothing stays registered).
    pub(crate) async fn register(
        &self,
        want: Want,
        message: Option<&Message>,
    ) -> Result<Registration<'_>, RequestError> {
        let mut want = Some(want);
        loop {
            let waiters = {
                let mut st = self.lock();
                if st.assoc == Assoc::Ended {
                    drop(st);
                    return Err(self.ended());
                }
                if st.requests.has_slot() {
                    let Some((id, answers)) = want.take().and_then(|w| st.requests.add(w)) else {
                        return Err(RequestError::NotSupported("a request registered twice"));
                    };
                    // Registered and queued under one lock: the answer cannot come first.
                    if let Some(message) = message {
                        if let Err(e) = st.core.queue_message(message) {
                            st.requests.remove(id);
                            return Err(RequestError::Queue(e));
                        }
                        drop(st);
                        self.shared.wake.notify_one();
                    }
                    return Ok(Registration { peer: self, id, answers, started: Instant::now() });
                }
                st.requests.slot_waiters()
            };
            // Registered as a waiter before looking again, so that a slot freed in between wakes it.
            let notified = waiters.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let still_full = {
                let st = self.lock();
                st.assoc != Assoc::Ended && !st.requests.has_slot()
            };
            if still_full {
                notified.await;
            }
        }
    }

    fn ended(&self) -> RequestError {
        RequestError::Disconnected(self.disconnect_reason().unwrap_or(super::DisconnectReason::LocalRequest))
    }

    pub(crate) fn forget_request(&self, id: u64) {
        self.lock().requests.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    #[test]
    fn a_filter_range_past_its_byte_budget_ends_with_an_invalid_answer_not_a_growing_hold() {
        let blocks: Vec<BlockHash> = (0..100u8).map(|i| BlockHash::from_byte_array([i; 32])).collect();
        let stop = blocks[99];
        let mut requests = InFlight::default();
        let want = Want::CFilters { filter_type: 0, stop, expected: Range::Blocks(blocks.clone()), next: 0, held: 0 };
        let (_, mut rx) = requests.add(want).expect("a slot");
        // Whole-message filters: the budget holds 64 of them, the 65th ends the request.
        let big = 4_000_000;
        let given = MAX_CFILTER_RANGE_BYTES / big;
        for (i, block_hash) in blocks.iter().enumerate().take(given + 1) {
            let f = CFilter { filter_type: 0, block_hash: *block_hash, filter: vec![0; big] };
            let back = requests.give_filter(f);
            assert_eq!(back.is_some(), i == given, "filter {i}");
        }
        assert_eq!(requests.len(), 0, "the request is over");
        let mut answers = 0;
        while let Ok(a) = rx.try_recv() {
            match a {
                Answer::Message(_) => answers += 1,
                Answer::Invalid(why) => {
                    assert!(why.contains("256 MiB"), "{why}");
                    assert_eq!(answers, given);
                    return;
                }
                other => panic!("{other:?}"),
            }
        }
        panic!("no invalid answer after {answers} filters");
    }
}
