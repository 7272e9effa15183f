//! NodeCore against Core's connection policy (issue 23, items 7–12 and the book's rules wired):
//! who goes first among unfinished inbound connections, random keys, the address relay timers,
//! the getaddr cache's key, bad ports, outbound group diversity, reachable networks, the book's
//! times and counted failures, collisions with connected peers. Time is an argument throughout.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use btcpeer_core::addrbook::{AddrBook, Endpoint, group};
use btcpeer_core::bitcoin::p2p::address::{AddrV2, AddrV2Message};
use btcpeer_core::node::{Action, Admission, ConnId, ConnKind, NodeCore, NodeSettings};

mod common;
use common::*;

// Item 8. Core: `CConnman` seeds its keyed hashes (`nSeed0`, `nSeed1`) from `GetRand` at start.
#[test]
fn default_settings_have_a_random_key_and_seed_and_fixed_ones_only_on_request() {
    let (a, b) = (NodeSettings::default(), NodeSettings::default());
    assert_ne!(a.key, [0; 32], "never the zero key");
    assert_ne!(a.key, b.key, "a new key each time");
    assert_ne!((a.seed, a.seed), (1, b.seed), "nor the seed 1");
    assert_ne!(a.seed, b.seed);
    let f = NodeSettings::default().fixed([9; 32], 5);
    assert_eq!((f.key, f.seed), ([9; 32], 5));
}

// Item 11. Core: `CConnman::ThreadOpenConnections` skips `IsBadPort` addresses for 50 tries.
#[test]
fn automatic_dials_pass_over_bad_ports_for_the_first_fifty_tries() {
    let t0 = Instant::now();
    let mut s = settings();
    s.feelers = false;
    s.full_relay = 1;
    s.block_relay = 0;
    let smtp = SocketAddr::from(([30, 1, 1, 1], 25));
    let good = SocketAddr::from(([31, 1, 1, 1], 8333));
    let mut smtp_dials = 0;
    for seed in 0..200u64 {
        let mut n = NodeCore::new(s.clone().fixed([seed as u8; 32], seed + 1), book_with([smtp, good]), t0);
        let d = n.poll_dial(t0, UNIX).expect("a dial");
        smtp_dials += usize::from(d.addr == smtp);
    }
    assert_eq!(smtp_dials, 0, "port 25 chosen while a good address was there");
    // With nothing else, a bad port is still dialed after 50 tries (Core's last resort).
    let mut n = NodeCore::new(s, book_with([smtp]), t0);
    assert_eq!(n.poll_dial(t0, UNIX).map(|d| d.addr), Some(smtp));
}

// Item 12. Core: `outbound_ipv46_peer_netgroups` in `CConnman::ThreadOpenConnections` holds
// full-relay, block-relay-only and manual connections, not feelers.
#[test]
fn a_manual_peer_takes_its_group_and_a_feeler_does_not() {
    let t0 = Instant::now();
    let mut s = settings();
    s.feelers = false;
    s.full_relay = 3;
    s.block_relay = 0;
    // Three /16s: 40.1, 40.2, 40.3, ten addresses each.
    let addrs: Vec<SocketAddr> = (0..30).map(|i| SocketAddr::from(([40, 1 + i % 3, 9, i], 8333))).collect();
    let mut n = NodeCore::new(s, book_with(addrs), t0);
    // A manual peer in 40.1.
    n.add_peer(SocketAddr::from(([40, 1, 200, 1], 8333)), true);
    let manual = n.poll_dial(t0, UNIX).expect("the manual peer");
    assert_eq!(manual.kind, ConnKind::Manual);
    n.established(manual.id, &hello(), t0, UNIX);
    let dials: Vec<_> = std::iter::from_fn(|| n.poll_dial(t0, UNIX)).collect();
    let groups: HashSet<Vec<u8>> = dials.iter().map(|d| group(&v2(d.addr))).collect();
    assert_eq!(dials.len(), 2, "two groups left: {dials:?}");
    assert_eq!(groups.len(), 2);
    assert!(!groups.contains(&group(&v2(manual.addr))), "a full-relay peer in the manual peer's group");
}

