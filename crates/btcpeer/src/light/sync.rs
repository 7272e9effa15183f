//! The light client's task: headers, then filter headers cross-checked between peers, then filters
//! matched against the watch list, then the blocks that match; then it follows the chain.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::bip158::BlockFilter;
use bitcoin::hashes::Hash;
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::message_filter::CFHeaders;
use bitcoin::{Amount, Block, BlockHash, FilterHash, FilterHeader, OutPoint, ScriptBuf};
use tokio::sync::mpsc;

use super::headers::ChainState;
use super::peers::{LightPeer, PeerSet, Wake};
use super::store::Store;
use super::{Command, LightClientBuilder, LightError, LightEvent, RelevantTx, Stage, TxKind};
use crate::core::chain::check_outputs_in_filter;
use crate::peer::{NonceRegistry, PeerConfig, RequestError};

/// BIP157: at most 2,000 filter headers per `getcfheaders` (Core's `MAX_GETCFHEADERS_SIZE`).
const CFHEADERS_BATCH: u32 = 2_000;
/// How often a synced client asks its peers for headers when none announced a block.
const POLL: Duration = Duration::from_secs(30);
/// The basic filter type (BIP158).
const BASIC: u8 = 0;

fn now() -> u32 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// The chain as loaded from the data directory.
#[derive(Debug)]
pub(crate) struct State {
    pub chain: ChainState,
    pub store: Option<Store>,
    pub repaired: Option<String>,
}

impl State {
    pub(crate) fn open(network: bitcoin::Network, dir: Option<&Path>) -> Result<State, LightError> {
        let mut chain = ChainState::new(network);
        let (store, repaired) = match dir {
            Some(dir) => {
                let (store, loaded) = Store::open(dir, &mut chain, now())
                    .map_err(|e| LightError::Store(format!("{}: {e}", dir.display())))?;
                (Some(store), loaded)
            }
            None => (None, None),
        };
        Ok(State { chain, store, repaired })
    }
}

/// Whether `filter` (a BIP158 basic filter of block `hash`) matches any (or, with `all`, every)
/// script; an error for a filter whose element count its bytes cannot hold (hostile: the count
/// would overflow the decoder's arithmetic).
pub(crate) fn filter_matches<'a>(
    filter: &[u8],
    hash: &BlockHash,
    scripts: impl Iterator<Item = &'a [u8]>,
    all: bool,
) -> Result<bool, &'static str> {
    check_count(filter)?;
    let f = BlockFilter::new(filter);
    let r = if all { f.match_all(hash, scripts) } else { f.match_any(hash, scripts) };
    r.map_err(|_| "a filter that does not decode")
}

/// A filter whose element count its bytes can hold: rust-bitcoin's matcher multiplies the count
/// unchecked (an overflow panic on a hostile count in a debug build).
fn check_count(filter: &[u8]) -> Result<(), &'static str> {
    let mut cursor = filter;
    let n = bitcoin::consensus::Decodable::consensus_decode(&mut cursor)
        .map(|v: bitcoin::VarInt| v.0)
        .map_err(|_| "a filter without its element count")?;
    // Each element takes at least P + 1 = 20 bits.
    if n.saturating_mul(20) > u64::try_from(cursor.len()).unwrap_or(u64::MAX).saturating_mul(8) {
        return Err("a filter claiming more elements than its bytes hold");
    }
    Ok(())
}

/// An output paying to a watched script.
#[derive(Debug, Clone, Copy)]
struct Coin {
    value: Amount,
    height: u32,
    /// The height of the block that spent it.
    spent: Option<u32>,
}

struct Sync {
    settings: LightClientBuilder,
    chain: ChainState,
    store: Option<Store>,
    peers: PeerSet,
    events: mpsc::Sender<LightEvent>,
    watched: HashSet<ScriptBuf>,
    coins: HashMap<OutPoint, Coin>,
    /// The next height whose filter is to be matched.
    scanned: u32,
    /// Headers are to be asked for (at start, on an announcement, every [`POLL`]).
    headers_stale: bool,
    /// The tip and scan height last reported as synced.
    synced: Option<(BlockHash, u32)>,
}

