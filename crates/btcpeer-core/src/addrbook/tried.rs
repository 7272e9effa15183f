//! The tried table: moving an address there after a successful connection, and Bitcoin Core's
//! test-before-evict when its slot is taken (`AddrManImpl::Good_`, `ResolveCollisions_`,
//! `SelectTriedCollision_` in `addrman.cpp`).

use std::sync::atomic::{AtomicU64, Ordering};

use super::{AddrBook, AddrInfo, EMPTY, Endpoint, REPLACEMENT, TEST_WINDOW, TRIED_COLLISIONS};

/// A tried entry is given this long to answer its test before its silence counts as failure
/// (Core's "Give address at least 60 seconds to successfully connect").
const TEST_GRACE: u64 = 60;

/// The generator behind [`AddrBook::tried_collision`], which picks at random but takes `&self`.
#[derive(Debug)]
pub(super) struct PickRng(AtomicU64);

impl PickRng {
    pub(super) fn new(seed: u64) -> Self {
        PickRng(AtomicU64::new(seed.rotate_left(17) | 1))
    }

    fn below(&self, n: usize) -> usize {
        let mut state = self.0.load(Ordering::Relaxed);
        let r = crate::rng::next(&mut state);
        self.0.store(state, Ordering::Relaxed);
        r.checked_rem(n as u64).unwrap_or(0) as usize
    }
}

impl Clone for PickRng {
    fn clone(&self) -> Self {
        PickRng(AtomicU64::new(self.0.load(Ordering::Relaxed)))
    }
}

impl AddrBook {
    /// A handshake with `peer` succeeded: it moves to the tried table (Core's `Good_`). Its
    /// time — when it was last heard of — is *not* changed (Core: "to avoid leaking information
    /// about currently-connected peers"; see [`connected`](AddrBook::connected)). When its
    /// tried slot is taken, the occupant is tested first (test-before-evict): the move waits in
    /// the collision list until [`resolve_collisions`](AddrBook::resolve_collisions).
    ///
    /// ```
    /// # use btcpeer_core::addrbook::{AddrBook, Endpoint};
    /// # use btcpeer_core::bitcoin::p2p::{ServiceFlags, address::{AddrV2, AddrV2Message}};
    /// let now = 1_700_000_000;
    /// let mut book = AddrBook::new([7; 32], 1);
    /// let peer = Endpoint::new(AddrV2::Ipv4([8, 8, 4, 4].into()), 8333);
    /// let heard = AddrV2Message { time: now as u32 - 86_400, services: ServiceFlags::NETWORK, addr: peer.addr.clone(), port: 8333 };
    /// book.add(&[heard], &peer, now);
    /// book.good(&peer, now);
    /// let info = book.info(&peer).unwrap();
    /// assert!(info.in_tried && info.last_success == now && info.time == now - 86_400);
    /// ```
    pub fn good(&mut self, peer: &Endpoint, now: u64) {
        self.good_with(peer, true, now);
    }

    fn good_with(&mut self, peer: &Endpoint, test_before_evict: bool, now: u64) {
        self.last_good = now;
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
        if test_before_evict && occupant != EMPTY && occupant != id {
            if self.collisions.len() < TRIED_COLLISIONS && !self.collisions.contains(&id) {
                self.collisions.push(id);
            }
            return;
        }
        self.make_tried(id, now);
    }

    /// Moves an entry from the new table to the tried table, evicting (back to new) whatever holds
    /// its tried slot (Core's `MakeTried`).
    fn make_tried(&mut self, id: u32, now: u64) {
        let Some(peer) = self.entries.get(&id).map(|e| e.peer.clone()) else { return };
        // Out of every new bucket.
        for slot in 0..self.new_table.len() {
            if self.new_table.get(slot) == Some(&id) {
                self.take_slot(false, slot);
            }
        }
        self.new_count = self.new_count.saturating_sub(1);
        if let Some(e) = self.entries.get_mut(&id) {
            e.ref_count = 0;
        }
        let slot = self.slot(false, self.tried_bucket(&peer), &peer);
        let evicted = self.take_slot(true, slot);
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
        self.set_slot(true, slot, id);
        if let Some(e) = self.entries.get_mut(&id) {
            e.in_tried = true;
        }
        self.tried_count = self.tried_count.saturating_add(1);
    }

