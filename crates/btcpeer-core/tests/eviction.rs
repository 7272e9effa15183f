//! R-N2: inbound eviction as Bitcoin Core's `SelectNodeToEvict` and
//! `ProtectEvictionCandidatesByRatio` (`src/node/eviction.cpp`), checked the way Core's
//! `src/test/net_peer_eviction_tests.cpp` checks them: random candidates, one property set up,
//! the protected peers never the one evicted.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use btcpeer_core::addrbook::NetKind;
use btcpeer_core::node::eviction::{
    CandidateId, EvictionCandidate, protect_eviction_candidates_by_ratio, select_node_to_evict,
};
use proptest::prelude::*;

/// A small seeded generator (xorshift64*), Core's `FastRandomContext{true}` in spirit.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn range(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.range(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Time zero of the tests: Core's candidates count seconds from 0.
fn base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}
fn at(secs: u64) -> Instant {
    base() + Duration::from_secs(secs)
}
fn now() -> Instant {
    at(1_000)
}

const NETWORKS: [Option<NetKind>; 6] =
    [None, Some(NetKind::Ipv4), Some(NetKind::Ipv6), Some(NetKind::Onion), Some(NetKind::I2p), Some(NetKind::Cjdns)];

/// Core's `GetRandomNodeEvictionCandidates` (`test/util/net.cpp`): every value random in 0..100.
fn random_candidates(n: u64, rng: &mut Rng) -> Vec<EvictionCandidate> {
    (0..n)
        .map(|id| {
            let mut c = EvictionCandidate::new(id, at(rng.range(100)), rng.range(100));
            c.min_ping = Some(Duration::from_micros(rng.range(100)));
            c.last_block = Some(at(rng.range(100)));
            c.last_tx = Some(at(rng.range(100)));
            c.relevant_services = rng.bool();
            c.relay_txs = rng.bool();
            c.bloom_filter = rng.bool();
            c.prefer_evict = rng.bool();
            c.is_local = rng.bool();
            c.network = NETWORKS[rng.range(NETWORKS.len() as u64) as usize];
            c
        })
        .collect()
}

/// Core's `IsProtected`: after the ratio protection half the candidates remain, none of
/// `protected` and all of `unprotected`.
fn is_protected(
    n: u64,
    setup: impl Fn(&mut EvictionCandidate),
    protected: &[CandidateId],
    unprotected: &[CandidateId],
    rng: &mut Rng,
) -> bool {
    let mut candidates = random_candidates(n, rng);
    candidates.iter_mut().for_each(&setup);
    rng.shuffle(&mut candidates);
    let size = candidates.len();
    protect_eviction_candidates_by_ratio(&mut candidates, now());
    assert_eq!(candidates.len(), size - size / 2, "half of the candidates are protected");
    let left: HashSet<CandidateId> = candidates.iter().map(|c| c.id).collect();
    protected.iter().all(|id| !left.contains(id)) && unprotected.iter().all(|id| left.contains(id))
}

/// Core's `IsEvicted`: whether the peer evicted is one of `ids`.
fn is_evicted(mut candidates: Vec<EvictionCandidate>, ids: &[CandidateId], rng: &mut Rng) -> bool {
    rng.shuffle(&mut candidates);
    select_node_to_evict(candidates, now()).is_some_and(|id| ids.contains(&id))
}

fn setup_is_evicted(n: u64, setup: impl Fn(&mut EvictionCandidate), ids: &[CandidateId], rng: &mut Rng) -> bool {
    let mut candidates = random_candidates(n, rng);
    candidates.iter_mut().for_each(setup);
    is_evicted(candidates, ids, rng)
}

fn uptime_by_id(c: &mut EvictionCandidate) {
    c.connected = at(c.id);
}

#[test]
fn r_n2_ratio_protects_half_by_longest_uptime() {
    let mut rng = Rng(1);
    let plain = |net: NetKind| {
        move |c: &mut EvictionCandidate| {
            uptime_by_id(c);
            c.is_local = false;
            c.network = Some(net);
        }
    };
    assert!(is_protected(12, plain(NetKind::Ipv4), &[0, 1, 2, 3, 4, 5], &[6, 7, 8, 9, 10, 11], &mut rng));
    // The opposite direction: the highest ids connected first.
    let reversed = |c: &mut EvictionCandidate| {
        c.connected = at(12 - c.id);
        c.is_local = false;
        c.network = Some(NetKind::Ipv6);
    };
    assert!(is_protected(12, reversed, &[6, 7, 8, 9, 10, 11], &[0, 1, 2, 3, 4, 5], &mut rng));
}