/// Stops the sync with a reason.
type Step = Result<bool, LightError>;

pub(crate) async fn run(
    settings: LightClientBuilder,
    state: State,
    events: mpsc::Sender<LightEvent>,
    mut commands: mpsc::Receiver<Command>,
) {
    let (wake_tx, mut wake) = mpsc::channel(1);
    let height = i32::try_from(state.chain.tip_height()).unwrap_or(i32::MAX);
    let config = PeerConfig::builder(settings.network.clone())
        .v2(settings.v2)
        .services(ServiceFlags::WITNESS)
        .start_height(height)
        .relay(false)
        .nonce_registry(NonceRegistry::new())
        .build();
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            let _ = events.send(LightEvent::Stopped(LightError::Store(e.to_string()))).await;
            return;
        }
    };
    let peers = PeerSet::new(
        settings.peers.clone(),
        config,
        Wake { wake: wake_tx, stray_filters: Default::default() },
        settings.target_peers,
    );
    let mut sync = Sync {
        watched: settings.watch.iter().cloned().collect(),
        scanned: settings.from_height,
        settings,
        chain: state.chain,
        store: state.store,
        peers,
        events,
        coins: HashMap::new(),
        headers_stale: true,
        synced: None,
    };
    let stopped = sync.main(&mut wake, &mut commands).await;
    for p in &sync.peers.live {
        p.peer.disconnect();
    }
    let _ = sync.events.send(LightEvent::Stopped(stopped)).await;
}

impl Sync {
    async fn emit(&self, event: LightEvent) -> Result<(), LightError> {
        self.events.send(event).await.map_err(|_| LightError::Shutdown)
    }

