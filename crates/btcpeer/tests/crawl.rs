//! R-N: a crawl of a synthetic network of 500 btcpeer nodes, each on its own loopback address
//! (127.0.x.y; all of 127/8 is loopback on Linux), reached only through addr gossip from one seed.
//! Some gossip names dead addresses and non-Bitcoin ports: each is reported failed, once.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use btcpeer::bitcoin::p2p::ServiceFlags;
use btcpeer::bitcoin::p2p::address::{AddrV2, AddrV2Message};
use btcpeer::core::addrbook::AddrBook;
use btcpeer::crawl::{CrawlFailure, Crawler};
use btcpeer::network::Network;
use btcpeer::peer::{Handler, NonceRegistry, Peer, PeerConfig, V2Policy};
use tokio::net::TcpListener;

const NODES: usize = 500;
const PORT: u16 = 18_444;

fn ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8)
}

fn entry(addr: Ipv4Addr, port: u16) -> AddrV2Message {
    AddrV2Message { time: 1_700_000_000, services: ServiceFlags::NETWORK, addr: AddrV2::Ipv4(addr), port }
}

/// A node that answers `getaddr` with a few others: the next one (so everything is reachable
/// from node 0), four more spread over the network, a dead address and a non-Bitcoin port.
struct Gossip(Vec<AddrV2Message>);

impl Handler for Gossip {
    fn on_getaddr(&self, peer: &Peer) {
        let _ = peer.push_addr(&self.0);
    }
}

