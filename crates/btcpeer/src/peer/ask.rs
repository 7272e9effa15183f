//! Requests that can be awaited: [`Peer::ping`], [`Peer::get_headers`], [`Peer::get_block`] and
//! the others, each an `async fn` that sends its request and waits for the matching answer.
//!
//! All are cancel-safe (dropping the future forgets the request; an answer arriving later is
//! delivered to the application as unsolicited), may be used concurrently (answers are matched
//! by what they answer: a block by its hash, a filter by its type and its position in the range
//! asked, headers by the locator they start on …), and are never suppressed as duplicates. **An
//! answer taken by a request does not reach the handler or the channel**; everything else does,
//! and so does a message that cannot be an answer (a `headers` announcement that does not start on
//! the locator, a one-address `addr`). Each waits at most the peer's stall timeout (30 s, 90 s for
//! headers, by default), or what [`Peer::requests`] sets for one call; a multi-answer request
//! (`get_cfilters`) waits that long for each answer.
//!
//! # Limits
//!
//! - **1,024 requests in flight per peer.** A request beyond them waits for a slot (its timeout
//!   starts once it has one); none fails for it.
//! - **Per request, the protocol's:** `get_headers` is answered with at most 2,000 headers (Core's
//!   `MAX_HEADERS_RESULTS`), `get_cfilters` covers at most 1,000 blocks (`MAX_GETCFILTERS_SIZE`)
//!   and `get_cfheaders` 2,000 (`MAX_GETCFHEADERS_SIZE`) — Core disconnects a peer that asks for a
//!   longer range — and `get_addr` gathers at most 1,000 addresses (`MAX_ADDR_TO_SEND`). A filter
//!   range holds at most 256 MiB of filters (honest mainnet ranges are tens of MB): a remote that
//!   sends more ends the request with [`RequestError::InvalidAnswer`].
//! - A request's message goes into the outbound queue like any other: a full queue is
//!   [`RequestError::Queue`] with [`QueueError::Full`], which names the queue's limit.

use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::hashes::Hash as _;
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2Message;
use bitcoin::p2p::message_blockdata::GetHeadersMessage;
use bitcoin::p2p::message_filter::{CFCheckpt, CFHeaders, CFilter, GetCFCheckpt, GetCFHeaders, GetCFilters};
use bitcoin::{Block, BlockHash, MerkleBlock, Transaction, Txid, Wtxid};

use super::Peer;
use super::error::{DisconnectReason, QueueError};
use super::request::{Answer, MAX_CFHEADERS, MAX_CFILTERS, MAX_HEADERS, Range, Registration, Want};
use crate::wire::version::ping_has_nonce;
use crate::wire::{Inventory, Message};

/// How long `get_addr` waits for more addresses after the last that came.
const ADDR_QUIET: Duration = Duration::from_secs(3);
/// The most addresses one `getaddr` is answered with (Core's `MAX_ADDR_TO_SEND`).
const MAX_ADDR: usize = 1_000;

