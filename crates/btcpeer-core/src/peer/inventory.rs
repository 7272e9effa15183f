//! Known inventory and inventory trickling, as plain structs with no I/O.
//!
//! [`KnownInventory`] remembers, per peer, what the remote already has: what we announced to it and
//! what it announced or sent to us. Entries are keyed by (type, hash) — not by object identity, as
//! btcd's cache accidentally is — with the witness and filtered variants folded into their base
//! type, since "the remote knows block X" does not depend on how the block was asked for.
//!
//! The trickle queue holds announcements waiting for the next trickle tick; it is bounded, and each
//! tick drains it completely in `inv` messages of at most 1,000 entries.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::OnceLock;

use bitcoin::hashes::Hash as _;
use bitcoin::{Txid, Wtxid};

use crate::wire::Inventory;

/// The key an inventory entry is remembered by: the base type and the hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InvKey(u32, [u8; 32]);

impl Hash for InvKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Four words of the hash (the first mixed with the type), each one `write_u64` for the keyed
        // hasher below.
        let mut words = self.1.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        state.write_u64(words.next().unwrap_or(0) ^ u64::from(self.0));
        for w in words {
            state.write_u64(w);
        }
    }
}

/// A fast keyed hasher for [`InvKey`]s: folded 128-bit multiplications (as in wyhash and foldhash)
/// with a random per-process seed. The keys are 32-byte hashes chosen by remotes, so the seed keeps
/// them from aiming for collisions; SipHash, std's default, cost four times a `sha256d` of the same
/// `inv` (see the `known_inventory` bench).
#[derive(Clone, Copy, Debug)]
pub(crate) struct InvHashBuilder([u64; 2]);

impl Default for InvHashBuilder {
    fn default() -> Self {
        static SEED: OnceLock<[u64; 2]> = OnceLock::new();
        InvHashBuilder(*SEED.get_or_init(|| {
            // Without an OS random source, fall back to the address of a stack value and the time.
            let fallback =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
            [getrandom::u64().unwrap_or(fallback), getrandom::u64().unwrap_or(!fallback) | 1]
        }))
    }
}

impl BuildHasher for InvHashBuilder {
    type Hasher = InvHasher;
    fn build_hasher(&self) -> InvHasher {
        InvHasher { state: self.0[0], key: self.0[1] }
    }
}

/// See [`InvHashBuilder`].
#[derive(Debug)]
pub(crate) struct InvHasher {
    state: u64,
    key: u64,
}

fn fold_mul(a: u64, b: u64) -> u64 {
    let r = u128::from(a).wrapping_mul(u128::from(b));
    (r as u64) ^ ((r >> 64) as u64)
}

