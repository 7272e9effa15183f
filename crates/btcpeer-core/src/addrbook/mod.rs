//! An address book on Bitcoin Core's design (`addrman.cpp`): where a node keeps the addresses peers
//! tell it about, bounded and resistant to one source filling it (eclipse attacks).
//!
//! Two tables of buckets: *new* (1,024 × 64) for addresses heard of, *tried* (256 × 64) for
//! addresses we connected to. An address's buckets and positions come from a keyed hash of its
//! network group, its source's group and a secret key, so a source can reach only a few of the
//! new buckets (64 per source group) and an operator's addresses only a few tried ones (8 per
//! group); an address sits in at most 8 new buckets. The book never holds more than 81,920
//! entries. Everything is sans I/O: time (Unix seconds) is an argument, randomness comes from a
//! seeded generator, and the file format ([`AddrBook::encode`]) is bytes in, bytes out.
//!
//! [`select`](AddrBook::select) always draws a bucket, then a slot (Core's `Select_`), so a
//! source group wins at most the share of non-empty new buckets it reaches, at any book size.
//! What a node tells the book, and when (as Core's `CConnman` and `PeerManager` call `AddrMan`):
//! - an `addr` message: [`add`](AddrBook::add), with only [reachable](AddrBook::set_reachable)
//!   networks kept;
//! - a dial: [`attempt`](AddrBook::attempt), or
//!   [`attempt_uncounted`](AddrBook::attempt_uncounted) while the node looks offline (fewer than
//!   two outbound groups connected) or for a manual peer;
//! - an outbound handshake: [`good`](AddrBook::good) and [`set_services`](AddrBook::set_services)
//!   (neither changes the address's time);
//! - the end of a full-relay or manual outbound connection: [`connected`](AddrBook::connected);
//! - before choosing a feeler: [`resolve_collisions`](AddrBook::resolve_collisions), then
//!   [`tried_collision`](AddrBook::tried_collision) (test-before-evict).
//!
//! ```
//! use btcpeer_core::addrbook::{AddrBook, Endpoint};
//! use btcpeer_core::bitcoin::p2p::{ServiceFlags, address::{AddrV2, AddrV2Message}};
//!
//! let now = 1_700_000_000;
//! let mut book = AddrBook::new([7; 32], 1);
//! let heard = AddrV2Message { time: now as u32, services: ServiceFlags::NETWORK, addr: AddrV2::Ipv4([8, 8, 4, 4].into()), port: 8333 };
//! let source = Endpoint::new(AddrV2::Ipv4([9, 9, 9, 9].into()), 8333);
//! assert_eq!(book.add(&[heard.clone()], &source, now), 1);
//! let chosen = book.select(false, None, now).expect("one address to try");
//! assert_eq!(chosen.peer, Endpoint::new(heard.addr.clone(), 8333));
//! book.attempt(&chosen.peer, now);
//! book.good(&chosen.peer, now);
//! assert_eq!((book.new_len(), book.tried_len()), (0, 1));
//! ```

mod conn;
mod file;
mod group;
mod name;
mod select;
mod table;
mod tried;

use std::collections::HashMap;

use bitcoin::hashes::{Hash, HashEngine, sha256d};
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::{AddrV2, AddrV2Message};

pub use crate::persist::LoadError;
pub use group::{NetKind, group, is_routable};
pub use name::ParseEndpointError;

/// The former name of [`ParseEndpointError`], kept so that programs written against it still compile.
#[deprecated(note = "renamed to ParseEndpointError")]
pub type ParsePeerError = ParseEndpointError;

