//! What keeps a peer alive: the application's handles.
//!
//! Every [`Peer`] the application gets from a constructor, and every clone of one, holds one share
//! of an [`Owner`]; when the last share goes, the peer ends with
//! [`DisconnectReason::LocalDropped`]. The peer's own tasks, and the `&Peer` its handler is given,
//! hold the peer's state but no share, so a peer never keeps itself alive. A [`WeakPeer`] holds
//! neither: it is what a registry stores.

use std::fmt;
use std::sync::{Arc, Weak};

use super::{DisconnectReason, Peer, Shared};

/// The application's share of a peer. Dropping the last one ends the peer.
pub(crate) struct Owner {
    pub(crate) shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Like `Peer::disconnect`: a never-associated peer finalizes here (its `on_disconnect` is
        // called once), a running one is cancelled and its task finalizes.
        Peer::view(self.shared.clone()).stop(DisconnectReason::LocalDropped);
    }
}

/// A reference to a peer that does not keep it alive: store these in a registry (a map of the
/// node's peers, a handler's list of whom to relay to) and [`upgrade`](WeakPeer::upgrade) one when
/// it is needed. Cheap to clone, `Send + Sync`.
///
/// ```
/// use btcpeer::network::Network;
/// use btcpeer::peer::{DisconnectReason, NoopHandler, Peer, PeerConfig};
///
/// let config = PeerConfig::builder(Network::REGTEST).build().unwrap();
/// let peer = Peer::outbound(config, "127.0.0.1:18444", NoopHandler);
/// let weak = peer.downgrade();
/// assert_eq!(weak.upgrade().map(|p| p.id()), Some(peer.id()));
/// drop(peer); // the last handle: the peer ends
/// assert!(weak.upgrade().is_none());
/// ```
#[derive(Clone)]
pub struct WeakPeer {
    pub(crate) shared: Weak<Shared>,
    pub(crate) id: u64,
}

impl WeakPeer {
    /// A handle to the peer, if the application still holds one somewhere (the returned handle is
    /// one more). `None` once every handle has been dropped — the peer has then ended, or is
    /// ending, with [`DisconnectReason::LocalDropped`]. A peer that ended for another reason still
    /// upgrades while handles to it exist; ask [`Peer::is_connected`].
    pub fn upgrade(&self) -> Option<Peer> {
        let shared = self.shared.upgrade()?;
        let owner = shared.owner.upgrade()?;
        Some(Peer { shared, owner: Some(owner) })
    }

    /// The peer's id ([`Peer::id`]), known without upgrading.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl fmt::Debug for WeakPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WeakPeer({})", self.id)
    }
}