/// For each disadvantaged network alone: a quarter of the candidates are its peers, whatever
/// their uptime; with uptime by id, another quarter are the longest connected of the others.
#[test]
fn r_n2_ratio_reserves_a_quarter_for_each_disadvantaged_network() {
    let mut rng = Rng(2);
    for net in [NetKind::Onion, NetKind::I2p, NetKind::Cjdns] {
        let on = move |c: &mut EvictionCandidate| {
            c.is_local = false;
            c.network = Some(if [2, 7, 10].contains(&c.id) { net } else { NetKind::Ipv4 });
        };
        assert!(is_protected(12, on, &[2, 7, 10], &[], &mut rng), "{net:?}");
        let with_uptime = move |c: &mut EvictionCandidate| {
            uptime_by_id(c);
            c.is_local = false;
            c.network = Some(if c.id == 4 || c.id > 8 { net } else { NetKind::Ipv6 });
        };
        assert!(is_protected(12, with_uptime, &[0, 1, 2, 4, 9, 10], &[3, 5, 6, 7, 8, 11], &mut rng), "{net:?}");
    }
    let local = |c: &mut EvictionCandidate| {
        c.is_local = [1, 9, 11].contains(&c.id);
        c.network = Some(NetKind::Ipv4);
    };
    assert!(is_protected(12, local, &[1, 9, 11], &[], &mut rng));
    let local_uptime = |c: &mut EvictionCandidate| {
        uptime_by_id(c);
        c.is_local = c.id > 6;
        c.network = Some(NetKind::Ipv6);
    };
    assert!(is_protected(12, local_uptime, &[0, 1, 2, 7, 8, 9], &[3, 4, 5, 6, 10, 11], &mut rng));
}

