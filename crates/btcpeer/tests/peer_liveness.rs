//! R-V1 … R-V5: periodic pings, pong timeout, idle timeout, per-request stall deadlines. Every
//! test runs on tokio's paused clock: minutes pass in microseconds.

mod common;

use std::time::Duration;

use btcpeer::bitcoin::BlockHash;
use btcpeer::bitcoin::hashes::Hash;
use btcpeer::peer::{Direction, DisconnectReason, NoopHandler, Peer, PeerEvent};
use btcpeer::wire::{Command, Inventory, Message};
use common::*;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn r_v1_a_ping_goes_out_every_interval_and_its_pong_sets_the_round_trip() {
    let cfg = builder().ping_interval(Duration::from_secs(120)).build().unwrap();
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    remote.accept_handshake(70016).await;
    within_simulated(60, peer.handshake()).await.unwrap();
    let start = Instant::now();
    let mut nonces = Vec::new();
    for round in 1..=3u32 {
        let nonce = loop {
            match within_simulated(600, remote.recv_untimed()).await {
                Some(Message::Ping(n)) => break n,
                Some(_) => {}
                None => panic!("closed"),
            }
        };
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_secs(120 * u64::from(round)) - Duration::from_millis(10), "{elapsed:?}");
        // Answer after 150 ms of simulated time.
        tokio::time::sleep(Duration::from_millis(150)).await;
        remote.send(&Message::Pong(nonce)).await;
        nonces.push(nonce);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(nonces.iter().collect::<std::collections::HashSet<_>>().len(), 3, "random nonces");
    let stats = peer.stats();
    let rtt = stats.last_ping_rtt.expect("rtt recorded");
    assert!(rtt >= Duration::from_millis(150) && rtt < Duration::from_millis(200), "{rtt:?}");
    assert!(stats.min_ping_rtt.is_some());
    assert_eq!(stats.outstanding_ping, None);
    peer.disconnect();
}

#[tokio::test(start_paused = true)]
async fn r_v2_an_unanswered_ping_ends_the_peer_after_the_pong_timeout() {
    let cfg = builder()
        .ping_interval(Duration::from_secs(120))
        .pong_timeout(Duration::from_secs(20 * 60))
        .idle_timeout(Duration::ZERO)
        .build()
        .unwrap();
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    remote.accept_handshake(70016).await;
    within_simulated(60, peer.handshake()).await.unwrap();
    let start = Instant::now();
    // The remote keeps talking (so it is not idle) but never answers pings.
    let chatter = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(30)).await;
            remote.send(&Message::Inv(vec![])).await;
        }
    });
    let reason = within_simulated(3_600, peer.wait_for_disconnect()).await;
    assert_eq!(reason, DisconnectReason::PongTimeout);
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(120 + 1_200) && elapsed < Duration::from_secs(120 + 1_210), "{elapsed:?}");
    chatter.abort();
}

#[tokio::test(start_paused = true)]
async fn r_v3_a_silent_remote_ends_the_peer_after_the_idle_timeout() {
    let (peer, mut remote) = outbound_to_remote(config(), NoopHandler);
    remote.accept_handshake(70016).await;
    within_simulated(60, peer.handshake()).await.unwrap();
    let start = Instant::now();
    let reason = within_simulated(3_600, peer.wait_for_disconnect()).await;
    assert_eq!(reason, DisconnectReason::IdleTimeout);
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(300) && elapsed < Duration::from_secs(301), "{elapsed:?}");
    assert!(reason.is_timeout());
}

#[tokio::test(start_paused = true)]
async fn r_v3_anything_received_keeps_the_peer_alive() {
    let cfg = builder().idle_timeout(Duration::from_secs(60)).ping_interval(Duration::ZERO).build().unwrap();
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    remote.accept_handshake(70016).await;
    within_simulated(60, peer.handshake()).await.unwrap();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(50)).await;
        remote
            .send(&Message::Unknown { command: Command::new("keepalive").unwrap(), payload: Default::default() })
            .await;
    }
    assert!(peer.is_connected(), "500 s of unknown messages, each within the 60 s idle timeout");
    let reason = within_simulated(600, peer.wait_for_disconnect()).await;
    assert_eq!(reason, DisconnectReason::IdleTimeout);
}

