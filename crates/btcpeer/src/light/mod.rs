//! A BIP157/158 compact-filter light client on btcpeer's peers: [`LightClient`].
//!
//! The client dials a few peers that serve compact filters (outbound only), syncs the header chain,
//! fetches the filter headers from every peer and cross-checks them, then fetches the filters (each
//! checked against its filter header), matches them against the watched scripts, downloads the
//! blocks that match (merkle root checked) and reports the transactions that pay to a watched script
//! or spend an output it saw paid to one. A peer that lies — filter headers the block itself
//! contradicts, a filter that does not hash to its header, a block that is not the one asked for —
//! or that withholds filters is dropped, with the reason in a [`LightEvent::PeerDropped`]; the sync
//! goes on with the others. Headers and filter headers are kept in the data directory, so a restart
//! resumes where the last run stopped.
//!
//! How it is built: the rules are `btcpeer_core::chain`'s (Core's header checks and retarget rules,
//! the filter-header chain, `check_outputs_in_filter`, the crash-safe `ChainStore`); this module
//! moves bytes and time around them. Headers come from each peer in turn; each range of 2,000 filter
//! headers from every peer that has its stop block at once (a peer behind us or on another branch
//! is left out, not dropped), compared, and a disagreement settled by the block at the first height
//! the peers differ (a side whose filter lacks the block's outputs lied; if the block cannot tell,
//! the filter with more elements wins — an omission can hide a spend — then the majority);
//! filters come in ranges of 1,000, one range per peer at once, each filter matched to its block by
//! our own headers (`get_cfilters_of`) and checked against its filter header; matching blocks come
//! 16 at a time over the peers. The sequencing is written here rather than on the chain module's
//! `SyncPlanner` (written in parallel); moving onto it is future work.
//!
//! ```no_run
//! use btcpeer::light::{LightClient, LightEvent};
//! use btcpeer::network::Network;
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let address: bitcoin::Address<_> = "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx".parse()?;
//! let script = address.assume_checked().script_pubkey();
//! let mut client = LightClient::builder(Network::SIGNET)
//!     .data_dir("light-signet")
//!     .watch([script])
//!     .peers(["127.0.0.1:38333"])
//!     .build()?
//!     .start()?;
//! while let Some(event) = client.next_event().await {
//!     match event {
//!         LightEvent::Tx(tx) => println!("{} at height {}: {:?}", tx.txid, tx.height, tx.kind),
//!         LightEvent::Synced { height, .. } => println!("synced at {height}"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

mod crosscheck;
mod event;
mod headers;
mod peers;
mod round;
mod scan;
mod sync;

pub use event::{LightEvent, RelevantTx, Stage, TxKind};

use std::path::PathBuf;
use std::time::Duration;

use bitcoin::{BlockHash, ScriptBuf, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::network::Network;
use crate::peer::{BroadcastOutcome, RequestError, V2Policy};

/// Why a light client could not start or stopped.
///
/// ```
/// use btcpeer::light::{LightClient, LightError};
/// let e = LightClient::builder(btcpeer::network::Network::REGTEST).build().unwrap_err();
/// assert_eq!(e, LightError::NoPeers);
/// let e = LightError::NoHonestPeer(vec!["127.0.0.1:18444: withheld filters".into()]);
/// assert_eq!(e.to_string(), "no honest peer left (127.0.0.1:18444: withheld filters)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LightError {
    /// The builder was given no peer to dial.
    #[error("no peer to connect to")]
    NoPeers,
    /// The network has no known genesis block (a custom network).
    #[error("network {0} has no known chain")]
    UnknownChain(String),
    /// Every peer was dropped or could not be reached; the reasons, one per peer.
    #[error("no honest peer left ({})", .0.join("; "))]
    NoHonestPeer(Vec<String>),
    /// The data directory could not be read or written.
    #[error("data directory: {0}")]
    Store(String),
    /// `start` was called outside a tokio runtime.
    #[error("start needs a tokio runtime")]
    NoRuntime,
    /// The client was shut down (or its handle dropped).
    #[error("shut down")]
    Shutdown,
}

