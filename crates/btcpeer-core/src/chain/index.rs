//! A compact hash → height index for the main chain: an open-addressing table of `u32`
//! heights (4 bytes a slot, at most half full), keyed by a salted hash of the block hash and
//! verified against the chain's own hashes, so no hash is stored twice.

use std::hash::BuildHasher;

/// The table. Slot value 0 is empty; `h + 1` points at height `h` (relative to the chain's
/// base). A slot whose height no longer holds the hash it was made for is stale: lookups skip
/// it, and a rebuild drops it.
#[derive(Clone, Debug)]
pub(crate) struct HashIndex {
    slots: Vec<u32>,
    occupied: usize,
    salt: std::collections::hash_map::RandomState,
}

impl HashIndex {
    pub(crate) fn new() -> HashIndex {
        HashIndex { slots: vec![0; 16], occupied: 0, salt: std::collections::hash_map::RandomState::new() }
    }

    /// Bytes the table holds.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity().saturating_mul(4)
    }

    fn start(&self, hash: &[u8; 32]) -> usize {
        let mut key = [0u8; 8];
        key.copy_from_slice(hash.get(..8).unwrap_or(&[0; 8]));
        let h = self.salt.hash_one(u64::from_le_bytes(key));
        let mask = self.slots.len().saturating_sub(1);
        (h as usize) & mask
    }

    /// The index of `hash`, given `hash_at(i)` for the chain's entries.
    pub(crate) fn get(&self, hash: &[u8; 32], hash_at: impl Fn(u32) -> Option<[u8; 32]>) -> Option<u32> {
        let mask = self.slots.len().saturating_sub(1);
        let mut i = self.start(hash);
        for _ in 0..self.slots.len() {
            let v = *self.slots.get(i)?;
            if v == 0 {
                return None;
            }
            let idx = v.saturating_sub(1);
            if hash_at(idx).as_ref() == Some(hash) {
                return Some(idx);
            }
            i = i.wrapping_add(1) & mask;
        }
        None
    }

    /// Records that entry `idx` (the newest; every entry at or above it before was removed)
    /// has `hash`. `len` is the chain's length after the push, for a rebuild.
    pub(crate) fn insert(&mut self, hash: &[u8; 32], idx: u32, len: usize, hash_at: impl Fn(u32) -> Option<[u8; 32]>) {
        if self.occupied.saturating_add(1).saturating_mul(2) > self.slots.len() {
            self.rebuild(len, &hash_at);
            return;
        }
        let mask = self.slots.len().saturating_sub(1);
        let mut i = self.start(hash);
        for _ in 0..self.slots.len() {
            let Some(slot) = self.slots.get_mut(i) else { return };
            // Empty, or pointing at a height that was disconnected: reuse it.
            if *slot == 0 || slot.saturating_sub(1) >= idx {
                if *slot == 0 {
                    self.occupied = self.occupied.saturating_add(1);
                }
                *slot = idx.saturating_add(1);
                return;
            }
            i = i.wrapping_add(1) & mask;
        }
    }

    /// Rebuilds the table for entries `0..len`, dropping stale slots.
    pub(crate) fn rebuild(&mut self, len: usize, hash_at: &dyn Fn(u32) -> Option<[u8; 32]>) {
        let cap = len.saturating_mul(2).saturating_add(1).next_power_of_two().max(16);
        self.slots = vec![0; cap];
        self.occupied = 0;
        let mask = cap.saturating_sub(1);
        for idx in 0..u32::try_from(len).unwrap_or(u32::MAX) {
            let Some(hash) = hash_at(idx) else { continue };
            let mut i = self.start(&hash);
            while let Some(slot) = self.slots.get_mut(i) {
                if *slot == 0 {
                    *slot = idx.saturating_add(1);
                    self.occupied = self.occupied.saturating_add(1);
                    break;
                }
                i = i.wrapping_add(1) & mask;
            }
        }
    }
}