/// Core's combined cases: the network with fewer candidates goes first, ties in Core's array
/// order (CJDNS, I2P, localhost, onion), and unused places pass to the others.
#[test]
fn r_n2_ratio_shares_places_among_networks_in_cores_order() {
    let mut rng = Rng(3);
    type Case = (u64, fn(&mut EvictionCandidate), &'static [u64], &'static [u64]);
    let cases: [Case; 10] = [
        // 1 localhost and 1 onion of 4: localhost wins the tie.
        (
            4,
            |c| {
                c.is_local = c.id == 4;
                c.network = Some(if c.id == 3 { NetKind::Onion } else { NetKind::Ipv4 });
            },
            &[0, 4],
            &[1, 2],
        ),
        // 1 localhost and 1 onion of 8: both.
        (
            8,
            |c| {
                c.is_local = c.id == 6;
                c.network = Some(if c.id == 5 { NetKind::Onion } else { NetKind::Ipv4 });
            },
            &[0, 1, 5, 6],
            &[2, 3, 4, 7],
        ),
        // 3 localhost and 3 onion of 12: 2 localhost, 1 onion.
        (
            12,
            |c| {
                c.is_local = [6, 9, 11].contains(&c.id);
                c.network = Some(if [7, 8, 10].contains(&c.id) { NetKind::Onion } else { NetKind::Ipv6 });
            },
            &[0, 1, 2, 6, 7, 9],
            &[3, 4, 5, 8, 10, 11],
        ),
        // 5 localhost and 1 onion of 16: localhost recovers the unused onion place.
        (
            16,
            |c| {
                c.is_local = c.id > 10;
                c.network = Some(if c.id == 10 { NetKind::Onion } else { NetKind::Ipv4 });
            },
            &[0, 1, 2, 3, 10, 11, 12, 13],
            &[4, 5, 6, 7, 8, 9, 14, 15],
        ),
        // 2 onion and 4 I2P of 12: onion has fewer, so both of its; 1 I2P.
        (
            12,
            |c| {
                c.is_local = false;
                c.network = Some(match c.id {
                    8 | 10 => NetKind::Onion,
                    6 | 9 | 11 | 12 => NetKind::I2p,
                    _ => NetKind::Ipv4,
                });
            },
            &[0, 1, 2, 6, 8, 10],
            &[3, 4, 5, 7, 9, 11],
        ),
        // 1 localhost, 1 I2P, 1 onion of 4: I2P first in the array.
        (
            4,
            |c| {
                c.is_local = c.id == 2;
                c.network = Some(match c.id {
                    3 => NetKind::I2p,
                    1 => NetKind::Onion,
                    _ => NetKind::Ipv6,
                });
            },
            &[0, 3],
            &[1, 2],
        ),
        // 1 localhost, 8 I2P, 1 onion of 24: 1, 4 and 1.
        (
            24,
            |c| {
                c.is_local = c.id == 12;
                c.network = Some(match c.id {
                    15..=22 => NetKind::I2p,
                    23 => NetKind::Onion,
                    _ => NetKind::Ipv6,
                });
            },
            &[0, 1, 2, 3, 4, 5, 12, 15, 16, 17, 18, 23],
            &[6, 7, 8, 9, 10, 11, 13, 14, 19, 20, 21, 22],
        ),
        // 8 localhost, 4 CJDNS, 3 onion of 24: 2 of each.
        (
            24,
            |c| {
                c.is_local = c.id > 15;
                c.network = Some(match c.id {
                    11..=14 => NetKind::Cjdns,
                    7..=9 => NetKind::Onion,
                    _ => NetKind::Ipv4,
                });
            },
            &[0, 1, 2, 3, 4, 5, 7, 8, 11, 12, 16, 17],
            &[6, 9, 10, 13, 14, 15, 18, 19, 20, 21, 22, 23],
        ),
        // 1 each of CJDNS, I2P, localhost and onion of 5: CJDNS first in the array.
        (
            5,
            |c| {
                c.is_local = c.id == 3;
                c.network = Some(match c.id {
                    4 => NetKind::Cjdns,
                    1 => NetKind::I2p,
                    2 => NetKind::Onion,
                    _ => NetKind::Ipv6,
                });
            },
            &[0, 4],
            &[1, 2, 3],
        ),
        // 6 CJDNS, 1 I2P, 1 localhost, 4 onion of 24: 2, 1, 1, 2.
        (
            24,
            |c| {
                c.is_local = c.id == 13;
                c.network = Some(match c.id {
                    18.. => NetKind::Cjdns,
                    17 => NetKind::I2p,
                    12 | 14 | 15 | 16 => NetKind::Onion,
                    _ => NetKind::Ipv6,
                });
            },
            &[0, 1, 2, 3, 4, 5, 12, 13, 14, 17, 18, 19],
            &[6, 7, 8, 9, 10, 11, 15, 16, 20, 21, 22, 23],
        ),
    ];
    for (i, (n, setup, protected, unprotected)) in cases.into_iter().enumerate() {
        let setup = |c: &mut EvictionCandidate| {
            uptime_by_id(c);
            setup(c);
        };
        assert!(is_protected(n, setup, protected, unprotected, &mut rng), "case {i}");
    }
}

