//! [`NodeBuilder`]: a node's settings and files, and [`NodeError`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use btcpeer_core::addrbook::{AddrBook, LoadError};
use btcpeer_core::node::bans::{BanList, Discouraged, load_anchors};
use btcpeer_core::node::{NodeCore, NodeSettings};
use tokio::sync::mpsc;

use super::event::{NodeEvent, NodeHandler};
use super::{Events, Files, Node, clock};
use crate::peer::{ConfigError, Handler, PeerConfig};

/// Why a node could not be built, started or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The peers' configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file could not be read (not for a corrupt one: that is kept aside, see
    /// [`Node::recovered_files`]).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A file could not be saved.
    #[error("cannot save {path}: {source}")]
    Save {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// [`Node::start`] was called twice.
    #[error("the node is already started")]
    AlreadyStarted,
    /// [`Node::start`] was called outside a tokio runtime.
    #[error("the node must be started inside a tokio runtime")]
    NoRuntime,
}

/// A file that was corrupt at start: kept aside as `kept_as`, and the node started without it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveredFile {
    /// The file.
    pub path: PathBuf,
    /// Where it was moved (`NAME.corrupt`).
    pub kept_as: PathBuf,
    /// What was wrong.
    pub problem: String,
}

/// Builds a [`Node`]: see [`Node::builder`].
pub struct NodeBuilder {
    config: PeerConfig,
    settings: NodeSettings,
    files: Files,
    handler: Option<Arc<dyn NodeHandler>>,
    peer_handler: Option<Arc<dyn Handler>>,
    dial_timeout: Option<Duration>,
}

impl NodeBuilder {
    pub(super) fn new(config: PeerConfig) -> NodeBuilder {
        // Core's limits and a random key and seed (`NodeSettings::default`).
        let settings = NodeSettings::default();
        NodeBuilder { config, settings, files: Files::default(), handler: None, peer_handler: None, dial_timeout: None }
    }

    /// All of the policy's settings at once (limits, targets, feelers, backoff, keys). Start from
    /// [`NodeSettings::default`], whose key and seed are random; fix them only for reproducible
    /// tests ([`NodeSettings::fixed`]).
    pub fn settings(mut self, settings: NodeSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Connections in all (default 125); inbound gets what the outbound targets and a feeler leave.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.settings.max_connections = n;
        self
    }

    /// Automatic outbound targets: full-relay and block-relay-only (defaults 8 and 2, as Core).
    pub fn outbound(mut self, full_relay: usize, block_relay: usize) -> Self {
        self.settings.full_relay = full_relay;
        self.settings.block_relay = block_relay;
        self
    }

    /// Whether automatic outbound connections (from the book, anchors, feelers) are made; manual
    /// peers are dialed either way. Default true.
    pub fn dial_outbound(mut self, dial: bool) -> Self {
        self.settings.dial_outbound = dial;
        self
    }

    /// Whether feelers are made (default true).
    pub fn feelers(mut self, feelers: bool) -> Self {
        self.settings.feelers = feelers;
        self
    }

    /// Loopback and private addresses are kept, relayed and dialed (regtest, tests on one machine).
    pub fn allow_local(mut self, allow: bool) -> Self {
        self.settings.allow_local = allow;
        self
    }

    /// The address to announce to address-relaying peers when relay with them starts (Core's
    /// self-announcement); default: the peers' configured `advertised_address`, if any, else none.
    pub fn advertise(mut self, addr: std::net::SocketAddr) -> Self {
        self.settings.local_addr = Some(addr);
        self
    }

    /// The deadline of one dial and handshake (default: the configuration's connect timeout plus
    /// its handshake timeout).
    pub fn dial_timeout(mut self, timeout: Duration) -> Self {
        self.dial_timeout = Some(timeout);
        self
    }

