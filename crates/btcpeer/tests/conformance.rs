//! §12 Core conformance (C-1 … C-4): the defects a review against Bitcoin Core's `net.cpp`,
//! `net_processing.cpp` and `bip324.cpp` found, each with a test named after its item, and Core's
//! leniencies. Tests run over in-memory streams under tokio's paused clock. Item 6 (BIP324) is in
//! `conformance_v2.rs`.

mod common;

use std::time::Duration;

use btcpeer::bitcoin::hashes::Hash;
use btcpeer::bitcoin::p2p::ServiceFlags;
use btcpeer::bitcoin::p2p::message_compact_blocks::SendCmpct;
use btcpeer::bitcoin::{BlockHash, Txid, Wtxid};
use btcpeer::network::{Magic, Network};
use btcpeer::peer::{
    AnnounceError, CommandTable, DisconnectReason, NoopHandler, Peer, PeerConfig, QueueError, V2Policy, Violation,
};
use btcpeer::wire::{Command, FilterLoad, Inventory, Message, Reject, RejectCode, SendTxRcncl};
use bytes::{Bytes, BytesMut};
use common::*;
use tokio::time::Instant;

fn txid(n: u32) -> Txid {
    let mut h = [0u8; 32];
    h[..4].copy_from_slice(&n.to_le_bytes());
    Txid::from_byte_array(h)
}

fn wtxid(n: u32) -> Wtxid {
    let mut h = [0xffu8; 32];
    h[..4].copy_from_slice(&n.to_le_bytes());
    Wtxid::from_byte_array(h)
}

/// Sends a ping and waits for its pong, collecting everything the peer sent before it.
async fn ping_through(remote: &mut Remote, nonce: u64) -> Vec<Message> {
    remote.send(&Message::Ping(nonce)).await;
    within_simulated(600, async {
        let mut before = Vec::new();
        loop {
            match remote.recv_untimed().await {
                Some(Message::Pong(n)) if n == nonce => return before,
                Some(m) => before.push(m),
                None => panic!("the peer closed the connection"),
            }
        }
    })
    .await
}

async fn connected_outbound(
    cfg: PeerConfig,
    version: btcpeer::wire::VersionMessage,
    features: &[Message],
) -> (Peer, Remote) {
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    let Some(Message::Version(_)) = remote.recv_untimed().await else { panic!("no version") };
    remote.send(&Message::Version(version)).await;
    for f in features {
        remote.send(f).await;
    }
    remote.send(&Message::Verack).await;
    within_simulated(60, peer.handshake()).await.expect("handshake");
    // What the peer sent before its verack (feature messages) is not the tests' business.
    while !matches!(within_simulated(60, remote.recv_untimed()).await, Some(Message::Verack)) {}
    (peer, remote)
}

// ---- 1. Per-command statistics are bounded ----

#[tokio::test(start_paused = true)]
async fn c_item1_per_command_statistics_stay_bounded_whatever_names_the_remote_sends() {
    let (peer, mut remote) = inbound_from_remote(quiet().build().unwrap(), NoopHandler);
    let unknown = |i: u32| Message::Unknown { command: Command::new(&format!("x{i}")).unwrap(), payload: Bytes::new() };
    // Before the version (ignored) and after the handshake (passed on): 3,000 distinct names.
    for i in 0..1_000 {
        remote.send(&unknown(i)).await;
    }
    remote.initiate_handshake(70016).await;
    within_simulated(60, peer.handshake()).await.unwrap();
    for i in 1_000..3_000 {
        remote.send(&unknown(i)).await;
    }
    ping_through(&mut remote, 1).await;
    let s = peer.stats();
    assert_eq!(s.per_command.other().messages_received, 3_000, "every unknown name in one bucket");
    assert_eq!(s.per_command.other().bytes_received, 3_000 * 24);
    assert!(s.per_command.iter().all(|(c, _)| c.is_known()), "only known commands have entries");
    assert!(s.per_command.iter().count() <= Command::KNOWN.len());
    assert_eq!(s.per_command.of(Command::new("x5").unwrap()), s.per_command.other());
    // The table is indexed by command: its size does not depend on what arrived.
    assert!(std::mem::size_of::<CommandTable>() <= 64);
    peer.disconnect();
}

// ---- 2. A failed encode leaves nothing behind ----

