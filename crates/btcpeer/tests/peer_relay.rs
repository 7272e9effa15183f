//! R-S3, R-S4, R-S5: trickled inventory, known inventory, and the push helpers.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use btcpeer::bitcoin::hashes::Hash;
use btcpeer::bitcoin::p2p::ServiceFlags;
use btcpeer::bitcoin::p2p::address::{AddrV2, AddrV2Message};
use btcpeer::bitcoin::{BlockHash, Txid, Wtxid};
use btcpeer::peer::{NoopHandler, PushError};
use btcpeer::wire::{Command, Inventory, Message, RejectCode};
use common::*;

fn txid(n: u32) -> Txid {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&n.to_le_bytes());
    Txid::from_byte_array(b)
}

fn wtxid(n: u32) -> Wtxid {
    let mut b = [0xffu8; 32];
    b[..4].copy_from_slice(&n.to_le_bytes());
    Wtxid::from_byte_array(b)
}

/// Reads what the peer sends until `n` inventory entries arrived; returns the inv messages.
async fn read_invs(remote: &mut Remote, n: usize) -> Vec<Vec<Inventory>> {
    let mut invs = Vec::new();
    let mut total = 0;
    while total < n {
        match remote.recv_untimed().await {
            Some(Message::Inv(items)) => {
                total += items.len();
                invs.push(items);
            }
            Some(_) => {}
            None => panic!("closed after {total} entries"),
        }
    }
    invs
}

#[tokio::test(start_paused = true)]
async fn r_s3_a_backlog_of_2500_goes_out_at_one_tick_in_batches_of_1000() {
    let cfg = builder().trickle_interval(Duration::from_secs(5), Duration::from_secs(2)).build().unwrap();
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    remote.accept_handshake(70015).await; // no wtxidrelay: announced by txid
    within_simulated(60, peer.handshake()).await.unwrap();
    let start = tokio::time::Instant::now();
    for n in 0..2_500 {
        assert!(peer.queue_transaction(txid(n), wtxid(n)));
    }
    assert_eq!(peer.stats().pending_announcements, 2_500);
    let invs = within_simulated(600, read_invs(&mut remote, 2_500)).await;
    let sizes: Vec<usize> = invs.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![1_000, 1_000, 500]);
    let all: HashSet<Inventory> = invs.into_iter().flatten().collect();
    assert_eq!(all.len(), 2_500, "nothing lost or duplicated");
    assert!(all.contains(&Inventory::Tx(txid(0))) && all.contains(&Inventory::Tx(txid(2_499))));
    assert!(start.elapsed() > Duration::ZERO, "they waited for the tick");
    assert_eq!(peer.stats().pending_announcements, 0);
    peer.disconnect();
}

#[tokio::test(start_paused = true)]
async fn r_s3_ticks_are_randomised_around_their_mean() {
    // The remote stays silent for minutes of simulated time: no idle timeout or pings here.
    let cfg = builder()
        .trickle_interval(Duration::from_secs(5), Duration::from_secs(2))
        .idle_timeout(Duration::ZERO)
        .ping_interval(Duration::ZERO)
        .build()
        .unwrap();
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    remote.accept_handshake(70016).await;
    within_simulated(60, peer.handshake()).await.unwrap();
    let mut waits = Vec::new();
    for n in 0..200 {
        let start = tokio::time::Instant::now();
        peer.queue_transaction(txid(n), wtxid(n));
        within_simulated(600, read_invs(&mut remote, 1)).await;
        waits.push(start.elapsed().as_secs_f64());
    }
    let mean = waits.iter().sum::<f64>() / waits.len() as f64;
    assert!((1.4..2.6).contains(&mean), "mean wait {mean} s for a 2 s outbound mean");
    let distinct: HashSet<u64> = waits.iter().map(|w| (w * 1_000.0) as u64).collect();
    assert!(distinct.len() > 150, "waits vary ({} distinct)", distinct.len());
    peer.disconnect();
}

#[tokio::test(start_paused = true)]
async fn r_s3_blocks_bypass_the_trickle_and_zero_interval_is_immediate() {
    let cfg = builder().trickle_interval(Duration::from_secs(5), Duration::from_secs(60)).build().unwrap();
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    remote.accept_handshake(70016).await;
    within_simulated(60, peer.handshake()).await.unwrap();
    let start = tokio::time::Instant::now();
    peer.queue_transaction(txid(1), wtxid(1)); // waits for a tick ~60 s away
    assert!(peer.queue_inventory(Inventory::Block(BlockHash::all_zeros())));
    let first = within_simulated(600, read_invs(&mut remote, 1)).await;
    assert_eq!(first, vec![vec![Inventory::Block(BlockHash::all_zeros())]]);
    assert!(start.elapsed() < Duration::from_millis(10), "the block went out at once");
    peer.disconnect();

    let cfg = builder().trickle_interval(Duration::ZERO, Duration::ZERO).build().unwrap();
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    remote.accept_handshake_with(70016, &[Message::WtxidRelay]).await;
    within_simulated(60, peer.handshake()).await.unwrap();
    let start = tokio::time::Instant::now();
    peer.queue_transaction(txid(2), wtxid(2));
    let got = within_simulated(600, read_invs(&mut remote, 1)).await;
    assert_eq!(got, vec![vec![Inventory::WTx(wtxid(2))]], "announced by wtxid after wtxidrelay");
    assert!(start.elapsed() < Duration::from_millis(10));
    peer.disconnect();
}

