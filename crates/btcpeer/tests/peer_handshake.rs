//! R-L2 … R-L5, R-T5: the version handshake, its validation order, our version message, feature
//! negotiation, and self-connection detection.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use btcpeer::bitcoin::p2p::ServiceFlags;
use btcpeer::peer::{DisconnectReason, NonceRegistry, NoopHandler, Peer};
use btcpeer::wire::{Command, Message, RejectCode, VersionTail};
use common::*;

#[tokio::test]
async fn r_l2_sendaddrv2_is_negotiated_only_when_both_sides_speak_70016() {
    for (out_v, in_v, expected) in [(70016, 70016, true), (70016, 70015, false), (70015, 70016, false)] {
        let (o, i) = duplex_pair(
            builder().protocol_version(out_v).build().unwrap(),
            NoopHandler,
            builder().protocol_version(in_v).build().unwrap(),
            NoopHandler,
        );
        let ro = within(o.handshake()).await.unwrap();
        let ri = within(i.handshake()).await.unwrap();
        assert_eq!((ro.wants_addrv2, ri.wants_addrv2), (expected, expected), "{out_v} -> {in_v}");
        assert_eq!(o.wants_addrv2(), expected);
        assert_eq!(ro.negotiated_version, out_v.min(in_v));
        o.disconnect();
        within(i.wait_for_disconnect()).await;
    }
}

#[tokio::test]
async fn r_l2_wtxidrelay_is_negotiated_when_both_send_it() {
    for (out_on, in_on) in [(true, true), (true, false), (false, true)] {
        let (o, i) = duplex_pair(
            builder().wtxid_relay(out_on).build().unwrap(),
            NoopHandler,
            builder().wtxid_relay(in_on).build().unwrap(),
            NoopHandler,
        );
        let expected = out_on && in_on;
        assert_eq!(within(o.handshake()).await.unwrap().wtxid_relay, expected);
        assert_eq!(within(i.handshake()).await.unwrap().wtxid_relay, expected);
        assert_eq!(o.stats().wtxid_relay, expected);
        o.disconnect();
        within(i.wait_for_disconnect()).await;
    }
    // Below 70016 nobody sends it.
    let (o, mut remote) = outbound_to_remote(builder().build().unwrap(), NoopHandler);
    let Some(Message::Version(_)) = remote.recv().await else { panic!() };
    remote.send(&Message::Version(raw_version(70015, 9))).await;
    remote.send(&Message::Verack).await;
    let Some(first) = remote.recv().await else { panic!() };
    assert_eq!(first, Message::Verack, "no wtxidrelay or sendaddrv2 at 70015");
    assert!(!within(o.handshake()).await.unwrap().wtxid_relay);
}

#[tokio::test]
async fn r_l2_outbound_speaks_first_and_features_precede_verack() {
    let cfg = builder().send_txrcncl(1, 0xabcd).build().unwrap();
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    let Some(Message::Version(_)) = remote.recv().await else { panic!("version first") };
    remote.send(&Message::Version(raw_version(70016, 9))).await;
    let mut seen = Vec::new();
    loop {
        let m = remote.recv().await.expect("open");
        seen.push(m.command());
        if m == Message::Verack {
            break;
        }
    }
    assert_eq!(seen, vec![Command::WTXIDRELAY, Command::SENDADDRV2, Command::SENDTXRCNCL, Command::VERACK]);
    // The remote's features may arrive in any order, mixed with unknown messages.
    remote.send(&Message::Unknown { command: Command::new("feature").unwrap(), payload: bytes::Bytes::new() }).await;
    remote.send(&Message::SendAddrV2).await;
    remote.send(&Message::SendTxRcncl(btcpeer::wire::SendTxRcncl { version: 1, salt: 5 })).await;
    remote.send(&Message::WtxidRelay).await;
    remote.send(&Message::Verack).await;
    let info = within(peer.handshake()).await.unwrap();
    assert!(info.wants_addrv2 && info.wtxid_relay);
    assert_eq!(info.txrcncl, Some(btcpeer::wire::SendTxRcncl { version: 1, salt: 5 }));
    assert_eq!(peer.stats().unknown_received, 1);
}

#[tokio::test]
async fn r_l2_inbound_waits_for_the_remote_version() {
    let (peer, mut remote) = inbound_from_remote(config(), NoopHandler);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(peer.stats().messages_sent, 0, "an inbound peer does not speak first");
    remote.send(&Message::Version(raw_version(70016, 3))).await;
    assert!(matches!(remote.recv().await, Some(Message::Version(_))));
    remote.send(&Message::Verack).await;
    within(peer.handshake()).await.unwrap();
}

