mod common;
use btcpeer::peer::SendOutcome;
use btcpeer::wire::Message;
use common::*;

#[tokio::test]
async fn r_l2_two_peers_handshake_and_ping() {
    let (h1, mut rx1) = recorder();
    let (h2, _rx2) = recorder();
    let (o, i) = duplex_pair(config(), h1, config(), h2);
    let ro = within(o.handshake()).await.expect("outbound handshake");
    let ri = within(i.handshake()).await.expect("inbound handshake");
    assert_eq!(ro.negotiated_version, 70016);
    assert!(ro.wants_addrv2 && ro.wtxid_relay && ri.wants_addrv2);
    let done = o.queue_message(&Message::Ping(77)).unwrap();
    assert_eq!(within(done.wait()).await, SendOutcome::Sent);
    let pong = next_message(&mut rx1, |m| matches!(m, Message::Pong(_))).await;
    assert_eq!(pong, Message::Pong(77));
    assert!(o.stats().last_ping_rtt.is_some());
    o.disconnect();
    let r = within(o.wait_for_disconnect()).await;
    assert_eq!(r, btcpeer::peer::DisconnectReason::LocalRequest);
    let r = within(i.wait_for_disconnect()).await;
    assert_eq!(r, btcpeer::peer::DisconnectReason::RemoteClosed { during_handshake: false });
}