mod broadcast;
pub use broadcast::BroadcastOutcome;

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
    /// No longer produced: a full outbound queue is
    /// [`RequestError::Queue`]`(`[`QueueError::Full`]`)`, which names the queue's limit, and a
    /// request beyond the 1,024 in flight waits for a slot.
    #[deprecated(note = "a full queue is `RequestError::Queue(QueueError::Full { .. })`; a full request table waits")]
    #[error("the outbound queue or the request table is full")]
    QueueFull,
    /// The request could not be queued: the outbound queue is full ([`QueueError::Full`], with its
    /// limit in bytes), or the message does not encode or does not fit a v2 packet.
    #[error(transparent)]
    Queue(QueueError),
    /// The negotiated version or the remote's services do not allow the request.
    #[error("not supported by this remote: {0}")]
    NotSupported(&'static str),
    /// The remote's answer cannot be right (headers that do not connect, a range whose last filter
    /// is not the stop block's …): nothing of it is returned.
    #[error("the remote's answer is invalid: {0}")]
    InvalidAnswer(&'static str),
    /// The range spans more blocks than one request may (BIP157: 1,000 filters, 2,000 filter
    /// headers; Core disconnects a peer that asks for more).
    #[error("the range spans {blocks} blocks; one request takes at most {limit}")]
    RangeTooLarge {
        /// Blocks from the start height to the stop block, as the remote counted them.
        blocks: usize,
        /// The protocol's limit for this request.
        limit: usize,
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

    /// The headers after `locator` up to `stop` (all zeros: as many as the remote sends, **2,000 at
    /// most**, Core's `MAX_HEADERS_RESULTS`: ask again from the last to go on). An empty list: the
    /// remote has nothing after the locator. An empty locator asks for the one header `stop`.
    ///
    /// Only a `headers` that starts right after a block of the locator (or after the genesis
    /// block, where a remote that knows none of it starts) is taken as the answer; a block
    /// announcement goes to the handler. An answer over 2,000 headers or whose headers do not
    /// connect is [`RequestError::InvalidAnswer`].
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

    /// BIP157 filters of `filter_type` (0: basic) from `start_height` up to the block `stop`:
    /// every filter of the range, in order, or an error — never a range with gaps.
    ///
    /// **One request covers at most 1,000 blocks** (BIP157; Core's `MAX_GETCFILTERS_SIZE`): a longer
    /// range is [`RequestError::RangeTooLarge`], refused before the `getcfilters` a remote would
    /// disconnect for is sent. The range's filter hashes are asked first (`getcfheaders`, one round
    /// trip and 32 bytes a block): they count the range and match each filter to its place by its
    /// hash, so a filter is never taken by the wrong request nor an unsolicited one taken at all.
    /// The whole range is held for the caller however slowly it reads. The timeout bounds the wait
    /// for each filter. A filter left out ends the request with [`RequestError::InvalidAnswer`] when
    /// the stop block's filter comes (or with a timeout). Identical filters (empty blocks have the
    /// same one-byte filter) cannot be told apart by their hashes; a caller that holds the headers
    /// checks block by block, and saves the round trip, with [`Peer::get_cfilters_of`].
    ///
    /// A full range, 1,000 blocks ending at `stop` (at height `stop_height`):
    ///
    /// ```no_run
    /// # async fn f(peer: &btcpeer::peer::Peer, stop: btcpeer::bitcoin::BlockHash, stop_height: u32) -> Result<(), btcpeer::peer::RequestError> {
    /// let start = stop_height.saturating_sub(999);
    /// let filters = peer.get_cfilters(0, start, stop).await?;
    /// assert_eq!(filters.last().map(|f| f.block_hash), Some(stop));
    /// for filter in &filters {
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

    /// BIP157 filters of `filter_type` for `blocks`, the hashes of the blocks from `start_height`
    /// on, in order, as the caller's own headers give them (1,000 at most): every filter of the
    /// range, each checked to be the filter of its block, in order — or an error.
    ///
    /// Where the caller holds the headers (a light client does), this is the stronger and faster
    /// form of [`Peer::get_cfilters`]: no `getcfheaders` round trip first, and a range of blocks
    /// whose filters are identical (empty blocks) is still checked block by block. A filter left
    /// out, or a filter of a block that is not the next one, ends the request with
    /// [`RequestError::InvalidAnswer`]; no block: an empty list, nothing sent.
    ///
    /// ```no_run
    /// # async fn f(peer: &btcpeer::peer::Peer, headers: &[btcpeer::bitcoin::block::Header]) -> Result<(), btcpeer::peer::RequestError> {
    /// // `headers[0]` is the header at height 1: a full range, heights 1 to 1,000.
    /// let blocks: Vec<_> = headers.iter().take(1_000).map(|h| h.block_hash()).collect();
    /// let filters = peer.get_cfilters_of(0, 1, &blocks).await?;
    /// assert!(filters.iter().zip(&blocks).all(|(f, b)| f.block_hash == *b));
    /// # Ok(()) }
    /// ```
    pub async fn get_cfilters_of(
        &self,
        filter_type: u8,
        start_height: u32,
        blocks: &[BlockHash],
    ) -> Result<Vec<CFilter>, RequestError> {
        self.requests().get_cfilters_of(filter_type, start_height, blocks).await
    }

    /// BIP157 filter headers from `start_height` up to `stop`: **2,000 blocks at most** per request
    /// (BIP157; Core's `MAX_GETCFHEADERS_SIZE`, and Core disconnects a peer that asks for more).
    ///
    /// ```no_run
    /// # async fn f(peer: &btcpeer::peer::Peer, stop: btcpeer::bitcoin::BlockHash) -> Result<(), btcpeer::peer::RequestError> {
    /// let headers = peer.get_cfheaders(0, 1, stop).await?;
    /// println!("{} filter hashes after {}", headers.filter_hashes.len(), headers.previous_filter_header);
    /// # Ok(()) }
    /// ```
    pub async fn get_cfheaders(
        &self,
        filter_type: u8,
        start_height: u32,
        stop: BlockHash,
    ) -> Result<CFHeaders, RequestError> {
        self.requests().get_cfheaders(filter_type, start_height, stop).await
    }

    /// BIP157 filter-header checkpoints (every 1,000 blocks) up to `stop`: one message, no limit
    /// on the range.
    ///
    /// ```no_run
    /// # async fn f(peer: &btcpeer::peer::Peer, stop: btcpeer::bitcoin::BlockHash) -> Result<(), btcpeer::peer::RequestError> {
    /// let checkpoints = peer.get_cfcheckpt(0, stop).await?;
    /// println!("{} checkpoints", checkpoints.filter_headers.len());
    /// # Ok(()) }
    /// ```
    pub async fn get_cfcheckpt(&self, filter_type: u8, stop: BlockHash) -> Result<CFCheckpt, RequestError> {
        self.requests().get_cfcheckpt(filter_type, stop).await
    }

    /// Sends `getaddr` and gathers the `addr` / `addrv2` answers until 1,000 came or three seconds
    /// pass without more (Core answers once per connection, from a cache). Addresses come as
    /// `addrv2` entries whichever message carried them. A message of one address is not taken: it
    /// is a remote announcing itself or relaying, as Core does unasked (it goes to the handler).
    ///
    /// ```no_run
    /// # async fn f(peer: &btcpeer::peer::Peer) -> Result<(), btcpeer::peer::RequestError> {
    /// let addrs = peer.get_addr().await?;
    /// println!("{} addresses", addrs.len());
    /// # Ok(()) }
    /// ```
    pub async fn get_addr(&self) -> Result<Vec<AddrV2Message>, RequestError> {
        self.requests().get_addr().await
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

    /// Registers `want` and queues `message` in one step (waiting for a slot while 1,024 requests
    /// wait), and returns the registration to wait on.
    async fn ask(&self, want: Want, message: &Message) -> Result<Registration<'a>, RequestError> {
        self.peer.register(want, Some(message)).await
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
        let mut registration = self.ask(want, message).await?;
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
        let mut registration = self.ask(Want::Pong(nonce), &Message::Ping(nonce)).await?;
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
        let genesis = self.peer.shared.config.inner.network.genesis_hash();
        let want = Want::Headers { locator: locator.to_vec(), stop, genesis };
        match self.one(want, &request, true).await? {
            Message::Headers(h) => check_headers(h),
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
    ///
    /// The range's filter hashes are asked first (`getcfheaders`, one round trip, 32 bytes a
    /// block): they say how many filters the range holds, so that a range over the limit is refused
    /// here instead of by the remote (Core disconnects: `PrepareBlockFilterRequest`), and each
    /// filter is then matched to its position by its hash: the answer is the whole range in order or
    /// an error, never a range with gaps.
    pub async fn get_cfilters(
        self,
        filter_type: u8,
        start_height: u32,
        stop: BlockHash,
    ) -> Result<Vec<CFilter>, RequestError> {
        self.ready(Self::needs_filters).await?;
        let request = Message::GetCFHeaders(GetCFHeaders { filter_type, start_height, stop_hash: stop });
        let expected = match self.one(Want::CFHeaders { filter_type, stop }, &request, false).await? {
            Message::CFHeaders(h) => h.filter_hashes,
            _ => return Err(RequestError::NotSupported("an unexpected answer")),
        };
        if expected.is_empty() {
            return Err(RequestError::InvalidAnswer("no filter hashes for the range"));
        }
        if expected.len() > MAX_CFILTERS {
            return Err(RequestError::RangeTooLarge { blocks: expected.len(), limit: MAX_CFILTERS });
        }
        self.cfilters(filter_type, start_height, stop, Range::Hashes(expected)).await
    }

    /// See [`Peer::get_cfilters_of`].
    pub async fn get_cfilters_of(
        self,
        filter_type: u8,
        start_height: u32,
        blocks: &[BlockHash],
    ) -> Result<Vec<CFilter>, RequestError> {
        self.ready(Self::needs_filters).await?;
        let Some(&stop) = blocks.last() else { return Ok(Vec::new()) };
        if blocks.len() > MAX_CFILTERS {
            return Err(RequestError::RangeTooLarge { blocks: blocks.len(), limit: MAX_CFILTERS });
        }
        self.cfilters(filter_type, start_height, stop, Range::Blocks(blocks.to_vec())).await
    }

    /// Sends `getcfilters` and gathers its range, each filter matched to its place by `expected`.
    async fn cfilters(
        &self,
        filter_type: u8,
        start_height: u32,
        stop: BlockHash,
        expected: Range,
    ) -> Result<Vec<CFilter>, RequestError> {
        let limit = self.limit(false);
        let count = expected.len();
        let request = Message::GetCFilters(GetCFilters { filter_type, start_height, stop_hash: stop });
        let mut registration =
            self.ask(Want::CFilters { filter_type, stop, expected, next: 0, held: 0 }, &request).await?;
        let mut filters = Vec::with_capacity(count);
        while filters.len() < count {
            // The limit bounds the wait for each filter: a long range is not cut short while the
            // remote makes progress.
            match tokio::time::timeout(limit, registration.answers.recv()).await {
                Ok(Some(Answer::Message(Message::CFilter(f)))) => filters.push(f),
                Ok(Some(Answer::Invalid(why))) => return Err(RequestError::InvalidAnswer(why)),
                Ok(Some(_)) => return Err(RequestError::NotSupported("an unexpected answer")),
                Ok(None) => return Err(RequestError::Disconnected(self.reason())),
                Err(_) => return Err(RequestError::Timeout(limit)),
            }
        }
        // Every filter is the one the range expected at its place; the last must be the stop
        // block's.
        if filters.last().map(|f| f.block_hash) != Some(stop) {
            return Err(RequestError::InvalidAnswer("the range's last filter is not the stop block's"));
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
            Message::CFHeaders(h) if h.filter_hashes.len() > MAX_CFHEADERS => {
                Err(RequestError::InvalidAnswer("more filter hashes than one request is answered with"))
            }
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
        let mut registration = self.ask(Want::Addr, &Message::GetAddr).await?;
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
}

/// A `headers` answer as Core checks one (`ProcessHeadersMessage`): at most `MAX_HEADERS_RESULTS`,
/// each header the child of the one before ("non-continuous headers sequence").
fn check_headers(headers: Vec<Header>) -> Result<Vec<Header>, RequestError> {
    if headers.len() > MAX_HEADERS {
        return Err(RequestError::InvalidAnswer("more headers than one request is answered with"));
    }
    let connected = headers.windows(2).all(|w| match w {
        [a, b] => b.prev_blockhash == a.block_hash(),
        _ => true,
    });
    if !connected {
        return Err(RequestError::InvalidAnswer("headers that do not connect"));
    }
    Ok(headers)
}

/// `tx` serialized without its witnesses.
pub(crate) fn without_witness(tx: &Transaction) -> Transaction {
    let mut stripped = tx.clone();
    for input in &mut stripped.input {
        input.witness.clear();
    }
    stripped
}
