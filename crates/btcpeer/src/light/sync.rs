//! The light client's task: the core's `SyncPlanner` decides what to ask whom (headers, then
//! checkpoints and filter headers cross-checked between peers, then filters); the rounds
//! (`round.rs`) send its requests; filters are matched against the watch list and the blocks that
//! match fetched; then it follows the chain.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::p2p::ServiceFlags;
use bitcoin::{Amount, Block, BlockHash, OutPoint, ScriptBuf};
use tokio::sync::mpsc;

use super::headers::ChainState;
use super::peers::{PeerSet, Wake};
use super::{Command, LightClientBuilder, LightError, LightEvent, Stage};
use crate::core::chain::{SyncConfig, SyncPlanner};
use crate::peer::{NonceRegistry, PeerConfig, RequestError};

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
    /// What to ask whom next: the core's sync state machine.
    pub(super) plan: SyncPlanner,
    /// Headers are to be asked for (at start, on an announcement, every [`POLL`]).
    pub(super) headers_stale: bool,
    /// The tip and scan height last reported as synced.
    pub(super) synced: Option<(BlockHash, u32)>,
}

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
    let plan_config = SyncConfig::default()
        .with_filters_from(settings.from_height)
        .with_filters_batch(settings.batch)
        .with_filter_headers_peers(settings.target_peers)
        // Each request has its own timeout; the planner's is the bound behind it.
        .with_request_timeout(settings.timeout.saturating_mul(2));
    let mut sync = Sync {
        watched: settings.watch.iter().cloned().collect(),
        plan: SyncPlanner::new(plan_config),
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
            if self.synced != Some((tip, self.plan.filters_height())) {
                self.synced = Some((tip, self.plan.filters_height()));
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
                self.plan.rescan_from(from);
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

    pub(super) fn store_error(&self, e: impl std::fmt::Display) -> LightError {
        let dir = self.chain.dir().map(|d| d.display().to_string()).unwrap_or_default();
        LightError::Store(format!("{dir}: {e}"))
    }

    pub(super) async fn connected(
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
