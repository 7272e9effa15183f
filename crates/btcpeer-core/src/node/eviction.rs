//! Which inbound peer to drop when a new one arrives and every slot is taken: Bitcoin Core's
//! `SelectNodeToEvict` and `ProtectEvictionCandidatesByRatio` (`src/node/eviction.cpp`), step by
//! step and in Core's order.
//!
//! Peers with `noban` (and outbound ones) are never candidates. Then Core protects, each time
//! removing the best few by one measure an attacker finds hard to fake:
//!
//! 1. 4 by keyed network group (the highest keys: deterministic, unpredictable to an attacker);
//! 2. 8 with the lowest minimum ping;
//! 3. 4 that most recently sent a novel transaction;
//! 4. up to 8 that do not relay transactions but most recently sent a novel block (the
//!    block-relay-only peers);
//! 5. 4 that most recently sent a novel block;
//! 6. half of the rest by longest uptime, of which up to a quarter of the rest is reserved for the
//!    disadvantaged networks: CJDNS, I2P, localhost and onion, the network with the fewest
//!    candidates first.
//!
//! Of those left, if some are preferred for eviction (discouraged), only they remain; the peer
//! evicted is the youngest of the network group with the most connections (a tie goes to the
//! group whose youngest member is the youngest). Fewer than 21 candidates are all protected.
//!
//! Times are measured in whole seconds before `now` and pings in microseconds, as Core counts
//! them, so two peers connected within the same second tie as they do in Core. Where Core leaves
//! the order of ties to `std::sort`, this module breaks them by id, the higher id (the later
//! connection) first to go, so the choice is a function of the set of candidates, whatever their
//! order.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use btcpeer_core::node::eviction::{EvictionCandidate, select_node_to_evict};
//!
//! let start = Instant::now();
//! let now = start + Duration::from_secs(3600);
//! // 30 peers, one a minute, each in its own network group, all pinging alike ...
//! let mut peers: Vec<EvictionCandidate> = (0..30)
//!     .map(|i| {
//!         let mut c = EvictionCandidate::new(i, start + Duration::from_secs(60 * i), 1000 + i);
//!         c.min_ping = Some(Duration::from_millis(100));
//!         c
//!     })
//!     .collect();
//! // ... but three share a group: the youngest of them goes.
//! for p in &mut peers[25..28] {
//!     p.keyed_net_group = 7;
//! }
//! assert_eq!(select_node_to_evict(peers, now), Some(27));
//! ```

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::addrbook::NetKind;

/// A peer's id, as the caller numbers its connections (Core's `NodeId`).
pub type CandidateId = u64;

/// What eviction knows of one inbound peer (Core's `NodeEvictionCandidate`, `node/eviction.h`).
///
/// Build one with [`EvictionCandidate::new`] and set what the peer's statistics say.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EvictionCandidate {
    /// The caller's id of the connection, given back by [`select_node_to_evict`].
    pub id: CandidateId,
    /// When the connection was made (`m_connected`).
    pub connected: Instant,
    /// The lowest ping measured (`m_min_ping_time`); `None`: never answered a ping, the worst.
    pub min_ping: Option<Duration>,
    /// When the peer last sent a block new to us (`m_last_block_time`); `None`: never.
    pub last_block: Option<Instant>,
    /// When the peer last sent a transaction new to us and accepted (`m_last_tx_time`); `None`: never.
    pub last_tx: Option<Instant>,
    /// Whether the peer offers the services we want of an outbound peer (`fRelevantServices`:
    /// `NODE_NETWORK` and `NODE_WITNESS`).
    pub relevant_services: bool,
    /// Whether the peer asked for transactions (`m_relay_txs`: its version's relay flag, or a
    /// filter loaded).
    pub relay_txs: bool,
    /// Whether the peer loaded a BIP37 bloom filter (`fBloomFilter`).
    pub bloom_filter: bool,
    /// The peer's network group hashed with a secret key (`nKeyedNetGroup`); peers of one group
    /// share it.
    pub keyed_net_group: u64,
    /// Whether the peer is discouraged, so preferred for eviction (`prefer_evict`).
    pub prefer_evict: bool,
    /// Whether the peer's address is local: loopback or unspecified, IPv4 `127.0.0.0/8` or
    /// `0.0.0.0/8` or IPv6 `::1` (`m_is_local`, Core's `CNetAddr::IsLocal`). Peers reaching us
    /// through a local proxy (Tor's) are local.
    pub is_local: bool,
    /// The network the peer reached us through (`m_network`, Core's `ConnectedThroughNetwork`:
    /// [`NetKind::Onion`] for an inbound connection to our onion service); `None`: unknown.
    pub network: Option<NetKind>,
    /// Whether the peer has the `noban` permission: never evicted (`m_noban`).
    pub noban: bool,
    /// Whether the connection is inbound; outbound ones are never evicted (Core's
    /// `ProtectOutboundConnections`, `m_conn_type`). `true` by default.
    pub inbound: bool,
}

