//! A deterministic simulator (feature `sim`): many [`PeerCore`]s on nodes, linked by in-memory
//! links with latency, bandwidth and loss, on simulated time, from one seed.
//!
//! Each link carries v1 bytes both ways as TCP would: in order, each direction serialised at the
//! link's bandwidth, arriving after its latency; a lost segment arrives late (a retransmission
//! timeout), never out of order. A link can be cut (after a number of bytes, mid-frame if so) or
//! blackholed one way (bytes sent are never delivered, as a remote that vanished without a FIN).
//! Time jumps from one event to the next, so a simulated hour of a thousand peers takes seconds,
//! and the same seed gives the same run, event for event.
//!
//! The application on each node is an [`App`]: it sees every [`Event`] of its node's peers and acts
//! on them through [`NodeCtx`] (send, announce, ping, disconnect).
//!
//! ```
//! use std::time::Duration;
//! use btcpeer_core::sim::{App, LinkConfig, NodeCtx, PeerId, Sim};
//! use btcpeer_core::peer::Event;
//!
//! /// Counts handshakes.
//! #[derive(Default)]
//! struct Count(usize);
//! impl App for Count {
//!     fn on_event(&mut self, _ctx: &mut NodeCtx<'_>, _peer: PeerId, event: &Event) {
//!         if matches!(event, Event::Handshake(_)) { self.0 += 1; }
//!     }
//! }
//!
//! let mut sim = Sim::new(7);
//! let (a, b) = (sim.add_node(Count::default()), sim.add_node(Count::default()));
//! sim.connect(a, b, LinkConfig::default());
//! sim.run_for(Duration::from_secs(1));
//! assert_eq!(sim.app::<Count>(a).unwrap().0, 1);
//! assert_eq!(sim.app::<Count>(b).unwrap().0, 1);
//! ```

use std::any::Any;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};

use crate::network::Network;
use crate::peer::{CoreConfig, Direction, Event, PeerCore};
use crate::transport::v1::V1Codec;

/// A node's index in the simulation.
pub type NodeId = usize;
/// One end of a connection (a peer, as its node sees it).
pub type PeerId = usize;

/// How a link behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkConfig {
    /// One-way latency.
    pub latency: Duration,
    /// Bytes per second each way (0: unlimited).
    pub bandwidth: u64,
    /// The chance that a write is delayed by a retransmission timeout (TCP loses no bytes; loss
    /// shows as delay).
    pub loss: f64,
    /// The retransmission timeout a lost write waits.
    pub rto: Duration,
    /// The link fails after this many bytes in total (both ways), mid-frame if it falls there.
    pub cut_after_bytes: Option<u64>,
}

impl Default for LinkConfig {
    /// 50 ms, 10 MB/s, no loss, never cut.
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_millis(50),
            bandwidth: 10_000_000,
            loss: 0.0,
            rto: Duration::from_millis(200),
            cut_after_bytes: None,
        }
    }
}

/// The application on a node.
pub trait App: Any {
    /// An event of one of the node's peers.
    fn on_event(&mut self, ctx: &mut NodeCtx<'_>, peer: PeerId, event: &Event);
}

/// What an [`App`] may do, on its own node's peers.
pub struct NodeCtx<'a> {
    sim: &'a mut Inner,
    node: NodeId,
}

impl NodeCtx<'_> {
    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.sim.now
    }

    /// The node this is.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The node's peers whose connection has not ended.
    pub fn peers(&self) -> Vec<PeerId> {
        let ends = &self.sim.ends;
        self.sim.nodes.get(self.node).map_or_else(Vec::new, |n| {
            n.iter().copied().filter(|&e| ends.get(e).is_some_and(|end| !end.core.is_ended())).collect()
        })
    }

    /// A peer's protocol state, if it is this node's.
    pub fn core(&mut self, peer: PeerId) -> Option<&mut PeerCore> {
        let node = self.node;
        self.sim.ends.get_mut(peer).filter(|e| e.node == node).map(|e| &mut e.core)
    }
}

