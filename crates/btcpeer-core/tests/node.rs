//! NodeCore alone: admission and eviction, outbound selection, backoff, manual peers, anchors,
//! feelers, getaddr and its cache, the address token bucket, relay targets and misbehaviour.
//! Time is an argument throughout.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use btcpeer_core::addrbook::{AddrBook, Endpoint, V2Support, group};
use btcpeer_core::bitcoin::p2p::ServiceFlags;
use btcpeer_core::bitcoin::p2p::address::{AddrV2, AddrV2Message};
use btcpeer_core::node::{Action, Admission, ConnId, ConnKind, NodeCore, NodeReason, NodeSettings, Refusal};
use btcpeer_core::wire::Message;

mod common;
use common::*;

fn settings() -> NodeSettings {
    let mut s = NodeSettings::default();
    s.key = [7; 32];
    s.seed = 42;
    s
}

/// A book holding `addrs`, each heard of from a source of its own group.
fn book_with(addrs: impl IntoIterator<Item = SocketAddr>) -> AddrBook {
    let mut book = AddrBook::new([3; 32], 5);
    for a in addrs {
        let source = Endpoint::new(AddrV2::Ipv4([90, (a.ip().to_string().len() % 7) as u8, 0, 1].into()), 8333);
        book.add(&[msg(a, UNIX)], &source, UNIX);
    }
    book
}

fn node(s: NodeSettings, book: AddrBook, now: Instant) -> NodeCore {
    NodeCore::new(s, book, now)
}

/// The actions once every address timer has fired (an hour later: Core's `MaybeSendAddr` sends
/// each peer's queue on a timer of mean 30 s).
fn actions_later(n: &mut NodeCore, now: Instant) -> Vec<Action> {
    n.poll_addr_relay(now + Duration::from_secs(3600), UNIX + 3600);
    actions(n)
}

#[test]
fn r_n_a_full_table_of_slow_loris_still_admits_an_honest_peer_who_then_stays() {
    let t0 = Instant::now();
    let mut n = node(settings(), AddrBook::new([1; 32], 1), t0);
    let max = n.settings().max_inbound();
    assert_eq!(max, 114);
    // 114 connections that never finish their handshake.
    let loris: HashSet<ConnId> =
        (0..max).map(|i| accept(&mut n, addr(i), t0 + Duration::from_millis(i as u64))).collect();
    let t1 = t0 + Duration::from_secs(30);
    let Admission::AcceptEvicting { id: honest, evict } = n.inbound(addr(1000), t1, UNIX) else { panic!("full") };
    assert!(loris.contains(&evict), "a never-established connection is evicted");
    assert_eq!(actions(&mut n), vec![Action::Disconnect { id: evict, reason: NodeReason::Evicted }]);
    assert_eq!(n.counts().inbound, max, "never above the limit");
    // The honest peer completes its handshake, answers pings fast and relays a transaction.
    n.established(honest, &hello(), t1, UNIX);
    n.ping_sample(honest, Duration::from_millis(30));
    // More slow-loris arrive: each evicts someone, never the honest peer.
    for i in 0..200 {
        let at = t1 + Duration::from_secs(1 + i as u64);
        match n.inbound(addr(1100 + i), at, UNIX) {
            Admission::AcceptEvicting { evict, .. } => assert_ne!(evict, honest),
            other => panic!("{other:?}"),
        }
        assert_eq!(n.counts().inbound, max);
    }
    assert!(n.conn(honest).is_some());
}

