//! A node's connection policy, sans I/O: which addresses to dial and when, whom to admit and whom
//! to evict, how address gossip is answered, relayed and rate-limited, and who is discouraged or
//! banned. Bitcoin Core's `CConnman` and `PeerManagerImpl` policies, driven from outside.
//!
//! [`NodeCore`] holds the connection table, the address book, the ban list and the
//! discouragement filter. The driver (tokio, the simulator, a test) tells it what happened —
//! an inbound connection ([`NodeCore::inbound`]), a dial's outcome, a handshake, a message, a
//! close — passing the time, and takes from it dials ([`NodeCore::poll_dial`]), actions
//! ([`NodeCore::poll_action`]) and when to ask again ([`NodeCore::poll_timeout`]).
//!
//! ```
//! use std::time::Instant;
//! use btcpeer_core::addrbook::AddrBook;
//! use btcpeer_core::bitcoin::p2p::ServiceFlags;
//! use btcpeer_core::node::{Action, Admission, ConnKind, Hello, NodeCore, NodeSettings};
//!
//! let (now, unix) = (Instant::now(), 1_700_000_000);
//! let mut node = NodeCore::new(NodeSettings::default(), AddrBook::new([1; 32], 1), now);
//! // Someone connects: admitted while there is room.
//! let Admission::Accept(id) = node.inbound("8.8.8.8:50000".parse()?, now, unix) else { panic!() };
//! node.established(id, &Hello::new(ServiceFlags::NETWORK, 70016, true, false, "/x/".into()), now, unix);
//! assert_eq!(node.counts().inbound, 1);
//! // We want outbound peers: tell it of one, and it is dialed.
//! node.add_peer("9.9.9.9:8333".parse()?, true);
//! let dial = node.poll_dial(now, unix).expect("the manual peer");
//! assert_eq!((dial.addr, dial.kind), ("9.9.9.9:8333".parse()?, ConnKind::Manual));
//! node.established(dial.id, &Hello::new(ServiceFlags::NETWORK | ServiceFlags::WITNESS, 70016, true, false, "/y/".into()), now, unix);
//! // After the handshake of an address-relaying outbound peer, ask it for addresses.
//! assert_eq!(node.poll_action(), Some(Action::GetAddr { to: dial.id }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod bans;
pub mod eviction;

mod addr_send;
mod dial;
mod gossip;
mod misbehaviour;
mod outbound;
mod proof;
mod relay;
mod types;

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bitcoin::p2p::ServiceFlags;

use crate::addrbook::{AddrBook, NetKind, group, is_routable};
use bans::{BanList, Discouraged, MAX_ANCHORS, Subnet};
pub use dial::is_bad_port;
use eviction::{EvictionCandidate, select_node_to_evict};
pub use misbehaviour::discourages;
use outbound::{Backoff, Manual};
use relay::{ADDR_KNOWN, AddrCache, ID_NETGROUP, Keyed, RecentSet, TokenBucket, addr_of, peer_of};
pub use types::{
    Action, Admission, ConnId, ConnInfo, ConnKind, Counts, Dial, Hello, NodeReason, NodeSettings, Refusal,
};

/// Actions waiting at most; beyond it address actions are dropped and counted (disconnects are
/// always kept: there is at most one per connection).
const MAX_ACTIONS: usize = 10_000;
/// Transactions and blocks remembered to tell a first sighting (for eviction's recency).
const RECENT_HASHES: usize = 50_000;

/// One connection's state.
#[derive(Debug)]
struct Conn {
    info: ConnInfo,
    /// Address tokens (Core's `m_addr_token_bucket`).
    bucket: TokenBucket,
    /// Addresses are relayed to it (Core's `m_addr_relay_enabled`).
    addr_relay: bool,
    /// We sent `getaddr` and its answer has not come (Core's `m_getaddr_sent`).
    getaddr_sent: bool,
    /// It sent `getaddr` (answered once per connection: `m_getaddr_recvd`).
    getaddr_recvd: bool,
    /// Addresses it knows (Core's `m_addr_known`).
    known: RecentSet,
    /// Discouraged when accepted (Core's `m_prefer_evict`).
    prefer_evict: bool,
    /// A bloom filter is loaded (Core's `m_bloom_filter_loaded`).
    bloom: bool,
    /// The keyed hash of its network group (Core's `CConnman::CalculateKeyedNetGroup`).
    net_group: u64,
    /// Addresses waiting for their timer, and the timers (Core's `MaybeSendAddr`).
    addr_send: addr_send::AddrSend,
    /// Transactions we asked it for ([`NodeCore::requested`]).
    requested: RecentSet,
}

