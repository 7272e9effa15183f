//! [`CoreConfig`]: how a [`PeerCore`](super::PeerCore) behaves, and the library's one set of
//! defaults.

use std::time::Duration;

use bitcoin::p2p::ServiceFlags;

use crate::peer::liveness::Timeouts;
use crate::peer::rules::BloomPolicy;
use crate::peer::{Direction, HandshakeRules, Transport};

/// How a [`PeerCore`](crate::peer::PeerCore) behaves. These are the library's one set of
/// defaults: `btcpeer`'s
/// `PeerConfig` starts from them and converts back (`PeerConfig::core_config`), and a test holds
/// the two equal. They follow Bitcoin Core where a light peer behaves as Core does (ping every
/// 2 minutes, a pong within 20, bloom messages refused, trickle means of 5 s inbound and 2 s
/// outbound); they are tighter where a peer that serves nothing should give up sooner (a 30 s
/// handshake, 5 minutes of silence, 90 s for headers), remember less (1,000 inventory entries,
/// btcd's `maxKnownInventory`) and offer no services.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CoreConfig {
    /// Whether we dialed the remote.
    pub direction: Direction,
    /// What the handshake offers and requires.
    pub rules: HandshakeRules,
    /// Liveness deadlines.
    pub timeouts: Timeouts,
    /// The whole handshake's deadline.
    pub handshake_timeout: Duration,
    /// Services we offer.
    pub services: ServiceFlags,
    /// Our user agent.
    pub user_agent: String,
    /// The height in our version.
    pub start_height: i32,
    /// The transport under the frames.
    pub transport: Transport,
    /// The mean trickle delay for transaction announcements (Core: 5 s inbound, 2 s outbound).
    pub trickle_mean: Duration,
    /// Inventory entries remembered per peer.
    pub known_capacity: usize,
    /// Announcements waiting for the trickle tick at most.
    pub trickle_limit: usize,
    /// Bloom-filter messages refused.
    pub bloom: BloomPolicy,
    /// The seed of the generator for nonces and trickle delays.
    pub seed: u64,
    /// Frames ignored or dropped at most before the connection ends (`None`: no limit, as Core,
    /// which only logs them).
    pub ignored_limit: Option<u64>,
    /// Whether the driver decides on the remote's version: the core then pauses at it with
    /// [`Event::Version`](crate::peer::Event::Version) until
    /// [`PeerCore::decide_version`](crate::peer::PeerCore::decide_version) (node-wide state goes in as an input,
    /// not a callback). Off: the core accepts by its own rules.
    pub version_decision: bool,
    /// Bytes the outbound queue holds at most (one message of any size when it is empty).
    pub max_queue_bytes: usize,
    /// The largest payload the network allows (a `block`'s; other commands have their own
    /// smaller limits). [`PeerCore::framed`](crate::peer::PeerCore::framed) takes it from the
    /// framing's network.
    pub max_payload: u32,
    /// Blocks are kept undecoded: checked as decoding would check them
    /// ([`check_block`](crate::wire::check_block)), then delivered as
    /// [`Event::RawBlock`](crate::peer::Event::RawBlock).
    pub raw_blocks: bool,
    /// The address our version advertises for us (`None`: a blank one).
    pub sender: Option<bitcoin::p2p::Address>,
    /// The address our version gives for the remote (`None`: a blank one).
    pub receiver: Option<bitcoin::p2p::Address>,
    /// Whether each frame read is reported ([`Event::Read`](crate::peer::Event::Read)), for a
    /// driver that shows reads to its application.
    pub report_reads: bool,
}

impl CoreConfig {
    /// The library's defaults (see the type) for a connection in `direction`, seeded from the OS.
    pub fn new(direction: Direction) -> Self {
        Self::seeded(direction, getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15))
    }

    /// The library's defaults, with `seed` for the generator of nonces and delays (reproducible runs: the
    /// simulator, fuzzing). Two peers of one process with one seed would take each other for a
    /// self-connection.
    pub fn seeded(direction: Direction, seed: u64) -> Self {
        CoreConfig {
            direction,
            rules: HandshakeRules::default(),
            timeouts: Timeouts {
                ping_interval: Duration::from_secs(120),
                pong_timeout: Duration::from_secs(20 * 60),
                idle_timeout: Duration::from_secs(5 * 60),
                stall: Duration::from_secs(30),
                headers_stall: Duration::from_secs(90),
                stall_enabled: true,
            },
            handshake_timeout: Duration::from_secs(30),
            services: ServiceFlags::NONE,
            user_agent: format!("/btcpeer:{}/", env!("CARGO_PKG_VERSION")),
            start_height: 0,
            transport: Transport::V1,
            trickle_mean: Duration::from_secs(if direction == Direction::Inbound { 5 } else { 2 }),
            known_capacity: 1_000,
            trickle_limit: 50_000,
            // We do not offer NODE_BLOOM, so bloom messages are refused, as Core with its default
            // `-peerbloomfilters=0`.
            bloom: BloomPolicy { refuse: true },
            seed,
            ignored_limit: None,
            version_decision: false,
            max_queue_bytes: 8 * 1024 * 1024,
            max_payload: crate::network::Network::MAINNET.max_payload(),
            raw_blocks: false,
            sender: None,
            receiver: None,
            report_reads: false,
        }
    }

    /// The same with `seed` for the generator (reproducible runs).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}
