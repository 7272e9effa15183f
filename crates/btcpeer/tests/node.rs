//! R-N: the tokio node over loopback: admission and eviction under slow-loris, `getaddr` answered
//! from the book once per connection, manual peers, block-relay-only anchors, bans and files that
//! survive a restart (a corrupt one kept aside).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use btcpeer::bitcoin::p2p::ServiceFlags;
use btcpeer::bitcoin::p2p::address::{AddrV2, AddrV2Message};
use btcpeer::core::addrbook::{AddrBook, Endpoint};
use btcpeer::network::Network;
use btcpeer::node::{ConnKind, Node, NodeEvent, NodeReason};
use btcpeer::peer::{NonceRegistry, NoopHandler, Peer, PeerConfig, RequestError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

fn config() -> PeerConfig {
    PeerConfig::builder(Network::REGTEST).nonce_registry(NonceRegistry::new()).build().unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("btcpeer-node-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn listener(ip: Ipv4Addr) -> TcpListener {
    TcpListener::bind((ip, 0)).await.expect("127/8 is loopback")
}

/// Waits for the first event `pick` accepts.
async fn wait_for<T>(events: &mut mpsc::Receiver<NodeEvent>, mut pick: impl FnMut(&NodeEvent) -> Option<T>) -> T {
    timeout(LIMIT, async {
        loop {
            let e = events.recv().await.expect("the node is running");
            if let Some(t) = pick(&e) {
                return t;
            }
        }
    })
    .await
    .expect("the event comes in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_n_a_listener_full_of_slow_loris_serves_an_honest_peer_within_a_second() {
    // 8 inbound slots, no outbound.
    let node = Node::builder(config()).max_connections(8 + 8 + 2 + 1).dial_outbound(false).build().unwrap();
    let addr = node.start(Some(listener(Ipv4Addr::LOCALHOST).await)).unwrap().unwrap();
    // Eight connections that never say a word, then wait until the node holds them all.
    let mut loris = Vec::new();
    for _ in 0..8 {
        loris.push(TcpStream::connect(addr).await.unwrap());
    }
    timeout(LIMIT, async {
        while node.counts().inbound < 8 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let started = tokio::time::Instant::now();
    let (peer, remote) = timeout(Duration::from_secs(1), Peer::connect(&addr.to_string(), config(), NoopHandler))
        .await
        .expect("served within a second")
        .expect("the handshake completes");
    assert_eq!(remote.version.user_agent, "/btcpeer:0.1.0/");
    println!("honest peer served in {:?}", started.elapsed());
    assert!(node.counts().inbound <= 8, "never above the limit");
    peer.disconnect();
    node.shutdown().await.unwrap();
}

/// `count` connections that never say a word, held open.
async fn silent(addr: std::net::SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        held.push(TcpStream::connect(addr).await.expect("connects"));
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_n_a_flood_of_silent_connections_during_an_honest_handshake_does_not_push_it_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = Node::builder(config()).max_connections(8 + 8 + 2 + 1).dial_outbound(false).build().unwrap();
    let addr = node.start(Some(listener(Ipv4Addr::LOCALHOST).await)).unwrap().unwrap();
    let mut held = silent(addr, 300).await;
    for round in 0..3 {
        // The honest peer sends its version and verack at once...
        let mut honest = TcpStream::connect(addr).await.unwrap();
        let local = honest.local_addr().unwrap();
        let version = btcpeer::wire::VersionMessage {
            version: 70016,
            services: ServiceFlags::NETWORK,
            timestamp: 1_700_000_000,
            receiver: btcpeer::wire::blank_address(),
            sender: btcpeer::wire::blank_address(),
            nonce: 42 + round,
            user_agent: "/honest:1.0/".into(),
            start_height: 0,
            relay: true,
            tail: btcpeer::wire::VersionTail::Complete,
        };
        let mut out = bytes::BytesMut::new();
        for m in [btcpeer::wire::Message::Version(version), btcpeer::wire::Message::Verack] {
            btcpeer::wire::frame::encode_frame(&m, &Network::REGTEST, &mut out).unwrap();
        }
        honest.write_all(&out).await.unwrap();
        // ...and 300 more silent connections arrive before its handshake is answered.
        held.extend(silent(addr, 300).await);
        // It is answered (version and verack: at least 2 × 24 bytes), and stays connected.
        let mut answer = vec![0u8; 48];
        timeout(Duration::from_secs(1), honest.read_exact(&mut answer))
            .await
            .expect("answered in time")
            .expect("not pushed out");
        let established = timeout(LIMIT, async {
            loop {
                if node.peers().iter().any(|p| p.addr == local && p.established) {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(established.is_ok(), "round {round}: the honest peer is established");
        assert!(node.counts().inbound <= 8, "never above the limit");
    }
    drop(held);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_n_getaddr_is_answered_from_the_book_once_per_inbound_connection() {
    let dir = temp_dir("getaddr");
    let mut book = AddrBook::new([5; 32], 1);
    let source = Endpoint::new(AddrV2::Ipv4([9, 9, 9, 9].into()), 8333);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let heard: Vec<AddrV2Message> = (0..200u32)
        .map(|i| AddrV2Message {
            time: now as u32,
            services: ServiceFlags::NETWORK,
            addr: AddrV2::Ipv4(Ipv4Addr::from(0x0a00_0000u32.wrapping_add(0x0101_0000u32.wrapping_mul(i + 30)) | 1)),
            port: 8333,
        })
        .filter(|a| btcpeer::core::addrbook::is_routable(&a.addr))
        .collect();
    assert!(book.add(&heard, &source, now) > 50);
    book.save(&dir.join("peers.book")).unwrap();
    let node = Node::builder(config()).dial_outbound(false).data_dir(&dir).build().unwrap();
    let known = node.with_book(|b| b.len()).unwrap();
    assert!(known > 50, "the book was loaded: {known}");
    let addr = node.start(Some(listener(Ipv4Addr::LOCALHOST).await)).unwrap().unwrap();
    let (peer, _) = Peer::connect(&addr.to_string(), config(), NoopHandler).await.unwrap();
    let first = peer.requests().timeout(LIMIT).addr_quiet(Duration::from_millis(300)).get_addr().await.unwrap();
    // Core's ProcessGetAddr: at most 23 % of the book.
    assert!(!first.is_empty() && first.len() <= known * 23 / 100 + 1, "{} of {known}", first.len());
    let second = peer.requests().timeout(Duration::from_millis(500)).get_addr().await;
    assert!(matches!(second, Err(RequestError::Timeout(_)) | Ok(_)), "{second:?}");
    assert!(second.map_or(true, |a| a.is_empty()), "answered once per connection");
    peer.disconnect();
    node.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_n_manual_peers_anchors_and_bans_survive_a_restart() {
    let dir = temp_dir("restart");
    // The remote node: accepts, dials nobody.
    let (remote, mut remote_events) =
        Node::builder(config()).allow_local(true).dial_outbound(false).build_with_channel(256).unwrap();
    let remote_addr = remote.start(Some(listener(Ipv4Addr::new(127, 0, 3, 1)).await)).unwrap().unwrap();

    // A node whose only automatic outbound connection is one block-relay-only slot, with the
    // remote in its book.
    let mut book = AddrBook::new([6; 32], 1).allow_local(true);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let entry = AddrV2Message {
        time: now as u32,
        services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        addr: AddrV2::Ipv4(Ipv4Addr::new(127, 0, 3, 1)),
        port: remote_addr.port(),
    };
    book.add(&[entry], &Endpoint::new(AddrV2::Ipv4(Ipv4Addr::new(127, 0, 3, 9)), 1), now);
    book.save(&dir.join("peers.book")).unwrap();
    let build = || {
        Node::builder(config()).allow_local(true).outbound(0, 1).feelers(false).data_dir(&dir).build_with_channel(256)
    };
    let (node, mut events) = build().unwrap();
    node.start(None).unwrap();
    let kind = wait_for(&mut events, |e| match e {
        NodeEvent::Connected { addr, kind, .. } if *addr == remote_addr => Some(*kind),
        _ => None,
    })
    .await;
    assert_eq!(kind, ConnKind::BlockRelay);
    // The remote sees our relay = false: a block-relay-only connection asks for no transactions.
    let relay = wait_for(&mut remote_events, |e| match e {
        NodeEvent::Connected { remote, .. } => Some(remote.version.relay),
        _ => None,
    })
    .await;
    assert!(!relay, "block-relay-only connections send relay = false");
    let banned: IpAddr = "127.0.9.9".parse().unwrap();
    assert_eq!(node.ban(banned, Duration::from_secs(3600)), 0);
    node.shutdown().await.unwrap();
    assert!(dir.join("anchors.dat").exists(), "the anchors were saved");

    // Restart without the book: the anchor is dialed first, as block-relay-only; the ban holds.
    std::fs::remove_file(dir.join("peers.book")).unwrap();
    let (node, mut events) = build().unwrap();
    assert!(!dir.join("anchors.dat").exists(), "anchors are read once, as Core's anchors.dat");
    assert!(node.is_banned(banned));
    node.start(None).unwrap();
    let kind = wait_for(&mut events, |e| match e {
        NodeEvent::Connected { addr, kind, .. } if *addr == remote_addr => Some(*kind),
        _ => None,
    })
    .await;
    assert_eq!(kind, ConnKind::BlockRelay, "the anchor came back as block-relay-only");
    node.shutdown().await.unwrap();

    // A manual peer is dialed and ended by a ban, which the remote's table shows.
    let (node, mut events) = build().unwrap();
    node.start(None).unwrap();
    let manual = remote.local_addr().unwrap();
    node.add_peer(manual, true);
    wait_for(&mut events, |e| matches!(e, NodeEvent::Connected { addr, .. } if *addr == manual).then_some(())).await;
    assert!(node.peers().iter().any(|p| p.addr == manual && p.established));
    node.ban(manual.ip(), Duration::from_secs(60));
    let by = wait_for(&mut events, |e| match e {
        NodeEvent::Disconnected { addr, by_node, .. } if *addr == manual => Some(*by_node),
        _ => None,
    })
    .await;
    assert_eq!(by, Some(NodeReason::Banned));
    node.shutdown().await.unwrap();

    // A corrupt ban list and anchors file are kept aside and the node starts without them.
    std::fs::write(dir.join("banlist.dat"), b"not a ban list").unwrap();
    std::fs::write(dir.join("anchors.dat"), b"not anchors").unwrap();
    let (node, _events) = build().unwrap();
    let recovered = node.recovered_files();
    assert_eq!(recovered.len(), 2, "{recovered:?}");
    assert!(dir.join("banlist.dat.corrupt").exists());
    assert!(dir.join("anchors.dat.corrupt").exists());
    assert!(!dir.join("anchors.dat").exists());
    assert!(!node.is_banned(banned));
    node.shutdown().await.unwrap();
    remote.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Panics on every event.
struct Panicky;

impl btcpeer::node::NodeHandler for Panicky {
    fn on_event(&self, _event: &NodeEvent) {
        panic!("the application's bug");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_l_a_panicking_node_handler_and_a_dropped_node_end_in_a_defined_state() {
    let dir = temp_dir("dropped");
    let node = Node::builder(config()).dial_outbound(false).handler(Panicky).data_dir(&dir).build().unwrap();
    let addr = node.start(Some(listener(Ipv4Addr::LOCALHOST).await)).unwrap().unwrap();
    // Every event panics in the handler; the node still serves.
    let (peer, _) = timeout(LIMIT, Peer::connect(&addr.to_string(), config(), NoopHandler)).await.unwrap().unwrap();
    assert!(node.handler_panics() >= 1);
    // The last handle dropped without shutdown: the node stops, its peers end, its files are saved.
    drop(node);
    let reason = timeout(LIMIT, peer.wait_for_disconnect()).await.expect("the peer ends");
    // The node closed it: a close or a reset, depending on what was unread.
    assert!(
        matches!(
            reason,
            btcpeer::peer::DisconnectReason::RemoteClosed { .. } | btcpeer::peer::DisconnectReason::Io { .. }
        ),
        "{reason:?}"
    );
    timeout(LIMIT, async {
        while !dir.join("peers.book").exists() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the book is saved");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_n_a_seed_is_dialed_as_full_relay_and_its_addresses_are_learnt() {
    // The seed: a node whose book knows 40 local addresses (nothing listens there).
    let dir = temp_dir("seed");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut book = AddrBook::new([8; 32], 1).allow_local(true);
    for i in 0..40u8 {
        let entry = AddrV2Message {
            time: now as u32,
            services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
            addr: AddrV2::Ipv4(Ipv4Addr::new(127, 0, 6, 1 + i)),
            port: 9,
        };
        book.add(&[entry], &Endpoint::new(AddrV2::Ipv4(Ipv4Addr::new(127, 0, 7, i)), 1), now);
    }
    book.save(&dir.join("peers.book")).unwrap();
    let seed = Node::builder(config()).allow_local(true).dial_outbound(false).data_dir(&dir).build().unwrap();
    let seed_addr = seed.start(Some(listener(Ipv4Addr::new(127, 0, 5, 1)).await)).unwrap().unwrap();

    let (node, mut events) =
        Node::builder(config()).allow_local(true).outbound(1, 0).feelers(false).build_with_channel(1024).unwrap();
    node.start(None).unwrap();
    assert_eq!(node.add_seeds(&[seed_addr]), 1);
    let kind = wait_for(&mut events, |e| match e {
        NodeEvent::Connected { addr, kind, .. } if *addr == seed_addr => Some(*kind),
        _ => None,
    })
    .await;
    assert_eq!(kind, ConnKind::FullRelay, "a seed fills an automatic full-relay slot");
    // Its answer to our getaddr reaches the book, with the seed as their source.
    timeout(LIMIT, async {
        while node.with_book(|b| b.len()).unwrap_or(0) < 5 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("addresses learnt from the seed");
    let from_seed = node
        .with_book(|b| b.entries().filter(|e| e.source == AddrV2::Ipv4(Ipv4Addr::new(127, 0, 5, 1))).count())
        .unwrap();
    assert!(from_seed >= 4, "{from_seed}");
    node.shutdown().await.unwrap();
    seed.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