/// The connection manager: see the [module](self).
#[derive(Debug)]
pub struct NodeCore {
    settings: NodeSettings,
    keyed: Keyed,
    rng: u64,
    book: AddrBook,
    bans: BanList,
    discouraged: Discouraged,
    conns: BTreeMap<ConnId, Conn>,
    next_id: ConnId,
    actions: VecDeque<Action>,
    dropped_actions: u64,
    anchors: Vec<SocketAddr>,
    manual: Vec<Manual>,
    backoff: Backoff,
    next_feeler: Instant,
    /// No automatic selection round before this (the last one found nothing).
    select_retry: Option<Instant>,
    select_wait: Duration,
    select_book_len: usize,
    last_now: Instant,
    recent: RecentSet,
    cache: AddrCache,
    /// The headers that earned eviction protection (see `proof`).
    chain: proof::Chain,
}

impl NodeCore {
    /// A node with `settings`, starting from `book`, at `now`.
    pub fn new(settings: NodeSettings, book: AddrBook, now: Instant) -> Self {
        // Core's `g_reachable_nets`: addresses on networks the node cannot dial are neither kept
        // (`ProcessAddrs`) nor selected (`Select(…, reachable_nets)`).
        let mut book = book;
        book.set_reachable(&settings.reachable);
        let mut rng = settings.seed | 1;
        let first_feeler = outbound::exponential(settings.feeler_interval, crate::rng::next(&mut rng));
        NodeCore {
            keyed: Keyed::new(&settings.key),
            discouraged: Discouraged::new(settings.seed),
            settings,
            rng,
            book,
            bans: BanList::new(),
            conns: BTreeMap::new(),
            next_id: 1,
            actions: VecDeque::new(),
            dropped_actions: 0,
            anchors: Vec::new(),
            manual: Vec::new(),
            backoff: Backoff::default(),
            // Core's `ThreadOpenConnections`: `next_feeler = start + rand_exp_duration(FEELER_INTERVAL)`.
            next_feeler: now.checked_add(first_feeler).unwrap_or(now),
            select_retry: None,
            select_wait: outbound::SELECT_RETRY,
            select_book_len: 0,
            last_now: now,
            recent: RecentSet::new(RECENT_HASHES),
            cache: AddrCache::default(),
            chain: proof::Chain::default(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &NodeSettings {
        &self.settings
    }

    /// The address book.
    pub fn book(&self) -> &AddrBook {
        &self.book
    }

    /// The address book, to add seeds or to save it.
    pub fn book_mut(&mut self) -> &mut AddrBook {
        &mut self.book
    }

    /// The manual bans.
    pub fn bans(&self) -> &BanList {
        &self.bans
    }

    /// The manual bans, to load or change them ([`NodeCore::ban`] also ends banned connections).
    pub fn bans_mut(&mut self) -> &mut BanList {
        &mut self.bans
    }

    /// The discouraged addresses.
    pub fn discouraged(&self) -> &Discouraged {
        &self.discouraged
    }

    /// The discouraged addresses, to change them.
    pub fn discouraged_mut(&mut self) -> &mut Discouraged {
        &mut self.discouraged
    }

    /// Every connection, by id.
    pub fn conns(&self) -> impl Iterator<Item = &ConnInfo> {
        self.conns.values().map(|c| &c.info)
    }

    /// One connection.
    pub fn conn(&self, id: ConnId) -> Option<&ConnInfo> {
        self.conns.get(&id).map(|c| &c.info)
    }

    /// Connections by kind.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for conn in self.conns.values() {
            let slot = match conn.info.kind {
                ConnKind::Inbound => &mut c.inbound,
                ConnKind::FullRelay => &mut c.full_relay,
                ConnKind::BlockRelay => &mut c.block_relay,
                ConnKind::Feeler => &mut c.feeler,
                ConnKind::Manual => &mut c.manual,
            };
            *slot = slot.saturating_add(1);
            if conn.info.kind.is_outbound() && !conn.info.established {
                c.dialing = c.dialing.saturating_add(1);
            }
        }
        c
    }

    /// Actions dropped because the queue was full.
    pub fn dropped_actions(&self) -> u64 {
        self.dropped_actions
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn push_action(&mut self, action: Action) {
        if self.actions.len() >= MAX_ACTIONS && !matches!(action, Action::Disconnect { .. }) {
            self.dropped_actions = self.dropped_actions.saturating_add(1);
        } else {
            self.actions.push_back(action);
        }
    }

    fn random(&mut self) -> u64 {
        crate::rng::next(&mut self.rng)
    }

    /// The keyed hash of `ip`'s network group (Core's `CConnman::CalculateKeyedNetGroup`). With
    /// `allow_local`, a loopback or private address is a group of its own (as for outbound
    /// diversity): on one machine every peer would otherwise share Core's one "local" group.
    fn net_group_of(&self, ip: IpAddr) -> u64 {
        let a = addr_of(ip);
        if self.settings.allow_local && !is_routable(&a) {
            let bytes = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            return self.keyed.hash(ID_NETGROUP, &[&[0xff], &bytes]);
        }
        self.keyed.hash(ID_NETGROUP, &[&group(&a)])
    }

    fn new_conn(&mut self, addr: SocketAddr, kind: ConnKind, persistent: bool, now: Instant) -> ConnId {
        let id = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
        let info = ConnInfo {
            id,
            addr,
            local: None,
            kind,
            since: now,
            established: false,
            hello: None,
            min_ping: None,
            last_tx: None,
            last_block: None,
            addr_processed: 0,
            addr_rate_limited: 0,
            persistent,
            heard: false,
            version_received: false,
        };
        let conn = Conn {
            info,
            bucket: TokenBucket::new(now),
            addr_relay: false,
            getaddr_sent: false,
            getaddr_recvd: false,
            known: RecentSet::new(ADDR_KNOWN),
            prefer_evict: self.discouraged.is_discouraged(addr.ip()),
            bloom: false,
            net_group: self.net_group_of(addr.ip()),
            addr_send: addr_send::AddrSend::default(),
            requested: RecentSet::new(proof::REQUESTED_TXS),
        };
        self.conns.insert(id, conn);
        id
    }

    /// Someone connected from `remote`: admit it, evicting an inbound peer if the table is full,
    /// or refuse it (Core's `CConnman::CreateNodeFromAcceptedSocket`, `net.cpp`): banned addresses
    /// are refused; discouraged ones only while there is room for one more after them; a full
    /// table makes room by ending an inbound connection that has not finished its handshake
    /// (from the network group with the most of them, then the least advanced and oldest), else
    /// by [`eviction::select_node_to_evict`], or refuses.
    pub fn inbound(&mut self, remote: SocketAddr, now: Instant, unix: u64) -> Admission {
        self.admit(remote, None, now, unix)
    }

    /// As [`inbound`](NodeCore::inbound), for a connection that came in on our address and port
    /// `local` (a listener's, or the accepted socket's local address): `getaddr` answers are
    /// cached per local address and port as well as per network (Core's
    /// `CConnman::GetAddresses` keys its cache with `addrBind`), so a node listening on two
    /// addresses — an onion service's connections from 127.0.0.1 and IPv4 — gives each its own
    /// answer and the two cannot be linked by them.
    ///
    /// ```
    /// use std::time::Instant;
    /// use btcpeer_core::addrbook::AddrBook;
    /// use btcpeer_core::node::{Admission, NodeCore, NodeSettings};
    ///
    /// let now = Instant::now();
    /// let mut node = NodeCore::new(NodeSettings::default(), AddrBook::new([1; 32], 1), now);
    /// let local = "127.0.0.1:8334".parse()?;
    /// let Admission::Accept(id) = node.inbound_on("127.0.0.1:50000".parse()?, local, now, 1_700_000_000) else { panic!() };
    /// assert_eq!(node.conn(id).and_then(|c| c.local), Some(local));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn inbound_on(&mut self, remote: SocketAddr, local: SocketAddr, now: Instant, unix: u64) -> Admission {
        self.admit(remote, Some(local), now, unix)
    }

    fn admit(&mut self, remote: SocketAddr, local: Option<SocketAddr>, now: Instant, unix: u64) -> Admission {
        self.last_now = self.last_now.max(now);
        let ip = remote.ip();
        if self.bans.is_banned(ip, unix) {
            return Admission::Refuse(Refusal::Banned);
        }
        let inbound = self.counts().inbound;
        let max = self.settings.max_inbound();
        if self.discouraged.is_discouraged(ip) && inbound.saturating_add(1) >= max {
            return Admission::Refuse(Refusal::Discouraged);
        }
        if inbound >= max {
            let evict = self.oldest_unfinished_inbound().or_else(|| self.evict_one(now));
            let Some(evict) = evict else { return Admission::Refuse(Refusal::Full) };
            self.conns.remove(&evict);
            self.push_action(Action::Disconnect { id: evict, reason: NodeReason::Evicted });
            let id = self.new_inbound(remote, local, now);
            return Admission::AcceptEvicting { id, evict };
        }
        Admission::Accept(self.new_inbound(remote, local, now))
    }

    fn new_inbound(&mut self, remote: SocketAddr, local: Option<SocketAddr>, now: Instant) -> ConnId {
        let id = self.new_conn(remote, ConnKind::Inbound, false, now);
        if let Some(c) = self.conns.get_mut(&id) {
            c.info.local = local;
        }
        id
    }

    /// The remote of connection `id` sent its first byte.
    pub fn heard(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.info.heard = true;
        }
    }