#[tokio::test(start_paused = true)]
async fn c_item2_a_failed_encode_does_not_corrupt_the_next_message() {
    let (peer, mut remote) = connected_outbound(quiet().build().unwrap(), raw_version(70016, 7), &[]).await;
    let bad = Message::GetBlockTxn(btcpeer::bitcoin::bip152::BlockTransactionsRequest {
        block_hash: BlockHash::all_zeros(),
        indexes: vec![5, 3, 9, 9],
    });
    assert!(matches!(peer.queue_message(&bad), Err(QueueError::Encode(_))));
    let _ = peer.queue_message(&Message::Ping(0x0102_0304)).unwrap();
    let got = within_simulated(60, remote.recv_untimed()).await;
    assert_eq!(got, Some(Message::Ping(0x0102_0304)), "the next message went out exactly as encoded");
    peer.disconnect();
}

// ---- 3. relay = false ----

#[tokio::test(start_paused = true)]
async fn c_item3_a_remote_with_relay_false_gets_no_transactions_until_it_loads_a_filter() {
    let cfg = quiet().services(ServiceFlags::BLOOM).build().unwrap();
    let mut version = raw_version(70016, 7);
    version.relay = false;
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    // Queued before the handshake: the remote's wish is not known yet; it is honoured at the tick.
    assert!(peer.queue_transaction(txid(1), wtxid(1)));
    let Some(Message::Version(_)) = remote.recv_untimed().await else { panic!() };
    remote.send(&Message::Version(version)).await;
    remote.send(&Message::Verack).await;
    let info = within_simulated(60, peer.handshake()).await.unwrap();
    assert!(!info.relay, "RemoteInfo shows the flag");
    assert!(!peer.relays_transactions());
    assert!(!peer.queue_transaction(txid(2), wtxid(2)), "refused: the remote asked for none");
    assert_eq!(peer.try_queue_inventory(Inventory::Tx(txid(3))), Ok(false));
    // Blocks still go out.
    let block = Inventory::Block(BlockHash::from_byte_array([4; 32]));
    assert_eq!(peer.try_queue_inventory(block), Ok(true));
    let sent = ping_through(&mut remote, 1).await;
    assert!(
        sent.iter().all(|m| !matches!(m, Message::Inv(items) if items.iter().any(Inventory::is_transaction))),
        "no transaction inventory: {sent:?}"
    );
    assert!(sent.contains(&Message::Inv(vec![block])));
    let s = peer.stats();
    assert!(!s.relay);
    assert_eq!(s.refused_announcements, 3, "the early one at the tick, and the two after");

    // A loaded filter switches relay on (BIP37) ...
    remote.send(&Message::FilterLoad(FilterLoad { filter: vec![0xff; 8], hash_funcs: 1, tweak: 0, flags: 0 })).await;
    ping_through(&mut remote, 2).await;
    assert!(peer.relays_transactions() && peer.stats().relay);
    assert!(peer.queue_transaction(txid(5), wtxid(5)));
    let sent = ping_through(&mut remote, 3).await;
    assert!(sent.contains(&Message::Inv(vec![Inventory::Tx(txid(5))])), "{sent:?}");
    // ... and so does clearing it (Core sets `m_relay_txs` on both).
    remote.send(&Message::FilterClear).await;
    ping_through(&mut remote, 4).await;
    assert!(peer.relays_transactions());
    peer.disconnect();

    // filterclear alone, on a relay = false connection, also switches it on.
    let mut version = raw_version(70016, 8);
    version.relay = false;
    let (peer, mut remote) =
        connected_outbound(quiet().services(ServiceFlags::BLOOM).build().unwrap(), version, &[]).await;
    assert!(!peer.relays_transactions());
    remote.send(&Message::FilterClear).await;
    ping_through(&mut remote, 5).await;
    assert!(peer.relays_transactions());
    peer.disconnect();
}

// ---- 4. Transactions are announced by the negotiated kind of id only ----

/// Every inventory entry the peer announced before answering a ping.
async fn announced_before_pong(remote: &mut Remote, nonce: u64) -> Vec<Inventory> {
    ping_through(remote, nonce)
        .await
        .into_iter()
        .filter_map(|m| if let Message::Inv(i) = m { Some(i) } else { None })
        .flatten()
        .collect()
}

