//! The address book: bounds, bucket placement, determinism, eclipse resistance, selection,
//! test-before-evict, terrible addresses, and the file (round trip, every kind of bad file).

use std::net::Ipv4Addr;

use btcpeer_core::addrbook::{AddrBook, BUCKET_SIZE, LoadError, MAX_ENTRIES, NetKind, Peer, V2Support};
use btcpeer_core::bitcoin::p2p::ServiceFlags;
use btcpeer_core::bitcoin::p2p::address::{AddrV2, AddrV2Message};
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000;

fn v4(n: u32) -> AddrV2 {
    // Routable addresses spread over many /16s: 11.0.0.0 upwards.
    AddrV2::Ipv4(Ipv4Addr::from(0x0b00_0000u32.wrapping_add(n)))
}

fn msg(addr: AddrV2, time: u64) -> AddrV2Message {
    AddrV2Message { time: time as u32, services: ServiceFlags::NETWORK, addr, port: 8333 }
}

fn source(n: u32) -> Peer {
    Peer::new(AddrV2::Ipv4(Ipv4Addr::from(0x2000_0000u32.wrapping_add(n << 16))), 8333)
}

#[test]
fn r_n_millions_of_addresses_from_thousands_of_sources_stay_bounded() {
    let mut book = AddrBook::new([1; 32], 7);
    let mut n = 0u32;
    for s in 0..2_000u32 {
        let batch: Vec<_> = (0..1_000)
            .map(|_| {
                n = n.wrapping_add(7_919);
                msg(v4(n), NOW)
            })
            .collect();
        book.add(&batch, &source(s), NOW);
    }
    assert!(book.len() <= MAX_ENTRIES);
    assert!(book.new_len() <= 1_024 * BUCKET_SIZE);
    // 2,000,000 offered: the new table is close to full, and never over.
    assert!(book.len() > 50_000, "{}", book.len());
    book.check().unwrap();
}

#[test]
fn r_n_one_source_fills_at_most_its_share_of_the_new_table() {
    let mut book = AddrBook::new([2; 32], 1);
    let attacker = source(1);
    let flood: Vec<_> = (0..100_000).map(|i| msg(v4(i * 13), NOW)).collect();
    book.add(&flood, &attacker, NOW);
    // 64 buckets per source group (Core's ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP), 64 slots each.
    assert!(book.new_buckets_of_source(&attacker.addr) <= 64);
    assert!(book.new_len() <= 64 * BUCKET_SIZE, "{}", book.new_len());
    // Honest sources, each with an address of its own group, still get in.
    let honest: Vec<_> = (2..200u32).map(|s| Peer::new(v4(40_000_000 + s * 65_536), 8333)).collect();
    for (s, p) in (2..200u32).zip(&honest) {
        book.add(&[msg(p.addr.clone(), NOW)], &source(s), NOW);
    }
    let admitted = honest.iter().filter(|p| book.info(p).is_some()).count();
    assert!(admitted >= 190, "{admitted} of 198 honest addresses admitted");
    book.check().unwrap();
}

#[test]
fn r_n_a_fixed_key_and_seed_give_the_same_book() {
    let build = || {
        let mut book = AddrBook::new([3; 32], 9);
        for s in 0..50 {
            let batch: Vec<_> = (0..500).map(|i| msg(v4(s * 1_000 + i * 31), NOW - u64::from(i))).collect();
            book.add(&batch, &source(s), NOW);
        }
        book.encode()
    };
    assert_eq!(build(), build());
    let mut other = AddrBook::new([4; 32], 9);
    other.add(&[msg(v4(1), NOW)], &source(1), NOW);
    assert_ne!(build().get(9..41), other.encode().get(9..41), "the key is part of the file");
}

#[test]
fn r_n_unroutable_addresses_only_when_allowed() {
    let local = msg(AddrV2::Ipv4(Ipv4Addr::LOCALHOST), NOW);
    let private = msg(AddrV2::Ipv4(Ipv4Addr::new(192, 168, 1, 2)), NOW);
    let mut book = AddrBook::new([5; 32], 1);
    assert_eq!(book.add(&[local.clone(), private.clone()], &source(1), NOW), 0);
    let mut book = AddrBook::new([5; 32], 1).allow_local(true);
    assert_eq!(book.add(&[local, private], &source(1), NOW), 2);
}

