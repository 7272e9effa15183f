//! A node: many peers under one connection policy (Bitcoin Core's `CConnman` and
//! `PeerManagerImpl` policies, in [`btcpeer_core::node::NodeCore`]), driven by tokio.
//!
//! The node accepts inbound connections up to a limit and, when full, evicts by Core's
//! `SelectNodeToEvict`; dials outbound full-relay and block-relay-only peers from its address book
//! (one per network group), feelers to test new addresses, anchors first and manual peers; answers
//! `getaddr` once per inbound connection from a cache, relays small fresh `addr` messages, holds
//! each peer to Core's address rate limit, and discourages peers where Core's `Misbehaving` would (oversized messages). Its
//! book, bans and anchors are files that survive a restart.
//!
//! ```no_run
//! use btcpeer::network::Network;
//! use btcpeer::node::{Node, NodeEvent};
//! use btcpeer::peer::PeerConfig;
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let config = PeerConfig::builder(Network::REGTEST).build()?;
//! let (node, mut events) = Node::builder(config).allow_local(true).data_dir("/tmp/node").build_with_channel(1024)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:18444").await?;
//! node.start(Some(listener))?;
//! node.add_peer("127.0.0.1:18445".parse()?, true);
//! while let Some(event) = events.recv().await {
//!     if let NodeEvent::Connected { addr, kind, .. } = &event {
//!         println!("{addr} ({kind:?})");
//!         break;
//!     }
//! }
//! println!("{} peers", node.peers().len());
//! node.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Every queue is bounded: the connection table by the limits, events by the channel's capacity
//! (or the handler's speed), the policy's actions and maps inside the core.

mod builder;
mod conn;
mod event;
mod run;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use btcpeer_core::addrbook::AddrBook;
use btcpeer_core::node::NodeCore;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};

pub use btcpeer_core::node::{ConnId, ConnKind, Counts, NodeReason, NodeSettings, Refusal};
pub use builder::{NodeBuilder, NodeError, RecoveredFile};
pub use event::{NodeEvent, NodeHandler, NodePeer};

use conn::ConnState;

use crate::peer::PeerConfig;
use crate::wire::Inventory;

/// The policy's clock: tokio's (so tests on a paused clock move it) and the wall clock in Unix
/// seconds (the book's time).
pub(crate) fn clock() -> (Instant, u64) {
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (tokio::time::Instant::now().into_std(), unix)
}

/// Where a node keeps its state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Files {
    book: Option<PathBuf>,
    bans: Option<PathBuf>,
    anchors: Option<PathBuf>,
}

impl Files {
    /// The discouragement filter: beside the ban list.
    fn discouraged(&self) -> Option<PathBuf> {
        self.bans.as_ref().map(|b| {
            let mut name = b.as_os_str().to_owned();
            name.push(".discouraged");
            PathBuf::from(name)
        })
    }
}

/// Where events go.
pub(crate) enum Events {
    None,
    Handler(Arc<dyn NodeHandler>),
    Channel(mpsc::Sender<NodeEvent>),
}

/// What the node's handles, tasks and connections share.
pub(crate) struct NodeShared {
    pub(crate) core: Mutex<NodeCore>,
    conns: Mutex<HashMap<ConnId, Arc<ConnState>>>,
    config: PeerConfig,
    blocks_only: PeerConfig,
    events: Events,
    peer_handler: Option<Arc<dyn crate::peer::Handler>>,
    dropped_events: AtomicU64,
    handler_panics: AtomicU64,
    files: Files,
    recovered: Vec<RecoveredFile>,
    pub(crate) wake: Notify,
    stop: watch::Sender<bool>,
    started: AtomicBool,
    policy_task: Mutex<Option<tokio::task::JoinHandle<Result<(), NodeError>>>>,
    dial_timeout: Duration,
    local_addr: Mutex<Option<SocketAddr>>,
}