/// Buckets of the new table (`ADDRMAN_NEW_BUCKET_COUNT`).
pub const NEW_BUCKETS: usize = 1_024;
/// Buckets of the tried table (`ADDRMAN_TRIED_BUCKET_COUNT`).
pub const TRIED_BUCKETS: usize = 256;
/// Entries per bucket (`ADDRMAN_BUCKET_SIZE`).
pub const BUCKET_SIZE: usize = 64;
/// The most entries the book holds: every position of both tables.
pub const MAX_ENTRIES: usize = (NEW_BUCKETS + TRIED_BUCKETS) * BUCKET_SIZE;
const TRIED_BUCKETS_PER_GROUP: u64 = 8;
const NEW_BUCKETS_PER_SOURCE_GROUP: u64 = 64;
const NEW_BUCKETS_PER_ADDRESS: u8 = 8;
const HORIZON: u64 = 30 * 24 * 3600;
const RETRIES: u32 = 3;
const MAX_FAILURES: u32 = 10;
const MIN_FAIL: u64 = 7 * 24 * 3600;
const REPLACEMENT: u64 = 4 * 3600;
const TRIED_COLLISIONS: usize = 10;
const TEST_WINDOW: u64 = 40 * 60;
/// An empty position.
const EMPTY: u32 = u32::MAX;

/// An address and port: where a peer can be reached, as the book knows it (not a connection; the
/// tokio driver's connection is `btcpeer::peer::Peer`).
///
/// ```
/// use btcpeer_core::addrbook::Endpoint;
/// use btcpeer_core::bitcoin::p2p::address::AddrV2;
///
/// let endpoint = Endpoint::new(AddrV2::Ipv4([8, 8, 4, 4].into()), 8333);
/// assert_eq!(endpoint, "8.8.4.4:8333".parse().unwrap());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The address.
    pub addr: AddrV2,
    /// The port.
    pub port: u16,
}

/// The former name of [`Endpoint`], kept so that programs written against it still compile.
#[deprecated(note = "renamed to Endpoint")]
pub type Peer = Endpoint;

impl Endpoint {
    /// The endpoint `addr`:`port`.
    pub fn new(addr: AddrV2, port: u16) -> Self {
        Endpoint { addr, port }
    }

    /// The bytes hashed for its positions (Core's `GetKey`).
    fn key(&self) -> Vec<u8> {
        let mut k = file::addr_bytes(&self.addr);
        k.extend_from_slice(&self.port.to_be_bytes());
        k
    }
}

/// Whether an address speaks BIP324 v2, as far as the book knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum V2Support {
    /// Not known.
    #[default]
    Unknown,
    /// It signals `NODE_P2P_V2`, or a v2 handshake with it succeeded.
    Yes,
    /// A v2 attempt failed: dial it in v1 next time (no wasted reconnect).
    Failed,
}

/// What the book knows of one address.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AddrInfo {
    /// The address and port.
    pub peer: Endpoint,
    /// The services it was last said to offer.
    pub services: ServiceFlags,
    /// When it was last heard of (Unix seconds; what `addr` messages carry).
    pub time: u64,
    /// The last connection attempt (0: never).
    pub last_try: u64,
    /// The last successful connection (0: never).
    pub last_success: u64,
    /// Failed attempts since the last success.
    pub attempts: u32,
    /// Who told us about it.
    pub source: AddrV2,
    /// Whether it is in the tried table.
    pub in_tried: bool,
    /// Whether it speaks v2.
    pub v2: V2Support,
    /// New buckets holding it (0 in tried).
    ref_count: u8,
}

impl AddrInfo {
    /// Core's `IsTerrible`: too old, in the future, or failing for too long.
    pub fn is_terrible(&self, now: u64) -> bool {
        if self.last_try != 0 && now.saturating_sub(self.last_try) <= 60 {
            return false;
        }
        self.time > now.saturating_add(10 * 60)
            || now.saturating_sub(self.time) > HORIZON
            || (self.last_success == 0 && self.attempts >= RETRIES)
            || (now.saturating_sub(self.last_success) > MIN_FAIL && self.attempts >= MAX_FAILURES)
    }

    /// Core's `GetChance`: the relative chance of selecting it.
    fn chance(&self, now: u64) -> f64 {
        let mut chance = 1.0;
        if now.saturating_sub(self.last_try) < 10 * 60 {
            chance *= 0.01;
        }
        chance * 0.66f64.powi(self.attempts.min(8) as i32)
    }
}

