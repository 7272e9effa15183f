//! [`ChainServer`]: a handler that serves a [`SyntheticChain`] as a full node with BIP157 filters
//! does, honestly or not ([`Misbehaviour`]), and can switch to a heavier fork and announce it.

// Not fed by the network: fixtures built by the application itself.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bitcoin::hashes::Hash;
use bitcoin::p2p::message_filter::{CFCheckpt, CFHeaders, CFilter, GetCFCheckpt, GetCFHeaders, GetCFilters};
use bitcoin::{FilterHash, FilterHeader};

use super::SyntheticChain;
use crate::peer::{Handler, Peer, RemoteInfo, WeakPeer};
use crate::wire::types::{GetBlocksMessage, GetHeadersMessage};
use crate::wire::{Inventory, Message};

/// The filter a lying server serves for every block: no element at all (BIP158's empty set).
const EMPTY_FILTER: [u8; 1] = [0];

/// How a [`ChainServer`] departs from the truth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Misbehaviour {
    /// Serves the chain, its filters and filter headers as they are.
    #[default]
    Honest,
    /// Serves empty filters and the filter headers (and checkpoints) that commit to them: a
    /// consistent lie, which only another peer or the block itself can expose.
    WrongFilterHeaders,
    /// Serves the true filter headers but empty filters, which do not hash to them.
    WrongFilters,
    /// Never answers `getcfilters`.
    WithholdFilters,
    /// Serves filters without the scripts of the outputs each block spends (so spends of a
    /// watched script go unseen), and the filter headers that commit to them: a lie the block's
    /// own outputs cannot expose.
    OmitSpends,
}

/// How many requests of each kind a [`ChainServer`] answered (all its connections together).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServedRequests {
    /// `getheaders`.
    pub headers: u64,
    /// `getcfheaders`.
    pub cfheaders: u64,
    /// `getcfilters`.
    pub cfilters: u64,
    /// Blocks sent in answer to `getdata`.
    pub blocks: u64,
}

/// The chain being served, with the filters and filter headers a lying server serves instead.
#[derive(Debug)]
struct Served {
    chain: Arc<SyntheticChain>,
    lying_filters: Vec<Vec<u8>>,
    lying_headers: Vec<FilterHeader>,
}

