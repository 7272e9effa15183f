//! The address book: bounds, bucket placement, determinism, eclipse resistance, selection,
//! test-before-evict, terrible addresses, and the file (round trip, every kind of bad file).

use std::net::Ipv4Addr;

use btcpeer_core::addrbook::{AddrBook, BUCKET_SIZE, Endpoint, LoadError, MAX_ENTRIES, NetKind, V2Support};
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

fn source(n: u32) -> Endpoint {
    Endpoint::new(AddrV2::Ipv4(Ipv4Addr::from(0x2000_0000u32.wrapping_add(n << 16))), 8333)
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
    let honest: Vec<_> = (2..200u32).map(|s| Endpoint::new(v4(40_000_000 + s * 65_536), 8333)).collect();
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
    let a = Endpoint::new(v4(1), 8333);
    let onion = Endpoint::new(AddrV2::TorV3([9; 32]), 8333);
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
    let peers: Vec<_> =
        (0..2_000u32).map(|i| Endpoint::new(AddrV2::Ipv4(Ipv4Addr::from(0x0c0c_0000 + i)), 8333)).collect();
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
        // Core's `ResolveCollisions_` gives the test 60 seconds before it counts as failed.
        book.resolve_collisions(later + 60);
        assert!(book.info(&old).is_some_and(|i| i.in_tried), "the test is still in flight");
        book.resolve_collisions(later + 61);
        assert!(book.info(&old).is_none_or(|i| !i.in_tried), "the failed occupant was evicted");
    }
    book.check().unwrap();
}

