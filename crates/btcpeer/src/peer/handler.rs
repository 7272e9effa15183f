//! What the application hears from a peer: a [`Handler`] with a method per message kind,
//! or a bounded channel of [`PeerEvent`]s.
//!
//! Handler methods run on the peer's reading task, in wire order. While one runs, the peer reads
//! nothing more from that connection: a slow handler slows the remote down (backpressure), which is
//! the point, but a handler that blocks for long also holds the idle and stall timers' view of the
//! peer. Hand long work to another task, or use the channel adapter, whose bounded channel gives
//! the same backpressure to async code.
//!
//! A handler method that panics ends its peer, not the process or the other peers: the peer
//! disconnects with [`DisconnectReason::HandlerPanicked`], its queued messages resolve as dropped,
//! and its waits return. In channel mode, [`PeerEvent::Disconnected`] is the last event: the
//! receiver then yields `None`.

use std::sync::{Arc, Mutex};

use bitcoin::bip152::{BlockTransactions, BlockTransactionsRequest, HeaderAndShortIds};
use bitcoin::block::Header;
use bitcoin::p2p::Address;
use bitcoin::p2p::address::AddrV2Message;
use bitcoin::p2p::message_blockdata::{GetBlocksMessage, GetHeadersMessage};
use bitcoin::p2p::message_compact_blocks::SendCmpct;
use bitcoin::p2p::message_filter::{CFCheckpt, CFHeaders, CFilter, GetCFCheckpt, GetCFHeaders, GetCFilters};
use bitcoin::{Block, MerkleBlock, Transaction};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::error::DisconnectReason;
use super::{Peer, RemoteInfo};
use crate::transport::stream::DroppedFrame;
use crate::wire::{Command, FilterAdd, FilterLoad, Inventory, Message, Reject, VersionMessage};

/// One frame read from the remote, as [`Handler::on_read`] sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ReadEvent<'a> {
    /// The frame's command, when its header could be read.
    pub command: Option<Command>,
    /// Bytes the frame took on the wire (0 for a failed read).
    pub bytes: usize,
    /// Why the read failed, if it did (the peer then ends).
    pub error: Option<&'a DisconnectReason>,
    /// Why the frame was dropped unread, if it was: a bad checksum or invalid command bytes (the
    /// peer carries on, as Bitcoin Core does).
    pub dropped: Option<&'a DroppedFrame>,
}

