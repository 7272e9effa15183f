//! Outbound selection: anchors, manual peers, automatic full-relay and block-relay-only slots and
//! feelers (Core's `CConnman::ThreadOpenConnections` and `ThreadOpenAddedConnections`, `net.cpp`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Instant;

use bitcoin::p2p::ServiceFlags;

use super::outbound::{MAX_MANUAL, MAX_SELECT_RETRY, Manual};
use super::relay::{addr_of, peer_of, socket_of};
use super::{ConnId, ConnKind, Dial, MAX_ANCHORS, NodeCore};
use crate::addrbook::{AddrInfo, NetKind, V2Support, group, is_routable};

/// Selection attempts per round (Core: `if (nTries > 100) break;`).
const MAX_TRIES: u32 = 100;
/// Below this many attempts, addresses tried in the last 10 minutes are passed over (Core:
/// `if (current_time - addr_last_try < 10min && nTries < 30) continue;`).
const RECENT_TRY_TRIES: u32 = 30;
const RECENT_TRY_SECS: u64 = 10 * 60;
/// Below this many attempts, addresses on a bad port are passed over (Core's
/// `ThreadOpenConnections`: `if (nTries < 50 && (addr.IsIPv4() || addr.IsIPv6()) &&
/// IsBadPort(addr.GetPort())) continue;`).
const BAD_PORT_TRIES: u32 = 50;

/// Whether `port` is one of another service (SMTP, SSH, HTTP-adjacent, databases …) that an
/// automatic dial avoids, so that gossip cannot point the node at a third party's server (Core's
/// `IsBadPort`, `netbase.cpp`, documented in Core's `doc/p2p-bad-ports.md`).
///
/// ```
/// use btcpeer_core::node::is_bad_port;
/// assert!(is_bad_port(25) && is_bad_port(22) && is_bad_port(6667));
/// assert!(!is_bad_port(8333) && !is_bad_port(18444));
/// ```
pub fn is_bad_port(port: u16) -> bool {
    matches!(
        port,
        1 | 7
            | 9
            | 11
            | 13
            | 15
            | 17
            | 19
            | 20
            | 21
            | 22
            | 23
            | 25
            | 37
            | 42
            | 43
            | 53
            | 69
            | 77
            | 79
            | 87
            | 95
            | 101
            | 102
            | 103
            | 104
            | 109
            | 110
            | 111
            | 113
            | 115
            | 117
            | 119
            | 123
            | 135
            | 137
            | 139
            | 143
            | 161
            | 179
            | 389
            | 427
            | 465
            | 512
            | 513
            | 514
            | 515
            | 526
            | 530
            | 531
            | 532
            | 540
            | 548
            | 554
            | 556
            | 563
            | 587
            | 601
            | 636
            | 989
            | 990
            | 993
            | 995
            | 1719
            | 1720
            | 1723
            | 2049
            | 3306
            | 3389
            | 3659
            | 4045
            | 5060
            | 5061
            | 5432
            | 5900
            | 6000
            | 6566
            | 6665
            | 6666
            | 6667
            | 6668
            | 6669
            | 6697
            | 10080
            | 27017
    )
}

impl NodeCore {
    /// Block-relay-only peers to dial first at start (saved at the last shutdown from
    /// [`anchors`](NodeCore::anchors); Core's `m_anchors` in `CConnman::ThreadOpenConnections`).
    /// At most [`MAX_ANCHORS`] are kept.
    pub fn set_anchors(&mut self, mut anchors: Vec<SocketAddr>) {
        anchors.truncate(MAX_ANCHORS);
        // Taken from the back, as Core's `m_anchors.back()`: keep the given order first.
        anchors.reverse();
        self.anchors = anchors;
    }

    /// The established block-relay-only outbound peers, at most [`MAX_ANCHORS`], to save at
    /// shutdown (Core's `CConnman::GetCurrentBlockRelayOnlyConns`).
    pub fn anchors(&self) -> Vec<SocketAddr> {
        self.conns
            .values()
            .filter(|c| c.info.kind == ConnKind::BlockRelay && c.info.established)
            .map(|c| c.info.addr)
            .take(MAX_ANCHORS)
            .collect()
    }