#[tokio::test]
async fn r_l2_other_messages_before_verack_are_ignored_and_counted() {
    let (h, mut rx) = recorder();
    let (peer, mut remote) = outbound_to_remote(config(), h);
    let Some(Message::Version(_)) = remote.recv().await else { panic!() };
    remote.send(&Message::Version(raw_version(70016, 9))).await;
    remote.send(&Message::Ping(1)).await;
    remote.send(&Message::Inv(vec![])).await;
    remote.send(&Message::Verack).await;
    within(peer.handshake()).await.unwrap();
    let stats = peer.stats();
    assert_eq!(stats.ignored_received, 2);
    // Neither reached the handler, and no pong was sent for the early ping.
    peer.disconnect();
    within(peer.wait_for_disconnect()).await;
    while let Ok(ev) = rx.try_recv() {
        assert!(!matches!(ev, Event::Message(_)), "{ev:?} reached the handler");
    }
    let sent: Vec<_> = remote.drain().await.iter().map(|m| m.command()).collect();
    assert!(!sent.contains(&Command::PONG), "{sent:?}");
}

#[tokio::test]
async fn c1_a_message_before_version_is_ignored_and_counted() {
    let (h, mut rx) = recorder();
    let (peer, mut remote) = inbound_from_remote(config(), h);
    remote.send(&Message::Ping(1)).await;
    remote.send(&Message::Unknown { command: Command::new("early").unwrap(), payload: bytes::Bytes::new() }).await;
    remote.initiate_handshake(70016).await;
    within(peer.handshake()).await.unwrap();
    assert_eq!(peer.stats().ignored_received, 2, "both counted");
    peer.disconnect();
    within(peer.wait_for_disconnect()).await;
    while let Ok(ev) = rx.try_recv() {
        assert!(!matches!(ev, Event::Message(_)), "{ev:?} reached the handler");
    }
    let sent: Vec<_> = remote.drain().await.iter().map(|m| m.command()).collect();
    assert!(!sent.contains(&Command::PONG), "no pong for the early ping: {sent:?}");
}

#[tokio::test]
async fn r_l3_a_remote_below_the_minimum_version_is_refused_and_nothing_more_is_sent() {
    let (peer, mut remote) = outbound_to_remote(config(), NoopHandler);
    let Some(Message::Version(_)) = remote.recv().await else { panic!() };
    remote.send(&Message::Version(raw_version(1, 9))).await;
    let reason = within(peer.wait_for_disconnect()).await;
    assert_eq!(reason, DisconnectReason::ObsoleteVersion { version: 1, minimum: 31800 });
    assert!(remote.drain().await.is_empty(), "no reject at version 1, no verack");

    // A configured minimum above a reject-capable remote's version gets a reject first.
    let cfg = builder().min_protocol_version(70015).build().unwrap();
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    let Some(Message::Version(_)) = remote.recv().await else { panic!() };
    remote.send(&Message::Version(raw_version(70012, 9))).await;
    assert_eq!(
        within(peer.wait_for_disconnect()).await,
        DisconnectReason::ObsoleteVersion { version: 70012, minimum: 70015 }
    );
    let rest = remote.drain().await;
    assert!(
        matches!(&rest[..], [Message::Reject(r)] if r.code == RejectCode::OBSOLETE && r.message == "version"),
        "{rest:?}"
    );
}

#[tokio::test]
async fn r_l3_the_application_hook_and_required_services_can_refuse() {
    let (mut h, _rx) = recorder();
    h.refuse = Some("not today".into());
    let (peer, mut remote) = outbound_to_remote(config(), h);
    let Some(Message::Version(_)) = remote.recv().await else { panic!() };
    remote.send(&Message::Version(raw_version(70016, 9))).await;
    assert_eq!(within(peer.wait_for_disconnect()).await, DisconnectReason::Refused("not today".into()));
    let rest = remote.drain().await;
    assert!(matches!(&rest[..], [Message::Reject(r)] if r.reason == "not today"), "{rest:?}");

    let cfg = builder().required_services(ServiceFlags::COMPACT_FILTERS).build().unwrap();
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    let Some(Message::Version(_)) = remote.recv().await else { panic!() };
    remote.send(&Message::Version(raw_version(70016, 9))).await;
    let reason = within(peer.wait_for_disconnect()).await;
    assert!(
        matches!(reason, DisconnectReason::MissingServices { required: ServiceFlags::COMPACT_FILTERS, .. }),
        "{reason:?}"
    );
}

#[tokio::test]
async fn c1_a_second_version_during_the_handshake_is_ignored() {
    let (peer, mut remote) = outbound_to_remote(config(), NoopHandler);
    let Some(Message::Version(_)) = remote.recv().await else { panic!() };
    remote.send(&Message::Version(raw_version(70016, 9))).await;
    remote.send(&Message::Version(raw_version(70016, 9))).await;
    remote.send(&Message::Verack).await;
    let info = within(peer.handshake()).await.unwrap();
    assert_eq!(info.version.nonce, 9);
    assert_eq!(peer.stats().ignored_received, 1);
    assert!(peer.is_connected());
}

#[tokio::test]
async fn r_w5_a_short_version_message_is_accepted() {
    let (peer, mut remote) = inbound_from_remote(config(), NoopHandler);
    let mut v = raw_version(70016, 9);
    v.tail = VersionTail::NoSender;
    remote.send(&Message::Version(v)).await;
    assert!(matches!(remote.recv().await, Some(Message::Version(_))));
    remote.send(&Message::Verack).await;
    let info = within(peer.handshake()).await.expect("Core's 46-byte version is accepted");
    assert_eq!(info.version.nonce, 1, "Core's default nonce");
    assert_eq!(info.version.start_height, -1);
    assert!(info.version.relay);
}

