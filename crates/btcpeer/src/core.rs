//! The parts of the runtime-free core (`btcpeer-core`) that this crate does not already offer
//! elsewhere: each item has one path in `btcpeer` (see [Public paths](crate#public-paths)).
//!
//! The core's `wire`, `network` and `bitcoin` are [`crate::wire`], [`crate::network`] and
//! [`crate::bitcoin`]; its transports are under [`crate::transport`]; the peer types the tokio
//! driver uses too (directions, disconnect reasons, statistics …) are in [`crate::peer`], and the
//! node types its tokio node shows (connection ids, counts …) in [`crate::node`]. What is left is
//! here: the address book, the light client's chain logic, the node's policy, files, the blocking
//! driver, the simulator, and the peer's sans-IO state machine.
//!
//! ```
//! use btcpeer::core::addrbook::{AddrBook, Endpoint};
//! use btcpeer::core::peer::{CoreConfig, PeerCore};
//! use btcpeer::peer::Direction;
//!
//! let book = AddrBook::new([7; 32], 1);
//! assert!(book.info(&"8.8.8.8:8333".parse::<Endpoint>()?).is_none());
//! let core = PeerCore::new(CoreConfig::seeded(Direction::Outbound, 7), std::time::Instant::now(), std::time::SystemTime::now());
//! assert!(!core.is_established());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use btcpeer_core::{addrbook, blocking, chain, persist};

/// The simulator (this crate's feature `sim`, which turns on `btcpeer-core`'s): many peer cores
/// linked by in-memory links with latency, bandwidth and loss, on simulated time, seeded.
#[cfg(feature = "sim")]
pub use btcpeer_core::sim;

/// A node's connection policy, sans I/O ([`NodeCore`](node::NodeCore)): Core's inbound eviction,
/// bans, the discouragement filter, the anchors file. The types the tokio node shows too
/// ([`ConnId`](crate::node::ConnId), [`ConnKind`](crate::node::ConnKind),
/// [`Counts`](crate::node::Counts), [`NodeReason`](crate::node::NodeReason),
/// [`NodeSettings`](crate::node::NodeSettings), [`Refusal`](crate::node::Refusal)) are in
/// [`crate::node`].
///
/// ```
/// use btcpeer::core::node::{NodeCore, bans::BanList};
/// use btcpeer::core::addrbook::AddrBook;
/// use btcpeer::node::NodeSettings;
///
/// let node = NodeCore::new(NodeSettings::default(), AddrBook::new([1; 32], 1), std::time::Instant::now());
/// assert_eq!(node.counts().inbound, 0);
/// assert_eq!(BanList::new().len(), 0);
/// ```
pub mod node {
    pub use btcpeer_core::node::{
        Action, Admission, ConnInfo, Dial, Hello, NodeCore, bans, discourages, eviction, is_bad_port,
    };
}

/// The peer protocol as a state machine ([`PeerCore`](peer::PeerCore)), for a driver of one's
/// own. The types the tokio [`Peer`](crate::peer::Peer) shows too
/// ([`Direction`](crate::peer::Direction), [`DisconnectReason`](crate::peer::DisconnectReason),
/// [`Violation`](crate::peer::Violation), [`RemoteInfo`](crate::peer::RemoteInfo),
/// [`Transport`](crate::peer::Transport), [`KnownInventory`](crate::peer::KnownInventory),
/// [`CommandStats`](crate::peer::CommandStats), [`CommandTable`](crate::peer::CommandTable),
/// [`QueueError`](crate::peer::QueueError), [`SendOutcome`](crate::peer::SendOutcome)) are in
/// [`crate::peer`].
///
/// ```
/// use btcpeer::core::peer::{CoreConfig, Event, PeerCore, Timeouts};
/// use btcpeer::peer::Direction;
///
/// let mut config = CoreConfig::seeded(Direction::Inbound, 1);
/// let timeouts: Timeouts = config.timeouts;
/// config.timeouts = Timeouts { ping_interval: timeouts.ping_interval * 2, ..timeouts };
/// let mut core = PeerCore::new(config, std::time::Instant::now(), std::time::SystemTime::now());
/// let first: Option<Event> = core.poll_event();
/// assert!(first.is_none());
/// ```
pub mod peer {
    pub use btcpeer_core::peer::{
        Announced, CoreConfig, Event, HandshakeRules, PeerCore, Progress, ProtocolState, Read, Timeouts, Traffic,
        poisson_delay, poisson_delay_from, rules,
    };

    /// Announcements: what waits for the trickle tick, and the transaction-id rule.
    /// ([`KnownInventory`] is [`crate::peer::KnownInventory`].)
    ///
    /// ```
    /// use btcpeer::core::peer::inventory::tx_kind_mismatch;
    /// use btcpeer::wire::Inventory;
    /// use btcpeer::bitcoin::{hashes::Hash, Txid};
    ///
    /// // With wtxidrelay negotiated, a txid announcement would be ignored by Core.
    /// assert!(tx_kind_mismatch(&Inventory::Tx(Txid::all_zeros()), true));
    /// ```
    ///
    /// [`KnownInventory`]: crate::peer::KnownInventory
    pub mod inventory {
        pub use btcpeer_core::peer::inventory::{Pending, tx_kind_mismatch};
    }
}

/// The second paths issue 22 removed stay removed: each of these imports fails (E0432, unresolved
/// import), and `tests/public_paths.rs` names the item at its one path.
///
/// ```compile_fail,E0432
/// use btcpeer::core::wire::Message; // btcpeer::wire::Message
/// ```
///
/// ```compile_fail,E0432
/// use btcpeer::core::network::Network; // btcpeer::network::Network
/// ```
///
/// ```compile_fail,E0432
/// use btcpeer::core::bitcoin::BlockHash; // btcpeer::bitcoin::BlockHash
/// ```
///
/// ```compile_fail,E0432
/// use btcpeer::core::transport::v1::V1Codec; // btcpeer::transport::v1::V1Codec
/// ```
///
/// ```compile_fail,E0432
/// use btcpeer::core::peer::DisconnectReason; // btcpeer::peer::DisconnectReason
/// ```
///
/// ```compile_fail,E0432
/// use btcpeer::core::peer::RemoteInfo; // btcpeer::peer::RemoteInfo
/// ```
///
/// ```compile_fail,E0432
/// use btcpeer::core::peer::KnownInventory; // btcpeer::peer::KnownInventory
/// ```
///
/// ```compile_fail,E0432
/// use btcpeer::core::peer::inventory::KnownInventory; // btcpeer::peer::KnownInventory
/// ```
///
/// ```compile_fail,E0432
/// use btcpeer::core::peer::SendOutcome; // btcpeer::peer::SendOutcome
/// ```
///
/// ```compile_fail,E0432
/// use btcpeer::core::peer::liveness::Timeouts; // btcpeer::core::peer::Timeouts
/// ```
///
/// The core's building blocks are its own (the one engine, `PeerCore`, holds them):
///
/// ```compile_fail,E0432
/// use btcpeer::core::peer::OutboundQueue;
/// ```
///
/// ```compile_fail,E0432
/// use btcpeer::core::peer::VersionHandshake;
/// ```
///
/// ```compile_fail,E0432
/// use btcpeer::core::node::ConnId; // btcpeer::node::ConnId
/// ```
///
/// ```compile_fail,E0432
/// use btcpeer::core::node::NodeSettings; // btcpeer::node::NodeSettings
/// ```
#[cfg(doctest)]
pub struct SecondPathsAreGone;
