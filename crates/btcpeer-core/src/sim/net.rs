//! The simulated network under [`Sim`](super::Sim): ends, links carrying bytes as TCP would,
//! and the queue of deliveries on simulated time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};

use super::{LinkConfig, NodeId, PeerId};
use crate::network::Network;
use crate::peer::Transport;
use crate::peer::{CoreConfig, Direction, PeerCore};
use crate::transport::framing::{Framing, TransportPolicy};
use crate::transport::v2_handshake::V2Options;

/// One end of a link.
pub(super) struct End {
    pub(super) node: NodeId,
    pub(super) link: usize,
    pub(super) side: usize,
    pub(super) core: PeerCore,
    pub(super) inbuf: BytesMut,
    pub(super) out: BytesMut,
    pub(super) timer: Option<Instant>,
    pub(super) closed: bool,
    /// The remote's address, for ends of dialed connections.
    pub(super) remote: Option<SocketAddr>,
}

pub(super) struct Link {
    pub(super) config: LinkConfig,
    pub(super) ends: [PeerId; 2],
    /// When each direction is free to send again.
    pub(super) busy_until: [Instant; 2],
    /// Bytes carried so far, both ways.
    pub(super) carried: u64,
    /// Bytes from this side are never delivered.
    pub(super) blackholed: [bool; 2],
    pub(super) cut: bool,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Delivery {
    Bytes(PeerId, Vec<u8>),
    Close(PeerId),
    Timer(PeerId),
    /// A dial reaches its address: the listener's application admits the inbound end or not.
    Accept(PeerId),
    /// A dial's refusal reaches the dialer: its outbound end, and the address dialed.
    DialFailed(PeerId, SocketAddr),
    /// A node's application timer.
    Wake(NodeId),
}

/// Where nothing listens.
pub(super) const NOBODY: NodeId = usize::MAX;

pub(super) struct Inner {
    pub(super) now: Instant,
    pub(super) network: Network,
    pub(super) rng: u64,
    pub(super) ends: Vec<End>,
    pub(super) links: Vec<Link>,
    pub(super) nodes: Vec<Vec<PeerId>>,
    pub(super) queue: BinaryHeap<Reverse<(Instant, u64, Delivery)>>,
    pub(super) seq: u64,
    pub(super) events: u64,
    /// Each node's listening address, if it has one.
    pub(super) node_addr: Vec<Option<SocketAddr>>,
    /// Who listens where.
    pub(super) listeners: HashMap<SocketAddr, NodeId>,
    /// Each node's armed application timer.
    pub(super) wakes: Vec<Option<Instant>>,
    /// The link dialed connections get.
    pub(super) dial_link: LinkConfig,
    /// The next ephemeral port a dialer's end uses.
    pub(super) next_port: u16,
}

impl Inner {
    pub(super) fn new(seed: u64) -> Self {
        Inner {
            now: Instant::now(),
            network: Network::REGTEST,
            rng: seed | 1,
            ends: Vec::new(),
            links: Vec::new(),
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            events: 0,
            node_addr: Vec::new(),
            listeners: HashMap::new(),
            wakes: Vec::new(),
            dial_link: LinkConfig::default(),
            next_port: 40_000,
        }
    }

    pub(super) fn random(&mut self) -> u64 {
        crate::rng::next(&mut self.rng)
    }

    pub(super) fn push(&mut self, at: Instant, delivery: Delivery) {
        self.seq = self.seq.wrapping_add(1);
        self.queue.push(Reverse((at, self.seq, delivery)));
    }

    /// A millisecond from now: what a deadline at or before now is moved to, so that a deadline
    /// that does not move cannot stop the clock.
    pub(super) fn soonest(&self) -> Instant {
        self.now.checked_add(Duration::from_millis(1)).unwrap_or(self.now)
    }

    /// Arms `node`'s application timer for `at`, unless it is armed sooner.
    pub(super) fn wake_at(&mut self, node: NodeId, at: Instant) {
        let at = at.max(self.soonest());
        let Some(slot) = self.wakes.get_mut(node) else { return };
        if slot.is_some_and(|t| t <= at) {
            return;
        }
        *slot = Some(at);
        self.push(at, Delivery::Wake(node));
    }