#[tokio::test(start_paused = true)]
async fn r_s4_known_inventory_suppresses_announcements_in_both_directions() {
    let cfg = builder().trickle_interval(Duration::ZERO, Duration::ZERO).build().unwrap();
    let (peer, mut remote) = outbound_to_remote(cfg, NoopHandler);
    remote.accept_handshake(70015).await;
    within_simulated(60, peer.handshake()).await.unwrap();
    // The remote announces tx 1: we do not announce it back.
    remote.send(&Message::Inv(vec![Inventory::Tx(txid(1))])).await;
    remote.send(&Message::Ping(1)).await;
    assert_eq!(remote.recv().await, Some(Message::Pong(1)));
    assert!(peer.has_known_inventory(&Inventory::Tx(txid(1))));
    assert!(!peer.queue_transaction(txid(1), wtxid(1)));
    // We announce tx 2 once, however often it is queued.
    assert!(peer.queue_transaction(txid(2), wtxid(2)));
    assert!(!peer.queue_transaction(txid(2), wtxid(2)));
    assert!(!peer.queue_inventory(Inventory::Tx(txid(2))));
    assert_eq!(within_simulated(60, read_invs(&mut remote, 1)).await, vec![vec![Inventory::Tx(txid(2))]]);
    // A block announced once is not announced again; removing it makes it announceable again.
    let block = Inventory::Block(BlockHash::from_byte_array([7; 32]));
    assert!(peer.queue_inventory(block));
    assert!(!peer.queue_inventory(block));
    peer.remove_known_inventory(&block);
    assert!(peer.queue_inventory(block));
    let got = within_simulated(60, read_invs(&mut remote, 2)).await;
    assert_eq!(got, vec![vec![block], vec![block]]);
    // add_known_inventory suppresses too, and the stats count the cache: tx 1, tx 2 by txid and by
    // wtxid, the block, tx 3.
    peer.add_known_inventory(&Inventory::Tx(txid(3)));
    assert!(!peer.queue_transaction(txid(3), wtxid(3)));
    assert_eq!(peer.stats().known_inventory, 5);
    peer.disconnect();
}

#[tokio::test]
async fn r_s4_known_inventory_is_bounded_and_evicts_the_oldest() {
    let cfg = builder().known_inventory_capacity(3).build().unwrap();
    let (peer, _remote) = outbound_to_remote(cfg, NoopHandler);
    let inv = |n| Inventory::Tx(txid(n));
    for n in 1..=3 {
        peer.add_known_inventory(&inv(n));
    }
    peer.add_known_inventory(&inv(4));
    assert!(!peer.has_known_inventory(&inv(1)));
    assert!((2..=4).all(|n| peer.has_known_inventory(&inv(n))));
    assert_eq!(peer.stats().known_inventory, 3);
    peer.disconnect();
}

#[tokio::test]
async fn r_s5_push_addr_uses_addrv2_when_asked_and_samples_1000() {
    let addrs: Vec<AddrV2Message> = (0..2_500u32)
        .map(|n| AddrV2Message {
            time: 1_700_000_000,
            services: ServiceFlags::NETWORK,
            addr: if n % 5 == 0 {
                let mut key = [0u8; 32];
                key[..4].copy_from_slice(&n.to_le_bytes());
                AddrV2::TorV3(key)
            } else {
                AddrV2::Ipv4(n.to_be_bytes().into())
            },
            port: 8333,
        })
        .collect();
    for version in [70016, 70015] {
        let (peer, mut remote) = outbound_to_remote(config(), NoopHandler);
        if version == 70016 {
            let Some(Message::Version(_)) = remote.recv().await else { panic!() };
            remote.send(&Message::Version(raw_version(version, 42))).await;
            remote.send(&Message::SendAddrV2).await;
            remote.send(&Message::Verack).await;
        } else {
            remote.accept_handshake(version).await;
        }
        within(peer.handshake()).await.unwrap();
        assert_eq!(peer.push_addr(&[]).unwrap(), vec![], "nothing for an empty list");
        let sent = peer.push_addr(&addrs).unwrap();
        assert_eq!(sent.len(), 1_000);
        let distinct: HashSet<String> = sent.iter().map(|a| format!("{:?}", a.addr)).collect();
        assert_eq!(distinct.len(), 1_000, "no duplicates");
        let got = loop {
            if let m @ (Message::Addr(_) | Message::AddrV2(_)) = remote.recv().await.expect("open") {
                break m;
            }
        };
        match (version, got) {
            (70016, Message::AddrV2(list)) => {
                assert_eq!(list, sent);
                assert!(list.iter().any(|a| matches!(a.addr, AddrV2::TorV3(_))), "addrv2 carries onion addresses");
            }
            (70015, Message::Addr(list)) => {
                assert_eq!(list.len(), 1_000);
                assert!(sent.iter().all(|a| matches!(a.addr, AddrV2::Ipv4(_))), "addr only carries IP addresses");
            }
            (v, m) => panic!("{v}: unexpected {}", m.command()),
        }
        peer.disconnect();
    }
}

