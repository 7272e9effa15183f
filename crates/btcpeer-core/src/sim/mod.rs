//! A deterministic simulator (feature `sim`): many [`PeerCore`]s on nodes, linked by in-memory
//! links with latency, bandwidth and loss, on simulated time, from one seed.
//!
//! Each link carries bytes both ways as TCP would — v1 frames, or BIP324 v2 packets when the
//! outbound end's [`CoreConfig::transport`] is [`Transport::V2`](crate::peer::Transport::V2) (inbound
//! ends tell v1 from v2 by the first bytes, as a Core listener does) — in order, each direction serialised at the
//! link's bandwidth, arriving after its latency; a lost segment arrives late (a retransmission
//! timeout), never out of order. A link can be cut (after a number of bytes, mid-frame if so) or
//! blackholed one way (bytes sent are never delivered, as a remote that vanished without a FIN).
//! Time jumps from one event to the next, so a simulated hour of a thousand peers takes seconds,
//! and the same seed gives the same run, event for event.
//!
//! The application on each node is an [`App`]: it sees every [`Event`] of its node's peers and acts
//! on them through [`NodeCtx`] (send, announce, ping, disconnect). Nodes may listen at an address
//! ([`Sim::add_node_at`]): their applications dial each other ([`NodeCtx::dial`]), admit or refuse
//! inbound connections ([`App::on_inbound`]), learn of failed dials ([`App::on_dial_failed`]) and
//! set timers ([`NodeCtx::wake_at`], [`App::on_wake`]) — what a connection policy needs.
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
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::peer::{CoreConfig, Direction, Event, PeerCore};
use crate::wire::Message;

mod net;

use net::{Delivery, Inner, NOBODY, wall_clock};

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

    /// A connection from `remote` reached this node's address, as `peer`: return false to refuse
    /// it (closed at once; the dialer's [`on_dial_failed`](App::on_dial_failed) follows).
    fn on_inbound(&mut self, ctx: &mut NodeCtx<'_>, remote: SocketAddr, peer: PeerId) -> bool {
        let _ = (ctx, remote, peer);
        true
    }

    /// A dial of this node's (`peer`, to `addr`) failed: nobody listens there, or its application
    /// refused. `peer` is ended; it had no events.
    fn on_dial_failed(&mut self, ctx: &mut NodeCtx<'_>, peer: PeerId, addr: SocketAddr) {
        let _ = (ctx, peer, addr);
    }

    /// The timer armed with [`NodeCtx::wake_at`] went off.
    fn on_wake(&mut self, ctx: &mut NodeCtx<'_>) {
        let _ = ctx;
    }
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

    /// The node's own listening address, if it has one.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.sim.node_addr.get(self.node).copied().flatten()
    }

    /// The node's peers whose connection has not ended.
    pub fn peers(&self) -> Vec<PeerId> {
        let ends = &self.sim.ends;
        self.sim.nodes.get(self.node).map_or_else(Vec::new, |n| {
            n.iter().copied().filter(|&e| ends.get(e).is_some_and(|end| !end.closed && !end.core.is_ended())).collect()
        })
    }

    /// A peer's protocol state, if it is this node's.
    pub fn core(&mut self, peer: PeerId) -> Option<&mut PeerCore> {
        let node = self.node;
        self.sim.ends.get_mut(peer).filter(|e| e.node == node).map(|e| &mut e.core)
    }

    /// The remote address of a dialed connection's end: the address dialed, or for the inbound
    /// end the dialer's address with an ephemeral port. `None` for links made by [`Sim::connect`].
    pub fn remote_addr(&self, peer: PeerId) -> Option<SocketAddr> {
        self.sim.ends.get(peer).filter(|e| e.node == self.node).and_then(|e| e.remote)
    }

    /// Queues a message to `peer` (see [`PeerCore::send`]).
    pub fn send(&mut self, peer: PeerId, message: Message) -> bool {
        self.core(peer).is_some_and(|c| c.send(message))
    }

    /// Ends the connection with `peer`.
    pub fn disconnect(&mut self, peer: PeerId) {
        if let Some(c) = self.core(peer) {
            c.disconnect();
        }
    }

    /// Dials `addr` with the library's defaults ([`CoreConfig::new`]); see [`dial_with`](NodeCtx::dial_with).
    pub fn dial(&mut self, addr: SocketAddr) -> PeerId {
        self.dial_with(addr, CoreConfig::new(Direction::Outbound))
    }

    /// Dials `addr` with `config` (its seed replaced by the simulation's), over the
    /// [dial link](Sim::set_dial_link): the outbound end now (it may be sent to at once), the
    /// connection if a node listens at `addr` and its application admits it, else
    /// [`App::on_dial_failed`] after the round trip.
    pub fn dial_with(&mut self, addr: SocketAddr, config: CoreConfig) -> PeerId {
        let node = self.node;
        self.sim.dial(node, addr, config)
    }

    /// Arms this node's timer: [`App::on_wake`] runs at `at` (at the soonest a millisecond from
    /// now), or sooner if it was armed sooner. Re-arm it from `on_wake` as needed.
    pub fn wake_at(&mut self, at: Instant) {
        let node = self.node;
        self.sim.wake_at(node, at);
    }
}