impl NodeShared {
    pub(crate) fn emit(&self, event: NodeEvent) {
        match &self.events {
            Events::None => {}
            Events::Handler(h) => {
                if std::panic::catch_unwind(AssertUnwindSafe(|| h.on_event(&event))).is_err() {
                    self.handler_panics.fetch_add(1, Ordering::Relaxed);
                    tracing::error!("the node's event handler panicked; the node carries on");
                }
            }
            Events::Channel(tx) => {
                if tx.try_send(event).is_err() {
                    self.dropped_events.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Whether anyone hears message events (they are not built otherwise).
    pub(crate) fn wants_messages(&self) -> bool {
        !matches!(self.events, Events::None)
    }

    pub(crate) fn forget(&self, id: ConnId) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.remove(&id);
        }
    }

    fn conn(&self, id: ConnId) -> Option<Arc<ConnState>> {
        self.conns.lock().ok().and_then(|c| c.get(&id).cloned())
    }

    fn all_conns(&self) -> Vec<Arc<ConnState>> {
        self.conns.lock().map(|c| c.values().cloned().collect()).unwrap_or_default()
    }
}

/// Stops the node when the application's last handle goes.
struct NodeOwner {
    stop: watch::Sender<bool>,
}

impl Drop for NodeOwner {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A running node: see the [module](self). Cheap to clone, `Send + Sync`; when the last clone is
/// dropped the node stops as [`Node::shutdown`] does (its files are saved).
#[derive(Clone)]
pub struct Node {
    shared: Arc<NodeShared>,
    _owner: Arc<NodeOwner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("counts", &self.counts()).finish_non_exhaustive()
    }
}

impl Node {
    /// A node whose peers use `config` (its block-relay-only connections the same with
    /// `relay = false`).
    ///
    /// ```
    /// use btcpeer::network::Network;
    /// use btcpeer::node::Node;
    /// use btcpeer::peer::PeerConfig;
    ///
    /// let config = PeerConfig::builder(Network::REGTEST).build().unwrap();
    /// let node = Node::builder(config).max_connections(16).outbound(2, 1).build().unwrap();
    /// assert_eq!(node.counts().inbound, 0);
    /// ```
    pub fn builder(config: PeerConfig) -> NodeBuilder {
        NodeBuilder::new(config)
    }

    #[allow(clippy::too_many_arguments)]
    fn from_parts(
        core: NodeCore,
        config: PeerConfig,
        blocks_only: PeerConfig,
        events: Events,
        peer_handler: Option<Arc<dyn crate::peer::Handler>>,
        files: Files,
        recovered: Vec<RecoveredFile>,
        dial_timeout: Duration,
    ) -> Node {
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(NodeShared {
            core: Mutex::new(core),
            conns: Mutex::new(HashMap::new()),
            config,
            blocks_only,
            events,
            peer_handler,
            dropped_events: AtomicU64::new(0),
            handler_panics: AtomicU64::new(0),
            files,
            recovered,
            wake: Notify::new(),
            stop: stop.clone(),
            started: AtomicBool::new(false),
            policy_task: Mutex::new(None),
            dial_timeout,
            local_addr: Mutex::new(None),
        });
        Node { shared, _owner: Arc::new(NodeOwner { stop }) }
    }

    /// Starts the node on the current tokio runtime: accepting on `listener` (none: outbound
    /// only), dialing, relaying. Returns the address it listens on.
    ///
    /// ```
    /// use btcpeer::network::Network;
    /// use btcpeer::node::{Node, NodeError};
    /// use btcpeer::peer::PeerConfig;
    ///
    /// let node = Node::builder(PeerConfig::builder(Network::REGTEST).build().unwrap()).build().unwrap();
    /// // Outside a runtime: an error, not a panic.
    /// assert!(matches!(node.start(None), Err(NodeError::NoRuntime)));
    /// ```
    pub fn start(&self, listener: Option<TcpListener>) -> Result<Option<SocketAddr>, NodeError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(NodeError::NoRuntime);
        }
        if self.shared.started.swap(true, Ordering::AcqRel) {
            return Err(NodeError::AlreadyStarted);
        }
        let local = listener.as_ref().and_then(|l| l.local_addr().ok());
        if let Ok(mut l) = self.shared.local_addr.lock() {
            *l = local;
        }
        if let Some(listener) = listener {
            tokio::spawn(run::accept_loop(self.shared.clone(), listener, self.shared.stop.subscribe()));
        }
        let task = tokio::spawn(run::policy_loop(self.shared.clone(), self.shared.stop.subscribe()));
        if let Ok(mut t) = self.shared.policy_task.lock() {
            *t = Some(task);
        }
        Ok(local)
    }

