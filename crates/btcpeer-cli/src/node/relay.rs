//! `btcpeer node`'s transaction relay: what it asks for, keeps, announces and serves (Core's
//! `FindTxForGetData` for what a `getdata` may have).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use btcpeer::bitcoin::{Transaction, Txid, Wtxid};
use btcpeer::node::{ConnKind, Node, NodeEvent};
use btcpeer::wire::{Inventory, Message};

/// Transactions kept to serve `getdata` (the oldest go first).
const KEPT_TXS: usize = 5_000;

/// The transactions relayed: the last [`KEPT_TXS`] received (with when), by txid and by wtxid.
#[derive(Default)]
pub(super) struct Relay {
    txs: HashMap<Txid, (Transaction, Instant)>,
    by_wtxid: HashMap<Wtxid, Txid>,
    order: VecDeque<(Txid, Wtxid)>,
    pub(super) relayed: u64,
    /// Block-relay-only connections: no transaction is asked of them or taken from them.
    block_relay: HashSet<u64>,
}

impl Relay {
    fn knows(&self, inv: &Inventory) -> bool {
        match inv {
            Inventory::Tx(t) | Inventory::WitnessTx(t) => self.txs.contains_key(t),
            Inventory::WTx(w) => self.by_wtxid.contains_key(w),
            _ => true,
        }
    }

    fn get(&self, inv: &Inventory) -> Option<&(Transaction, Instant)> {
        match inv {
            Inventory::Tx(t) | Inventory::WitnessTx(t) => self.txs.get(t),
            Inventory::WTx(w) => self.by_wtxid.get(w).and_then(|t| self.txs.get(t)),
            _ => None,
        }
    }

    /// The transaction `inv` asks for, if a peer whose last `inv` went out at `last_inv` may
    /// have it (Core's `FindTxForGetData`): only one we had before that announcement — announced
    /// to it, or older than what it was announced — so that `getdata` tells a spy nothing about
    /// what we received since.
    fn servable(&self, inv: &Inventory, last_inv: Option<Instant>) -> Option<&Transaction> {
        let (tx, received) = self.get(inv)?;
        last_inv.is_some_and(|sent| *received < sent).then_some(tx)
    }

    /// Keeps `tx` (whose ids the caller computed), received at `at`; false if it was known.
    fn insert(&mut self, txid: Txid, wtxid: Wtxid, tx: Transaction, at: Instant) -> bool {
        if self.txs.contains_key(&txid) {
            return false;
        }
        if self.order.len() >= KEPT_TXS {
            if let Some((old, old_w)) = self.order.pop_front() {
                self.txs.remove(&old);
                self.by_wtxid.remove(&old_w);
            }
        }
        self.by_wtxid.insert(wtxid, txid);
        self.order.push_back((txid, wtxid));
        self.txs.insert(txid, (tx, at));
        true
    }

    /// What a node's event means for the relay: which connections are block-relay-only.
    pub(super) fn on_event(&mut self, event: &NodeEvent) {
        match event {
            NodeEvent::Connected { id, kind: ConnKind::BlockRelay, .. } => {
                self.block_relay.insert(*id);
            }
            NodeEvent::Disconnected { id, .. } => {
                self.block_relay.remove(id);
            }
            _ => {}
        }
    }