    /// The `version` of connection `id` arrived (its remote sent a well-formed message, not just
    /// bytes).
    pub fn version_received(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.info.heard = true;
            c.info.version_received = true;
        }
    }

    /// The inbound connection to end first for room among those that have not finished their
    /// handshake: from the network group with the most such connections (as Core's
    /// `AttemptToEvictConnection` weighs groups in `SelectNodeToEvict`), so that one address
    /// reconnecting cannot push out peers of other groups mid-handshake; within it — and between
    /// groups of one size — one that never sent a byte, else one that sent bytes but no
    /// `version`, else one whose `version` came; of each kind the one that has waited longest.
    ///
    /// Not Core's rule, and the one place this policy goes beyond it: Core leaves such connections
    /// to its inactivity check (`CConnman::InactivityCheck` in `net.cpp` ends a peer whose
    /// handshake has not completed within `-peertimeout`, 60 s) and relies on 125 slots, while its
    /// `SelectNodeToEvict` protects up to 28 candidates and so never evicts from a small table. A
    /// node with a handful of slots full of connections that never speak (slow-loris) would turn
    /// honest peers away for that long; ending one of them first makes room at once and never
    /// touches a peer that completed its handshake. With `allow_local`, each loopback or private
    /// address is a group of its own here.
    fn oldest_unfinished_inbound(&self) -> Option<ConnId> {
        let unfinished = || self.conns.values().filter(|c| c.info.kind == ConnKind::Inbound && !c.info.established);
        let mut sizes: BTreeMap<u64, usize> = BTreeMap::new();
        for c in unfinished() {
            let n = sizes.entry(c.net_group).or_insert(0);
            *n = n.saturating_add(1);
        }
        unfinished()
            .min_by_key(|c| {
                let size = sizes.get(&c.net_group).copied().unwrap_or(0);
                (std::cmp::Reverse(size), c.info.heard, c.info.version_received, c.info.since, c.info.id)
            })
            .map(|c| c.info.id)
    }

    /// The inbound connection to end for room, if any (Core's `CConnman::AttemptToEvictConnection`,
    /// `net.cpp`: only inbound peers are candidates, each described from its stats).
    fn evict_one(&self, now: Instant) -> Option<ConnId> {
        let desirable = |s: ServiceFlags| {
            (s.has(ServiceFlags::NETWORK) || s.has(ServiceFlags::NETWORK_LIMITED)) && s.has(ServiceFlags::WITNESS)
        };
        let candidates: Vec<EvictionCandidate> = self
            .conns
            .values()
            .filter(|c| c.info.kind == ConnKind::Inbound)
            .map(|c| {
                let mut e = EvictionCandidate::new(c.info.id, c.info.since, c.net_group);
                e.min_ping = c.info.min_ping;
                e.last_block = c.info.last_block;
                e.last_tx = c.info.last_tx;
                // Core's `HasAllDesirableServiceFlags(nServices)`.
                e.relevant_services = c.info.hello.as_ref().is_some_and(|h| desirable(h.services));
                e.relay_txs = c.info.hello.as_ref().is_some_and(|h| h.relay);
                e.bloom_filter = c.bloom;
                e.prefer_evict = c.prefer_evict;
                // Core's `CNetAddr::IsLocal`: loopback.
                e.is_local = c.info.addr.ip().is_loopback();
                e.network = NetKind::of(&addr_of(c.info.addr.ip()));
                e.noban = false;
                e
            })
            .collect();
        select_node_to_evict(candidates, now)
    }

    /// Bans `ip` until `until_unix` and ends its connections (returned, and queued as
    /// [`Action::Disconnect`] with [`NodeReason::Banned`]).
    pub fn ban(&mut self, ip: IpAddr, until_unix: u64) -> Vec<ConnId> {
        self.bans.ban(Subnet::from(ip), until_unix);
        let ids: Vec<ConnId> = self.conns.values().filter(|c| c.info.addr.ip() == ip).map(|c| c.info.id).collect();
        for id in &ids {
            self.conns.remove(id);
            self.push_action(Action::Disconnect { id: *id, reason: NodeReason::Banned });
        }
        ids
    }

    /// A ping's round trip: the fastest is kept (eviction protects the fastest peers).
    pub fn ping_sample(&mut self, id: ConnId, rtt: Duration) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.info.min_ping = Some(c.info.min_ping.map_or(rtt, |m| m.min(rtt)));
        }
    }

    /// The connection broke a rule of the node's policy: it is ended (queued as
    /// [`Action::Disconnect`] with [`NodeReason::Misbehaved`]) and its address discouraged, except
    /// a manual peer (kept, as Core's `PeerManagerImpl::MaybeDiscourageAndDisconnect`) and a
    /// loopback one (ended, not discouraged: that would discourage every peer of the host).
    pub fn misbehaving(&mut self, id: ConnId, now: Instant) {
        let Some(conn) = self.conns.get(&id) else { return };
        if conn.info.kind == ConnKind::Manual {
            return;
        }
        let ip = conn.info.addr.ip();
        if !ip.is_loopback() {
            self.discouraged.discourage(ip);
        }
        self.conns.remove(&id);
        self.push_action(Action::Disconnect { id, reason: NodeReason::Misbehaved });
        self.reset_select(now);
    }

    /// The connection `id` ended. With `misbehaved` (it did what Core scores with `Misbehaving`:
    /// see [`discourages`], which tells it from the peer's `DisconnectReason`) its address is
    /// discouraged, unless manual or loopback (Core's `Misbehaving` and `MaybeDiscourageAndDisconnect`,
    /// `net_processing.cpp`). An outbound connection that never completed its handshake counts
    /// as a failed dial for its address's backoff.
    pub fn closed(&mut self, id: ConnId, misbehaved: bool, now: Instant, unix: u64) {
        self.last_now = self.last_now.max(now);
        let Some(conn) = self.conns.remove(&id) else { return };
        let (addr, kind) = (conn.info.addr, conn.info.kind);
        if misbehaved && kind != ConnKind::Manual && !addr.ip().is_loopback() {
            self.discouraged.discourage(addr.ip());
        }
        if kind.is_outbound() && kind != ConnKind::BlockRelay && conn.info.established {
            // Core's `FinalizeNode`: `AddrMan::Connected` for an outbound peer that completed its
            // handshake, block-relay-only ones excepted (their addresses stay private).
            if let Some(h) = &conn.info.hello {
                self.book.connected(&peer_of(addr), h.services, h.v2.then_some(true), unix);
            }
        }
        if kind.is_outbound() {
            if conn.info.established {
                self.backoff.ended(addr, self.settings.backoff_base, now);
            } else {
                self.backoff.failed(addr, self.settings.backoff_base, self.settings.backoff_max, now);
            }
        }
        if kind == ConnKind::Manual {
            self.manual.retain(|m| m.addr != addr || m.persistent);
        }
        self.reset_select(now);
    }

    /// A handshake completed. For outbound peers the book learns the success and the services
    /// (Core's `AddrMan::Good` and `SetServices` in `PeerManagerImpl::ProcessMessage`, `VERSION`,
    /// for every outbound kind), without a new time for the address; `Connected` follows when
    /// the connection ends ([`closed`](NodeCore::closed)); a feeler is then ended ([`NodeReason::FeelerDone`]); an address-relaying outbound peer is
    /// sent `getaddr` (with 1,000 more address tokens for its answer) and our address.
    pub fn established(&mut self, id: ConnId, hello: &Hello, now: Instant, unix: u64) {
        self.last_now = self.last_now.max(now);
        let Some(conn) = self.conns.get_mut(&id) else { return };
        conn.info.established = true;
        conn.info.hello = Some(hello.clone());
        let (addr, kind) = (conn.info.addr, conn.info.kind);
        if !kind.is_outbound() {
            return;
        }
        self.backoff.succeeded(addr);
        let peer = peer_of(addr);
        // Core's `ProcessMessage`, `VERSION`: `SetServices` and `Good` for an outbound peer —
        // neither moves the address's time (a `getaddr` answer must not show our current peers);
        // `Connected` comes at the end of the connection (`FinalizeNode`, in `closed`).
        self.book.set_services(&peer, hello.services);
        if hello.v2 {
            self.book.set_v2(&peer, crate::addrbook::V2Support::Yes);
        }
        self.book.good(&peer, unix);
        if kind == ConnKind::Feeler {
            // Its work is done: it ends now, and `FinalizeNode` records it as connected.
            self.book.connected(&peer, hello.services, hello.v2.then_some(true), unix);
            self.conns.remove(&id);
            self.push_action(Action::Disconnect { id, reason: NodeReason::FeelerDone });
            return;
        }
        if kind.relays_addr() {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.getaddr_sent = true;
                conn.bucket.grant(relay::MAX_ADDR_TO_SEND as f64);
            }
            self.push_action(Action::GetAddr { to: id });
            self.start_addr_relay(id, now, unix);
        }
    }

    /// A dial failed (`v2_failed`: a v2 attempt found a v1-only remote; the book remembers it, so
    /// the next dial is v1). The address waits its backoff.
    pub fn dial_failed(&mut self, id: ConnId, v2_failed: bool, now: Instant, _unix: u64) {
        self.last_now = self.last_now.max(now);
        let Some(conn) = self.conns.remove(&id) else { return };
        let addr = conn.info.addr;
        if v2_failed {
            // Only the v2 support changes.
            self.book.set_v2(&peer_of(addr), crate::addrbook::V2Support::Failed);
        }
        self.backoff.failed(addr, self.settings.backoff_base, self.settings.backoff_max, now);
        if conn.info.kind == ConnKind::Manual {
            self.manual.retain(|m| m.addr != addr || m.persistent);
        }
        self.reset_select(now);
    }

    /// Failures in a row of dials to `addr`, and when it may be dialed again.
    pub fn backoff(&self, addr: SocketAddr) -> (u32, Option<Instant>) {
        (self.backoff.failures(&addr), self.backoff.until(&addr))
    }

    /// Something changed that may make an outbound selection round fruitful.
    fn reset_select(&mut self, now: Instant) {
        self.select_retry = None;
        self.select_wait = outbound::SELECT_RETRY;
        let _ = now;
    }
}