    /// A peer to connect to, outside the automatic outbound counts (Core's `addnode`): dialed at
    /// the next [`poll_dial`](NodeCore::poll_dial); a persistent one is dialed again, after its
    /// backoff, whenever its connection ends. Returns false if it was already listed (its
    /// persistence is updated) or the list is full.
    pub fn add_peer(&mut self, addr: SocketAddr, persistent: bool) -> bool {
        if let Some(m) = self.manual.iter_mut().find(|m| m.addr == addr) {
            m.persistent |= persistent;
            return false;
        }
        if self.manual.len() >= MAX_MANUAL {
            return false;
        }
        self.manual.push(Manual { addr, persistent, dialed: false });
        true
    }

    /// Forgets a manual peer (its connection, if any, stays). Returns whether it was listed.
    pub fn remove_peer(&mut self, addr: SocketAddr) -> bool {
        let before = self.manual.len();
        self.manual.retain(|m| m.addr != addr);
        for c in self.conns.values_mut().filter(|c| c.info.addr == addr) {
            c.info.persistent = false;
        }
        self.manual.len() != before
    }

    fn connected_to(&self, addr: SocketAddr) -> bool {
        self.conns.values().any(|c| c.info.addr == addr)
    }

    fn refused(&self, addr: SocketAddr, unix: u64) -> bool {
        self.bans.is_banned(addr.ip(), unix) || self.discouraged.is_discouraged(addr.ip())
    }

    /// Whether `addr` is one of ours (Core's `IsLocal(addr)` check before dialing).
    fn is_self(&self, addr: SocketAddr) -> bool {
        self.settings.local_addr == Some(addr)
    }

    /// The network groups the next automatic outbound connection must avoid (Core's
    /// `outbound_ipv46_peer_netgroups` in `CConnman::ThreadOpenConnections`): those of full-relay,
    /// block-relay-only and manual connections — not feelers (short-lived, they should not steer
    /// selection) nor inbound ones (free to make, an attacker's tool to keep us from groups).
    /// Tor, I2P and CJDNS peers are exempt: their groups are random, unrelated to any route.
    fn outbound_groups(&self) -> HashSet<Vec<u8>> {
        self.conns
            .values()
            .filter(|c| matches!(c.info.kind, ConnKind::FullRelay | ConnKind::BlockRelay | ConnKind::Manual))
            .filter(|c| {
                !matches!(NetKind::of(&addr_of(c.info.addr.ip())), Some(NetKind::Onion | NetKind::I2p | NetKind::Cjdns))
            })
            .map(|c| self.diversity_key(c.info.addr))
            .collect()
    }

    /// What "one outbound connection per network group" compares: the address's group (Core's
    /// `GetGroup`), except that with `allow_local` a loopback or private address is a group of its
    /// own. All local addresses share one group, so a regtest or test network on one machine would
    /// otherwise get a single automatic outbound connection; diversity means nothing there.
    fn diversity_key(&self, addr: SocketAddr) -> Vec<u8> {
        let a = addr_of(addr.ip());
        if self.settings.allow_local && !is_routable(&a) {
            let mut key = vec![0xff];
            key.extend_from_slice(addr.to_string().as_bytes());
            return key;
        }
        group(&a)
    }

