//! Measures the header chain: the memory a mainnet-sized chain (930,000 headers by default)
//! takes, and how fast `connect_headers` checks headers beside a SHA256d baseline measured in
//! the same run.
//!
//! ```text
//! cargo run --release -p btcpeer-core --example chain_memory [-- HEADERS]
//! ```
//!
//! The synthetic chain is regtest's (trivial proof of work: each header is mined in a few
//! hashes before it is connected, outside the timed part for the rate). Memory is counted by a
//! counting global allocator: the bytes the chain holds once built.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bitcoin::bip158::{FilterHash, FilterHeader};
use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::p2p::message_filter::{CFHeaders, CFilter};
use bitcoin::pow::{CompactTarget, Target};
use bitcoin::{BlockHash, TxMerkleNode};
use btcpeer_core::chain::{ChainParams, ChainStore, FilterHeaderChain, HeaderChain};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn mine(prev: BlockHash, time: u32, salt: u64) -> Header {
    let mut root = [0u8; 32];
    root[..8].copy_from_slice(&salt.to_le_bytes());
    let mut h = Header {
        version: Version::from_consensus(0x2000_0000),
        prev_blockhash: prev,
        merkle_root: TxMerkleNode::from_byte_array(root),
        time,
        bits: CompactTarget::from_consensus(0x207f_ffff),
        nonce: 0,
    };
    let target = Target::from_compact(h.bits);
    while !target.is_met_by(h.block_hash()) {
        h.nonce += 1;
    }
    h
}

fn batch(prev: BlockHash, prev_time: u32, n: usize, salt: u64) -> Vec<Header> {
    let mut out = Vec::with_capacity(n);
    let (mut prev, mut time) = (prev, prev_time);
    for i in 0..n {
        time += 600;
        let h = mine(prev, time, salt + i as u64);
        prev = h.block_hash();
        out.push(h);
    }
    out
}

const NOW: u64 = 4_000_000_000;