    /// A link between `from` (outbound) and `to` (inbound); returns both ends. The inbound end is
    /// listed on its node only if `listed`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn link(
        &mut self,
        from: NodeId,
        to: NodeId,
        link: LinkConfig,
        outbound: CoreConfig,
        inbound: CoreConfig,
        remotes: [Option<SocketAddr>; 2],
        listed: bool,
    ) -> (PeerId, PeerId) {
        let link_id = self.links.len();
        let (a, b) = (self.ends.len(), self.ends.len().saturating_add(1));
        for (side, (node, config)) in [(from, outbound), (to, inbound)].into_iter().enumerate() {
            let seed = self.random();
            let framing = self.framing(config.direction, config.transport);
            let core = PeerCore::framed(config.seed(seed), framing, self.now, wall_clock());
            self.ends.push(End {
                node,
                link: link_id,
                side,
                core,
                inbuf: BytesMut::new(),
                out: BytesMut::new(),
                timer: None,
                closed: false,
                remote: remotes.get(side).copied().flatten(),
            });
            if side == 0 || listed {
                if let Some(n) = self.nodes.get_mut(node) {
                    n.push(if side == 0 { a } else { b });
                }
            }
        }
        self.links.push(Link {
            config: link,
            ends: [a, b],
            busy_until: [self.now; 2],
            carried: 0,
            blackholed: [false; 2],
            cut: false,
        });
        self.pump(a);
        self.pump(b);
        (a, b)
    }

    /// An end's framing: an outbound end speaks its configuration's transport; an inbound end
    /// takes v1 and v2 initiators alike, as a Core listener does. v2 handshakes send no garbage and
    /// no decoys here, so that a seeded run's byte counts (and so its timing) repeat.
    fn framing(&self, direction: Direction, transport: Transport) -> Framing {
        let policy = match (direction, transport) {
            (Direction::Inbound, _) => TransportPolicy::Auto,
            (Direction::Outbound, Transport::V2) => TransportPolicy::V2,
            (Direction::Outbound, _) => TransportPolicy::V1,
        };
        let opts = V2Options { garbage_len: Some(0), decoys: Vec::new() };
        Framing::new(self.network.clone(), direction, policy, opts)
            .unwrap_or_else(|_| Framing::v1(self.network.clone(), direction))
    }

    /// `from` dials `addr` with `config`: the outbound end now, the listener's decision after the
    /// link's latency.
    pub(super) fn dial(&mut self, from: NodeId, addr: SocketAddr, config: CoreConfig) -> PeerId {
        let to = self.listeners.get(&addr).copied().unwrap_or(NOBODY);
        let ip = self.node_addr.get(from).copied().flatten().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        self.next_port = self.next_port.checked_add(1).unwrap_or(40_000);
        let local = SocketAddr::new(ip, self.next_port);
        let link = self.dial_link;
        let inbound = CoreConfig::new(Direction::Inbound);
        let (a, b) = self.link(from, to, link, config, inbound, [Some(addr), Some(local)], false);
        let at = self.now.checked_add(link.latency).unwrap_or(self.now);
        self.push(at, Delivery::Accept(b));
        a
    }

    /// The inbound end `b` was refused: nothing more crosses its link, and the dialer learns it
    /// after the latency.
    pub(super) fn refuse(&mut self, b: PeerId) {
        let Some(e) = self.ends.get_mut(b) else { return };
        e.closed = true;
        e.core.closed(None);
        while e.core.poll_event().is_some() {}
        let (link_id, addr) = (e.link, e.remote);
        let Some(link) = self.links.get_mut(link_id) else { return };
        link.cut = true;
        let (a, latency) = (link.ends[0], link.config.latency);
        let dialed = self.ends.get(a).and_then(|e| e.remote).or(addr);
        let at = self.now.checked_add(latency).unwrap_or(self.now);
        if let Some(dialed) = dialed {
            self.push(at, Delivery::DialFailed(a, dialed));
        }
    }

    /// Sends what `end`'s core has to write onto its link, and re-arms its timer.
    pub(super) fn pump(&mut self, end: PeerId) {
        let now = self.now;
        let soonest = self.soonest();
        let Some(e) = self.ends.get_mut(end) else { return };
        e.core.poll_transmit_bytes(now, &mut e.out);
        let (link_id, side, bytes, ended) = (e.link, e.side, e.out.split().freeze(), e.core.is_ended());
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
pub(super) fn wall_clock() -> SystemTime {
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(1_700_000_000)).unwrap_or(SystemTime::UNIX_EPOCH)
}