    /// Registers a dial.
    fn dial(&mut self, addr: SocketAddr, kind: ConnKind, persistent: bool, now: Instant, unix: u64) -> Dial {
        let peer = peer_of(addr);
        let v2 = self.book.info(&peer).map_or(V2Support::Unknown, |i| i.v2);
        if kind != ConnKind::Manual {
            // Core's `CConnman::ConnectNode`: `addrman.Attempt(addr, fCountFailure)`, where
            // `ThreadOpenConnections` counts failures only once the node has outbound peers in
            // at least two groups (`count_failures`: `outbound_ipv46_peer_netgroups.size() +
            // outbound_privacy_network_peers >= min(m_max_automatic_connections - 1, 2)`), feelers
            // included: a node that is offline does not make its whole book terrible.
            let outbound = self
                .conns
                .values()
                .filter(|c| matches!(c.info.kind, ConnKind::FullRelay | ConnKind::BlockRelay | ConnKind::Manual))
                .map(|c| self.diversity_key(c.info.addr))
                .collect::<HashSet<_>>()
                .len();
            let count = outbound >= self.settings.max_connections.saturating_sub(1).min(2);
            self.book.attempt_with(&peer, count, unix);
        }
        let id: ConnId = self.new_conn(addr, kind, persistent, now);
        Dial { id, addr, kind, v2 }
    }

    /// The next connection to open, if any: anchors first (as block-relay-only), then manual
    /// peers, then automatic full-relay connections up to their target, then block-relay-only
    /// ones, then — once both are full — a feeler when one is due (a *new* address, or a tried
    /// address whose slot a new one wants). Automatic choices come from the book: never in the
    /// network group of a full-relay, block-relay-only or manual connection (feelers excepted),
    /// never banned, discouraged, already connected or backing off, and not on another service's
    /// port ([`is_bad_port`]) for the first 50 tries of a round (Core's
    /// `CConnman::ThreadOpenConnections`). Each dial counts in [`counts`](NodeCore::counts) until
    /// its outcome is reported.
    pub fn poll_dial(&mut self, now: Instant, unix: u64) -> Option<Dial> {
        self.last_now = self.last_now.max(now);
        if let Some(d) = self.dial_anchor(now, unix) {
            return Some(d);
        }
        if let Some(d) = self.dial_manual(now, unix) {
            return Some(d);
        }
        self.dial_automatic(now, unix)
    }

    fn dial_anchor(&mut self, now: Instant, unix: u64) -> Option<Dial> {
        if !self.settings.dial_outbound {
            return None;
        }
        while self.counts().block_relay < self.settings.block_relay {
            let addr = self.anchors.pop()?;
            // Core skips anchors that are invalid, local, unreachable or in a used group.
            let used = self.outbound_groups().contains(&self.diversity_key(addr));
            if used || self.is_self(addr) || self.connected_to(addr) || self.refused(addr, unix) {
                continue;
            }
            return Some(self.dial(addr, ConnKind::BlockRelay, false, now, unix));
        }
        None
    }

    fn dial_manual(&mut self, now: Instant, unix: u64) -> Option<Dial> {
        if self.counts().manual >= self.settings.max_manual_connections {
            return None;
        }
        // Manual peers are dialed whatever their ban (Core's `OpenNetworkConnection` checks bans
        // only for addresses it chose itself).
        let pick = self
            .manual
            .iter()
            .position(|m| m.pending() && !self.backoff.waiting(&m.addr, now) && !self.connected_to(m.addr))?;
        let m = self.manual.get_mut(pick)?;
        m.dialed = true;
        let (addr, persistent) = (m.addr, m.persistent);
        Some(self.dial(addr, ConnKind::Manual, persistent, now, unix))
    }

    fn dial_automatic(&mut self, now: Instant, unix: u64) -> Option<Dial> {
        if !self.settings.dial_outbound {
            return None;
        }
        if self.book.len() != self.select_book_len {
            self.select_book_len = self.book.len();
            self.reset_select(now);
        }
        let counts = self.counts();
        let kind = if counts.full_relay < self.settings.full_relay {
            ConnKind::FullRelay
        } else if counts.block_relay < self.settings.block_relay {
            ConnKind::BlockRelay
        } else if self.settings.feelers && now >= self.next_feeler && counts.feeler == 0 {
            let wait = super::outbound::exponential(self.settings.feeler_interval, self.random());
            self.next_feeler = now.checked_add(wait).unwrap_or(now);
            ConnKind::Feeler
        } else {
            return None;
        };
        if kind != ConnKind::Feeler && self.select_retry.is_some_and(|t| now < t) {
            return None;
        }
        self.book.resolve_collisions(unix);
        match self.select(kind == ConnKind::Feeler, now, unix) {
            Some(addr) => Some(self.dial(addr, kind, false, now, unix)),
            None => {
                if kind != ConnKind::Feeler {
                    self.select_retry = now.checked_add(self.select_wait);
                    self.select_wait = self.select_wait.saturating_mul(2).min(MAX_SELECT_RETRY);
                }
                None
            }
        }
    }