    /// What a peer's message asks of the relay: getdata for what an `inv` names that we lack,
    /// announcements for a new `tx`, the transactions (or `notfound`) a `getdata` wants. Nothing
    /// is asked of or taken from a block-relay-only connection (the node ends one that sends
    /// transactions, as Core does).
    pub(super) fn on_message(&mut self, node: &Node, id: u64, message: &Message) {
        let from_block_relay = self.block_relay.contains(&id);
        match message {
            Message::Inv(items) if !from_block_relay => {
                let wanted: Vec<Inventory> =
                    items.iter().filter(|i| i.is_transaction() && !self.knows(i)).copied().collect();
                if !wanted.is_empty() {
                    node.request_transactions(id, wanted);
                }
            }
            Message::Tx(tx) if !from_block_relay => {
                let (txid, wtxid) = (tx.compute_txid(), tx.compute_wtxid());
                let now = tokio::time::Instant::now().into_std();
                if !self.txs.contains_key(&txid) && self.insert(txid, wtxid, tx.clone(), now) {
                    self.relayed = self.relayed.saturating_add(1);
                    node.announce_transaction(txid, wtxid);
                }
            }
            Message::GetData(items) => {
                let Some(peer) = node.peer(id) else { return };
                let last_inv = node.last_inventory_sent(id);
                let mut missing = Vec::new();
                for inv in items {
                    match (self.servable(inv, last_inv), inv) {
                        // MSG_TX asks for the serialization without witnesses (Core's TX_NO_WITNESS).
                        (Some(tx), Inventory::Tx(_)) => {
                            let _ = peer.queue_without_witness(&Message::Tx(tx.clone()));
                        }
                        (Some(tx), _) => {
                            let _ = peer.queue_message(&Message::Tx(tx.clone()));
                        }
                        (None, i) if i.is_transaction() => missing.push(*i),
                        _ => {}
                    }
                }
                if !missing.is_empty() {
                    let _ = peer.queue_message(&Message::NotFound(missing));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_relay_keeps_at_most_its_bound_and_forgets_the_oldest() {
        let mut relay = Relay::default();
        let tx = |n: u32| Transaction {
            version: btcpeer::bitcoin::transaction::Version::TWO,
            lock_time: btcpeer::bitcoin::absolute::LockTime::from_consensus(n),
            input: vec![],
            output: vec![],
        };
        let now = Instant::now();
        let keep = |relay: &mut Relay, t: Transaction| relay.insert(t.compute_txid(), t.compute_wtxid(), t, now);
        for n in 0..(KEPT_TXS as u32 + 10) {
            assert!(keep(&mut relay, tx(n)));
        }
        assert!(!keep(&mut relay, tx(KEPT_TXS as u32 + 9)), "known");
        assert_eq!((relay.txs.len(), relay.by_wtxid.len(), relay.order.len()), (KEPT_TXS, KEPT_TXS, KEPT_TXS));
        assert!(!relay.knows(&Inventory::Tx(tx(0).compute_txid())), "the oldest went first");
        assert!(relay.knows(&Inventory::WTx(tx(KEPT_TXS as u32).compute_wtxid())));
    }

    // Core's `FindTxForGetData`: a transaction is served to a peer only once it could have been
    // announced to it (received before the last `inv` that went to it).
    #[test]
    fn getdata_is_served_only_for_transactions_older_than_the_last_announcement_to_that_peer() {
        let mut relay = Relay::default();
        let t = Transaction {
            version: btcpeer::bitcoin::transaction::Version::TWO,
            lock_time: btcpeer::bitcoin::absolute::LockTime::from_consensus(7),
            input: vec![],
            output: vec![],
        };
        let received = Instant::now();
        relay.insert(t.compute_txid(), t.compute_wtxid(), t.clone(), received);
        let ask = Inventory::WTx(t.compute_wtxid());
        // A spy asking before any inv went to it, or before one went out after we got it.
        assert!(relay.servable(&ask, None).is_none(), "never announced to it");
        assert!(relay.servable(&ask, Some(received - Duration::from_secs(1))).is_none(), "newer than the last inv");
        // After an inv went to that peer: served.
        assert!(relay.servable(&ask, Some(received + Duration::from_millis(1))).is_some());
        assert!(relay.servable(&Inventory::Tx(t.compute_txid()), Some(received + Duration::from_secs(5))).is_some());
    }

    // Core disconnects a block-relay-only peer that sends `tx` (`RejectIncomingTxs`): its
    // transactions are neither kept nor relayed, and what it announces is not fetched.
    #[test]
    fn transactions_from_a_block_relay_only_connection_are_neither_kept_nor_relayed() {
        let config = btcpeer::peer::PeerConfig::builder(btcpeer::network::Network::REGTEST).build().unwrap();
        let node = Node::builder(config).build().unwrap();
        let mut relay = Relay::default();
        relay.block_relay.insert(4);
        let t = Transaction {
            version: btcpeer::bitcoin::transaction::Version::TWO,
            lock_time: btcpeer::bitcoin::absolute::LockTime::from_consensus(9),
            input: vec![],
            output: vec![],
        };
        relay.on_message(&node, 4, &Message::Tx(t.clone()));
        assert_eq!((relay.txs.len(), relay.relayed), (0, 0));
        // From a full-relay connection it is kept.
        relay.on_message(&node, 5, &Message::Tx(t));
        assert_eq!((relay.txs.len(), relay.relayed), (1, 1));
    }
}
