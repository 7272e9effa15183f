//! One public path per item (issue 22): every area of the crate named at the path the crate docs'
//! "Public paths" give it. Moving or dropping one of these paths fails to compile here; the
//! `compile_fail` doc tests on `btcpeer::core` (`SecondPathsAreGone`) prove the second paths
//! (`btcpeer::core::wire`, `btcpeer::core::transport`, `btcpeer::core::peer::DisconnectReason` …)
//! stay gone.

use std::any::type_name;
use std::time::{Instant, SystemTime};

/// Every path, by a type, a constant or a function found there.
#[test]
fn every_area_is_named_at_its_one_public_path() {
    let types = [
        // rust-bitcoin, the wire, networks.
        type_name::<btcpeer::bitcoin::BlockHash>(),
        type_name::<btcpeer::wire::Message>(),
        type_name::<btcpeer::wire::frame::RawFrame>(),
        type_name::<btcpeer::network::Network>(),
        // Transports: the core's codecs, their state machine, the handshake (core's and async).
        type_name::<btcpeer::transport::v1::V1Codec>(),
        type_name::<btcpeer::transport::v2::V2Decoder>(),
        type_name::<btcpeer::transport::v2_cipher::SessionKeys>(),
        type_name::<btcpeer::transport::framing::Framing>(),
        type_name::<btcpeer::transport::framing::TransportPolicy>(),
        type_name::<btcpeer::transport::v2_handshake::V2Handshake>(),
        type_name::<btcpeer::transport::v2_handshake::V2Options>(),
        // The tokio peer, with the core's types it shows.
        type_name::<btcpeer::peer::Peer>(),
        type_name::<btcpeer::peer::Direction>(),
        type_name::<btcpeer::peer::DisconnectReason>(),
        type_name::<btcpeer::peer::Violation>(),
        type_name::<btcpeer::peer::RemoteInfo>(),
        type_name::<btcpeer::peer::Transport>(),
        type_name::<btcpeer::peer::KnownInventory>(),
        type_name::<btcpeer::peer::CommandStats>(),
        type_name::<btcpeer::peer::CommandTable>(),
        type_name::<btcpeer::peer::QueueError>(),
        type_name::<btcpeer::peer::SendOutcome>(),
        // The tokio node, with the core's types it shows.
        type_name::<btcpeer::node::Node>(),
        type_name::<btcpeer::node::ConnId>(),
        type_name::<btcpeer::node::ConnKind>(),
        type_name::<btcpeer::node::Counts>(),
        type_name::<btcpeer::node::NodeReason>(),
        type_name::<btcpeer::node::NodeSettings>(),
        type_name::<btcpeer::node::Refusal>(),
        // Crawler, light client.
        type_name::<btcpeer::crawl::NodeReport>(),
        type_name::<btcpeer::light::LightEvent>(),
        // The core's peer state machine.
        type_name::<btcpeer::core::peer::PeerCore>(),
        type_name::<btcpeer::core::peer::CoreConfig>(),
        type_name::<btcpeer::core::peer::Event>(),
        type_name::<btcpeer::core::peer::HandshakeRules>(),
        type_name::<btcpeer::core::peer::Timeouts>(),
        type_name::<btcpeer::core::peer::Progress>(),
        type_name::<btcpeer::core::peer::Read>(),
        type_name::<btcpeer::core::peer::Announced>(),
        type_name::<btcpeer::core::peer::ProtocolState>(),
        type_name::<btcpeer::core::peer::Traffic>(),
        type_name::<btcpeer::core::peer::rules::Preferences>(),
        type_name::<btcpeer::core::peer::rules::BloomPolicy>(),
        type_name::<btcpeer::core::peer::rules::Rule>(),
        type_name::<btcpeer::core::peer::inventory::Pending>(),
        // The core's node policy.
        type_name::<btcpeer::core::node::NodeCore>(),
        type_name::<btcpeer::core::node::Action>(),
        type_name::<btcpeer::core::node::Admission>(),
        type_name::<btcpeer::core::node::ConnInfo>(),
        type_name::<btcpeer::core::node::Dial>(),
        type_name::<btcpeer::core::node::Hello>(),
        type_name::<btcpeer::core::node::bans::BanList>(),
        type_name::<btcpeer::core::node::bans::Discouraged>(),
        type_name::<btcpeer::core::node::eviction::EvictionCandidate>(),
        // Address book, chain, files, the blocking driver, the simulator.
        type_name::<btcpeer::core::addrbook::AddrBook>(),
        type_name::<btcpeer::core::addrbook::Endpoint>(),
        type_name::<btcpeer::core::addrbook::ParseEndpointError>(),
        type_name::<btcpeer::core::chain::HeaderChain>(),
        type_name::<btcpeer::core::chain::SyncPlanner>(),
        type_name::<btcpeer::core::persist::LoadError>(),
        type_name::<btcpeer::core::blocking::BlockingError>(),
        type_name::<btcpeer::core::sim::Sim>(),
        // The crate's own features.
        type_name::<btcpeer::socks::SocksAuth>(),
        type_name::<btcpeer::testing::SyntheticChain>(),
    ];
    assert!(types.iter().all(|t| !t.is_empty()));

    // Functions and constants at their paths.
    let _ = btcpeer::transport::reserve_towards;
    let _ = btcpeer::transport::framing::v2_failure;
    let _ = btcpeer::core::peer::rules::classify;
    let _ = btcpeer::core::peer::poisson_delay_from;
    let _ = btcpeer::core::peer::inventory::tx_kind_mismatch;
    let _ = btcpeer::core::node::is_bad_port;
    let _ = btcpeer::core::node::discourages;
    let _ = btcpeer::core::node::bans::encode_anchors;
    let _ = btcpeer::core::persist::write_atomic;
    assert_eq!(btcpeer::core::addrbook::MAX_ENTRIES, 81_920);
}

/// The core's types shown by the tokio peer and node are the core's own, not copies: a
/// `btcpeer::peer::Direction` builds a `btcpeer::core::peer::CoreConfig`, a
/// `btcpeer::node::NodeSettings` a `btcpeer::core::node::NodeCore` whose counts are
/// `btcpeer::node::Counts`, and the crawler reports `btcpeer::core::addrbook::Endpoint`s.
#[test]
fn the_core_types_shown_elsewhere_are_the_cores_own() {
    use btcpeer::core::addrbook::{AddrBook, Endpoint};
    use btcpeer::core::node::NodeCore;
    use btcpeer::core::peer::{CoreConfig, PeerCore};
    use btcpeer::node::{Counts, NodeSettings};
    use btcpeer::peer::{Direction, Transport};

    let core = PeerCore::new(CoreConfig::seeded(Direction::Outbound, 7), Instant::now(), SystemTime::now());
    assert!(!core.is_established());
    let config: CoreConfig = CoreConfig::new(Direction::Inbound);
    assert_eq!(config.direction, Direction::Inbound);
    let _: Transport = config.transport;

    let node = NodeCore::new(NodeSettings::default(), AddrBook::new([1; 32], 1), Instant::now());
    let counts: Counts = node.counts();
    assert_eq!(counts.inbound, 0);

    let report_addr = |r: &btcpeer::crawl::NodeReport| -> Endpoint { r.addr.clone() };
    let _ = report_addr;
}