/// Core's `peer_eviction_test`: for every size from 0 to 199, each protection's peers are never
/// the one evicted.
#[test]
fn r_n2_each_protection_category_is_never_evicted() {
    let mut rng = Rng(4);
    for n in 0..200u64 {
        // The 4 highest keyed network groups.
        assert!(!setup_is_evicted(n, |c| c.keyed_net_group = n - c.id, &[0, 1, 2, 3], &mut rng), "group, {n}");
        // The 8 lowest pings.
        let ping = |c: &mut EvictionCandidate| c.min_ping = Some(Duration::from_micros(c.id));
        assert!(!setup_is_evicted(n, ping, &[0, 1, 2, 3, 4, 5, 6, 7], &mut rng), "ping, {n}");
        // The 4 most recent novel transactions.
        let tx = |c: &mut EvictionCandidate| c.last_tx = Some(at(n - c.id));
        assert!(!setup_is_evicted(n, tx, &[0, 1, 2, 3], &mut rng), "tx, {n}");
        // Up to 8 block-relay-only peers with the most recent novel blocks.
        let block_relay = |c: &mut EvictionCandidate| {
            c.last_block = Some(at(n - c.id));
            if c.id <= 7 {
                c.relay_txs = false;
                c.relevant_services = true;
            }
        };
        assert!(!setup_is_evicted(n, block_relay, &[0, 1, 2, 3, 4, 5, 6, 7], &mut rng), "block-relay, {n}");
        // The 4 most recent novel blocks.
        let block = |c: &mut EvictionCandidate| c.last_block = Some(at(n - c.id));
        assert!(!setup_is_evicted(n, block, &[0, 1, 2, 3], &mut rng), "block, {n}");
        // The two block protections together: 8 + 4.
        let both: Vec<u64> = (0..12).collect();
        assert!(!setup_is_evicted(n, block_relay, &both, &mut rng), "both blocks, {n}");
        // All of the above: 4 + 8 + 4 + 4.
        let all = |c: &mut EvictionCandidate| {
            c.keyed_net_group = n - c.id;
            c.min_ping = Some(Duration::from_micros(c.id));
            c.last_tx = Some(at(n - c.id));
            c.last_block = Some(at(n - c.id));
        };
        let twenty: Vec<u64> = (0..20).collect();
        assert!(!setup_is_evicted(n, all, &twenty, &mut rng), "all, {n}");
        // 29 or more random candidates: someone is evicted; 20 or fewer: nobody.
        if n >= 29 {
            assert!(select_node_to_evict(random_candidates(n, &mut rng), now()).is_some(), "{n}");
        }
        if n <= 20 {
            assert!(select_node_to_evict(random_candidates(n, &mut rng), now()).is_none(), "{n}");
        }
    }
}

/// Plain candidates: each in its own group, the same ping, connected one a second, nothing relayed.
fn plain(n: u64) -> Vec<EvictionCandidate> {
    (0..n)
        .map(|id| {
            let mut c = EvictionCandidate::new(id, at(id), 1_000 + id);
            c.min_ping = Some(Duration::from_millis(50));
            c.network = Some(NetKind::Ipv4);
            c
        })
        .collect()
}

#[test]
fn r_n2_the_youngest_of_the_most_connected_group_is_evicted() {
    // 40 peers; 27, 28, 29, 30 share a group (low key, so not protected by group).
    let mut peers = plain(40);
    for p in &mut peers[27..31] {
        p.keyed_net_group = 5;
    }
    assert_eq!(select_node_to_evict(peers.clone(), now()), Some(30));
    // Two groups of the same size: the one whose youngest member is younger goes.
    for p in &mut peers[31..35] {
        p.keyed_net_group = 6;
    }
    // Protected: 39..36 by group, 0..7 ping, 8..11 tx, 12..15 block, then half of 35..16 by uptime.
    assert_eq!(select_node_to_evict(peers.clone(), now()), Some(34));
    // Make group 5 larger: it is chosen, youngest member first.
    peers[26].keyed_net_group = 5;
    assert_eq!(select_node_to_evict(peers, now()), Some(30));
}

#[test]
fn r_n2_without_a_shared_group_the_youngest_unprotected_peer_is_evicted() {
    // 4 by group (39..36), 8 by ping (0..7), 4 by tx (8..11), 4 by block (12..15), half of the
    // 20 left by uptime (16..25): the youngest of 26..35 goes.
    assert_eq!(select_node_to_evict(plain(40), now()), Some(35));
}

#[test]
fn r_n2_a_discouraged_peer_is_evicted_first_unless_protected() {
    let mut peers = plain(40);
    for p in &mut peers[27..31] {
        p.keyed_net_group = 5;
    }
    // 26 is discouraged and unprotected: it goes, though group 5 is the largest.
    peers[26].prefer_evict = true;
    assert_eq!(select_node_to_evict(peers.clone(), now()), Some(26));
    // Several discouraged: the choice among them follows the group rule.
    peers[28].prefer_evict = true;
    peers[29].prefer_evict = true;
    assert_eq!(select_node_to_evict(peers.clone(), now()), Some(29));
    // A discouraged peer protected by another measure (lowest ping) is kept.
    let mut peers = plain(40);
    peers[3].prefer_evict = true;
    peers[3].min_ping = Some(Duration::from_micros(1));
    assert_eq!(select_node_to_evict(peers, now()), Some(35));
}

