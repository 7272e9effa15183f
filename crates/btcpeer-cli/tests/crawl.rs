//! R-N `btcpeer crawl` against a synthetic network of 60 btcpeer nodes on 127.1.0.x (all of 127/8
//! is loopback on Linux), reached from one seed by gossip: the summary, a line per node, and the
//! address book file (saved, reused, and a corrupt one kept aside).

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::thread;

use btcpeer::bitcoin::p2p::ServiceFlags;
use btcpeer::bitcoin::p2p::address::{AddrV2, AddrV2Message};
use btcpeer::network::Network;
use btcpeer::peer::{Handler, NonceRegistry, Peer, PeerConfig};
use common::run_line;

const NODES: usize = 60;
const PORT: u16 = 18_777;

fn ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, 0, 1 + i as u8)
}

struct Gossip(Vec<AddrV2Message>);

impl Handler for Gossip {
    fn on_getaddr(&self, peer: &Peer) {
        let _ = peer.push_addr(&self.0);
    }
}

/// The network, served from a thread for `secs` seconds.
fn network(secs: u64) -> thread::JoinHandle<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let t = thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let config = PeerConfig::builder(Network::REGTEST).nonce_registry(NonceRegistry::new()).build().unwrap();
            for i in 0..NODES {
                let listener = tokio::net::TcpListener::bind((ip(i), PORT)).await.expect("127/8 is loopback");
                let entry = |n: usize, port| AddrV2Message {
                    time: 1_700_000_000,
                    services: ServiceFlags::NETWORK,
                    addr: AddrV2::Ipv4(ip(n)),
                    port,
                };
                let gossip =
                    Arc::new(Gossip(vec![entry((i + 1) % NODES, PORT), entry((i * 7 + 3) % NODES, PORT), entry(i, 9)]));
                let config = config.clone();
                tokio::spawn(async move {
                    while let Ok((stream, from)) = listener.accept().await {
                        let peer = Peer::inbound(config.clone(), from, gossip.clone());
                        if peer.associate(stream).is_ok() {
                            tokio::spawn(async move { peer.wait_for_disconnect().await });
                        }
                    }
                });
            }
            ready_tx.send(()).unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
        });
    });
    ready_rx.recv().unwrap();
    t
}

#[test]
fn r_n_crawl_reports_every_node_and_a_summary_and_keeps_its_book() {
    let net = network(40);
    let dir = std::env::temp_dir().join(format!("btcpeer-crawl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let book = dir.join("peers.book");
    let line =
        format!("crawl {}:{PORT} --network regtest --transport v1 --timeout 5 --json --book {}", ip(0), book.display());
    let r = run_line(&line);
    assert_eq!(r.code, 0, "{r:?}");
    let nodes = r.of("node");
    assert_eq!(nodes.iter().filter(|n| n["ok"] == true).count(), NODES, "{r:?}");
    assert_eq!(nodes.iter().filter(|n| n["ok"] == false).count(), NODES, "every port-9 address failed");
    let summary = r.of("summary")[0];
    assert_eq!(summary["reachable"], NODES as u64);
    assert_eq!(summary["by_version"]["70016"], NODES as u64);
    assert!(summary["median_rtt_us"].is_u64(), "{summary}");
    println!("summary: {summary}");
    assert!(book.exists());

    // A second run starts from the book: no seed needed.
    let r = run_line(&format!("crawl --network regtest --transport v1 --timeout 5 --json --book {}", book.display()));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.of("summary")[0]["reachable"], NODES as u64, "{r:?}");
    let r = run_line("crawl --network regtest");
    assert_eq!(r.code, 2, "no seed and no book is a usage error: {r:?}");

    // A corrupt book is kept aside and the crawl starts empty.
    std::fs::write(&book, b"garbage").unwrap();
    let r = run_line(&line);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("kept as"), "{r:?}");
    assert!(dir.join("peers.corrupt").exists());
    let _ = std::fs::remove_dir_all(&dir);
    drop(net);
}