#[tokio::test]
async fn r_l4_our_version_message_carries_every_field() {
    struct Height;
    impl btcpeer::peer::Handler for Height {
        fn start_height(&self) -> i32 {
            123_456
        }
    }
    let cfg = builder().services(ServiceFlags::NETWORK | ServiceFlags::WITNESS).relay(false).build().unwrap();
    let remote_addr: SocketAddr = "10.1.2.3:18444".parse().unwrap();
    let (a, b) = tokio::io::duplex(1 << 16);
    let peer = Peer::outbound(cfg.clone(), remote_addr, Height);
    peer.associate(a).unwrap();
    let mut remote = remote(b);
    let Some(Message::Version(v)) = remote.recv().await else { panic!() };
    assert_eq!(v.version, 70016);
    assert_eq!(v.services, ServiceFlags::NETWORK | ServiceFlags::WITNESS);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((v.timestamp - now).abs() <= 2);
    assert_eq!(v.receiver.socket_addr().unwrap(), remote_addr);
    assert_eq!(v.sender.address, [0; 8], "no local address");
    assert_eq!(v.sender.port, 0);
    assert_eq!(v.sender.services, ServiceFlags::NETWORK | ServiceFlags::WITNESS);
    assert_ne!(v.nonce, 0);
    assert_eq!(v.user_agent, cfg.user_agent());
    assert_eq!(v.start_height, 123_456);
    assert!(!v.relay);
    assert_eq!(v.tail, VersionTail::Complete);
    peer.disconnect();
}

#[tokio::test]
async fn r_t5_the_proxy_address_and_onion_names_are_not_leaked() {
    let proxy: SocketAddr = "127.0.0.1:9050".parse().unwrap();
    let cfg = builder().proxy(proxy).build().unwrap();
    for (remote_addr, port) in
        [("127.0.0.1:9050", 0u16), ("exampleonionaddressxyzexampleonionaddressxyzabcdefghijk.onion:8333", 8333)]
    {
        let (a, b) = tokio::io::duplex(1 << 16);
        let peer = Peer::outbound(cfg.clone(), remote_addr, NoopHandler);
        peer.associate(a).unwrap();
        let mut remote = remote(b);
        let Some(Message::Version(v)) = remote.recv().await else { panic!() };
        let ip = std::net::Ipv6Addr::from(v.receiver.address);
        assert!(
            ip.to_ipv4_mapped().is_some_and(|v4| v4.is_unspecified()) || ip.is_unspecified(),
            "{remote_addr}: {ip}"
        );
        assert_eq!(v.receiver.port, port, "{remote_addr}");
        peer.disconnect();
    }
}

#[tokio::test(start_paused = true)]
async fn r_l2_the_whole_handshake_has_one_deadline() {
    let (peer, mut remote) = outbound_to_remote(config(), NoopHandler);
    let Some(Message::Version(_)) = remote.recv().await else { panic!() };
    // The remote answers the version but never sends verack; unknown messages do not extend it.
    remote.send(&Message::Version(raw_version(70016, 9))).await;
    let start = tokio::time::Instant::now();
    let reason = within_simulated(120, peer.wait_for_disconnect()).await;
    assert_eq!(reason, DisconnectReason::HandshakeTimeout);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(29) && waited <= Duration::from_secs(31), "{waited:?}");
    assert!(reason.is_timeout());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_l3_an_outbound_peer_connected_to_our_own_listener_is_refused_on_both_ends() {
    // One node: both peers share a nonce registry.
    let registry = NonceRegistry::new();
    let cfg = builder().nonce_registry(registry.clone()).build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg_in = cfg.clone();
    let accept = tokio::spawn(async move {
        let (stream, from) = listener.accept().await.unwrap();
        let peer = Peer::inbound(cfg_in, from, NoopHandler);
        peer.associate(stream).unwrap();
        peer.wait_for_disconnect().await
    });
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let out = Peer::outbound(cfg, addr, NoopHandler);
    out.associate(stream).unwrap();
    assert_eq!(within(out.wait_for_disconnect()).await, DisconnectReason::SelfConnection);
    assert_eq!(within(accept).await.unwrap(), DisconnectReason::SelfConnection);
    assert_eq!(registry.in_flight(), 0, "nonces are released when handshakes end");
}

#[tokio::test]
async fn r_l2_handshake_completion_is_observable_by_await_and_callback() {
    let (h1, mut rx1) = recorder();
    let (o, i) = duplex_pair(config(), h1, config(), NoopHandler);
    let info = within(o.handshake()).await.unwrap();
    let from_callback = within(async {
        loop {
            if let Some(Event::Handshake(info)) = rx1.recv().await {
                return info;
            }
        }
    })
    .await;
    assert_eq!(info, from_callback);
    assert_eq!(o.remote(), Some(info.clone()));
    assert!(o.handshake_complete());
    assert_eq!(info.version.user_agent, i.config().user_agent());
    o.disconnect();
}