    /// One selection round (Core's inner loop of `ThreadOpenConnections`).
    fn select(&mut self, feeler: bool, now: Instant, unix: u64) -> Option<SocketAddr> {
        let groups = self.outbound_groups();
        let desirable = |i: &AddrInfo| {
            (i.services.has(ServiceFlags::NETWORK) || i.services.has(ServiceFlags::NETWORK_LIMITED))
                && i.services.has(ServiceFlags::WITNESS)
        };
        for tries in 1..=MAX_TRIES {
            // A feeler tests a tried address a new one collides with first (Core's
            // `SelectTriedCollision`), else a new address (`Select(/*new_only=*/true)`).
            let info = if feeler {
                let mut collision = if tries == 1 { self.book.tried_collision().cloned() } else { None };
                // Core's `ThreadOpenConnections`: an occupant we are connected to already is
                // marked good instead (it cannot be dialed, and must not be evicted).
                if let Some(c) = collision.take() {
                    match socket_of(&c.peer) {
                        Some(a) if self.connected_to(a) => self.book.good(&c.peer, unix),
                        _ => collision = Some(c),
                    }
                }
                collision.or_else(|| self.book.select(true, None, unix))
            } else {
                self.book.select(false, None, unix)
            };
            let info = info?;
            let Some(addr) = socket_of(&info.peer) else { continue };
            if self.is_self(addr) || self.connected_to(addr) || self.refused(addr, unix) {
                continue;
            }
            if !feeler && groups.contains(&self.diversity_key(addr)) {
                continue;
            }
            if unix.saturating_sub(info.last_try) < RECENT_TRY_SECS && info.last_try != 0 && tries < RECENT_TRY_TRIES {
                continue;
            }
            // For non-feelers, require the services we want (Core's `HasAllDesirableServiceFlags`).
            if !feeler && !desirable(&info) {
                continue;
            }
            // Not another service's port, unless 50 tries found nothing better.
            if tries < BAD_PORT_TRIES && is_bad_port(addr.port()) {
                continue;
            }
            if self.backoff.waiting(&addr, now) {
                continue;
            }
            return Some(addr);
        }
        None
    }

    /// When [`poll_dial`](NodeCore::poll_dial) may next have something: now while outbound slots
    /// are open (or after a fruitless round, its retry), the next feeler once they are full, and
    /// the end of a pending manual peer's backoff; and when
    /// [`poll_addr_relay`](NodeCore::poll_addr_relay) has an address message or a
    /// self-announcement due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut at: Option<Instant> = None;
        let mut consider = |t: Instant| at = Some(at.map_or(t, |a: Instant| a.min(t)));
        if let Some(t) = self.addr_relay_timeout() {
            consider(t);
        }
        let counts = self.counts();
        if self.settings.dial_outbound {
            if !self.anchors.is_empty() && counts.block_relay < self.settings.block_relay {
                consider(self.last_now);
            }
            if counts.full_relay < self.settings.full_relay || counts.block_relay < self.settings.block_relay {
                consider(self.select_retry.unwrap_or(self.last_now));
            } else if self.settings.feelers {
                consider(self.next_feeler);
            }
        }
        if counts.manual < self.settings.max_manual_connections {
            for m in &self.manual {
                if m.pending() && !self.connected_to(m.addr) {
                    consider(self.backoff.until(&m.addr).unwrap_or(self.last_now));
                }
            }
        }
        at
    }
}