#[test]
fn a_feeler_does_not_keep_a_full_relay_connection_from_its_group() {
    let t0 = Instant::now();
    let mut s = settings();
    s.full_relay = 1;
    s.block_relay = 0;
    let x = SocketAddr::from(([50, 1, 1, 1], 8333));
    let (y, z) = (SocketAddr::from(([51, 1, 1, 1], 8333)), SocketAddr::from(([51, 1, 2, 2], 8333)));
    let mut n = NodeCore::new(s, book_with([x, y, z]), t0);
    // Full-relay to x only (the others wait out a failed dial).
    let mut now = t0;
    let first = loop {
        let d = n.poll_dial(now, UNIX).expect("a dial");
        if d.addr == x {
            break d;
        }
        n.dial_failed(d.id, false, now, UNIX);
        now += Duration::from_millis(1);
    };
    n.established(first.id, &hello(), now, UNIX);
    // Once the slot is full, a feeler tests y or z (new addresses, both in 51.1).
    let later = n.poll_timeout().expect("a feeler is due").max(now) + Duration::from_secs(60);
    let feeler = n.poll_dial(later, UNIX + 60).expect("a feeler");
    assert_eq!(feeler.kind, ConnKind::Feeler);
    assert_eq!(group(&v2(feeler.addr)), group(&v2(y)));
    // The full-relay peer leaves while the feeler is out: the other address of the feeler's
    // group is dialed (x backs off), not refused for sharing the feeler's group.
    n.closed(first.id, false, later, UNIX + 60);
    let other = if feeler.addr == y { z } else { y };
    let mut t = later + Duration::from_secs(1);
    let mut got = None;
    for k in 0..60u64 {
        if let Some(d) = n.poll_dial(t, UNIX + 61 + k) {
            got = Some(d);
            break;
        }
        t += Duration::from_secs(1);
        if t >= later + Duration::from_secs(4) {
            break;
        }
    }
    let d = got.expect("a full-relay dial beside the feeler");
    assert_eq!((d.addr, d.kind), (other, ConnKind::FullRelay));
}

// Item 7. Core weighs network groups when evicting (`SelectNodeToEvict`: the youngest of the
// group with the most connections); among unfinished handshakes the flood's group goes first.
#[test]
fn one_address_flooding_versions_cannot_evict_honest_peers_mid_handshake() {
    let t0 = Instant::now();
    let mut s = settings();
    s.max_connections = 8 + 8 + 2 + 1; // 8 inbound slots, as `btcpeer listen --max-peers 8`
    s.allow_local = true;
    let mut n = NodeCore::new(s, AddrBook::new([1; 32], 1), t0);
    let attacker = |k: u16| SocketAddr::from(([127, 0, 0, 1], 40_000 + k));
    let mut at = t0;
    let mut tick = || {
        at += Duration::from_millis(1);
        at
    };
    // The attacker fills the table with connections that each send a version.
    for k in 0..8 {
        let id = accept(&mut n, attacker(k), tick());
        n.version_received(id);
    }
    // Honest peers from other loopback addresses arrive one by one, each sending its version
    // while the flood goes on (a new flood connection every millisecond).
    let mut honest = Vec::new();
    for h in 0..5u8 {
        let now = tick();
        let id = match n.inbound(SocketAddr::from(([127, 0, 0, 10 + h], 50_000)), now, UNIX) {
            Admission::AcceptEvicting { id, .. } => id,
            other => panic!("{other:?}"),
        };
        honest.push(id);
        for k in 0..20 {
            let now = tick();
            match n.inbound(attacker(100 + u16::from(h) * 20 + k), now, UNIX) {
                Admission::AcceptEvicting { id, evict } => {
                    assert!(!honest.contains(&evict), "an honest peer evicted mid-handshake");
                    n.version_received(id);
                }
                other => panic!("{other:?}"),
            }
            if k == 0 {
                // Its version arrives after the first flood connection (it was silent then).
                n.version_received(*honest.last().unwrap());
            }
        }
    }
    // All five are still there and complete their handshakes.
    for &id in &honest {
        assert!(n.conn(id).is_some());
        n.established(id, &hello(), tick(), UNIX);
    }
    assert_eq!(n.conns().filter(|c| c.established).count(), 5);
    let _ = actions(&mut n);
}