#[test]
fn r_n_a_small_table_of_slow_loris_makes_room_but_never_evicts_a_finished_handshake() {
    // 8 inbound slots: too few for Core's eviction, which protects up to 28 candidates.
    let mut s = settings();
    s.max_connections = 8 + 8 + 2 + 1;
    let t0 = Instant::now();
    let mut n = node(s, AddrBook::new([1; 32], 1), t0);
    assert_eq!(n.settings().max_inbound(), 8);
    let loris: Vec<ConnId> = (0..8).map(|i| accept(&mut n, addr(i), t0 + Duration::from_millis(i as u64))).collect();
    // The honest peer gets in at once: the oldest silent connection makes room.
    let t1 = t0 + Duration::from_millis(100);
    let Admission::AcceptEvicting { id: honest, evict } = n.inbound(addr(100), t1, UNIX) else { panic!("full") };
    assert_eq!(evict, loris[0], "the connection that waited longest");
    // A flood of silent connections while the honest peer is mid-handshake (it has sent its
    // first bytes): they push each other out, never it.
    n.heard(honest);
    for i in 0..50 {
        match n.inbound(addr(300 + i), t1 + Duration::from_millis(1 + i as u64), UNIX) {
            Admission::AcceptEvicting { evict, .. } => assert_ne!(evict, honest, "arrival {i}"),
            other => panic!("{other:?}"),
        }
    }
    // One-byte connections do not push out a peer whose version came either.
    n.version_received(honest);
    for i in 0..50 {
        let id = match n.inbound(addr(400 + i), t1 + Duration::from_millis(60 + i as u64), UNIX) {
            Admission::AcceptEvicting { id, evict } => {
                assert_ne!(evict, honest, "one-byte arrival {i}");
                id
            }
            other => panic!("{other:?}"),
        };
        n.heard(id);
    }
    n.established(honest, &hello(), t1, UNIX);
    // Once every slot holds a finished handshake, nobody is evicted from so small a table: refused.
    let others: Vec<ConnId> = n.conns().filter(|c| !c.established).map(|c| c.id).collect();
    assert_eq!(others.len(), 7);
    for (k, id) in others.iter().enumerate() {
        n.established(*id, &hello(), t1 + Duration::from_millis(k as u64), UNIX);
    }
    assert_eq!(n.inbound(addr(200), t1 + Duration::from_secs(1), UNIX), Admission::Refuse(Refusal::Full));
    assert!(n.conn(honest).is_some());
}

#[test]
fn r_n_eviction_respects_the_protected_categories_through_node_core() {
    let t0 = Instant::now();
    let mut n = node(settings(), AddrBook::new([1; 32], 1), t0);
    let max = n.settings().max_inbound();
    let ids: Vec<ConnId> = (0..max).map(|i| accept(&mut n, addr(i), t0)).collect();
    for &id in &ids {
        n.established(id, &hello(), t0, UNIX);
    }
    // 8 fast pingers, 4 recent transaction relayers, 4 recent block relayers.
    let fast: Vec<ConnId> = ids[10..18].to_vec();
    for (k, &id) in fast.iter().enumerate() {
        n.ping_sample(id, Duration::from_millis(5 + k as u64));
    }
    for (k, &id) in ids[..50].iter().enumerate().skip(18) {
        n.ping_sample(id, Duration::from_millis(500 + k as u64));
    }
    let t1 = t0 + Duration::from_secs(100);
    let tx_relayers: Vec<ConnId> = ids[30..34].to_vec();
    for (k, &id) in tx_relayers.iter().enumerate() {
        let tx = btcpeer_core::bitcoin::Transaction {
            version: btcpeer_core::bitcoin::transaction::Version::TWO,
            lock_time: btcpeer_core::bitcoin::absolute::LockTime::from_consensus(k as u32),
            input: vec![],
            output: vec![],
        };
        // Asked for by us: an answer to our getdata (an unsolicited one earns nothing).
        n.requested(id, &[btcpeer_core::wire::Inventory::Tx(tx.compute_txid())]);
        n.received(id, &Message::Tx(tx), t1, UNIX);
    }
    let protected: HashSet<ConnId> = fast.iter().chain(&tx_relayers).copied().collect();
    for i in 0..60 {
        let at = t1 + Duration::from_secs(i);
        if let Admission::AcceptEvicting { evict, .. } = n.inbound(addr(500 + i as usize), at, UNIX) {
            assert!(!protected.contains(&evict), "evicted protected {evict}");
        }
    }
    for id in protected {
        assert!(n.conn(id).is_some());
    }
}

#[test]
fn r_n_banned_addresses_are_refused_and_their_connections_ended() {
    let t0 = Instant::now();
    let mut n = node(settings(), AddrBook::new([1; 32], 1), t0);
    let id = accept(&mut n, addr(1), t0);
    let ended = n.ban(addr(1).ip(), UNIX + 3600);
    assert_eq!(ended, vec![id]);
    assert_eq!(actions(&mut n), vec![Action::Disconnect { id, reason: NodeReason::Banned }]);
    assert_eq!(n.inbound(addr(1), t0, UNIX), Admission::Refuse(Refusal::Banned));
    // After the ban's end, accepted again.
    assert!(matches!(n.inbound(addr(1), t0, UNIX + 3601), Admission::Accept(_)));
}