impl Hasher for InvHasher {
    fn write_u64(&mut self, word: u64) {
        self.state = fold_mul(self.state ^ word, self.key ^ 0x2d35_8dcc_aa6c_78a5);
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            if let Some(d) = w.get_mut(..chunk.len()) {
                d.copy_from_slice(chunk);
            }
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn finish(&self) -> u64 {
        fold_mul(self.state, self.key ^ 0x8bb8_4b93_962e_acc9)
    }
}

impl InvKey {
    /// The key of an inventory entry (witness and filtered kinds folded into their base).
    pub(crate) fn of(inv: &Inventory) -> InvKey {
        let base = match inv {
            Inventory::Tx(_) | Inventory::WitnessTx(_) => 1,
            Inventory::Block(_)
            | Inventory::FilteredBlock(_)
            | Inventory::CompactBlock(_)
            | Inventory::WitnessBlock(_)
            | Inventory::FilteredWitnessBlock(_) => 2,
            other => other.inv_type(),
        };
        InvKey(base, inv.hash_bytes())
    }
}

/// A bounded set of inventory the remote knows, evicting the entry added or refreshed longest ago.
///
/// ```
/// use btcpeer_core::peer::KnownInventory;
/// use btcpeer_core::wire::Inventory;
/// use btcpeer_core::bitcoin::{hashes::Hash, BlockHash};
///
/// let mut known = KnownInventory::new(2);
/// let block = |n: u8| Inventory::Block(BlockHash::from_byte_array([n; 32]));
/// known.insert(&block(1));
/// known.insert(&block(2));
/// known.insert(&block(3)); // evicts block 1
/// assert!(!known.contains(&block(1)));
/// assert!(known.contains(&block(2)) && known.contains(&block(3)));
/// // Witness and plain block requests are the same block.
/// assert!(known.contains(&Inventory::WitnessBlock(BlockHash::from_byte_array([3; 32]))));
/// assert_eq!(known.snapshot(), vec![block(2), block(3)]);
/// ```
#[derive(Debug, Clone)]
pub struct KnownInventory {
    capacity: usize,
    entries: HashMap<InvKey, u64, InvHashBuilder>,
    order: VecDeque<(InvKey, u64)>,
    stamp: u64,
    /// Entries received but not yet merged, oldest first (at most `capacity`: older ones would be
    /// evicted by these anyway). Receiving a 1,000-entry `inv` costs a copy, not 1,000 hash-map
    /// inserts; the merge happens, in order, when the cache is next read or written.
    pending: Vec<InvKey>,
}

impl KnownInventory {
    /// An empty set holding at most `capacity` entries (at least one). Nothing is allocated until
    /// the first insert.
    pub fn new(capacity: usize) -> Self {
        KnownInventory {
            capacity: capacity.max(1),
            entries: HashMap::with_hasher(InvHashBuilder::default()),
            order: VecDeque::new(),
            stamp: 0,
            pending: Vec::new(),
        }
    }

    /// Adds (or refreshes) an entry, evicting the oldest when full.
    pub fn insert(&mut self, inv: &Inventory) {
        self.settle();
        self.insert_key(InvKey::of(inv));
    }

    /// Adds many entries at once (what a remote announced), cheaply: they are merged, in order, when
    /// the cache is next used. The result is the same as inserting them one by one.
    pub fn extend(&mut self, items: &[Inventory]) {
        // Only the newest `capacity` entries can survive: when one batch holds that many, nothing
        // older matters.
        let keep = items.len().saturating_sub(self.capacity);
        if keep > 0 || items.len() == self.capacity {
            self.pending.clear();
        }
        self.pending.extend(items.iter().skip(keep).map(InvKey::of));
        if self.pending.len() > self.capacity {
            let excess = self.pending.len().saturating_sub(self.capacity);
            self.pending.drain(..excess);
        }
    }

    /// Merges the entries added by [`KnownInventory::extend`].
    fn settle(&mut self) {
        if !self.pending.is_empty() {
            for key in std::mem::take(&mut self.pending) {
                self.insert_key(key);
            }
        }
    }

    /// Inserts one key (the caller has settled pending entries first).
    pub(crate) fn insert_key(&mut self, key: InvKey) {
        self.stamp = self.stamp.wrapping_add(1);
        self.entries.insert(key, self.stamp);
        self.order.push_back((key, self.stamp));
        while self.entries.len() > self.capacity {
            match self.order.pop_front() {
                Some((k, s)) if self.entries.get(&k) == Some(&s) => {
                    self.entries.remove(&k);
                }
                Some(_) => {}
                None => break,
            }
        }
        // Refreshed entries leave stale stamps behind; keep the order list proportional to the set.
        if self.order.len() > self.capacity.saturating_mul(2).saturating_add(16) {
            let entries = &self.entries;
            self.order.retain(|(k, s)| entries.get(k) == Some(s));
        }
    }

    /// Forgets one key.
    pub(crate) fn remove_key(&mut self, key: &InvKey) {
        self.settle();
        self.entries.remove(key);
    }

    /// Whether one key is remembered.
    pub(crate) fn contains_key(&mut self, key: &InvKey) -> bool {
        self.settle();
        self.entries.contains_key(key)
    }

    /// Whether the remote is known to have this item.
    pub fn contains(&mut self, inv: &Inventory) -> bool {
        self.settle();
        self.entries.contains_key(&InvKey::of(inv))
    }

