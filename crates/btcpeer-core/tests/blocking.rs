//! The core over real TCP on 127.0.0.1 with blocking I/O on two threads: no async runtime anywhere.

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use btcpeer_core::blocking::{BlockingError, BlockingPeer};
use btcpeer_core::network::Network;
use btcpeer_core::peer::{CoreConfig, Direction, DisconnectReason};

const STEP: Duration = Duration::from_secs(10);

#[test]
fn r_l2_two_cores_handshake_and_ping_over_blocking_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut peer = BlockingPeer::new(stream, Network::REGTEST, CoreConfig::new(Direction::Inbound));
        let remote = peer.handshake(STEP).unwrap();
        // Serve (pongs are the core's) until the client leaves.
        let end = loop {
            match peer.next_event(std::time::Instant::now() + STEP) {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        (remote, end)
    });
    let stream = TcpStream::connect(addr).unwrap();
    let mut peer = BlockingPeer::new(stream, Network::REGTEST, CoreConfig::new(Direction::Outbound));
    let remote = peer.handshake(STEP).unwrap();
    assert!(remote.version.user_agent.starts_with("/btcpeer:"), "the library's one default user agent");
    assert!(remote.wtxid_relay && remote.wants_addrv2);
    let rtt = peer.ping(STEP).unwrap();
    assert!(rtt < STEP);
    assert!(peer.core().last_rtt().is_some());
    drop(peer);
    let (server_saw, end) = server.join().unwrap();
    assert_eq!(server_saw.negotiated_version, 70016);
    assert!(matches!(end, BlockingError::Disconnected(DisconnectReason::RemoteClosed { during_handshake: false })));
}

#[test]
fn r_l2_a_wrong_network_fails_with_a_reason_not_a_hang() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut peer = BlockingPeer::new(stream, Network::MAINNET, CoreConfig::new(Direction::Inbound));
        peer.handshake(STEP).unwrap_err()
    });
    let stream = TcpStream::connect(addr).unwrap();
    let mut peer = BlockingPeer::new(stream, Network::REGTEST, CoreConfig::new(Direction::Outbound));
    let client = peer.handshake(STEP).unwrap_err();
    let server = server.join().unwrap();
    assert!(matches!(server, BlockingError::Disconnected(DisconnectReason::Frame(_))), "{server:?}");
    drop(peer);
    assert!(matches!(client, BlockingError::Disconnected(_)), "{client:?}");
}

#[test]
fn r_t_two_blocking_cores_speak_bip324_v2_over_tcp() {
    use btcpeer_core::peer::Transport;
    use btcpeer_core::transport::framing::TransportPolicy;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let config = CoreConfig::new(Direction::Inbound);
        let mut peer = BlockingPeer::with_transport(stream, Network::REGTEST, config, TransportPolicy::Auto).unwrap();
        let remote = peer.handshake(STEP).unwrap();
        while peer.next_event(std::time::Instant::now() + STEP).is_ok() {}
        remote
    });
    let stream = TcpStream::connect(addr).unwrap();
    let config = CoreConfig::new(Direction::Outbound);
    let mut peer = BlockingPeer::with_transport(stream, Network::REGTEST, config, TransportPolicy::V2).unwrap();
    let remote = peer.handshake(STEP).unwrap();
    assert_eq!(remote.transport, Transport::V2);
    assert!(peer.ping(STEP).unwrap() < STEP);
    drop(peer);
    assert_eq!(server.join().unwrap().transport, Transport::V2, "the listener detected a v2 initiator");
}