/// The application's side of a peer. Every method has an empty default, so implement only what you
/// need. Methods are called on the peer's reading task in wire order (see the module docs).
///
/// [`Handler::on_message`] receives every message after the handshake and dispatches it to the
/// method for its kind; override it to see them all in one place. Messages the peer handles itself
/// (ping, pong, sendheaders, feefilter …) still reach their method after the peer has acted.
#[allow(unused_variables)]
pub trait Handler: Send + Sync + 'static {
    /// The remote's version arrived; return an error to refuse the peer. Runs during the
    /// handshake, after the self-connection check.
    fn on_version(&self, peer: &Peer, version: &VersionMessage) -> Result<(), String> {
        Ok(())
    }
    /// The handshake completed.
    fn on_handshake(&self, peer: &Peer, remote: &RemoteInfo) {}
    /// The peer ended; called exactly once per peer, after its tasks have stopped writing.
    fn on_disconnect(&self, peer: &Peer, reason: &DisconnectReason) {}
    /// Every frame read, handshake included, and every failed read.
    fn on_read(&self, peer: &Peer, event: &ReadEvent<'_>) {}
    /// Every frame written, handshake included.
    fn on_write(&self, peer: &Peer, command: Command, bytes: usize) {}
    /// The height to put in our version message.
    fn start_height(&self) -> i32 {
        0
    }

    /// Every message after the handshake, with its raw payload. The default calls the method for the
    /// message's kind.
    fn on_message(&self, peer: &Peer, message: Message, raw: Bytes) {
        match message {
            Message::Addr(m) => self.on_addr(peer, m),
            Message::AddrV2(m) => self.on_addrv2(peer, m),
            Message::Inv(m) => self.on_inv(peer, m),
            Message::GetData(m) => self.on_getdata(peer, m),
            Message::NotFound(m) => self.on_notfound(peer, m),
            Message::GetBlocks(m) => self.on_getblocks(peer, m),
            Message::GetHeaders(m) => self.on_getheaders(peer, m),
            Message::Headers(m) => self.on_headers(peer, m),
            Message::Block(m) => self.on_block(peer, m, raw),
            Message::Tx(m) => self.on_tx(peer, m),
            Message::MemPool => self.on_mempool(peer),
            Message::GetAddr => self.on_getaddr(peer),
            Message::Ping(n) => self.on_ping(peer, n),
            Message::Pong(n) => self.on_pong(peer, n),
            Message::Reject(m) => self.on_reject(peer, m),
            Message::SendHeaders => self.on_sendheaders(peer),
            Message::FeeFilter(m) => self.on_feefilter(peer, m),
            Message::FilterLoad(m) => self.on_filterload(peer, m),
            Message::FilterAdd(m) => self.on_filteradd(peer, m),
            Message::FilterClear => self.on_filterclear(peer),
            Message::MerkleBlock(m) => self.on_merkleblock(peer, m),
            Message::SendCmpct(m) => self.on_sendcmpct(peer, m),
            Message::CmpctBlock(m) => self.on_cmpctblock(peer, m),
            Message::GetBlockTxn(m) => self.on_getblocktxn(peer, m),
            Message::BlockTxn(m) => self.on_blocktxn(peer, m),
            Message::GetCFilters(m) => self.on_getcfilters(peer, m),
            Message::CFilter(m) => self.on_cfilter(peer, m),
            Message::GetCFHeaders(m) => self.on_getcfheaders(peer, m),
            Message::CFHeaders(m) => self.on_cfheaders(peer, m),
            Message::GetCFCheckpt(m) => self.on_getcfcheckpt(peer, m),
            Message::CFCheckpt(m) => self.on_cfcheckpt(peer, m),
            Message::Unknown { command, payload } => self.on_unknown(peer, command, payload),
            // Handshake and feature messages never arrive here after the handshake.
            Message::Version(_)
            | Message::Verack
            | Message::SendAddrV2
            | Message::WtxidRelay
            | Message::SendTxRcncl(_) => {}
            // `Message` is non-exhaustive: a kind added later reaches `on_message` overrides only.
            _ => {}
        }
    }

    /// `addr`
    fn on_addr(&self, peer: &Peer, addrs: Vec<(u32, Address)>) {}
    /// `addrv2`
    fn on_addrv2(&self, peer: &Peer, addrs: Vec<AddrV2Message>) {}
    /// `inv`
    fn on_inv(&self, peer: &Peer, inv: Vec<Inventory>) {}
    /// `getdata`
    fn on_getdata(&self, peer: &Peer, inv: Vec<Inventory>) {}
    /// `notfound`
    fn on_notfound(&self, peer: &Peer, inv: Vec<Inventory>) {}
    /// `getblocks`
    fn on_getblocks(&self, peer: &Peer, msg: GetBlocksMessage) {}
    /// `getheaders`
    fn on_getheaders(&self, peer: &Peer, msg: GetHeadersMessage) {}
    /// `headers`
    fn on_headers(&self, peer: &Peer, headers: Vec<Header>) {}
    /// `block`: the decoded block and its raw payload (shared with the read buffer, no copy).
    fn on_block(&self, peer: &Peer, block: Block, raw: Bytes) {}
    /// `block`, undecoded, when the configuration asks for raw blocks
    /// ([`PeerConfigBuilder::raw_blocks`](super::PeerConfigBuilder::raw_blocks)).
    fn on_raw_block(&self, peer: &Peer, raw: Bytes) {}
    /// `tx`
    fn on_tx(&self, peer: &Peer, tx: Transaction) {}
    /// `mempool`
    fn on_mempool(&self, peer: &Peer) {}
    /// `getaddr`
    fn on_getaddr(&self, peer: &Peer) {}
    /// `ping` (the pong was already queued)
    fn on_ping(&self, peer: &Peer, nonce: u64) {}
    /// `pong` (the round-trip time was already recorded)
    fn on_pong(&self, peer: &Peer, nonce: u64) {}
    /// `reject`
    fn on_reject(&self, peer: &Peer, reject: Reject) {}
    /// `sendheaders` (the preference was already recorded)
    fn on_sendheaders(&self, peer: &Peer) {}
    /// `feefilter` (the fee rate was already recorded)
    fn on_feefilter(&self, peer: &Peer, feerate: i64) {}
    /// `filterload`
    fn on_filterload(&self, peer: &Peer, filter: FilterLoad) {}
    /// `filteradd`
    fn on_filteradd(&self, peer: &Peer, filter: FilterAdd) {}
    /// `filterclear`
    fn on_filterclear(&self, peer: &Peer) {}
    /// `merkleblock`
    fn on_merkleblock(&self, peer: &Peer, block: MerkleBlock) {}
    /// `sendcmpct` (the preference was already recorded)
    fn on_sendcmpct(&self, peer: &Peer, msg: SendCmpct) {}
    /// `cmpctblock`
    fn on_cmpctblock(&self, peer: &Peer, block: HeaderAndShortIds) {}
    /// `getblocktxn`
    fn on_getblocktxn(&self, peer: &Peer, request: BlockTransactionsRequest) {}
    /// `blocktxn`
    fn on_blocktxn(&self, peer: &Peer, txs: BlockTransactions) {}
    /// `getcfilters`
    fn on_getcfilters(&self, peer: &Peer, msg: GetCFilters) {}
    /// `cfilter`
    fn on_cfilter(&self, peer: &Peer, msg: CFilter) {}
    /// `getcfheaders`
    fn on_getcfheaders(&self, peer: &Peer, msg: GetCFHeaders) {}
    /// `cfheaders`
    fn on_cfheaders(&self, peer: &Peer, msg: CFHeaders) {}
    /// `getcfcheckpt`
    fn on_getcfcheckpt(&self, peer: &Peer, msg: GetCFCheckpt) {}
    /// `cfcheckpt`
    fn on_cfcheckpt(&self, peer: &Peer, msg: CFCheckpt) {}
    /// A command btcpeer does not know; the peer counts it and carries on.
    fn on_unknown(&self, peer: &Peer, command: Command, payload: Bytes) {}
}