impl Served {
    fn new(chain: Arc<SyntheticChain>, behaviour: Misbehaviour) -> Self {
        let lying_filters: Vec<Vec<u8>> = match behaviour {
            Misbehaviour::WrongFilterHeaders => (0..chain.len()).map(|_| EMPTY_FILTER.to_vec()).collect(),
            Misbehaviour::OmitSpends => (0..chain.len())
                .map(|h| {
                    let no_prevouts = |_: &bitcoin::OutPoint| Ok(bitcoin::ScriptBuf::new());
                    bitcoin::bip158::BlockFilter::new_script_filter(chain.block(h), no_prevouts)
                        .map(|f| f.content)
                        .unwrap_or_default()
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut prev = FilterHeader::all_zeros();
        let lying_headers = lying_filters
            .iter()
            .map(|f| {
                prev = bitcoin::bip158::BlockFilter::new(f).filter_header(&prev);
                prev
            })
            .collect();
        Served { chain, lying_filters, lying_headers }
    }
}

#[derive(Debug)]
struct Inner {
    served: RwLock<Arc<Served>>,
    behaviour: Misbehaviour,
    peers: Mutex<Vec<WeakPeer>>,
    transactions: Mutex<Vec<bitcoin::Transaction>>,
    headers: AtomicU64,
    cfheaders: AtomicU64,
    cfilters: AtomicU64,
    blocks: AtomicU64,
}

/// A handler that serves a [`SyntheticChain`] the way a full node does: `getheaders` (up to 2,000
/// headers), `getblocks` (up to 500 announcements), `getdata` for blocks, and BIP157's
/// `getcfilters` (up to 1,000), `getcfheaders` (up to 2,000) and `getcfcheckpt`. Clones share
/// their state: [`ChainServer::reorg`] on one switches what every connection is served.
///
/// ```
/// use std::sync::Arc;
/// use btcpeer::testing::{ChainBuilder, ChainServer, Misbehaviour, SyntheticChain};
///
/// let chain = Arc::new(SyntheticChain::new(bitcoin::Network::Regtest, 20));
/// let honest = ChainServer::new(chain.clone());
/// let liar = ChainServer::misbehaving(chain.clone(), Misbehaviour::WrongFilterHeaders);
/// assert_eq!(liar.misbehaviour(), Misbehaviour::WrongFilterHeaders);
/// // A heavier fork from height 15, served and announced to every connected peer.
/// let mut fork = ChainBuilder::fork(&chain, 15, 1);
/// fork.mine(10);
/// honest.reorg(Arc::new(fork.build()));
/// assert_eq!(honest.chain().len(), 26);
/// ```
#[derive(Debug, Clone)]
pub struct ChainServer {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ChainServer {
    /// Serves `chain` honestly.
    pub fn new(chain: Arc<SyntheticChain>) -> Self {
        Self::misbehaving(chain, Misbehaviour::Honest)
    }

    /// Serves `chain` with `behaviour`.
    pub fn misbehaving(chain: Arc<SyntheticChain>, behaviour: Misbehaviour) -> Self {
        ChainServer {
            inner: Arc::new(Inner {
                served: RwLock::new(Arc::new(Served::new(chain, behaviour))),
                behaviour,
                peers: Mutex::new(Vec::new()),
                transactions: Mutex::new(Vec::new()),
                headers: AtomicU64::new(0),
                cfheaders: AtomicU64::new(0),
                cfilters: AtomicU64::new(0),
                blocks: AtomicU64::new(0),
            }),
        }
    }

    /// How this server departs from the truth.
    pub fn misbehaviour(&self) -> Misbehaviour {
        self.inner.behaviour
    }

    /// The chain served now.
    pub fn chain(&self) -> Arc<SyntheticChain> {
        self.served().chain.clone()
    }

    /// What this server answered so far.
    pub fn requests(&self) -> ServedRequests {
        let i = &self.inner;
        ServedRequests {
            headers: i.headers.load(Ordering::Relaxed),
            cfheaders: i.cfheaders.load(Ordering::Relaxed),
            cfilters: i.cfilters.load(Ordering::Relaxed),
            blocks: i.blocks.load(Ordering::Relaxed),
        }
    }

    /// The transactions peers sent (the server asks for every transaction announced to it).
    pub fn transactions(&self) -> Vec<bitcoin::Transaction> {
        lock(&self.inner.transactions).clone()
    }

    /// Serves `chain` from now on (a longer chain, or a heavier fork of the old one) and announces
    /// its tip (`inv`) to every connected peer, as a node does when its best chain changes.
    pub fn reorg(&self, chain: Arc<SyntheticChain>) {
        let tip = chain.tip();
        let served = Arc::new(Served::new(chain, self.inner.behaviour));
        *self.inner.served.write().unwrap_or_else(std::sync::PoisonError::into_inner) = served;
        let peers: Vec<Peer> = {
            let mut peers = lock(&self.inner.peers);
            peers.retain(|p| p.upgrade().is_some());
            peers.iter().filter_map(WeakPeer::upgrade).collect()
        };
        for peer in peers {
            let _ = peer.queue_message(&Message::Inv(vec![Inventory::Block(tip)]));
        }
    }

    fn served(&self) -> Arc<Served> {
        self.inner.served.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl Handler for ChainServer {
    fn start_height(&self) -> i32 {
        i32::try_from(self.chain().len().saturating_sub(1)).unwrap_or(i32::MAX)
    }

    fn on_handshake(&self, peer: &Peer, _remote: &RemoteInfo) {
        lock(&self.inner.peers).push(peer.downgrade());
    }

    fn on_inv(&self, peer: &Peer, inv: Vec<Inventory>) {
        let wanted: Vec<Inventory> = inv
            .into_iter()
            .filter(|i| matches!(i, Inventory::Tx(_) | Inventory::WTx(_) | Inventory::WitnessTx(_)))
            .collect();
        if !wanted.is_empty() {
            let _ = peer.queue_message(&Message::GetData(wanted));
        }
    }

    fn on_tx(&self, _peer: &Peer, tx: bitcoin::Transaction) {
        let mut txs = lock(&self.inner.transactions);
        // A test fixture: a few transactions at most.
        if txs.len() < 1_000 {
            txs.push(tx);
        }
    }

    fn on_getheaders(&self, peer: &Peer, msg: GetHeadersMessage) {
        self.inner.headers.fetch_add(1, Ordering::Relaxed);
        let headers = self.chain().headers_after(&msg.locator_hashes, msg.stop_hash, 2_000);
        let _ = peer.queue_message(&Message::Headers(headers));
    }

    fn on_getblocks(&self, peer: &Peer, msg: GetBlocksMessage) {
        let hashes = self.chain().blocks_after(&msg.locator_hashes, msg.stop_hash, 500);
        if !hashes.is_empty() {
            let _ = peer.queue_message(&Message::Inv(hashes.into_iter().map(Inventory::Block).collect()));
        }
    }

    fn on_getcfilters(&self, peer: &Peer, msg: GetCFilters) {
        self.inner.cfilters.fetch_add(1, Ordering::Relaxed);
        if self.inner.behaviour == Misbehaviour::WithholdFilters {
            return;
        }
        let served = self.served();
        let chain = &served.chain;
        let Some(stop) = chain.height_of(&msg.stop_hash) else { return };
        let start = usize::try_from(msg.start_height).unwrap_or(usize::MAX);
        // Core serves at most 1,000 per request (`MAX_GETCFILTERS_SIZE`).
        for height in (start..=stop).take(1_000) {
            let filter = match served.lying_filters.get(height) {
                Some(lie) => lie.clone(),
                None if self.inner.behaviour == Misbehaviour::WrongFilters => EMPTY_FILTER.to_vec(),
                None => chain.filter(height),
            };
            let _ = peer.queue_message(&Message::CFilter(CFilter {
                filter_type: 0,
                block_hash: chain.hash(height),
                filter,
            }));
        }
    }

    fn on_getcfheaders(&self, peer: &Peer, msg: GetCFHeaders) {
        self.inner.cfheaders.fetch_add(1, Ordering::Relaxed);
        let served = self.served();
        let chain = &served.chain;
        let Some(stop) = chain.height_of(&msg.stop_hash) else { return };
        let start = usize::try_from(msg.start_height).unwrap_or(usize::MAX);
        // Core serves at most 2,000 per request (`MAX_GETCFHEADERS_SIZE`).
        if start > stop || stop - start >= 2_000 {
            return;
        }
        let lying = !served.lying_headers.is_empty();
        let header_at = |h: usize| if lying { served.lying_headers[h] } else { chain.filter_header(h) };
        let previous_filter_header = start.checked_sub(1).map_or_else(FilterHeader::all_zeros, header_at);
        let filter_hashes = (start..=stop)
            .map(|h| if lying { FilterHash::hash(&served.lying_filters[h]) } else { chain.filter_hash(h) })
            .collect();
        let headers = CFHeaders { filter_type: 0, stop_hash: msg.stop_hash, previous_filter_header, filter_hashes };
        let _ = peer.queue_message(&Message::CFHeaders(headers));
    }

    fn on_getcfcheckpt(&self, peer: &Peer, msg: GetCFCheckpt) {
        let served = self.served();
        let chain = &served.chain;
        let Some(stop) = chain.height_of(&msg.stop_hash) else { return };
        let lying = !served.lying_headers.is_empty();
        let filter_headers = (1..=stop / 1_000)
            .map(|k| if lying { served.lying_headers[k * 1_000] } else { chain.filter_header(k * 1_000) })
            .collect();
        let _ = peer.queue_message(&Message::CFCheckpt(CFCheckpt {
            filter_type: 0,
            stop_hash: msg.stop_hash,
            filter_headers,
        }));
    }

    fn on_getdata(&self, peer: &Peer, items: Vec<Inventory>) {
        let chain = self.chain();
        let mut missing = Vec::new();
        for item in items {
            let found = match item {
                Inventory::Block(h) | Inventory::WitnessBlock(h) => chain.height_of(&h),
                _ => None,
            };
            match found {
                // `MSG_BLOCK` asks for the block without witnesses (Core's `TX_NO_WITNESS`).
                Some(height) if matches!(item, Inventory::Block(_)) => {
                    self.inner.blocks.fetch_add(1, Ordering::Relaxed);
                    let _ = peer.queue_without_witness(&Message::Block(chain.block(height).clone()));
                }
                Some(height) => {
                    self.inner.blocks.fetch_add(1, Ordering::Relaxed);
                    let _ = peer.queue_message(&Message::Block(chain.block(height).clone()));
                }
                None => missing.push(item),
            }
        }
        if !missing.is_empty() {
            let _ = peer.queue_message(&Message::NotFound(missing));
        }
    }
}