fn main() {
    let total: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(930_000);
    let params = ChainParams::new(bitcoin::Network::Regtest);

    // 1. Rate on a 10,000-header chain, beside SHA256d of the same headers.
    let headers = batch(params.genesis_hash(), params.genesis.time, 10_000, 0);
    let rounds = 5;
    let start = Instant::now();
    let mut sink = 0u8;
    for _ in 0..rounds {
        for h in &headers {
            sink ^= h.block_hash()[0];
        }
    }
    let sha = start.elapsed();
    let start = Instant::now();
    for _ in 0..rounds {
        let mut chain = HeaderChain::new(params.clone());
        for b in headers.chunks(2000) {
            chain.connect_headers(b, NOW).expect("valid headers");
        }
        assert_eq!(chain.height(), 10_000);
    }
    let connect = start.elapsed();
    let n = (rounds * headers.len()) as f64;
    println!(
        "connect_headers: {:.0} headers/s; sha256d baseline: {:.0} headers/s ({:.1}x the cost of one hash) [sink {sink}]",
        n / connect.as_secs_f64(),
        n / sha.as_secs_f64(),
        connect.as_secs_f64() / sha.as_secs_f64()
    );
    // Filter headers and filter checks on the same chain.
    let mut chain = HeaderChain::new(params.clone());
    for b in headers.chunks(2000) {
        chain.connect_headers(b, NOW).expect("valid headers");
    }
    let filters: Vec<Vec<u8>> = (0..=10_000u32).map(|i| i.to_le_bytes().repeat(8)).collect();
    let hashes: Vec<FilterHash> = filters.iter().map(|f| FilterHash::hash(f)).collect();
    let start = Instant::now();
    let mut fchain = FilterHeaderChain::new();
    for _ in 0..rounds {
        fchain = FilterHeaderChain::new();
        let mut prev = FilterHeader::all_zeros();
        let mut at = 0usize;
        while at <= 10_000 {
            let stop = (at + 1999).min(10_000);
            let msg = CFHeaders {
                filter_type: 0,
                stop_hash: chain.hash_at(stop as u32).unwrap(),
                previous_filter_header: prev,
                filter_hashes: hashes[at..=stop].to_vec(),
            };
            fchain.connect_cfheaders(&msg, &chain).expect("valid filter headers");
            prev = fchain.filter_header_at(stop as u32).unwrap();
            at = stop + 1;
        }
    }
    let fh = start.elapsed();
    let start = Instant::now();
    for _ in 0..rounds {
        for (h, f) in filters.iter().enumerate() {
            let msg = CFilter { filter_type: 0, block_hash: chain.hash_at(h as u32).unwrap(), filter: f.clone() };
            fchain.check_filter(&msg, &chain).expect("valid filter");
        }
    }
    let fc = start.elapsed();
    let nf = (rounds * filters.len()) as f64;
    println!(
        "connect_cfheaders: {:.0} filter headers/s; check_filter: {:.0} filters/s (32-byte filters)",
        nf / fh.as_secs_f64(),
        nf / fc.as_secs_f64()
    );
    drop((headers, chain, fchain, filters, hashes));

    // 2. Memory of a `total`-header chain.
    // The headers are saved by the store as they come (its own memory is a few buffers).
    let dir = std::env::temp_dir().join(format!("btcpeer-chain-memory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut store, _) = ChainStore::open(&dir, params.clone()).expect("store");
    let before = LIVE.load(Ordering::Relaxed);
    let mut chain = HeaderChain::new(params.clone());
    let mut built = 0usize;
    let start = Instant::now();
    while built < total {
        let k = (total - built).min(2000);
        let hs = batch(chain.tip(), chain.time_at(chain.height()).unwrap(), k, built as u64);
        let outcome = chain.connect_headers(&hs, NOW).expect("valid headers");
        store.apply_headers(&outcome).expect("saved");
        built += k;
    }
    let took = start.elapsed();
    let live = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "{} headers (mined and connected in {:.1} s): the chain holds {:.1} MB ({} bytes, {:.1} bytes a header; heap_bytes() says {:.1} MB); peak allocated during the build {:.1} MB",
        chain.height(),
        took.as_secs_f64(),
        live as f64 / 1e6,
        live,
        live as f64 / chain.height() as f64,
        chain.heap_bytes() as f64 / 1e6,
        PEAK.load(Ordering::Relaxed) as f64 / 1e6,
    );
    // Every block is found by hash.
    let mid = chain.height() / 2;
    assert_eq!(chain.height_of(&chain.hash_at(mid).unwrap()), Some(mid));

    // Filter headers for every block of it.
    let before_f = LIVE.load(Ordering::Relaxed);
    let mut fchain = FilterHeaderChain::new();
    let mut at = 0u32;
    while at <= chain.height() {
        let stop = (at + 1999).min(chain.height());
        let msg = CFHeaders {
            filter_type: 0,
            stop_hash: chain.hash_at(stop).unwrap(),
            previous_filter_header: at
                .checked_sub(1)
                .map_or(FilterHeader::all_zeros(), |p| fchain.filter_header_at(p).unwrap()),
            filter_hashes: (at..=stop).map(|i| FilterHash::hash(&i.to_le_bytes())).collect(),
        };
        fchain.connect_cfheaders(&msg, &chain).expect("valid filter headers");
        at = stop + 1;
    }
    println!(
        "{} filter headers: {:.1} MB ({:.1} bytes a filter header); both chains together {:.1} MB",
        fchain.next_height(),
        (LIVE.load(Ordering::Relaxed) - before_f) as f64 / 1e6,
        (LIVE.load(Ordering::Relaxed) - before_f) as f64 / f64::from(fchain.next_height()),
        (LIVE.load(Ordering::Relaxed) - before) as f64 / 1e6,
    );
    drop(fchain);

    // 3. A restart: the store reloads the file, checking every header again.
    let tip = chain.tip();
    drop((chain, store));
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let start = Instant::now();
    let (_store, loaded) = ChainStore::open(&dir, params).expect("reload");
    let took = start.elapsed();
    assert_eq!(loaded.headers.tip(), tip);
    println!(
        "reload of {} headers ({:.1} MB file): {:.2} s ({:.0} headers/s), peak allocated {:.1} MB, the reloaded chain holds {:.1} MB",
        loaded.headers.height(),
        std::fs::metadata(dir.join(btcpeer_core::chain::HEADERS_FILE)).map(|m| m.len()).unwrap_or(0) as f64 / 1e6,
        took.as_secs_f64(),
        f64::from(loaded.headers.height()) / took.as_secs_f64(),
        (PEAK.load(Ordering::Relaxed) - before) as f64 / 1e6,
        (LIVE.load(Ordering::Relaxed) - before) as f64 / 1e6,
    );
    let _ = std::fs::remove_dir_all(&dir);
}
