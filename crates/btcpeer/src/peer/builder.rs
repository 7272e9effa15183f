//! [`PeerConfigBuilder`]: every setting, checked when [`PeerConfigBuilder::build`] is called.

use super::config::{ConfigInner, HeightSource, PeerConfig, SharedCores, V2Policy};
use super::context::NodeContext;
use super::error::ConfigError;
use super::nonce::NonceRegistry;
use super::user_agent::user_agent;
use crate::network::Network;
use crate::transport::v2_handshake::V2Options;
use bitcoin::p2p::ServiceFlags;
use btcpeer_core::peer::Timeouts;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Builds a [`PeerConfig`]. Defaults, and why:
///
/// | setting | default | reason |
/// |---|---|---|
/// | protocol version | 70016 | wtxidrelay (BIP339) and addrv2 (BIP155) |
/// | minimum remote version | 31800 | Bitcoin Core's `MIN_PEER_PROTO_VERSION` (btcd accepts 209) |
/// | services | none | a client offers nothing until told to |
/// | relay flag | true | ask for transaction announcements |
/// | wtxidrelay, sendaddrv2 | sent when the version allows | what Core does |
/// | handshake deadline | 30 s | btcd's and Core's negotiation timeout |
/// | outbound queue | 8 MiB | twice the largest message, so one block always fits |
/// | write deadline | 20 s + 1 s per 256 KiB queued | dcrd's rule: slow links get time, dead ones do not |
/// | bloom rules (BIP111) | enforced | disconnect filter clients at 70011+ when we lack `NODE_BLOOM` |
/// | ping interval | 2 min | btcd's and Core's |
/// | pong timeout | 20 min | Core's inactivity timeout (btcd has none) |
/// | idle timeout | 5 min | btcd's: nothing received at all |
/// | stall deadline | 30 s, `getheaders` 90 s | btcd's values, per request here |
/// | trickle mean | 5 s inbound, 2 s outbound | Core's Poisson means; zero sends at once |
/// | trickle schedule | one for all inbound peers of a node, one per outbound peer | Core's `NextInvToInbounds` |
/// | ignored or dropped frames | counted, no limit | Core only logs them |
/// | known inventory | 1,000 entries | btcd's cache size |
/// | pending announcements | 50,000 | one full `inv` worth; more are dropped and counted |
/// | v2 transport | never | dialing v2 at a v1-only node costs a reconnect; opt in with [`V2Policy`] |
///
/// Every timeout is disabled by setting it to zero.
#[derive(Clone, Debug)]
#[must_use]
pub struct PeerConfigBuilder {
    pub(crate) network: Network,
    pub(crate) protocol_version: u32,
    pub(crate) min_protocol_version: u32,
    pub(crate) services: ServiceFlags,
    pub(crate) required_services: ServiceFlags,
    pub(crate) ua_name: Option<(String, String)>,
    pub(crate) ua_comments: Vec<String>,
    pub(crate) relay: bool,
    pub(crate) wtxid_relay: bool,
    pub(crate) addrv2: bool,
    pub(crate) txrcncl: Option<(u32, u64)>,
    pub(crate) advertised_address: Option<SocketAddr>,
    pub(crate) proxy: Option<SocketAddr>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_queue_bytes: usize,
    pub(crate) write_timeout: Duration,
    pub(crate) write_timeout_per_256k: Duration,
    pub(crate) enforce_bloom: bool,
    pub(crate) allow_self_connection: bool,
    pub(crate) nonces: Option<NonceRegistry>,
    pub(crate) node: Option<NodeContext>,
    pub(crate) ignored_limit: Option<u64>,
    pub(crate) timeouts: Timeouts,
    pub(crate) trickle_inbound: Duration,
    pub(crate) trickle_outbound: Duration,
    pub(crate) known_inventory: usize,
    pub(crate) max_pending_inventory: usize,
    pub(crate) v2: V2Policy,
    pub(crate) v2_options: V2Options,
    pub(crate) raw_blocks: bool,
    pub(crate) seed: Option<u64>,
    pub(crate) connect_timeout: Duration,
    pub(crate) start_height: Option<HeightSource>,
}