#[test]
fn r_n_discouraged_addresses_are_refused_only_when_the_table_is_nearly_full() {
    let t0 = Instant::now();
    let mut n = node(settings(), AddrBook::new([1; 32], 1), t0);
    let bad = addr(2000);
    n.discouraged_mut().discourage(bad.ip());
    let first = accept(&mut n, bad, t0);
    n.closed(first, false, t0, UNIX);
    let max = n.settings().max_inbound();
    for i in 0..max - 1 {
        accept(&mut n, addr(i), t0);
    }
    assert_eq!(n.inbound(bad, t0, UNIX), Admission::Refuse(Refusal::Discouraged));
    // Someone else still gets the last slot.
    assert!(matches!(n.inbound(addr(1999), t0, UNIX), Admission::Accept(_)));
}

#[test]
fn r_n_outbound_targets_are_reached_and_never_exceeded() {
    let t0 = Instant::now();
    let mut s = settings();
    s.feelers = false;
    let mut n = node(s, book_with((0..300).map(addr)), t0);
    let mut dials = Vec::new();
    while let Some(d) = n.poll_dial(t0, UNIX) {
        dials.push(d);
        assert!(dials.len() <= 10);
    }
    let kinds: Vec<ConnKind> = dials.iter().map(|d| d.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == ConnKind::FullRelay).count(), 8);
    assert_eq!(kinds.iter().filter(|k| **k == ConnKind::BlockRelay).count(), 2);
    // Block-relay-only after full-relay, as Core.
    assert!(kinds[..8].iter().all(|k| *k == ConnKind::FullRelay));
    for d in &dials {
        n.established(d.id, &hello(), t0, UNIX);
    }
    // Time passes: nothing more while the slots are full.
    for s in 1..100 {
        assert_eq!(n.poll_dial(t0 + Duration::from_secs(s), UNIX + s), None);
    }
    let c = n.counts();
    assert_eq!((c.full_relay, c.block_relay, c.dialing), (8, 2, 0));
    // One ends: its slot is filled again, with a full-relay connection.
    n.closed(dials[0].id, false, t0 + Duration::from_secs(100), UNIX + 100);
    let again = n.poll_dial(t0 + Duration::from_secs(100), UNIX + 100).expect("a replacement");
    assert_eq!(again.kind, ConnKind::FullRelay);
    assert_eq!(n.poll_dial(t0 + Duration::from_secs(100), UNIX + 100), None);
}

#[test]
fn r_n_at_most_one_outbound_connection_per_network_group() {
    let t0 = Instant::now();
    let mut s = settings();
    s.feelers = false;
    // 60 addresses in 6 /16s.
    let addrs: Vec<SocketAddr> = (0..60).map(|i| SocketAddr::from(([30, i % 6, 7, i], 8333))).collect();
    let mut n = node(s, book_with(addrs), t0);
    let mut groups = HashSet::new();
    for k in 0..50u64 {
        while let Some(d) = n.poll_dial(t0 + Duration::from_secs(k * 60), UNIX + k * 60) {
            assert!(groups.insert(group(&v2(d.addr))), "a second connection to {:?}", d.addr);
        }
    }
    assert_eq!(groups.len(), 6);
}

#[test]
fn r_n_backoff_doubles_per_failure_and_caps() {
    let t0 = Instant::now();
    let mut s = settings();
    s.dial_outbound = false;
    s.backoff_base = Duration::from_secs(5);
    s.backoff_max = Duration::from_secs(60);
    let mut n = node(s, AddrBook::new([1; 32], 1), t0);
    let a = addr(9);
    n.add_peer(a, true);
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..7 {
        let d = n.poll_dial(now, UNIX).expect("due");
        n.dial_failed(d.id, false, now, UNIX);
        let (_, until) = n.backoff(a);
        let until = until.unwrap();
        waits.push(until.duration_since(now).as_secs());
        // Not before its time, and then at once.
        assert_eq!(n.poll_dial(until - Duration::from_millis(1), UNIX), None);
        assert_eq!(n.poll_timeout(), Some(until));
        now = until;
    }
    assert_eq!(waits, [5, 10, 20, 40, 60, 60, 60]);
    // A success starts over.
    let d = n.poll_dial(now, UNIX).unwrap();
    n.established(d.id, &hello(), now, UNIX);
    assert_eq!(n.backoff(a).0, 0);
}

