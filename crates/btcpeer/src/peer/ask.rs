//! Requests that can be awaited: [`Peer::ping`], [`Peer::get_headers`], [`Peer::get_block`] and
//! the others, each an `async fn` that sends its request and waits for the matching answer.
//!
//! All are cancel-safe (dropping the future forgets the request; an answer arriving later is
//! delivered to the application as unsolicited), may be used concurrently (answers are matched
//! by what they answer: a block by its hash, a filter by its type and stop hash …), and are never
//! suppressed as duplicates. **An answer taken by a request does not reach the handler or the
//! channel**; everything else does. Each waits at most the peer's stall timeout (30 s, 90 s
//! for headers, by default), or what [`Peer::requests`] sets for one call.

use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::hashes::Hash as _;
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2Message;
use bitcoin::p2p::message_blockdata::GetHeadersMessage;
use bitcoin::p2p::message_filter::{CFCheckpt, CFHeaders, CFilter, GetCFCheckpt, GetCFHeaders, GetCFilters};
use bitcoin::{Block, BlockHash, MerkleBlock, Transaction, Txid, Wtxid};

use super::Peer;
use super::error::{DisconnectReason, QueueError, SendOutcome};
use super::request::{Answer, Registration, Want};
use crate::wire::version::ping_has_nonce;
use crate::wire::{Inventory, Message, RejectCode};

/// How long a broadcast waits, after its transaction was written, for a `reject` of it.
const REJECT_WINDOW: Duration = Duration::from_secs(2);
/// How long `get_addr` waits for more addresses after the last that came.
const ADDR_QUIET: Duration = Duration::from_secs(3);
/// The most addresses one `getaddr` is answered with (Core's `MAX_ADDR_TO_SEND`).
const MAX_ADDR: usize = 1_000;

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No answer within the request's timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The remote answered `notfound`.
    #[error("the remote does not have it (notfound)")]
    NotFound,
    /// The peer ended before the answer came.
    #[error("disconnected: {0}")]
    Disconnected(DisconnectReason),
    /// The outbound queue is full, or too many requests wait already.
    #[error("the outbound queue or the request table is full")]
    QueueFull,
    /// The request could not be queued (it does not encode, or does not fit a v2 packet).
    #[error(transparent)]
    Queue(QueueError),
    /// The negotiated version or the remote's services do not allow the request.
    #[error("not supported by this remote: {0}")]
    NotSupported(&'static str),
}

/// What became of a broadcast transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BroadcastOutcome {
    /// The remote asked for it (`getdata`) and it was written to the stream.
    Requested,
    /// The remote did not ask for it within the timeout (it had it already, or does not want it).
    NotRequested,
    /// The remote rejected it (a `reject` naming it came soon after it was sent; only remotes
    /// that still send `reject`, such as btcd, do).
    Rejected {
        /// The reject code.
        code: RejectCode,
        /// The remote's reason.
        reason: String,
    },
}

/// A transaction named by txid or wtxid, for [`Peer::get_transaction`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxRef {
    /// By txid (`MSG_WITNESS_TX`).
    Txid(Txid),
    /// By wtxid (`MSG_WTX`, with wtxidrelay negotiated).
    Wtxid(Wtxid),
}

impl From<Txid> for TxRef {
    fn from(t: Txid) -> Self {
        TxRef::Txid(t)
    }
}

impl From<Wtxid> for TxRef {
    fn from(w: Wtxid) -> Self {
        TxRef::Wtxid(w)
    }
}

/// The requests of one peer with a timeout of their own: [`Peer::requests`].
///
/// ```no_run
/// # async fn f(peer: &btcpeer::peer::Peer) -> Result<(), btcpeer::peer::RequestError> {
/// use std::time::Duration;
/// let rtt = peer.requests().timeout(Duration::from_secs(5)).ping().await?;
/// println!("round trip {rtt:?}");
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Requests<'a> {
    peer: &'a Peer,
    timeout: Option<Duration>,
    addr_quiet: Option<Duration>,
}