#[tokio::test]
async fn r_s5_getheaders_duplicates_are_suppressed_then_a_different_one_is_sent() {
    let (peer, mut remote) = outbound_to_remote(config(), NoopHandler);
    remote.accept_handshake(70016).await;
    within(peer.handshake()).await.unwrap();
    let a = BlockHash::from_byte_array([1; 32]);
    let b = BlockHash::from_byte_array([2; 32]);
    let zero = BlockHash::all_zeros();
    assert!(peer.push_getheaders(vec![a], zero).unwrap().is_some());
    assert!(peer.push_getheaders(vec![a], zero).unwrap().is_none(), "back-to-back duplicate");
    assert!(peer.push_getheaders(vec![b, a], zero).unwrap().is_some(), "a different request");
    assert!(peer.push_getblocks(vec![a], zero).unwrap().is_some(), "getblocks has its own history");
    assert!(peer.push_getblocks(vec![a], zero).unwrap().is_none());
    assert_eq!(peer.push_getheaders(vec![a; 102], zero).unwrap_err(), PushError::LocatorTooLong(102));
    let mut got = Vec::new();
    while got.len() < 3 {
        match remote.recv().await.expect("open") {
            Message::GetHeaders(m) => got.push(("getheaders", m.locator_hashes[0], m.version)),
            Message::GetBlocks(m) => got.push(("getblocks", m.locator_hashes[0], m.version)),
            _ => {}
        }
    }
    assert_eq!(got, vec![("getheaders", a, 70016), ("getheaders", b, 70016), ("getblocks", a, 70016)]);
    peer.disconnect();
}

#[tokio::test]
async fn r_s5_push_reject_is_version_gated_and_can_wait() {
    let (peer, mut remote) = outbound_to_remote(config(), NoopHandler);
    remote.accept_handshake(70001).await;
    within(peer.handshake()).await.unwrap();
    assert!(peer.push_reject(Command::TX, RejectCode::INVALID, "bad", Some([1; 32])).unwrap().is_none());
    peer.disconnect();

    let (peer, mut remote) = outbound_to_remote(config(), NoopHandler);
    remote.accept_handshake(70016).await;
    within(peer.handshake()).await.unwrap();
    let done = peer.push_reject(Command::TX, RejectCode::INVALID, "bad", Some([1; 32])).unwrap().expect("sent");
    assert_eq!(within(done.wait()).await, btcpeer::peer::SendOutcome::Sent);
    let reject = loop {
        if let Some(Message::Reject(r)) = remote.recv().await {
            break r;
        }
    };
    assert_eq!((reject.message.as_str(), reject.code, reject.hash), ("tx", RejectCode::INVALID, Some([1; 32])));
    peer.disconnect();
}

#[tokio::test]
async fn r_w6_a_prepared_message_is_encoded_once_and_sent_to_many_peers() {
    let prepared = btcpeer::wire::frame::Prepared::new(&Message::Inv(vec![Inventory::Tx(txid(7))])).unwrap();
    let mut remotes = Vec::new();
    let mut peers = Vec::new();
    for _ in 0..3 {
        let (peer, mut remote) = outbound_to_remote(config(), NoopHandler);
        remote.accept_handshake(70016).await;
        within(peer.handshake()).await.unwrap();
        assert_eq!(within(peer.queue_prepared(&prepared).unwrap().wait()).await, btcpeer::peer::SendOutcome::Sent);
        remotes.push(remote);
        peers.push(peer);
    }
    for remote in &mut remotes {
        // The remote's frame reader checks the checksum computed once for all three.
        assert_eq!(within(read_invs(remote, 1)).await, vec![vec![Inventory::Tx(txid(7))]]);
    }
    for p in peers {
        p.disconnect();
    }
}
