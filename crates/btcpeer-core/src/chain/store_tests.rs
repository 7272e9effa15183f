//! Crash tests of the chain store: every truncation and every bit flip of its files.

use std::path::PathBuf;

use bitcoin::bip158::{FilterHash, FilterHeader};
use bitcoin::hashes::Hash;
use bitcoin::p2p::message_filter::CFHeaders;

use super::filters::FilterHeaderChain;
use super::headers::HeaderChain;
use super::params::ChainParams;
use super::store::{ChainStore, FILTER_HEADERS_FILE, HEADERS_FILE, StoreError};
use super::testutil::{NOW, extend};

const PREFIX: usize = 45;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("btcpeer-chainstore-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn params() -> ChainParams {
    ChainParams::new(bitcoin::Network::Regtest)
}

/// Saves `n` headers and their filter headers in `d`; returns the chains as built in memory.
fn build(d: &std::path::Path, n: usize) -> (HeaderChain, FilterHeaderChain) {
    let (mut store, loaded) = ChainStore::open(d, params()).unwrap();
    let mut chain = loaded.headers;
    let mut filters = loaded.filter_headers;
    let hs = extend(chain.tip(), chain.time_at(0).unwrap(), n, 600, 0x207f_ffff, 1);
    for batch in hs.chunks(7) {
        let out = chain.connect_headers(batch, NOW).unwrap();
        store.apply_headers(&out).unwrap();
    }
    let mut start = 0u32;
    while start <= n as u32 {
        let stop = (start + 1999).min(n as u32);
        let msg = CFHeaders {
            filter_type: 0,
            stop_hash: chain.hash_at(stop).unwrap(),
            previous_filter_header: start
                .checked_sub(1)
                .map_or(FilterHeader::all_zeros(), |p| filters.filter_header_at(p).unwrap()),
            filter_hashes: (start..=stop).map(|i| FilterHash::hash(&i.to_le_bytes())).collect(),
        };
        let out = filters.connect_cfheaders(&msg, &chain).unwrap();
        store.apply_filter_headers(&out).unwrap();
        start = stop + 1;
    }
    (chain, filters)
}