impl EvictionCandidate {
    /// A candidate connected at `connected` in network group `keyed_net_group`, with the defaults
    /// Core gives a new one (`EvictionManagerImpl::AddCandidate`): never pinged, no block or
    /// transaction relayed, every flag false, network unknown, inbound.
    pub fn new(id: CandidateId, connected: Instant, keyed_net_group: u64) -> Self {
        EvictionCandidate {
            id,
            connected,
            min_ping: None,
            last_block: None,
            last_tx: None,
            relevant_services: false,
            relay_txs: false,
            bloom_filter: false,
            keyed_net_group,
            prefer_evict: false,
            is_local: false,
            network: None,
            noban: false,
            inbound: true,
        }
    }
}

/// A candidate with its times in Core's units: seconds (bigger is more recent, 0 is never) and
/// microseconds.
struct Keyed {
    c: EvictionCandidate,
    connected: u64,
    ping: u64,
    block: u64,
    tx: u64,
}

/// A time as a count of seconds that grows with time: `u64::MAX` less its whole seconds before
/// `now` (a time after `now` counts as `now`).
fn secs(t: Instant, now: Instant) -> u64 {
    u64::MAX.saturating_sub(now.saturating_duration_since(t).as_secs())
}

impl Keyed {
    fn new(c: EvictionCandidate, now: Instant) -> Self {
        // Core's defaults: a ping never measured is `microseconds::max()`, no block or
        // transaction is time 0, older than any.
        let ping = c.min_ping.map_or(u64::MAX, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let block = c.last_block.map_or(0, |t| secs(t, now));
        let tx = c.last_tx.map_or(0, |t| secs(t, now));
        Keyed { connected: secs(c.connected, now), ping, block, tx, c }
    }
}

/// Core's comparators (`eviction.cpp`) as orderings: a candidate sorted later is the better one,
/// the first to be protected. Ties go by id: the higher id first, so the lower one is protected.
fn by_id(a: &Keyed, b: &Keyed) -> Ordering {
    b.c.id.cmp(&a.c.id)
}

/// `CompareNetGroupKeyed`: the highest keyed network groups are protected.
fn net_group_keyed(a: &Keyed, b: &Keyed) -> Ordering {
    a.c.keyed_net_group.cmp(&b.c.keyed_net_group)
}

/// `ReverseCompareNodeMinPingTime`: the lowest pings are protected.
fn min_ping_time(a: &Keyed, b: &Keyed) -> Ordering {
    b.ping.cmp(&a.ping)
}

/// `ReverseCompareNodeTimeConnected`: the longest connected are protected; the youngest sort first.
fn time_connected(a: &Keyed, b: &Keyed) -> Ordering {
    b.connected.cmp(&a.connected)
}

/// `CompareNodeBlockTime`: the most recent novel block, then relevant services, then uptime.
fn block_time(a: &Keyed, b: &Keyed) -> Ordering {
    a.block.cmp(&b.block).then(a.c.relevant_services.cmp(&b.c.relevant_services)).then_with(|| time_connected(a, b))
}

/// `CompareNodeTXTime`: the most recent novel transaction, then relaying transactions, then not
/// having a bloom filter, then uptime.
fn tx_time(a: &Keyed, b: &Keyed) -> Ordering {
    a.tx.cmp(&b.tx)
        .then(a.c.relay_txs.cmp(&b.c.relay_txs))
        .then(b.c.bloom_filter.cmp(&a.c.bloom_filter))
        .then_with(|| time_connected(a, b))
}

/// `CompareNodeBlockRelayOnlyTime`: peers not relaying transactions, by most recent novel block,
/// then relevant services, then uptime.
fn block_relay_only_time(a: &Keyed, b: &Keyed) -> Ordering {
    b.c.relay_txs.cmp(&a.c.relay_txs).then_with(|| block_time(a, b))
}

/// A network whose peers Core reserves protected places for (`ProtectEvictionCandidatesByRatio`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Disadvantaged {
    /// `m_is_local` peers (Core's `{is_local: true, NET_MAX}`).
    Localhost,
    /// Peers through this network.
    Net(NetKind),
}