#[test]
fn without_allow_local_loopback_peers_are_one_group_and_the_oldest_silent_goes_first() {
    let t0 = Instant::now();
    let mut s = settings();
    s.max_connections = 8 + 8 + 2 + 1;
    let mut n = NodeCore::new(s, AddrBook::new([1; 32], 1), t0);
    let ids: Vec<ConnId> = (0..8u8)
        .map(|k| accept(&mut n, SocketAddr::from(([127, 0, 0, 1 + k], 1000)), t0 + Duration::from_millis(k.into())))
        .collect();
    // One routable address flooding is a group of its own, smaller than the loopback group.
    let Admission::AcceptEvicting { evict, .. } = n.inbound(addr(3), t0 + Duration::from_secs(1), UNIX) else {
        panic!("full")
    };
    assert_eq!(evict, ids[0]);
}

fn getaddr_answer(n: &mut NodeCore, from: SocketAddr, local: SocketAddr, now: Instant) -> Vec<AddrV2Message> {
    let Admission::Accept(id) = n.inbound_on(from, local, now, UNIX) else { panic!("full") };
    n.established(id, &hello(), now, UNIX);
    n.received(id, &btcpeer_core::wire::Message::GetAddr, now, UNIX);
    n.poll_addr_relay(now + Duration::from_secs(3600), UNIX);
    let mut out: Vec<AddrV2Message> = actions(n)
        .into_iter()
        .filter_map(|a| match a {
            Action::Addr { to, addrs } if to == id => Some(addrs),
            _ => None,
        })
        .flatten()
        .map(|mut m| {
            m.time = 0;
            m
        })
        .collect();
    out.sort_by_key(|m| format!("{m:?}"));
    out
}

// Item 10. Core: `CConnman::GetAddresses` keys its cache by network and by `addrBind` (address
// and, for inbound, port).
#[test]
fn the_getaddr_cache_is_keyed_by_the_local_address_and_port_too() {
    let t0 = Instant::now();
    let mut s = settings();
    s.dial_outbound = false;
    let mut n = NodeCore::new(s, book_with((0..400).map(addr)), t0);
    let onion_side: SocketAddr = "127.0.0.1:8334".parse().unwrap();
    let ipv4_side: SocketAddr = "10.0.0.5:8333".parse().unwrap();
    // Both requestors come from IPv4 addresses, one through the onion service's local port.
    let a = getaddr_answer(&mut n, addr(1000), onion_side, t0);
    let b = getaddr_answer(&mut n, addr(1001), ipv4_side, t0);
    let a2 = getaddr_answer(&mut n, addr(1002), onion_side, t0 + Duration::from_secs(60));
    assert_eq!(a.len(), 92);
    assert_eq!(a, a2, "one local address: one cached answer");
    assert_ne!(a, b, "two local addresses: answers that do not link them");
    // Another port on the same address is another identity too.
    let c = getaddr_answer(&mut n, addr(1003), "127.0.0.1:9999".parse().unwrap(), t0);
    assert_ne!(a, c);
}

