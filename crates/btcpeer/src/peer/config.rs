//! Peer configuration: a builder that checks everything (the BIP14 user agent included) when
//! [`PeerConfigBuilder::build`] is called, so a running peer never meets a bad setting.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::p2p::ServiceFlags;

use super::builder::PeerConfigBuilder;
use super::context::NodeContext;
use super::nonce::NonceRegistry;
use crate::network::Network;
use crate::transport::v2_handshake::V2Options;
use btcpeer_core::peer::Timeouts;
use btcpeer_core::peer::{CoreConfig, Direction};

/// Whether a peer uses the BIP324 v2 transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum V2Policy {
    /// v1 only.
    #[default]
    Never,
    /// Outbound: try v2; if the remote closes without a byte, the peer ends with
    /// [`DisconnectReason::V1RetryAdvised`](super::DisconnectReason::V1RetryAdvised) and the
    /// application dials again with `Never`. Inbound: accept v2 and v1 initiators alike.
    Prefer,
    /// v2 only: a v1 remote is refused.
    Require,
}

/// Everything a peer needs to know before it connects. Build one with [`PeerConfig::builder`]; share
/// it between peers (it is cheap to clone).
///
/// ```
/// use btcpeer::network::Network;
/// use btcpeer::peer::PeerConfig;
/// use std::time::Duration;
///
/// let config = PeerConfig::builder(Network::SIGNET)
///     .user_agent("crawler", "2.1.0")
///     .user_agent_comment("research")
///     .handshake_timeout(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// assert_eq!(config.user_agent(), "/btcpeer:0.1.0/crawler:2.1.0(research)/");
///
/// // BIP14 separators are refused when the configuration is built, not silently dropped.
/// assert!(PeerConfig::builder(Network::SIGNET).user_agent_comment("a/b").build().is_err());
/// ```
#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub(crate) inner: Arc<ConfigInner>,
}

#[derive(Debug, Clone)]
pub(crate) struct ConfigInner {
    pub(crate) network: Network,
    pub(crate) protocol_version: u32,
    pub(crate) min_protocol_version: u32,
    pub(crate) services: ServiceFlags,
    pub(crate) required_services: ServiceFlags,
    pub(crate) user_agent: String,
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
    pub(crate) node: NodeContext,
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
    /// The core's configuration for each direction, built once and shared by the peers of this
    /// configuration (one copy for a node's thousands of connections).
    pub(crate) shared_cores: SharedCores,
    pub(crate) connect_timeout: Duration,
    pub(crate) start_height: Option<HeightSource>,
}

/// [`ConfigInner::shared_cores`]: outbound, then inbound.
#[derive(Clone, Debug, Default)]
pub(crate) struct SharedCores(pub(crate) [std::sync::OnceLock<Arc<btcpeer_core::peer::CoreConfig>>; 2]);

/// Where our version's start height comes from: a number, or a function asked at each handshake.
#[derive(Clone)]
pub(crate) struct HeightSource(pub(crate) Arc<dyn Fn() -> i32 + Send + Sync>);

impl std::fmt::Debug for HeightSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeightSource({})", (self.0)())
    }
}

impl PeerConfig {
    /// Starts a configuration for `network` with the defaults listed on [`PeerConfigBuilder`].
    pub fn builder(network: Network) -> PeerConfigBuilder {
        // The library's one set of defaults is the core's (`CoreConfig`); `core_config` converts
        // back, and a test holds the two equal.
        let out = CoreConfig::seeded(Direction::Outbound, 0);
        let inbound_trickle = CoreConfig::seeded(Direction::Inbound, 0).trickle_mean;
        PeerConfigBuilder {
            network,
            protocol_version: out.rules.protocol_version,
            min_protocol_version: out.rules.min_protocol_version,
            services: out.services,
            required_services: out.rules.required_services,
            ua_name: None,
            ua_comments: Vec::new(),
            relay: out.rules.relay,
            wtxid_relay: out.rules.wtxid_relay,
            addrv2: out.rules.addrv2,
            txrcncl: out.rules.txrcncl,
            advertised_address: None,
            proxy: None,
            handshake_timeout: out.handshake_timeout,
            max_queue_bytes: out.max_queue_bytes,
            write_timeout: Duration::from_secs(20),
            write_timeout_per_256k: Duration::from_secs(1),
            enforce_bloom: out.bloom.refuse,
            allow_self_connection: false,
            nonces: None,
            node: None,
            ignored_limit: out.ignored_limit,
            timeouts: out.timeouts,
            trickle_inbound: inbound_trickle,
            trickle_outbound: out.trickle_mean,
            known_inventory: out.known_capacity,
            max_pending_inventory: out.trickle_limit,
            v2: V2Policy::Never,
            v2_options: V2Options::default(),
            raw_blocks: out.raw_blocks,
            seed: None,
            connect_timeout: Duration::from_secs(10),
            start_height: None,
        }
    }

