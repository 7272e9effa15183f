//! Address gossip pieces: the per-connection token bucket, bounded sets of recent hashes, the
//! keyed hasher behind relay targets and net groups, and the rotating `getaddr` cache.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bitcoin::hashes::siphash24;
use bitcoin::p2p::address::{AddrV2, AddrV2Message};

use crate::addrbook::{AddrBook, Endpoint, NetKind};

/// Addresses in one `addr` at most, and in a `getaddr` answer (`MAX_ADDR_TO_SEND`,
/// `net_processing.cpp`).
pub(crate) const MAX_ADDR_TO_SEND: usize = 1_000;
/// Relayed only if the message is this small (`ProcessAddrs`: `vAddr.size() <= 10`).
pub(crate) const MAX_RELAY_MESSAGE: usize = 10;
/// Relayed only if this fresh (`ProcessAddrs`: `addr.nTime > current_a_time - 10min`).
pub(crate) const RELAY_FRESH_SECS: u64 = 10 * 60;
/// Relay targets rotate with this period (`ROTATE_ADDR_RELAY_DEST_INTERVAL`, 24 h).
pub(crate) const ROTATE_RELAY_SECS: u64 = 24 * 3600;
/// Addresses remembered as known to each peer (Core's `m_addr_known`, a rolling filter of 5,000).
pub(crate) const ADDR_KNOWN: usize = 5_000;
/// A `getaddr` cache entry lives this long plus up to [`CACHE_JITTER`] (`CConnman::GetAddresses`).
pub(crate) const CACHE_LIFETIME: Duration = Duration::from_secs(21 * 3600);
/// `getaddr` answers cached at most (one per network and local address and port).
pub(crate) const MAX_CACHES: usize = 64;
/// The random part of a cache entry's life.
pub(crate) const CACHE_JITTER: Duration = Duration::from_secs(6 * 3600);

/// Domain separators of the keyed hasher, as Core's `RANDOMIZER_ID_*` (`net.cpp`,
/// `net_processing.cpp`).
pub(crate) const ID_NETGROUP: u64 = 0x6c0e_dd80_36ef_4036;
pub(crate) const ID_ADDRESS_RELAY: u64 = 0x3cac_0035_b586_6b90;
pub(crate) const ID_ADDRCACHE: u64 = 0x1cf2_e4dd_d306_dda9;
pub(crate) const ID_RECENT: u64 = 0x005e_ed0f_7e11_0001;

/// SipHash-2-4 keyed from the node's secret, with a domain id first (Core's
/// `CConnman::GetDeterministicRandomizer`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Keyed {
    k0: u64,
    k1: u64,
}

impl Keyed {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        let word = |at: usize| {
            let mut w = [0u8; 8];
            if let Some(s) = key.get(at..at.saturating_add(8)) {
                w.copy_from_slice(s);
            }
            u64::from_le_bytes(w)
        };
        Keyed { k0: word(0) ^ word(16), k1: word(8) ^ word(24) }
    }

    pub(crate) fn hash(&self, id: u64, parts: &[&[u8]]) -> u64 {
        let mut data = Vec::with_capacity(64);
        data.extend_from_slice(&id.to_le_bytes());
        for p in parts {
            data.extend_from_slice(p);
        }
        siphash24::Hash::hash_to_u64_with_keys(self.k0, self.k1, &data)
    }
}