/// The address book: see the [module](self).
#[derive(Debug, Clone)]
pub struct AddrBook {
    key: [u8; 32],
    rng: u64,
    allow_local: bool,
    entries: HashMap<u32, AddrInfo>,
    index: HashMap<Endpoint, u32>,
    next_id: u32,
    new_table: Vec<u32>,
    tried_table: Vec<u32>,
    new_count: usize,
    tried_count: usize,
    /// Tried entries to be tested before they may be evicted, as Core's `m_tried_collisions`.
    collisions: Vec<u32>,
    /// Which buckets hold entries of each network (see `table`).
    occupancy: Vec<table::Occupancy>,
    /// The networks the node can reach: only their addresses are stored and selected.
    reachable: table::NetMask,
    /// The last [`good`](AddrBook::good) of any address (Core's `m_last_good`, 1 at start).
    last_good: u64,
    /// When each entry's last counted failure was (Core's `m_last_count_attempt`); not saved,
    /// as Core does not save it.
    counted: HashMap<u32, u64>,
    /// The generator behind [`tried_collision`](AddrBook::tried_collision)'s pick.
    pick: tried::PickRng,
}

impl AddrBook {
    /// An empty book with the secret `key` (keep it: positions depend on it) and a seed for the
    /// generator behind its random choices.
    pub fn new(key: [u8; 32], seed: u64) -> Self {
        AddrBook {
            key,
            rng: seed | 1,
            allow_local: false,
            entries: HashMap::new(),
            index: HashMap::new(),
            next_id: 0,
            new_table: vec![EMPTY; NEW_BUCKETS * BUCKET_SIZE],
            tried_table: vec![EMPTY; TRIED_BUCKETS * BUCKET_SIZE],
            new_count: 0,
            tried_count: 0,
            collisions: Vec::new(),
            occupancy: table::empty_occupancy(),
            reachable: table::ALL_NETS,
            last_good: 1,
            counted: HashMap::new(),
            pick: tried::PickRng::new(seed),
        }
    }

    /// Accepts loopback and private addresses (for regtest, simnet and tests on one machine).
    pub fn allow_local(mut self, allow: bool) -> Self {
        self.allow_local = allow;
        self
    }

    /// Addresses held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Addresses in the new table.
    pub fn new_len(&self) -> usize {
        self.new_count
    }

    /// Addresses in the tried table.
    pub fn tried_len(&self) -> usize {
        self.tried_count
    }

    /// What the book knows of `peer`.
    pub fn info(&self, peer: &Endpoint) -> Option<&AddrInfo> {
        self.index.get(peer).and_then(|id| self.entries.get(id))
    }

    fn random(&mut self) -> u64 {
        crate::rng::next(&mut self.rng)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.random().checked_rem(n).unwrap_or(0)
    }

    /// The first 8 bytes of SHA256d(key ‖ parts), as Core's `GetCheapHash`.
    fn hash(&self, parts: &[&[u8]]) -> u64 {
        let mut e = sha256d::Hash::engine();
        e.input(&self.key);
        for p in parts {
            e.input(p);
        }
        let h = sha256d::Hash::from_engine(e).to_byte_array();
        u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
    }

    /// Core's `GetTriedBucket`.
    fn tried_bucket(&self, peer: &Endpoint) -> usize {
        let h1 = self.hash(&[&peer.key()]) % TRIED_BUCKETS_PER_GROUP;
        self.hash(&[&group(&peer.addr), &h1.to_le_bytes()]).checked_rem(TRIED_BUCKETS as u64).unwrap_or(0) as usize
    }

    /// Core's `GetNewBucket`.
    fn new_bucket(&self, peer: &Endpoint, source: &AddrV2) -> usize {
        let source_group = group(source);
        let h1 = self.hash(&[&group(&peer.addr), &source_group]) % NEW_BUCKETS_PER_SOURCE_GROUP;
        self.hash(&[&source_group, &h1.to_le_bytes()]).checked_rem(NEW_BUCKETS as u64).unwrap_or(0) as usize
    }

