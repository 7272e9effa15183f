//! R-A: `Peer::connect` over TCP on 127.0.0.1: dial, handshake, the v1 redial, the wrong-network
//! hint, dial failures, the channel variant and the configured start height.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use btcpeer::network::Network;
use btcpeer::peer::{ConnectError, Direction, NoopHandler, Peer, PeerConfig, PeerEvent, Transport, V2Policy};
use common::{builder, within};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A listener accepting peers with `config`; reports each peer's remote start height.
async fn listener(config: PeerConfig) -> (String, mpsc::UnboundedReceiver<i32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((stream, from)) = listener.accept().await else { return };
            let peer = Peer::inbound(config.clone(), from, NoopHandler);
            peer.associate(stream).unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(remote) = peer.handshake().await {
                    let _ = tx.send(remote.version.start_height);
                }
                peer.wait_for_disconnect().await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn r_a_connect_dials_handshakes_and_sends_the_configured_start_height() {
    let (addr, mut heights) = listener(builder().build().unwrap()).await;
    let config = builder().start_height(77).build().unwrap();
    let (peer, remote) = within(Peer::connect(&addr, config, NoopHandler)).await.unwrap();
    assert_eq!(remote.negotiated_version, 70016);
    assert_eq!(peer.direction(), Direction::Outbound);
    assert_eq!(within(heights.recv()).await, Some(77));
    assert!(within(peer.ping()).await.is_ok());

    // A height asked at each handshake.
    let tip = Arc::new(AtomicI32::new(5));
    let t = tip.clone();
    let config = builder().start_height_with(move || t.load(Ordering::SeqCst)).build().unwrap();
    tip.store(9, Ordering::SeqCst);
    let (_peer, rx_remote, mut events) = within(Peer::connect_with_channel(&addr, config, 16)).await.unwrap();
    assert_eq!(rx_remote.negotiated_version, 70016);
    assert_eq!(within(heights.recv()).await, Some(9));
    assert!(matches!(within(events.recv()).await, Some(PeerEvent::Handshake(_))));
}

#[tokio::test]
async fn r_a_connect_prefer_v2_redials_a_v1_only_listener_in_v1() {
    let (addr, _) = listener(builder().build().unwrap()).await;
    let config = builder().v2(V2Policy::Prefer).build().unwrap();
    let (peer, remote) = within(Peer::connect(&addr, config, NoopHandler)).await.unwrap();
    assert_eq!(remote.transport, Transport::V1);
    assert_eq!(peer.stats().transport, Transport::V1);

    // Required v2: no redial, and the likely cause named.
    let config = builder().v2(V2Policy::Require).build().unwrap();
    let err = within(Peer::connect(&addr, config, NoopHandler)).await.unwrap_err();
    assert!(err.to_string().contains("only v1"), "{err}");
}

#[tokio::test]
async fn r_a_connect_to_another_network_names_the_likely_cause() {
    let (addr, _) = listener(builder().build().unwrap()).await;
    let mainnet = PeerConfig::builder(Network::MAINNET).build().unwrap();
    let err = within(Peer::connect(&addr, mainnet, NoopHandler)).await.unwrap_err();
    assert!(matches!(err, ConnectError::Handshake { hint: Some(h), .. } if h.contains("network")), "{err}");
}

#[tokio::test]
async fn r_a_connect_reports_a_refused_dial() {
    // A port nobody listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = within(Peer::connect(&format!("127.0.0.1:{port}"), builder().build().unwrap(), NoopHandler)).await;
    assert!(matches!(err, Err(ConnectError::Dial { .. })), "{err:?}");
}
