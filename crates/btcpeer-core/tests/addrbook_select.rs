//! Selection draws a bucket, then a slot, at every book size and with a network filter (Core's
//! `AddrManImpl::Select_`), so a source group that floods the book wins at most the share of the
//! non-empty buckets it reaches.
//!
//! The bound, and where it comes from: an address's new bucket is `hash(its group, its source's
//! group) % 64` mapped to one of 1,024 buckets (Core's `GetNewBucket`,
//! `ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP` = 64), so one source group reaches at most A ≤ 64 new
//! buckets whatever it sends. A selection from the new table picks a non-empty bucket uniformly
//! (Core's draw, with the empty ones skipped) and then a slot in it, so with B non-empty new
//! buckets the group wins at most A / B of new-table selections (its buckets may also hold
//! others' addresses) — 6.25 % of a full new table (64 / 1,024). `select(false, …)` takes the
//! new table half of the time when tried holds anything, and the group's addresses reach tried
//! only through our own successful connections, so its share of all selections is at most
//! A / B / 2 then, A / B when tried is empty.

use std::net::Ipv4Addr;

use btcpeer_core::addrbook::{AddrBook, Endpoint, NetKind};
use btcpeer_core::bitcoin::p2p::ServiceFlags;
use btcpeer_core::bitcoin::p2p::address::{AddrV2, AddrV2Message};
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000;

fn msg(addr: AddrV2) -> AddrV2Message {
    AddrV2Message { time: NOW as u32, services: ServiceFlags::NETWORK, addr, port: 8333 }
}

/// The attacker's source: one address, so one source group (32.1.0.0/16).
fn attacker() -> Endpoint {
    Endpoint::new(AddrV2::Ipv4(Ipv4Addr::new(32, 1, 0, 1)), 8333)
}

/// The attacker's `i`-th address, each in a /16 of its own (so they spread over all 64 buckets
/// the source group reaches).
fn attack_addr(i: u32) -> AddrV2 {
    AddrV2::Ipv4(Ipv4Addr::from(0x0b00_0000u32.wrapping_add(i.wrapping_mul(65_537))))
}

/// An honest address and its source, each in a group of its own.
fn honest(i: u32) -> (AddrV2, Endpoint) {
    let addr = AddrV2::Ipv4(Ipv4Addr::from(0x5000_0001u32.wrapping_add(i.wrapping_mul(65_539))));
    let source = Endpoint::new(AddrV2::Ipv4(Ipv4Addr::from(0x2100_0001u32.wrapping_add(i << 16))), 8333);
    (addr, source)
}

/// Floods from the attacker until it holds `want` addresses (or its buckets are full).
fn flood(book: &mut AddrBook, want: usize) -> usize {
    let mut held = 0;
    let mut i = 0;
    while held < want && i < 200_000 {
        held += book.add(&[msg(attack_addr(i))], &attacker(), NOW);
        i += 1;
    }
    held
}

/// The attacker's share of `n` selections.
fn attacker_share(book: &mut AddrBook, n: usize, networks: Option<&[NetKind]>) -> f64 {
    let a = attacker().addr;
    let wins = (0..n).filter(|_| book.select(false, networks, NOW).is_some_and(|e| e.source == a)).count();
    wins as f64 / n as f64
}

/// The bound derived above, for this book.
fn bound(book: &AddrBook) -> f64 {
    let reached = book.new_buckets_of_source(&attacker().addr) as f64;
    let in_use = book.buckets_in_use(false) as f64;
    let half = if book.tried_len() > 0 { 0.5 } else { 1.0 };
    if in_use == 0.0 { 0.0 } else { half * reached / in_use }
}

/// Sampling slack: five standard deviations of a share `p` measured over `n` draws.
fn slack(p: f64, n: usize) -> f64 {
    5.0 * (p * (1.0 - p) / n as f64).sqrt() + 0.005
}

