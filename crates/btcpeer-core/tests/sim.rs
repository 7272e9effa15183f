//! The simulator's tests: what sockets make slow or flaky, on simulated time.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use btcpeer_core::bitcoin::Txid;
use btcpeer_core::bitcoin::hashes::Hash;
use btcpeer_core::peer::{CoreConfig, Direction, DisconnectReason, Event, Transport};
use btcpeer_core::sim::{App, LinkConfig, NodeCtx, PeerId, Sim};
use btcpeer_core::wire::{Command, Inventory, Message};

/// A relaying node: a transaction it has not seen is remembered and announced to every other peer
/// (the core's trickle and known inventory decide when, and to whom not).
#[derive(Default)]
struct Relay {
    first_seen: HashMap<Txid, Instant>,
    ended: Vec<DisconnectReason>,
}

impl Relay {
    fn learn(&mut self, ctx: &mut NodeCtx<'_>, from: Option<PeerId>, txid: Txid) {
        if self.first_seen.contains_key(&txid) {
            return;
        }
        self.first_seen.insert(txid, ctx.now());
        let now = ctx.now();
        for peer in ctx.peers() {
            if Some(peer) != from {
                if let Some(core) = ctx.core(peer) {
                    core.announce(Inventory::Tx(txid), now);
                }
            }
        }
    }
}

impl App for Relay {
    fn on_event(&mut self, ctx: &mut NodeCtx<'_>, peer: PeerId, event: &Event) {
        match event {
            Event::Message(Message::Inv(items)) => {
                for item in items {
                    if let Inventory::Tx(txid) = item {
                        self.learn(ctx, Some(peer), *txid);
                    }
                }
            }
            Event::Disconnected(reason) => self.ended.push(reason.clone()),
            _ => {}
        }
    }
}

fn txid(n: u32) -> Txid {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&n.to_le_bytes());
    Txid::from_byte_array(b)
}

/// Cores that relay by txid (no wtxidrelay), so that `Inventory::Tx` announcements go out.
fn txid_relay(direction: Direction) -> CoreConfig {
    let mut c = CoreConfig::new(direction);
    c.rules.wtxid_relay = false;
    c
}

/// `nodes` nodes, each dialing `degree` distinct others chosen by a seeded generator, over v1.
fn network(seed: u64, nodes: usize, degree: usize) -> (Sim, Vec<PeerId>) {
    network_over(seed, nodes, degree, Transport::V1)
}

/// The same, the dialers speaking `transport`.
fn network_over(seed: u64, nodes: usize, degree: usize, transport: Transport) -> (Sim, Vec<PeerId>) {
    let mut sim = Sim::new(seed);
    let ids: Vec<_> = (0..nodes).map(|_| sim.add_node(Relay::default())).collect();
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut linked = HashSet::new();
    let mut ends = Vec::new();
    for &a in &ids {
        let mut made = 0;
        while made < degree {
            let b = ids[(next() % nodes as u64) as usize];
            if a == b || !linked.insert((a.min(b), a.max(b))) {
                continue;
            }
            let link = LinkConfig { latency: Duration::from_millis(20 + next() % 180), ..LinkConfig::default() };
            let mut outbound = txid_relay(Direction::Outbound);
            outbound.transport = transport;
            let (x, y) = sim.connect_with(a, b, link, outbound, txid_relay(Direction::Inbound));
            ends.extend([x, y]);
            made += 1;
        }
    }
    (sim, ends)
}

/// Injects a transaction every `every` at a node chosen in turn, for `total`.
fn run_with_transactions(sim: &mut Sim, nodes: usize, every: Duration, total: Duration) -> u32 {
    let mut n = 0;
    let mut elapsed = Duration::ZERO;
    while elapsed < total {
        let at = (n as usize * 7919) % nodes;
        sim.act(at, |app: &mut Relay, ctx| app.learn(ctx, None, txid(n)));
        n += 1;
        sim.run_for(every);
        elapsed += every;
    }
    // Let the last announcements spread.
    sim.run_for(Duration::from_secs(60));
    n
}

#[test]
fn r_n_sim_1000_peers_relay_inventory_for_a_simulated_hour() {
    // 125 nodes dialing 4 others each: 500 links, 1,000 peers.
    let nodes = 125;
    let (mut sim, ends) = network(42, nodes, 4);
    assert_eq!(ends.len(), 1_000);
    let start = sim.now();
    let sent = run_with_transactions(&mut sim, nodes, Duration::from_secs(30), Duration::from_secs(3600));
    assert!(sim.now().duration_since(start) >= Duration::from_secs(3600));
    // Every transaction reached every node, and no connection ended.
    for node in 0..nodes {
        let app = sim.app::<Relay>(node).unwrap();
        assert_eq!(app.first_seen.len(), sent as usize, "node {node}");
        assert!(app.ended.is_empty(), "node {node}: {:?}", app.ended);
    }
    // Pings ran all hour: every peer has a round trip of about twice its link's latency.
    for &end in &ends {
        let core = sim.core(end).unwrap();
        assert!(core.is_established());
        let rtt = core.last_rtt().expect("pinged");
        assert!(rtt >= Duration::from_millis(40) && rtt < Duration::from_millis(500), "{rtt:?}");
    }
}

