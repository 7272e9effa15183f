//! Choosing an address to dial (Core's `AddrManImpl::Select_` in `addrman.cpp`). On a large book,
//! Core's draw: a random bucket and a random first position in it, the first occupied slot from
//! there, taken with the entry's chance — expected constant time whatever the book's size. On a
//! small book (or with a network filter) most buckets are empty and a draw mostly misses, so the
//! candidates are listed and one is picked uniformly instead, with the same chance rule.

use super::{AddrBook, AddrInfo, BUCKET_SIZE, EMPTY, NEW_BUCKETS, NetKind, TRIED_BUCKETS};

/// Bucket draws before giving up: only reached if the counts disagreed with the tables.
const MAX_DRAWS: u32 = 10_000_000;
/// Up to this many candidates, they are listed rather than drawn from the tables.
const LIST_UP_TO: usize = 4_096;

impl AddrBook {
    /// An address to try: from tried or new with even odds (only new with `new_only`), restricted
    /// to `networks` when given, each candidate taken with its chance (Core's `Select`: recent
    /// attempts and failures make an address less likely, never impossible).
    pub fn select(&mut self, new_only: bool, networks: Option<&[NetKind]>, now: u64) -> Option<AddrInfo> {
        let wanted = |e: &AddrInfo| networks.is_none_or(|n| NetKind::of(&e.peer.addr).is_some_and(|k| n.contains(&k)));
        // Candidates in each table: the counts, or (with a network filter) a count of those wanted,
        // as Core checks `m_network_counts` first, so that the search below ends.
        let (in_new, in_tried) = match networks {
            None => (self.new_count, self.tried_count),
            Some(_) => {
                let count = |tried: bool| self.entries.values().filter(|e| e.in_tried == tried && wanted(e)).count();
                (count(false), count(true))
            }
        };
        let in_tried = if new_only { 0 } else { in_tried };
        if in_new == 0 && in_tried == 0 {
            return None;
        }
        if networks.is_some() || in_new.saturating_add(in_tried) <= LIST_UP_TO {
            return self.select_listed(new_only, &wanted, now);
        }
        // Even odds between the tables when both have candidates (Core's 50 % bias).
        let tried = in_tried > 0 && (in_new == 0 || self.random() & 1 == 0);
        let buckets = if tried { TRIED_BUCKETS } else { NEW_BUCKETS };
        let mut factor = 1.0f64;
        for _ in 0..MAX_DRAWS {
            let bucket = self.below(buckets as u64) as usize;
            let start = self.below(BUCKET_SIZE as u64) as usize;
            let table = if tried { &self.tried_table } else { &self.new_table };
            let first = bucket.saturating_mul(BUCKET_SIZE);
            // The first occupied (and wanted) slot from `start`, wrapping around the bucket.
            let found = (0..BUCKET_SIZE).find_map(|i| {
                let pos = start.wrapping_add(i) % BUCKET_SIZE;
                let id = table.get(first.saturating_add(pos)).copied().unwrap_or(EMPTY);
                (id != EMPTY).then_some(id).filter(|id| self.entries.get(id).is_some_and(wanted))
            });
            // An empty bucket: draw another.
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

    /// [`select`](AddrBook::select) over a list of the candidates, in a fixed order (the
    /// generator makes the choice, so a seeded book chooses the same way every run).
    fn select_listed(&mut self, new_only: bool, wanted: &dyn Fn(&AddrInfo) -> bool, now: u64) -> Option<AddrInfo> {
        let mut new_ids: Vec<u32> = Vec::new();
        let mut tried_ids: Vec<u32> = Vec::new();
        for (id, e) in &self.entries {
            if wanted(e) {
                if e.in_tried {
                    if !new_only {
                        tried_ids.push(*id);
                    }
                } else {
                    new_ids.push(*id);
                }
            }
        }
        new_ids.sort_unstable();
        tried_ids.sort_unstable();
        if new_ids.is_empty() && tried_ids.is_empty() {
            return None;
        }
        let mut factor = 1.0f64;
        loop {
            let use_tried = !tried_ids.is_empty() && (new_ids.is_empty() || self.random() & 1 == 0);
            let ids = if use_tried { &tried_ids } else { &new_ids };
            let pick = self.below(ids.len() as u64) as usize;
            let id = ids.get(pick).copied()?;
            let odds = self.entries.get(&id).map_or(0.0, |e| (factor * e.chance(now)).min(1.0));
            let draw = (self.random() >> 11) as f64 / (1u64 << 53) as f64;
            if draw < odds {
                return self.entries.get(&id).cloned();
            }
            factor *= 1.2;
        }
    }
}
