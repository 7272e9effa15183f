//! Choosing an address to dial (Core's `AddrManImpl::Select_` in `addrman.cpp`), always as Core
//! does, whatever the book's size and whatever the network filter: the tried or the new table
//! with even odds, a bucket, a random first position in it, the first occupied (and wanted) slot
//! from there, taken with the entry's chance. Drawing the bucket first is what bounds a source:
//! one source group reaches at most 64 of the 1,024 new buckets, so it wins at most the share
//! of the non-empty buckets it holds, however many addresses it sent.
//!
//! Core draws a bucket among all of them and draws again when it holds nothing wanted; here the
//! draw is among the buckets that hold an entry of a wanted network (see `table`), which is
//! the same distribution in expected constant time on a sparse book or for a rare network.
//!
//! Also here: the networks the node can reach (Core's `g_reachable_nets`), which decide what the
//! book stores and selects.

use bitcoin::p2p::address::AddrV2;

use super::table::{ALL_NETS, NETS, NetMask, mask_of, net_index};
use super::{AddrBook, AddrInfo, BUCKET_SIZE, EMPTY, NetKind};

/// Candidates drawn before giving up: only reached if the occupancy disagreed with the tables
/// (the chance factor grows 1.2× a draw, so any entry is taken within about 45 draws).
const MAX_DRAWS: u32 = 100_000;
/// Tries of the rejection step that makes a bucket draw uniform over several networks' buckets.
const MAX_BUCKET_TRIES: u32 = 1_000;

impl AddrBook {
    /// An address to try: from tried or new with even odds (only new with `new_only`), restricted
    /// to `networks` when given, and always to the [reachable](AddrBook::set_reachable) ones;
    /// each candidate taken with its chance (Core's `Select`: recent attempts and failures make
    /// an address less likely, never impossible).
    ///
    /// The draw is Core's at every size: a table, a bucket holding a wanted entry (uniformly),
    /// a random first position, the first wanted entry from there. An address's odds so depend
    /// on how many buckets its source group could reach, not on how many addresses it sent.
    ///
    /// ```
    /// use btcpeer_core::addrbook::{AddrBook, NetKind, Endpoint};
    /// use btcpeer_core::bitcoin::p2p::{ServiceFlags, address::{AddrV2, AddrV2Message}};
    ///
    /// let now = 1_700_000_000;
    /// let mut book = AddrBook::new([7; 32], 1);
    /// let heard = AddrV2Message { time: now as u32, services: ServiceFlags::NETWORK, addr: AddrV2::Ipv4([8, 8, 4, 4].into()), port: 8333 };
    /// book.add(&[heard], &Endpoint::new(AddrV2::Ipv4([9, 9, 9, 9].into()), 8333), now);
    /// assert!(book.select(false, None, now).is_some());
    /// assert!(book.select(false, Some(&[NetKind::Onion]), now).is_none());
    /// ```
    pub fn select(&mut self, new_only: bool, networks: Option<&[NetKind]>, now: u64) -> Option<AddrInfo> {
        let mask = self.reachable & networks.map_or(ALL_NETS, mask_of);
        // Whether a table holds a wanted entry (Core checks `m_network_counts` first, so the
        // search below ends).
        let holds = |tried: bool| {
            (0..NETS).any(|n| mask & (1 << n) != 0 && self.occupancy(tried, n).is_some_and(|o| o.len() > 0))
        };
        let in_new = holds(false);
        let in_tried = !new_only && holds(true);
        if !in_new && !in_tried {
            return None;
        }
        // Even odds between the tables when both have candidates (Core's 50 % bias).
        let tried = in_tried && (!in_new || self.random() & 1 == 0);
        let mut factor = 1.0f64;
        for _ in 0..MAX_DRAWS {
            let bucket = self.draw_bucket(tried, mask)?;
            let start = self.below(BUCKET_SIZE as u64) as usize;
            let first = bucket.saturating_mul(BUCKET_SIZE);
            let table = if tried { &self.tried_table } else { &self.new_table };
            // The first occupied and wanted slot from `start`, wrapping around the bucket.
            let found = (0..BUCKET_SIZE).find_map(|i| {
                let pos = start.wrapping_add(i) % BUCKET_SIZE;
                let id = table.get(first.saturating_add(pos)).copied().unwrap_or(EMPTY);
                (id != EMPTY)
                    .then_some(id)
                    .filter(|id| self.entries.get(id).is_some_and(|e| in_mask(mask, &e.peer.addr)))
            });
            let Some(id) = found else { continue };
            let odds = self.entries.get(&id).map_or(0.0, |e| (factor * e.chance(now)).min(1.0));
            let draw = (self.random() >> 11) as f64 / (1u64 << 53) as f64;
            if draw < odds {
                return self.entries.get(&id).cloned();
            }
            // Each miss makes the next candidate likelier, so the loop ends (Core's
            // `chance_factor *= 1.2`).
            factor *= 1.2;
        }
        None
    }