#[test]
fn r_n_sim_v2_peers_relay_inventory_over_bip324() {
    let nodes = 20;
    let (mut sim, ends) = network_over(5, nodes, 3, Transport::V2);
    let sent = run_with_transactions(&mut sim, nodes, Duration::from_secs(10), Duration::from_secs(300));
    for node in 0..nodes {
        let app = sim.app::<Relay>(node).unwrap();
        assert_eq!(app.first_seen.len(), sent as usize, "node {node}");
        assert!(app.ended.is_empty(), "node {node}: {:?}", app.ended);
    }
    // Every end, dialer and listener, settled on v2 and relayed through it.
    for &end in &ends {
        let core = sim.core(end).unwrap();
        assert_eq!(core.remote().map(|r| r.transport), Some(Transport::V2));
        assert!(core.state().traffic().per_command().of(Command::INV).messages_received > 0);
    }
}

#[test]
fn r_n_sim_the_same_seed_gives_the_same_run() {
    let run = |seed| {
        let (mut sim, _) = network(seed, 20, 3);
        run_with_transactions(&mut sim, 20, Duration::from_secs(20), Duration::from_secs(600));
        let start = sim.now();
        let seen: Vec<_> = (0..20)
            .map(|n| {
                sim.app::<Relay>(n)
                    .unwrap()
                    .first_seen
                    .get(&txid(5))
                    .map(|t| t.duration_since(start - Duration::from_secs(660)))
            })
            .collect();
        (sim.events(), seen)
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9).0, run(10).0);
}

/// Records every event with its time.
#[derive(Default)]
struct Recorder(Vec<(Instant, PeerId, Event)>);

impl App for Recorder {
    fn on_event(&mut self, ctx: &mut NodeCtx<'_>, peer: PeerId, event: &Event) {
        self.0.push((ctx.now(), peer, event.clone()));
    }
}

impl Recorder {
    fn ended(&self) -> Option<(Instant, DisconnectReason)> {
        self.0.iter().find_map(|(t, _, e)| match e {
            Event::Disconnected(r) => Some((*t, r.clone())),
            _ => None,
        })
    }
    fn handshake_at(&self) -> Instant {
        self.0.iter().find_map(|(t, _, e)| matches!(e, Event::Handshake(_)).then_some(*t)).unwrap()
    }
}

fn pair(link: LinkConfig, a: CoreConfig, b: CoreConfig) -> (Sim, PeerId, PeerId) {
    let mut sim = Sim::new(3);
    let (x, y) = (sim.add_node(Recorder::default()), sim.add_node(Recorder::default()));
    let (pa, pb) = sim.connect_with(x, y, link, a, b);
    sim.run_for(Duration::from_secs(5));
    (sim, pa, pb)
}

fn secs_between(a: Instant, b: Instant) -> f64 {
    b.duration_since(a).as_secs_f64()
}

#[test]
fn r_v3_sim_an_unanswered_remote_ends_on_the_idle_timeout() {
    let a = CoreConfig::new(Direction::Outbound);
    let limit = a.timeouts.idle_timeout.as_secs_f64();
    let (mut sim, _, pb) = pair(LinkConfig::default(), a, CoreConfig::new(Direction::Inbound));
    let last = sim.now();
    sim.blackhole(pb);
    sim.run_for(Duration::from_secs(3000));
    let (at, reason) = sim.app::<Recorder>(0).unwrap().ended().unwrap();
    assert_eq!(reason, DisconnectReason::IdleTimeout);
    // The idle timeout (300 s by default) counts from the last bytes received, shortly before
    // `last`.
    let idle = secs_between(sim.app::<Recorder>(0).unwrap().handshake_at(), at);
    assert!((limit - 1.0..=limit + 1.0).contains(&idle), "{idle}");
    assert!(at > last);
}

#[test]
fn r_v2_sim_an_unanswered_ping_ends_on_the_pong_timeout() {
    let mut a = CoreConfig::new(Direction::Outbound);
    a.timeouts.idle_timeout = Duration::ZERO;
    // Neither may the silent side give up first.
    let mut b = CoreConfig::new(Direction::Inbound);
    b.timeouts.idle_timeout = Duration::ZERO;
    let (mut sim, _, pb) = pair(LinkConfig::default(), a, b);
    sim.blackhole(pb);
    sim.run_for(Duration::from_secs(3000));
    let rec = sim.app::<Recorder>(0).unwrap();
    let (at, reason) = rec.ended().unwrap();
    assert_eq!(reason, DisconnectReason::PongTimeout);
    // First ping 120 s after the handshake, unanswered for 1,200 s.
    let waited = secs_between(rec.handshake_at(), at);
    assert!((1319.0..=1321.0).contains(&waited), "{waited}");
}