#[tokio::test(start_paused = true)]
async fn c_item4_transactions_go_out_as_msg_wtx_with_wtxidrelay_and_as_msg_tx_without() {
    // wtxidrelay negotiated: a txid announcement is refused with a typed error.
    let (peer, mut remote) =
        connected_outbound(quiet().build().unwrap(), raw_version(70016, 7), &[Message::WtxidRelay]).await;
    assert!(peer.wtxid_relay());
    let err = peer.try_queue_inventory(Inventory::Tx(txid(1))).unwrap_err();
    assert_eq!(err, AnnounceError::WrongTxIdKind { inventory: Inventory::Tx(txid(1)), wtxid_relay: true });
    assert!(peer.try_queue_inventory(Inventory::WitnessTx(txid(1))).is_err());
    assert_eq!(peer.try_queue_inventory(Inventory::WTx(wtxid(2))), Ok(true));
    assert!(peer.queue_transaction(txid(3), wtxid(3)));
    let invs = announced_before_pong(&mut remote, 1).await;
    assert_eq!(invs, vec![Inventory::WTx(wtxid(2)), Inventory::WTx(wtxid(3))]);
    peer.disconnect();

    // Without it: only txids.
    let (peer, mut remote) = connected_outbound(quiet().build().unwrap(), raw_version(70015, 7), &[]).await;
    assert!(!peer.wtxid_relay());
    let err = peer.try_queue_inventory(Inventory::WTx(wtxid(1))).unwrap_err();
    assert!(matches!(err, AnnounceError::WrongTxIdKind { wtxid_relay: false, .. }), "{err}");
    assert_eq!(peer.try_queue_inventory(Inventory::Tx(txid(2))), Ok(true));
    assert!(peer.queue_transaction(txid(3), wtxid(3)));
    let invs = announced_before_pong(&mut remote, 1).await;
    assert_eq!(invs, vec![Inventory::Tx(txid(2)), Inventory::Tx(txid(3))]);
    assert_eq!(peer.stats().refused_announcements, 1);
    peer.disconnect();
}

// ---- 5. One trickle schedule for a node's inbound peers ----