#[test]
fn r_n_dials_carry_the_books_v2_hint() {
    let t0 = Instant::now();
    let mut s = settings();
    s.dial_outbound = false;
    s.backoff_base = Duration::from_secs(1);
    let (yes, failed, unknown) = (addr(1), addr(2), addr(3));
    let mut book = book_with([failed, unknown]);
    let mut v2msg = msg(yes, UNIX);
    v2msg.services = full() | ServiceFlags::P2P_V2;
    book.add(&[v2msg], &endpoint(addr(50)), UNIX);
    let mut n = node(s, book, t0);
    for a in [yes, failed, unknown] {
        n.add_peer(a, true);
    }
    let mut hints = std::collections::HashMap::new();
    while let Some(d) = n.poll_dial(t0, UNIX) {
        hints.insert(d.addr, (d.id, d.v2));
    }
    assert_eq!(hints[&yes].1, V2Support::Yes);
    assert_eq!(hints[&unknown].1, V2Support::Unknown);
    assert_eq!(hints[&failed].1, V2Support::Unknown);
    // The v2 attempt at `failed` met a v1-only remote: the next dial is v1.
    n.dial_failed(hints[&failed].0, true, t0, UNIX);
    let later = t0 + Duration::from_secs(2);
    let d = n.poll_dial(later, UNIX + 2).unwrap();
    assert_eq!((d.addr, d.v2), (failed, V2Support::Failed));
}

#[test]
fn r_n_manual_peers_are_dialed_once_and_persistent_ones_again() {
    let t0 = Instant::now();
    let mut s = settings();
    s.dial_outbound = false;
    let base = s.backoff_base;
    let mut n = node(s, AddrBook::new([1; 32], 1), t0);
    let (once, always) = (addr(1), addr(2));
    n.add_peer(once, false);
    n.add_peer(always, true);
    let a = n.poll_dial(t0, UNIX).unwrap();
    let b = n.poll_dial(t0, UNIX).unwrap();
    assert_eq!((a.addr, a.kind, b.addr, b.kind), (once, ConnKind::Manual, always, ConnKind::Manual));
    assert_eq!(n.poll_dial(t0, UNIX), None);
    for d in [&a, &b] {
        n.established(d.id, &hello(), t0, UNIX);
        n.closed(d.id, false, t0, UNIX);
    }
    // Only the persistent one comes back, after the base wait.
    assert_eq!(n.poll_dial(t0 + base - Duration::from_millis(1), UNIX), None);
    let again = n.poll_dial(t0 + base, UNIX).unwrap();
    assert_eq!(again.addr, always);
    assert!(n.conn(again.id).unwrap().persistent);
    assert_eq!(n.poll_dial(t0 + base * 100, UNIX), None);
    // Removed: no more dials.
    assert!(n.remove_peer(always));
    n.closed(again.id, false, t0 + base * 100, UNIX);
    assert_eq!(n.poll_dial(t0 + base * 1000, UNIX), None);
}

#[test]
fn r_n_anchors_are_dialed_first_as_block_relay_only() {
    let t0 = Instant::now();
    let mut s = settings();
    s.feelers = false;
    let mut n = node(s, book_with((0..50).map(addr)), t0);
    let (x, y) = (addr(100), addr(101));
    n.set_anchors(vec![x, y]);
    n.add_peer(addr(102), false);
    let first: Vec<_> = (0..3).map(|_| n.poll_dial(t0, UNIX).unwrap()).collect();
    assert_eq!((first[0].addr, first[0].kind), (x, ConnKind::BlockRelay));
    assert_eq!((first[1].addr, first[1].kind), (y, ConnKind::BlockRelay));
    assert_eq!(first[2].kind, ConnKind::Manual);
    let rest: Vec<_> = std::iter::from_fn(|| n.poll_dial(t0, UNIX)).collect();
    // The anchors filled the block-relay-only slots: the rest are full-relay.
    assert_eq!(rest.len(), 8);
    assert!(rest.iter().all(|d| d.kind == ConnKind::FullRelay));
    assert!(n.anchors().is_empty(), "not established yet");
    n.established(first[0].id, &hello(), t0, UNIX);
    n.established(first[1].id, &hello(), t0, UNIX);
    let mut anchors = n.anchors();
    anchors.sort();
    assert_eq!(anchors, vec![x, y]);
}