    /// The v2 transport policy.
    pub fn v2_policy(&self) -> V2Policy {
        self.inner.v2
    }

    /// This configuration with another v2 policy (the rest shared): how a dialer follows what its
    /// address book knows of each address.
    ///
    /// ```
    /// use btcpeer::network::Network;
    /// use btcpeer::peer::{PeerConfig, V2Policy};
    /// let config = PeerConfig::builder(Network::REGTEST).v2(V2Policy::Prefer).build().unwrap();
    /// assert_eq!(config.with_v2(V2Policy::Never).v2_policy(), V2Policy::Never);
    /// assert_eq!(config.v2_policy(), V2Policy::Prefer);
    /// ```
    pub fn with_v2(&self, policy: V2Policy) -> PeerConfig {
        if self.inner.v2 == policy {
            return self.clone();
        }
        let mut inner = (*self.inner).clone();
        inner.v2 = policy;
        PeerConfig { inner: std::sync::Arc::new(inner) }
    }

    /// This configuration with another relay flag (the rest shared): what a node's
    /// block-relay-only connections send (`relay = false`: no transactions, as Core's).
    ///
    /// ```
    /// use btcpeer::network::Network;
    /// use btcpeer::peer::PeerConfig;
    /// let config = PeerConfig::builder(Network::REGTEST).build().unwrap();
    /// assert!(!config.with_relay(false).relay());
    /// assert!(config.relay());
    /// ```
    pub fn with_relay(&self, relay: bool) -> PeerConfig {
        if self.inner.relay == relay {
            return self.clone();
        }
        let mut inner = (*self.inner).clone();
        inner.relay = relay;
        PeerConfig { inner: std::sync::Arc::new(inner) }
    }

    /// The relay flag our version message carries.
    pub fn relay(&self) -> bool {
        self.inner.relay
    }

    /// The SOCKS5 proxy streams are dialed through, if any.
    pub fn proxy(&self) -> Option<SocketAddr> {
        self.inner.proxy
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.inner.network
    }

    /// The protocol version we advertise.
    pub fn protocol_version(&self) -> u32 {
        self.inner.protocol_version
    }

    /// The services we advertise.
    pub fn services(&self) -> ServiceFlags {
        self.inner.services
    }

    /// The full user agent we send.
    pub fn user_agent(&self) -> &str {
        &self.inner.user_agent
    }

    /// How long a dial may take ([`Peer::connect`](super::Peer::connect)).
    pub fn connect_timeout(&self) -> Duration {
        self.inner.connect_timeout
    }

    /// The handshake deadline.
    pub fn handshake_timeout(&self) -> Duration {
        self.inner.handshake_timeout
    }

    /// The outbound queue's limit in bytes.
    pub fn max_queue_bytes(&self) -> usize {
        self.inner.max_queue_bytes
    }

    /// The nonce registry used for self-connection detection.
    pub fn nonce_registry(&self) -> &NonceRegistry {
        self.inner.node.nonce_registry()
    }

    /// The node context the peers of this configuration share.
    pub fn node(&self) -> &NodeContext {
        &self.inner.node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_l3_config_rejects_nonsense() {
        assert!(PeerConfig::builder(Network::REGTEST).min_protocol_version(70017).build().is_err());
        assert!(PeerConfig::builder(Network::REGTEST).handshake_timeout(Duration::ZERO).build().is_err());
        assert!(PeerConfig::builder(Network::REGTEST).max_queue_bytes(0).build().is_err());
    }
}
