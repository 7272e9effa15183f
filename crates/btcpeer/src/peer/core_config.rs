//! [`PeerConfig`] as the core's [`CoreConfig`]: the library keeps one set of defaults, the core's,
//! which [`PeerConfig::builder`] starts from; this is the way back.

use btcpeer_core::peer::rules::BloomPolicy;
use btcpeer_core::peer::{CoreConfig, Direction, HandshakeRules};

use super::config::{ConfigInner, PeerConfig, V2Policy};
use btcpeer_core::transport::framing::TransportPolicy;

impl PeerConfig {
    /// The core's configuration for a connection in `direction` under these settings (its
    /// generator seeded from the OS): what a [`PeerCore`](btcpeer_core::peer::PeerCore) driven
    /// elsewhere — the simulator, the blocking driver, a test — needs to behave as a [`Peer`]
    /// built from this configuration. The start height is asked of its source, if one was given.
    ///
    /// ```
    /// use btcpeer::core::peer::CoreConfig;
    /// use btcpeer::peer::Direction;
    /// use btcpeer::network::Network;
    /// use btcpeer::peer::PeerConfig;
    ///
    /// let config = PeerConfig::builder(Network::REGTEST).build().unwrap();
    /// let core = config.core_config(Direction::Outbound);
    /// assert_eq!(core.handshake_timeout, config.handshake_timeout());
    /// // The defaults are the core's own.
    /// assert_eq!(format!("{:?}", core.seed(7)), format!("{:?}", CoreConfig::seeded(Direction::Outbound, 7)));
    /// ```
    ///
    /// [`Peer`]: super::Peer
    pub fn core_config(&self, direction: Direction) -> CoreConfig {
        let mut core = self.core_config_seeded(direction, 0);
        core.seed = self.inner.seed.unwrap_or_else(|| CoreConfig::new(direction).seed);
        core
    }

    /// [`PeerConfig::core_config`] with the generator's seed given (no draw from the OS): what
    /// the peers of this configuration share, each with a seed of its own.
    pub(crate) fn core_config_seeded(&self, direction: Direction, seed: u64) -> CoreConfig {
        let cfg = &self.inner;
        let mut core = CoreConfig::seeded(direction, seed);
        core.rules = cfg.handshake_rules();
        core.timeouts = cfg.timeouts;
        core.handshake_timeout = cfg.handshake_timeout;
        core.services = cfg.services;
        core.user_agent.clone_from(&cfg.user_agent);
        core.start_height = cfg.start_height.as_ref().map_or(0, |h| (h.0)());
        core.trickle_mean = match direction {
            Direction::Inbound => cfg.trickle_inbound,
            Direction::Outbound => cfg.trickle_outbound,
        };
        core.known_capacity = cfg.known_inventory;
        core.trickle_limit = cfg.max_pending_inventory;
        core.bloom = cfg.bloom_policy();
        core.ignored_limit = cfg.ignored_limit;
        core.max_queue_bytes = cfg.max_queue_bytes;
        core.max_payload = cfg.network.max_payload();
        core.raw_blocks = cfg.raw_blocks;
        core
    }
}

impl ConfigInner {
    /// What the handshake offers and requires.
    pub(crate) fn handshake_rules(&self) -> HandshakeRules {
        HandshakeRules {
            protocol_version: self.protocol_version,
            min_protocol_version: self.min_protocol_version,
            required_services: self.required_services,
            relay: self.relay,
            wtxid_relay: self.wtxid_relay,
            addrv2: self.addrv2,
            txrcncl: self.txrcncl,
        }
    }

    /// The v2 policy as the core's transport policy.
    pub(crate) fn transport_policy(&self) -> TransportPolicy {
        match self.v2 {
            V2Policy::Never => TransportPolicy::V1,
            V2Policy::Prefer => TransportPolicy::Auto,
            V2Policy::Require => TransportPolicy::V2,
        }
    }

    /// Bloom messages are refused when enforcement is on and we do not offer `NODE_BLOOM` (BIP111).
    pub(crate) fn bloom_policy(&self) -> BloomPolicy {
        BloomPolicy { refuse: self.enforce_bloom && !self.services.has(bitcoin::p2p::ServiceFlags::BLOOM) }
    }
}