fn gossip_of(i: usize) -> Vec<AddrV2Message> {
    let mut list = vec![entry(ip((i + 1) % NODES), PORT)];
    for k in 1..=4 {
        list.push(entry(ip((i * 7 + k * 97) % NODES), PORT));
    }
    // Nothing listens on 127.0.9.y, nor on port 9 of a node.
    list.push(entry(Ipv4Addr::new(127, 0, 9, 1 + (i % 20) as u8), PORT));
    list.push(entry(ip(i), 9));
    list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_n_a_crawl_finds_every_reachable_node_once_and_reports_the_dead() {
    let nodes = PeerConfig::builder(Network::REGTEST).nonce_registry(NonceRegistry::new()).build().unwrap();
    for i in 0..NODES {
        let listener = TcpListener::bind((ip(i), PORT)).await.expect("127/8 is loopback");
        let (config, gossip) = (nodes.clone(), Arc::new(Gossip(gossip_of(i))));
        tokio::spawn(async move {
            while let Ok((stream, from)) = listener.accept().await {
                let peer = Peer::inbound(config.clone(), from, gossip.clone());
                if peer.associate(stream).is_ok() {
                    tokio::spawn(async move { peer.wait_for_disconnect().await });
                }
            }
        });
    }
    let crawler_config = PeerConfig::builder(Network::REGTEST).build().unwrap();
    let mut book = AddrBook::new([1; 32], 1).allow_local(true);
    let seen: Arc<Mutex<HashMap<SocketAddr, usize>>> = Arc::default();
    let (mut ok, mut failed) = (0, 0);
    let seed = SocketAddr::new(ip(0).into(), PORT);
    let started = std::time::Instant::now();
    let summary = tokio::time::timeout(
        Duration::from_secs(120),
        Crawler::new(crawler_config).concurrency(64).timeout(Duration::from_secs(5)).allow_local(true).run(
            &[seed],
            &mut book,
            |node| {
                *seen.lock().unwrap().entry(node.addr.socket_addr().expect("an IP")).or_default() += 1;
                if node.result.is_ok() { ok += 1 } else { failed += 1 }
            },
        ),
    )
    .await
    .expect("the crawl ends in time");
    let seen = seen.lock().unwrap();
    assert!(seen.values().all(|n| *n == 1), "every address crawled once");
    assert_eq!(summary.reachable, NODES, "{summary:?}");
    assert_eq!(ok, NODES);
    for i in 0..NODES {
        assert!(seen.contains_key(&SocketAddr::new(ip(i).into(), PORT)), "node {i} missed");
    }
    // 20 dead addresses and the port-9 one of every node.
    assert_eq!(failed, 20 + NODES, "{summary:?}");
    assert_eq!(summary.failed, failed);
    assert_eq!(summary.discovered, summary.tried);
    assert!(book.tried_len() > 0 && book.len() <= btcpeer::core::addrbook::MAX_ENTRIES);
    println!("crawled {} nodes ({} failed) in {:?}", summary.reachable, summary.failed, started.elapsed());
}

/// Twenty v1-only nodes on 127.0.20.y:18445 that count the connections they accept; each gossips
/// the next, a Tor v3 name and a private address.
async fn small_network(accepted: Arc<AtomicUsize>) -> SocketAddr {
    const SMALL: u8 = 20;
    let small_ip = |i: u8| Ipv4Addr::new(127, 0, 20, 1 + (i % SMALL));
    let config = PeerConfig::builder(Network::REGTEST).nonce_registry(NonceRegistry::new()).build().unwrap();
    for i in 0..SMALL {
        let listener = TcpListener::bind((small_ip(i), 18_445)).await.expect("127/8 is loopback");
        let onion = AddrV2::TorV3([i; 32]);
        let gossip = vec![
            entry(small_ip(i + 1), 18_445),
            AddrV2Message { time: 1_700_000_000, services: ServiceFlags::NETWORK, addr: onion, port: 8333 },
            entry(Ipv4Addr::new(10, 0, 0, i), 8333),
        ];
        let (config, gossip, accepted) = (config.clone(), Arc::new(Gossip(gossip)), accepted.clone());
        tokio::spawn(async move {
            while let Ok((stream, from)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::Relaxed);
                let peer = Peer::inbound(config.clone(), from, gossip.clone());
                if peer.associate(stream).is_ok() {
                    tokio::spawn(async move { peer.wait_for_disconnect().await });
                }
            }
        });
    }
    SocketAddr::new(small_ip(0).into(), 18_445)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_n_a_failed_v2_attempt_is_remembered_and_gossip_cannot_grow_the_crawl() {
    let accepted = Arc::new(AtomicUsize::new(0));
    let seed = small_network(accepted.clone()).await;
    let auto = PeerConfig::builder(Network::REGTEST).v2(V2Policy::Prefer).build().unwrap();
    let mut book = AddrBook::new([2; 32], 1).allow_local(true);
    // Local addresses are allowed, but not private ones from gossip unless the crawler says so;
    // and a Tor name needs a proxy.
    let crawler = Crawler::new(auto.clone()).timeout(Duration::from_secs(5));
    let crawl = crawler.clone().allow_local(false);
    let first = tokio::time::timeout(Duration::from_secs(60), crawl.run([seed], &mut book, |_| {})).await.unwrap();
    assert_eq!(first.tried, 1, "127.0.20.2 is local: not crawled without allow_local ({first:?})");
    assert_eq!(first.skipped, 3, "the next node, the onion and 10.0.0.0 ({first:?})");
    let crawl = crawler.clone().allow_local(true);
    accepted.store(0, Ordering::Relaxed);
    let mut book = AddrBook::new([2; 32], 1).allow_local(true);
    let all = tokio::time::timeout(Duration::from_secs(60), crawl.run([seed], &mut book, |_| {})).await.unwrap();
    assert_eq!(all.reachable, 20, "{all:?}");
    // Each v1-only node was dialed twice: the v2 key it hung up on, then v1.
    assert_eq!(accepted.load(Ordering::Relaxed), 40);
    // All twenty share one (local) group and one source group, so the book's positions collide as
    // in Core: it keeps most of them, each remembered as v1-only.
    let nodes = book.entries().filter(|e| e.peer.port == 18_445).count();
    let v2_failed = book.entries().filter(|e| e.v2 == btcpeer::core::addrbook::V2Support::Failed).count();
    assert!(nodes >= 10, "{nodes}");
    assert_eq!(v2_failed, nodes, "every node in the book remembered as v1-only");
    // The second crawl from that book goes straight to v1 where it remembers: one connection.
    accepted.store(0, Ordering::Relaxed);
    let again = tokio::time::timeout(Duration::from_secs(60), crawl.run([seed], &mut book, |_| {})).await.unwrap();
    assert_eq!(again.reachable, 20, "{again:?}");
    assert_eq!(accepted.load(Ordering::Relaxed), 20 + (20 - nodes), "no wasted reconnect");
    // However much is gossiped, at most max_nodes are queued, remembered or tried.
    let mut book = AddrBook::new([3; 32], 1).allow_local(true);
    let bounded = crawl.max_nodes(5).run([seed], &mut book, |_| {}).await;
    assert_eq!((bounded.tried, bounded.discovered), (5, 5), "{bounded:?}");
    assert!(bounded.skipped > 0);
    // A mainnet crawler at a regtest node: the failure says so.
    let mainnet = PeerConfig::builder(Network::MAINNET).build().unwrap();
    let mut failures = Vec::new();
    let wrong = Crawler::new(mainnet).allow_local(true).timeout(Duration::from_secs(5));
    wrong.run([seed], &mut AddrBook::new([4; 32], 1), |n| failures.push(n.result.clone())).await;
    assert!(matches!(failures.as_slice(), [Err(CrawlFailure::WrongNetwork(_))]), "{failures:?}");
}