#[test]
fn r_n_terrible_addresses_are_left_out_of_getaddr_and_getaddr_is_bounded() {
    let mut book = AddrBook::new([6; 32], 1);
    let fresh: Vec<_> = (0..1_000).map(|i| msg(v4(i * 65_537), NOW)).collect();
    book.add(&fresh, &source(1), NOW);
    let stale: Vec<_> = (0..100).map(|i| msg(v4(90_000_000 + i * 65_537), NOW - 40 * 24 * 3600)).collect();
    book.add(&stale, &source(2), NOW);
    let total = book.len();
    let answer = book.get_addr(1_000, 23, NOW);
    assert_eq!(answer.len(), total * 23 / 100);
    assert!(answer.iter().all(|a| u64::from(a.time) > NOW - 30 * 24 * 3600), "no address older than 30 days");
    assert!(book.get_addr(10, 100, NOW).len() == 10);
}

#[test]
fn r_n_select_prefers_what_was_not_just_tried_and_honours_networks() {
    let mut book = AddrBook::new([7; 32], 3);
    let a = Peer::new(v4(1), 8333);
    let onion = Peer::new(AddrV2::TorV3([9; 32]), 8333);
    book.add(&[msg(a.addr.clone(), NOW), msg(onion.addr.clone(), NOW)], &source(1), NOW);
    let picked = book.select(false, Some(&[NetKind::Onion]), NOW).unwrap();
    assert_eq!(picked.peer, onion);
    book.attempt(&onion, NOW);
    // Just tried: a hundred times less likely than the other, so the other wins nearly always.
    let others = (0..200).filter(|_| book.select(false, None, NOW).unwrap().peer == a).count();
    assert!(others > 150, "{others}");
    assert!(book.select(false, Some(&[NetKind::I2p]), NOW).is_none());
}

#[test]
fn r_n_good_moves_to_tried_with_test_before_evict() {
    let mut book = AddrBook::new([8; 32], 5);
    // One /16: its tried entries share 8 buckets (512 slots), so 2,000 good ones collide.
    let peers: Vec<_> = (0..2_000u32).map(|i| Peer::new(AddrV2::Ipv4(Ipv4Addr::from(0x0c0c_0000 + i)), 8333)).collect();
    for (i, p) in peers.iter().enumerate() {
        book.add(&[msg(p.addr.clone(), NOW)], &source(i as u32), NOW);
    }
    let added: Vec<_> = peers.iter().filter(|p| book.info(p).is_some()).cloned().collect();
    for p in &added {
        book.attempt(p, NOW);
        book.good(p, NOW);
    }
    assert!(book.tried_len() <= 8 * BUCKET_SIZE, "{}", book.tried_len());
    assert!(book.tried_len() > 0);
    let occupant = book.tried_collision().expect("a collision waits").peer.clone();
    assert!(book.info(&occupant).unwrap().in_tried);
    // The occupant answered recently: it stays.
    book.resolve_collisions(NOW + 60);
    assert!(book.info(&occupant).unwrap().in_tried);
    book.check().unwrap();
    // Hours later, the occupant is tried and fails; the newcomer that waited replaces it.
    let later = NOW + 5 * 3600;
    for p in &added {
        book.good(p, NOW);
    }
    if let Some(old) = book.tried_collision().map(|c| c.peer.clone()) {
        book.attempt(&old, later);
        book.resolve_collisions(later + 60);
        assert!(book.info(&old).is_none_or(|i| !i.in_tried), "the failed occupant was evicted");
    }
    book.check().unwrap();
}

#[test]
fn r_n_v2_support_is_remembered() {
    let mut book = AddrBook::new([9; 32], 1);
    let p = Peer::new(v4(77), 8333);
    let mut m = msg(p.addr.clone(), NOW);
    m.services |= ServiceFlags::P2P_V2;
    book.add(&[m], &source(1), NOW);
    assert_eq!(book.info(&p).unwrap().v2, V2Support::Yes);
    book.connected(&p, ServiceFlags::NETWORK, Some(false), NOW);
    assert_eq!(book.info(&p).unwrap().v2, V2Support::Failed, "the next dial goes straight to v1");
}