/// One end of a link.
struct End {
    node: NodeId,
    link: usize,
    side: usize,
    core: PeerCore,
    codec: V1Codec,
    inbuf: BytesMut,
    out: BytesMut,
    timer: Option<Instant>,
    closed: bool,
}

struct Link {
    config: LinkConfig,
    ends: [PeerId; 2],
    /// When each direction is free to send again.
    busy_until: [Instant; 2],
    /// Bytes carried so far, both ways.
    carried: u64,
    /// Bytes from this side are never delivered.
    blackholed: [bool; 2],
    cut: bool,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Delivery {
    Bytes(PeerId, Vec<u8>),
    Close(PeerId),
    Timer(PeerId),
}

struct Inner {
    now: Instant,
    network: Network,
    rng: u64,
    ends: Vec<End>,
    links: Vec<Link>,
    nodes: Vec<Vec<PeerId>>,
    queue: BinaryHeap<Reverse<(Instant, u64, Delivery)>>,
    seq: u64,
    events: u64,
}

/// The simulation: see the [module](self).
pub struct Sim {
    inner: Inner,
    apps: Vec<Option<Box<dyn Any>>>,
    handlers: Vec<Dispatch>,
}

/// Calls an application of a known type through `dyn Any`.
type Dispatch = fn(&mut dyn Any, &mut NodeCtx<'_>, PeerId, &Event);

fn dispatch<A: App>(app: &mut dyn Any, ctx: &mut NodeCtx<'_>, peer: PeerId, event: &Event) {
    if let Some(app) = app.downcast_mut::<A>() {
        app.on_event(ctx, peer, event);
    }
}

impl Inner {
    fn random(&mut self) -> u64 {
        crate::rng::next(&mut self.rng)
    }

    fn push(&mut self, at: Instant, delivery: Delivery) {
        self.seq = self.seq.wrapping_add(1);
        self.queue.push(Reverse((at, self.seq, delivery)));
    }

    /// Sends what `end`'s core has to write onto its link, and re-arms its timer.
    fn pump(&mut self, end: PeerId) {
        let now = self.now;
        let Some(e) = self.ends.get_mut(end) else { return };
        while let Some(message) = e.core.poll_transmit(now) {
            let _ = e.codec.encode_message(&message, &mut e.out);
        }
        let (link_id, side, bytes, ended) = (e.link, e.side, e.out.split().freeze(), e.core.is_ended());
        // A deadline at or before now was just handled: look again a millisecond on, so that a core
        // whose deadline does not move cannot stop the clock.
        let soonest = now.checked_add(Duration::from_millis(1)).unwrap_or(now);
        let timer = e.core.poll_timeout(now).map(|t| t.max(soonest));
        if !bytes.is_empty() {
            self.transmit(link_id, side, bytes);
        }
        if ended {
            self.close_link(link_id);
        }
        if let Some(e) = self.ends.get_mut(end) {
            if timer != e.timer {
                e.timer = timer;
                if let Some(at) = timer {
                    self.push(at, Delivery::Timer(end));
                }
            }
        }
    }

    fn transmit(&mut self, link_id: usize, side: usize, mut bytes: Bytes) {
        let now = self.now;
        let lost = self.links.get(link_id).is_some_and(|l| l.config.loss > 0.0)
            && (self.random() >> 11) as f64 / (1u64 << 53) as f64
                <= self.links.get(link_id).map_or(0.0, |l| l.config.loss);
        let Some(link) = self.links.get_mut(link_id) else { return };
        if link.cut || link.blackholed.get(side).copied().unwrap_or(true) {
            return;
        }
        let mut cut_now = false;
        if let Some(limit) = link.config.cut_after_bytes {
            let room = limit.saturating_sub(link.carried);
            if (bytes.len() as u64) >= room {
                bytes.truncate(usize::try_from(room).unwrap_or(usize::MAX));
                cut_now = true;
            }
        }
        link.carried = link.carried.saturating_add(bytes.len() as u64);
        let busy = link.busy_until.get(side).copied().unwrap_or(now).max(now);
        let serialise = if link.config.bandwidth == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(bytes.len() as f64 / link.config.bandwidth as f64)
        };
        let done = busy.checked_add(serialise).unwrap_or(busy);
        if let Some(b) = link.busy_until.get_mut(side) {
            *b = done;
        }
        let delay = link.config.latency.saturating_add(if lost { link.config.rto } else { Duration::ZERO });
        let arrival = done.checked_add(delay).unwrap_or(done);
        let [first, second] = link.ends;
        let (from, to) = if side == 0 { (first, second) } else { (second, first) };
        if !bytes.is_empty() {
            self.push(arrival, Delivery::Bytes(to, bytes.to_vec()));
        }
        if cut_now {
            if let Some(link) = self.links.get_mut(link_id) {
                link.cut = true;
            }
            self.push(arrival, Delivery::Close(to));
            self.push(arrival, Delivery::Close(from));
        }
    }

    /// An end finished: the other end learns it after the latency (a FIN), unless blackholed.
    fn close_link(&mut self, link_id: usize) {
        let now = self.now;
        let Some(link) = self.links.get_mut(link_id) else { return };
        if link.cut {
            return;
        }
        link.cut = true;
        let at = now.checked_add(link.config.latency).unwrap_or(now);
        let ends = link.ends;
        for end in ends {
            self.push(at, Delivery::Close(end));
        }
    }
}

/// The wall clock the simulated peers put in their versions: a fixed date, for reproducible runs.
fn wall_clock() -> SystemTime {
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(1_700_000_000)).unwrap_or(SystemTime::UNIX_EPOCH)
}