#[test]
fn a_reopened_store_resumes_where_it_was() {
    let d = dir("resume");
    let (chain, filters) = build(&d, 30);
    let (_store, loaded) = ChainStore::open(&d, params()).unwrap();
    assert_eq!(loaded.headers.height(), 30);
    assert_eq!(loaded.headers.tip(), chain.tip());
    assert_eq!(loaded.filter_headers.height(), Some(30));
    assert_eq!(loaded.filter_headers.filter_header_at(17), filters.filter_header_at(17));
    assert!(loaded.repairs.is_empty(), "{:?}", loaded.repairs);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn every_truncation_of_either_file_loads_a_prefix_of_the_chain() {
    let d = dir("truncate");
    let (chain, filters) = build(&d, 12);
    for file in [HEADERS_FILE, FILTER_HEADERS_FILE] {
        let record = if file == HEADERS_FILE { 84 } else { 36 };
        let full = std::fs::read(d.join(file)).unwrap();
        let other = if file == HEADERS_FILE { FILTER_HEADERS_FILE } else { HEADERS_FILE };
        let other_full = std::fs::read(d.join(other)).unwrap();
        for len in 0..full.len() {
            let t = dir("truncate-one");
            std::fs::create_dir_all(&t).unwrap();
            std::fs::write(t.join(file), &full[..len]).unwrap();
            std::fs::write(t.join(other), &other_full).unwrap();
            let (_s, loaded) = ChainStore::open(&t, params()).unwrap();
            let records = len.saturating_sub(PREFIX) / record;
            if file == HEADERS_FILE {
                let h = loaded.headers.height();
                assert_eq!(h as usize, records, "len {len}");
                assert_eq!(loaded.headers.tip(), chain.hash_at(h).unwrap());
                // Filter headers never above the header chain.
                assert_eq!(loaded.filter_headers.height(), Some(h));
            } else {
                assert_eq!(loaded.filter_headers.next_height() as usize, records, "len {len}");
                assert_eq!(loaded.headers.height(), 12);
                if let Some(h) = loaded.filter_headers.height() {
                    assert_eq!(loaded.filter_headers.filter_header_at(h), filters.filter_header_at(h));
                }
            }
            // A torn tail was cut: the file now ends at a record boundary, and reopening
            // repairs nothing more.
            let (_s, again) = ChainStore::open(&t, params()).unwrap();
            assert!(again.repairs.is_empty(), "len {len}: {:?}", again.repairs);
            let _ = std::fs::remove_dir_all(&t);
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn every_bit_flip_loads_a_valid_prefix_and_keeps_a_corrupt_file_aside() {
    let d = dir("flip");
    let (chain, filters) = build(&d, 6);
    for file in [HEADERS_FILE, FILTER_HEADERS_FILE] {
        let record = if file == HEADERS_FILE { 84 } else { 36 };
        let full = std::fs::read(d.join(file)).unwrap();
        let other = if file == HEADERS_FILE { FILTER_HEADERS_FILE } else { HEADERS_FILE };
        let other_full = std::fs::read(d.join(other)).unwrap();
        let records = (full.len() - PREFIX) / record;
        for byte in 0..full.len() {
            let t = dir("flip-one");
            std::fs::create_dir_all(&t).unwrap();
            let mut bad = full.clone();
            bad[byte] ^= 0x10;
            std::fs::write(t.join(file), &bad).unwrap();
            std::fs::write(t.join(other), &other_full).unwrap();
            let (_s, loaded) = ChainStore::open(&t, params()).unwrap();
            let hit = if byte < PREFIX { None } else { Some((byte - PREFIX) / record) };
            // Records before the flipped one are kept.
            let kept = hit.unwrap_or(0);
            let aside = t.join(format!("{file}.corrupt")).exists();
            if file == HEADERS_FILE {
                assert_eq!(loaded.headers.height() as usize, kept, "byte {byte}");
                assert_eq!(loaded.headers.tip(), chain.hash_at(kept as u32).unwrap());
            } else {
                assert_eq!(loaded.filter_headers.next_height() as usize, kept, "byte {byte}");
                if let Some(h) = loaded.filter_headers.height() {
                    assert_eq!(loaded.filter_headers.filter_header_at(h), filters.filter_header_at(h));
                }
            }
            // The last record is taken as torn; anything earlier is corruption, kept aside.
            let is_last = hit == Some(records - 1);
            assert_eq!(aside, !is_last, "byte {byte}");
            assert!(
                loaded.repairs.iter().any(|r| r.contains(&format!("{file}:"))),
                "byte {byte}: {:?}",
                loaded.repairs
            );
            let _ = std::fs::remove_dir_all(&t);
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_reorg_is_saved_and_filter_headers_above_the_fork_are_dropped() {
    let d = dir("reorg");
    let (_chain, _filters) = build(&d, 10);
    let (mut store, loaded) = ChainStore::open(&d, params()).unwrap();
    let mut chain = loaded.headers;
    let fork = extend(chain.hash_at(6).unwrap(), chain.time_at(6).unwrap(), 5, 601, 0x207f_ffff, 9);
    let out = chain.connect_headers(&fork, NOW).unwrap();
    assert_eq!(out.fork_height(), Some(6));
    store.apply_headers(&out).unwrap();
    drop(store);
    let (_store, loaded) = ChainStore::open(&d, params()).unwrap();
    assert_eq!(loaded.headers.height(), 11);
    assert_eq!(loaded.headers.tip(), fork[4].block_hash());
    assert_eq!(loaded.filter_headers.height(), Some(6));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_header_that_fails_the_checks_on_reload_ends_the_chain_there() {
    let d = dir("invalid");
    build(&d, 8);
    // Rewrite record 5 (height 6) with an unmined header and a valid checksum: the checks,
    // not the checksum, catch it.
    let path = d.join(HEADERS_FILE);
    let mut data = std::fs::read(&path).unwrap();
    let at = PREFIX + 5 * 84;
    let mut header: bitcoin::block::Header = bitcoin::consensus::deserialize(&data[at..at + 80]).unwrap();
    header.time = header.time.wrapping_sub(1_000_000_000);
    let body = bitcoin::consensus::serialize(&header);
    data[at..at + 80].copy_from_slice(&body);
    let mut engine = bitcoin::hashes::sha256d::Hash::engine();
    bitcoin::hashes::HashEngine::input(&mut engine, &6u64.to_le_bytes());
    bitcoin::hashes::HashEngine::input(&mut engine, &body);
    let sum = bitcoin::hashes::sha256d::Hash::from_engine(engine).to_byte_array();
    data[at + 80..at + 84].copy_from_slice(&sum[..4]);
    std::fs::write(&path, &data).unwrap();
    let (_s, loaded) = ChainStore::open(&d, params()).unwrap();
    assert_eq!(loaded.headers.height(), 5);
    assert!(d.join(format!("{HEADERS_FILE}.corrupt")).exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_file_of_another_network_is_refused_and_left_alone() {
    let d = dir("other");
    build(&d, 3);
    let before = std::fs::read(d.join(HEADERS_FILE)).unwrap();
    let err = ChainStore::open(&d, ChainParams::new(bitcoin::Network::Signet)).unwrap_err();
    assert!(matches!(err, StoreError::OtherChain { .. }), "{err}");
    assert_eq!(std::fs::read(d.join(HEADERS_FILE)).unwrap(), before);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn outcomes_applied_out_of_order_are_refused() {
    let d = dir("order");
    let (mut store, loaded) = ChainStore::open(&d, params()).unwrap();
    let mut chain = loaded.headers;
    let hs = extend(chain.tip(), chain.time_at(0).unwrap(), 4, 600, 0x207f_ffff, 1);
    let first = chain.connect_headers(&hs[..2], NOW).unwrap();
    let second = chain.connect_headers(&hs[2..], NOW).unwrap();
    assert!(matches!(store.apply_headers(&second), Err(StoreError::OutOfOrder(_))));
    store.apply_headers(&first).unwrap();
    store.apply_headers(&second).unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_long_file_loads_batch_by_batch_and_corruption_in_a_later_batch_keeps_what_is_before() {
    let d = dir("long");
    let (chain, _filters) = build(&d, 4500);
    let (_s, loaded) = ChainStore::open(&d, params()).unwrap();
    assert_eq!(loaded.headers.tip(), chain.tip());
    assert_eq!(loaded.filter_headers.height(), Some(4500));
    drop(_s);
    // Flip a bit in the record of height 3001 (third batch of the scan).
    let path = d.join(HEADERS_FILE);
    let mut data = std::fs::read(&path).unwrap();
    data[PREFIX + 3000 * 84 + 10] ^= 1;
    std::fs::write(&path, &data).unwrap();
    let (_s, loaded) = ChainStore::open(&d, params()).unwrap();
    assert_eq!(loaded.headers.height(), 3000);
    assert_eq!(loaded.headers.tip(), chain.hash_at(3000).unwrap());
    assert_eq!(loaded.filter_headers.height(), Some(3000));
    assert!(d.join(format!("{HEADERS_FILE}.corrupt")).exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_saved_header_is_read_back_by_height() {
    let d = dir("read");
    let (chain, _) = build(&d, 20);
    let (mut store, _) = ChainStore::open(&d, params()).unwrap();
    for h in 1..=20 {
        assert_eq!(store.read_header(h).unwrap().map(|x| x.block_hash()), chain.hash_at(h));
    }
    assert_eq!(store.read_header(0).unwrap(), None);
    assert_eq!(store.read_header(21).unwrap(), None);
    // Appending after a read still appends at the end.
    let mut chain = chain;
    let more = extend(chain.tip(), chain.time_at(20).unwrap(), 2, 600, 0x207f_ffff, 5);
    let out = chain.connect_headers(&more, NOW).unwrap();
    store.read_header(3).unwrap();
    store.apply_headers(&out).unwrap();
    assert_eq!(store.read_header(22).unwrap().map(|x| x.block_hash()), Some(more[1].block_hash()));
    drop(store);
    let (_s, loaded) = ChainStore::open(&d, params()).unwrap();
    assert_eq!(loaded.headers.height(), 22);
    let _ = std::fs::remove_dir_all(&d);
}