/// Implements [`Handler`] for a smart pointer to a handler: every method forwards, so the methods
/// the inner handler overrides are the ones called.
macro_rules! forward_handler {
    ($wrapper:ident) => {
        impl<H: Handler + ?Sized> Handler for $wrapper<H> {
            fn on_version(&self, peer: &Peer, version: &VersionMessage) -> Result<(), String> {
                (**self).on_version(peer, version)
            }
            fn on_handshake(&self, peer: &Peer, remote: &RemoteInfo) {
                (**self).on_handshake(peer, remote)
            }
            fn on_disconnect(&self, peer: &Peer, reason: &DisconnectReason) {
                (**self).on_disconnect(peer, reason)
            }
            fn on_read(&self, peer: &Peer, event: &ReadEvent<'_>) {
                (**self).on_read(peer, event)
            }
            fn on_write(&self, peer: &Peer, command: Command, bytes: usize) {
                (**self).on_write(peer, command, bytes)
            }
            fn start_height(&self) -> i32 {
                (**self).start_height()
            }
            fn on_message(&self, peer: &Peer, message: Message, raw: Bytes) {
                (**self).on_message(peer, message, raw)
            }
            fn on_addrv2(&self, peer: &Peer, addrs: Vec<AddrV2Message>) {
                (**self).on_addrv2(peer, addrs)
            }
            fn on_inv(&self, peer: &Peer, inv: Vec<Inventory>) {
                (**self).on_inv(peer, inv)
            }
            fn on_getdata(&self, peer: &Peer, inv: Vec<Inventory>) {
                (**self).on_getdata(peer, inv)
            }
            fn on_notfound(&self, peer: &Peer, inv: Vec<Inventory>) {
                (**self).on_notfound(peer, inv)
            }
            fn on_getblocks(&self, peer: &Peer, msg: GetBlocksMessage) {
                (**self).on_getblocks(peer, msg)
            }
            fn on_getheaders(&self, peer: &Peer, msg: GetHeadersMessage) {
                (**self).on_getheaders(peer, msg)
            }
            fn on_headers(&self, peer: &Peer, headers: Vec<Header>) {
                (**self).on_headers(peer, headers)
            }
            fn on_block(&self, peer: &Peer, block: Block, raw: Bytes) {
                (**self).on_block(peer, block, raw)
            }
            fn on_raw_block(&self, peer: &Peer, raw: Bytes) {
                (**self).on_raw_block(peer, raw)
            }
            fn on_tx(&self, peer: &Peer, tx: Transaction) {
                (**self).on_tx(peer, tx)
            }
            fn on_mempool(&self, peer: &Peer) {
                (**self).on_mempool(peer)
            }
            fn on_getaddr(&self, peer: &Peer) {
                (**self).on_getaddr(peer)
            }
            fn on_ping(&self, peer: &Peer, nonce: u64) {
                (**self).on_ping(peer, nonce)
            }
            fn on_pong(&self, peer: &Peer, nonce: u64) {
                (**self).on_pong(peer, nonce)
            }
            fn on_reject(&self, peer: &Peer, reject: Reject) {
                (**self).on_reject(peer, reject)
            }
            fn on_sendheaders(&self, peer: &Peer) {
                (**self).on_sendheaders(peer)
            }
            fn on_feefilter(&self, peer: &Peer, feerate: i64) {
                (**self).on_feefilter(peer, feerate)
            }
            fn on_filterload(&self, peer: &Peer, filter: FilterLoad) {
                (**self).on_filterload(peer, filter)
            }
            fn on_filteradd(&self, peer: &Peer, filter: FilterAdd) {
                (**self).on_filteradd(peer, filter)
            }
            fn on_filterclear(&self, peer: &Peer) {
                (**self).on_filterclear(peer)
            }
            fn on_merkleblock(&self, peer: &Peer, block: MerkleBlock) {
                (**self).on_merkleblock(peer, block)
            }
            fn on_sendcmpct(&self, peer: &Peer, msg: SendCmpct) {
                (**self).on_sendcmpct(peer, msg)
            }
            fn on_cmpctblock(&self, peer: &Peer, block: HeaderAndShortIds) {
                (**self).on_cmpctblock(peer, block)
            }
            fn on_getblocktxn(&self, peer: &Peer, request: BlockTransactionsRequest) {
                (**self).on_getblocktxn(peer, request)
            }
            fn on_blocktxn(&self, peer: &Peer, txs: BlockTransactions) {
                (**self).on_blocktxn(peer, txs)
            }
            fn on_getcfilters(&self, peer: &Peer, msg: GetCFilters) {
                (**self).on_getcfilters(peer, msg)
            }
            fn on_cfilter(&self, peer: &Peer, msg: CFilter) {
                (**self).on_cfilter(peer, msg)
            }
            fn on_getcfheaders(&self, peer: &Peer, msg: GetCFHeaders) {
                (**self).on_getcfheaders(peer, msg)
            }
            fn on_cfheaders(&self, peer: &Peer, msg: CFHeaders) {
                (**self).on_cfheaders(peer, msg)
            }
            fn on_getcfcheckpt(&self, peer: &Peer, msg: GetCFCheckpt) {
                (**self).on_getcfcheckpt(peer, msg)
            }
            fn on_cfcheckpt(&self, peer: &Peer, msg: CFCheckpt) {
                (**self).on_cfcheckpt(peer, msg)
            }
            fn on_unknown(&self, peer: &Peer, command: Command, payload: Bytes) {
                (**self).on_unknown(peer, command, payload)
            }
        }
    };
}

