//! What a driver tells a [`SyncPlanner`] besides answers: which peers it has and how high each
//! is, a batch it could not use, whether filters are wanted, a rescan.

use super::{PeerId, SyncPlanner, SyncRequest};

impl SyncPlanner {
    /// The peers known, in order.
    ///
    /// ```
    /// # use btcpeer_core::chain::{SyncConfig, SyncPlanner};
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.add_peer(9, 0);
    /// plan.add_peer(3, 0);
    /// assert_eq!(plan.peer_ids(), vec![3, 9]);
    /// ```
    pub fn peer_ids(&self) -> Vec<PeerId> {
        self.peers.keys().copied().collect()
    }

    /// Sets the height of our chain that `peer` has, as far as the caller knows (its last
    /// header or announcement on our chain; lower than before when it moved to another branch).
    /// Filter headers and filters are asked of the peers that have the range's last block
    /// (of all peers, when none has).
    ///
    /// ```
    /// # use btcpeer_core::chain::{SyncConfig, SyncPlanner};
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.add_peer(1, 100);
    /// plan.set_peer_height(1, 80);
    /// ```
    pub fn set_peer_height(&mut self, peer: PeerId, height: u32) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.best_height = height;
        }
    }

    /// `peer` answered the filter batch that starts at `start_height`, but the caller cannot use
    /// it now (a block it matched could not be fetched, or an earlier batch failed and blocks
    /// must be scanned in order): the batch is asked again, of whoever is free.
    ///
    /// ```
    /// use std::time::Instant;
    /// use btcpeer_core::chain::{ChainParams, FilterHeaderChain, HeaderChain, SyncConfig, SyncPlanner};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.filters_failed(1, 0); // nothing in flight: ignored
    /// assert_eq!(plan.filters_height(), 0);
    /// ```
    pub fn filters_failed(&mut self, peer: PeerId, start_height: u32) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        let Some(i) = p
            .in_flight
            .iter()
            .position(|f| matches!(f.request, SyncRequest::Filters { start_height: s, .. } if s == start_height))
        else {
            return;
        };
        let f = p.in_flight.remove(i);
        self.free(vec![f]);
    }

    /// Whether filters are wanted (a wallet that watches nothing fetches none; default yes).
    ///
    /// ```
    /// # use btcpeer_core::chain::{SyncConfig, SyncPlanner};
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.set_filters_wanted(false);
    /// assert!(!plan.filters_wanted());
    /// ```
    pub fn set_filters_wanted(&mut self, wanted: bool) {
        self.filters_wanted = wanted;
    }

    /// Whether filters are wanted ([`set_filters_wanted`](Self::set_filters_wanted)).
    ///
    /// ```
    /// # use btcpeer_core::chain::{SyncConfig, SyncPlanner};
    /// assert!(SyncPlanner::new(SyncConfig::default()).filters_wanted());
    /// ```
    pub fn filters_wanted(&self) -> bool {
        self.filters_wanted
    }

    /// Filters are wanted again from `height` (a script watched from then on): what was
    /// received from there on is asked again, and `height` becomes the lowest wanted.
    ///
    /// ```
    /// # use btcpeer_core::chain::{SyncConfig, SyncPlanner};
    /// let mut plan = SyncPlanner::new(SyncConfig::default().with_filters_from(500));
    /// plan.rescan_from(100);
    /// assert_eq!(plan.filters_height(), 100);
    /// ```
    pub fn rescan_from(&mut self, height: u32) {
        self.config.filters_from = self.config.filters_from.min(height);
        self.filters_again_from(height);
    }
}
