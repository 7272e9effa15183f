//! The values [`NodeCore`](super::NodeCore) takes and gives: settings, dials, admissions,
//! handshake summaries, actions and the connection table's rows.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2Message;

use crate::addrbook::{NetKind, V2Support};
use crate::peer::{RemoteInfo, Transport};

/// A connection's id, unique for the life of a [`NodeCore`](super::NodeCore).
pub type ConnId = u64;

/// What a connection is for, as Core's `ConnectionType` (`node/connection_types.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnKind {
    /// The remote dialed us.
    Inbound,
    /// An automatic outbound connection relaying transactions, blocks and addresses.
    FullRelay,
    /// An automatic outbound connection relaying blocks only (`relay = false` in our version; no
    /// transactions, no addresses).
    BlockRelay,
    /// A short outbound connection that tests a *new* address and ends after the handshake.
    Feeler,
    /// A peer the user asked for ([`NodeCore::add_peer`](super::NodeCore::add_peer)).
    Manual,
}

impl ConnKind {
    /// Whether we dialed it.
    pub fn is_outbound(self) -> bool {
        !matches!(self, ConnKind::Inbound)
    }

    /// Whether addresses are relayed with it (not block-relay-only, not feelers; Core's
    /// `PeerManagerImpl::SetupAddressRelay`).
    pub fn relays_addr(self) -> bool {
        !matches!(self, ConnKind::BlockRelay | ConnKind::Feeler)
    }

    /// Whether transactions are relayed with it (not block-relay-only, not feelers): the driver
    /// sends `relay = false` in its version when this is false.
    pub fn relays_tx(self) -> bool {
        !matches!(self, ConnKind::BlockRelay | ConnKind::Feeler)
    }
}

/// The node's policy: limits, intervals and secrets. Defaults follow Bitcoin Core.
///
/// ```
/// use btcpeer_core::node::NodeSettings;
/// let s = NodeSettings::default();
/// assert_eq!((s.max_connections, s.full_relay, s.block_relay), (125, 8, 2));
/// assert_eq!(s.max_inbound(), 114);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NodeSettings {
    /// Connections in all (Core's `DEFAULT_MAX_PEER_CONNECTIONS`, 125); the inbound limit is what
    /// the outbound slots and one feeler leave ([`max_inbound`](NodeSettings::max_inbound)).
    pub max_connections: usize,
    /// Automatic full-relay outbound connections (`MAX_OUTBOUND_FULL_RELAY_CONNECTIONS`, 8).
    pub full_relay: usize,
    /// Automatic block-relay-only outbound connections (`MAX_BLOCK_RELAY_ONLY_CONNECTIONS`, 2).
    pub block_relay: usize,
    /// The mean time between feelers (`FEELER_INTERVAL`, 2 minutes), each delay drawn from an
    /// exponential distribution as Core's `rand_exp_duration`.
    pub feeler_interval: Duration,
    /// Whether feelers are made.
    pub feelers: bool,
    /// The wait after an address's first failed dial; it doubles with each further failure.
    pub backoff_base: Duration,
    /// The longest wait between dials of one address.
    pub backoff_max: Duration,
    /// Whether automatic outbound connections (and anchors) are made; `false` accepts only (manual
    /// peers are still dialed).
    pub dial_outbound: bool,
    /// The seed of the generator behind every random choice (feeler times, shuffles, cache
    /// lifetimes). Random by default (drawn from the operating system); fix it only for
    /// reproducible runs (tests, the simulator) with [`NodeSettings::fixed`].
    pub seed: u64,
    /// The secret of the keyed hashes: network groups for eviction, address relay targets, the
    /// `getaddr` cache (Core's `CConnman::nSeed0`/`nSeed1`, random at every start). Random by
    /// default: a key an attacker knows lets it predict which groups eviction protects and
    /// where relayed addresses go. Fix it only on request ([`NodeSettings::fixed`]).
    pub key: [u8; 32],
    /// The address we listen on, announced to address-relaying peers when relay starts (Core's
    /// self-announcement, `PeerManagerImpl::MaybeSendAddr`); `None` announces nothing.
    pub local_addr: Option<SocketAddr>,
    /// The services announced with [`local_addr`](NodeSettings::local_addr).
    pub services: ServiceFlags,
    /// Relay loopback and private addresses too (regtest, tests on one machine; give the book
    /// `allow_local` as well).
    pub allow_local: bool,
    /// Addresses a peer may have processed per second (`MAX_ADDR_RATE_PER_SECOND`, 0.1).
    pub addr_rate: f64,
    /// The most address tokens a peer saves up (`MAX_ADDR_PROCESSING_TOKEN_BUCKET`, 1,000).
    pub addr_burst: f64,
    /// Addresses in a `getaddr` answer at most (`MAX_ADDR_TO_SEND`, 1,000)…
    pub getaddr_max: usize,
    /// …and at most this share of the book, in per cent (`MAX_PCT_ADDR_TO_SEND`, 23).
    pub getaddr_pct: usize,
    /// Manual connections open at once (`MAX_ADDNODE_CONNECTIONS`, 8).
    pub max_manual_connections: usize,
    /// The easiest target a block header may state and still earn eviction protection (the
    /// network's proof-of-work limit; mainnet's by default). See [`NodeCore::requested`](super::NodeCore::requested)
    /// and [`NodeCore::received`](super::NodeCore::received) for what earns it.
    pub pow_limit: bitcoin::pow::Target,
    /// The networks the node can dial (Core's `g_reachable_nets`): the book keeps and selects
    /// only addresses on them. IPv4 and IPv6 by default, the networks a socket address reaches.
    pub reachable: Vec<NetKind>,
}