impl Disadvantaged {
    fn holds(self, c: &EvictionCandidate) -> bool {
        match self {
            Disadvantaged::Localhost => c.is_local,
            Disadvantaged::Net(n) => c.network == Some(n),
        }
    }

    /// `CompareNodeNetworkTime`: this network's peers last (protected first), each part by uptime.
    /// Core's localhost entry compares `m_is_local`, then a network no candidate has.
    fn compare(self, a: &Keyed, b: &Keyed) -> Ordering {
        let local = match self {
            Disadvantaged::Localhost => a.c.is_local.cmp(&b.c.is_local),
            Disadvantaged::Net(_) => Ordering::Equal,
        };
        let net = match self {
            Disadvantaged::Localhost => Ordering::Equal,
            Disadvantaged::Net(n) => (a.c.network == Some(n)).cmp(&(b.c.network == Some(n))),
        };
        local.then(net).then_with(|| time_connected(a, b))
    }
}

/// Core's `EraseLastKElements`: sorts `v` by `cmp` (ties by id), then removes those of the last
/// `k` for which `protect` holds.
fn erase_last_k(
    v: &mut Vec<Keyed>,
    cmp: impl Fn(&Keyed, &Keyed) -> Ordering,
    k: usize,
    protect: impl Fn(&EvictionCandidate) -> bool,
) {
    v.sort_by(|a, b| cmp(a, b).then_with(|| by_id(a, b)));
    let start = v.len().saturating_sub(k);
    let tail = v.split_off(start);
    v.extend(tail.into_iter().filter(|k| !protect(&k.c)));
}

/// Core's `ProtectEvictionCandidatesByRatio` on keyed candidates.
fn protect_by_ratio(v: &mut Vec<Keyed>) {
    let initial_size = v.len();
    let total_protect_size = initial_size / 2;
    // Core's array order; for equal counts, earlier members first recover unused places.
    let mut networks: [(Disadvantaged, usize); 4] = [
        (Disadvantaged::Net(NetKind::Cjdns), 0),
        (Disadvantaged::Net(NetKind::I2p), 0),
        (Disadvantaged::Localhost, 0),
        (Disadvantaged::Net(NetKind::Onion), 0),
    ];
    for (net, count) in &mut networks {
        *count = v.iter().filter(|k| net.holds(&k.c)).count();
    }
    // Fewest candidates first (a stable sort keeps Core's order for ties).
    networks.sort_by_key(|(_, count)| *count);

    // Up to a quarter of the candidates by disadvantaged network.
    let max_protect_by_network = total_protect_size / 2;
    let mut num_protected = 0usize;
    while num_protected < max_protect_by_network {
        let num_networks = networks.iter().filter(|(_, count)| *count > 0).count();
        if num_networks == 0 {
            break;
        }
        let to_protect = max_protect_by_network.saturating_sub(num_protected);
        let per_network = to_protect.checked_div(num_networks).unwrap_or(0).max(1);
        let mut protected_at_least_one = false;
        for (net, count) in &mut networks {
            if *count == 0 {
                continue;
            }
            let net = *net;
            let before = v.len();
            erase_last_k(v, |a, b| net.compare(a, b), per_network, |c| net.holds(c));
            let delta = before.saturating_sub(v.len());
            if delta > 0 {
                protected_at_least_one = true;
                num_protected = num_protected.saturating_add(delta);
                if num_protected >= max_protect_by_network {
                    break;
                }
                *count = count.saturating_sub(delta);
            }
        }
        if !protected_at_least_one {
            break;
        }
    }
    // The rest of the half by uptime; this also leaves `v` youngest first.
    let remaining_to_protect = total_protect_size.saturating_sub(num_protected);
    erase_last_k(v, time_connected, remaining_to_protect, |_| true);
}