    async fn main(&mut self, wake: &mut mpsc::Receiver<()>, commands: &mut mpsc::Receiver<Command>) -> LightError {
        loop {
            while let Ok(command) = commands.try_recv() {
                self.command(command).await;
            }
            self.peers.reap(&self.events).await;
            self.peers.fill(&self.events).await;
            if self.peers.live.is_empty() {
                return LightError::NoHonestPeer(self.peers.reasons.clone());
            }
            match self.step().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => return e,
            }
            let tip = self.chain.tip();
            if self.synced != Some((tip, self.scanned)) {
                self.synced = Some((tip, self.scanned));
                let height = self.chain.tip_height();
                if let Err(e) = self.emit(LightEvent::Synced { height, tip }).await {
                    return e;
                }
            }
            tokio::select! {
                _ = wake.recv() => self.headers_stale = true,
                command = commands.recv() => match command {
                    Some(c) => self.command(c).await,
                    None => return LightError::Shutdown,
                },
                () = tokio::time::sleep(POLL) => self.headers_stale = true,
            }
        }
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Watch { scripts, from } => {
                self.watched.extend(scripts);
                self.scanned = self.scanned.min(from);
                self.synced = None;
            }
            Command::Broadcast { tx, reply } => {
                let mut sends = tokio::task::JoinSet::new();
                for p in self.peers.live.clone() {
                    let tx = tx.clone();
                    sends.spawn(async move { (p.addr, p.peer.broadcast_transaction(tx).await) });
                }
                let mut outcomes = Vec::new();
                while let Some(done) = sends.join_next().await {
                    if let Ok(o) = done {
                        outcomes.push(o);
                    }
                }
                let _ = reply.send(outcomes);
            }
        }
    }

    /// One piece of work; `Ok(false)` when there is nothing left to do.
    async fn step(&mut self) -> Step {
        if self.headers_stale {
            self.headers_stale = false;
            self.sync_headers().await?;
            return Ok(true);
        }
        let tip = self.chain.tip_height();
        if self.chain.filter_headers_len() <= tip {
            self.sync_filter_headers().await?;
            return Ok(true);
        }
        if self.scanned <= tip {
            self.scan_filters().await?;
            return Ok(true);
        }
        Ok(false)
    }

    fn store_error(&self, e: std::io::Error) -> LightError {
        let dir = self.store.as_ref().map(|s| s.dir().display().to_string()).unwrap_or_default();
        LightError::Store(format!("{dir}: {e}"))
    }

    /// Asks each peer for the headers after our tip until it has no more.
    async fn sync_headers(&mut self) -> Result<(), LightError> {
        for p in self.peers.live.clone() {
            loop {
                let locator = self.chain.locator();
                let answer = p
                    .peer
                    .requests()
                    .timeout(self.settings.timeout)
                    .get_headers(&locator, BlockHash::all_zeros())
                    .await;
                let headers = match answer {
                    Ok(h) => h,
                    Err(e) => {
                        self.peers.drop_peer(&p.addr, format!("headers: {e}"), &self.events).await;
                        break;
                    }
                };
                let full = headers.len() >= 2_000;
                let before = self.chain.tip();
                match self.chain.connect(&headers, now()) {
                    Ok(done) => {
                        if let Some(store) = &mut self.store {
                            if let Err(e) = store.apply_headers(&done) {
                                return Err(self.store_error(e));
                            }
                        }
                        let connected: Vec<(u32, BlockHash)> =
                            done.connected.iter().map(|c| (c.height, c.hash)).collect();
                        if let Some(first) = connected.first() {
                            self.connected(&done.disconnected, &connected, before, first.0).await?;
                        }
                        if !full || connected.is_empty() {
                            break;
                        }
                    }
                    Err(e) => {
                        self.peers.drop_peer(&p.addr, format!("invalid headers: {e}"), &self.events).await;
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    async fn connected(
        &mut self,
        disconnected: &[(u32, BlockHash)],
        connected: &[(u32, BlockHash)],
        old_tip: BlockHash,
        first: u32,
    ) -> Result<(), LightError> {
        for (height, hash) in disconnected {
            self.emit(LightEvent::BlockDisconnected { height: *height, hash: *hash }).await?;
        }
        if !disconnected.is_empty() {
            let fork = first.saturating_sub(1);
            // Outputs of the blocks gone are gone; spends in them are undone.
            self.coins.retain(|_, c| c.height <= fork);
            for c in self.coins.values_mut() {
                if c.spent.is_some_and(|s| s > fork) {
                    c.spent = None;
                }
            }
            self.scanned = self.scanned.min(first);
            self.emit(LightEvent::Reorg {
                fork_height: fork,
                disconnected: u32::try_from(disconnected.len()).unwrap_or(u32::MAX),
                old_tip,
                new_tip: self.chain.tip(),
            })
            .await?;
        }
        let following = self.synced.is_some();
        if following {
            for (height, hash) in connected {
                self.emit(LightEvent::BlockConnected { height: *height, hash: *hash }).await?;
            }
        }
        let target = self.chain.tip_height();
        self.emit(LightEvent::Progress { stage: Stage::Headers, height: target, target }).await
    }

    /// Fetches the next batch of filter headers from every peer and keeps it when they agree;
    /// when they do not, the block at the first height they differ decides who lied.
    async fn sync_filter_headers(&mut self) -> Result<(), LightError> {
        let start = self.chain.filter_headers_len();
        let stop_height = start.saturating_add(CFHEADERS_BATCH - 1).min(self.chain.tip_height());
        let Some(stop) = self.chain.hash(stop_height) else { return Ok(()) };
        let prev = match start.checked_sub(1) {
            Some(h) => self.chain.filter_header(h).unwrap_or_else(FilterHeader::all_zeros),
            None => FilterHeader::all_zeros(),
        };
        let count = usize::try_from(stop_height.saturating_sub(start).saturating_add(1)).unwrap_or(0);
        let mut asks = tokio::task::JoinSet::new();
        for p in self.peers.live.clone() {
            let timeout = self.settings.timeout;
            asks.spawn(async move {
                let r = p.peer.requests().timeout(timeout).get_cfheaders(BASIC, start, stop).await;
                (p.addr, r)
            });
        }
        let mut answers: Vec<(String, Vec<FilterHash>)> = Vec::new();
        while let Some(done) = asks.join_next().await {
            let Ok((addr, r)) = done else { continue };
            match check_cfheaders(r, stop, prev, count) {
                Ok(hashes) => answers.push((addr, hashes)),
                Err(reason) => self.peers.drop_peer(&addr, reason, &self.events).await,
            }
        }
        let Some((_, first)) = answers.first() else { return Ok(()) };
        let differ = (0..count).find(|&i| {
            let h = first.get(i);
            answers.iter().any(|(_, a)| a.get(i) != h)
        });
        match differ {
            None => {
                let hashes = first.clone();
                if let Err(e) = self.chain.connect_filter_hashes(start, stop, &hashes) {
                    // Every peer agrees on what the chain refuses (a checkpoint, say): none is kept.
                    for (addr, _) in &answers {
                        self.peers.drop_peer(addr, format!("filter headers: {e}"), &self.events).await;
                    }
                    return Ok(());
                }
                if let Some(store) = &mut self.store {
                    if let Err(e) = store.append_filter_hashes(start, &hashes) {
                        return Err(self.store_error(e));
                    }
                }
                let target = self.chain.tip_height();
                self.emit(LightEvent::Progress { stage: Stage::FilterHeaders, height: stop_height, target }).await
            }
            Some(i) => {
                let height = start.saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
                self.resolve(height, i, answers).await
            }
        }
    }

    /// Peers disagree on the filter at `height` (index `i` of their answers): fetch the block and
    /// each side's filter; a filter that lacks one of the block's output scripts is a lie (as
    /// neutrino's `resolveConflict` decides), and its side is dropped; if the block cannot tell,
    /// the majority wins.
    async fn resolve(
        &mut self,
        height: u32,
        i: usize,
        answers: Vec<(String, Vec<FilterHash>)>,
    ) -> Result<(), LightError> {
        let Some(hash) = self.chain.hash(height) else { return Ok(()) };
        let Some(block) = self.fetch_block(height, hash).await? else { return Ok(()) };
        let mut sides: Vec<(FilterHash, Vec<String>)> = Vec::new();
        for (addr, a) in &answers {
            let Some(fh) = a.get(i) else { continue };
            match sides.iter_mut().find(|(h, _)| h == fh) {
                Some((_, addrs)) => addrs.push(addr.clone()),
                None => sides.push((*fh, vec![addr.clone()])),
            }
        }
        let mut honest = Vec::new();
        let mut liars = Vec::new();
        for (fh, addrs) in &sides {
            let mut verdict = None;
            for addr in addrs {
                let Some(p) = self.peers.live.iter().find(|p| &p.addr == addr).cloned() else { continue };
                let r = p.peer.requests().timeout(self.settings.timeout).get_cfilters(BASIC, height, hash).await;
                let filter = match r {
                    Ok(f) => f.into_iter().find(|f| f.block_hash == hash),
                    Err(_) => None,
                };
                let Some(filter) = filter else { continue };
                if FilterHash::hash(&filter.filter) != *fh {
                    verdict = Some(false);
                    break;
                }
                let ok = check_count(&filter.filter).is_ok() && check_outputs_in_filter(&filter.filter, &block).is_ok();
                verdict = Some(ok);
                break;
            }
            match verdict {
                Some(true) => honest.push((fh, addrs)),
                Some(false) => liars.extend(addrs.iter().map(|a| {
                    (
                        a.clone(),
                        format!("filter headers contradicted by block {height}: its filter lacks the block's outputs"),
                    )
                })),
                None => liars
                    .extend(addrs.iter().map(|a| (a.clone(), format!("withheld the filter at {height} in a dispute")))),
            }
        }
        if honest.len() > 1 {
            // The block cannot tell (the sides differ on previous-output scripts): majority.
            honest.sort_by_key(|(_, addrs)| std::cmp::Reverse(addrs.len()));
            for (_, addrs) in honest.iter().skip(1) {
                liars.extend(addrs.iter().map(|a| (a.clone(), format!("outvoted on the filter header at {height}"))));
            }
        }
        for (addr, reason) in liars {
            self.peers.drop_peer(&addr, reason, &self.events).await;
        }
        Ok(())
    }

    /// Block `hash` at `height` from a peer, its merkle root checked; `None` when no peer gave it.
    async fn fetch_block(&mut self, height: u32, hash: BlockHash) -> Result<Option<Block>, LightError> {
        for _ in 0..self.peers.live.len() {
            let Some(p) = self.peers.pick() else { break };
            match p.peer.requests().timeout(self.settings.timeout).get_block(hash).await {
                Ok(block) if block.block_hash() == hash && block.check_merkle_root() => return Ok(Some(block)),
                Ok(_) => {
                    let reason = format!("block {height} does not match its header (merkle root)");
                    self.peers.drop_peer(&p.addr, reason, &self.events).await;
                }
                Err(RequestError::NotFound) => {}
                Err(e) => self.peers.drop_peer(&p.addr, format!("block {height}: {e}"), &self.events).await,
            }
        }
        Ok(None)
    }

    /// Fetches the next batches of filters, one batch from each peer at once, checks each filter
    /// against its filter header, and scans (in height order) the blocks whose filter matches the
    /// watch list. A peer whose batch fails is dropped; the batches after it wait for the next round.
    async fn scan_filters(&mut self) -> Result<(), LightError> {
        let top = self.chain.filter_headers_len().saturating_sub(1).min(self.chain.tip_height());
        let mut asks = tokio::task::JoinSet::new();
        let mut next = self.scanned;
        let mut rounds = 0usize;
        for (i, p) in self.peers.live.clone().into_iter().enumerate() {
            if next > top {
                break;
            }
            let start = next;
            let stop_height = start.saturating_add(self.settings.batch.saturating_sub(1)).min(top);
            let Some(stop) = self.chain.hash(stop_height) else { break };
            let timeout = self.settings.timeout;
            asks.spawn(async move {
                let r = p.peer.requests().timeout(timeout).get_cfilters(BASIC, start, stop).await;
                (i, p, start, stop_height, r)
            });
            next = stop_height.saturating_add(1);
            rounds = rounds.saturating_add(1);
        }
        let mut answers = Vec::with_capacity(rounds);
        while let Some(done) = asks.join_next().await {
            if let Ok(a) = done {
                answers.push(a);
            }
        }
        answers.sort_by_key(|a| a.0);
        let mut failed = false;
        for (_, p, start, stop_height, answer) in answers {
            match self.check_filters(&p, start, stop_height, answer).await {
                Some(matched) if !failed => {
                    for (height, hash) in matched {
                        let Some(block) = self.fetch_block(height, hash).await? else {
                            // No peer gave the block: this batch again, with the peers left.
                            return Ok(());
                        };
                        self.scan_block(&block, height, hash).await?;
                        let target = self.chain.tip_height();
                        self.emit(LightEvent::Progress { stage: Stage::Blocks, height, target }).await?;
                    }
                    self.scanned = stop_height.saturating_add(1);
                    let target = self.chain.tip_height();
                    self.emit(LightEvent::Progress { stage: Stage::Filters, height: stop_height, target }).await?;
                }
                Some(_) => {}
                None => failed = true,
            }
        }
        Ok(())
    }

    /// The heights (with hashes) of a batch whose filters match the watch list, or `None` when
    /// the peer failed the batch (it is then dropped with the reason).
    async fn check_filters(
        &mut self,
        p: &LightPeer,
        start: u32,
        stop_height: u32,
        answer: Result<Vec<bitcoin::p2p::message_filter::CFilter>, RequestError>,
    ) -> Option<Vec<(u32, BlockHash)>> {
        let filters = match answer {
            Ok(f) => f,
            Err(RequestError::Timeout(_)) if self.peers.wake.sent_stray_filter(&p.peer) => {
                let reason = format!("a filter in {start}..={stop_height} that does not match its filter header");
                self.peers.drop_peer(&p.addr, reason, &self.events).await;
                return None;
            }
            Err(RequestError::Timeout(t)) => {
                let reason = format!("withheld filters: no answer within {t:?}");
                self.peers.drop_peer(&p.addr, reason, &self.events).await;
                return None;
            }
            Err(e) => {
                self.peers.drop_peer(&p.addr, format!("filters: {e}"), &self.events).await;
                return None;
            }
        };
        let mut matched = Vec::new();
        let mut height = start;
        for f in &filters {
            let Some(hash) = self.chain.hash(height) else { break };
            if f.block_hash != hash || self.chain.filters.check_filter_at(height, hash, &f.filter).is_err() {
                let reason = format!("a filter at {height} that does not match its filter header");
                self.peers.drop_peer(&p.addr, reason, &self.events).await;
                return None;
            }
            match filter_matches(&f.filter, &hash, self.watched.iter().map(|s| s.as_bytes()), false) {
                Ok(true) => matched.push((height, hash)),
                Ok(false) => {}
                Err(reason) => {
                    self.peers.drop_peer(&p.addr, format!("{reason} at {height}"), &self.events).await;
                    return None;
                }
            }
            height = height.saturating_add(1);
            if height > stop_height {
                break;
            }
        }
        if height <= stop_height {
            let asked = stop_height.saturating_sub(start).saturating_add(1);
            let reason = format!("withheld filters: {} of {asked}", filters.len());
            self.peers.drop_peer(&p.addr, reason, &self.events).await;
            return None;
        }
        Some(matched)
    }

    async fn scan_block(&mut self, block: &Block, height: u32, hash: BlockHash) -> Result<(), LightError> {
        for tx in &block.txdata {
            let txid = tx.compute_txid();
            for (vin, input) in tx.input.iter().enumerate() {
                let Some(coin) = self.coins.get_mut(&input.previous_output) else { continue };
                if coin.spent.is_some_and(|s| s <= height) {
                    continue;
                }
                coin.spent = Some(height);
                let kind = TxKind::Spent {
                    vin: u32::try_from(vin).unwrap_or(u32::MAX),
                    outpoint: input.previous_output,
                    value: coin.value,
                };
                self.emit(LightEvent::Tx(RelevantTx { txid, kind, height, block: hash, tx: tx.clone() })).await?;
            }
            for (vout, output) in tx.output.iter().enumerate() {
                if !self.watched.contains(&output.script_pubkey) {
                    continue;
                }
                let vout = u32::try_from(vout).unwrap_or(u32::MAX);
                let coin = Coin { value: output.value, height, spent: None };
                if self.coins.insert(OutPoint { txid, vout }, coin).is_some_and(|c| c.height == height) {
                    // Seen already (a rescan over the same block).
                }
                let kind = TxKind::Received { vout, value: output.value, script: output.script_pubkey.clone() };
                self.emit(LightEvent::Tx(RelevantTx { txid, kind, height, block: hash, tx: tx.clone() })).await?;
            }
        }
        Ok(())
    }
}

/// The filter hashes of a `cfheaders` answer, or why the peer is dropped.
fn check_cfheaders(
    r: Result<CFHeaders, RequestError>,
    stop: BlockHash,
    prev: FilterHeader,
    count: usize,
) -> Result<Vec<FilterHash>, String> {
    match r {
        Err(RequestError::Timeout(t)) => Err(format!("withheld filter headers: no answer within {t:?}")),
        Err(e) => Err(format!("filter headers: {e}")),
        Ok(cf) if cf.stop_hash != stop || cf.filter_hashes.len() != count => {
            Err(format!("{} filter headers where {count} were asked for", cf.filter_hashes.len()))
        }
        Ok(cf) if cf.previous_filter_header != prev => {
            Err("filter headers that do not connect to those agreed before".to_string())
        }
        Ok(cf) => Ok(cf.filter_hashes),
    }
}
