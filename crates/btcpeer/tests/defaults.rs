//! One set of defaults (issue 22): a `Peer` and a `PeerCore` driven elsewhere (the simulator, the
//! blocking driver, the fuzzers) start from the same settings.

use btcpeer::core::peer::CoreConfig;
use btcpeer::network::Network;
use btcpeer::peer::Direction;
use btcpeer::peer::PeerConfig;

#[test]
fn every_default_is_the_same_whichever_driver_is_used() {
    for direction in [Direction::Outbound, Direction::Inbound] {
        let tokio = PeerConfig::builder(Network::REGTEST).build().unwrap().core_config(direction).seed(1);
        let core = CoreConfig::seeded(direction, 1);
        // Every field, present and future, through its `Debug` form.
        assert_eq!(format!("{tokio:?}"), format!("{core:?}"), "{direction:?}");
    }
}

#[test]
fn the_conversion_carries_every_setting() {
    use std::time::Duration;
    let config = PeerConfig::builder(Network::REGTEST)
        .handshake_timeout(Duration::from_secs(7))
        .idle_timeout(Duration::from_secs(11))
        .known_inventory_capacity(13)
        .ignored_message_limit(17)
        .trickle_interval(Duration::from_secs(19), Duration::from_secs(23))
        .start_height(29)
        .build()
        .unwrap();
    let core = config.core_config(Direction::Inbound);
    assert_eq!(core.handshake_timeout, Duration::from_secs(7));
    assert_eq!(core.timeouts.idle_timeout, Duration::from_secs(11));
    assert_eq!(core.known_capacity, 13);
    assert_eq!(core.ignored_limit, Some(17));
    assert_eq!(core.trickle_mean, Duration::from_secs(19));
    assert_eq!(config.core_config(Direction::Outbound).trickle_mean, Duration::from_secs(23));
    assert_eq!(core.start_height, 29);
    assert_eq!(core.user_agent, config.user_agent());
}