/// Protects half of `candidates` by uptime, up to a quarter of them reserved for the
/// disadvantaged networks (CJDNS, I2P, localhost, onion; the one with the fewest candidates first,
/// each taking its share of the places and giving the unused ones to the next), removing the
/// protected ones from `candidates` (Core's `ProtectEvictionCandidatesByRatio`). What is left is
/// sorted youngest first. `now` is the time the connection times are measured from.
///
/// ```
/// use std::time::{Duration, Instant};
/// use btcpeer_core::addrbook::NetKind;
/// use btcpeer_core::node::eviction::{EvictionCandidate, protect_eviction_candidates_by_ratio};
///
/// let start = Instant::now();
/// let mut peers: Vec<EvictionCandidate> =
///     (0..8).map(|i| EvictionCandidate::new(i, start + Duration::from_secs(i), i)).collect();
/// peers[7].network = Some(NetKind::Onion); // the youngest, but on onion
/// protect_eviction_candidates_by_ratio(&mut peers, start + Duration::from_secs(60));
/// let left: Vec<u64> = peers.iter().map(|c| c.id).collect();
/// assert_eq!(left, [6, 5, 4, 3]); // protected: 0, 1, 2 by uptime and 7 for its network
/// ```
pub fn protect_eviction_candidates_by_ratio(candidates: &mut Vec<EvictionCandidate>, now: Instant) {
    let mut keyed: Vec<Keyed> = candidates.drain(..).map(|c| Keyed::new(c, now)).collect();
    protect_by_ratio(&mut keyed);
    candidates.extend(keyed.into_iter().map(|k| k.c));
}

/// The inbound peer to disconnect to make room for a new one, or `None` when every candidate is
/// protected (Core's `SelectNodeToEvict`, `node/eviction.cpp`); see the [module](self) for the
/// rules. `now` is the time the candidates' times are measured from. Never a `noban` or outbound
/// candidate; with fewer than 21 candidates, always `None`.
pub fn select_node_to_evict(candidates: Vec<EvictionCandidate>, now: Instant) -> Option<CandidateId> {
    // ProtectNoBanConnections, ProtectOutboundConnections.
    let mut v: Vec<Keyed> =
        candidates.into_iter().filter(|c| !c.noban && c.inbound).map(|c| Keyed::new(c, now)).collect();
    // 4 by keyed net group: an attacker cannot predict which groups are protected.
    erase_last_k(&mut v, net_group_keyed, 4, |_| true);
    // 8 with the lowest minimum ping: not faked without moving closer.
    erase_last_k(&mut v, min_ping_time, 8, |_| true);
    // 4 that most recently sent novel transactions: not faked without useful work.
    erase_last_k(&mut v, tx_time, 4, |_| true);
    // Up to 8 non-transaction-relaying peers that most recently sent novel blocks.
    erase_last_k(&mut v, block_relay_only_time, 8, |c| !c.relay_txs && c.relevant_services);
    // 4 that most recently sent novel blocks.
    erase_last_k(&mut v, block_time, 4, |_| true);
    protect_by_ratio(&mut v);
    if v.is_empty() {
        return None;
    }
    // Those preferred for eviction, if any, after the other protections: a peer best by another
    // measure (relaying blocks) is kept even if discouraged.
    if v.iter().any(|k| k.c.prefer_evict) {
        v.retain(|k| k.c.prefer_evict);
    }
    // The network group with the most connections, a tie to the one with the youngest member
    // (`v` is youngest first, so a group's first member is its youngest).
    let mut groups: BTreeMap<u64, (usize, u64, CandidateId)> = BTreeMap::new();
    let mut best: Option<(usize, u64, u64)> = None; // (size, youngest's time, group)
    for k in &v {
        let entry = groups.entry(k.c.keyed_net_group).or_insert((0, k.connected, k.c.id));
        entry.0 = entry.0.saturating_add(1);
        let (size, time) = (entry.0, entry.1);
        let better = match best {
            None => true,
            Some((best_size, best_time, _)) => size > best_size || (size == best_size && time > best_time),
        };
        if better {
            best = Some((size, time, k.c.keyed_net_group));
        }
    }
    let (_, _, group) = best?;
    groups.get(&group).map(|(_, _, youngest)| *youngest)
}