    /// Puts an entry evicted from tried into its new bucket, clearing that slot first.
    fn reinsert_new(&mut self, id: u32, _now: u64) {
        let Some((peer, source)) = self.entries.get(&id).map(|e| (e.peer.clone(), e.source.clone())) else { return };
        let slot = self.slot(true, self.new_bucket(&peer, &source), &peer);
        self.clear_new_slot(slot);
        self.set_slot(false, slot, id);
        if let Some(e) = self.entries.get_mut(&id) {
            e.ref_count = 1;
        }
    }

    /// The tried entry that a pending move would evict, for the node to test with a short
    /// connection (a feeler): one of the pending moves picked at random, as Core's
    /// `SelectTriedCollision_` (`None` when none waits, or the picked one's slot has emptied).
    ///
    /// Its test is a feeler: record the dial with [`attempt`](AddrBook::attempt) or
    /// [`attempt_uncounted`](AddrBook::attempt_uncounted), and call [`good`](AddrBook::good) when
    /// its handshake succeeds; a silence of more than 60 seconds is a failed test. If we are
    /// already connected to it, do not dial it: mark it [`good`](AddrBook::good) — it answers —
    /// and take a new-table address for the feeler instead (Core's `ThreadOpenConnections`:
    /// `AlreadyConnectedToAddress(addr)` → `addrman.Good(addr)`, "this avoids inadvertently
    /// evicting a currently-connected peer").
    ///
    /// ```
    /// use btcpeer_core::addrbook::AddrBook;
    ///
    /// assert!(AddrBook::new([7; 32], 1).tried_collision().is_none());
    /// ```
    pub fn tried_collision(&self) -> Option<&AddrInfo> {
        if self.collisions.is_empty() {
            return None;
        }
        let id = *self.collisions.get(self.pick.below(self.collisions.len()))?;
        let peer = &self.entries.get(&id)?.peer;
        let slot = self.slot(false, self.tried_bucket(peer), peer);
        self.tried_table.get(slot).filter(|o| **o != id).and_then(|o| self.entries.get(o))
    }

    /// Settles the pending moves to tried exactly as Core's `ResolveCollisions_`. For each, the
    /// occupant of the wanted tried slot:
    /// - connected successfully in the last 4 hours: it stays, the move is dropped;
    /// - else, tried in the last 4 hours (and, that try being after its last success, without
    ///   success): if the try is more than 60 seconds old the test failed and the newcomer takes
    ///   its place (the occupant goes back to new); a younger try is a test still in flight,
    ///   and the move waits;
    /// - else (not tested): the newcomer takes the place once its own success is more than 40
    ///   minutes old — the occupant could not be tested in that time — and waits until then.
    ///
    /// A slot that has emptied is simply taken.
    ///
    /// ```
    /// use btcpeer_core::addrbook::AddrBook;
    ///
    /// let mut book = AddrBook::new([7; 32], 1);
    /// book.resolve_collisions(1_700_000_000);
    /// assert_eq!(book.tried_len(), 0);
    /// ```
    pub fn resolve_collisions(&mut self, now: u64) {
        for id in std::mem::take(&mut self.collisions) {
            let Some((peer, new_success)) = self.entries.get(&id).map(|e| (e.peer.clone(), e.last_success)) else {
                continue;
            };
            let slot = self.slot(false, self.tried_bucket(&peer), &peer);
            let occupant = self.tried_table.get(slot).copied().unwrap_or(EMPTY);
            let Some(old) = self.entries.get(&occupant).filter(|_| occupant != id) else {
                // Not a collision any more (Core: `Good_(info_new, false, ...)`).
                self.good_with(&peer, false, now);
                continue;
            };
            let replace = if now.saturating_sub(old.last_success) < REPLACEMENT {
                // Connected successfully within 4 hours: keep it.
                Some(false)
            } else if now.saturating_sub(old.last_try) < REPLACEMENT {
                // Tried since without success: failed once given 60 seconds to answer.
                (now.saturating_sub(old.last_try) > TEST_GRACE).then_some(true)
            } else {
                // Not tested: give up testing after the window.
                (now.saturating_sub(new_success) > TEST_WINDOW).then_some(true)
            };
            match replace {
                Some(true) => self.good_with(&peer, false, now),
                Some(false) => {}
                None => self.collisions.push(id),
            }
        }
    }
}