/// The settings of a [`LightClient`]: [`LightClient::builder`].
///
/// ```
/// use btcpeer::light::LightClient;
/// use btcpeer::network::Network;
/// let client = LightClient::builder(Network::REGTEST)
///     .peers(["127.0.0.1:18444"])
///     .target_peers(1)
///     .from_height(100)
///     .build()
///     .unwrap();
/// assert_eq!(client.tip_height(), 0);
/// ```
#[derive(Clone, Debug)]
pub struct LightClientBuilder {
    network: Network,
    data_dir: Option<PathBuf>,
    watch: Vec<ScriptBuf>,
    peers: Vec<String>,
    target_peers: usize,
    from_height: u32,
    capacity: usize,
    v2: V2Policy,
    timeout: Duration,
    batch: u32,
}

impl LightClientBuilder {
    /// Where headers and filter headers are kept (none: in memory only, a restart starts over).
    ///
    /// ```
    /// use btcpeer::light::LightClient;
    /// use btcpeer::network::Network;
    ///
    /// let b = LightClient::builder(Network::SIGNET).data_dir(std::env::temp_dir().join("light-signet"));
    /// ```
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Scripts to watch (added to those given before).
    ///
    /// ```
    /// use btcpeer::light::LightClient;
    /// use btcpeer::network::Network;
    ///
    /// let script = bitcoin::ScriptBuf::from_hex("0014751e76e8199196d454941c45d1b3a323f1433bd6").unwrap();
    /// let b = LightClient::builder(Network::REGTEST).watch([script]);
    /// ```
    pub fn watch(mut self, scripts: impl IntoIterator<Item = ScriptBuf>) -> Self {
        self.watch.extend(scripts);
        self
    }

    /// Addresses (`HOST:PORT`) of peers to dial, in order of preference; those beyond
    /// [`target_peers`](Self::target_peers) replace peers that are dropped. Addresses in distinct
    /// network groups are dialed first.
    ///
    /// ```
    /// use btcpeer::light::LightClient;
    /// use btcpeer::network::Network;
    ///
    /// let b = LightClient::builder(Network::REGTEST).peers(["127.0.0.1:18444", "127.0.0.2:18444"]);
    /// ```
    pub fn peers<S: Into<String>>(mut self, addrs: impl IntoIterator<Item = S>) -> Self {
        self.peers.extend(addrs.into_iter().map(Into::into));
        self
    }

    /// Candidates from an address book: addresses that advertise `NODE_COMPACT_FILTERS`, those
    /// marked tried first, one per network group before a second of any group.
    ///
    /// ```
    /// use btcpeer::light::LightClient;
    /// use btcpeer::network::Network;
    ///
    /// let book = btcpeer::core::addrbook::AddrBook::new([7; 32], 1);
    /// let b = LightClient::builder(Network::SIGNET).peers_from_book(&book);
    /// ```
    pub fn peers_from_book(mut self, book: &crate::core::addrbook::AddrBook) -> Self {
        self.peers.extend(peers::from_book(book));
        self
    }

    /// How many peers to sync from at once (default 3).
    ///
    /// ```
    /// use btcpeer::light::LightClient;
    /// use btcpeer::network::Network;
    ///
    /// let b = LightClient::builder(Network::REGTEST).target_peers(2);
    /// ```
    pub fn target_peers(mut self, n: usize) -> Self {
        self.target_peers = n.max(1);
        self
    }

    /// The height from which filters are matched (default 0: the whole chain). Headers and filter
    /// headers are synced from genesis whatever this is.
    ///
    /// ```
    /// use btcpeer::light::LightClient;
    /// use btcpeer::network::Network;
    ///
    /// let b = LightClient::builder(Network::REGTEST).from_height(200);
    /// ```
    pub fn from_height(mut self, height: u32) -> Self {
        self.from_height = height;
        self
    }

    /// The capacity of the event channel (default 1,024): a slow reader slows the sync down.
    ///
    /// ```
    /// use btcpeer::light::LightClient;
    /// use btcpeer::network::Network;
    ///
    /// let b = LightClient::builder(Network::REGTEST).event_capacity(64);
    /// ```
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// The transport policy (default [`V2Policy::Prefer`]: v2, falling back to v1).
    ///
    /// ```
    /// use btcpeer::light::LightClient;
    /// use btcpeer::network::Network;
    ///
    /// let b = LightClient::builder(Network::REGTEST).v2(btcpeer::peer::V2Policy::Never);
    /// ```
    pub fn v2(mut self, policy: V2Policy) -> Self {
        self.v2 = policy;
        self
    }