/// The simulation: see the [module](self).
pub struct Sim {
    inner: Inner,
    apps: Vec<Option<Box<dyn Any>>>,
    handlers: Vec<Dispatch>,
}

/// A call into an application.
enum Call<'a> {
    Event(PeerId, &'a Event),
    Inbound(SocketAddr, PeerId),
    DialFailed(PeerId, SocketAddr),
    Wake,
}

/// Calls an application of a known type through `dyn Any`.
type Dispatch = fn(&mut dyn Any, &mut NodeCtx<'_>, Call<'_>) -> bool;

fn dispatch<A: App>(app: &mut dyn Any, ctx: &mut NodeCtx<'_>, call: Call<'_>) -> bool {
    let Some(app) = app.downcast_mut::<A>() else { return false };
    match call {
        Call::Event(peer, event) => app.on_event(ctx, peer, event),
        Call::Inbound(remote, peer) => return app.on_inbound(ctx, remote, peer),
        Call::DialFailed(peer, addr) => app.on_dial_failed(ctx, peer, addr),
        Call::Wake => app.on_wake(ctx),
    }
    true
}

impl Sim {
    /// An empty simulation on regtest, its clock at an arbitrary origin, its randomness from `seed`.
    pub fn new(seed: u64) -> Self {
        Sim { inner: Inner::new(seed), apps: Vec::new(), handlers: Vec::new() }
    }

    /// Adds a node running `app`.
    pub fn add_node<A: App>(&mut self, app: A) -> NodeId {
        self.inner.nodes.push(Vec::new());
        self.inner.node_addr.push(None);
        self.inner.wakes.push(None);
        self.apps.push(Some(Box::new(app)));
        self.handlers.push(dispatch::<A>);
        self.inner.nodes.len().saturating_sub(1)
    }

    /// Adds a node running `app`, listening at `addr` (a later node at the same address takes it
    /// over).
    pub fn add_node_at<A: App>(&mut self, app: A, addr: SocketAddr) -> NodeId {
        let node = self.add_node(app);
        if let Some(slot) = self.inner.node_addr.get_mut(node) {
            *slot = Some(addr);
        }
        self.inner.listeners.insert(addr, node);
        node
    }

    /// The link dialed connections get (default: [`LinkConfig::default`]).
    pub fn set_dial_link(&mut self, link: LinkConfig) {
        self.inner.dial_link = link;
    }

    /// The node listening at `addr`.
    pub fn node_at(&self, addr: SocketAddr) -> Option<NodeId> {
        self.inner.listeners.get(&addr).copied()
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

    /// The node a peer belongs to.
    pub fn node_of(&self, peer: PeerId) -> Option<NodeId> {
        self.inner.ends.get(peer).map(|e| e.node)
    }

    /// The other end of `peer`'s link.
    pub fn other_end(&self, peer: PeerId) -> Option<PeerId> {
        let e = self.inner.ends.get(peer)?;
        let [a, b] = self.inner.links.get(e.link)?.ends;
        Some(if a == peer { b } else { a })
    }

    /// Connects `from` (outbound) to `to` (inbound) with the library's defaults ([`CoreConfig::new`]); returns both ends.
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
        self.inner.link(from, to, link, outbound, inbound, [None, None], true)
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
        self.settle_node(node);
        result
    }