impl Sim {
    /// An empty simulation on regtest, its clock at an arbitrary origin, its randomness from `seed`.
    pub fn new(seed: u64) -> Self {
        Sim {
            inner: Inner {
                now: Instant::now(),
                network: Network::REGTEST,
                rng: seed | 1,
                ends: Vec::new(),
                links: Vec::new(),
                nodes: Vec::new(),
                queue: BinaryHeap::new(),
                seq: 0,
                events: 0,
            },
            apps: Vec::new(),
            handlers: Vec::new(),
        }
    }

    /// Adds a node running `app`.
    pub fn add_node<A: App>(&mut self, app: A) -> NodeId {
        self.inner.nodes.push(Vec::new());
        self.apps.push(Some(Box::new(app)));
        self.handlers.push(dispatch::<A>);
        self.inner.nodes.len().saturating_sub(1)
    }

    /// The application of `node`, if it is an `A`.
    pub fn app<A: App>(&self, node: NodeId) -> Option<&A> {
        self.apps.get(node)?.as_ref()?.downcast_ref::<A>()
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.inner.now
    }

    /// Events processed so far (deliveries and timers).
    pub fn events(&self) -> u64 {
        self.inner.events
    }

    /// A peer's protocol state.
    pub fn core(&self, peer: PeerId) -> Option<&PeerCore> {
        self.inner.ends.get(peer).map(|e| &e.core)
    }

    /// Connects `from` (outbound) to `to` (inbound) with Core's defaults; returns both ends.
    pub fn connect(&mut self, from: NodeId, to: NodeId, link: LinkConfig) -> (PeerId, PeerId) {
        let a = CoreConfig::new(Direction::Outbound);
        let b = CoreConfig::new(Direction::Inbound);
        self.connect_with(from, to, link, a, b)
    }

    /// Connects with the given configurations (their seeds are replaced by the simulation's).
    pub fn connect_with(
        &mut self,
        from: NodeId,
        to: NodeId,
        link: LinkConfig,
        outbound: CoreConfig,
        inbound: CoreConfig,
    ) -> (PeerId, PeerId) {
        let inner = &mut self.inner;
        let link_id = inner.links.len();
        let (a, b) = (inner.ends.len(), inner.ends.len().saturating_add(1));
        for (side, (node, config)) in [(from, outbound), (to, inbound)].into_iter().enumerate() {
            let seed = inner.random();
            let core = PeerCore::new(config.seed(seed), inner.now, wall_clock());
            inner.ends.push(End {
                node,
                link: link_id,
                side,
                core,
                codec: V1Codec::new(inner.network.clone()),
                inbuf: BytesMut::new(),
                out: BytesMut::new(),
                timer: None,
                closed: false,
            });
            if let Some(n) = inner.nodes.get_mut(node) {
                n.push(if side == 0 { a } else { b });
            }
        }
        inner.links.push(Link {
            config: link,
            ends: [a, b],
            busy_until: [inner.now; 2],
            carried: 0,
            blackholed: [false; 2],
            cut: false,
        });
        inner.pump(a);
        inner.pump(b);
        (a, b)
    }

