//! The requests in flight: what each waits for, and the matching of received messages to them.
//!
//! Each awaitable request ([`Peer::ping`](super::Peer::ping), [`Peer::get_block`](super::Peer::get_block)
//! …) registers what answers it; every message received after the handshake is offered here
//! before it reaches the application. A message that answers a request goes to that request only
//! (the handler or channel never sees it); everything else, an answer that came after its request
//! was dropped included, is delivered as usual. At most [`MAX_REQUESTS`] wait at once.

use std::time::{Duration, Instant};

use bitcoin::p2p::address::AddrV2Message;
use bitcoin::{BlockHash, Txid, Wtxid};
use tokio::sync::mpsc;

use std::sync::atomic::Ordering;

use super::Assoc;
use crate::wire::{Command, Inventory, Message};

/// Requests waiting at once, at most.
pub(crate) const MAX_REQUESTS: usize = 1_024;
/// Answers waiting to be taken by one request, at most: a remote that sends faster than the
/// request reads gets the rest treated as unsolicited, never a growing queue.
const MAX_WAITING_ANSWERS: usize = 32;
/// Answers one request is given in all, at most (a range of filters is 1,000 at most, Core's
/// `MAX_GETCFILTERS_SIZE`; an address request ends by 1,000 addresses).
const MAX_ANSWERS: u32 = 1_000;

/// What a request waits for.
#[derive(Debug, Clone)]
pub(crate) enum Want {
    /// The pong with this nonce.
    Pong(u64),
    /// A `headers` answering a `getheaders` with this locator.
    Headers(Vec<BlockHash>),
    /// This block (or a `notfound` for it).
    Block(BlockHash),
    /// This transaction, by txid or wtxid (or a `notfound` for it).
    Tx([u8; 32]),
    /// The `merkleblock` of this block (or a `notfound` for it).
    MerkleBlock(BlockHash),
    /// `cfilter`s of this type up to the one for `stop`.
    CFilters { filter_type: u8, stop: BlockHash },
    /// The `cfheaders` ending at `stop`.
    CFHeaders { filter_type: u8, stop: BlockHash },
    /// The `cfcheckpt` ending at `stop`.
    CFCheckpt { filter_type: u8, stop: BlockHash },
    /// Addresses (`addr` or `addrv2`), until the request has enough.
    Addr,
    /// The `getdata` for a transaction we announced, then a `reject` of it.
    Broadcast { txid: Txid, wtxid: Wtxid },
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
}

#[derive(Debug)]
struct Entry {
    id: u64,
    want: Want,
    tx: mpsc::Sender<Answer>,
    /// Answers given so far.
    given: u32,
}

/// The requests in flight, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    next_id: u64,
    entries: Vec<Entry>,
}

impl Requests {
    /// Registers a request; `None` when [`MAX_REQUESTS`] already wait.
    pub(crate) fn add(&mut self, want: Want) -> Option<(u64, mpsc::Receiver<Answer>)> {
        if self.entries.len() >= MAX_REQUESTS {
            return None;
        }
        let (tx, rx) = mpsc::channel(MAX_WAITING_ANSWERS);
        self.next_id = self.next_id.wrapping_add(1);
        self.entries.push(Entry { id: self.next_id, want, tx, given: 0 });
        Some((self.next_id, rx))
    }

    /// Forgets a request (done, or its future dropped).
    pub(crate) fn remove(&mut self, id: u64) {
        self.entries.retain(|e| e.id != id);
    }

    /// Forgets every request: their receivers end, and they report the disconnect.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Requests waiting.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Gives `answer` to the oldest request `matches` accepts (`None`), `once` requests being then
    /// forgotten; or hands it back (`Some`) when none takes it.
    fn give(&mut self, matches: impl Fn(&Want) -> bool, once: bool, answer: Answer) -> Option<Answer> {
        let Some(i) = self.entries.iter().position(|e| e.given < MAX_ANSWERS && matches(&e.want)) else {
            return Some(answer);
        };
        let entry = self.entries.get_mut(i)?;
        let (back, gone) = match entry.tx.try_send(answer) {
            Ok(()) => {
                entry.given = entry.given.saturating_add(1);
                (None, false)
            }
            // Its reader is behind: this answer is unsolicited after all.
            Err(mpsc::error::TrySendError::Full(a)) => (Some(a), false),
            // Its future is gone.
            Err(mpsc::error::TrySendError::Closed(a)) => (Some(a), true),
        };
        if once && back.is_none() || gone {
            self.entries.remove(i);
        }
        back
    }