    /// How long a peer may take to answer one request before it is dropped for withholding
    /// (default 20 s).
    ///
    /// ```
    /// use btcpeer::light::LightClient;
    /// use btcpeer::network::Network;
    ///
    /// let b = LightClient::builder(Network::REGTEST).request_timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Filters asked for per `getcfilters` (1 to 1,000; default 1,000, Core's `MAX_GETCFILTERS_SIZE`).
    ///
    /// ```
    /// use btcpeer::light::LightClient;
    /// use btcpeer::network::Network;
    ///
    /// let b = LightClient::builder(Network::REGTEST).filter_batch(500);
    /// ```
    pub fn filter_batch(mut self, n: u32) -> Self {
        self.batch = n.clamp(1, 1_000);
        self
    }

    /// Checks the settings and opens the data directory.
    ///
    /// ```
    /// use btcpeer::light::LightClient;
    /// use btcpeer::network::Network;
    ///
    /// assert!(LightClient::builder(Network::REGTEST).build().is_err(), "no peer");
    /// assert!(LightClient::builder(Network::REGTEST).peers(["127.0.0.1:18444"]).build().is_ok());
    /// ```
    pub fn build(self) -> Result<LightClient, LightError> {
        if self.peers.is_empty() {
            return Err(LightError::NoPeers);
        }
        let Some(chain) = self.network.bitcoin_network() else {
            return Err(LightError::UnknownChain(self.network.name().to_string()));
        };
        let state = sync::State::open(chain, self.data_dir.as_deref())?;
        Ok(LightClient { settings: self, state })
    }
}

/// A compact-filter light client, built by [`LightClient::builder`] and run by
/// [`LightClient::start`]. See the [module docs](self).
///
/// ```
/// use btcpeer::light::LightClient;
/// let client = LightClient::builder(btcpeer::network::Network::REGTEST).peers(["127.0.0.1:18444"]).build().unwrap();
/// assert_eq!(client.tip_height(), 0);
/// ```
#[derive(Debug)]
pub struct LightClient {
    settings: LightClientBuilder,
    state: sync::State,
}

/// What the application asks of a running client.
#[derive(Debug)]
pub(crate) enum Command {
    Watch { scripts: Vec<ScriptBuf>, from: u32 },
    Broadcast { tx: Transaction, reply: oneshot::Sender<Vec<(String, Result<BroadcastOutcome, RequestError>)>> },
}

impl LightClient {
    /// A builder for `network`.
    ///
    /// ```
    /// use btcpeer::light::LightClient;
    /// use btcpeer::network::Network;
    ///
    /// let client = LightClient::builder(Network::REGTEST).peers(["127.0.0.1:18444"]).build();
    /// assert!(client.is_ok());
    /// ```
    pub fn builder(network: Network) -> LightClientBuilder {
        LightClientBuilder {
            network,
            data_dir: None,
            watch: Vec::new(),
            peers: Vec::new(),
            target_peers: 3,
            from_height: 0,
            capacity: 1_024,
            v2: V2Policy::Prefer,
            timeout: Duration::from_secs(20),
            batch: 1_000,
        }
    }

    /// The height of the best header loaded from the data directory.
    ///
    /// ```
    /// use btcpeer::light::LightClient;
    /// use btcpeer::network::Network;
    ///
    /// let client = LightClient::builder(Network::REGTEST).peers(["127.0.0.1:18444"]).build().unwrap();
    /// assert_eq!(client.tip_height(), 0);
    /// ```
    pub fn tip_height(&self) -> u32 {
        self.state.chain.tip_height()
    }

    /// The hash of that header.
    ///
    /// ```
    /// use btcpeer::light::LightClient;
    /// use btcpeer::network::Network;
    ///
    /// let client = LightClient::builder(Network::REGTEST).peers(["127.0.0.1:18444"]).build().unwrap();
    /// assert_eq!(Some(client.tip()), Network::REGTEST.genesis_hash());
    /// ```
    pub fn tip(&self) -> BlockHash {
        self.state.chain.tip()
    }