    /// From now on, nothing `peer` writes arrives (the remote sees silence, not a close).
    pub fn blackhole(&mut self, peer: PeerId) {
        let Some((link, side)) = self.inner.ends.get(peer).map(|e| (e.link, e.side)) else { return };
        if let Some(flag) = self.inner.links.get_mut(link).and_then(|l| l.blackholed.get_mut(side)) {
            *flag = true;
        }
    }

    /// Runs an [`App`]'s action on `node` now, as if it happened by itself (a transaction arriving
    /// from elsewhere, a user's command); what it queued is sent.
    pub fn act<A: App, R>(&mut self, node: NodeId, f: impl FnOnce(&mut A, &mut NodeCtx<'_>) -> R) -> Option<R> {
        let mut app = self.apps.get_mut(node)?.take()?;
        let result = app.downcast_mut::<A>().map(|a| f(a, &mut NodeCtx { sim: &mut self.inner, node }));
        if let Some(slot) = self.apps.get_mut(node) {
            *slot = Some(app);
        }
        let peers: Vec<PeerId> = self.inner.nodes.get(node).cloned().unwrap_or_default();
        for peer in peers {
            self.settle(peer);
        }
        result
    }

    /// Runs until `d` of simulated time has passed (or nothing is left to happen).
    pub fn run_for(&mut self, d: Duration) {
        let until = self.inner.now.checked_add(d).unwrap_or(self.inner.now);
        while let Some(Reverse((at, _, _))) = self.inner.queue.peek() {
            if *at > until {
                break;
            }
            let Some(Reverse((at, _, delivery))) = self.inner.queue.pop() else { break };
            self.inner.now = self.inner.now.max(at);
            self.inner.events = self.inner.events.saturating_add(1);
            let now = self.inner.now;
            let peer = match delivery {
                Delivery::Bytes(peer, bytes) => {
                    let Some(e) = self.inner.ends.get_mut(peer).filter(|e| !e.closed) else { continue };
                    e.inbuf.extend_from_slice(&bytes);
                    e.core.handle_v1_bytes(&mut e.codec, &mut e.inbuf, now, wall_clock());
                    peer
                }
                Delivery::Close(peer) => {
                    let Some(e) = self.inner.ends.get_mut(peer).filter(|e| !e.closed) else { continue };
                    e.core.closed(None);
                    e.closed = true;
                    peer
                }
                Delivery::Timer(peer) => {
                    let Some(e) = self.inner.ends.get_mut(peer).filter(|e| !e.closed && e.timer == Some(at)) else {
                        continue;
                    };
                    e.timer = None;
                    e.core.handle_timeout(now);
                    peer
                }
            };
            self.settle(peer);
        }
        self.inner.now = self.inner.now.max(until);
    }

    /// Hands `peer`'s events to its node's application and sends what they queued, until quiet.
    fn settle(&mut self, peer: PeerId) {
        let mut touched = vec![peer];
        while let Some(p) = touched.pop() {
            self.inner.pump(p);
            let Some(node) = self.inner.ends.get(p).map(|e| e.node) else { continue };
            while let Some(event) = self.inner.ends.get_mut(p).and_then(|e| e.core.poll_event()) {
                let (Some(handler), Some(mut app)) =
                    (self.handlers.get(node).copied(), self.apps.get_mut(node).and_then(Option::take))
                else {
                    continue;
                };
                handler(app.as_mut(), &mut NodeCtx { sim: &mut self.inner, node }, p, &event);
                if let Some(slot) = self.apps.get_mut(node) {
                    *slot = Some(app);
                }
                // The application may have queued on any of its peers.
                touched.extend(self.inner.nodes.get(node).into_iter().flatten().copied().filter(|&q| q != p));
                self.inner.pump(p);
            }
        }
    }
}