/// Sends `request`, leaves it unanswered, and returns why (and after how long) the peer ended.
async fn unanswered(request: Message) -> (DisconnectReason, Duration) {
    let cfg = builder().idle_timeout(Duration::ZERO).ping_interval(Duration::ZERO).build().unwrap();
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    remote.accept_handshake(70016).await;
    within_simulated(60, peer.handshake()).await.unwrap();
    let start = Instant::now();
    let _ = peer.queue_message(&request).unwrap();
    let reason = within_simulated(3_600, peer.wait_for_disconnect()).await;
    (reason, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn r_v4_each_request_has_its_own_stall_deadline_naming_it() {
    let hash = BlockHash::from_byte_array([3; 32]);
    let cases = [
        (Message::GetData(vec![Inventory::Block(hash)]), Command::GETDATA, 30),
        (
            Message::GetHeaders(btcpeer::bitcoin::p2p::message_blockdata::GetHeadersMessage::new(vec![hash], hash)),
            Command::GETHEADERS,
            90,
        ),
        (
            Message::GetBlocks(btcpeer::bitcoin::p2p::message_blockdata::GetBlocksMessage::new(vec![hash], hash)),
            Command::GETBLOCKS,
            30,
        ),
        (
            Message::GetBlockTxn(btcpeer::bitcoin::bip152::BlockTransactionsRequest {
                block_hash: hash,
                indexes: vec![1],
            }),
            Command::GETBLOCKTXN,
            30,
        ),
        (
            Message::GetCFilters(btcpeer::bitcoin::p2p::message_filter::GetCFilters {
                filter_type: 0,
                start_height: 1,
                stop_hash: hash,
            }),
            Command::GETCFILTERS,
            30,
        ),
        (
            Message::GetCFHeaders(btcpeer::bitcoin::p2p::message_filter::GetCFHeaders {
                filter_type: 0,
                start_height: 1,
                stop_hash: hash,
            }),
            Command::GETCFHEADERS,
            30,
        ),
        (
            Message::GetCFCheckpt(btcpeer::bitcoin::p2p::message_filter::GetCFCheckpt {
                filter_type: 0,
                stop_hash: hash,
            }),
            Command::GETCFCHECKPT,
            30,
        ),
    ];
    for (request, command, secs) in cases {
        let (reason, elapsed) = unanswered(request).await;
        assert_eq!(reason, DisconnectReason::StallTimeout { request: command });
        assert!(reason.to_string().contains(command.as_str()), "{reason}");
        assert!(
            elapsed >= Duration::from_secs(secs) && elapsed < Duration::from_secs(secs + 1),
            "{command}: {elapsed:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn r_v4_c1_an_answer_clears_the_deadline_and_getblocks_with_a_zero_stop_hash_or_mempool_is_not_tracked() {
    let cfg = builder().idle_timeout(Duration::ZERO).ping_interval(Duration::ZERO).build().unwrap();
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    remote.accept_handshake(70016).await;
    within_simulated(60, peer.handshake()).await.unwrap();
    let hash = BlockHash::from_byte_array([3; 32]);
    let _ = peer.queue_message(&Message::GetData(vec![Inventory::Block(hash)])).unwrap();
    let getblocks = btcpeer::bitcoin::p2p::message_blockdata::GetBlocksMessage::new(vec![hash], BlockHash::all_zeros());
    let _ = peer.queue_message(&Message::GetBlocks(getblocks)).unwrap();
    // `mempool` is not tracked either: a node with an empty mempool answers nothing (C-1).
    let _ = peer.queue_message(&Message::MemPool).unwrap();
    loop {
        if let Some(Message::MemPool) = remote.recv_untimed().await {
            break;
        }
    }
    assert_eq!(peer.stats().pending_requests, 1, "only the getdata is tracked");
    tokio::time::sleep(Duration::from_secs(20)).await;
    remote.send(&Message::NotFound(vec![Inventory::Block(hash)])).await;
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert!(peer.is_connected(), "the notfound answered the getdata");
    assert_eq!(peer.stats().pending_requests, 0);
    peer.disconnect();
}

#[tokio::test(start_paused = true)]
async fn r_v4_time_in_our_handler_is_not_charged_to_the_remote() {
    let cfg = builder().idle_timeout(Duration::ZERO).ping_interval(Duration::ZERO).build().unwrap();
    let (a, b) = tokio::io::duplex(1 << 16);
    // The application reads events slowly: while its channel is full, the peer waits in delivery.
    let (peer, mut events) = Peer::with_channel(cfg, Direction::Outbound, "127.0.0.1:18444", 2);
    peer.associate(a).unwrap();
    let mut remote = remote(b);
    remote.accept_handshake(70016).await;
    let Some(PeerEvent::Handshake(_)) = within_simulated(60, events.recv()).await else { panic!() };
    let hash = BlockHash::from_byte_array([3; 32]);
    let _ = peer.queue_message(&Message::GetData(vec![Inventory::Block(hash)])).unwrap();
    loop {
        if let Some(Message::GetData(_)) = remote.recv_untimed().await {
            break;
        }
    }
    // The remote answers at once, but behind a few announcements the application takes 100 s
    // (simulated) to get through.
    for _ in 0..4 {
        remote.send(&Message::Inv(vec![])).await;
    }
    remote.send(&Message::NotFound(vec![Inventory::Block(hash)])).await;
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert!(peer.is_connected(), "the 30 s stall deadline did not fire while we were slow");
    let mut got_notfound = false;
    while !got_notfound {
        match within_simulated(60, events.recv()).await {
            Some(PeerEvent::Message { message: Message::NotFound(_), .. }) => got_notfound = true,
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(peer.stats().pending_requests, 0);
    assert!(peer.is_connected());
    peer.disconnect();
}

#[tokio::test(start_paused = true)]
async fn r_v4_stall_detection_can_be_disabled() {
    let cfg =
        builder().idle_timeout(Duration::ZERO).ping_interval(Duration::ZERO).stall_detection(false).build().unwrap();
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    remote.accept_handshake(70016).await;
    within_simulated(60, peer.handshake()).await.unwrap();
    let _ = peer.queue_message(&Message::MemPool).unwrap();
    tokio::time::sleep(Duration::from_secs(3_600)).await;
    assert!(peer.is_connected());
    assert_eq!(peer.stats().pending_requests, 0);
    peer.disconnect();
}