    /// The address the node listens on, once started with a listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local_addr.lock().ok().and_then(|l| *l)
    }

    /// A manual peer: dialed now, outside the outbound targets; a `persistent` one is dialed again
    /// (with backoff) whenever it ends. Returns false if it was already one.
    pub fn add_peer(&self, addr: SocketAddr, persistent: bool) -> bool {
        let added = self.shared.core.lock().map(|mut c| c.add_peer(addr, persistent)).unwrap_or(false);
        self.shared.wake.notify_one();
        added
    }

    /// Puts `addrs` in the address book as seeds (each its own source, with `NODE_NETWORK` and
    /// `NODE_WITNESS` assumed, as Core's fixed seeds): candidates for automatic outbound
    /// connections. Returns how many were new.
    pub fn add_seeds(&self, addrs: &[SocketAddr]) -> usize {
        let (_, unix) = clock();
        let added = self.shared.core.lock().map(|mut c| {
            let mut added = 0usize;
            for a in addrs {
                let peer = btcpeer_core::addrbook::Endpoint::from(*a);
                let entry = bitcoin::p2p::address::AddrV2Message {
                    time: u32::try_from(unix).unwrap_or(u32::MAX),
                    // As Core's seeds (`ConvertSeeds`): assumed full witness nodes until a
                    // connection says otherwise, or automatic dials would pass them over.
                    services: bitcoin::p2p::ServiceFlags::NETWORK | bitcoin::p2p::ServiceFlags::WITNESS,
                    addr: peer.addr.clone(),
                    port: peer.port,
                };
                added = added.saturating_add(c.book_mut().add(&[entry], &peer, unix));
            }
            added
        });
        self.shared.wake.notify_one();
        added.unwrap_or(0)
    }

    /// No longer a manual peer (a connection to it stays).
    pub fn remove_peer(&self, addr: SocketAddr) -> bool {
        self.shared.core.lock().map(|mut c| c.remove_peer(addr)).unwrap_or(false)
    }

    /// Bans `ip` for `duration`: refused inbound, never dialed, its connections ended. Returns
    /// how many were ended. The ban list is saved at once when the node has a file for it.
    pub fn ban(&self, ip: IpAddr, duration: Duration) -> usize {
        let (_, unix) = clock();
        let ended =
            self.shared.core.lock().map(|mut c| c.ban(ip, unix.saturating_add(duration.as_secs()))).unwrap_or_default();
        for id in &ended {
            if let Some(conn) = self.shared.conn(*id) {
                conn.end(NodeReason::Banned);
            }
        }
        if let Err(e) = run::save_bans(&self.shared) {
            tracing::warn!(%e, "the ban list could not be saved");
        }
        ended.len()
    }

    /// Lifts a ban on exactly `ip`.
    pub fn unban(&self, ip: IpAddr) -> bool {
        self.shared.core.lock().map(|mut c| c.bans_mut().unban(ip.into())).unwrap_or(false)
    }

    /// Whether `ip` is banned now.
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let (_, unix) = clock();
        self.shared.core.lock().map(|c| c.bans().is_banned(ip, unix)).unwrap_or(false)
    }

    /// Connections by kind.
    pub fn counts(&self) -> Counts {
        self.shared.core.lock().map(|c| c.counts()).unwrap_or_default()
    }

    /// The peer table, as Core's `getpeerinfo`.
    pub fn peers(&self) -> Vec<NodePeer> {
        let rows: Vec<_> = self.shared.core.lock().map(|c| c.conns().cloned().collect()).unwrap_or_default();
        let (now, _) = clock();
        rows.into_iter()
            .map(|info| {
                let stats = self.shared.conn(info.id).and_then(|c| c.peer()).map(|p| p.stats());
                let count = |name: &str| {
                    stats.as_ref().and_then(|s| s.per_command.get(name)).map_or(0, |c| c.messages_received)
                };
                NodePeer {
                    id: info.id,
                    addr: info.addr,
                    kind: info.kind,
                    established: info.established,
                    transport: stats.as_ref().map_or(crate::peer::Transport::V1, |s| s.transport),
                    relay: info.kind.relays_tx() && stats.as_ref().is_some_and(|s| s.relay),
                    user_agent: info.hello.as_ref().map(|h| h.user_agent.clone()).unwrap_or_default(),
                    ping: stats.as_ref().and_then(|s| s.last_ping_rtt),
                    min_ping: info.min_ping,
                    uptime: now.saturating_duration_since(info.since),
                    bytes_sent: stats.as_ref().map_or(0, |s| s.bytes_sent),
                    bytes_received: stats.as_ref().map_or(0, |s| s.bytes_received),
                    tx_received: count("tx"),
                    blocks_received: count("block"),
                    addr_processed: info.addr_processed,
                    addr_rate_limited: info.addr_rate_limited,
                }
            })
            .collect()
    }

    /// Announces `inv` to every connected peer it is for (transactions not to block-relay-only
    /// connections or feelers; each peer's trickle and relay preferences apply). Returns how many
    /// peers queued it.
    pub fn broadcast_inventory(&self, inv: Inventory) -> usize {
        let conns = self.shared.all_conns();
        let mut queued = 0usize;
        for conn in conns {
            if inv.is_transaction() && !conn.kind.relays_tx() {
                continue;
            }
            if !conn.established.load(Ordering::Acquire) {
                continue;
            }
            if conn.peer().is_some_and(|p| p.queue_inventory(inv)) {
                queued = queued.saturating_add(1);
            }
        }
        queued
    }

    /// Announces a transaction to every connected peer that relays transactions, by wtxid or
    /// txid as each negotiated (BIP339). Returns how many peers queued it.
    pub fn announce_transaction(&self, txid: bitcoin::Txid, wtxid: bitcoin::Wtxid) -> usize {
        let mut queued = 0usize;
        for conn in self.shared.all_conns() {
            if !conn.kind.relays_tx() || !conn.established.load(Ordering::Acquire) {
                continue;
            }
            if conn.peer().is_some_and(|p| p.queue_transaction(txid, wtxid)) {
                queued = queued.saturating_add(1);
            }
        }
        queued
    }

    /// Asks connection `id` for these transactions (a `getdata`) and tells the policy so: a
    /// transaction it then sends that is new earns it eviction protection (Core credits
    /// transactions accepted to its mempool; a node that validates nothing credits the answers
    /// to its own requests, see [`NodeCore::requested`]). Returns whether the message was
    /// queued. Never ask a block-relay-only connection for transactions.
    ///
    /// ```no_run
    /// # fn f(node: &btcpeer::node::Node, id: u64, txid: bitcoin::Txid) {
    /// use btcpeer::wire::Inventory;
    /// node.request_transactions(id, vec![Inventory::WitnessTx(txid)]);
    /// # }
    /// ```
    pub fn request_transactions(&self, id: ConnId, items: Vec<Inventory>) -> bool {
        let items: Vec<Inventory> = items.into_iter().filter(|i| i.is_transaction()).collect();
        let Some(conn) = self.shared.conn(id) else { return false };
        if items.is_empty() || !conn.kind.relays_tx() {
            return false;
        }
        if let Ok(mut core) = self.shared.core.lock() {
            core.requested(id, &items);
        }
        conn.peer().is_some_and(|p| p.queue_message(&crate::wire::Message::GetData(items)).is_ok())
    }

    /// When an `inv` was last written to connection `id` (on the node's clock, tokio's): a
    /// relay serves a transaction to a peer only if it had the transaction before then — it was
    /// announced to the peer, or could have been (Core's `FindTxForGetData`) — so that a spy
    /// cannot learn with `getdata` what we received before we announce it.
    pub fn last_inventory_sent(&self, id: ConnId) -> Option<Instant> {
        self.shared.conn(id).and_then(|c| c.last_inv_sent.lock().ok().and_then(|t| *t))
    }

    /// The peer of connection `id`, while it is connected: to answer a message an event brought
    /// (serve a `getdata`, ask for what an `inv` named).
    pub fn peer(&self, id: ConnId) -> Option<crate::peer::Peer> {
        self.shared.conn(id).and_then(|c| c.peer())
    }

    /// Reads the address book.
    pub fn with_book<R>(&self, f: impl FnOnce(&AddrBook) -> R) -> Option<R> {
        self.shared.core.lock().ok().map(|c| f(c.book()))
    }

    /// The files that were corrupt at start, each kept aside as `NAME.corrupt`.
    pub fn recovered_files(&self) -> Vec<RecoveredFile> {
        self.shared.recovered.clone()
    }

    /// Events dropped because the channel was full.
    pub fn dropped_events(&self) -> u64 {
        self.shared.dropped_events.load(Ordering::Relaxed)
    }

    /// Panics of the event handler (each caught; the node carried on).
    pub fn handler_panics(&self) -> u64 {
        self.shared.handler_panics.load(Ordering::Relaxed)
    }

    /// Writes the book, the ban list and the discouragement filter now (the node also does at
    /// shutdown, and the book every 15 minutes).
    pub fn save(&self) -> Result<(), NodeError> {
        run::save_book(&self.shared)?;
        run::save_bans(&self.shared)
    }

    /// Stops accepting and dialing, ends every connection ([`NodeReason::Shutdown`]), saves the
    /// anchors (the block-relay-only peers), the book, bans and discouragement, and returns when
    /// all of it is done (at most 5 s for the peers to end).
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        let _ = self.shared.stop.send(true);
        let task = self.shared.policy_task.lock().ok().and_then(|mut t| t.take());
        match task {
            // A policy task that panicked saved nothing: save here.
            Some(task) => task.await.unwrap_or_else(|_| self.save()),
            // Never started: save what was loaded.
            None => self.save(),
        }
    }
}