impl PeerConfigBuilder {
    /// How long [`Peer::connect`](super::Peer::connect) may take to open the TCP connection (or the
    /// proxy's tunnel). Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The best height we put in our version messages (default: the handler's
    /// [`start_height`](super::Handler::start_height), 0 in channel mode).
    pub fn start_height(mut self, height: i32) -> Self {
        self.start_height = Some(HeightSource(Arc::new(move || height)));
        self
    }

    /// The start height, asked of `height` at each handshake (a node's tip as it grows).
    pub fn start_height_with(mut self, height: impl Fn() -> i32 + Send + Sync + 'static) -> Self {
        self.start_height = Some(HeightSource(Arc::new(height)));
        self
    }

    /// Hands blocks to the application as raw bytes only ([`Handler::on_raw_block`](super::Handler::on_raw_block),
    /// [`PeerEvent::RawBlock`](super::PeerEvent::RawBlock)), without decoding them: for proxies,
    /// archivers and applications with their own block parser (default false).
    pub fn raw_blocks(mut self, raw: bool) -> Self {
        self.raw_blocks = raw;
        self
    }

    /// Seeds the generator of each peer's nonces and trickle delays (default: drawn from the OS
    /// for each peer). For reproducible runs only — tests, comparisons with the core driven
    /// directly: a peer's version nonce then is the seeded core's, so two peers of one node with
    /// one seed would collide (the second draws a fresh nonce).
    ///
    /// ```
    /// use btcpeer::network::Network;
    /// use btcpeer::peer::PeerConfig;
    ///
    /// let config = PeerConfig::builder(Network::REGTEST).seed(7).build().unwrap();
    /// # let _ = config;
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Whether to use the BIP324 v2 transport (default [`V2Policy::Never`]). With `Prefer` or
    /// `Require`, `NODE_P2P_V2` is added to the services we advertise.
    pub fn v2(mut self, policy: V2Policy) -> Self {
        self.v2 = policy;
        self
    }

    /// The garbage sent after our v2 key (default: a random length from 0 to 4,095 bytes).
    pub fn v2_garbage_len(mut self, len: usize) -> Self {
        self.v2_options.garbage_len = Some(len.min(crate::transport::v2_handshake::MAX_GARBAGE));
        self
    }

    /// Decoy packets (of these content lengths) to send before our v2 version packet.
    pub fn v2_decoys(mut self, lengths: Vec<usize>) -> Self {
        self.v2_options.decoys = lengths;
        self
    }