#[test]
fn r_n_getaddr_is_answered_once_per_inbound_connection_and_never_to_outbound() {
    let t0 = Instant::now();
    let mut s = settings();
    s.dial_outbound = false;
    let mut n = node(s, book_with((0..100).map(addr)), t0);
    let inbound = accept(&mut n, addr(500), t0);
    n.established(inbound, &hello(), t0, UNIX);
    n.received(inbound, &Message::GetAddr, t0, UNIX);
    let answer = actions_later(&mut n, t0);
    let [Action::Addr { to, addrs }] = answer.as_slice() else { panic!("{answer:?}") };
    assert_eq!(*to, inbound);
    assert_eq!(addrs.len(), 23, "23 % of 100");
    n.received(inbound, &Message::GetAddr, t0, UNIX);
    assert_eq!(actions_later(&mut n, t0), vec![], "only once per connection");
    // An outbound peer asking is ignored.
    n.add_peer(addr(501), false);
    let d = n.poll_dial(t0, UNIX).unwrap();
    n.established(d.id, &hello(), t0, UNIX);
    assert_eq!(actions(&mut n), vec![Action::GetAddr { to: d.id }]);
    n.received(d.id, &Message::GetAddr, t0, UNIX);
    assert_eq!(actions(&mut n), vec![]);
}

fn getaddr_answer(n: &mut NodeCore, from: SocketAddr, now: Instant, unix: u64) -> HashSet<AddrV2Message> {
    let id = accept(n, from, now);
    n.established(id, &hello(), now, unix);
    n.received(id, &Message::GetAddr, now, unix);
    let mut out = HashSet::new();
    for a in actions_later(n, now) {
        if let Action::Addr { to, addrs } = a {
            assert_eq!(to, id);
            out.extend(addrs.into_iter().map(|mut m| {
                m.time = 0;
                m
            }));
        }
    }
    out
}

#[test]
fn r_n_the_getaddr_cache_is_stable_within_a_day_and_rotated_after() {
    let t0 = Instant::now();
    let mut s = settings();
    s.dial_outbound = false;
    let mut n = node(s, book_with((0..200).map(addr)), t0);
    let held = n.book().len();
    let first = getaddr_answer(&mut n, addr(1000), t0, UNIX);
    assert_eq!(first.len(), held * 23 / 100);
    // The book grows; an hour and 20 hours later the answer is the same.
    for i in 200..400 {
        n.book_mut().add(&[msg(addr(i), UNIX)], &endpoint(addr(2000 + i)), UNIX);
    }
    let h = Duration::from_secs(3600);
    assert_eq!(getaddr_answer(&mut n, addr(1001), t0 + h, UNIX + 3600), first);
    assert_eq!(getaddr_answer(&mut n, addr(1002), t0 + 20 * h, UNIX + 20 * 3600), first);
    // After 21 h + up to 6 h it is rebuilt from the book as it is now.
    let later = getaddr_answer(&mut n, addr(1003), t0 + 28 * h, UNIX + 28 * 3600);
    assert_ne!(later, first);
    assert!(later.len() > first.len());
}

/// Floods `victim` from connection `from` with `messages` addr messages of 1,000 fresh
/// addresses, one a second; returns how much the book grew.
fn flood(n: &mut NodeCore, from: ConnId, t0: Instant, messages: u64) -> usize {
    let before = n.book().len();
    for k in 0..messages {
        let addrs: Vec<AddrV2Message> =
            (0..1000).map(|i| msg(addr(((k * 1000 + i) % 2500) as usize), UNIX + k)).collect();
        n.received(from, &Message::AddrV2(addrs), t0 + Duration::from_secs(k), UNIX + k);
    }
    n.book().len() - before
}

#[test]
fn r_n_a_flood_of_100000_addresses_is_held_to_the_token_bucket() {
    let t0 = Instant::now();
    let mut s = settings();
    s.dial_outbound = false;
    // An inbound peer: one token to start, 0.1 a second.
    let mut n = node(s.clone(), AddrBook::new([1; 32], 1), t0);
    let id = accept(&mut n, addr(2600), t0);
    n.established(id, &hello(), t0, UNIX);
    let grew = flood(&mut n, id, t0, 100);
    let c = n.conn(id).unwrap();
    assert!(c.addr_processed <= 1 + 10, "{}", c.addr_processed);
    assert!(grew <= 11, "{grew}");
    assert!(c.addr_rate_limited >= 99_980);
    // An outbound peer we sent getaddr: 1,000 more tokens for its answer, no more.
    let mut n = node(s, AddrBook::new([1; 32], 1), t0);
    n.add_peer(addr(2601), false);
    let d = n.poll_dial(t0, UNIX).unwrap();
    n.established(d.id, &hello(), t0, UNIX);
    let grew = flood(&mut n, d.id, t0, 100);
    let c = n.conn(d.id).unwrap();
    assert!(c.addr_processed <= 1001 + 10, "{}", c.addr_processed);
    assert!(c.addr_processed >= 1000);
    assert!(grew <= 1011, "{grew}");
}

