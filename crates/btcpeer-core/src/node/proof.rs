//! What earns eviction protection (Core's `m_last_tx_time` and `m_last_block_time`, read by
//! `SelectNodeToEvict`): something that cost the peer work and that a relay node that validates
//! nothing can still check.
//!
//! - **A transaction** counts when it decoded, is new to the node, and was asked for by us from
//!   that peer (an answer to our `getdata`, told with [`NodeCore::requested`]). Core credits a
//!   transaction accepted to its mempool; without a mempool, an unsolicited or repeated one is
//!   free to make and earns nothing.
//! - **A block or header** (`block`, `cmpctblock`, each header of `headers`) counts when it is
//!   new, its proof of work is valid for the target it states, that target is within the
//!   network's limit ([`NodeSettings::pow_limit`](super::NodeSettings::pow_limit)), and it is on
//!   or near the best chain the node has seen: it extends a header that counted, at a target at
//!   most 4 times easier than the hardest one seen (a retarget's bound), or its target is at
//!   least as hard as that. Until a header has counted, the first valid one does. On mainnet a
//!   header that counts costs as much work as a real block.

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::pow::Target;
use std::time::Instant;

use super::relay::{ID_RECENT, RecentSet};
use super::{ConnId, NodeCore};
use crate::wire::Inventory;

/// Headers remembered as counted, to tell whether a new one extends them.
pub(crate) const KNOWN_HEADERS: usize = 10_000;
/// Transactions remembered per peer as asked for (Core's `MAX_PEER_TX_ANNOUNCEMENTS`).
pub(crate) const REQUESTED_TXS: usize = 5_000;

/// The headers that counted and the hardest target among them.
#[derive(Debug)]
pub(crate) struct Chain {
    known: RecentSet,
    hardest: Option<Target>,
}

impl Default for Chain {
    fn default() -> Self {
        Chain { known: RecentSet::new(KNOWN_HEADERS), hardest: None }
    }
}

/// `t` made 4 times easier, saturating at the largest target.
fn four_times_easier(t: Target) -> Target {
    let b = t.to_be_bytes();
    if b.first().is_some_and(|top| top & 0xc0 != 0) {
        return Target::from_be_bytes([0xff; 32]);
    }
    t.max_transition_threshold_unchecked()
}

impl NodeCore {
    /// We asked connection `id` for these (a `getdata`): a transaction among them that it sends
    /// earns it eviction protection (see [`NodeCore::received`]). Only transactions are kept, at
    /// most 5,000 per peer.
    ///
    /// ```
    /// use std::time::Instant;
    /// use btcpeer_core::addrbook::AddrBook;
    /// use btcpeer_core::bitcoin::hashes::Hash;
    /// use btcpeer_core::bitcoin::p2p::ServiceFlags;
    /// use btcpeer_core::bitcoin::{Transaction, absolute::LockTime, transaction::Version};
    /// use btcpeer_core::node::{Admission, Hello, NodeCore, NodeSettings};
    /// use btcpeer_core::wire::{Inventory, Message};
    ///
    /// let (now, unix) = (Instant::now(), 1_700_000_000);
    /// let mut node = NodeCore::new(NodeSettings::default(), AddrBook::new([1; 32], 1), now);
    /// let Admission::Accept(id) = node.inbound("8.8.8.8:50000".parse()?, now, unix) else { panic!() };
    /// node.established(id, &Hello::new(ServiceFlags::NETWORK, 70016, true, false, "/x/".into()), now, unix);
    /// let tx = Transaction { version: Version::TWO, lock_time: LockTime::ZERO, input: vec![], output: vec![] };
    /// node.received(id, &Message::Tx(tx.clone()), now, unix);
    /// assert_eq!(node.conn(id).unwrap().last_tx, None, "not asked for: no credit");
    /// node.requested(id, &[Inventory::WTx(tx.compute_wtxid())]);
    /// node.received(id, &Message::Tx(tx), now, unix);
    /// assert_eq!(node.conn(id).unwrap().last_tx, Some(now));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn requested(&mut self, id: ConnId, items: &[Inventory]) {
        let hashes: Vec<u64> = items
            .iter()
            .filter_map(|i| match i {
                Inventory::Tx(t) | Inventory::WitnessTx(t) => Some(*t.as_byte_array()),
                Inventory::WTx(w) => Some(*w.as_byte_array()),
                _ => None,
            })
            .map(|h| self.keyed.hash(ID_RECENT, &[b"q", &h]))
            .collect();
        if let Some(c) = self.conns.get_mut(&id) {
            for h in hashes {
                c.requested.insert(h);
            }
        }
    }

    /// A transaction from `id`: credited when it was asked for and is new.
    pub(super) fn tx_seen(&mut self, id: ConnId, tx: &bitcoin::Transaction, now: Instant) {
        let txid = self.keyed.hash(ID_RECENT, &[b"q", tx.compute_txid().as_byte_array()]);
        let wtxid = self.keyed.hash(ID_RECENT, &[b"q", tx.compute_wtxid().as_byte_array()]);
        let asked = self.conns.get(&id).is_some_and(|c| c.requested.contains(txid) || c.requested.contains(wtxid));
        if !asked {
            return;
        }
        let h = self.keyed.hash(ID_RECENT, &[b"t", tx.compute_txid().as_byte_array()]);
        if self.recent.insert(h) {
            if let Some(c) = self.conns.get_mut(&id) {
                c.info.last_tx = Some(now);
            }
        }
    }

    /// A block's header (or a header) from `id`: credited when it is new and passes the checks
    /// of the [module](self).
    pub(super) fn header_seen(&mut self, id: ConnId, header: &Header, now: Instant) {
        let target = header.target();
        if target > self.settings.pow_limit {
            return;
        }
        let Ok(hash) = header.validate_pow(target) else { return };
        let me = self.keyed.hash(ID_RECENT, &[b"h", hash.as_byte_array()]);
        let prev = self.keyed.hash(ID_RECENT, &[b"h", header.prev_blockhash.as_byte_array()]);
        let chain = &mut self.chain;
        let near = match chain.hardest {
            None => true,
            Some(hardest) => target <= hardest || (chain.known.contains(prev) && target <= four_times_easier(hardest)),
        };
        if !near || chain.known.contains(me) {
            return;
        }
        chain.known.insert(me);
        chain.hardest = Some(chain.hardest.map_or(target, |h| h.min(target)));
        let h = self.keyed.hash(ID_RECENT, &[b"b", hash.as_byte_array()]);
        if self.recent.insert(h) {
            if let Some(c) = self.conns.get_mut(&id) {
                c.info.last_block = Some(now);
            }
        }
    }
}
