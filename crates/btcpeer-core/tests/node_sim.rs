//! NodeCore in the simulator: an App drives PeerCore events into it and its dials and actions
//! into the peers. 200 nodes, each knowing one seed address (the node before it), form a
//! connected graph through addr gossip alone (connected even without the seeds' links),
//! within their limits and with diverse outbound groups; a flooding node is held to the token
//! bucket; feelers move addresses to tried.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use btcpeer_core::addrbook::{AddrBook, Endpoint, group};
use btcpeer_core::bitcoin::p2p::ServiceFlags;
use btcpeer_core::bitcoin::p2p::address::{AddrV2, AddrV2Message, Address};
use btcpeer_core::node::{Action, Admission, ConnId, ConnKind, Hello, NodeCore, NodeSettings};
use btcpeer_core::peer::{CoreConfig, Direction, Event};
use btcpeer_core::sim::{App, NodeCtx, PeerId, Sim};
use btcpeer_core::wire::Message;

const UNIX0: u64 = 1_700_000_000;

fn full() -> ServiceFlags {
    ServiceFlags::NETWORK | ServiceFlags::WITNESS
}

fn v2(a: SocketAddr) -> AddrV2 {
    match a.ip() {
        std::net::IpAddr::V4(v4) => AddrV2::Ipv4(v4),
        std::net::IpAddr::V6(v6) => AddrV2::Ipv6(v6),
    }
}

fn msg(a: SocketAddr, time: u64) -> AddrV2Message {
    AddrV2Message { time: time as u32, services: full(), addr: v2(a), port: a.port() }
}

/// A node: NodeCore and the maps between its connections and the simulator's peers.
struct NodeApp {
    core: NodeCore,
    t0: Instant,
    peer_of: HashMap<ConnId, PeerId>,
    conn_of: HashMap<PeerId, ConnId>,
    /// Limits or group diversity broken, as seen at any step.
    violations: Vec<String>,
    /// Feelers whose handshake completed, and how many of them had moved to tried by then.
    feelers: (usize, usize),
    checks: u64,
}

impl NodeApp {
    fn new(settings: NodeSettings, book: AddrBook, t0: Instant) -> Self {
        NodeApp {
            core: NodeCore::new(settings, book, t0),
            t0,
            peer_of: HashMap::new(),
            conn_of: HashMap::new(),
            violations: Vec::new(),
            feelers: (0, 0),
            checks: 0,
        }
    }

    fn unix(&self, ctx: &NodeCtx<'_>) -> u64 {
        UNIX0 + ctx.now().duration_since(self.t0).as_secs()
    }

    fn map(&mut self, id: ConnId, peer: PeerId) {
        self.peer_of.insert(id, peer);
        self.conn_of.insert(peer, id);
    }

    fn unmap(&mut self, peer: PeerId) -> Option<ConnId> {
        let id = self.conn_of.remove(&peer)?;
        self.peer_of.remove(&id);
        Some(id)
    }

    /// Dials, actions, the limit checks and the next wake.
    fn drive(&mut self, ctx: &mut NodeCtx<'_>) {
        let (now, unix) = (ctx.now(), self.unix(ctx));
        while let Some(d) = self.core.poll_dial(now, unix) {
            let mut config = CoreConfig::new(Direction::Outbound);
            config.rules.relay = d.kind.relays_tx();
            let peer = ctx.dial_with(d.addr, config);
            self.map(d.id, peer);
        }
        self.core.poll_addr_relay(now, unix);
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::GetAddr { to } => {
                    if let Some(&p) = self.peer_of.get(&to) {
                        ctx.send(p, Message::GetAddr);
                    }
                }
                Action::Addr { to, addrs } => {
                    if let Some(&p) = self.peer_of.get(&to) {
                        let v1: Vec<(u32, Address)> = addrs
                            .iter()
                            .filter_map(|a| match a.addr {
                                AddrV2::Ipv4(ip) => {
                                    Some((a.time, Address::new(&SocketAddr::new(ip.into(), a.port), a.services)))
                                }
                                _ => None,
                            })
                            .collect();
                        ctx.send(p, Message::Addr(v1));
                    }
                }
                Action::Disconnect { id, .. } => {
                    if let Some(&p) = self.peer_of.get(&id) {
                        ctx.disconnect(p);
                    }
                }
                _ => {}
            }
        }
        self.check();
        let soon = now + Duration::from_secs(10);
        ctx.wake_at(self.core.poll_timeout().map_or(soon, |t| t.min(soon)));
    }

    fn check(&mut self) {
        self.checks += 1;
        let c = self.core.counts();
        let s = self.core.settings();
        if c.inbound > s.max_inbound() || c.full_relay > s.full_relay || c.block_relay > s.block_relay || c.feeler > 1 {
            self.violations.push(format!("{c:?}"));
        }
        let mut groups = HashSet::new();
        for conn in self.core.conns() {
            if matches!(conn.kind, ConnKind::FullRelay | ConnKind::BlockRelay) && !groups.insert(group(&v2(conn.addr)))
            {
                self.violations.push(format!("two outbound in the group of {}", conn.addr));
            }
        }
    }
}

