//! The light client's task: headers, then filter headers cross-checked between peers, then filters
//! matched against the watch list, then the blocks that match; then it follows the chain.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::hashes::Hash;
use bitcoin::p2p::ServiceFlags;
use bitcoin::{Amount, Block, BlockHash, OutPoint, ScriptBuf};
use tokio::sync::mpsc;

use super::headers::{ChainState, ChainStateError};
use super::peers::{LightPeer, PeerSet, Wake};
use super::{Command, LightClientBuilder, LightError, LightEvent, Stage};
use crate::peer::{NonceRegistry, PeerConfig, RequestError};

/// BIP157: at most 2,000 filter headers per `getcfheaders` (Core's `MAX_GETCFHEADERS_SIZE`).
pub(super) const CFHEADERS_BATCH: u32 = 2_000;
/// How often a synced client asks its peers for headers when none announced a block.
const POLL: Duration = Duration::from_secs(30);
/// How long to wait before asking again for a block no peer gave.
const BLOCK_RETRY: Duration = Duration::from_secs(1);
/// The basic filter type (BIP158).
pub(super) const BASIC: u8 = 0;

pub(super) fn now() -> u32 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// The chain as loaded from the data directory.
#[derive(Debug)]
pub(crate) struct State {
    pub chain: ChainState,
    pub repaired: Option<String>,
}

impl State {
    pub(crate) fn open(network: bitcoin::Network, dir: Option<&Path>) -> Result<State, LightError> {
        let (chain, repairs) = ChainState::open(network, dir).map_err(|e| {
            LightError::Store(format!("{}: {e}", dir.map(|d| d.display().to_string()).unwrap_or_default()))
        })?;
        let repaired = (!repairs.is_empty()).then(|| repairs.join("; "));
        Ok(State { chain, repaired })
    }
}

/// An output paying to a watched script.
#[derive(Debug, Clone, Copy)]
pub(super) struct Coin {
    pub(super) value: Amount,
    pub(super) height: u32,
    /// The height of the block that spent it.
    pub(super) spent: Option<u32>,
}

pub(super) struct Sync {
    pub(super) settings: LightClientBuilder,
    pub(super) chain: ChainState,
    pub(super) peers: PeerSet,
    pub(super) events: mpsc::Sender<LightEvent>,
    pub(super) watched: HashSet<ScriptBuf>,
    pub(super) coins: HashMap<OutPoint, Coin>,
    /// The next height whose filter is to be matched.
    pub(super) scanned: u32,
    /// Headers are to be asked for (at start, on an announcement, every [`POLL`]).
    pub(super) headers_stale: bool,
    /// The tip and scan height last reported as synced.
    pub(super) synced: Option<(BlockHash, u32)>,
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
        Wake { wake: wake_tx, tips: Default::default() },
        settings.target_peers,
    );
    let mut sync = Sync {
        watched: settings.watch.iter().cloned().collect(),
        scanned: settings.from_height,
        settings,
        chain: state.chain,
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
    pub(super) async fn emit(&self, event: LightEvent) -> Result<(), LightError> {
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

    /// Whether `p` has the block at `height` of our chain, as far as we know: its last header or
    /// announcement is on our chain at `height` or above (one off our chain: it is on another
    /// branch, or behind), else the height it gave in its version message.
    fn has_height(&self, p: &LightPeer, height: u32) -> bool {
        match self.peers.wake.tip_of(&p.peer) {
            Some(tip) => self.chain.headers.height_of(&tip).is_some_and(|h| h >= height),
            None => u32::try_from(p.peer.last_block_height()).is_ok_and(|h| h >= height),
        }
    }

    /// The peers that have the block at `height` (all of them when none has, as far as we know).
    pub(super) fn peers_with(&self, height: u32) -> Vec<LightPeer> {
        let with: Vec<LightPeer> = self.peers.live.iter().filter(|p| self.has_height(p, height)).cloned().collect();
        if with.is_empty() { self.peers.live.clone() } else { with }
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
        // Nothing watched: no filter to fetch (a later `watch` rescans from the height it gives).
        if self.scanned <= tip && !self.watched.is_empty() {
            self.scan_filters().await?;
            return Ok(true);
        }
        Ok(false)
    }

    pub(super) fn store_error(&self, e: impl std::fmt::Display) -> LightError {
        let dir = self.chain.dir().map(|d| d.display().to_string()).unwrap_or_default();
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
                if let Some(last) = headers.last() {
                    self.peers.wake.set_tip(&p.peer, last.block_hash());
                }
                let full = headers.len() >= 2_000;
                let before = self.chain.tip();
                match self.chain.connect(&headers, now()) {
                    Ok(done) => {
                        let connected: Vec<(u32, BlockHash)> =
                            done.connected.iter().map(|c| (c.height, c.hash)).collect();
                        if let Some(first) = connected.first() {
                            self.connected(&done.disconnected, &connected, before, first.0).await?;
                        }
                        if !full || connected.is_empty() {
                            break;
                        }
                    }
                    Err(ChainStateError::Headers(e)) => {
                        self.peers.drop_peer(&p.addr, format!("invalid headers: {e}"), &self.events).await;
                        break;
                    }
                    Err(e) => return Err(self.store_error(e)),
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

    /// Block `hash` at `height` from a peer, its merkle root checked; `None` when no peer gave it.
    pub(super) async fn fetch_block(&mut self, height: u32, hash: BlockHash) -> Result<Option<Block>, LightError> {
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
        // Every peer said notfound (or was dropped): the caller tries again; not at once, so that
        // peers that all lack a block do not spin the task.
        tokio::time::sleep(BLOCK_RETRY).await;
        Ok(None)
    }
}
