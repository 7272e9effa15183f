//! The two tables' slots and, beside them, which buckets hold entries of each network: what lets
//! [`select`](super::AddrBook::select) draw a bucket, then a slot, as Core's
//! `AddrManImpl::Select_` does, without drawing empty buckets again and again on a sparse book.
//! Core draws a bucket uniformly among all of them and draws again when it is empty (or holds no
//! entry of a wanted network); drawing uniformly among the buckets that do hold one is the same
//! distribution, in expected constant time. Core keeps per-network counts (`m_network_counts`)
//! for the same reason: to know at once whether a filter can be met.

use super::{AddrBook, BUCKET_SIZE, EMPTY, NEW_BUCKETS, NetKind, TRIED_BUCKETS};

/// The networks the book keeps, as indices.
pub(super) const NETS: usize = 5;
/// Not in the list of non-empty buckets.
const ABSENT: u16 = u16::MAX;

/// The index of a network.
pub(super) fn net_index(kind: NetKind) -> usize {
    match kind {
        NetKind::Ipv4 => 0,
        NetKind::Ipv6 => 1,
        NetKind::Onion => 2,
        NetKind::I2p => 3,
        NetKind::Cjdns => 4,
    }
}

/// A set of networks, one bit per [`net_index`].
pub(super) type NetMask = u8;
/// Every network.
pub(super) const ALL_NETS: NetMask = (1 << NETS) - 1;

/// The mask of `kinds`.
pub(super) fn mask_of(kinds: &[NetKind]) -> NetMask {
    kinds.iter().fold(0, |m, k| m | (1 << net_index(*k)))
}

/// Which buckets of one table hold entries of one network, and how many each holds.
#[derive(Clone, Debug)]
pub(super) struct Occupancy {
    /// Entries per bucket (at most [`BUCKET_SIZE`]).
    count: Vec<u8>,
    /// The buckets holding at least one, in no order.
    list: Vec<u16>,
    /// Where each bucket is in `list` ([`ABSENT`]: nowhere).
    at: Vec<u16>,
}

impl Occupancy {
    fn new(buckets: usize) -> Self {
        Occupancy { count: vec![0; buckets], list: Vec::new(), at: vec![ABSENT; buckets] }
    }

    /// Buckets holding at least one entry.
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    /// The `i`-th non-empty bucket.
    pub(super) fn nth(&self, i: usize) -> Option<usize> {
        self.list.get(i).map(|b| usize::from(*b))
    }

    /// Whether `bucket` holds an entry.
    pub(super) fn holds(&self, bucket: usize) -> bool {
        self.count.get(bucket).is_some_and(|c| *c > 0)
    }

    fn add(&mut self, bucket: usize) {
        let Some(c) = self.count.get_mut(bucket) else { return };
        *c = c.saturating_add(1);
        if *c == 1 {
            if let (Some(at), Ok(b), Ok(pos)) =
                (self.at.get_mut(bucket), u16::try_from(bucket), u16::try_from(self.list.len()))
            {
                *at = pos;
                self.list.push(b);
            }
        }
    }

    fn remove(&mut self, bucket: usize) {
        let Some(c) = self.count.get_mut(bucket) else { return };
        *c = c.saturating_sub(1);
        if *c != 0 {
            return;
        }
        let Some(pos) = self.at.get_mut(bucket).map(|p| std::mem::replace(p, ABSENT)) else { return };
        let pos = usize::from(pos);
        if pos >= self.list.len() {
            return;
        }
        self.list.swap_remove(pos);
        // The bucket moved into `pos` (if any) records its new place.
        if let Some(moved) = self.list.get(pos).copied() {
            if let (Some(at), Ok(p)) = (self.at.get_mut(usize::from(moved)), u16::try_from(pos)) {
                *at = p;
            }
        }
    }
}

/// The occupancy of both tables for every network: `[new × NETS, tried × NETS]`.
pub(super) fn empty_occupancy() -> Vec<Occupancy> {
    (0..NETS).map(|_| Occupancy::new(NEW_BUCKETS)).chain((0..NETS).map(|_| Occupancy::new(TRIED_BUCKETS))).collect()
}

impl AddrBook {
    /// The occupancy of `net` in the tried or new table.
    pub(super) fn occupancy(&self, tried: bool, net: usize) -> Option<&Occupancy> {
        self.occupancy.get(usize::from(tried).saturating_mul(NETS).saturating_add(net))
    }