    /// The height of the last filter header loaded from the data directory (`None`: none yet).
    ///
    /// ```
    /// use btcpeer::light::LightClient;
    /// let client = LightClient::builder(btcpeer::network::Network::REGTEST).peers(["127.0.0.1:18444"]).build().unwrap();
    /// assert_eq!(client.filter_header_height(), None);
    /// ```
    pub fn filter_header_height(&self) -> Option<u32> {
        self.state.chain.filter_headers_len().checked_sub(1)
    }

    /// What loading the data directory repaired (a torn tail dropped, a corrupt file kept aside).
    ///
    /// ```
    /// use btcpeer::light::LightClient;
    /// use btcpeer::network::Network;
    ///
    /// let client = LightClient::builder(Network::REGTEST).peers(["127.0.0.1:18444"]).build().unwrap();
    /// assert_eq!(client.repaired(), None);
    /// ```
    pub fn repaired(&self) -> Option<&str> {
        self.state.repaired.as_deref()
    }

    /// Starts the client on the current tokio runtime: it dials its peers and syncs, and keeps
    /// following the chain until the handle is dropped or [`LightHandle::shutdown`] is called.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), btcpeer::light::LightError> {
    /// use btcpeer::light::LightClient;
    /// let mut client = LightClient::builder(btcpeer::network::Network::REGTEST).peers(["127.0.0.1:18444"]).build()?.start()?;
    /// while let Some(event) = client.next_event().await {
    ///     println!("{event:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn start(self) -> Result<LightHandle, LightError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| LightError::NoRuntime)?;
        let (events_tx, events) = mpsc::channel(self.settings.capacity);
        let (commands, commands_rx) = mpsc::channel(16);
        let task = runtime.spawn(sync::run(self.settings, self.state, events_tx, commands_rx));
        Ok(LightHandle { events, commands, task })
    }
}

/// A running [`LightClient`]: its events, and what can be asked of it.
///
/// ```no_run
/// # async fn f(mut client: btcpeer::light::LightHandle, tx: bitcoin::Transaction) {
/// let outcomes = client.broadcast(tx).await;
/// while let Some(event) = client.next_event().await {
///     println!("{event:?}");
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct LightHandle {
    events: mpsc::Receiver<LightEvent>,
    commands: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl LightHandle {
    /// The next event; `None` once the client has stopped and every event was read.
    ///
    /// ```no_run
    /// # async fn f(mut client: btcpeer::light::LightHandle) {
    /// while let Some(event) = client.next_event().await {
    ///     println!("{event:?}");
    /// }
    /// # }
    /// ```
    pub async fn next_event(&mut self) -> Option<LightEvent> {
        self.events.recv().await
    }

    /// Watches more scripts, matching filters again from `from_height` (a rescan; the sync goes
    /// on from where it was once the rescan reaches it).
    ///
    /// ```no_run
    /// # async fn f(client: &btcpeer::light::LightHandle, script: bitcoin::ScriptBuf) {
    /// client.watch([script], 100).await;
    /// # }
    /// ```
    pub async fn watch(&self, scripts: impl IntoIterator<Item = ScriptBuf>, from_height: u32) {
        let _ = self.commands.send(Command::Watch { scripts: scripts.into_iter().collect(), from: from_height }).await;
    }

    /// Sends `tx` to every connected peer; what each did with it (an empty list when the client has
    /// stopped).
    ///
    /// ```no_run
    /// # async fn f(client: &btcpeer::light::LightHandle, tx: bitcoin::Transaction) {
    /// for (peer, outcome) in client.broadcast(tx).await {
    ///     println!("{peer}: {outcome:?}");
    /// }
    /// # }
    /// ```
    pub async fn broadcast(&self, tx: Transaction) -> Vec<(String, Result<BroadcastOutcome, RequestError>)> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Broadcast { tx, reply }).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Stops the client (its peers hang up; what was synced is on disk).
    ///
    /// ```no_run
    /// # fn f(client: btcpeer::light::LightHandle) {
    /// client.shutdown();
    /// # }
    /// ```
    pub fn shutdown(self) {
        self.task.abort();
    }
}

impl Drop for LightHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