    /// Forgets an item.
    pub fn remove(&mut self, inv: &Inventory) {
        self.settle();
        self.entries.remove(&InvKey::of(inv));
    }

    /// How many items are remembered.
    pub fn len(&mut self) -> usize {
        self.settle();
        self.entries.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    /// The configured capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Everything remembered, oldest first, each as its base kind (a transaction by txid or by
    /// wtxid, a block): bchd's `GetKnownTxInventory`, for all kinds.
    pub fn snapshot(&mut self) -> Vec<Inventory> {
        self.settle();
        let entries = &self.entries;
        self.order
            .iter()
            .filter(|(k, s)| entries.get(k) == Some(s))
            .map(|(InvKey(kind, hash), _)| match kind {
                1 => Inventory::Tx(Txid::from_byte_array(*hash)),
                2 => Inventory::Block(bitcoin::BlockHash::from_byte_array(*hash)),
                5 => Inventory::WTx(Wtxid::from_byte_array(*hash)),
                0 => Inventory::Error(*hash),
                other => Inventory::Unknown { inv_type: *other, hash: *hash },
            })
            .collect()
    }
}

/// An announcement waiting for the trickle tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Any inventory, announced as given.
    Plain(Inventory),
    /// A transaction, announced by wtxid or txid depending on what was negotiated.
    Tx {
        /// Its txid.
        txid: Txid,
        /// Its wtxid.
        wtxid: Wtxid,
    },
}

impl Pending {
    /// The inventory entry to announce, or `None` when it must not go out: a transaction to a
    /// remote that asked for none (`relay`), or one named by the kind of id the wtxidrelay
    /// negotiation excludes (Core ignores it: `ProcessMessage` for `INV` skips `MSG_TX` from a
    /// wtxid-relay peer and `MSG_WTX` from any other).
    pub(crate) fn announce(&self, wtxid_relay: bool, relay: bool) -> Option<Inventory> {
        match *self {
            Pending::Plain(inv) if inv.is_transaction() && (!relay || tx_kind_mismatch(&inv, wtxid_relay)) => None,
            Pending::Plain(inv) => Some(inv),
            Pending::Tx { .. } if !relay => None,
            Pending::Tx { wtxid, .. } if wtxid_relay => Some(Inventory::WTx(wtxid)),
            Pending::Tx { txid, .. } => Some(Inventory::Tx(txid)),
        }
    }

    /// Whether this is a transaction announcement.
    pub fn is_transaction(&self) -> bool {
        match self {
            Pending::Plain(inv) => inv.is_transaction(),
            Pending::Tx { .. } => true,
        }
    }

    /// Every key the remote learns when this is announced.
    pub(crate) fn keys(&self) -> [Option<InvKey>; 2] {
        match *self {
            Pending::Plain(inv) => [Some(InvKey::of(&inv)), None],
            Pending::Tx { txid, wtxid } => {
                [Some(InvKey(1, txid.to_byte_array())), Some(InvKey(5, wtxid.to_byte_array()))]
            }
        }
    }
}

/// Announcements waiting for the trickle tick: bounded, drained completely at each tick.
#[derive(Debug, Default)]
pub(crate) struct TrickleQueue {
    items: Vec<Pending>,
    limit: usize,
    dropped: u64,
}

impl TrickleQueue {
    /// A queue holding at most `limit` announcements.
    pub(crate) fn new(limit: usize) -> Self {
        TrickleQueue { items: Vec::new(), limit, dropped: 0 }
    }

    /// Adds an item; when the queue is at its limit the item is dropped and counted.
    pub(crate) fn push(&mut self, item: Pending) -> bool {
        if self.items.len() >= self.limit {
            self.dropped = self.dropped.saturating_add(1);
            return false;
        }
        self.items.push(item);
        true
    }