impl Default for NodeSettings {
    /// Core's limits, with a random [`key`](NodeSettings::key) and [`seed`](NodeSettings::seed).
    fn default() -> Self {
        let (key, seed) = random_key();
        NodeSettings {
            max_connections: 125,
            full_relay: 8,
            block_relay: 2,
            feeler_interval: Duration::from_secs(120),
            feelers: true,
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(600),
            dial_outbound: true,
            seed,
            key,
            local_addr: None,
            services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
            allow_local: false,
            addr_rate: 0.1,
            addr_burst: 1_000.0,
            getaddr_max: 1_000,
            getaddr_pct: 23,
            max_manual_connections: 8,
            pow_limit: bitcoin::pow::Target::MAX_ATTAINABLE_MAINNET,
            reachable: vec![NetKind::Ipv4, NetKind::Ipv6],
        }
    }
}

/// A key and a seed from the operating system's generator (should it fail, which it does not
/// on the platforms the crate supports, the clock's nanoseconds: at least not a constant).
fn random_key() -> ([u8; 32], u64) {
    let mut key = [0u8; 32];
    if getrandom::fill(&mut key).is_err() || key == [0u8; 32] {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let mut state = u64::from(nanos) ^ 0x9e37_79b9_7f4a_7c15 | 1;
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&crate::rng::next(&mut state).to_le_bytes());
        }
    }
    // A seed of its own: the generator's outputs must not reveal the key.
    let seed = getrandom::u64().unwrap_or_else(|_| {
        let mut state =
            u64::from_le_bytes([key[31], key[30], key[29], key[28], key[27], key[26], key[25], key[24]]) | 1;
        crate::rng::next(&mut state)
    });
    (key, seed | 1)
}

impl NodeSettings {
    /// The same settings with a fixed `key` and `seed`, for reproducible runs (tests, the
    /// simulator). A node on a network should keep the random ones of
    /// [`NodeSettings::default`].
    ///
    /// ```
    /// use btcpeer_core::node::NodeSettings;
    /// let s = NodeSettings::default().fixed([7; 32], 42);
    /// assert_eq!((s.key, s.seed), ([7; 32], 42));
    /// assert_ne!(NodeSettings::default().key, [0; 32]);
    /// ```
    pub fn fixed(mut self, key: [u8; 32], seed: u64) -> Self {
        self.key = key;
        self.seed = seed;
        self
    }

    /// Inbound connections at most: `max_connections` less the outbound targets and one feeler,
    /// as Core's `m_max_inbound` (`CConnman::Init`, `net.h`).
    pub fn max_inbound(&self) -> usize {
        self.max_connections.saturating_sub(self.full_relay).saturating_sub(self.block_relay).saturating_sub(1)
    }
}

/// A connection to open: dial `addr`, then report [`NodeCore::established`](super::NodeCore::established),
/// [`NodeCore::dial_failed`](super::NodeCore::dial_failed) or [`NodeCore::closed`](super::NodeCore::closed)
/// with `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dial {
    /// The connection's id.
    pub id: ConnId,
    /// Where to.
    pub addr: SocketAddr,
    /// What for.
    pub kind: ConnKind,
    /// What the book knows of its v2 support: `Yes` dial v2 only, `Failed` dial v1, `Unknown` try
    /// v2 and fall back.
    pub v2: V2Support,
}

/// What to do with an inbound connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// Accepted as `id`.
    Accept(ConnId),
    /// Accepted as `id`; the table was full, and `evict` is ended to make room (also queued as
    /// [`Action::Disconnect`] with [`NodeReason::Evicted`]).
    AcceptEvicting {
        /// The new connection's id.
        id: ConnId,
        /// The connection evicted.
        evict: ConnId,
    },
    /// Refused: close the socket.
    Refuse(Refusal),
}

/// Why an inbound connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Its address is banned.
    Banned,
    /// Its address is discouraged and the inbound table is (nearly) full (Core:
    /// `CConnman::CreateNodeFromAcceptedSocket`).
    Discouraged,
    /// The inbound table is full and nobody may be evicted.
    Full,
}

/// What a handshake told us about the remote.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Hello {
    /// The services of its version.
    pub services: ServiceFlags,
    /// Its protocol version.
    pub version: u32,
    /// The relay flag of its version: whether it wants transactions.
    pub relay: bool,
    /// Whether the connection is BIP324 v2.
    pub v2: bool,
    /// Its user agent.
    pub user_agent: String,
    /// Whether it sent `sendaddrv2` (it may be sent Tor, I2P and CJDNS addresses).
    pub wants_addrv2: bool,
}

