//! What the [`SyncPlanner`](super::SyncPlanner) is configured with and gives out: its limits,
//! the requests, the phases.

use std::time::Duration;

use bitcoin::BlockHash;

#[allow(unused_imports)] // For the docs.
use super::sync::{PeerId, SyncPlanner};

/// Limits and timeouts of a [`SyncPlanner`].
///
/// ```
/// use btcpeer_core::chain::SyncConfig;
/// let config = SyncConfig::default();
/// assert_eq!(config.filters_in_flight_per_peer, 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncConfig {
    /// A request unanswered for this long is a stall: the peer is reported by
    /// [`SyncPlanner::stalled`] and the request given to another (default 30 s).
    pub request_timeout: Duration,
    /// Filter batches one peer may have in flight (default 2).
    pub filters_in_flight_per_peer: usize,
    /// Filter batches in flight over all peers (default 8).
    pub filters_in_flight_total: usize,
    /// The first height whose filter is wanted (a wallet's birthday; default 0).
    pub filters_from: u32,
    /// Peers asked for each range of filter headers (default 2): connect the first answer,
    /// then the others — an answer that differs gives [`FilterError::Conflict`] at the first
    /// height that differs (see also [`first_divergence`]); fetch that block to see who lied.
    ///
    /// [`FilterError::Conflict`]: super::FilterError::Conflict
    /// [`first_divergence`]: super::first_divergence
    pub filter_headers_peers: usize,
    /// Filters asked for per `getcfilters` (1 to 1,000; default 1,000, Core's
    /// `MAX_GETCFILTERS_SIZE`).
    pub filters_batch: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            request_timeout: Duration::from_secs(30),
            filters_in_flight_per_peer: 2,
            filters_in_flight_total: 8,
            filters_from: 0,
            filter_headers_peers: 2,
            filters_batch: super::filters::MAX_CFILTERS,
        }
    }
}

impl SyncConfig {
    /// The same, with filters wanted from `height` (a wallet's birthday).
    ///
    /// ```
    /// # use btcpeer_core::chain::SyncConfig;
    /// assert_eq!(SyncConfig::default().with_filters_from(800_000).filters_from, 800_000);
    /// ```
    #[must_use]
    pub fn with_filters_from(mut self, height: u32) -> SyncConfig {
        self.filters_from = height;
        self
    }

    /// The same, with another stall timeout.
    ///
    /// ```
    /// # use btcpeer_core::chain::SyncConfig;
    /// # use std::time::Duration;
    /// let c = SyncConfig::default().with_request_timeout(Duration::from_secs(5));
    /// assert_eq!(c.request_timeout, Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> SyncConfig {
        self.request_timeout = timeout;
        self
    }

    /// The same, with filter headers asked of `peers` peers for each range (at least 1).
    ///
    /// ```
    /// # use btcpeer_core::chain::SyncConfig;
    /// assert_eq!(SyncConfig::default().with_filter_headers_peers(3).filter_headers_peers, 3);
    /// ```
    #[must_use]
    pub fn with_filter_headers_peers(mut self, peers: usize) -> SyncConfig {
        self.filter_headers_peers = peers.max(1);
        self
    }

    /// The same, with `size` filters per `getcfilters` (clamped to 1 ..= 1,000).
    ///
    /// ```
    /// # use btcpeer_core::chain::SyncConfig;
    /// assert_eq!(SyncConfig::default().with_filters_batch(5_000).filters_batch, 1_000);
    /// assert_eq!(SyncConfig::default().with_filters_batch(0).filters_batch, 1);
    /// ```
    #[must_use]
    pub fn with_filters_batch(mut self, size: u32) -> SyncConfig {
        self.filters_batch = size.clamp(1, super::filters::MAX_CFILTERS);
        self
    }

    /// The same, with other filter in-flight limits (each at least 1).
    ///
    /// ```
    /// # use btcpeer_core::chain::SyncConfig;
    /// let c = SyncConfig::default().with_filters_in_flight(3, 12);
    /// assert_eq!((c.filters_in_flight_per_peer, c.filters_in_flight_total), (3, 12));
    /// ```
    #[must_use]
    pub fn with_filters_in_flight(mut self, per_peer: usize, total: usize) -> SyncConfig {
        self.filters_in_flight_per_peer = per_peer.max(1);
        self.filters_in_flight_total = total.max(1);
        self
    }
}

/// A request for the caller to send.
///
/// ```
/// use btcpeer_core::chain::SyncRequest;
/// let r = SyncRequest::Headers { locator: vec![] };
/// assert!(matches!(r, SyncRequest::Headers { .. }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncRequest {
    /// `getheaders` with this locator (stop hash all zeros: as many as the peer has).
    Headers {
        /// The locator ([`HeaderChain::locator`](super::HeaderChain::locator)).
        locator: Vec<BlockHash>,
    },
    /// `getcfcheckpt` (basic filters) up to `stop_hash`.
    FilterCheckpoints {
        /// The tip the checkpoints are for.
        stop_hash: BlockHash,
    },
    /// `getcfheaders` (basic) for heights `start_height ..= height of stop_hash`.
    FilterHeaders {
        /// The first height.
        start_height: u32,
        /// The last block of the range.
        stop_hash: BlockHash,
    },
    /// `getcfilters` (basic) for heights `start_height ..= stop_height`.
    Filters {
        /// The first height.
        start_height: u32,
        /// The last height.
        stop_height: u32,
        /// The last block of the range.
        stop_hash: BlockHash,
    },
}

/// Where a sync is.
///
/// ```
/// use btcpeer_core::chain::{SyncConfig, SyncPlanner, SyncPhase, ChainParams, HeaderChain, FilterHeaderChain};
/// let plan = SyncPlanner::new(SyncConfig::default());
/// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
/// assert_eq!(plan.phase(&chain, &FilterHeaderChain::new()), SyncPhase::Headers);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncPhase {
    /// Fetching headers.
    Headers,
    /// Fetching checkpoints and filter headers.
    FilterHeaders,
    /// Fetching filters.
    Filters,
    /// Everything up to the best known tip is here.
    Synced,
}