/// A bounded set of hashes: the oldest is forgotten when full (as a rolling filter would).
#[derive(Clone, Debug)]
pub(crate) struct RecentSet {
    cap: usize,
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl RecentSet {
    pub(crate) fn new(cap: usize) -> Self {
        RecentSet { cap: cap.max(1), set: HashSet::new(), order: VecDeque::new() }
    }

    /// Whether `h` is there.
    pub(crate) fn contains(&self, h: u64) -> bool {
        self.set.contains(&h)
    }

    /// Inserts `h`; true if it was not there.
    pub(crate) fn insert(&mut self, h: u64) -> bool {
        if !self.set.insert(h) {
            return false;
        }
        self.order.push_back(h);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// Core's per-peer address token bucket (`Peer::m_addr_token_bucket`, `ProcessAddrs`).
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// One token to start, to permit a self-announcement (`m_addr_token_bucket{1.0}`).
    pub(crate) fn new(now: Instant) -> Self {
        TokenBucket { tokens: 1.0, last: now }
    }

    /// Tokens accrue at `rate` a second (Core: 0.1) up to the soft cap `cap` (Core: 1,000; the
    /// grant after our `getaddr` may exceed it).
    pub(crate) fn refill(&mut self, now: Instant, rate: f64, cap: f64) {
        if self.tokens < cap {
            let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(cap);
        }
        self.last = self.last.max(now);
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self) -> bool {
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// After our `getaddr`: room for its answer (`m_addr_token_bucket += MAX_ADDR_TO_SEND`).
    pub(crate) fn grant(&mut self, n: f64) {
        self.tokens += n;
    }
}

/// The book's form of an IP address.
pub(crate) fn addr_of(ip: IpAddr) -> AddrV2 {
    match ip {
        IpAddr::V4(v4) => AddrV2::Ipv4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => AddrV2::Ipv4(v4),
            None => AddrV2::Ipv6(v6),
        },
    }
}

/// The book's form of a socket address.
pub(crate) fn peer_of(addr: SocketAddr) -> Endpoint {
    Endpoint::new(addr_of(addr.ip()), addr.port())
}

/// A dialable socket address, for IPv4 and IPv6 entries.
pub(crate) fn socket_of(peer: &Endpoint) -> Option<SocketAddr> {
    match &peer.addr {
        AddrV2::Ipv4(v4) => Some(SocketAddr::new(IpAddr::V4(*v4), peer.port)),
        AddrV2::Ipv6(v6) => Some(SocketAddr::new(v6.to_ipv4_mapped().map_or(IpAddr::V6(*v6), IpAddr::V4), peer.port)),
        _ => None,
    }
}

/// The bytes hashed for an address (its kind, bytes and port).
pub(crate) fn addr_key(msg: &AddrV2Message) -> Vec<u8> {
    let mut k = match &msg.addr {
        AddrV2::Ipv4(v4) => [&[1u8][..], &v4.octets()].concat(),
        AddrV2::Ipv6(v6) => [&[2u8][..], &v6.octets()].concat(),
        AddrV2::TorV3(k) => [&[4u8][..], k].concat(),
        AddrV2::I2p(h) => [&[5u8][..], h].concat(),
        AddrV2::Cjdns(c) => [&[6u8][..], &c.octets()].concat(),
        other => format!("{other:?}").into_bytes(),
    };
    k.extend_from_slice(&msg.port.to_be_bytes());
    k
}

/// Whether an address needs `addrv2` (not IPv4 or IPv6; Core's `IsAddrCompatible`).
pub(crate) fn needs_addrv2(addr: &AddrV2) -> bool {
    !matches!(addr, AddrV2::Ipv4(_) | AddrV2::Ipv6(_))
}

/// One cached `getaddr` answer.
#[derive(Clone, Debug)]
struct CacheEntry {
    addrs: Vec<AddrV2Message>,
    expires: Instant,
}

/// Core's `CConnman::m_addr_response_caches`: one answer per requestor network and local address
/// and port the request came in on, rebuilt from the book once it is 21 h + up to 6 h old, so that
/// repeated `getaddr`s learn nothing new about the book within a day, and a node reachable on two
/// addresses (an onion service arriving from 127.0.0.1, and IPv4) does not link them by identical
/// answers. Bounded: expired entries are dropped, and at most [`MAX_CACHES`] are kept.
#[derive(Clone, Debug, Default)]
pub(crate) struct AddrCache {
    entries: HashMap<u64, CacheEntry>,
}

impl AddrCache {
    /// The answer for a requestor on `net` that reached us on `local` (Core's
    /// `CConnman::GetAddresses(requestor, …)`: the cache id hashes `ConnectedThroughNetwork()`,
    /// `addrBind`'s bytes and, for inbound connections, its port), at most `limits.0` addresses
    /// and `limits.1` % of the book.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn get(
        &mut self,
        keyed: &Keyed,
        net: Option<NetKind>,
        local: Option<SocketAddr>,
        book: &mut AddrBook,
        random: u64,
        limits: (usize, usize),
        now: Instant,
        unix: u64,
    ) -> Vec<AddrV2Message> {
        let tag: u8 = match net {
            None => 0,
            Some(NetKind::Ipv4) => 1,
            Some(NetKind::Ipv6) => 2,
            Some(NetKind::Onion) => 3,
            Some(NetKind::I2p) => 4,
            Some(NetKind::Cjdns) => 5,
        };
        let (bind, port): (Vec<u8>, u16) = match local {
            Some(SocketAddr::V4(a)) => (a.ip().octets().to_vec(), a.port()),
            Some(SocketAddr::V6(a)) => match a.ip().to_ipv4_mapped() {
                Some(v4) => (v4.octets().to_vec(), a.port()),
                None => (a.ip().octets().to_vec(), a.port()),
            },
            None => (Vec::new(), 0),
        };
        let id = keyed.hash(ID_ADDRCACHE, &[&[tag], &bind, &port.to_le_bytes()]);
        let fresh = self.entries.get(&id).is_some_and(|e| e.expires >= now);
        if !fresh {
            // Core keeps every entry; the number of local addresses is the operator's, but the
            // map stays bounded all the same.
            self.entries.retain(|_, e| e.expires >= now);
            if self.entries.len() >= MAX_CACHES {
                if let Some(first) = self.entries.iter().min_by_key(|(k, e)| (e.expires, **k)).map(|(k, _)| *k) {
                    self.entries.remove(&first);
                }
            }
            let jitter = CACHE_JITTER.mul_f64((random >> 11) as f64 / (1u64 << 53) as f64);
            let expires = now.checked_add(CACHE_LIFETIME.saturating_add(jitter)).unwrap_or(now);
            let addrs = book.get_addr(limits.0, limits.1, unix);
            self.entries.insert(id, CacheEntry { addrs, expires });
        }
        self.entries.get(&id).map(|e| e.addrs.clone()).unwrap_or_default()
    }
}