impl Peer {
    /// The requests with per-call settings (a timeout).
    pub fn requests(&self) -> Requests<'_> {
        Requests { peer: self, timeout: None, addr_quiet: None }
    }

    /// One ping; its round trip, from when it was written to when its pong arrived.
    ///
    /// ```no_run
    /// # async fn f(peer: &btcpeer::peer::Peer) -> Result<(), btcpeer::peer::RequestError> {
    /// println!("{:?}", peer.ping().await?);
    /// # Ok(()) }
    /// ```
    pub async fn ping(&self) -> Result<Duration, RequestError> {
        self.requests().ping().await
    }

    /// The headers after `locator` up to `stop` (all zeros: as many as the remote sends, 2,000 at
    /// most). An empty list: the remote has nothing after the locator.
    ///
    /// ```no_run
    /// # async fn f(peer: &btcpeer::peer::Peer, genesis: btcpeer::bitcoin::BlockHash) -> Result<(), btcpeer::peer::RequestError> {
    /// use btcpeer::bitcoin::{BlockHash, hashes::Hash};
    /// let headers = peer.get_headers(&[genesis], BlockHash::all_zeros()).await?;
    /// println!("{} headers", headers.len());
    /// # Ok(()) }
    /// ```
    pub async fn get_headers(&self, locator: &[BlockHash], stop: BlockHash) -> Result<Vec<Header>, RequestError> {
        self.requests().get_headers(locator, stop).await
    }

    /// A block, with its witnesses when the remote offers them; [`RequestError::NotFound`] when it
    /// answers `notfound`. Many may be in flight.
    ///
    /// ```no_run
    /// # async fn f(peer: &btcpeer::peer::Peer, hash: btcpeer::bitcoin::BlockHash) -> Result<(), Box<dyn std::error::Error>> {
    /// let block = peer.get_block(hash).await?;
    /// assert!(block.check_merkle_root(), "the transactions are the header's");
    /// # Ok(()) }
    /// ```
    pub async fn get_block(&self, hash: BlockHash) -> Result<Block, RequestError> {
        self.requests().get_block(hash).await
    }

    /// A transaction the remote has (in its mempool, as Core serves them), by txid or wtxid.
    pub async fn get_transaction(&self, id: impl Into<TxRef>) -> Result<Transaction, RequestError> {
        self.requests().get_transaction(id.into()).await
    }

    /// A block's `merkleblock` (BIP37), after a filter was loaded with `filterload`; the matched
    /// transactions follow it as ordinary `tx` messages.
    pub async fn get_merkle_block(&self, hash: BlockHash) -> Result<MerkleBlock, RequestError> {
        self.requests().get_merkle_block(hash).await
    }

    /// BIP157 filters of `filter_type` (0: basic) from `start_height` up to the block `stop`.
    ///
    /// ```no_run
    /// # async fn f(peer: &btcpeer::peer::Peer, stop: btcpeer::bitcoin::BlockHash) -> Result<(), btcpeer::peer::RequestError> {
    /// for filter in peer.get_cfilters(0, 1, stop).await? {
    ///     println!("{}: {} bytes", filter.block_hash, filter.filter.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get_cfilters(
        &self,
        filter_type: u8,
        start_height: u32,
        stop: BlockHash,
    ) -> Result<Vec<CFilter>, RequestError> {
        self.requests().get_cfilters(filter_type, start_height, stop).await
    }

    /// BIP157 filter headers from `start_height` up to `stop`.
    pub async fn get_cfheaders(
        &self,
        filter_type: u8,
        start_height: u32,
        stop: BlockHash,
    ) -> Result<CFHeaders, RequestError> {
        self.requests().get_cfheaders(filter_type, start_height, stop).await
    }

    /// BIP157 filter-header checkpoints (every 1,000 blocks) up to `stop`.
    pub async fn get_cfcheckpt(&self, filter_type: u8, stop: BlockHash) -> Result<CFCheckpt, RequestError> {
        self.requests().get_cfcheckpt(filter_type, stop).await
    }

    /// Sends `getaddr` and gathers the `addr` / `addrv2` answers until 1,000 came or three seconds
    /// pass without more (Core answers once per connection, from a cache). Addresses come as
    /// `addrv2` entries whichever message carried them.
    pub async fn get_addr(&self) -> Result<Vec<AddrV2Message>, RequestError> {
        self.requests().get_addr().await
    }

    /// Announces `tx` (by wtxid or txid, as negotiated), serves the remote's `getdata` for it
    /// (without witnesses when it asks by `MSG_TX`, as Core), and says what happened.
    ///
    /// ```no_run
    /// # async fn f(peer: &btcpeer::peer::Peer, tx: btcpeer::bitcoin::Transaction) -> Result<(), btcpeer::peer::RequestError> {
    /// use btcpeer::peer::BroadcastOutcome;
    /// match peer.broadcast_transaction(tx).await? {
    ///     BroadcastOutcome::Requested => println!("the remote took it"),
    ///     BroadcastOutcome::NotRequested => println!("the remote did not ask for it"),
    ///     other => println!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn broadcast_transaction(&self, tx: Transaction) -> Result<BroadcastOutcome, RequestError> {
        self.requests().broadcast_transaction(tx).await
    }
}