/// The addresses sent to `to` in `actions`.
fn sent_to(actions: &[Action], to: ConnId) -> Vec<AddrV2Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Addr { to: t, addrs } if *t == to => Some(addrs.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

// Item 9. Core: `PeerManagerImpl::MaybeSendAddr` sends a peer's queued addresses when
// `m_next_addr_send` fires (exponential, mean `AVG_ADDRESS_BROADCAST_INTERVAL` = 30 s), and our
// own address again when `m_next_local_addr_send` fires (mean 24 h).
#[test]
fn relayed_addresses_wait_for_a_poisson_timer_of_mean_thirty_seconds() {
    let t0 = Instant::now();
    let mut s = settings();
    s.dial_outbound = false;
    let mut n = NodeCore::new(s, AddrBook::new([1; 32], 1), t0);
    let ids: Vec<ConnId> = (0..8)
        .map(|i| {
            let id = accept(&mut n, addr(i), t0);
            n.established(id, &hello(), t0, UNIX);
            n.received(id, &btcpeer_core::wire::Message::GetAddr, t0, UNIX);
            id
        })
        .collect();
    // The first message goes at once (the timers start with it).
    n.poll_addr_relay(t0, UNIX);
    let _ = actions(&mut n);
    // 200 fresh addresses, each announced alone by a peer, one every 10 s; the delays between
    // hearing one and sending it on are measured.
    let mut delays = Vec::new();
    let mut now = t0;
    for k in 0..200 {
        now += Duration::from_secs(10);
        let unix = UNIX + 10 * (k + 1);
        let a = msg(addr(1000 + k as usize), unix);
        let source = ids[k as usize % ids.len()];
        n.received(source, &btcpeer_core::wire::Message::AddrV2(vec![a.clone()]), now, unix);
        let targets = n.relay_targets(source, &a, unix);
        // Step a tenth of a second at a time until every target has it; the driver's wake-up
        // (`poll_timeout`) is never later than a send.
        let mut t = now;
        let mut waiting: HashSet<ConnId> = targets.into_iter().collect();
        let mut guard = 0;
        while !waiting.is_empty() && guard < 100_000 {
            let wake = n.poll_timeout();
            n.poll_addr_relay(t, unix);
            let acts = actions(&mut n);
            for &w in waiting.clone().iter() {
                if sent_to(&acts, w).iter().any(|m| m.addr == a.addr) {
                    assert!(wake.is_some_and(|at| at <= t), "sent before the wake-up it announced");
                    delays.push(t.duration_since(now).as_secs_f64());
                    waiting.remove(&w);
                }
            }
            t += Duration::from_millis(100);
            guard += 1;
        }
        assert!(waiting.is_empty(), "address {k} never sent");
        now = now.max(t);
    }
    let mean = delays.iter().sum::<f64>() / delays.len() as f64;
    let immediate = delays.iter().filter(|d| **d < 0.2).count();
    assert!(immediate * 10 < delays.len(), "most went at once: {immediate} of {}", delays.len());
    assert!((15.0..50.0).contains(&mean), "mean delay {mean:.1} s, not about 30 s");
}

#[test]
fn our_own_address_is_announced_at_once_and_again_about_daily() {
    let t0 = Instant::now();
    let mut s = settings();
    s.dial_outbound = false;
    s.local_addr = Some("8.8.4.4:8333".parse().unwrap());
    let mut n = NodeCore::new(s, AddrBook::new([1; 32], 1), t0);
    let id = accept(&mut n, addr(1), t0);
    n.established(id, &hello(), t0, UNIX);
    n.received(id, &btcpeer_core::wire::Message::GetAddr, t0, UNIX);
    n.poll_addr_relay(t0, UNIX);
    let me = |acts: &[Action]| {
        sent_to(acts, id).iter().filter(|m| m.port == 8333 && m.addr == v2("8.8.4.4:8333".parse().unwrap())).count()
    };
    assert_eq!(me(&actions(&mut n)), 1, "at once when relay starts");
    // Over 60 simulated days, hour by hour: about one a day (Poisson, mean 24 h).
    let mut count = 0;
    for h in 1..=(60 * 24) {
        let t = t0 + Duration::from_secs(3600 * h);
        n.poll_addr_relay(t, UNIX + 3600 * h);
        count += me(&actions(&mut n));
    }
    assert!((35..=90).contains(&count), "{count} self-announcements in 60 days");
}

// Item 5, wired: Core's `ProcessAddrs` keeps only addresses on reachable networks
// (`g_reachable_nets`); the node dials IPv4 and IPv6 only.
#[test]
fn addresses_on_networks_the_node_cannot_dial_are_not_stored() {
    let t0 = Instant::now();
    let mut s = settings();
    s.dial_outbound = false;
    let mut n = NodeCore::new(s, AddrBook::new([1; 32], 1), t0);
    let id = accept(&mut n, addr(1), t0);
    n.established(id, &hello().addrv2(true), t0, UNIX);
    let onion = AddrV2Message { time: UNIX as u32, services: full(), addr: AddrV2::TorV3([5; 32]), port: 8333 };
    // A hundred seconds of tokens: both addresses are processed.
    let later = t0 + Duration::from_secs(100);
    n.received(id, &btcpeer_core::wire::Message::AddrV2(vec![onion, msg(addr(2), UNIX)]), later, UNIX);
    assert_eq!(n.conn(id).unwrap().addr_processed, 2);
    let kinds: Vec<bool> = n.book().entries().map(|e| matches!(e.peer.addr, AddrV2::TorV3(_))).collect();
    assert_eq!(kinds, vec![false], "the IPv4 address only");
}

// Items 3 and 4, wired (Core: `Good` and `SetServices` at the handshake keep the address's
// time; `FinalizeNode` calls `Connected` at the end; `Attempt` counts a failure only with
// `fCountFailure`, false while the node has no outbound peers and for feelers).
#[test]
fn a_handshake_keeps_the_addresses_time_and_the_end_of_the_connection_refreshes_it() {
    let t0 = Instant::now();
    let mut s = settings();
    s.feelers = false;
    s.full_relay = 1;
    s.block_relay = 0;
    let target = addr(5);
    let old = UNIX - 3 * 86_400;
    let mut book = AddrBook::new([3; 32], 5);
    book.add(&[msg(target, old)], &Endpoint::new(v2(addr(90)), 8333), UNIX);
    let before = book.info(&Endpoint::new(v2(target), 8333)).unwrap().time;
    let mut n = NodeCore::new(s, book, t0);
    let d = n.poll_dial(t0, UNIX).expect("a dial");
    assert_eq!(d.addr, target);
    let info = |n: &NodeCore| n.book().info(&Endpoint::new(v2(target), 8333)).cloned().unwrap();
    assert_eq!(info(&n).attempts, 0, "no outbound peers yet: the attempt is not counted");
    n.established(d.id, &hello(), t0, UNIX + 10);
    assert!(info(&n).in_tried);
    assert_eq!(info(&n).time, before, "the handshake does not tell getaddr answers who our peers are");
    n.closed(d.id, false, t0 + Duration::from_secs(3600), UNIX + 3600);
    assert_eq!(info(&n).time, UNIX + 3600, "refreshed when the connection is over");
}

/// A book in which `newcomer` (good) collides with the tried `occupant` (good six hours ago).
fn collision_book() -> (AddrBook, Endpoint, Endpoint) {
    let mut book = AddrBook::new([39; 32], 1);
    let peers: Vec<Endpoint> =
        (0..3_000u32).map(|i| Endpoint::new(AddrV2::Ipv4(std::net::Ipv4Addr::from(0x0d0d_0000 + i)), 8333)).collect();
    for (i, p) in peers.iter().enumerate() {
        let m = AddrV2Message { time: UNIX as u32, services: full(), addr: p.addr.clone(), port: 8333 };
        book.add(
            &[m],
            &Endpoint::new(AddrV2::Ipv4(std::net::Ipv4Addr::from(0x5000_0000 + (i as u32) * 65_536)), 8333),
            UNIX,
        );
    }
    let held: Vec<Endpoint> = peers.iter().filter(|p| book.info(p).is_some()).cloned().collect();
    for p in &held {
        book.good(p, UNIX - 6 * 3_600);
        if let Some(occupant) = book.tried_collision().map(|c| c.peer.clone()) {
            book.good(p, UNIX);
            return (book, occupant, p.clone());
        }
    }
    panic!("no collision");
}

// Book wiring. Core's `ThreadOpenConnections`: a feeler that would test a tried occupant we are
// connected to marks it `Good` instead, so test-before-evict does not evict a connected peer.
#[test]
fn a_collision_with_a_peer_we_are_connected_to_keeps_that_peer_in_tried() {
    let t0 = Instant::now();
    let (book, occupant, newcomer) = collision_book();
    let mut s = settings();
    s.full_relay = 0;
    s.block_relay = 0;
    let mut n = NodeCore::new(s, book, t0);
    // The occupant is connected to us (inbound, from its own address).
    let AddrV2::Ipv4(ip) = occupant.addr else { panic!() };
    let id = accept(&mut n, SocketAddr::from((ip, occupant.port)), t0);
    n.established(id, &hello(), t0, UNIX);
    let due = n.poll_timeout().expect("a feeler is due").max(t0);
    let _ = n.poll_dial(due, UNIX + 10);
    n.book_mut().resolve_collisions(UNIX + 41 * 60);
    let tried = |n: &NodeCore, p: &Endpoint| n.book().info(p).is_some_and(|i| i.in_tried);
    assert!(tried(&n, &occupant), "a connected peer evicted from tried");
    assert!(!tried(&n, &newcomer));
}
