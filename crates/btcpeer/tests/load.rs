//! S-3, S-4: many peers on one listener over 127.0.0.1 exchange a mix of messages while some
//! connections drop in the middle of a frame and some peers are dropped with messages still queued:
//! every completion resolves, every peer's `on_disconnect` fires exactly once, no task is left
//! behind, resident memory returns near its start, and nothing deadlocks (every wait is bounded).
//!
//! `s3_load_200_peers` runs in CI; `s3_load_1000_peers` is the long variant (`--ignored`).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use btcpeer::bitcoin::hashes::Hash;
use btcpeer::bitcoin::{BlockHash, Txid, Wtxid};
use btcpeer::network::Network;
use btcpeer::peer::{Completion, DisconnectReason, Handler, NonceRegistry, Peer, PeerConfig, SendOutcome};
use btcpeer::transport::stream::{FrameReader, FrameWriter};
use btcpeer::wire::{Command, Inventory, Message};
use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};

/// Counts `on_disconnect` per peer id.
#[derive(Clone, Default)]
struct Ends(Arc<Mutex<HashMap<u64, u32>>>);

impl Handler for Ends {
    fn on_disconnect(&self, peer: &Peer, _: &DisconnectReason) {
        *self.0.lock().unwrap().entry(peer.id()).or_default() += 1;
    }
}

/// Counts live heap bytes, so that a leak is told apart from pages the allocator keeps.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

unsafe extern "C" {
    /// glibc: returns freed heap pages to the system.
    fn malloc_trim(pad: usize) -> i32;
}