/// The case: 2,900 addresses from one source group in a book of 4,096 won 70.8 % of
/// selections when small books were picked from uniformly; with Core's draw they win about
/// their buckets' share (64 of the ~770 non-empty buckets here, ~8 %).
#[test]
fn r_n_a_source_group_with_most_of_a_young_book_wins_only_its_bucket_share() {
    let mut book = AddrBook::new([21; 32], 3);
    assert_eq!(flood(&mut book, 2_900), 2_900);
    let mut i = 0;
    while book.len() < 4_096 {
        let (addr, source) = honest(i);
        book.add(&[msg(addr)], &source, NOW);
        i += 1;
    }
    assert!(book.new_buckets_of_source(&attacker().addr) <= 64);
    let share = attacker_share(&mut book, 4_000, None);
    let limit = bound(&book);
    assert!(limit < 0.12, "the bound itself: {limit}");
    assert!(share <= limit + slack(limit, 4_000), "the flooding group won {share} of selections, bound {limit}");
    book.check().unwrap();
}

/// With a network filter the draw is the same (Core's `Select_(new_only, networks)` skips
/// buckets holding nothing wanted), not a uniform pick among the wanted addresses.
#[test]
fn r_n_a_network_filter_still_draws_a_bucket_first() {
    let mut book = AddrBook::new([22; 32], 5);
    flood(&mut book, 2_900);
    for i in 0..1_200 {
        let (addr, source) = honest(i);
        book.add(&[msg(addr)], &source, NOW);
    }
    // Some onion addresses, so that the filter leaves something out.
    for i in 0..50u8 {
        book.add(&[msg(AddrV2::TorV3([i; 32]))], &honest(5_000 + u32::from(i)).1, NOW);
    }
    let share = attacker_share(&mut book, 4_000, Some(&[NetKind::Ipv4, NetKind::Ipv6]));
    let limit = bound(&book);
    assert!(share <= limit + slack(limit, 4_000), "filtered: the flooding group won {share}, bound {limit}");
    for _ in 0..500 {
        let e = book.select(false, Some(&[NetKind::Onion]), NOW).unwrap();
        assert!(matches!(e.peer.addr, AddrV2::TorV3(_)));
    }
}

/// A sparse book (a handful of addresses in 1,024 buckets) still selects every one of them,
/// each with its bucket's odds, and a network with a single address is found.
#[test]
fn r_n_a_sparse_book_selects_through_buckets() {
    let mut book = AddrBook::new([23; 32], 7);
    for i in 0..5 {
        let (addr, source) = honest(i);
        book.add(&[msg(addr)], &source, NOW);
    }
    book.add(&[msg(AddrV2::I2p([7; 32]))], &honest(99).1, NOW);
    assert_eq!(book.len(), 6);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..600 {
        seen.insert(book.select(false, None, NOW).unwrap().peer);
    }
    assert_eq!(seen.len(), 6, "every address is reachable by the draw");
    for _ in 0..100 {
        assert!(matches!(book.select(false, Some(&[NetKind::I2p]), NOW).unwrap().peer.addr, AddrV2::I2p(_)));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// At every book size — honest addresses from 0 to 20,000, a flood of 0 to 6,000 held
    /// addresses, some honest ones in tried — the flooding group's share of selections stays
    /// within A / B (halved when tried is not empty), the bound derived at the top of the file.
    #[test]
    fn r_n_a_flooding_source_group_wins_at_most_its_bucket_share_at_every_size(
        honest_n in prop_oneof![0u32..3_000, 0u32..20_000],
        flood_n in 1usize..6_000,
        tried_every in prop_oneof![Just(0u32), 2u32..50],
        key in any::<u8>(),
    ) {
        let mut book = AddrBook::new([key; 32], u64::from(key) + 1);
        flood(&mut book, flood_n);
        for i in 0..honest_n {
            let (addr, source) = honest(i);
            book.add(&[msg(addr.clone())], &source, NOW);
            if tried_every > 0 && i % tried_every == 0 {
                book.good(&Endpoint::new(addr, 8333), NOW);
            }
        }
        let n = 2_000;
        let share = attacker_share(&mut book, n, None);
        let limit = bound(&book);
        prop_assert!(limit <= 1.0);
        prop_assert!(share <= limit + slack(limit, n), "honest {}, held {}, share {}, bound {}", honest_n, book.len(), share, limit);
    }
}
