//! [`PeerConfig`] as the core's [`CoreConfig`]: the library keeps one set of defaults, the core's,
//! which [`PeerConfig::builder`] starts from; this is the way back, and the [`PeerCore`] each peer
//! runs, built from it.

use std::time::SystemTime;

use bitcoin::p2p::{Address, ServiceFlags};
use btcpeer_core::peer::rules::BloomPolicy;
use btcpeer_core::peer::{CoreConfig, Direction, HandshakeRules, PeerCore};
use btcpeer_core::transport::framing::{Framing, TransportPolicy};

use super::config::{ConfigInner, PeerConfig, V2Policy};
use super::{PeerAddr, now};

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

/// The core for a peer built from `config`: the library's configuration as the core's, our version
/// addressed to `addr`, the framing its v2 policy asks for. The driver decides on the remote's
/// version itself (the node's nonce registry, the application's `on_version`) and shows reads to
/// the handler.
pub(crate) fn new_core(config: &PeerConfig, direction: Direction, addr: &PeerAddr) -> PeerCore {
    let cfg = &config.inner;
    let slot = usize::from(direction == Direction::Inbound);
    let shared = cfg.shared_cores.0.get(slot).map(|cell| {
        cell.get_or_init(|| {
            let mut core_config = config.core_config_seeded(direction, 0);
            core_config.version_decision = true;
            core_config.report_reads = true;
            core_config.sender = cfg.advertised_address.map(|a| Address::new(&a, cfg.services));
            std::sync::Arc::new(core_config)
        })
        .clone()
    });
    let shared = shared.unwrap_or_else(|| std::sync::Arc::new(config.core_config_seeded(direction, 0)));
    // Each connection draws its own seed (nonces and delays must not repeat across connections),
    // unless the configuration fixes one for reproducible runs.
    let seed = cfg.seed.unwrap_or_else(connection_seed);
    let (at, wall) = (now(), SystemTime::now());
    let mut core = match Framing::new(cfg.network.clone(), direction, cfg.transport_policy(), cfg.v2_options.clone()) {
        Ok(framing) => PeerCore::framed_shared(shared, seed, framing, at, wall),
        Err(reason) => {
            // No key could be drawn: the peer ends as soon as it starts.
            let framing = Framing::v1(cfg.network.clone(), direction);
            let mut core = PeerCore::framed_shared(shared, seed, framing, at, wall);
            core.closed(Some(reason));
            core
        }
    };
    // Our version names the remote (written anew when the stream is connected).
    core.set_receiver(receiver_address(config, addr));
    core
}

/// A seed for one connection's generator (its ping nonces and trickle delays): a process-wide
/// secret drawn from the OS once, mixed with a counter, so that every connection's differs
/// without a system call each (the version nonce is still drawn from the OS, by the registry).
fn connection_seed() -> u64 {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SECRET: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let secret = *SECRET.get_or_init(|| getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // splitmix64's finalizer over the secret and the count: distinct inputs, well-mixed outputs.
    let mut z = secret ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The remote's address as we put it in our version: blanked when it is the proxy's, or a
/// name (an onion or DNS name reached through a proxy), keeping only the port.
fn receiver_address(config: &PeerConfig, addr: &PeerAddr) -> Address {
    let proxy = config.inner.proxy;
    let blank = |port: u16| {
        Address::new(&std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)), ServiceFlags::NONE)
    };
    match addr {
        PeerAddr::Socket(a) if proxy.is_some_and(|p| p.ip() == a.ip()) => crate::wire::blank_address(),
        PeerAddr::Socket(a) => Address::new(a, ServiceFlags::NONE),
        PeerAddr::Host(h) => blank(h.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(0)),
    }
}