    /// A bucket of a table, uniformly among those holding an entry of a network in `mask`: a
    /// network's bucket list is chosen in proportion to its length, a bucket of it uniformly,
    /// and the bucket kept with odds 1 / (the wanted networks it holds), so a bucket holding
    /// two networks is not twice as likely.
    fn draw_bucket(&mut self, tried: bool, mask: NetMask) -> Option<usize> {
        let wanted = |n: usize| mask & (1 << n) != 0;
        let total: usize =
            (0..NETS).filter(|n| wanted(*n)).filter_map(|n| self.occupancy(tried, n)).map(|o| o.len()).sum();
        if total == 0 {
            return None;
        }
        let mut bucket = None;
        for _ in 0..MAX_BUCKET_TRIES {
            let mut r = self.below(total as u64) as usize;
            let mut pick = None;
            for n in (0..NETS).filter(|n| wanted(*n)) {
                let Some(o) = self.occupancy(tried, n) else { continue };
                if r < o.len() {
                    pick = o.nth(r);
                    break;
                }
                r = r.saturating_sub(o.len());
            }
            let Some(b) = pick else { continue };
            bucket = Some(b);
            let sharing =
                (0..NETS).filter(|n| wanted(*n) && self.occupancy(tried, *n).is_some_and(|o| o.holds(b))).count();
            if sharing <= 1 || self.below(sharing as u64) == 0 {
                break;
            }
        }
        bucket
    }

    /// Stores and selects only addresses on `networks` (Core adds an `addr` entry only if
    /// `g_reachable_nets` contains it, and dials only reachable addresses). The default is every
    /// network. Addresses already in the book on other networks stay (a later call may make
    /// them reachable again) but are never selected.
    ///
    /// ```
    /// use btcpeer_core::addrbook::{AddrBook, NetKind, Endpoint};
    /// use btcpeer_core::bitcoin::p2p::{ServiceFlags, address::{AddrV2, AddrV2Message}};
    ///
    /// let now = 1_700_000_000;
    /// let mut book = AddrBook::new([7; 32], 1);
    /// book.set_reachable(&[NetKind::Ipv4, NetKind::Ipv6]);
    /// let onion = AddrV2Message { time: now as u32, services: ServiceFlags::NETWORK, addr: AddrV2::TorV3([3; 32]), port: 8333 };
    /// assert_eq!(book.add(&[onion], &Endpoint::new(AddrV2::Ipv4([9, 9, 9, 9].into()), 8333), now), 0);
    /// assert!(!book.is_reachable(NetKind::Onion) && book.is_reachable(NetKind::Ipv4));
    /// ```
    pub fn set_reachable(&mut self, networks: &[NetKind]) {
        self.reachable = mask_of(networks);
    }

    /// [`set_reachable`](AddrBook::set_reachable) as a builder.
    ///
    /// ```
    /// use btcpeer_core::addrbook::{AddrBook, NetKind};
    ///
    /// let book = AddrBook::new([7; 32], 1).with_reachable(&[NetKind::Ipv4]);
    /// assert!(book.is_reachable(NetKind::Ipv4) && !book.is_reachable(NetKind::Ipv6));
    /// ```
    pub fn with_reachable(mut self, networks: &[NetKind]) -> Self {
        self.set_reachable(networks);
        self
    }

    /// Whether the book stores and selects addresses on `network`.
    ///
    /// ```
    /// use btcpeer_core::addrbook::{AddrBook, NetKind};
    ///
    /// assert!(AddrBook::new([7; 32], 1).is_reachable(NetKind::I2p), "every network by default");
    /// ```
    pub fn is_reachable(&self, network: NetKind) -> bool {
        self.reachable & (1 << net_index(network)) != 0
    }

    /// Whether `addr` is on a reachable network.
    pub(super) fn is_reachable_addr(&self, addr: &AddrV2) -> bool {
        in_mask(self.reachable, addr)
    }
}

/// Whether `addr` is on a network of `mask`.
fn in_mask(mask: NetMask, addr: &AddrV2) -> bool {
    NetKind::of(addr).is_some_and(|k| mask & (1 << net_index(k)) != 0)
}