    /// Offers a received message to the requests: `None` when one took it, else the message (or
    /// what is left of it: a `notfound` or `getdata` some of whose entries answered requests).
    /// `announcing` says whether the remote may announce blocks with `headers` (we sent
    /// `sendheaders`); `rtt` is the writer's round trip for a pong.
    pub(crate) fn offer(&mut self, message: Message, announcing: bool, rtt: Option<Duration>) -> Option<Message> {
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
                // A short `headers` that does not follow our locator, from a remote that announces
                // blocks so, is an announcement (Core announces up to 8), not an answer.
                let first_prev = headers.first().map(|h| h.prev_blockhash);
                let follows =
                    |locator: &Vec<BlockHash>| first_prev.is_none_or(|p| locator.is_empty() || locator.contains(&p));
                let announcement = announcing && headers.len() <= 8;
                let matches = |w: &Want| matches!(w, Want::Headers(l) if !announcement || follows(l));
                self.give(matches, true, Answer::Message(Message::Headers(headers))).and_then(back)
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
            Message::CFilter(f) => {
                let (t, hash) = (f.filter_type, f.block_hash);
                // The last filter of the range (the stop block's) completes the request.
                let last = self
                    .entries
                    .iter()
                    .find(|e| matches!(&e.want, Want::CFilters { filter_type, .. } if *filter_type == t))
                    .is_some_and(|e| matches!(&e.want, Want::CFilters { stop, .. } if *stop == hash));
                self.give(
                    |w| matches!(w, Want::CFilters { filter_type, .. } if *filter_type == t),
                    last,
                    Answer::Message(Message::CFilter(f)),
                )
                .and_then(back)
            }
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
            Message::AddrV2(addrs) => {
                self.give(|w| matches!(w, Want::Addr), false, Answer::Addrs(addrs)).and_then(|a| match a {
                    Answer::Addrs(a) => Some(Message::AddrV2(a)),
                    _ => None,
                })
            }
            Message::Addr(addrs) => {
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

use bitcoin::hashes::Hash as _;

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
    /// Registers a request; `None` when too many wait or the peer has ended.
    pub(crate) fn register(&self, want: Want) -> Option<Registration<'_>> {
        let mut st = self.lock();
        if st.assoc == Assoc::Ended {
            return None;
        }
        let (id, answers) = st.requests.add(want)?;
        self.shared.requests_waiting.store(st.requests.len(), Ordering::Relaxed);
        Some(Registration { peer: self, id, answers, started: std::time::Instant::now() })
    }

    /// Whether any awaitable request waits.
    pub(crate) fn has_requests(&self) -> bool {
        self.shared.requests_waiting.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn forget_request(&self, id: u64) {
        let mut st = self.lock();
        st.requests.remove(id);
        self.shared.requests_waiting.store(st.requests.len(), Ordering::Relaxed);
    }

    /// Offers a received message to the requests in flight (see `request`); what is left goes to
    /// the application.
    pub(crate) fn offer_to_requests(&self, message: Message, rtt: Option<std::time::Duration>) -> Option<Message> {
        // The common case, no request waiting, takes no lock. (A request registered after this
        // load and before its own message went out cannot be answered by this message.)
        if !self.has_requests() {
            return Some(message);
        }
        let mut st = self.lock();
        let announcing = st.counters.proto.traffic.per_command().of(Command::SENDHEADERS).messages_sent > 0;
        let rest = st.requests.offer(message, announcing, rtt);
        self.shared.requests_waiting.store(st.requests.len(), Ordering::Relaxed);
        rest
    }
}