impl App for NodeApp {
    fn on_event(&mut self, ctx: &mut NodeCtx<'_>, peer: PeerId, event: &Event) {
        let (now, unix) = (ctx.now(), self.unix(ctx));
        let Some(&id) = self.conn_of.get(&peer) else { return };
        match event {
            Event::Handshake(info) => {
                let feeler = self.core.conn(id).map(|c| (c.kind, c.addr));
                self.core.established(id, &Hello::from(info), now, unix);
                if let Some((ConnKind::Feeler, addr)) = feeler {
                    self.feelers.0 += 1;
                    let tried =
                        self.core.book().info(&Endpoint::new(v2(addr), addr.port())).is_some_and(|i| i.in_tried);
                    self.feelers.1 += usize::from(tried);
                }
            }
            Event::Message(m) => self.core.received(id, m, now, unix),
            Event::Pong { rtt } => self.core.ping_sample(id, *rtt),
            Event::Disconnected(reason) => {
                self.unmap(peer);
                let misbehaved = btcpeer_core::node::discourages(reason);
                self.core.closed(id, misbehaved, now, unix);
            }
            _ => {}
        }
        self.drive(ctx);
    }

    fn on_inbound(&mut self, ctx: &mut NodeCtx<'_>, remote: SocketAddr, peer: PeerId) -> bool {
        let (now, unix) = (ctx.now(), self.unix(ctx));
        let admitted = match self.core.inbound(remote, now, unix) {
            Admission::Accept(id) | Admission::AcceptEvicting { id, .. } => {
                self.map(id, peer);
                true
            }
            _ => false,
        };
        self.drive(ctx);
        admitted
    }

    fn on_dial_failed(&mut self, ctx: &mut NodeCtx<'_>, peer: PeerId, _addr: SocketAddr) {
        if let Some(id) = self.unmap(peer) {
            let (now, unix) = (ctx.now(), self.unix(ctx));
            self.core.dial_failed(id, false, now, unix);
        }
        self.drive(ctx);
    }

    fn on_wake(&mut self, ctx: &mut NodeCtx<'_>) {
        self.drive(ctx);
    }
}

fn settings(i: usize, addr: SocketAddr) -> NodeSettings {
    let mut s = NodeSettings::default();
    s.seed = 1000 + i as u64;
    s.key = [(i % 251) as u8 + 1; 32];
    s.local_addr = Some(addr);
    s
}

/// Node `i`'s address: two nodes per /16, 100 groups for 200 nodes.
fn node_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([21, (i / 2) as u8, (i % 2) as u8, 1], 8333))
}

/// The nodes reachable from node 0 over established connections.
fn reached(sim: &Sim, nodes: usize) -> usize {
    reached_over(sim, nodes, |_, _| true)
}

/// The same over the connections `keep` accepts (between two nodes).
fn reached_over(sim: &Sim, nodes: usize, keep: impl Fn(usize, usize) -> bool) -> usize {
    let mut seen = vec![false; nodes];
    let mut queue = VecDeque::from([0]);
    seen[0] = true;
    while let Some(n) = queue.pop_front() {
        let app = sim.app::<NodeApp>(n).unwrap();
        for conn in app.core.conns().filter(|c| c.established) {
            let Some(&peer) = app.peer_of.get(&conn.id) else { continue };
            let Some(other) = sim.other_end(peer).and_then(|p| sim.node_of(p)) else { continue };
            if other < nodes && !seen[other] && keep(n, other) {
                seen[other] = true;
                queue.push_back(other);
            }
        }
    }
    seen.iter().filter(|s| **s).count()
}