// A shared handler is a handler: `Peer::inbound(config, addr, handler.clone())` with one
// `Arc<MyHandler>` (or `Arc<dyn Handler>`) for every peer of a node. Every method forwards, so the
// methods the inner handler overrides are the ones called.
forward_handler!(Arc);

// A boxed handler is a handler (`Box<dyn Handler>` chosen at run time); every method forwards.
forward_handler!(Box);

/// A handler that does nothing: the peer still answers pings and keeps its statistics.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopHandler;

impl Handler for NoopHandler {}

/// What a peer created with a channel delivers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PeerEvent {
    /// The handshake completed.
    Handshake(RemoteInfo),
    /// A message after the handshake, with its raw payload.
    Message {
        /// The decoded message.
        message: Message,
        /// Its payload as received.
        raw: Bytes,
    },
    /// A block, undecoded (when the configuration asks for raw blocks).
    RawBlock(Bytes),
    /// The peer ended. This event is always delivered: a slot is reserved for it from the start.
    /// It is the last: the receiver then yields `None`, whether or not handles to the peer
    /// remain.
    Disconnected(DisconnectReason),
}

/// A peer's channel: the sender, and the slot reserved for the last event.
pub(crate) struct ChannelSink {
    tx: Mutex<Option<mpsc::Sender<PeerEvent>>>,
    last: Mutex<Option<mpsc::OwnedPermit<PeerEvent>>>,
}

