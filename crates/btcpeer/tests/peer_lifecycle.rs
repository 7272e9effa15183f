//! R-L1, R-L6, R-L7, R-S1, R-S2: creating, associating and ending peers; the outbound queue.

mod common;

use std::time::Duration;

use btcpeer::peer::{AssociateError, DisconnectReason, NoopHandler, Peer, QueueError, SendOutcome};
use btcpeer::wire::Message;
use common::*;
use tokio::io::AsyncReadExt;

/// Reads from the far end of a duplex until EOF; returns whether EOF came within the wait.
async fn sees_eof(mut far: tokio::io::DuplexStream) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(WAIT, async {
        loop {
            match far.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or(false)
}

#[tokio::test]
async fn r_l1_disconnect_before_associate_closes_the_late_stream() {
    let peer = Peer::outbound(config(), "127.0.0.1:18444", NoopHandler);
    let queued = peer.queue_message(&Message::GetAddr).expect("queued before association");
    peer.disconnect();
    peer.disconnect(); // idempotent
    assert_eq!(within(peer.wait_for_disconnect()).await, DisconnectReason::LocalRequest);
    assert_eq!(queued.await, SendOutcome::Dropped(DisconnectReason::LocalRequest));

    let (ours, far) = tokio::io::duplex(1024);
    match peer.associate(ours) {
        Err(AssociateError::Disconnected(DisconnectReason::LocalRequest)) => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(sees_eof(far).await, "the late stream is closed");
    assert!(!peer.is_connected());
}

#[tokio::test]
async fn r_l1_associating_twice_hands_the_second_stream_back() {
    let (peer, _remote) = outbound_to_remote(config(), NoopHandler);
    let (second, _far) = tokio::io::duplex(1024);
    match peer.associate(second) {
        Err(AssociateError::AlreadyAssociated(_stream)) => {}
        other => panic!("expected AlreadyAssociated, got {other:?}"),
    }
    assert!(peer.is_connected());
    peer.disconnect();
    within(peer.wait_for_disconnect()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_l1_associate_and_disconnect_race_100_rounds() {
    for round in 0..100 {
        let peer = Peer::outbound(config(), "127.0.0.1:18444", NoopHandler);
        let (ours, far) = tokio::io::duplex(1024);
        let p1 = peer.clone();
        let p2 = peer.clone();
        let assoc = tokio::spawn(async move { p1.associate(ours).is_ok() });
        let disc = tokio::spawn(async move { p2.disconnect() });
        let associated = assoc.await.unwrap();
        disc.await.unwrap();
        let reason = within(peer.wait_for_disconnect()).await;
        assert_eq!(reason, DisconnectReason::LocalRequest, "round {round}");
        assert!(!peer.is_connected(), "round {round}: left connected");
        // Whichever won, the stream is closed: the far end sees EOF (after at most our version).
        assert!(sees_eof(far).await, "round {round}: stream not closed (associated: {associated})");
    }
}

#[tokio::test]
async fn r_s1_messages_queued_before_a_failed_handshake_are_dropped_with_its_reason() {
    let peer = Peer::outbound(config(), "127.0.0.1:18444", NoopHandler);
    let completions: Vec<_> = (0..11).map(|i| peer.queue_message(&Message::Ping(i)).unwrap()).collect();
    let (ours, far) = tokio::io::duplex(1 << 16);
    peer.associate(ours).unwrap();
    let mut remote = remote(far);
    // The remote answers our version with one we refuse.
    assert!(matches!(remote.recv().await, Some(Message::Version(_))));
    remote.send(&Message::Version(raw_version(1, 9))).await;
    let reason = within(peer.wait_for_disconnect()).await;
    assert!(matches!(reason, DisconnectReason::ObsoleteVersion { .. }), "{reason:?}");
    for c in completions {
        assert_eq!(within(c.wait()).await, SendOutcome::Dropped(reason.clone()));
    }
    // None of them reached the wire.
    assert!(remote.drain().await.is_empty());
}

#[tokio::test]
async fn r_s1_messages_queued_before_the_handshake_are_sent_after_it_in_order() {
    let (peer, mut remote) = {
        let peer = Peer::outbound(config(), "127.0.0.1:18444", NoopHandler);
        let (ours, far) = tokio::io::duplex(1 << 16);
        (peer, (ours, far))
    };
    let completions: Vec<_> = (1..=5).map(|i| peer.queue_message(&Message::Ping(i)).unwrap()).collect();
    peer.associate(remote.0).unwrap();
    let mut remote_side = common::remote(remote.1);
    remote_side.accept_handshake(70016).await;
    for i in 1..=5 {
        loop {
            match remote_side.recv().await {
                Some(Message::Ping(n)) => {
                    assert_eq!(n, i, "written in queue order");
                    break;
                }
                Some(_) => {}
                None => panic!("closed"),
            }
        }
    }
    for c in completions {
        assert_eq!(within(c.wait()).await, SendOutcome::Sent);
    }
    remote = (tokio::io::duplex(1).0, tokio::io::duplex(1).1);
    drop(remote);
    peer.disconnect();
    within(peer.wait_for_disconnect()).await;
}

#[tokio::test(start_paused = true)]
async fn r_s2_a_remote_that_never_reads_hits_the_queue_limit_then_the_write_deadline() {
    let limit = 64 * 1024;
    let cfg = builder()
        .max_queue_bytes(limit)
        .write_timeout(Duration::from_secs(20), Duration::from_secs(1))
        .build()
        .unwrap();
    // A tiny pipe: the remote completes the handshake, then stops reading.
    let (ours, far) = tokio::io::duplex(4096);
    let peer = Peer::outbound(cfg, "127.0.0.1:18444", NoopHandler);
    peer.associate(ours).unwrap();
    let mut remote = remote(far);
    remote.accept_handshake(70016).await;
    within(peer.handshake()).await.unwrap();

    let big = Message::FilterAdd(btcpeer::wire::FilterAdd { data: vec![7; 500] });
    let mut completions = Vec::new();
    let mut refused = 0;
    for _ in 0..1_000 {
        match peer.queue_message(&big) {
            Ok(c) => completions.push(c),
            Err(QueueError::Full { queued, limit: l }) => {
                assert!(queued <= l);
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
        let stats = peer.stats();
        assert!(stats.queued_bytes <= limit, "queue grew past its limit: {}", stats.queued_bytes);
    }
    assert!(refused > 800, "most messages are refused once the queue is full ({refused})");
    // Nothing is read; after the write deadline (20 s + 1 s per 256 KiB) the peer gives up.
    let start = tokio::time::Instant::now();
    let reason = within_simulated(300, peer.wait_for_disconnect()).await;
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(19) && waited <= Duration::from_secs(30), "deadline after {waited:?}");
    assert_eq!(reason, DisconnectReason::WriteTimeout);
    let mut sent = 0;
    for c in completions {
        match within(c.wait()).await {
            SendOutcome::Sent => sent += 1,
            SendOutcome::Dropped(r) => assert_eq!(r, DisconnectReason::WriteTimeout),
            other => panic!("{other:?}"),
        }
    }
    assert!(sent < 20, "only what fit in the pipe was written ({sent})");
    drop(remote);
}

#[tokio::test]
async fn r_s2_send_waits_for_room_instead_of_failing() {
    let cfg = builder().max_queue_bytes(1024).build().unwrap();
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    remote.accept_handshake(70016).await;
    within(peer.handshake()).await.unwrap();
    let msg = Message::FilterAdd(btcpeer::wire::FilterAdd { data: vec![1; 400] });
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < 50 {
            match remote.recv().await {
                Some(Message::FilterAdd(_)) => n += 1,
                Some(_) => {}
                None => break,
            }
        }
        n
    });
    for _ in 0..50 {
        let c = within(peer.send(&msg)).await.expect("room appears");
        drop(c);
    }
    assert_eq!(within(reader).await.unwrap(), 50);
    peer.disconnect();
    within(peer.wait_for_disconnect()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_l6_wait_for_disconnect_returns_only_after_every_task_ended() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let (h1, _rx1) = recorder();
    let (h2, _rx2) = recorder();
    let (o, i) = duplex_pair(config(), h1.clone(), config(), h2.clone());
    within(o.handshake()).await.unwrap();
    within(i.handshake()).await.unwrap();
    assert_eq!(metrics.num_alive_tasks(), before + 2, "one task per peer (reading and writing joined)");
    let pending = o.queue_message(&Message::Ping(5)).unwrap();
    o.disconnect();
    within(o.wait_for_disconnect()).await;
    within(i.wait_for_disconnect()).await;
    assert!(pending.outcome().is_some(), "every completion resolved before wait_for_disconnect returned");
    assert_eq!(*h1.disconnects.lock().unwrap(), 1, "on_disconnect exactly once");
    assert_eq!(*h2.disconnects.lock().unwrap(), 1, "on_disconnect exactly once");
    // The tasks' futures have returned; give the runtime a moment to release them.
    for _ in 0..100 {
        if metrics.num_alive_tasks() == before {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(metrics.num_alive_tasks(), before, "no task left behind (R-L7)");
    o.disconnect();
    assert_eq!(o.disconnect_reason(), Some(DisconnectReason::LocalRequest));
}

#[tokio::test]
async fn r_l7_dropping_every_handle_of_an_unassociated_peer_resolves_its_queue() {
    let peer = Peer::outbound(config(), "127.0.0.1:18444", NoopHandler);
    let c = peer.queue_message(&Message::Verack).unwrap();
    drop(peer);
    assert!(matches!(within(c.wait()).await, SendOutcome::Dropped(_)));
}

/// A handler whose ping method panics; it counts its `on_disconnect` calls.
#[derive(Clone, Default)]
struct Panics(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl btcpeer::peer::Handler for Panics {
    fn on_ping(&self, _: &Peer, nonce: u64) {
        if nonce == 666 {
            panic!("the application's bug");
        }
    }
    fn on_disconnect(&self, _: &Peer, _: &DisconnectReason) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn r_l8_a_panicking_handler_ends_the_peer_with_a_reason_and_resolves_everything() {
    let handler = Panics::default();
    let (victim, bystander) = duplex_pair(config(), handler.clone(), config(), NoopHandler);
    within(victim.handshake()).await.unwrap();
    within(bystander.handshake()).await.unwrap();
    // Another peer of the same process, which must not notice.
    let (other, other_far) = duplex_pair(config(), NoopHandler, config(), NoopHandler);
    within(other.handshake()).await.unwrap();

    let _ = bystander.queue_message(&Message::Ping(666)).unwrap();
    let reason = within(victim.wait_for_disconnect()).await;
    assert_eq!(reason, DisconnectReason::HandlerPanicked("the application's bug".into()));
    assert_eq!(reason.kind(), "handler_panicked");
    assert!(!victim.is_connected());
    assert_eq!(handler.0.load(std::sync::atomic::Ordering::SeqCst), 1, "on_disconnect exactly once");
    // Messages queued after the end resolve at once; the remote sees the stream close.
    let late = victim.queue_message(&Message::Ping(1)).unwrap();
    assert_eq!(within(late.wait()).await, SendOutcome::Dropped(reason.clone()));
    assert!(matches!(within(bystander.wait_for_disconnect()).await, DisconnectReason::RemoteClosed { .. }));
    // The other connection still works.
    let done = other.queue_message(&Message::Ping(2)).unwrap();
    assert_eq!(within(done.wait()).await, SendOutcome::Sent);
    assert!(other.is_connected() && other_far.is_connected());
    other.disconnect();
}

#[tokio::test]
async fn r_l8_a_panicking_on_disconnect_still_lets_the_peer_end() {
    #[derive(Clone)]
    struct PanicsAtTheEnd;
    impl btcpeer::peer::Handler for PanicsAtTheEnd {
        fn on_disconnect(&self, _: &Peer, _: &DisconnectReason) {
            panic!("at the end");
        }
    }
    // Never associated: the end runs on the caller's thread.
    let peer = Peer::outbound(config(), "127.0.0.1:18444", PanicsAtTheEnd);
    peer.disconnect();
    assert_eq!(within(peer.wait_for_disconnect()).await, DisconnectReason::LocalRequest);
    // Running: the end runs on the peer's task.
    let (o, i) = duplex_pair(config(), PanicsAtTheEnd, config(), NoopHandler);
    within(o.handshake()).await.unwrap();
    i.disconnect();
    assert!(matches!(within(o.wait_for_disconnect()).await, DisconnectReason::RemoteClosed { .. }));
}

#[tokio::test]
async fn r_l9_the_channel_ends_after_disconnected_while_handles_remain() {
    use btcpeer::peer::{Direction, PeerEvent};
    let (peer, mut events) = Peer::with_channel(config(), Direction::Outbound, "127.0.0.1:18444", 8);
    let (ours, far) = tokio::io::duplex(1 << 16);
    peer.associate(ours).unwrap();
    let mut remote = remote(far);
    remote.accept_handshake(70016).await;
    assert!(matches!(within(events.recv()).await, Some(PeerEvent::Handshake(_))));
    drop(remote);
    let mut last = None;
    while let Some(event) = within(events.recv()).await {
        last = Some(event);
    }
    assert!(matches!(last, Some(PeerEvent::Disconnected(DisconnectReason::RemoteClosed { .. }))), "{last:?}");
    // `peer` is still held here: the receiver ended all the same.
    assert!(!peer.is_connected());
}

#[tokio::test]
async fn r_r1_an_arc_or_a_box_of_a_handler_is_a_handler_and_its_overrides_are_called() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    #[derive(Default)]
    struct Pings(AtomicUsize);
    impl btcpeer::peer::Handler for Pings {
        fn on_ping(&self, _: &Peer, _: u64) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let shared = Arc::new(Pings::default());
    // One Arc for two inbound peers, and a Box<dyn Handler> chosen at run time for the third.
    let boxed: Box<dyn btcpeer::peer::Handler> = Box::new(NoopHandler);
    let (o1, i1) = duplex_pair(config(), NoopHandler, config(), shared.clone());
    let (o2, i2) = duplex_pair(config(), NoopHandler, config(), shared.clone());
    let (o3, _i3) = duplex_pair(config(), NoopHandler, config(), boxed);
    for o in [&o1, &o2, &o3] {
        within(o.handshake()).await.unwrap();
        within(o.queue_message(&Message::Ping(1)).unwrap().wait()).await;
    }
    within(async {
        while shared.0.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(i1.is_connected() && i2.is_connected());
    for o in [o1, o2, o3] {
        o.disconnect();
    }
}