    fn net_of(&self, id: u32) -> Option<usize> {
        self.entries.get(&id).and_then(|e| NetKind::of(&e.peer.addr)).map(net_index)
    }

    fn track(&mut self, tried: bool, slot: usize, id: u32, add: bool) {
        let Some(net) = self.net_of(id) else { return };
        let bucket = slot / BUCKET_SIZE;
        let i = usize::from(tried).saturating_mul(NETS).saturating_add(net);
        if let Some(o) = self.occupancy.get_mut(i) {
            if add { o.add(bucket) } else { o.remove(bucket) }
        }
    }

    /// Puts `id` (an entry of the book) into an empty `slot` of a table.
    pub(super) fn set_slot(&mut self, tried: bool, slot: usize, id: u32) {
        let table = if tried { &mut self.tried_table } else { &mut self.new_table };
        let Some(s) = table.get_mut(slot) else { return };
        if *s != EMPTY {
            return;
        }
        *s = id;
        self.track(tried, slot, id, true);
    }

    /// Empties `slot` of a table (the entry it held must still be in the book); returns what it
    /// held.
    pub(super) fn take_slot(&mut self, tried: bool, slot: usize) -> u32 {
        let table = if tried { &mut self.tried_table } else { &mut self.new_table };
        let Some(s) = table.get_mut(slot) else { return EMPTY };
        let id = std::mem::replace(s, EMPTY);
        if id != EMPTY {
            self.track(tried, slot, id, false);
        }
        id
    }

    /// Buckets of the tried or new table holding at least one address (what a selection draws
    /// from: one of these, uniformly, then a slot in it).
    ///
    /// ```
    /// use btcpeer_core::addrbook::{AddrBook, Endpoint};
    /// use btcpeer_core::bitcoin::p2p::{ServiceFlags, address::{AddrV2, AddrV2Message}};
    ///
    /// let mut book = AddrBook::new([7; 32], 1);
    /// assert_eq!(book.buckets_in_use(false), 0);
    /// let heard = AddrV2Message { time: 1_700_000_000, services: ServiceFlags::NETWORK, addr: AddrV2::Ipv4([8, 8, 4, 4].into()), port: 8333 };
    /// book.add(&[heard], &Endpoint::new(AddrV2::Ipv4([9, 9, 9, 9].into()), 8333), 1_700_000_000);
    /// assert_eq!((book.buckets_in_use(false), book.buckets_in_use(true)), (1, 0));
    /// ```
    pub fn buckets_in_use(&self, tried: bool) -> usize {
        let table = if tried { &self.tried_table } else { &self.new_table };
        table.chunks(BUCKET_SIZE).filter(|b| b.iter().any(|i| *i != EMPTY)).count()
    }

    /// Checks the occupancy against the tables (for [`check`](AddrBook::check)), in one pass
    /// over each table.
    pub(super) fn check_occupancy(&self) -> Result<(), String> {
        for tried in [false, true] {
            let table = if tried { &self.tried_table } else { &self.new_table };
            let buckets = table.len() / BUCKET_SIZE;
            let mut counts = vec![[0usize; NETS]; buckets];
            for (slot, id) in table.iter().enumerate() {
                if *id == EMPTY {
                    continue;
                }
                let net = self.net_of(*id).ok_or_else(|| format!("slot {slot} holds an unknown entry"))?;
                if let Some(c) = counts.get_mut(slot / BUCKET_SIZE).and_then(|b| b.get_mut(net)) {
                    *c = c.saturating_add(1);
                }
            }
            for net in 0..NETS {
                let o = self.occupancy(tried, net).ok_or("occupancy")?;
                let mut listed = 0usize;
                for (bucket, per_net) in counts.iter().enumerate() {
                    let n = per_net.get(net).copied().unwrap_or(0);
                    let counted = o.count.get(bucket).map_or(0, |c| usize::from(*c));
                    let at = o.at.get(bucket).copied().unwrap_or(ABSENT);
                    let in_list = at != ABSENT && o.nth(usize::from(at)) == Some(bucket);
                    if n != counted || in_list != (n > 0) {
                        return Err(format!("occupancy of bucket {bucket} (tried: {tried}, network {net})"));
                    }
                    listed = listed.saturating_add(usize::from(n > 0));
                }
                if o.list.len() != listed {
                    return Err("occupancy list".into());
                }
            }
        }
        Ok(())
    }
}