#[test]
fn r_n_v2_support_is_remembered() {
    let mut book = AddrBook::new([9; 32], 1);
    let p = Endpoint::new(v4(77), 8333);
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
            let peer = Endpoint::new(v4(a * 257), 8333);
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
    let some: Vec<Endpoint> = book.entries().step_by(3).map(|e| e.peer.clone()).collect();
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

/// A book with one tried entry (the occupant) and one newcomer whose move to tried collides
/// with it, the occupant's success at `occupant_good`, the newcomer's at `newcomer_good`.
fn collision(key: u8, occupant_good: u64, newcomer_good: u64) -> (AddrBook, Endpoint, Endpoint) {
    let mut book = AddrBook::new([key; 32], 1);
    // One /16: its tried entries share 8 buckets, so a collision comes within a few hundred.
    let peers: Vec<Endpoint> =
        (0..3_000u32).map(|i| Endpoint::new(AddrV2::Ipv4(Ipv4Addr::from(0x0d0d_0000 + i)), 8333)).collect();
    for (i, p) in peers.iter().enumerate() {
        book.add(&[msg(p.addr.clone(), NOW)], &source(i as u32), NOW);
    }
    let mut moved = Vec::new();
    let held: Vec<Endpoint> = peers.iter().filter(|p| book.info(p).is_some()).cloned().collect();
    for p in &held {
        book.good(p, occupant_good);
        if let Some(occupant) = book.tried_collision().map(|c| c.peer.clone()) {
            // Only this one collision and its occupant matter: the others were never good.
            let newcomer = p.clone();
            book.good(&newcomer, newcomer_good);
            assert!(book.info(&occupant).unwrap().in_tried && !book.info(&newcomer).unwrap().in_tried);
            return (book, occupant, newcomer);
        }
        moved.push(p.clone());
    }
    panic!("no collision among {} tried", moved.len());
}

fn in_tried(book: &AddrBook, p: &Endpoint) -> bool {
    book.info(p).is_some_and(|i| i.in_tried)
}

#[test]
fn r_n_test_before_evict_keeps_an_occupant_that_connected_within_four_hours() {
    // Core's `ResolveCollisions_`: `current_time - info_old.nLastSuccess < ADDRMAN_REPLACEMENT`
    // keeps the occupant, whatever its test does since.
    let (mut book, occupant, newcomer) = collision(31, NOW - 3_600, NOW);
    book.attempt_uncounted(&occupant, NOW + 10);
    for t in [NOW + 120, NOW + 45 * 60, NOW + 2 * 3_600] {
        book.resolve_collisions(t);
        assert!(in_tried(&book, &occupant), "good an hour before the collision: kept at {}", t - NOW);
    }
    assert!(!in_tried(&book, &newcomer));
    assert!(book.tried_collision().is_none(), "the move is dropped");
    book.check().unwrap();
}

#[test]
fn r_n_a_feeler_in_flight_is_not_a_failed_test() {
    // Good 5 hours ago: it must answer its test. Tried 10 s ago, no answer yet: Core gives it
    // 60 s (`current_time - info_old.nLastTry > 60`) before the newcomer replaces it.
    let (mut book, occupant, newcomer) = collision(32, NOW - 5 * 3_600, NOW);
    assert_eq!(book.tried_collision().map(|c| c.peer.clone()), Some(occupant.clone()));
    book.attempt_uncounted(&occupant, NOW + 10);
    book.resolve_collisions(NOW + 20);
    assert!(in_tried(&book, &occupant), "evicted while its feeler was in flight");
    book.resolve_collisions(NOW + 70);
    assert!(in_tried(&book, &occupant) && book.tried_collision().is_some(), "exactly 60 s: still waiting");
    book.resolve_collisions(NOW + 71);
    assert!(!in_tried(&book, &occupant) && in_tried(&book, &newcomer), "the failed test replaces it");
    assert!(book.info(&occupant).is_some(), "the occupant goes back to new");
    book.check().unwrap();

    // The same, but the feeler's handshake succeeds: the occupant stays, the move is dropped.
    let (mut book, occupant, newcomer) = collision(32, NOW - 5 * 3_600, NOW);
    book.attempt_uncounted(&occupant, NOW + 10);
    book.good(&occupant, NOW + 12);
    book.resolve_collisions(NOW + 3_600);
    assert!(in_tried(&book, &occupant) && !in_tried(&book, &newcomer));
    assert!(book.tried_collision().is_none());
}

#[test]
fn r_n_an_untested_occupant_is_replaced_only_after_the_newcomer_waited_forty_minutes() {
    // Not tried for hours and no test: Core's `current_time - info_new.nLastSuccess >
    // ADDRMAN_TEST_WINDOW` replaces it, and not sooner.
    let (mut book, occupant, newcomer) = collision(33, NOW - 6 * 3_600, NOW);
    book.resolve_collisions(NOW + 39 * 60);
    book.resolve_collisions(NOW + 40 * 60);
    assert!(in_tried(&book, &occupant), "40 minutes exactly: still waiting");
    book.resolve_collisions(NOW + 40 * 60 + 1);
    assert!(!in_tried(&book, &occupant) && in_tried(&book, &newcomer));
    book.check().unwrap();
}

#[test]
fn r_n_tried_collision_picks_among_the_pending_moves_at_random() {
    // Core's `SelectTriedCollision_`: a random element of `m_tried_collisions`.
    let mut book = AddrBook::new([34; 32], 5);
    let peers: Vec<_> =
        (0..3_000u32).map(|i| Endpoint::new(AddrV2::Ipv4(Ipv4Addr::from(0x0e0e_0000 + i)), 8333)).collect();
    for (i, p) in peers.iter().enumerate() {
        book.add(&[msg(p.addr.clone(), NOW)], &source(i as u32), NOW);
    }
    let held: Vec<Endpoint> = peers.iter().filter(|p| book.info(p).is_some()).cloned().collect();
    for p in &held {
        book.good(p, NOW);
    }
    let picked: std::collections::HashSet<Endpoint> =
        (0..200).filter_map(|_| book.tried_collision().map(|c| c.peer.clone())).collect();
    assert!(picked.len() >= 3, "{} distinct occupants offered for testing", picked.len());
}

#[test]
fn r_n_a_repeated_address_without_newer_time_gains_no_bucket() {
    // Core's `AddSingle`: `if (addr.nTime <= pinfo->nTime) return false;` — before any new
    // bucket reference. The address announced itself (no penalty), then others relay it with
    // the same time: no new information, so it stays in its one bucket.
    let mut book = AddrBook::new([35; 32], 1);
    let p = Endpoint::new(v4(4_242), 8333);
    book.add(&[msg(p.addr.clone(), NOW)], &p, NOW);
    assert_eq!(book.buckets_in_use(false), 1);
    for s in 0..200 {
        book.add(&[msg(p.addr.clone(), NOW)], &source(s), NOW + 60);
    }
    assert_eq!(book.buckets_in_use(false), 1, "relays of old news spread it over more buckets");
    // A newer time is new information: it may gain references again (at most 8).
    for s in 0..200 {
        book.add(&[msg(p.addr.clone(), NOW + 3 * 3_600 + u64::from(s))], &source(s), NOW + 4 * 3_600);
    }
    assert!((2..=8).contains(&book.buckets_in_use(false)), "{}", book.buckets_in_use(false));
    book.check().unwrap();
}

#[test]
fn r_n_an_offline_node_counts_one_failure_per_address_until_a_success() {
    // Core's `Attempt_`: a failure counts only if `m_last_count_attempt < m_last_good`.
    let mut book = AddrBook::new([36; 32], 1);
    let peers: Vec<_> = (0..20u32).map(|i| Endpoint::new(v4(i * 70_001), 8333)).collect();
    for (i, p) in peers.iter().enumerate() {
        book.add(&[msg(p.addr.clone(), NOW)], &source(i as u32), NOW);
    }
    let mut t = NOW;
    for _ in 0..6 {
        for p in &peers {
            t += 30;
            book.attempt(p, t);
        }
    }
    // Offline for an hour of dials: none marked terrible, each with one counted failure.
    let later = t + 3_600;
    for p in &peers {
        let i = book.info(p).unwrap();
        assert_eq!((i.attempts, i.last_try), (1, i.last_try.max(NOW)));
        assert!(!i.is_terrible(later), "{p:?} terrible after an outage");
    }
    assert_eq!(book.get_addr(1_000, 100, later).len(), peers.len());
    // A success anywhere: the next failure counts again.
    let other = Endpoint::new(v4(9_999_999), 8333);
    book.add(&[msg(other.addr.clone(), NOW)], &source(99), NOW);
    book.good(&other, t + 10);
    book.attempt(&peers[0], t + 20);
    book.attempt(&peers[0], t + 30);
    assert_eq!(book.info(&peers[0]).unwrap().attempts, 2);
    // An uncounted attempt (the node looks offline, or a manual peer) records the try only.
    book.good(&other, t + 40);
    book.attempt_uncounted(&peers[1], t + 50);
    assert_eq!((book.info(&peers[1]).unwrap().attempts, book.info(&peers[1]).unwrap().last_try), (1, t + 50));
    book.attempt_with(&peers[1], true, t + 60);
    assert_eq!(book.info(&peers[1]).unwrap().attempts, 2);
}

#[test]
fn r_n_a_handshake_never_refreshes_the_time_and_disconnect_does_after_twenty_minutes() {
    // Core's `Good_` ("nTime is not updated here, to avoid leaking information about
    // currently-connected peers"), `SetServices_` at the handshake, and `Connected_` at
    // `FinalizeNode`, which moves the time only when it is more than 20 minutes old.
    let mut book = AddrBook::new([37; 32], 1);
    let p = Endpoint::new(v4(31_337), 8333);
    let heard = NOW - 3 * 24 * 3_600;
    book.add(&[msg(p.addr.clone(), heard)], &p, NOW);
    book.attempt(&p, NOW);
    book.good(&p, NOW);
    book.set_services(&p, ServiceFlags::NETWORK | ServiceFlags::WITNESS);
    book.set_v2(&p, V2Support::Yes);
    let i = book.info(&p).unwrap();
    assert_eq!((i.time, i.in_tried, i.v2), (heard, true, V2Support::Yes));
    assert!(i.services.has(ServiceFlags::WITNESS));
    let answer = book.get_addr(1_000, 100, NOW + 60);
    assert_eq!(
        answer.iter().find(|a| a.addr == p.addr).map(|a| u64::from(a.time)),
        Some(heard),
        "getaddr shows a current peer"
    );
    // The disconnection, an hour later: now the time moves.
    book.connected(&p, ServiceFlags::NETWORK | ServiceFlags::WITNESS, None, NOW + 3_600);
    assert_eq!(book.info(&p).unwrap().time, NOW + 3_600);
    // Another within 20 minutes of that time: unchanged.
    book.connected(&p, ServiceFlags::NETWORK, None, NOW + 3_600 + 20 * 60);
    assert_eq!(book.info(&p).unwrap().time, NOW + 3_600);
}

#[test]
fn r_n_only_reachable_networks_are_stored_and_selected() {
    let onion = AddrV2::TorV3([5; 32]);
    let i2p = AddrV2::I2p([6; 32]);
    let cjdns = AddrV2::Cjdns("fc00::1".parse().unwrap());
    let ipv4 = v4(123_456);
    let all = [msg(onion.clone(), NOW), msg(i2p.clone(), NOW), msg(cjdns.clone(), NOW), msg(ipv4.clone(), NOW)];
    // By default every network, as before.
    let mut book = AddrBook::new([38; 32], 1);
    assert_eq!(book.add(&all, &source(1), NOW), 4);
    // Core adds only `g_reachable_nets` (ProcessMessage, ADDR) and dials only those.
    let mut clearnet = AddrBook::new([38; 32], 1).with_reachable(&[NetKind::Ipv4, NetKind::Ipv6]);
    assert_eq!(clearnet.add(&all, &source(1), NOW), 1);
    assert!(clearnet.info(&Endpoint::new(onion.clone(), 8333)).is_none());
    // A book that holds them (loaded, or made before): never selected once unreachable.
    book.set_reachable(&[NetKind::Ipv4]);
    for _ in 0..300 {
        assert_eq!(book.select(false, None, NOW).unwrap().peer.addr, ipv4);
    }
    assert!(book.select(false, Some(&[NetKind::Onion, NetKind::I2p]), NOW).is_none());
    assert_eq!(book.len(), 4, "kept, in case they become reachable again");
    book.set_reachable(&[NetKind::Ipv4, NetKind::Onion]);
    assert_eq!(book.select(false, Some(&[NetKind::Onion]), NOW).unwrap().peer.addr, onion);
}

#[test]
fn r_n_a_file_written_before_these_changes_still_loads() {
    // Written by the book as it was before issue 23 (format version 1, unchanged since): key
    // [42; 32]; 8.8.4.4 tried (tried at +10, good at +12), an onion address, and 1.2.3.4 with
    // one failed attempt, all from 9.9.9.9.
    const OLD: &str = concat!(
        "42544350424f4f4b012a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a03000000010408",
        "080404208d0900000000000000e0d45365000000000cf15365000000000cf153650000000000000000010409090909010004",
        "200707070707070707070707070707070707070707070707070707070707070707208d0900000000000000d0c65365000000",
        "0000000000000000000000000000000000000000000104090909090000010401020304208d09000000000000006083526500",
        "00000014f15365000000000000000000000000010000000104090909090000fad4d94034289177dcc54ad4d7d4b66d882030",
        "307b2247fcff446febebbfa42e",
    );
    let bytes: Vec<u8> = (0..OLD.len()).step_by(2).map(|i| u8::from_str_radix(&OLD[i..i + 2], 16).unwrap()).collect();
    let mut book = AddrBook::decode(&bytes, 1).unwrap();
    book.check().unwrap();
    assert_eq!((book.len(), book.tried_len()), (3, 1));
    let tried = book.info(&Endpoint::new(AddrV2::Ipv4(Ipv4Addr::new(8, 8, 4, 4)), 8333)).unwrap();
    assert_eq!((tried.last_try, tried.last_success, tried.in_tried), (NOW + 12, NOW + 12, true));
    let failed = book.info(&Endpoint::new(AddrV2::Ipv4(Ipv4Addr::new(1, 2, 3, 4)), 8333)).unwrap();
    assert_eq!((failed.attempts, failed.last_try), (1, NOW + 20));
    assert!(book.select(false, Some(&[NetKind::Onion]), NOW).is_some());
    assert_eq!(book.encode(), bytes, "and is written back the same");
}

#[test]
fn r_n_an_occupant_we_are_connected_to_is_marked_good_and_stays() {
    // Core's `ThreadOpenConnections`: a feeler would test an occupant we are already connected
    // to; instead `addrman.Good(addr)` marks it, so the connected peer is not evicted.
    let (mut book, occupant, newcomer) = collision(39, NOW - 6 * 3_600, NOW);
    assert_eq!(book.tried_collision().map(|c| c.peer.clone()), Some(occupant.clone()));
    book.good(&occupant, NOW + 5);
    book.resolve_collisions(NOW + 41 * 60);
    assert!(in_tried(&book, &occupant) && !in_tried(&book, &newcomer));
    assert!(book.tried_collision().is_none(), "the move is dropped");
    // Without that, the untested occupant would have gone after 40 minutes.
    let (mut book, occupant, _) = collision(39, NOW - 6 * 3_600, NOW);
    book.resolve_collisions(NOW + 41 * 60);
    assert!(!in_tried(&book, &occupant));
}

/// Issue 22: `Peer` was renamed `Endpoint`; programs written against the old names still compile
/// (with a deprecation warning) and mean the same type.
#[test]
#[allow(deprecated)]
fn the_old_names_peer_and_parse_peer_error_still_name_endpoint_types() {
    use btcpeer_core::addrbook::{ParseEndpointError, ParsePeerError, Peer};
    let old: Peer = Peer::new(v4(5), 8333);
    let new: Endpoint = old.clone();
    assert_eq!(new, old);
    let err: ParsePeerError = "not an address".parse::<Peer>().unwrap_err();
    let _: ParseEndpointError = err;
    let mut book = AddrBook::new([3; 32], 1);
    assert_eq!(book.add(&[msg(v4(6), NOW)], &old, NOW), 1);
}