    /// Announcements waiting.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Announcements dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Takes everything, releasing the memory.
    pub(crate) fn take(&mut self) -> Vec<Pending> {
        std::mem::take(&mut self.items)
    }
}

/// Whether `inv` names a transaction by the kind of id that wtxidrelay (`wtxid_relay`) excludes:
/// a txid (`MSG_TX`, or `MSG_WITNESS_TX`) with it, a wtxid (`MSG_WTX`) without it.
pub fn tx_kind_mismatch(inv: &Inventory, wtxid_relay: bool) -> bool {
    match inv {
        Inventory::Tx(_) | Inventory::WitnessTx(_) => wtxid_relay,
        Inventory::WTx(_) => !wtxid_relay,
        _ => false,
    }
}

/// Splits announcements into `inv` messages of at most 1,000 entries (Core's per-message trickle
/// batch). Duplicates never reach this point: an item is marked known when it is queued.
pub(crate) fn inv_batches(items: &[Inventory]) -> Vec<Vec<Inventory>> {
    items.chunks(1_000).map(<[Inventory]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::BlockHash;

    fn tx(n: u8) -> Inventory {
        Inventory::Tx(Txid::from_byte_array([n; 32]))
    }

    #[test]
    fn r_s4_known_inventory_evicts_the_oldest_first() {
        let mut k = KnownInventory::new(3);
        for n in 1..=3 {
            k.insert(&tx(n));
        }
        k.insert(&tx(1)); // refresh 1: now 2 is the oldest
        k.insert(&tx(4));
        assert!(!k.contains(&tx(2)));
        assert!(k.contains(&tx(1)) && k.contains(&tx(3)) && k.contains(&tx(4)));
        assert_eq!(k.len(), 3);
        k.insert(&tx(5)); // evicts 3
        assert!(!k.contains(&tx(3)));
        k.remove(&tx(5));
        assert!(!k.contains(&tx(5)));
        assert_eq!(k.len(), 2);
    }

    #[test]
    fn r_s4_deferred_entries_keep_the_eviction_order() {
        // Extending then using the cache gives the same result as inserting one by one.
        let mut a = KnownInventory::new(3);
        let mut b = KnownInventory::new(3);
        a.insert(&tx(1));
        b.insert(&tx(1));
        let batch: Vec<Inventory> = (2..=6).map(tx).collect();
        a.extend(&batch);
        for i in &batch {
            b.insert(i);
        }
        for n in 1..=6 {
            assert_eq!(a.contains(&tx(n)), b.contains(&tx(n)), "tx {n}");
        }
        assert!(a.contains(&tx(6)) && a.contains(&tx(4)) && !a.contains(&tx(3)));
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn r_s4_known_inventory_is_keyed_by_type_and_hash_and_stays_bounded() {
        let mut k = KnownInventory::new(1_000);
        let h = [9u8; 32];
        k.insert(&Inventory::WitnessTx(Txid::from_byte_array(h)));
        assert!(k.contains(&Inventory::Tx(Txid::from_byte_array(h))), "witness folded into base type");
        assert!(!k.contains(&Inventory::Block(BlockHash::from_byte_array(h))), "same hash, other type");
        for round in 0..10_000u32 {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&(round % 1_500).to_le_bytes());
            k.insert(&tx(0));
            k.insert(&Inventory::Tx(Txid::from_byte_array(b)));
        }
        assert_eq!(k.len(), 1_000);
        assert!(k.order.len() <= 2 * 1_000 + 16, "stale stamps are compacted");
    }

    #[test]
    fn r_s3_trickle_queue_is_bounded_and_batches_by_1000() {
        let mut q = TrickleQueue::new(3);
        assert!(q.push(Pending::Plain(tx(1))));
        assert!(q.push(Pending::Plain(tx(2))));
        assert!(q.push(Pending::Plain(tx(3))));
        assert!(!q.push(Pending::Plain(tx(4))));
        assert_eq!((q.len(), q.dropped()), (3, 1));
        assert_eq!(q.take().len(), 3);
        let items: Vec<Inventory> = (0..2_500u32).map(|_| tx(1)).collect();
        let sizes: Vec<usize> = inv_batches(&items).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1_000, 1_000, 500]);
    }
}