/// Waits for the next `inv` on each remote and returns the remotes with the instants they got it.
async fn first_invs(remotes: Vec<Remote>) -> Vec<(Remote, Instant)> {
    let tasks: Vec<_> = remotes
        .into_iter()
        .map(|mut r| {
            tokio::spawn(async move {
                loop {
                    match r.recv_untimed().await {
                        Some(Message::Inv(_)) => return (r, Instant::now()),
                        Some(_) => {}
                        None => panic!("peer closed"),
                    }
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn c_item5_inbound_peers_of_one_node_share_one_poisson_trickle_schedule() {
    const PEERS: usize = 20;
    const TRIALS: u32 = 50;
    let mean = Duration::from_secs(5);
    // One node: one configuration (hence one node context) for all its inbound peers.
    let cfg = builder()
        .idle_timeout(Duration::ZERO)
        .ping_interval(Duration::ZERO)
        .trickle_interval(mean, Duration::from_secs(2))
        .build()
        .unwrap();
    let mut peers = Vec::new();
    let mut remotes = Vec::new();
    for _ in 0..PEERS {
        let (peer, mut remote) = inbound_from_remote(cfg.clone(), NoopHandler);
        remote.initiate_handshake(70015).await;
        within_simulated(60, peer.handshake()).await.unwrap();
        peers.push(peer);
        remotes.push(remote);
    }
    let mut first_delays = Vec::new();
    for trial in 0..TRIALS {
        let start = Instant::now();
        for p in &peers {
            assert!(p.queue_transaction(txid(trial), wtxid(trial)));
        }
        let got = within_simulated(3_600, first_invs(remotes)).await;
        let first = got.iter().map(|(_, at)| *at).min().unwrap();
        let last = got.iter().map(|(_, at)| *at).max().unwrap();
        assert_eq!(first, last, "trial {trial}: every inbound peer announces at the same instant");
        first_delays.push(first.duration_since(start).as_secs_f64());
        remotes = got.into_iter().map(|(r, _)| r).collect();
    }
    // With one timer per peer the first of 20 announcements would come after mean / 20 = 0.25 s on
    // average. With a shared schedule it comes after the mean of one peer's delay, 5 s: the sample
    // mean of 50 exponential delays has a standard error of 5 / sqrt(50) = 0.71 s.
    let avg = first_delays.iter().sum::<f64>() / f64::from(TRIALS);
    assert!((2.5..=8.5).contains(&avg), "mean delay to the first announcement {avg:.2} s, expected about 5 s");

    // Outbound peers of the same node keep timers of their own.
    let ocfg = PeerConfig::builder(Network::REGTEST)
        .node(cfg.node().clone())
        .idle_timeout(Duration::ZERO)
        .ping_interval(Duration::ZERO)
        .trickle_interval(mean, Duration::from_secs(2))
        .build()
        .unwrap();
    let mut outs = Vec::new();
    let mut oremotes = Vec::new();
    for _ in 0..2 {
        let (peer, remote) = connected_outbound(ocfg.clone(), raw_version(70015, 3), &[]).await;
        outs.push(peer);
        oremotes.push(remote);
    }
    let mut apart = 0;
    for trial in 0..10 {
        for p in &outs {
            assert!(p.queue_transaction(txid(1_000 + trial), wtxid(1_000 + trial)));
        }
        let got = within_simulated(3_600, first_invs(oremotes)).await;
        if got[0].1 != got[1].1 {
            apart += 1;
        }
        oremotes = got.into_iter().map(|(r, _)| r).collect();
    }
    assert_eq!(apart, 10, "two outbound peers draw independent delays");
}

// ---- 7. Long reject reasons ----

#[tokio::test(start_paused = true)]
async fn c_item7_a_reject_with_a_long_reason_is_delivered_not_fatal() {
    let (h, mut rx) = recorder();
    let (peer, mut remote) = outbound_to_remote(quiet().build().unwrap(), h);
    remote.accept_handshake(70016).await;
    within_simulated(60, peer.handshake()).await.unwrap();
    let reason = "rejected transaction: output already spent by transaction ".to_string() + &"ab".repeat(80);
    assert!(reason.len() > 186);
    let reject =
        Reject { message: "tx".into(), code: RejectCode::DUPLICATE, reason: reason.clone(), hash: Some([3; 32]) };
    remote.send(&Message::Reject(reject.clone())).await;
    ping_through(&mut remote, 1).await;
    let got = within_simulated(60, next_message(&mut rx, |m| matches!(m, Message::Reject(_)))).await;
    assert_eq!(got, Message::Reject(reject));
    assert!(peer.is_connected());
    peer.disconnect();
}

// ---- 8. sendheaders and sendcmpct before verack ----

#[tokio::test(start_paused = true)]
async fn c_item8_sendheaders_and_sendcmpct_before_verack_are_recorded() {
    let features = [
        Message::SendHeaders,
        Message::SendCmpct(SendCmpct { send_compact: true, version: 2 }),
        Message::WtxidRelay,
        Message::SendAddrV2,
    ];
    let (peer, _remote) = connected_outbound(quiet().build().unwrap(), raw_version(70016, 7), &features).await;
    assert!(peer.wants_headers(), "sendheaders before verack");
    assert_eq!(peer.compact_blocks(), Some(SendCmpct { send_compact: true, version: 2 }));
    assert!(peer.wtxid_relay() && peer.wants_addrv2());
    assert_eq!(peer.stats().ignored_received, 0);
    peer.disconnect();
}

// ---- 9. Feature messages: sendtxrcncl ----

#[tokio::test(start_paused = true)]
async fn c_item9_sendtxrcncl_is_ignored_and_sent_only_when_both_sides_relay() {
    // Received after verack: ignored, not fatal.
    let (peer, mut remote) = connected_outbound(quiet().build().unwrap(), raw_version(70016, 7), &[]).await;
    remote.send(&Message::SendTxRcncl(SendTxRcncl { version: 1, salt: 2 })).await;
    ping_through(&mut remote, 1).await;
    assert!(peer.is_connected());
    assert_eq!(peer.stats().ignored_received, 1);
    peer.disconnect();

    // Sent before verack only when our relay flag and the remote's are both true (BIP330).
    for (ours, theirs, expected) in [(true, true, true), (true, false, false), (false, true, false)] {
        let cfg = quiet().relay(ours).send_txrcncl(1, 99).build().unwrap();
        let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
        let Some(Message::Version(_)) = remote.recv_untimed().await else { panic!() };
        let mut v = raw_version(70016, 7);
        v.relay = theirs;
        remote.send(&Message::Version(v)).await;
        let mut sent = Vec::new();
        loop {
            match within_simulated(60, remote.recv_untimed()).await {
                Some(Message::Verack) => break,
                Some(m) => sent.push(m.command()),
                None => panic!("closed"),
            }
        }
        assert_eq!(sent.contains(&Command::SENDTXRCNCL), expected, "ours {ours}, theirs {theirs}: {sent:?}");
        peer.disconnect();
    }
}

// ---- 10. Values Core ignores; a ping without its nonce ----

#[tokio::test(start_paused = true)]
async fn c_item10_feefilter_out_of_range_and_sendcmpct_not_version_2_are_ignored() {
    let (peer, mut remote) = connected_outbound(quiet().build().unwrap(), raw_version(70016, 7), &[]).await;
    remote.send(&Message::FeeFilter(1_000)).await;
    remote.send(&Message::FeeFilter(-1)).await;
    remote.send(&Message::FeeFilter(21_000_000 * 100_000_000 + 1)).await;
    remote.send(&Message::SendCmpct(SendCmpct { send_compact: true, version: 1 })).await;
    ping_through(&mut remote, 1).await;
    assert_eq!(peer.fee_filter_sat_per_kvb(), Some(1_000), "out-of-range rates are not recorded");
    assert_eq!(peer.compact_blocks(), None, "only version 2 is recorded");
    assert_eq!(peer.stats().ignored_received, 3);
    // The top of MoneyRange itself is a rate Core accepts.
    remote.send(&Message::FeeFilter(21_000_000 * 100_000_000)).await;
    ping_through(&mut remote, 2).await;
    assert_eq!(peer.fee_filter_sat_per_kvb(), Some(21_000_000 * 100_000_000));
    peer.disconnect();
}

#[tokio::test(start_paused = true)]
async fn c_item10_a_ping_without_its_nonce_is_malformed_after_bip31() {
    let (peer, mut remote) = connected_outbound(quiet().build().unwrap(), raw_version(70016, 7), &[]).await;
    let mut frame = BytesMut::new();
    btcpeer::wire::frame::encode_raw_frame(Command::PING, &[], &Network::REGTEST, &mut frame).unwrap();
    remote.send_bytes(&frame).await;
    let reason = within_simulated(60, peer.wait_for_disconnect()).await;
    assert!(matches!(&reason, DisconnectReason::Payload(e) if e.command == Command::PING), "{reason:?}");
    let rest = remote.drain().await;
    assert!(!rest.iter().any(|m| matches!(m, Message::Pong(_))), "no pong: {rest:?}");
    assert!(rest.iter().any(|m| matches!(m, Message::Reject(r) if r.message == "ping")), "{rest:?}");

    // At BIP31's version and before, a ping has no nonce and gets no pong, and is fine.
    let (peer, mut remote) = connected_outbound(quiet().build().unwrap(), raw_version(60000, 7), &[]).await;
    remote.send_bytes(&frame).await;
    remote.send(&Message::Ping(0)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(peer.is_connected());
    assert_eq!(peer.stats().per_command.of(Command::PING).messages_received, 2);
    peer.disconnect();
}

// ---- 11. State is recorded only after queueing succeeds ----

#[tokio::test(start_paused = true)]
async fn c_item11_a_failed_queue_leaves_no_known_inventory_and_no_last_request() {
    // Room for five pings, or for one block announcement and one getheaders.
    let cfg = quiet().max_queue_bytes(160).build().unwrap();
    let peer = Peer::outbound(cfg, "127.0.0.1:18444", NoopHandler);
    // Before the handshake nothing drains: fill the queue.
    let pings: Vec<_> = (0..5).map(|i| peer.queue_message(&Message::Ping(i)).unwrap()).collect();
    let block = Inventory::Block(BlockHash::from_byte_array([9; 32]));
    assert!(matches!(peer.try_queue_inventory(block), Err(AnnounceError::Queue(QueueError::Full { .. }))));
    assert!(!peer.has_known_inventory(&block), "not marked known: a retry must be sent");
    let locator = vec![BlockHash::from_byte_array([1; 32])];
    assert!(peer.push_getheaders(locator.clone(), BlockHash::all_zeros()).is_err());

    let (ours, far) = tokio::io::duplex(1 << 16);
    peer.associate(ours).unwrap();
    let mut remote = remote(far);
    remote.accept_handshake(70016).await;
    within_simulated(60, peer.handshake()).await.unwrap();
    for p in pings {
        within_simulated(60, p.wait()).await;
    }
    assert_eq!(peer.try_queue_inventory(block), Ok(true), "the retry goes out");
    let retry = peer.push_getheaders(locator, BlockHash::all_zeros()).unwrap();
    assert!(retry.is_some(), "the failed request was not taken as the last one");
    let sent = ping_through(&mut remote, 7).await;
    assert!(sent.contains(&Message::Inv(vec![block])), "{sent:?}");
    assert!(sent.iter().any(|m| matches!(m, Message::GetHeaders(_))), "{sent:?}");
    peer.disconnect();
}

// ---- 12. v2 packets carry at most 16 MiB ----

#[tokio::test]
async fn c_item12_a_payload_too_large_for_a_v2_packet_is_refused_when_queued() {
    let big = Network::custom("big", Magic::from_bytes([1, 2, 3, 4]), 1).with_max_payload(32_000_000);
    let payload = Bytes::from(vec![0u8; (1 << 24) - 1]);
    let cfg = PeerConfig::builder(big.clone()).v2(V2Policy::Prefer).build().unwrap();
    let peer = Peer::outbound(cfg, "127.0.0.1:1", NoopHandler);
    let err = peer.queue_raw(Command::BLOCK, payload.clone()).unwrap_err();
    assert!(matches!(err, QueueError::TooLargeForV2 { length, .. } if length == payload.len()), "{err}");
    // One byte less fits (the short message id takes the other).
    assert!(peer.queue_raw(Command::BLOCK, payload.slice(1..)).is_ok());
    // A v1-only peer may queue it: v1 frames have a 32-bit length.
    let cfg = PeerConfig::builder(big).build().unwrap();
    let peer = Peer::outbound(cfg, "127.0.0.1:1", NoopHandler);
    assert!(peer.queue_raw(Command::BLOCK, payload).is_ok());
}

// ---- Leniencies and the misbehaviour limit ----

#[tokio::test(start_paused = true)]
async fn c1_a_version_with_extra_bytes_after_the_relay_flag_completes_the_handshake() {
    let (peer, mut remote) = outbound_to_remote(quiet().build().unwrap(), NoopHandler);
    let Some(Message::Version(_)) = remote.recv_untimed().await else { panic!() };
    let mut payload = BytesMut::new();
    Message::Version(raw_version(70016, 7)).encode_payload(&mut payload).unwrap();
    payload.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x01]);
    let mut frame = BytesMut::new();
    btcpeer::wire::frame::encode_raw_frame(Command::VERSION, &payload, &Network::REGTEST, &mut frame).unwrap();
    remote.send_bytes(&frame).await;
    remote.send(&Message::Verack).await;
    let info = within_simulated(60, peer.handshake()).await.expect("accepted");
    assert_eq!(info.version.nonce, 7);
    peer.disconnect();
}

#[tokio::test(start_paused = true)]
async fn c1_ignored_and_dropped_frames_are_free_by_default_and_limited_when_configured() {
    let mut bad = BytesMut::new();
    btcpeer::wire::frame::encode_frame(&Message::Ping(1), &Network::REGTEST, &mut bad).unwrap();
    bad[20] ^= 0xff;
    // Default: no limit, as Core.
    let (peer, mut remote) = connected_outbound(quiet().build().unwrap(), raw_version(70016, 7), &[]).await;
    for _ in 0..500 {
        remote.send_bytes(&bad).await;
        remote.send(&Message::Verack).await;
    }
    ping_through(&mut remote, 1).await;
    let s = peer.stats();
    assert_eq!((s.dropped_frames, s.ignored_received), (500, 500));
    assert!(peer.is_connected());
    peer.disconnect();

    // A configured limit ends the peer at the first frame past it.
    let cfg = quiet().ignored_message_limit(3).build().unwrap();
    let (peer, mut remote) = connected_outbound(cfg, raw_version(70016, 7), &[]).await;
    remote.send_bytes(&bad).await;
    remote.send(&Message::Verack).await;
    remote.send_bytes(&bad).await;
    remote.send(&Message::Verack).await;
    let reason = within_simulated(60, peer.wait_for_disconnect()).await;
    assert_eq!(reason, DisconnectReason::Protocol(Violation::TooManyIgnored { count: 4 }));
}