    /// Core's `GetBucketPosition`: the slot of `peer` in a bucket, as an index into the table.
    fn slot(&self, new: bool, bucket: usize, peer: &Endpoint) -> usize {
        let tag: &[u8] = if new { b"N" } else { b"K" };
        let pos =
            self.hash(&[tag, &(bucket as u32).to_le_bytes(), &peer.key()]).checked_rem(BUCKET_SIZE as u64).unwrap_or(0)
                as usize;
        bucket.saturating_mul(BUCKET_SIZE).saturating_add(pos)
    }

    /// Forgets an entry that no table holds any more.
    fn delete(&mut self, id: u32) {
        self.counted.remove(&id);
        if let Some(info) = self.entries.remove(&id) {
            self.index.remove(&info.peer);
            if !info.in_tried {
                self.new_count = self.new_count.saturating_sub(1);
            }
        }
        self.collisions.retain(|c| *c != id);
    }

    /// Empties a new-table slot, deleting its entry when no other bucket holds it.
    fn clear_new_slot(&mut self, slot: usize) {
        let id = self.take_slot(false, slot);
        if id == EMPTY {
            return;
        }
        let gone = self.entries.get_mut(&id).is_some_and(|e| {
            e.ref_count = e.ref_count.saturating_sub(1);
            e.ref_count == 0
        });
        if gone {
            self.delete(id);
        }
    }

    /// Adds what `source` told us (`addr` / `addrv2` entries); returns how many were new. Unroutable
    /// addresses are refused unless [`allow_local`](AddrBook::allow_local), and so are those on
    /// networks not [reachable](AddrBook::set_reachable); times in the future are taken as now,
    /// and what others relay gets a two-hour time penalty, as Core's `AddrManImpl::Add` does.
    /// An address already known gains a bucket reference only when its time is newer than the
    /// one the book holds (Core's `AddSingle`: no new information, no new reference).
    pub fn add(&mut self, addrs: &[AddrV2Message], source: &Endpoint, now: u64) -> usize {
        addrs.iter().filter(|a| self.add_one(a, &source.addr, now)).count()
    }

    fn add_one(&mut self, msg: &AddrV2Message, source: &AddrV2, now: u64) -> bool {
        if NetKind::of(&msg.addr).is_none() || (!self.allow_local && !is_routable(&msg.addr)) {
            return false;
        }
        if !self.is_reachable_addr(&msg.addr) {
            // Core adds only addresses on reachable networks (`ProcessMessage`, ADDR:
            // `g_reachable_nets.Contains(addr)`).
            return false;
        }
        let peer = Endpoint::new(msg.addr.clone(), msg.port);
        let penalty = if peer.addr == *source { 0 } else { 2 * 3600 };
        let announced = u64::from(msg.time).min(now);
        let time = announced.saturating_sub(penalty);
        let v2 = if msg.services.has(ServiceFlags::P2P_V2) { V2Support::Yes } else { V2Support::Unknown };
        let (id, fresh) = match self.index.get(&peer).copied() {
            Some(id) => {
                let Some(info) = self.entries.get_mut(&id) else { return false };
                // Periodically refreshed: keep the newest time, gain the services announced
                // (Core's `AddrManImpl::AddSingle`).
                let update_interval = if now.saturating_sub(announced) < 24 * 3600 { 3600 } else { 24 * 3600 };
                if time > info.time.saturating_add(update_interval) {
                    info.time = time;
                }
                info.services |= msg.services;
                if v2 == V2Support::Yes && info.v2 == V2Support::Unknown {
                    info.v2 = v2;
                }
                // No new information, no new bucket reference (Core: `addr.nTime <=
                // pinfo->nTime`): repeating an address must not spread it over more buckets.
                if announced <= info.time {
                    return false;
                }
                if info.in_tried || info.ref_count >= NEW_BUCKETS_PER_ADDRESS {
                    return false;
                }
                // Each further bucket is half as likely as the one before.
                let factor = 1u64 << info.ref_count;
                if self.below(factor) != 0 {
                    return false;
                }
                (id, false)
            }
            None => {
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                let info = AddrInfo {
                    peer: peer.clone(),
                    services: msg.services,
                    time,
                    last_try: 0,
                    last_success: 0,
                    attempts: 0,
                    source: source.clone(),
                    in_tried: false,
                    v2,
                    ref_count: 0,
                };
                self.entries.insert(id, info);
                self.index.insert(peer.clone(), id);
                self.new_count = self.new_count.saturating_add(1);
                (id, true)
            }
        };
        let slot = self.slot(true, self.new_bucket(&peer, source), &peer);
        let occupant = self.new_table.get(slot).copied().unwrap_or(EMPTY);
        if occupant == id {
            return fresh;
        }
        if occupant != EMPTY {
            // Replace the occupant only if it is terrible, or held by other buckets while this
            // address is in none yet (Core's `AddrManImpl::AddSingle`).
            let replace = self.entries.get(&occupant).is_some_and(|o| {
                o.is_terrible(now) || (o.ref_count > 1 && self.entries.get(&id).is_some_and(|e| e.ref_count == 0))
            });
            if !replace {
                if fresh {
                    self.delete(id);
                }
                return false;
            }
            self.clear_new_slot(slot);
        }
        self.set_slot(false, slot, id);
        if let Some(e) = self.entries.get_mut(&id) {
            e.ref_count = e.ref_count.saturating_add(1);
        }
        fresh
    }