#[test]
fn r_n_the_file_round_trips_and_every_bad_file_is_a_typed_error() {
    let dir = std::env::temp_dir().join(format!("btcpeer-book-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("peers.book");
    let mut book = AddrBook::new([10; 32], 1);
    for s in 0..20 {
        let batch: Vec<_> = (0..100).map(|i| msg(v4(s * 10_000 + i * 97), NOW)).collect();
        book.add(&batch, &source(s), NOW);
    }
    let some = book.entries().next().unwrap().peer.clone();
    book.attempt(&some, NOW);
    book.good(&some, NOW);
    book.save(&path).unwrap();
    let loaded = AddrBook::load(&path, 1).unwrap();
    assert_eq!(loaded.len(), book.len());
    assert_eq!(loaded.tried_len(), 1);
    assert_eq!(loaded.info(&some), book.info(&some));
    loaded.check().unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let bad = |data: &[u8]| {
        std::fs::write(&path, data).unwrap();
        match AddrBook::load(&path, 1) {
            Err(LoadError::Corrupt { path: p, problem }) => {
                assert_eq!(p, path);
                problem
            }
            other => panic!("{other:?}"),
        }
    };
    assert!(bad(&bytes[..bytes.len() / 2]).contains("checksum"));
    let mut flipped = bytes.clone();
    flipped[100] ^= 1;
    assert!(bad(&flipped).contains("checksum"));
    assert!(bad(b"not a book at all, just some text....................").contains("magic"));
    assert!(bad(&[]).contains("truncated"));
    assert!(matches!(AddrBook::load(&dir.join("missing"), 1), Err(LoadError::Io { .. })));
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #[test]
    fn r_n_decoding_any_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = AddrBook::decode(&data, 1);
    }

    #[test]
    fn r_n_random_operations_keep_the_invariants(ops in proptest::collection::vec((0u8..4, 0u32..5_000, 0u32..50), 1..400)) {
        let mut book = AddrBook::new([11; 32], 2);
        let mut t = NOW;
        for (op, a, s) in ops {
            t += 30;
            let peer = Peer::new(v4(a * 257), 8333);
            match op {
                0 => { book.add(&[msg(peer.addr.clone(), t)], &source(s), t); }
                1 => book.attempt(&peer, t),
                2 => book.good(&peer, t),
                _ => book.resolve_collisions(t),
            }
        }
        prop_assert!(book.check().is_ok(), "{:?}", book.check());
        let again = AddrBook::decode(&book.encode(), 2).unwrap();
        prop_assert!(again.check().is_ok());
        prop_assert!(again.len() <= book.len());
    }
}

#[test]
fn r_n_select_on_a_large_book_draws_from_both_tables_as_core() {
    // Past 4,096 candidates, `select` draws a bucket and a position as Core does.
    let mut book = AddrBook::new([4; 32], 11);
    let mut n = 0u32;
    for s in 0..400u32 {
        let batch: Vec<_> = (0..50)
            .map(|_| {
                n = n.wrapping_add(104_729);
                msg(v4(n), NOW)
            })
            .collect();
        book.add(&batch, &source(s), NOW);
    }
    let some: Vec<Peer> = book.entries().step_by(3).map(|e| e.peer.clone()).collect();
    for p in &some {
        book.good(p, NOW);
    }
    assert!(book.len() > 8_000 && book.tried_len() > 1_000, "{} {}", book.len(), book.tried_len());
    let (mut tried, mut new) = (0, 0);
    for _ in 0..2_000 {
        let e = book.select(false, None, NOW).expect("a large book always has one");
        assert_eq!(book.info(&e.peer).map(|i| i.in_tried), Some(e.in_tried), "an entry of the book");
        if e.in_tried { tried += 1 } else { new += 1 }
    }
    // Even odds between the tables (Core's 50 % bias), whatever their sizes.
    assert!((700..=1_300).contains(&tried), "tried {tried}, new {new}");
    for _ in 0..500 {
        assert!(!book.select(true, None, NOW).expect("new entries").in_tried, "new_only");
    }
    // A just-tried address is far less likely than the rest.
    let target = book.entries().find(|e| !e.in_tried).map(|e| e.peer.clone()).unwrap();
    book.attempt(&target, NOW);
    let hits = (0..20_000).filter(|_| book.select(true, None, NOW).is_some_and(|e| e.peer == target)).count();
    assert!(hits <= 3, "{hits}");
}
