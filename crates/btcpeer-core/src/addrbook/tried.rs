//! The tried table: moving an address there after a successful connection, and Bitcoin Core's
//! test-before-evict when its slot is taken (`AddrManImpl::Good_`, `ResolveCollisions_`,
//! `SelectTriedCollision_` in `addrman.cpp`).

use super::{AddrBook, AddrInfo, EMPTY, Peer, REPLACEMENT, TEST_WINDOW, TRIED_COLLISIONS};

impl AddrBook {
    /// A handshake with `peer` succeeded: it moves to the tried table. When its tried slot is
    /// taken, the occupant is tested first (test-before-evict): the move waits in the collision
    /// list until [`resolve_collisions`](AddrBook::resolve_collisions).
    pub fn good(&mut self, peer: &Peer, now: u64) {
        let Some(id) = self.index.get(peer).copied() else { return };
        let Some(e) = self.entries.get_mut(&id) else { return };
        e.last_success = now;
        e.last_try = now;
        e.attempts = 0;
        if e.in_tried {
            return;
        }
        let slot = self.slot(false, self.tried_bucket(peer), peer);
        let occupant = self.tried_table.get(slot).copied().unwrap_or(EMPTY);
        if occupant != EMPTY && occupant != id {
            if self.collisions.len() < TRIED_COLLISIONS && !self.collisions.contains(&id) {
                self.collisions.push(id);
            }
            return;
        }
        self.make_tried(id, now);
    }

    /// Moves an entry from the new table to the tried table, evicting (back to new) whatever holds
    /// its tried slot.
    fn make_tried(&mut self, id: u32, now: u64) {
        let Some(peer) = self.entries.get(&id).map(|e| e.peer.clone()) else { return };
        // Out of every new bucket.
        for slot in 0..self.new_table.len() {
            if self.new_table.get(slot) == Some(&id) {
                if let Some(s) = self.new_table.get_mut(slot) {
                    *s = EMPTY;
                }
            }
        }
        self.new_count = self.new_count.saturating_sub(1);
        let slot = self.slot(false, self.tried_bucket(&peer), &peer);
        let evicted = self.tried_table.get(slot).copied().unwrap_or(EMPTY);
        if evicted != EMPTY {
            // The old entry goes back to a new bucket (its source's), or is dropped.
            self.tried_count = self.tried_count.saturating_sub(1);
            if let Some(old) = self.entries.get_mut(&evicted) {
                old.in_tried = false;
                old.ref_count = 0;
            }
            self.new_count = self.new_count.saturating_add(1);
            self.reinsert_new(evicted, now);
        }
        if let Some(s) = self.tried_table.get_mut(slot) {
            *s = id;
        }
        if let Some(e) = self.entries.get_mut(&id) {
            e.in_tried = true;
            e.ref_count = 0;
        }
        self.tried_count = self.tried_count.saturating_add(1);
    }

    /// Puts an entry evicted from tried into its new bucket, clearing that slot first.
    fn reinsert_new(&mut self, id: u32, _now: u64) {
        let Some((peer, source)) = self.entries.get(&id).map(|e| (e.peer.clone(), e.source.clone())) else { return };
        let slot = self.slot(true, self.new_bucket(&peer, &source), &peer);
        self.clear_new_slot(slot);
        if let Some(s) = self.new_table.get_mut(slot) {
            *s = id;
        }
        if let Some(e) = self.entries.get_mut(&id) {
            e.ref_count = 1;
        }
    }

    /// The tried entry that a pending move would evict, for the node to test with a short
    /// connection (Core's `SelectTriedCollision`).
    pub fn tried_collision(&self) -> Option<&AddrInfo> {
        let id = *self.collisions.first()?;
        let peer = &self.entries.get(&id)?.peer;
        let slot = self.slot(false, self.tried_bucket(peer), peer);
        self.tried_table.get(slot).and_then(|o| self.entries.get(o))
    }

    /// Settles the pending moves to tried (Core's `ResolveCollisions`): an occupant that answered
    /// within the last 4 hours stays, and the newcomer stays in new; one whose test failed, or
    /// that has not answered for the 40-minute test window, is evicted for the newcomer.
    pub fn resolve_collisions(&mut self, now: u64) {
        for id in std::mem::take(&mut self.collisions) {
            let Some(peer) = self.entries.get(&id).map(|e| e.peer.clone()) else { continue };
            let slot = self.slot(false, self.tried_bucket(&peer), &peer);
            let occupant = self.tried_table.get(slot).copied().unwrap_or(EMPTY);
            let Some(old) = self.entries.get(&occupant) else {
                self.make_tried(id, now);
                continue;
            };
            let recently_good = now.saturating_sub(old.last_success) < REPLACEMENT;
            let tested_and_failed = old.last_try > old.last_success && now.saturating_sub(old.last_try) < TEST_WINDOW;
            let test_expired = self.entries.get(&id).is_some_and(|e| now.saturating_sub(e.last_success) >= TEST_WINDOW);
            if recently_good && !tested_and_failed {
                continue;
            }
            if tested_and_failed || test_expired {
                self.make_tried(id, now);
            } else {
                // Still being tested.
                self.collisions.push(id);
            }
        }
    }
}