#[test]
fn r_n_relay_targets_are_stable_per_address_per_day_and_never_the_source() {
    let t0 = Instant::now();
    let mut s = settings();
    s.dial_outbound = false;
    let mut n = node(s, AddrBook::new([1; 32], 1), t0);
    let ids: Vec<ConnId> = (0..20)
        .map(|i| {
            let id = accept(&mut n, addr(i), t0);
            n.established(id, &hello(), t0, UNIX);
            // Asking for addresses starts address relay with it.
            n.received(id, &Message::GetAddr, t0, UNIX);
            id
        })
        .collect();
    actions(&mut n);
    let (mut same, mut moved) = (0, 0);
    for k in 0..50 {
        let a = msg(addr(100 + k), UNIX);
        let source = ids[k % ids.len()];
        let now = n.relay_targets(source, &a, UNIX);
        assert_eq!(now.len(), 2);
        assert!(!now.contains(&source));
        same += usize::from(n.relay_targets(source, &a, UNIX + 60) == now);
        moved += usize::from(n.relay_targets(source, &a, UNIX + 3 * 86_400) != now);
    }
    assert!(same >= 48, "{same}");
    assert!(moved >= 40, "{moved}");
    // What is relayed goes to exactly those targets, and once.
    let a = msg(addr(300), UNIX);
    let targets: HashSet<ConnId> = n.relay_targets(ids[0], &a, UNIX).into_iter().collect();
    n.received(ids[0], &Message::AddrV2(vec![a.clone()]), t0, UNIX);
    let sent: HashSet<ConnId> = actions_later(&mut n, t0)
        .into_iter()
        .filter_map(|x| match x {
            Action::Addr { to, addrs } if addrs == vec![a.clone()] => Some(to),
            _ => None,
        })
        .collect();
    assert_eq!(sent, targets);
    // Heard again from someone else the same day: the targets know it already.
    n.received(ids[5], &Message::AddrV2(vec![a.clone()]), t0 + Duration::from_secs(20), UNIX + 20);
    let again: Vec<Action> = actions_later(&mut n, t0 + Duration::from_secs(3600));
    assert!(again.iter().all(|x| !matches!(x, Action::Addr { to, .. } if targets.contains(to))), "{again:?}");
}

#[test]
fn r_n_a_feeler_moves_a_new_address_to_tried() {
    let t0 = Instant::now();
    let mut s = settings();
    s.full_relay = 0;
    s.block_relay = 0;
    let target = addr(77);
    let mut n = node(s, book_with([target]), t0);
    assert!(!n.book().info(&endpoint(target)).unwrap().in_tried);
    let due = n.poll_timeout().expect("a feeler is scheduled");
    let at = due.max(t0);
    let d = n.poll_dial(at, UNIX + 1).expect("a feeler");
    assert_eq!((d.addr, d.kind), (target, ConnKind::Feeler));
    n.established(d.id, &hello(), at, UNIX + 1);
    assert!(n.book().info(&endpoint(target)).unwrap().in_tried);
    assert_eq!(actions(&mut n), vec![Action::Disconnect { id: d.id, reason: NodeReason::FeelerDone }]);
    assert_eq!(n.counts().feeler, 0);
    // The next feeler is later.
    assert!(n.poll_timeout().unwrap() >= at);
}