    /// Addresses to answer a `getaddr` with: at most `max` and at most `max_pct` % of the book
    /// (Core: 1,000 and 23 %), in random order, terrible ones left out.
    pub fn get_addr(&mut self, max: usize, max_pct: usize, now: u64) -> Vec<AddrV2Message> {
        let limit = max.min(self.entries.len().saturating_mul(max_pct) / 100);
        let mut ids: Vec<u32> = self.entries.iter().filter(|(_, e)| !e.is_terrible(now)).map(|(id, _)| *id).collect();
        ids.sort_unstable();
        let mut out = Vec::with_capacity(limit.min(ids.len()));
        while out.len() < limit && !ids.is_empty() {
            let i = self.below(ids.len() as u64) as usize;
            let id = ids.swap_remove(i.min(ids.len().saturating_sub(1)));
            if let Some(e) = self.entries.get(&id) {
                let time = u32::try_from(e.time).unwrap_or(u32::MAX);
                out.push(AddrV2Message { time, services: e.services, addr: e.peer.addr.clone(), port: e.peer.port });
            }
        }
        out
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &AddrInfo> {
        self.entries.values()
    }

    /// How many new buckets hold entries whose source is in `source`'s group (for eclipse checks).
    pub fn new_buckets_of_source(&self, source: &AddrV2) -> usize {
        let g = group(source);
        let mut buckets = std::collections::HashSet::new();
        for (slot, id) in self.new_table.iter().enumerate() {
            if self.entries.get(id).is_some_and(|e| group(&e.source) == g) {
                buckets.insert(slot / BUCKET_SIZE);
            }
        }
        buckets.len()
    }

    /// Checks the book's invariants (counts, table membership, bounds); for tests and fuzzing.
    pub fn check(&self) -> Result<(), String> {
        let in_new = self.new_table.iter().filter(|i| **i != EMPTY).count();
        let refs: usize = self.entries.values().filter(|e| !e.in_tried).map(|e| usize::from(e.ref_count)).sum();
        if in_new != refs {
            return Err(format!("{in_new} new slots, {refs} references"));
        }
        let tried = self.tried_table.iter().filter(|i| **i != EMPTY).count();
        if tried != self.tried_count || self.entries.values().filter(|e| e.in_tried).count() != tried {
            return Err("tried count".into());
        }
        if self.entries.values().filter(|e| !e.in_tried).count() != self.new_count {
            return Err("new count".into());
        }
        if self.entries.values().any(|e| !e.in_tried && e.ref_count == 0) {
            return Err("an entry in no bucket".into());
        }
        if self.entries.len() > MAX_ENTRIES || self.index.len() != self.entries.len() {
            return Err("bounds".into());
        }
        self.check_occupancy()
    }
}
