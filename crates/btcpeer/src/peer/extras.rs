//! What btcd's and bchd's `peer` packages offer beyond the protocol: the last block the remote
//! announced, messages in their non-witness serialization, a snapshot of known inventory, and a
//! typed slot for the application's own per-peer state.

use std::any::{Any, TypeId};

use bitcoin::BlockHash;

use super::error::QueueError;
use super::{Completion, Peer};
use crate::wire::{Inventory, Message};

/// The application's own per-peer values, one per type (like `http::Extensions`): see
/// [`Peer::set_extension`].
#[derive(Default)]
pub(crate) struct Extensions(Vec<(TypeId, Box<dyn Any + Send + Sync>)>);

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Extensions({} values)", self.0.len())
    }
}

impl Peer {
    /// The last block the remote announced (by `inv` or `headers`), or set with
    /// [`Peer::update_last_announced_block`] (btcd's `LastAnnouncedBlock`).
    pub fn last_announced_block(&self) -> Option<BlockHash> {
        self.with_core(|c| c.state().last_announced_block())
    }

    /// Records a block the remote is known to have, as btcd's sync manager does when it learns one
    /// by other means.
    pub fn update_last_announced_block(&self, hash: BlockHash) {
        self.with_core(|c| c.state_mut().set_last_announced_block(hash));
    }

    /// Everything the remote is known to have, oldest first (bchd's `GetKnownTxInventory`, for
    /// every kind).
    ///
    /// ```
    /// # use btcpeer::peer::{NoopHandler, Peer, PeerConfig};
    /// # let peer = Peer::outbound(PeerConfig::builder(btcpeer::network::Network::REGTEST).build().unwrap(), "127.0.0.1:1", NoopHandler);
    /// use btcpeer::bitcoin::{hashes::Hash, BlockHash};
    /// use btcpeer::wire::Inventory;
    /// let block = Inventory::Block(BlockHash::all_zeros());
    /// peer.add_known_inventory(&block);
    /// assert_eq!(peer.known_inventory(), vec![block]);
    /// ```
    pub fn known_inventory(&self) -> Vec<Inventory> {
        self.with_core(|c| c.state_mut().known().snapshot())
    }

    /// Queues `message` with blocks and transactions in their serialization without witnesses
    /// (btcd's `QueueMessageWithEncoding`): what a `getdata` for `MSG_BLOCK` or `MSG_TX` (not the
    /// witness kinds) asks for, and what a remote without `NODE_WITNESS` can read (Core's
    /// `TX_NO_WITNESS`). Other messages go as they are.
    pub fn queue_without_witness(&self, message: &Message) -> Result<Completion, QueueError> {
        match crate::wire::without_witness(message) {
            Some(stripped) => self.queue_message(&stripped),
            None => self.queue_message(message),
        }
    }

    /// Stores the application's own value of type `T` with this peer (a sync-peer flag, a score),
    /// replacing any earlier one; it lives as long as the peer.
    ///
    /// ```
    /// # use btcpeer::peer::{NoopHandler, Peer, PeerConfig};
    /// # let peer = Peer::outbound(PeerConfig::builder(btcpeer::network::Network::REGTEST).build().unwrap(), "127.0.0.1:1", NoopHandler);
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct SyncPeer(bool);
    /// peer.set_extension(SyncPeer(true));
    /// assert_eq!(peer.extension::<SyncPeer>(), Some(SyncPeer(true)));
    /// assert_eq!(peer.with_extension(|s: &mut SyncPeer| { s.0 = false; s.0 }), Some(false));
    /// ```
    pub fn set_extension<T: Any + Send + Sync>(&self, value: T) {
        let mut st = self.lock();
        let slot = &mut st.extensions.0;
        slot.retain(|(t, _)| *t != TypeId::of::<T>());
        slot.push((TypeId::of::<T>(), Box::new(value)));
    }

    /// A copy of the stored value of type `T`.
    pub fn extension<T: Any + Send + Sync + Clone>(&self) -> Option<T> {
        self.with_extension(|v: &mut T| v.clone())
    }

    /// Runs `f` on the stored value of type `T` (under the peer's lock: keep it short, and do not
    /// call the peer from it).
    pub fn with_extension<T: Any + Send + Sync, R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut st = self.lock();
        st.extensions
            .0
            .iter_mut()
            .find(|(t, _)| *t == TypeId::of::<T>())
            .and_then(|(_, v)| v.downcast_mut::<T>())
            .map(f)
    }
}