#[test]
fn r_v4_sim_an_unanswered_request_ends_on_its_stall_deadline() {
    let a = CoreConfig::new(Direction::Outbound);
    let limit = a.timeouts.headers_stall.as_secs_f64();
    let (mut sim, pa, _) = pair(LinkConfig::default(), a, CoreConfig::new(Direction::Inbound));
    let asked = sim.now();
    let locator = btcpeer_core::bitcoin::p2p::message_blockdata::GetHeadersMessage::new(vec![], Hash::all_zeros());
    sim.act(0, |_: &mut Recorder, ctx| ctx.core(pa).unwrap().send(Message::GetHeaders(locator)));
    sim.run_for(Duration::from_secs(600));
    let (at, reason) = sim.app::<Recorder>(0).unwrap().ended().unwrap();
    assert_eq!(reason, DisconnectReason::StallTimeout { request: Command::GETHEADERS });
    let waited = secs_between(asked, at);
    assert!((limit - 0.1..=limit + 0.1).contains(&waited), "{waited}");
}

#[test]
fn r_v1_sim_pings_measure_the_links_round_trip() {
    let link = LinkConfig { latency: Duration::from_millis(80), ..LinkConfig::default() };
    let (mut sim, pa, pb) = pair(link, CoreConfig::new(Direction::Outbound), CoreConfig::new(Direction::Inbound));
    sim.run_for(Duration::from_secs(600));
    for p in [pa, pb] {
        let rtt = sim.core(p).unwrap().last_rtt().unwrap();
        assert!(rtt >= Duration::from_millis(160) && rtt < Duration::from_millis(165), "{rtt:?}");
    }
}

#[test]
fn r_l6_sim_a_link_lost_mid_frame_ends_both_sides_without_the_message() {
    // The handshake takes a few hundred bytes; the link fails 50 KB into a 100 KB message.
    let link = LinkConfig { cut_after_bytes: Some(50_000), ..LinkConfig::default() };
    let (mut sim, pa, _) = pair(link, CoreConfig::new(Direction::Outbound), CoreConfig::new(Direction::Inbound));
    let big = Message::Unknown { command: Command::new("bigthing").unwrap(), payload: vec![7u8; 100_000].into() };
    sim.act(0, |_: &mut Recorder, ctx| ctx.core(pa).unwrap().send(big));
    sim.run_for(Duration::from_secs(10));
    for node in [0, 1] {
        let rec = sim.app::<Recorder>(node).unwrap();
        assert_eq!(rec.ended().map(|e| e.1), Some(DisconnectReason::RemoteClosed { during_handshake: false }));
        assert!(!rec.0.iter().any(|(_, _, e)| matches!(e, Event::Message(Message::Unknown { .. }))));
    }
}

#[test]
fn r_v5_sim_trickle_delays_follow_the_poisson_means() {
    // Outbound peers announce with a 2 s mean, inbound with 5 s (Core's
    // `OUTBOUND_INVENTORY_BROADCAST_INTERVAL` and `INBOUND_INVENTORY_BROADCAST_INTERVAL`).
    for (dialer_announces, mean) in [(true, 2.0), (false, 5.0)] {
        let link = LinkConfig { latency: Duration::from_millis(10), ..LinkConfig::default() };
        let mut sim = Sim::new(11);
        let (a, b) = (sim.add_node(Relay::default()), sim.add_node(Relay::default()));
        sim.connect_with(a, b, link, txid_relay(Direction::Outbound), txid_relay(Direction::Inbound));
        sim.run_for(Duration::from_secs(5));
        let (from, to) = if dialer_announces { (a, b) } else { (b, a) };
        let trials = 300;
        let mut total = 0.0;
        for n in 0..trials {
            let at = sim.now();
            sim.act(from, |app: &mut Relay, ctx| app.learn(ctx, None, txid(n)));
            sim.run_for(Duration::from_secs(120));
            let seen = sim.app::<Relay>(to).unwrap().first_seen[&txid(n)];
            total += secs_between(at, seen) - 0.01;
        }
        let avg = total / f64::from(trials);
        assert!((avg - mean).abs() < mean * 0.25, "mean {avg} for {mean}");
    }
}

#[test]
fn r_n_sim_lossy_links_still_relay_everything() {
    let mut sim = Sim::new(5);
    let ids: Vec<_> = (0..6).map(|_| sim.add_node(Relay::default())).collect();
    let lossy = LinkConfig { loss: 0.3, ..LinkConfig::default() };
    for w in ids.windows(2) {
        sim.connect_with(w[0], w[1], lossy, txid_relay(Direction::Outbound), txid_relay(Direction::Inbound));
    }
    let sent = run_with_transactions(&mut sim, 6, Duration::from_secs(10), Duration::from_secs(300));
    for &n in &ids {
        assert_eq!(sim.app::<Relay>(n).unwrap().first_seen.len(), sent as usize);
    }
}