impl<'a> Requests<'a> {
    /// Each request waits at most `timeout` (instead of the stall timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long [`get_addr`](Requests::get_addr) waits for more addresses after the last that came
    /// (default 3 s; a crawler in a hurry takes less).
    pub fn addr_quiet(mut self, quiet: Duration) -> Self {
        self.addr_quiet = Some(quiet);
        self
    }

    fn limit(&self, headers: bool) -> Duration {
        let t = self.peer.shared.config.inner.timeouts;
        self.timeout.unwrap_or(if headers { t.headers_stall } else { t.stall })
    }

    /// Waits for the handshake, then checks what the request needs of the remote.
    async fn ready(
        &self,
        needs: impl FnOnce(&super::RemoteInfo) -> Result<(), &'static str>,
    ) -> Result<(), RequestError> {
        let remote = self.peer.handshake().await.map_err(RequestError::Disconnected)?;
        needs(&remote).map_err(RequestError::NotSupported)
    }

    fn reason(&self) -> DisconnectReason {
        self.peer.disconnect_reason().unwrap_or(DisconnectReason::LocalRequest)
    }

    /// Registers `want`: the peer's end, or a full request table, is an error.
    fn register(&self, want: Want) -> Result<Registration<'a>, RequestError> {
        self.peer.register(want).ok_or_else(|| match self.peer.disconnect_reason() {
            Some(reason) => RequestError::Disconnected(reason),
            None => RequestError::QueueFull,
        })
    }

    /// Registers `want`, queues `message`, and returns the registration to wait on.
    fn ask(&self, want: Want, message: &Message) -> Result<Registration<'a>, RequestError> {
        let registration = self.register(want)?;
        let _ = self.peer.queue_message(message).map_err(|e| match e {
            QueueError::Full { .. } => RequestError::QueueFull,
            e => RequestError::Queue(e),
        })?;
        Ok(registration)
    }

    /// The next answer, or why none came.
    async fn next(&self, registration: &mut Registration<'a>, limit: Duration) -> Result<Answer, RequestError> {
        let left = limit.saturating_sub(registration.started.elapsed());
        match tokio::time::timeout(left, registration.answers.recv()).await {
            Ok(Some(answer)) => Ok(answer),
            Ok(None) => Err(RequestError::Disconnected(self.reason())),
            Err(_) => Err(RequestError::Timeout(limit)),
        }
    }

    /// One answer that is a message, `notfound` as [`RequestError::NotFound`].
    async fn one(&self, want: Want, message: &Message, headers: bool) -> Result<Message, RequestError> {
        let limit = self.limit(headers);
        let mut registration = self.ask(want, message)?;
        match self.next(&mut registration, limit).await? {
            Answer::Message(m) => Ok(m),
            Answer::NotFound => Err(RequestError::NotFound),
            _ => Err(RequestError::NotSupported("an unexpected answer")),
        }
    }

    /// See [`Peer::ping`].
    pub async fn ping(self) -> Result<Duration, RequestError> {
        self.ready(|r| if ping_has_nonce(r.negotiated_version) { Ok(()) } else { Err("pings without nonces (BIP31)") })
            .await?;
        let nonce = getrandom::u64().unwrap_or(0x5eed_0fd1_ce00_0001);
        let limit = self.limit(false);
        let mut registration = self.ask(Want::Pong(nonce), &Message::Ping(nonce))?;
        match self.next(&mut registration, limit).await? {
            Answer::Pong(Some(rtt)) => Ok(rtt),
            // Another ping was written after ours: measured from when ours was asked.
            _ => Ok(registration.started.elapsed()),
        }
    }

    /// See [`Peer::get_headers`].
    pub async fn get_headers(self, locator: &[BlockHash], stop: BlockHash) -> Result<Vec<Header>, RequestError> {
        self.ready(|_| Ok(())).await?;
        let version = self.peer.shared.config.inner.protocol_version;
        let request =
            Message::GetHeaders(GetHeadersMessage { version, locator_hashes: locator.to_vec(), stop_hash: stop });
        match self.one(Want::Headers(locator.to_vec()), &request, true).await? {
            Message::Headers(h) => Ok(h),
            _ => Err(RequestError::NotSupported("an unexpected answer")),
        }
    }

    /// See [`Peer::get_block`].
    pub async fn get_block(self, hash: BlockHash) -> Result<Block, RequestError> {
        self.ready(|_| Ok(())).await?;
        let inv =
            if self.remote_has(ServiceFlags::WITNESS) { Inventory::WitnessBlock(hash) } else { Inventory::Block(hash) };
        match self.one(Want::Block(hash), &Message::GetData(vec![inv]), false).await? {
            Message::Block(b) => Ok(b),
            _ => Err(RequestError::NotSupported("an unexpected answer")),
        }
    }

    fn remote_has(&self, services: ServiceFlags) -> bool {
        self.peer.remote().is_some_and(|r| r.version.services.has(services))
    }

    /// See [`Peer::get_transaction`].
    pub async fn get_transaction(self, id: TxRef) -> Result<Transaction, RequestError> {
        let by_wtxid = matches!(id, TxRef::Wtxid(_));
        self.ready(|r| if by_wtxid && !r.wtxid_relay { Err("wtxids without wtxidrelay") } else { Ok(()) }).await?;
        let (inv, key) = match id {
            TxRef::Txid(t) if self.remote_has(ServiceFlags::WITNESS) => (Inventory::WitnessTx(t), t.to_byte_array()),
            TxRef::Txid(t) => (Inventory::Tx(t), t.to_byte_array()),
            TxRef::Wtxid(w) => (Inventory::WTx(w), w.to_byte_array()),
        };
        match self.one(Want::Tx(key), &Message::GetData(vec![inv]), false).await? {
            Message::Tx(tx) => Ok(tx),
            _ => Err(RequestError::NotSupported("an unexpected answer")),
        }
    }

    /// See [`Peer::get_merkle_block`].
    pub async fn get_merkle_block(self, hash: BlockHash) -> Result<MerkleBlock, RequestError> {
        self.ready(|_| Ok(())).await?;
        let request = Message::GetData(vec![Inventory::FilteredBlock(hash)]);
        match self.one(Want::MerkleBlock(hash), &request, false).await? {
            Message::MerkleBlock(m) => Ok(m),
            _ => Err(RequestError::NotSupported("an unexpected answer")),
        }
    }

    fn needs_filters(r: &super::RemoteInfo) -> Result<(), &'static str> {
        if r.version.services.has(ServiceFlags::COMPACT_FILTERS) {
            Ok(())
        } else {
            Err("compact filters (NODE_COMPACT_FILTERS)")
        }
    }

    /// See [`Peer::get_cfilters`].
    pub async fn get_cfilters(
        self,
        filter_type: u8,
        start_height: u32,
        stop: BlockHash,
    ) -> Result<Vec<CFilter>, RequestError> {
        self.ready(Self::needs_filters).await?;
        let limit = self.limit(false);
        let request = Message::GetCFilters(GetCFilters { filter_type, start_height, stop_hash: stop });
        let mut registration = self.ask(Want::CFilters { filter_type, stop }, &request)?;
        let mut filters = Vec::new();
        // Core answers at most 1,000 filters per request (`MAX_GETCFILTERS_SIZE`).
        while filters.len() < 1_000 {
            match self.next(&mut registration, limit).await? {
                Answer::Message(Message::CFilter(f)) => {
                    let last = f.block_hash == stop;
                    filters.push(f);
                    if last {
                        break;
                    }
                }
                _ => return Err(RequestError::NotSupported("an unexpected answer")),
            }
        }
        Ok(filters)
    }

    /// See [`Peer::get_cfheaders`].
    pub async fn get_cfheaders(
        self,
        filter_type: u8,
        start_height: u32,
        stop: BlockHash,
    ) -> Result<CFHeaders, RequestError> {
        self.ready(Self::needs_filters).await?;
        let request = Message::GetCFHeaders(GetCFHeaders { filter_type, start_height, stop_hash: stop });
        match self.one(Want::CFHeaders { filter_type, stop }, &request, false).await? {
            Message::CFHeaders(h) => Ok(h),
            _ => Err(RequestError::NotSupported("an unexpected answer")),
        }
    }

    /// See [`Peer::get_cfcheckpt`].
    pub async fn get_cfcheckpt(self, filter_type: u8, stop: BlockHash) -> Result<CFCheckpt, RequestError> {
        self.ready(Self::needs_filters).await?;
        let request = Message::GetCFCheckpt(GetCFCheckpt { filter_type, stop_hash: stop });
        match self.one(Want::CFCheckpt { filter_type, stop }, &request, false).await? {
            Message::CFCheckpt(c) => Ok(c),
            _ => Err(RequestError::NotSupported("an unexpected answer")),
        }
    }

    /// See [`Peer::get_addr`].
    pub async fn get_addr(self) -> Result<Vec<AddrV2Message>, RequestError> {
        self.ready(|_| Ok(())).await?;
        let limit = self.limit(false);
        let mut registration = self.ask(Want::Addr, &Message::GetAddr)?;
        let mut addrs = Vec::new();
        while addrs.len() < MAX_ADDR {
            // The first answer may take the whole timeout; later ones come within the quiet period.
            let quiet = self.addr_quiet.unwrap_or(ADDR_QUIET);
            let wait = if addrs.is_empty() { limit.saturating_sub(registration.started.elapsed()) } else { quiet };
            match tokio::time::timeout(wait, registration.answers.recv()).await {
                Ok(Some(Answer::Addrs(more))) => {
                    addrs.extend(more.into_iter().take(MAX_ADDR.saturating_sub(addrs.len())))
                }
                Ok(Some(_)) => {}
                Ok(None) if addrs.is_empty() => return Err(RequestError::Disconnected(self.reason())),
                Ok(None) => break,
                Err(_) if addrs.is_empty() => return Err(RequestError::Timeout(limit)),
                Err(_) => break,
            }
        }
        Ok(addrs)
    }

    /// See [`Peer::broadcast_transaction`].
    pub async fn broadcast_transaction(self, tx: Transaction) -> Result<BroadcastOutcome, RequestError> {
        self.ready(|_| Ok(())).await?;
        if !self.peer.relays_transactions() {
            return Err(RequestError::NotSupported("transactions (the remote asked for none: relay = false)"));
        }
        let (txid, wtxid) = (tx.compute_txid(), tx.compute_wtxid());
        let limit = self.limit(false);
        let mut registration = self.peer.register(Want::Broadcast { txid, wtxid }).ok_or(RequestError::QueueFull)?;
        // Announced as the negotiation wants, at once (a broadcast is not trickled: the caller
        // waits on it). The remote may already know it: then it will not ask.
        let inv = if self.peer.wtxid_relay() { Inventory::WTx(wtxid) } else { Inventory::Tx(txid) };
        let _ = self.peer.queue_message(&Message::Inv(vec![inv])).map_err(|_| RequestError::QueueFull)?;
        self.peer.counters(|c| c.proto.known.insert(&inv));
        let asked = match self.next(&mut registration, limit).await {
            Ok(Answer::Requested(asked)) => asked,
            Ok(_) => return Err(RequestError::NotSupported("an unexpected answer")),
            Err(RequestError::Timeout(_)) => return Ok(BroadcastOutcome::NotRequested),
            Err(e) => return Err(e),
        };
        // `MSG_TX` asks for the serialization without witnesses (Core's `TX_NO_WITNESS`).
        let served = if matches!(asked, Inventory::Tx(_)) { without_witness(&tx) } else { tx };
        let written = self.peer.queue_message(&Message::Tx(served)).map_err(|_| RequestError::QueueFull)?.wait().await;
        if let SendOutcome::Dropped(reason) = written {
            return Err(RequestError::Disconnected(reason));
        }
        match tokio::time::timeout(REJECT_WINDOW, registration.answers.recv()).await {
            Ok(Some(Answer::Message(Message::Reject(r)))) => {
                Ok(BroadcastOutcome::Rejected { code: r.code, reason: r.reason })
            }
            _ => Ok(BroadcastOutcome::Requested),
        }
    }
}

/// `tx` serialized without its witnesses.
pub(crate) fn without_witness(tx: &Transaction) -> Transaction {
    let mut stripped = tx.clone();
    for input in &mut stripped.input {
        input.witness.clear();
    }
    stripped
}