fn rss_bytes() -> u64 {
    // Give back what the allocator holds but no longer uses, so RSS reflects live memory.
    unsafe { malloc_trim(0) };
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn config(registry: &NonceRegistry) -> PeerConfig {
    PeerConfig::builder(Network::REGTEST)
        .nonce_registry(registry.clone())
        .trickle_interval(Duration::from_millis(50), Duration::from_millis(50))
        .build()
        .unwrap()
}

/// A client that completes the handshake by hand, then sends half a frame and vanishes.
async fn drop_mid_frame(addr: std::net::SocketAddr) {
    let Ok(stream) = TcpStream::connect(addr).await else { return };
    let (r, w) = stream.into_split();
    let mut reader = FrameReader::new(r, Network::REGTEST);
    let mut writer = FrameWriter::new(w, Network::REGTEST);
    let mut payload = bytes::BytesMut::new();
    Message::Version(common::raw_version(70016, getrandom::u64().unwrap())).encode_payload(&mut payload).unwrap();
    writer.push(Command::VERSION, &payload.freeze());
    writer.push(Command::VERACK, &Bytes::new());
    let _ = writer.flush().await;
    while let Ok((f, _)) = reader.read_frame().await {
        if f.command == Command::VERACK {
            break;
        }
    }
    let mut tx = bytes::BytesMut::new();
    Message::Tx(common::samples::tx()).encode_payload(&mut tx).unwrap();
    let full = {
        let mut buf = bytes::BytesMut::new();
        btcpeer::wire::frame::encode_raw_frame(Command::TX, &tx, &Network::REGTEST, &mut buf).unwrap();
        buf
    };
    let _ = writer.get_mut().write_all(&full[..full.len() / 2]).await;
}

use tokio::io::AsyncWriteExt;

/// The heap counter is process-wide: one load test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run_load(peers: usize, messages_per_peer: usize) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    let rss_before = rss_bytes();
    let live_before = LIVE.load(Ordering::Relaxed);
    let server_node = NonceRegistry::new();
    let client_node = NonceRegistry::new();
    let ends_in = Ends::default();
    let ends_out = Ends::default();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let inbound: Arc<Mutex<Vec<Peer>>> = Arc::default();
    let accept = {
        let (cfg, inbound, ends) = (config(&server_node), inbound.clone(), ends_in.clone());
        tokio::spawn(async move {
            while let Ok((stream, from)) = listener.accept().await {
                let peer = Peer::inbound(cfg.clone(), from, ends.clone());
                let _ = peer.associate(stream);
                inbound.lock().unwrap().push(peer);
            }
        })
    };

    let mut outbound = Vec::new();
    for _ in 0..peers {
        let stream = TcpStream::connect(addr).await.unwrap();
        let peer = Peer::outbound(config(&client_node), addr, ends_out.clone());
        peer.associate(stream).unwrap();
        outbound.push(peer);
    }
    for p in &outbound {
        common::within(p.handshake()).await.expect("handshake under load");
    }

    // Every peer: several tasks queueing a mix at once (S-4), announcements through the trickle.
    let mut workers = Vec::new();
    for (i, p) in outbound.iter().enumerate() {
        for t in 0..4usize {
            let p = p.clone();
            workers.push(tokio::spawn(async move {
                let mut done: Vec<Completion> = Vec::new();
                for n in 0..messages_per_peer / 4 {
                    let m = match n % 5 {
                        0 => Message::Ping((i * 1_000 + t * 100 + n) as u64),
                        1 => Message::Inv(vec![Inventory::Block(BlockHash::from_byte_array([n as u8; 32])); 10]),
                        2 => Message::Tx(common::samples::tx()),
                        3 => Message::GetHeaders(btcpeer::bitcoin::p2p::message_blockdata::GetHeadersMessage::new(
                            vec![BlockHash::all_zeros()],
                            BlockHash::all_zeros(),
                        )),
                        _ => Message::Unknown {
                            command: Command::new("loadtest").unwrap(),
                            payload: Bytes::from_static(&[1; 64]),
                        },
                    };
                    if let Ok(c) = p.send(&m).await {
                        done.push(c);
                    }
                    let seed = ((i + t) * 10_000 + n) as u32;
                    let mut h = [0u8; 32];
                    h[..4].copy_from_slice(&seed.to_le_bytes());
                    p.queue_transaction(Txid::from_byte_array(h), Wtxid::from_byte_array(h));
                }
                done
            }));
        }
    }
    // Meanwhile, one in ten connections is a client that drops in the middle of a frame.
    let droppers: Vec<_> = (0..peers / 10).map(|_| tokio::spawn(drop_mid_frame(addr))).collect();

    let mut completions = Vec::new();
    for w in workers {
        completions.extend(common::within(w).await.unwrap());
    }
    for d in droppers {
        common::within(d).await.unwrap();
    }
    // A tenth of the outbound peers are dropped by the application with messages still queued.
    for p in outbound.iter().step_by(10) {
        for _ in 0..20 {
            if let Ok(c) = p.queue_message(&Message::Ping(1)) {
                completions.push(c);
            }
        }
        p.disconnect();
    }
    for p in &outbound {
        p.disconnect();
    }
    for p in &outbound {
        common::within(p.wait_for_disconnect()).await;
    }
    accept.abort();
    let inbound: Vec<Peer> = inbound.lock().unwrap().drain(..).collect();
    for p in &inbound {
        common::within(p.wait_for_disconnect()).await;
    }

    // S-3: every completion resolved; every peer ended exactly once.
    let mut sent = 0;
    for c in &completions {
        match c.outcome() {
            Some(SendOutcome::Sent) => sent += 1,
            Some(_) => {}
            None => panic!("a completion never resolved"),
        }
    }
    assert!(sent > completions.len() / 2, "most messages went out ({sent} of {})", completions.len());
    let ends_out = ends_out.0.lock().unwrap().clone();
    assert_eq!(ends_out.len(), peers);
    assert!(ends_out.values().all(|&n| n == 1), "on_disconnect exactly once per outbound peer");
    let ends_in = ends_in.0.lock().unwrap().clone();
    assert_eq!(ends_in.len(), inbound.len());
    assert!(inbound.len() >= peers + peers / 10, "the listener saw every connection");
    assert!(ends_in.values().all(|&n| n == 1), "on_disconnect exactly once per inbound peer");

    // No task left behind once the peers are gone.
    drop((outbound, inbound, completions));
    common::within(async {
        while metrics.num_alive_tasks() > tasks_before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Live heap is back where it was: nothing leaked (a little slack for runtime bookkeeping).
    let live_after = LIVE.load(Ordering::Relaxed);
    assert!(live_after - live_before < 2 * 1024 * 1024, "live heap grew by {} KiB", (live_after - live_before) / 1024);
    // Resident memory returns near its start once the allocator hands freed pages back.
    let rss_after = rss_bytes();
    assert!(
        rss_after < rss_before + 32 * 1024 * 1024,
        "RSS grew from {} MiB to {} MiB",
        rss_before >> 20,
        rss_after >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_load_200_peers() {
    run_load(200, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long variant: cargo test -p btcpeer --test load -- --ignored"]
async fn s3_load_1000_peers() {
    run_load(1_000, 200).await;
}