#[test]
fn r_n_sim_200_nodes_each_from_one_seed_address_connect_through_addr_gossip_within_their_limits() {
    let nodes = 200;
    let mut sim = Sim::new(17);
    let t0 = sim.now();
    for i in 0..nodes {
        let addr = node_addr(i);
        let mut book = AddrBook::new([(i % 250) as u8 + 3; 32], i as u64 + 7);
        // A chain: each node starts knowing only the node before it.
        if i != 0 {
            let seed = node_addr(i - 1);
            book.add(&[msg(seed, UNIX0)], &Endpoint::new(v2(seed), seed.port()), UNIX0);
        }
        sim.add_node_at(NodeApp::new(settings(i, addr), book, t0), addr);
    }
    // The nodes start one after another, half a second apart.
    for i in 0..nodes {
        sim.act(i, |app: &mut NodeApp, ctx| app.drive(ctx));
        sim.run_for(Duration::from_millis(500));
    }
    let mut connected_at = None;
    for step in 0..40 {
        sim.run_for(Duration::from_secs(30));
        if reached(&sim, nodes) == nodes {
            connected_at = Some(100 + 30 * (step + 1));
            break;
        }
    }
    if connected_at.is_none() {
        for n in 0..nodes {
            let app = sim.app::<NodeApp>(n).unwrap();
            let est = app.core.conns().filter(|c| c.established).count();
            if est < 3 {
                eprintln!(
                    "node {n}: book {} tried {} counts {:?} est {est} timeout {:?}",
                    app.core.book().len(),
                    app.core.book().tried_len(),
                    app.core.counts(),
                    app.core.poll_timeout().map(|t| t.duration_since(t0))
                );
            }
        }
    }
    let at = connected_at.unwrap_or_else(|| panic!("only {} of {nodes} reached", reached(&sim, nodes)));
    assert!(at <= 1300, "{at}");
    // Then ten more minutes: the graph stays connected and within its limits while churning.
    sim.run_for(Duration::from_secs(600));
    assert_eq!(reached(&sim, nodes), nodes);
    // Connected without the seeds' links too: gossip, not the chain, holds the graph together.
    assert_eq!(reached_over(&sim, nodes, |a, b| a.abs_diff(b) != 1), nodes);
    let (mut feelers, mut tried, mut outbound) = (0, 0, 0);
    for n in 0..nodes {
        let app = sim.app::<NodeApp>(n).unwrap();
        assert!(app.violations.is_empty(), "node {n}: {:?}", app.violations);
        assert!(app.checks > 10);
        feelers += app.feelers.0;
        tried += app.feelers.1;
        outbound += app.core.counts().full_relay;
        // Gossip, not the seed alone, filled the book.
        if n != 0 {
            assert!(app.core.book().len() > 1, "node {n}");
        }
    }
    let books: usize = (0..nodes).map(|n| sim.app::<NodeApp>(n).unwrap().core.book().len()).sum();
    eprintln!("connected at {at} s; {outbound} full-relay outbound; {feelers} feelers; mean book {}", books / nodes);
    assert!(books / nodes >= 20, "gossip spread the addresses: {}", books / nodes);
    // The outbound slots filled up over the network (8 full-relay each once addresses spread).
    assert!(outbound > nodes * 6, "{outbound}");
    assert!(feelers > 0, "feelers ran");
    // A feeler's success moves its address to tried unless the tried slot is taken: then Core's
    // `Good_` (test-before-evict) leaves it in new with a collision to resolve, so nearly all.
    assert!(tried * 100 >= feelers * 99, "feelers' addresses moved to tried: {tried} of {feelers}");
}

/// Sends `addr` of 1,000 fresh addresses every second to every peer once its handshake is done.
struct Flooder {
    t0: Instant,
    ready: Vec<PeerId>,
    sent: u64,
    dial: Option<SocketAddr>,
}

impl App for Flooder {
    fn on_event(&mut self, ctx: &mut NodeCtx<'_>, peer: PeerId, event: &Event) {
        if matches!(event, Event::Handshake(_)) {
            self.ready.push(peer);
            ctx.wake_at(ctx.now());
        }
    }

    fn on_wake(&mut self, ctx: &mut NodeCtx<'_>) {
        if let Some(a) = self.dial.take() {
            ctx.dial(a);
            return;
        }
        let unix = UNIX0 + ctx.now().duration_since(self.t0).as_secs();
        for &p in &self.ready {
            let addrs: Vec<(u32, Address)> = (0..1000u64)
                .map(|i| {
                    let n = self.sent * 1000 + i;
                    let a =
                        SocketAddr::from(([50 + (n % 150) as u8, (n / 150 % 256) as u8, (n / 38400) as u8, 1], 8333));
                    (unix as u32, Address::new(&a, full()))
                })
                .collect();
            ctx.send(p, Message::Addr(addrs));
        }
        self.sent += 1;
        ctx.wake_at(ctx.now() + Duration::from_secs(1));
    }
}

