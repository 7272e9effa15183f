//! The demo's node: serves the chain, pushes addresses, relays announcements.

use super::*;

/// The node: serves the chain, pushes addresses, relays announcements. One handler for all its
/// inbound peers.
pub(super) struct Node {
    pub(super) server: ChainServer,
    pub(super) shared: Arc<DemoShared>,
    /// Inbound peers that completed the handshake, in order.
    pub(super) peers: Mutex<Vec<Peer>>,
    pub(super) addrs: Vec<AddrV2Message>,
}

impl Node {
    /// Announces `items` from `from` to every peer of the node; the peer it came from, and any that
    /// already has an item, is skipped by the peer's known-inventory check.
    pub(super) fn relay(&self, from: &Peer, items: &[Inventory]) {
        let peers = lock(&self.peers).clone();
        let (mut relayed, mut suppressed) = (0u64, 0u64);
        for to in &peers {
            let mut queued = 0u64;
            for item in items {
                // A peer never gets a transaction by the kind of id it did not negotiate (a wtxid
                // without wtxidrelay, a txid with it): Core would drop it. Such items, like those
                // the peer already knows, are suppressed; a full node would fetch the transaction
                // and announce it with both ids (`on_tx` below).
                if to.queue_inventory(*item) {
                    queued = queued.saturating_add(1);
                } else {
                    suppressed = suppressed.saturating_add(1);
                }
            }
            relayed = relayed.saturating_add(queued);
            if queued > 0 {
                self.shared.serve(to, |s| s.relayed = s.relayed.saturating_add(queued));
            }
        }
        Tally::add(&self.shared.tally.suppressed, suppressed);
        Tally::add(&self.shared.tally.node_heard, items.len() as u64);
        self.shared.emit(DemoEvent::Relay { peer: from.id(), count: items.len(), relayed, suppressed });
    }
}

impl Handler for Node {
    fn start_height(&self) -> i32 {
        self.server.start_height()
    }

    fn on_handshake(&self, peer: &Peer, remote: &RemoteInfo) {
        lock(&self.peers).push(peer.clone());
        self.shared.node_handshakes.fetch_add(1, Ordering::Relaxed);
        self.shared.emit(DemoEvent::handshake(peer, remote));
        // A node tells its peers about others; these are made up (documentation ranges).
        let _ = peer.push_addr(&self.addrs);
        // A first ping at once (then one a second), so that the node's side shows a round trip too.
        let _ = peer.queue_message(&Message::Ping(nonce()));
    }

    fn on_disconnect(&self, peer: &Peer, _reason: &DisconnectReason) {
        lock(&self.peers).retain(|p| p.id() != peer.id());
    }

    fn on_getheaders(&self, peer: &Peer, msg: GetHeadersMessage) {
        self.shared.serve(peer, |s| s.headers = s.headers.saturating_add(1));
        self.server.on_getheaders(peer, msg);
    }

    fn on_getblocks(&self, peer: &Peer, msg: GetBlocksMessage) {
        self.server.on_getblocks(peer, msg);
    }

    fn on_getdata(&self, peer: &Peer, items: Vec<Inventory>) {
        let blocks = items.iter().filter(|i| matches!(i, Inventory::Block(_) | Inventory::WitnessBlock(_))).count();
        self.shared.serve(peer, |s| s.blocks = s.blocks.saturating_add(blocks as u64));
        self.server.on_getdata(peer, items);
    }

    fn on_inv(&self, peer: &Peer, inv: Vec<Inventory>) {
        self.relay(peer, &inv);
    }

    fn on_tx(&self, peer: &Peer, tx: Transaction) {
        let peers = lock(&self.peers).clone();
        for to in peers.iter().filter(|p| p.id() != peer.id()) {
            to.queue_transaction(tx.compute_txid(), tx.compute_wtxid());
        }
    }
}