    /// The address book's file: read at start, written at shutdown and every 15 minutes.
    pub fn book_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.book = Some(path.into());
        self
    }

    /// The ban list's file (bans and the discouragement filter beside it, `PATH.discouraged`).
    pub fn bans_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.bans = Some(path.into());
        self
    }

    /// The anchors' file: the block-relay-only peers at shutdown, dialed first at the next start
    /// (read and removed at start, as Core's `anchors.dat`).
    pub fn anchors_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.anchors = Some(path.into());
        self
    }

    /// Every file in `dir`: `peers.book`, `banlist.dat` (+ `.discouraged`) and `anchors.dat`.
    pub fn data_dir(self, dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        self.book_file(dir.join("peers.book")).bans_file(dir.join("banlist.dat")).anchors_file(dir.join("anchors.dat"))
    }

    /// Events go to `handler`.
    pub fn handler(mut self, handler: impl NodeHandler) -> Self {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// Every peer's events also go to `handler` (one handler for all of them: it tells peers apart
    /// by the `&Peer` it is given), after the node's own handling: a per-peer view beside the
    /// node's events (frames read and written, every message, the version to refuse).
    pub fn peer_handler(mut self, handler: impl Handler) -> Self {
        self.peer_handler = Some(Arc::new(handler));
        self
    }

    /// Builds the node, its events to the handler (or nowhere). Files are read now: a corrupt one
    /// is kept as `NAME.corrupt` and the node starts without it ([`Node::recovered_files`]).
    pub fn build(self) -> Result<Node, NodeError> {
        let events = match &self.handler {
            Some(h) => Events::Handler(h.clone()),
            None => Events::None,
        };
        self.finish(events)
    }

    /// Builds the node with its events on a bounded channel of `capacity` (at least 1). When the
    /// channel is full, events are dropped and counted ([`Node::dropped_events`]): a slow reader
    /// never holds up the peers.
    pub fn build_with_channel(self, capacity: usize) -> Result<(Node, mpsc::Receiver<NodeEvent>), NodeError> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Ok((self.finish(Events::Channel(tx))?, rx))
    }

    fn finish(self, events: Events) -> Result<Node, NodeError> {
        let mut recovered = Vec::new();
        let seed = self.settings.seed;
        let key = self.settings.key;
        let allow_local = self.settings.allow_local;
        let book = load_or_keep(self.files.book.as_deref(), &mut recovered, |p| AddrBook::load(p, seed))?
            .unwrap_or_else(|| AddrBook::new(key, seed))
            .allow_local(allow_local);
        let bans = load_or_keep(self.files.bans.as_deref(), &mut recovered, BanList::load)?.unwrap_or_default();
        let discouraged_path = self.files.discouraged();
        let discouraged = load_or_keep(discouraged_path.as_deref(), &mut recovered, Discouraged::load)?
            .unwrap_or_else(|| Discouraged::new(seed));
        // Read once and removed, as Core's `ReadAnchors` (`addrdb.cpp`): after an unclean stop the
        // node does not return to the same anchors. A corrupt file is kept aside like the others.
        let anchors = load_or_keep(self.files.anchors.as_deref(), &mut recovered, load_anchors)?;
        if let (Some(_), Some(path)) = (&anchors, &self.files.anchors) {
            let _ = std::fs::remove_file(path);
        }
        let anchors = anchors.unwrap_or_default();
        let (now, _) = clock();
        let mut settings = self.settings;
        if settings.local_addr.is_none() {
            settings.local_addr = self.config.inner.advertised_address;
        }
        settings.services = self.config.services();
        // The network's proof-of-work limit: a header easier than it earns no eviction protection.
        settings.pow_limit = {
            use bitcoin::pow::Target;
            match self.config.network().bitcoin_network() {
                Some(bitcoin::Network::Bitcoin) => Target::MAX_ATTAINABLE_MAINNET,
                Some(bitcoin::Network::Regtest) => Target::MAX_ATTAINABLE_REGTEST,
                Some(bitcoin::Network::Signet) => Target::MAX_ATTAINABLE_SIGNET,
                Some(_) => Target::MAX_ATTAINABLE_TESTNET,
                // A network of the application's own (`--magic`): any target.
                None => Target::from_be_bytes([0xff; 32]),
            }
        };
        let mut core = NodeCore::new(settings, book, now);
        *core.bans_mut() = bans;
        *core.discouraged_mut() = discouraged;
        core.set_anchors(anchors);
        let dial_timeout = self
            .dial_timeout
            .unwrap_or_else(|| self.config.connect_timeout().saturating_add(self.config.handshake_timeout()));
        let blocks_only = self.config.with_relay(false);
        Ok(Node::from_parts(
            core,
            self.config,
            blocks_only,
            events,
            self.peer_handler,
            self.files,
            recovered,
            dial_timeout,
        ))
    }
}

/// Reads `path` with `load` if it exists; a corrupt file is renamed to `NAME.corrupt` and noted.
fn load_or_keep<T>(
    path: Option<&Path>,
    recovered: &mut Vec<RecoveredFile>,
    load: impl FnOnce(&Path) -> Result<T, LoadError>,
) -> Result<Option<T>, NodeError> {
    let Some(path) = path.filter(|p| p.exists()) else { return Ok(None) };
    match load(path) {
        Ok(v) => Ok(Some(v)),
        Err(LoadError::Corrupt { problem, .. }) => {
            let mut name = path.as_os_str().to_owned();
            name.push(".corrupt");
            let kept_as = PathBuf::from(name);
            let _ = std::fs::rename(path, &kept_as);
            tracing::warn!(path = %path.display(), kept_as = %kept_as.display(), problem, "corrupt file kept aside");
            recovered.push(RecoveredFile { path: path.to_path_buf(), kept_as, problem });
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}