/// The victim's book growth from the flooder, and the addresses it processed from it.
fn flood_run(victim_dials: bool, secs: u64) -> (usize, u64) {
    let mut sim = Sim::new(23);
    let t0 = sim.now();
    let (va, fa) = (node_addr(0), SocketAddr::from(([45, 1, 1, 1], 8333)));
    let mut book = AddrBook::new([9; 32], 9);
    let mut s = settings(0, va);
    s.feelers = false;
    if victim_dials {
        book.add(&[msg(fa, UNIX0)], &Endpoint::new(v2(fa), fa.port()), UNIX0);
    } else {
        s.dial_outbound = false;
    }
    let victim = sim.add_node_at(NodeApp::new(s, book, t0), va);
    let flooder = Flooder { t0, ready: Vec::new(), sent: 0, dial: (!victim_dials).then_some(va) };
    let f = sim.add_node_at(flooder, fa);
    sim.act(victim, |app: &mut NodeApp, ctx| app.drive(ctx));
    sim.act(f, |_: &mut Flooder, ctx| ctx.wake_at(ctx.now()));
    sim.run_for(Duration::from_secs(secs));
    assert!(sim.app::<Flooder>(f).unwrap().sent >= secs - 5);
    let app = sim.app::<NodeApp>(victim).unwrap();
    let from_flooder = app.core.book().entries().filter(|e| e.source == v2(fa)).count();
    let processed = app.core.conns().find(|c| c.addr.ip() == fa.ip()).map_or(0, |c| c.addr_processed);
    (from_flooder, processed)
}

#[test]
fn r_n_sim_a_flooding_node_is_held_to_the_token_bucket() {
    let secs = 300;
    // It dialed us: one token to start, 0.1 a second.
    let (grew, processed) = flood_run(false, secs);
    let rate = secs as f64 * 0.1;
    assert!(processed as f64 <= 1.0 + rate + 1.0, "{processed}");
    assert!(grew as f64 <= 1.0 + rate + 1.0, "{grew}");
    assert!(processed >= 20, "the rate is granted: {processed}");
    // We dialed it and sent getaddr: 1,000 more for its answer, no more.
    let (grew, processed) = flood_run(true, secs);
    assert!(processed as f64 <= 1001.0 + rate + 1.0, "{processed}");
    assert!(grew as f64 <= 1001.0 + rate + 1.0, "{grew}");
    assert!(processed >= 1000, "{processed}");
}

/// Records what the simulator tells a policy.
#[derive(Default)]
struct Probe {
    admit: bool,
    failed: Vec<SocketAddr>,
    inbound: Vec<SocketAddr>,
    wakes: Vec<Instant>,
    handshakes: usize,
}

impl App for Probe {
    fn on_event(&mut self, _ctx: &mut NodeCtx<'_>, _peer: PeerId, event: &Event) {
        self.handshakes += usize::from(matches!(event, Event::Handshake(_)));
    }
    fn on_inbound(&mut self, _ctx: &mut NodeCtx<'_>, remote: SocketAddr, _peer: PeerId) -> bool {
        self.inbound.push(remote);
        self.admit
    }
    fn on_dial_failed(&mut self, _ctx: &mut NodeCtx<'_>, _peer: PeerId, addr: SocketAddr) {
        self.failed.push(addr);
    }
    fn on_wake(&mut self, ctx: &mut NodeCtx<'_>) {
        self.wakes.push(ctx.now());
    }
}

#[test]
fn r_n_sim_dials_reach_listeners_who_admit_or_refuse_and_timers_fire() {
    let mut sim = Sim::new(5);
    let (a, b, c) = ("1.1.1.1:8333".parse().unwrap(), "2.2.2.2:8333".parse().unwrap(), "3.3.3.3:8333".parse().unwrap());
    let na = sim.add_node_at(Probe::default(), a);
    let nb = sim.add_node_at(Probe { admit: true, ..Probe::default() }, b);
    let nc = sim.add_node_at(Probe::default(), c);
    let start = sim.now();
    let nowhere: SocketAddr = "4.4.4.4:8333".parse().unwrap();
    let (to_b, to_c) = sim
        .act(na, |_: &mut Probe, ctx| {
            ctx.wake_at(ctx.now() + Duration::from_secs(3));
            ctx.dial(nowhere);
            (ctx.dial(b), ctx.dial(c))
        })
        .unwrap();
    sim.run_for(Duration::from_secs(5));
    let pa = sim.app::<Probe>(na).unwrap();
    let mut failed = pa.failed.clone();
    failed.sort();
    assert_eq!(failed, vec![c, nowhere], "refused by c, nobody at 4.4.4.4");
    assert_eq!(pa.handshakes, 1, "b admitted");
    assert_eq!(pa.wakes, vec![start + Duration::from_secs(3)]);
    assert_eq!(sim.app::<Probe>(nb).unwrap().handshakes, 1);
    assert_eq!(sim.app::<Probe>(nb).unwrap().inbound[0].ip(), a.ip(), "the dialer's address");
    assert_eq!(sim.app::<Probe>(nc).unwrap().inbound.len(), 1);
    assert!(sim.core(to_b).unwrap().is_established());
    assert!(sim.core(to_c).unwrap().is_ended());
}