#[test]
fn r_n2_noban_and_outbound_peers_are_never_evicted() {
    let mut peers = plain(40);
    for p in &mut peers[27..31] {
        p.keyed_net_group = 5;
        p.noban = true;
    }
    let evicted = select_node_to_evict(peers.clone(), now()).unwrap();
    assert!(!(27..31).contains(&evicted), "{evicted}");
    // Noban peers are taken out before the protections: 36 candidates are left, so 35 goes.
    assert_eq!(evicted, 35);
    peers[35].inbound = false;
    assert_ne!(select_node_to_evict(peers.clone(), now()), Some(35));
    for p in &mut peers {
        p.noban = true;
    }
    assert_eq!(select_node_to_evict(peers, now()), None);
}

#[test]
fn r_n2_fewer_candidates_than_protections_evict_nobody() {
    for n in 0..=20 {
        assert_eq!(select_node_to_evict(plain(n), now()), None, "{n}");
    }
    // 21: 20 protected by the measures (20..17 by group, 0..7 ping, 8..11 tx, 12..15 block),
    // then half of one (none) by uptime: the one left goes.
    assert_eq!(select_node_to_evict(plain(21), now()), Some(16));
}

#[test]
fn r_n2_times_count_in_whole_seconds_as_core_does() {
    // Two peers' last blocks fall in the same second: a tie, so relevant services decide (Core's
    // `CompareNodeBlockTime` fall-through), not the 800 ms between them.
    let mut peers = plain(30);
    for p in &mut peers {
        p.relay_txs = true; // nobody is block-relay-only
    }
    for p in &mut peers[12..15] {
        p.last_block = Some(at(600 + p.id));
    }
    peers[20].last_block = Some(at(500) + Duration::from_millis(900));
    peers[21].last_block = Some(at(500) + Duration::from_millis(100));
    peers[21].relevant_services = true;
    // Both discouraged: whichever the block protection leaves is the one evicted.
    peers[20].prefer_evict = true;
    peers[21].prefer_evict = true;
    // Protected: 29..26 by group, 0..7 by ping, 8..11 by tx, 12..14 and one of 20, 21 by block.
    assert_eq!(select_node_to_evict(peers.clone(), now()), Some(20));
    // A second apart, the more recent block wins.
    peers[21].last_block = Some(at(499));
    assert_eq!(select_node_to_evict(peers, now()), Some(21));
}

fn arb_candidates() -> impl Strategy<Value = Vec<EvictionCandidate>> {
    let one = (
        0u64..200,
        proptest::option::of(0u64..100),
        proptest::option::of(0u64..200),
        proptest::option::of(0u64..200),
        0u64..8,
        any::<[bool; 7]>(),
        0usize..NETWORKS.len(),
    );
    proptest::collection::vec(one, 0..80).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(id, (connected, ping, block, tx, group, f, net))| {
                let mut c = EvictionCandidate::new(id as u64, at(connected), group);
                c.min_ping = ping.map(Duration::from_micros);
                c.last_block = block.map(at);
                c.last_tx = tx.map(at);
                [c.relevant_services, c.relay_txs, c.bloom_filter, c.prefer_evict, c.is_local, c.noban] =
                    [f[0], f[1], f[2], f[3], f[4], f[5]];
                c.inbound = f[6] || id % 5 != 0;
                c.network = NETWORKS[net];
                c
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn r_n2_the_evicted_peer_is_an_inbound_candidate_without_noban_and_the_choice_is_deterministic(
        candidates in arb_candidates(),
        seed in any::<u64>(),
    ) {
        let evicted = select_node_to_evict(candidates.clone(), now());
        if let Some(id) = evicted {
            let c = candidates.iter().find(|c| c.id == id);
            prop_assert!(c.is_some_and(|c| !c.noban && c.inbound), "{id}");
        }
        // At most 28 are protected before the ratio, which protects at most half of the rest.
        let eligible = candidates.iter().filter(|c| !c.noban && c.inbound).count();
        if eligible <= 20 {
            prop_assert_eq!(evicted, None);
        }
        if eligible >= 29 {
            prop_assert!(evicted.is_some());
        }
        let mut shuffled = candidates.clone();
        Rng(seed | 1).shuffle(&mut shuffled);
        prop_assert_eq!(select_node_to_evict(shuffled, now()), evicted);
    }
}