#[test]
fn r_n_misbehaving_peers_are_discouraged_except_manual_and_loopback() {
    let t0 = Instant::now();
    let mut s = settings();
    s.dial_outbound = false;
    let mut n = node(s, AddrBook::new([1; 32], 1), t0);
    let bad = accept(&mut n, addr(1), t0);
    n.closed(bad, true, t0, UNIX);
    assert!(n.discouraged().is_discouraged(addr(1).ip()));
    let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let l = accept(&mut n, local, t0);
    n.closed(l, true, t0, UNIX);
    assert!(!n.discouraged().is_discouraged(local.ip()));
    n.add_peer(addr(2), false);
    let m = n.poll_dial(t0, UNIX).unwrap();
    n.established(m.id, &hello(), t0, UNIX);
    n.closed(m.id, true, t0, UNIX);
    assert!(!n.discouraged().is_discouraged(addr(2).ip()));
    // An honest peer closing is not discouraged.
    let ok = accept(&mut n, addr(3), t0);
    n.closed(ok, false, t0, UNIX);
    assert!(!n.discouraged().is_discouraged(addr(3).ip()));
    // An oversized addr is misbehaviour: ended and discouraged.
    let big = accept(&mut n, addr(4), t0);
    n.established(big, &hello(), t0, UNIX);
    let addrs: Vec<AddrV2Message> = (0..1001).map(|i| msg(addr(i), UNIX)).collect();
    n.received(big, &Message::AddrV2(addrs), t0, UNIX);
    assert!(actions(&mut n).contains(&Action::Disconnect { id: big, reason: NodeReason::Misbehaved }));
    assert!(n.discouraged().is_discouraged(addr(4).ip()));
}

#[test]
fn r_n_with_allow_local_each_local_address_is_its_own_outbound_group() {
    // A test network on one machine: 127.0.0.1 on ten ports, all one group for Core.
    let t0 = Instant::now();
    let locals: Vec<SocketAddr> = (0..10u16).map(|p| SocketAddr::from(([127, 0, 0, 1], 18_000 + p))).collect();
    let mut book = AddrBook::new([3; 32], 5).allow_local(true);
    for (k, a) in locals.iter().enumerate() {
        let source = Endpoint::new(AddrV2::Ipv4([127, 0, 9, k as u8].into()), 1);
        book.add(&[msg(*a, UNIX)], &source, UNIX);
    }
    let mut s = settings();
    s.allow_local = true;
    s.feelers = false;
    let mut n = node(s, book, t0);
    let dials: Vec<_> = std::iter::from_fn(|| n.poll_dial(t0, UNIX)).collect();
    assert!(dials.len() > 1, "more than one automatic outbound connection: {dials:?}");
    let distinct: HashSet<SocketAddr> = dials.iter().map(|d| d.addr).collect();
    assert_eq!(distinct.len(), dials.len(), "never two to one address");
    // Without allow_local, routable addresses of one /16 still get one connection.
    let mut book = AddrBook::new([3; 32], 5);
    for i in 0..10u8 {
        let a = SocketAddr::from(([20, 1, i, 1], 8333));
        let source = Endpoint::new(AddrV2::Ipv4([90, i, 0, 1].into()), 8333);
        book.add(&[msg(a, UNIX)], &source, UNIX);
    }
    let mut s = settings();
    s.feelers = false;
    let mut n = node(s, book, t0);
    let dials: Vec<_> = std::iter::from_fn(|| n.poll_dial(t0, UNIX)).collect();
    assert_eq!(dials.len(), 1, "one per /16: {dials:?}");
}

#[test]
fn r_n_the_address_limits_are_settings() {
    let t0 = Instant::now();
    let mut s = settings();
    s.dial_outbound = false;
    (s.getaddr_max, s.getaddr_pct, s.addr_rate, s.addr_burst, s.max_manual_connections) = (5, 50, 0.0, 1.0, 1);
    let mut n = node(s, book_with((0..100).map(addr)), t0);
    // getaddr: 5 at most, not 23 % of 100.
    let answer = getaddr_answer(&mut n, addr(900), t0, UNIX);
    assert_eq!(answer.len(), 5);
    // No refill: an inbound peer's 50 addresses are one processed (the first token), the rest limited.
    let id = accept(&mut n, addr(901), t0);
    n.established(id, &hello(), t0, UNIX);
    let flood: Vec<AddrV2Message> = (2_000..2_050).map(|i| msg(addr(i), UNIX)).collect();
    n.received(id, &Message::AddrV2(flood), t0 + Duration::from_secs(600), UNIX);
    let info = n.conn(id).unwrap();
    assert_eq!((info.addr_processed, info.addr_rate_limited), (1, 49));
    // One manual connection at a time.
    n.add_peer(addr(950), false);
    n.add_peer(addr(951), false);
    assert!(n.poll_dial(t0, UNIX).is_some());
    assert!(n.poll_dial(t0, UNIX).is_none(), "the second waits for a slot");
}