    /// How often to ping the remote (default 2 min; zero: never).
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.timeouts.ping_interval = interval;
        self
    }

    /// How long a ping may go unanswered before the peer is dropped (default 20 min; zero: forever).
    pub fn pong_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.pong_timeout = timeout;
        self
    }

    /// How long the remote may send nothing at all (default 5 min; zero: forever).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.idle_timeout = timeout;
        self
    }

    /// The stall deadlines: for `getheaders`, and for every other request that expects an answer
    /// (defaults 90 s and 30 s; zero disables that deadline).
    pub fn stall_timeouts(mut self, other: Duration, getheaders: Duration) -> Self {
        self.timeouts.stall = other;
        self.timeouts.headers_stall = getheaders;
        self
    }

    /// Turns stall detection off or on (default on).
    pub fn stall_detection(mut self, enabled: bool) -> Self {
        self.timeouts.stall_enabled = enabled;
        self
    }

    /// The mean trickle interval for inbound and outbound peers (defaults 5 s and 2 s; zero
    /// announces at once).
    pub fn trickle_interval(mut self, inbound: Duration, outbound: Duration) -> Self {
        self.trickle_inbound = inbound;
        self.trickle_outbound = outbound;
        self
    }

    /// Entries in each peer's known-inventory cache (default 1,000).
    pub fn known_inventory_capacity(mut self, entries: usize) -> Self {
        self.known_inventory = entries;
        self
    }

    /// Announcements that may wait for the trickle tick (default 50,000); more are dropped.
    pub fn max_pending_inventory(mut self, entries: usize) -> Self {
        self.max_pending_inventory = entries;
        self
    }

    /// The protocol version to advertise (default 70016).
    pub fn protocol_version(mut self, version: u32) -> Self {
        self.protocol_version = version;
        self
    }

    /// The lowest remote version accepted (default 31800).
    pub fn min_protocol_version(mut self, version: u32) -> Self {
        self.min_protocol_version = version;
        self
    }

    /// The services to advertise (default none).
    pub fn services(mut self, services: ServiceFlags) -> Self {
        self.services = services;
        self
    }

    /// Services the remote must advertise, or the handshake fails (default none).
    pub fn required_services(mut self, services: ServiceFlags) -> Self {
        self.required_services = services;
        self
    }

    /// The application's name and version, appended to `/btcpeer:X.Y.Z/` (BIP14).
    pub fn user_agent(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.ua_name = Some((name.into(), version.into()));
        self
    }

    /// Adds a comment to the user agent (`name:version(comment; comment)`).
    pub fn user_agent_comment(mut self, comment: impl Into<String>) -> Self {
        self.ua_comments.push(comment.into());
        self
    }

    /// The version message's relay flag (default true).
    pub fn relay(mut self, relay: bool) -> Self {
        self.relay = relay;
        self
    }

    /// Whether to send `wtxidrelay` before verack when the version allows (default true).
    pub fn wtxid_relay(mut self, enabled: bool) -> Self {
        self.wtxid_relay = enabled;
        self
    }

    /// Whether to send `sendaddrv2` before verack when the version allows (default true).
    pub fn addrv2(mut self, enabled: bool) -> Self {
        self.addrv2 = enabled;
        self
    }

    /// Sends `sendtxrcncl` (BIP330) with this version and salt before verack (default off).
    pub fn send_txrcncl(mut self, version: u32, salt: u64) -> Self {
        self.txrcncl = Some((version, salt));
        self
    }

    /// An address to advertise as ours in the version message (default: none, all zero).
    pub fn advertised_address(mut self, addr: SocketAddr) -> Self {
        self.advertised_address = Some(addr);
        self
    }

    /// The SOCKS5 proxy streams come through: when a peer's address is the proxy's, it is not put in
    /// our version message. [`Peer::connect`](super::Peer::connect) dials through it (feature
    /// `socks`); built without that feature, `connect` refuses such a configuration with
    /// [`ConnectError::ProxyWithoutSocks`](super::ConnectError::ProxyWithoutSocks) and dials
    /// nothing, rather than dial directly and reveal our address.
    ///
    /// ```
    /// use btcpeer::network::Network;
    /// use btcpeer::peer::PeerConfig;
    /// let tor = "127.0.0.1:9050".parse().expect("an address");
    /// let config = PeerConfig::builder(Network::MAINNET).proxy(tor).build().expect("valid");
    /// assert_eq!(config.proxy(), Some(tor));
    /// ```
    pub fn proxy(mut self, proxy: SocketAddr) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// The deadline for the whole handshake (default 30 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The outbound queue's limit in bytes (default 8 MiB). A message is always accepted into an
    /// empty queue, so one message larger than the limit can still be sent.
    pub fn max_queue_bytes(mut self, bytes: usize) -> Self {
        self.max_queue_bytes = bytes;
        self
    }

    /// The write deadline: `base` plus `per_256k` for every 256 KiB being written (default 20 s and
    /// 1 s).
    pub fn write_timeout(mut self, base: Duration, per_256k: Duration) -> Self {
        self.write_timeout = base;
        self.write_timeout_per_256k = per_256k;
        self
    }

    /// Whether to apply BIP111's bloom rules when we do not advertise `NODE_BLOOM` (default true).
    pub fn enforce_bloom(mut self, enforce: bool) -> Self {
        self.enforce_bloom = enforce;
        self
    }

    /// Skips self-connection detection (for tests that connect a process to itself on purpose).
    pub fn allow_self_connection(mut self, allow: bool) -> Self {
        self.allow_self_connection = allow;
        self
    }

    /// The nonce registry shared by the peers of one node (default: the process-wide registry, or
    /// the one of the context given to [`PeerConfigBuilder::node`]).
    pub fn nonce_registry(mut self, registry: NonceRegistry) -> Self {
        self.nonces = Some(registry);
        self
    }

    /// The node these peers belong to (default: a context of this configuration's own, shared by
    /// every peer built from it). Peers of one node share its self-connection nonces and the one
    /// trickle schedule of its inbound peers, as in Bitcoin Core; give the same context to every
    /// configuration of a node (inbound, outbound, block-relay-only …).
    pub fn node(mut self, node: NodeContext) -> Self {
        self.node = Some(node);
        self
    }

    /// Disconnects a remote once more than `limit` of its frames were ignored or dropped: messages
    /// before `version` or `verack`, duplicates of them, frames with a bad checksum or invalid
    /// command bytes … (default: no limit, as Bitcoin Core, which only logs them). Each is counted
    /// in [`PeerStats`](super::PeerStats) either way.
    pub fn ignored_message_limit(mut self, limit: u64) -> Self {
        self.ignored_limit = Some(limit);
        self
    }

    /// Checks every setting and builds the configuration.
    pub fn build(self) -> Result<PeerConfig, ConfigError> {
        let user_agent = user_agent(self.ua_name.as_ref(), &self.ua_comments)?;
        if self.min_protocol_version > self.protocol_version {
            return Err(ConfigError::Invalid {
                setting: "min_protocol_version",
                reason: "above the protocol version we advertise",
            });
        }
        if self.handshake_timeout.is_zero() {
            return Err(ConfigError::Invalid { setting: "handshake_timeout", reason: "must not be zero" });
        }
        if self.max_queue_bytes == 0 {
            return Err(ConfigError::Invalid { setting: "max_queue_bytes", reason: "must not be zero" });
        }
        Ok(PeerConfig {
            inner: Arc::new(ConfigInner {
                network: self.network,
                protocol_version: self.protocol_version,
                min_protocol_version: self.min_protocol_version,
                services: if self.v2 == V2Policy::Never { self.services } else { self.services | ServiceFlags::P2P_V2 },
                required_services: self.required_services,
                user_agent,
                relay: self.relay,
                wtxid_relay: self.wtxid_relay,
                addrv2: self.addrv2,
                txrcncl: self.txrcncl,
                advertised_address: self.advertised_address,
                proxy: self.proxy,
                handshake_timeout: self.handshake_timeout,
                max_queue_bytes: self.max_queue_bytes,
                write_timeout: self.write_timeout,
                write_timeout_per_256k: self.write_timeout_per_256k,
                enforce_bloom: self.enforce_bloom,
                allow_self_connection: self.allow_self_connection,
                node: match (self.node, self.nonces) {
                    (Some(node), None) => node,
                    (Some(node), Some(nonces)) if node.nonce_registry().same_registry(&nonces) => node,
                    (Some(_), Some(_)) => {
                        return Err(ConfigError::Invalid {
                            setting: "nonce_registry",
                            reason: "differs from the registry of the node context given",
                        });
                    }
                    (None, nonces) => NodeContext::with_nonce_registry(nonces.unwrap_or_else(NonceRegistry::global)),
                },
                ignored_limit: self.ignored_limit,
                timeouts: self.timeouts,
                trickle_inbound: self.trickle_inbound,
                trickle_outbound: self.trickle_outbound,
                known_inventory: self.known_inventory.max(1),
                max_pending_inventory: self.max_pending_inventory,
                v2: self.v2,
                v2_options: self.v2_options,
                raw_blocks: self.raw_blocks,
                seed: self.seed,
                shared_cores: SharedCores::default(),
                connect_timeout: self.connect_timeout,
                start_height: self.start_height,
            }),
        })
    }
}