impl Hello {
    /// A summary from its parts (`wants_addrv2` false; see [`Hello::addrv2`]).
    pub fn new(services: ServiceFlags, version: u32, relay: bool, v2: bool, user_agent: String) -> Self {
        Hello { services, version, relay, v2, user_agent, wants_addrv2: false }
    }

    /// The same, with `wants_addrv2`.
    pub fn addrv2(mut self, wants: bool) -> Self {
        self.wants_addrv2 = wants;
        self
    }
}

impl From<&RemoteInfo> for Hello {
    fn from(r: &RemoteInfo) -> Self {
        Hello {
            services: r.version.services,
            version: r.version.version,
            relay: r.version.relay,
            v2: r.transport == Transport::V2,
            user_agent: r.version.user_agent.clone(),
            wants_addrv2: r.wants_addrv2,
        }
    }
}

/// Something for the driver to do.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Send `getaddr` (once, to an outbound address-relaying peer after its handshake; Core's
    /// `PeerManagerImpl::ProcessMessage`, `VERSION`).
    GetAddr {
        /// To whom.
        to: ConnId,
    },
    /// Send these addresses, as `addr` or `addrv2` as the remote prefers.
    Addr {
        /// To whom.
        to: ConnId,
        /// What.
        addrs: Vec<AddrV2Message>,
    },
    /// End a connection.
    Disconnect {
        /// Which.
        id: ConnId,
        /// Why.
        reason: NodeReason,
    },
}

/// Why the node ends a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeReason {
    /// Evicted to make room for an inbound connection.
    Evicted,
    /// A feeler's handshake completed: its work is done.
    FeelerDone,
    /// Its address was banned.
    Banned,
    /// Its address is discouraged.
    Discouraged,
    /// It broke a rule of the node's policy (an oversized `addr`).
    Misbehaved,
    /// The node is shutting down.
    Shutdown,
    /// A block-relay-only peer sent or announced a transaction (Core disconnects it).
    TxFromBlockRelay,
}

impl NodeReason {
    /// A stable name: `evicted`, `feeler_done`, `banned`, `discouraged`, `misbehaved`, `shutdown`,
    /// `tx_from_block_relay`.
    ///
    /// ```
    /// use btcpeer_core::node::NodeReason;
    /// assert_eq!(NodeReason::FeelerDone.as_str(), "feeler_done");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            NodeReason::Evicted => "evicted",
            NodeReason::FeelerDone => "feeler_done",
            NodeReason::Banned => "banned",
            NodeReason::Discouraged => "discouraged",
            NodeReason::Misbehaved => "misbehaved",
            NodeReason::Shutdown => "shutdown",
            NodeReason::TxFromBlockRelay => "tx_from_block_relay",
        }
    }
}

/// One row of the connection table (as `getpeerinfo`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnInfo {
    /// Its id.
    pub id: ConnId,
    /// The remote's address.
    pub addr: SocketAddr,
    /// Our address and port it came in on, for an inbound connection admitted with
    /// [`NodeCore::inbound_on`](super::NodeCore::inbound_on) (Core's `addrBind`).
    pub local: Option<SocketAddr>,
    /// What it is for.
    pub kind: ConnKind,
    /// When it was dialed or accepted.
    pub since: Instant,
    /// Whether its handshake completed.
    pub established: bool,
    /// What its handshake said.
    pub hello: Option<Hello>,
    /// Its fastest ping.
    pub min_ping: Option<Duration>,
    /// When it last sent a transaction we had not seen and had asked it for
    /// ([`NodeCore::requested`](super::NodeCore::requested)).
    pub last_tx: Option<Instant>,
    /// When it last sent a block or header we had not seen, with valid proof of work on or near
    /// the best chain we know (see [`NodeCore::received`](super::NodeCore::received)).
    pub last_block: Option<Instant>,
    /// Addresses from it that were processed.
    pub addr_processed: u64,
    /// Addresses from it dropped by the rate limit.
    pub addr_rate_limited: u64,
    /// Whether it is a persistent manual peer.
    pub persistent: bool,
    /// Whether the remote has sent any byte at all (the driver says so with
    /// [`NodeCore::heard`](super::NodeCore::heard)); a connection that never speaks is the first
    /// to go when room is needed.
    pub heard: bool,
    /// Whether its `version` arrived ([`NodeCore::version_received`](super::NodeCore::version_received)):
    /// further into its handshake than a connection that sent only bytes.
    pub version_received: bool,
}

/// Connections by kind. Outbound kinds count dials in progress too (so targets are never
/// exceeded); `dialing` is how many outbound connections have not completed their handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Inbound connections (established or not).
    pub inbound: usize,
    /// Full-relay outbound.
    pub full_relay: usize,
    /// Block-relay-only outbound.
    pub block_relay: usize,
    /// Feelers.
    pub feeler: usize,
    /// Manual.
    pub manual: usize,
    /// Outbound connections not yet established.
    pub dialing: usize,
}