/// Where a peer delivers what it receives.
pub(crate) enum Sink {
    Handler(Arc<dyn Handler>),
    /// The sender is dropped once `Disconnected` is delivered, so that the receiver ends.
    /// Boxed: most peers have a handler, and this variant would double every peer's size.
    Channel(Box<ChannelSink>),
}

impl Sink {
    pub(crate) fn channel(capacity: usize) -> (Sink, mpsc::Receiver<PeerEvent>) {
        let (tx, rx) = mpsc::channel(capacity.max(2));
        let last = tx.clone().try_reserve_owned().ok();
        (Sink::Channel(Box::new(ChannelSink { tx: Mutex::new(Some(tx)), last: Mutex::new(last) })), rx)
    }

    pub(crate) fn handler(&self) -> Option<&dyn Handler> {
        match self {
            Sink::Handler(h) => Some(h.as_ref()),
            Sink::Channel(_) => None,
        }
    }

    /// Sends `event` on the channel, waiting for room; a receiver that went away, or a channel
    /// already closed, just stops getting events.
    async fn send(tx: &Mutex<Option<mpsc::Sender<PeerEvent>>>, event: PeerEvent) {
        let sender = tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(sender) = sender {
            let _ = sender.send(event).await;
        }
    }

    pub(crate) async fn message(&self, peer: &Peer, message: Message, raw: Bytes) {
        match self {
            Sink::Handler(h) => h.on_message(peer, message, raw),
            // Boxed so that handler-driven peers do not carry the send's state in their task.
            Sink::Channel(c) => Box::pin(Sink::send(&c.tx, PeerEvent::Message { message, raw })).await,
        }
    }

    pub(crate) async fn raw_block(&self, peer: &Peer, raw: Bytes) {
        match self {
            Sink::Handler(h) => h.on_raw_block(peer, raw),
            Sink::Channel(c) => Box::pin(Sink::send(&c.tx, PeerEvent::RawBlock(raw))).await,
        }
    }

    pub(crate) async fn handshake(&self, peer: &Peer, remote: &RemoteInfo) {
        match self {
            Sink::Handler(h) => h.on_handshake(peer, remote),
            Sink::Channel(c) => Box::pin(Sink::send(&c.tx, PeerEvent::Handshake(remote.clone()))).await,
        }
    }

    /// The peer's last word. A handler that panics here is contained: the panic is logged and the
    /// peer still finishes ending.
    pub(crate) fn disconnected(&self, peer: &Peer, reason: &DisconnectReason) {
        match self {
            Sink::Handler(h) => {
                let call = std::panic::AssertUnwindSafe(|| h.on_disconnect(peer, reason));
                if let Err(panic) = std::panic::catch_unwind(call) {
                    tracing::warn!(panic = %super::panic::panic_message(&*panic), "on_disconnect panicked");
                }
            }
            Sink::Channel(c) => {
                let (tx, last) = (&c.tx, &c.last);
                let permit = last.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(permit) = permit {
                    permit.send(PeerEvent::Disconnected(reason.clone()));
                }
                // The last event is out: dropping the sender ends the receiver once it has read it.
                drop(tx.lock().unwrap_or_else(|e| e.into_inner()).take());
            }
        }
    }
}