    /// Calls `node`'s application; `None` if it has none (or is in a call already).
    fn call(&mut self, node: NodeId, call: Call<'_>) -> Option<bool> {
        let handler = self.handlers.get(node).copied()?;
        let mut app = self.apps.get_mut(node).and_then(Option::take)?;
        let result = handler(app.as_mut(), &mut NodeCtx { sim: &mut self.inner, node }, call);
        if let Some(slot) = self.apps.get_mut(node) {
            *slot = Some(app);
        }
        Some(result)
    }

    /// Sends what `node`'s application queued on any of its peers, and hands their events over.
    fn settle_node(&mut self, node: NodeId) {
        let peers: Vec<PeerId> = self.live_peers(node);
        for peer in peers {
            self.settle(peer);
        }
    }

    fn live_peers(&mut self, node: NodeId) -> Vec<PeerId> {
        let ends = &self.inner.ends;
        let Some(list) = self.inner.nodes.get_mut(node) else { return Vec::new() };
        // Ended connections leave the node's list once their last event is out.
        list.retain(|&p| ends.get(p).is_some_and(|e| !(e.closed && e.core.is_ended()) || e.timer.is_some()));
        list.clone()
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
                    e.core.handle_bytes(&mut e.inbuf, now, wall_clock());
                    peer
                }
                Delivery::Close(peer) => {
                    let Some(e) = self.inner.ends.get_mut(peer).filter(|e| !e.closed) else { continue };
                    e.core.stream_closed(None);
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
                Delivery::Accept(peer) => {
                    self.accept(peer);
                    continue;
                }
                Delivery::DialFailed(peer, addr) => {
                    let Some(e) = self.inner.ends.get_mut(peer).filter(|e| !e.closed) else { continue };
                    e.closed = true;
                    e.core.closed(None);
                    while e.core.poll_event().is_some() {}
                    let node = e.node;
                    self.call(node, Call::DialFailed(peer, addr));
                    self.settle_node(node);
                    continue;
                }
                Delivery::Wake(node) => {
                    if self.inner.wakes.get(node).copied().flatten() != Some(at) {
                        continue;
                    }
                    if let Some(w) = self.inner.wakes.get_mut(node) {
                        *w = None;
                    }
                    self.call(node, Call::Wake);
                    self.settle_node(node);
                    continue;
                }
            };
            self.settle(peer);
        }
        self.inner.now = self.inner.now.max(until);
    }

    /// A dial reached its address: the listener's application decides.
    fn accept(&mut self, peer: PeerId) {
        let Some((node, remote, closed)) = self.inner.ends.get(peer).map(|e| (e.node, e.remote, e.closed)) else {
            return;
        };
        let dialer_gone =
            self.other_end(peer).and_then(|a| self.inner.ends.get(a)).is_none_or(|a| a.closed || a.core.is_ended());
        if closed || dialer_gone {
            if let Some(e) = self.inner.ends.get_mut(peer) {
                e.closed = true;
            }
            return;
        }
        let admitted = node != NOBODY && {
            if let Some(list) = self.inner.nodes.get_mut(node) {
                list.push(peer);
            }
            let remote = remote.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            self.call(node, Call::Inbound(remote, peer)) == Some(true)
        };
        if admitted {
            self.settle_node(node);
        } else {
            if let Some(list) = self.inner.nodes.get_mut(node) {
                list.retain(|&p| p != peer);
            }
            self.inner.refuse(peer);
        }
    }

    /// Hands `peer`'s events to its node's application and sends what they queued, until quiet.
    fn settle(&mut self, peer: PeerId) {
        let mut touched = vec![peer];
        while let Some(p) = touched.pop() {
            self.inner.pump(p);
            let Some(node) = self.inner.ends.get(p).map(|e| e.node) else { continue };
            while let Some(event) = self.inner.ends.get_mut(p).and_then(|e| e.core.poll_event()) {
                if self.call(node, Call::Event(p, &event)).is_none() {
                    continue;
                }
                // The application may have queued on any of its peers.
                let others: Vec<PeerId> = self.live_peers(node).into_iter().filter(|&q| q != p).collect();
                touched.extend(others);
                self.inner.pump(p);
            }
            // `handle_bytes` stops after a batch of events: take the rest of what was read.
            let now = self.inner.now;
            let more = self
                .inner
                .ends
                .get_mut(p)
                .filter(|e| !e.closed && !e.inbuf.is_empty())
                .is_some_and(|e| e.core.handle_bytes(&mut e.inbuf, now, wall_clock()) || e.core.has_events());
            if more {
                touched.push(p);
            }
        }
    }
}
