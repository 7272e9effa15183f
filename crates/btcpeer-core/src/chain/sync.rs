//! The sync state machine: given the peers, the chains and the time, which request to send to
//! which peer next — headers by locator, then the `getcfcheckpt` of each peer, then filter
//! headers in ranges of at most 2,000, then filters in batches of at most 1,000 — with
//! in-flight limits, stall handling and a restart after a reorg. Sans-IO: the caller sends
//! the requests and reports the answers.

use std::collections::BTreeMap;
use std::time::Instant;

use super::filters::{FilterHeaderChain, MAX_CFHEADERS, MAX_CFILTERS};
use super::headers::{HeaderChain, MAX_HEADERS};
pub use super::sync_types::{SyncConfig, SyncPhase, SyncRequest};

/// A peer, as the caller numbers them.
///
/// ```
/// let peer: btcpeer_core::chain::PeerId = 7;
/// ```
pub type PeerId = u64;

#[derive(Clone, Debug)]
struct InFlight {
    request: SyncRequest,
    since: Instant,
    /// Filters of the batch not received yet (0 for other requests).
    remaining: u32,
}

#[derive(Clone, Debug)]
struct PeerState {
    /// The height the peer said it has (its version's start height, raised by announcements).
    best_height: u32,
    /// Its last `headers` answer was short: it has nothing more past our tip.
    headers_done: bool,
    checkpoint_asked: bool,
    in_flight: Vec<InFlight>,
}

impl PeerState {
    fn filters_in_flight(&self) -> usize {
        self.in_flight.iter().filter(|f| matches!(f.request, SyncRequest::Filters { .. })).count()
    }
}

/// Plans a BIP157 sync over several peers. The caller sends each request
/// [`next_requests`](Self::next_requests) gives, reports answers with the `*_received` methods,
/// calls [`stalled`](Self::stalled) when [`poll_timeout`](Self::poll_timeout) passes, and
/// [`reorged`](Self::reorged) after a reorg.
///
/// Headers are asked of one peer at a time, until every peer has answered with fewer than
/// 2,000 (it has no more); then each peer's `getcfcheckpt` (for the caller to cross-check);
/// then filter headers, one range at a time (they must connect in order), each range asked of
/// [`SyncConfig::filter_headers_peers`] peers so their answers are cross-checked; filters from
/// several peers in parallel. A filter is received once [`filter_received`](Self::filter_received)
/// reports it (after [`FilterHeaderChain::check_filter`]).
///
/// ```
/// use std::time::Instant;
/// use btcpeer_core::chain::{ChainParams, FilterHeaderChain, HeaderChain, SyncConfig, SyncPlanner, SyncRequest};
///
/// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
/// let filters = FilterHeaderChain::new();
/// let mut plan = SyncPlanner::new(SyncConfig::default());
/// plan.add_peer(1, 100);
/// let now = Instant::now();
/// let reqs = plan.next_requests(now, &chain, &filters);
/// assert!(matches!(reqs.as_slice(), [(1, SyncRequest::Headers { .. })]));
/// // Nothing more until that answer comes.
/// assert!(plan.next_requests(now, &chain, &filters).is_empty());
/// ```
#[derive(Clone, Debug)]
pub struct SyncPlanner {
    config: SyncConfig,
    peers: BTreeMap<PeerId, PeerState>,
    /// Every filter below this height (from `filters_from`) was received.
    filters_next: u32,
    /// The next filter height not requested yet.
    filters_requested_to: u32,
    /// Batches received out of order: start → stop.
    filters_done: BTreeMap<u32, u32>,
    /// Batches to ask again (their peer stalled or left): (start, stop).
    filters_retry: Vec<(u32, u32)>,
    /// Whether filters are wanted at all (a wallet that watches nothing fetches none).
    filters_wanted: bool,
}

#[path = "sync_control.rs"]
mod control;

impl SyncPlanner {
    /// A planner with no peer.
    ///
    /// ```
    /// # use btcpeer_core::chain::{SyncConfig, SyncPlanner};
    /// let plan = SyncPlanner::new(SyncConfig::default());
    /// assert_eq!(plan.peer_count(), 0);
    /// ```
    pub fn new(config: SyncConfig) -> SyncPlanner {
        let from = config.filters_from;
        SyncPlanner {
            config,
            peers: BTreeMap::new(),
            filters_next: from,
            filters_requested_to: from,
            filters_done: BTreeMap::new(),
            filters_retry: Vec::new(),
            filters_wanted: true,
        }
    }

    /// Peers known.
    ///
    /// ```
    /// # use btcpeer_core::chain::{SyncConfig, SyncPlanner};
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.add_peer(7, 0);
    /// assert_eq!(plan.peer_count(), 1);
    /// ```
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Adds a peer (one that serves compact filters) that says it has `best_height` blocks.
    /// Adding a known peer again only updates its height.
    ///
    /// ```
    /// # use btcpeer_core::chain::{SyncConfig, SyncPlanner};
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.add_peer(7, 10);
    /// plan.add_peer(7, 20);
    /// assert_eq!(plan.peer_count(), 1);
    /// ```
    pub fn add_peer(&mut self, peer: PeerId, best_height: u32) {
        let state = self.peers.entry(peer).or_insert(PeerState {
            best_height,
            headers_done: false,
            checkpoint_asked: false,
            in_flight: Vec::new(),
        });
        state.best_height = state.best_height.max(best_height);
    }

    /// Forgets a peer; its requests in flight go to others.
    ///
    /// ```
    /// # use btcpeer_core::chain::{SyncConfig, SyncPlanner};
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.add_peer(7, 10);
    /// plan.remove_peer(7);
    /// assert_eq!(plan.peer_count(), 0);
    /// ```
    pub fn remove_peer(&mut self, peer: PeerId) {
        if let Some(state) = self.peers.remove(&peer) {
            self.free(state.in_flight);
        }
    }

    /// Gives freed requests to whoever asks next.
    fn free(&mut self, requests: Vec<InFlight>) {
        for f in requests {
            if let SyncRequest::Filters { start_height, stop_height, .. } = f.request {
                self.filters_retry.push((start_height, stop_height));
            }
        }
    }

    /// A peer announced a block at `height` (an `inv`, a `headers`): headers are asked again.
    ///
    /// ```
    /// # use btcpeer_core::chain::{SyncConfig, SyncPlanner};
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.add_peer(7, 10);
    /// plan.peer_announced(7, 11);
    /// ```
    pub fn peer_announced(&mut self, peer: PeerId, height: u32) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.best_height = state.best_height.max(height);
            state.headers_done = false;
        }
    }

    /// The requests to send now, each to its peer, within the in-flight limits. Each is in
    /// flight from `now` until its answer is reported or it stalls.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use btcpeer_core::chain::{ChainParams, FilterHeaderChain, HeaderChain, SyncConfig, SyncPlanner, SyncPhase, SyncRequest};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// let filters = FilterHeaderChain::new();
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.add_peer(1, 0);
    /// let now = Instant::now();
    /// for (peer, request) in plan.next_requests(now, &chain, &filters) {
    ///     assert_eq!(peer, 1);
    ///     assert!(matches!(request, SyncRequest::Headers { .. }));
    /// }
    /// ```
    pub fn next_requests(
        &mut self,
        now: Instant,
        chain: &HeaderChain,
        filters: &FilterHeaderChain,
    ) -> Vec<(PeerId, SyncRequest)> {
        let mut out = Vec::new();
        let any_in_flight = |peers: &BTreeMap<PeerId, PeerState>, f: &dyn Fn(&SyncRequest) -> bool| {
            peers.values().any(|p| p.in_flight.iter().any(|r| f(&r.request)))
        };
        // 1. Headers, one peer at a time: the one that claims the most.
        if self.peers.values().any(|p| !p.headers_done) {
            if !any_in_flight(&self.peers, &|r| matches!(r, SyncRequest::Headers { .. })) {
                let best = self
                    .peers
                    .iter()
                    .filter(|(_, p)| !p.headers_done && p.in_flight.is_empty())
                    .max_by_key(|(id, p)| (p.best_height, std::cmp::Reverse(**id)))
                    .map(|(id, _)| *id);
                if let Some(id) = best {
                    let request = SyncRequest::Headers { locator: chain.locator() };
                    self.send(id, request, now, 0, &mut out);
                }
            }
            return out;
        }
        let tip = chain.height();
        // 2. Every peer's checkpoints, for the caller to cross-check.
        // Each up to the highest block of ours it has (a peer behind us does not know our tip).
        let ask: Vec<(PeerId, u32)> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.checkpoint_asked)
            .map(|(id, p)| (*id, p.best_height.min(tip)))
            .collect();
        for (id, stop) in ask {
            if let Some(p) = self.peers.get_mut(&id) {
                p.checkpoint_asked = true;
            }
            if let Some(stop_hash) = chain.hash_at(stop) {
                self.send(id, SyncRequest::FilterCheckpoints { stop_hash }, now, 0, &mut out);
            }
        }
        if any_in_flight(&self.peers, &|r| matches!(r, SyncRequest::FilterCheckpoints { .. })) {
            return out;
        }
        // 3. Filter headers, one range at a time, each asked of several peers to cross-check.
        let next = filters.next_height();
        if next <= tip && !any_in_flight(&self.peers, &|r| matches!(r, SyncRequest::FilterHeaders { .. })) {
            let stop = next.saturating_add(u32::try_from(MAX_CFHEADERS).unwrap_or(2000).saturating_sub(1)).min(tip);
            if let Some(stop_hash) = chain.hash_at(stop) {
                // A peer behind us (or on another branch) does not know `stop`: it is left out,
                // unless no peer has it as far as we know.
                let has = |p: &PeerState| p.best_height >= stop;
                let any_has = self.peers.values().any(has);
                let mut ids: Vec<(usize, PeerId)> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| !any_has || has(p))
                    .map(|(id, p)| (p.in_flight.len(), *id))
                    .collect();
                ids.sort_unstable();
                for (_, id) in ids.into_iter().take(self.config.filter_headers_peers.max(1)) {
                    self.send(id, SyncRequest::FilterHeaders { start_height: next, stop_hash }, now, 0, &mut out);
                }
            }
        }
        // 4. Filters, in batches, where filter headers are known.
        let Some(known) = filters.height() else { return out };
        if !self.filters_wanted {
            return out;
        }
        let per_peer = self.config.filters_in_flight_per_peer;
        let batch = self.config.filters_batch.clamp(1, MAX_CFILTERS);
        loop {
            let total: usize = self.peers.values().map(PeerState::filters_in_flight).sum();
            if total >= self.config.filters_in_flight_total
                || self.least_busy(|p| p.filters_in_flight() < per_peer).is_none()
            {
                break;
            }
            // The lowest batch to retry first: filters are wanted in height order.
            let lowest = self.filters_retry.iter().enumerate().min_by_key(|(_, b)| b.0).map(|(i, _)| i);
            let (start, stop) = if let Some(batch) = lowest.map(|i| self.filters_retry.swap_remove(i)) {
                batch
            } else {
                let start = self.filters_requested_to;
                if start > known {
                    break;
                }
                let stop = start.saturating_add(batch.saturating_sub(1)).min(known);
                self.filters_requested_to = stop.saturating_add(1);
                (start, stop)
            };
            // Of the peers that have the batch's last block (all, when none has as far as we
            // know), the least busy one.
            let any_has = self.peers.values().any(|p| p.best_height >= stop);
            let id = self.least_busy(|p| p.filters_in_flight() < per_peer && (!any_has || p.best_height >= stop));
            let (Some(id), Some(stop_hash)) = (id, chain.hash_at(stop)) else {
                self.filters_retry.push((start, stop));
                break;
            };
            let remaining = stop.saturating_sub(start).saturating_add(1);
            let request = SyncRequest::Filters { start_height: start, stop_height: stop, stop_hash };
            self.send(id, request, now, remaining, &mut out);
        }
        out
    }

    /// The peer with the fewest requests in flight among those `ok` accepts.
    fn least_busy(&self, ok: impl Fn(&PeerState) -> bool) -> Option<PeerId> {
        self.peers.iter().filter(|(_, p)| ok(p)).min_by_key(|(id, p)| (p.in_flight.len(), **id)).map(|(id, _)| *id)
    }

    fn send(
        &mut self,
        id: PeerId,
        request: SyncRequest,
        now: Instant,
        remaining: u32,
        out: &mut Vec<(PeerId, SyncRequest)>,
    ) {
        if let Some(p) = self.peers.get_mut(&id) {
            p.in_flight.push(InFlight { request: request.clone(), since: now, remaining });
            out.push((id, request));
        }
    }

    /// Removes `peer`'s first request in flight that `is` matches.
    fn answered(&mut self, peer: PeerId, is: impl Fn(&SyncRequest) -> bool) -> Option<InFlight> {
        let p = self.peers.get_mut(&peer)?;
        let i = p.in_flight.iter().position(|f| is(&f.request))?;
        Some(p.in_flight.remove(i))
    }

    /// A `headers` answer of `count` headers from `peer` was connected (or refused: then
    /// remove the peer instead). Fewer than 2,000 means the peer has no more.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use btcpeer_core::chain::{ChainParams, FilterHeaderChain, HeaderChain, SyncConfig, SyncPlanner, SyncPhase, SyncRequest};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// let filters = FilterHeaderChain::new();
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.add_peer(1, 0);
    /// let now = Instant::now();
    /// plan.next_requests(now, &chain, &filters);
    /// plan.headers_received(1, 0); // nothing new: the peer is done with headers
    /// assert_ne!(plan.phase(&chain, &filters), SyncPhase::Headers);
    /// ```
    pub fn headers_received(&mut self, peer: PeerId, count: usize) {
        self.answered(peer, |r| matches!(r, SyncRequest::Headers { .. }));
        if let Some(p) = self.peers.get_mut(&peer) {
            if count < MAX_HEADERS {
                p.headers_done = true;
            }
        }
    }

    /// A `cfcheckpt` answer from `peer` was handled.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use btcpeer_core::chain::{ChainParams, FilterHeaderChain, HeaderChain, SyncConfig, SyncPlanner, SyncPhase, SyncRequest};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// let filters = FilterHeaderChain::new();
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.add_peer(1, 0);
    /// let now = Instant::now();
    /// plan.next_requests(now, &chain, &filters);
    /// plan.headers_received(1, 0);
    /// let reqs = plan.next_requests(now, &chain, &filters);
    /// assert!(matches!(reqs[0].1, SyncRequest::FilterCheckpoints { .. }));
    /// plan.checkpoints_received(1);
    /// let reqs = plan.next_requests(now, &chain, &filters);
    /// assert!(matches!(reqs[0].1, SyncRequest::FilterHeaders { start_height: 0, .. }));
    /// ```
    pub fn checkpoints_received(&mut self, peer: PeerId) {
        self.answered(peer, |r| matches!(r, SyncRequest::FilterCheckpoints { .. }));
    }

    /// A `cfheaders` answer from `peer` was connected.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use btcpeer_core::chain::{ChainParams, FilterHeaderChain, HeaderChain, SyncConfig, SyncPlanner, SyncPhase, SyncRequest};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// let filters = FilterHeaderChain::new();
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.add_peer(1, 0);
    /// let now = Instant::now();
    /// plan.next_requests(now, &chain, &filters);
    /// plan.headers_received(1, 0);
    /// plan.next_requests(now, &chain, &filters);
    /// plan.checkpoints_received(1);
    /// plan.next_requests(now, &chain, &filters); // getcfheaders
    /// plan.filter_headers_received(1);
    /// assert_eq!(plan.poll_timeout(), None); // nothing in flight
    /// ```
    pub fn filter_headers_received(&mut self, peer: PeerId) {
        self.answered(peer, |r| matches!(r, SyncRequest::FilterHeaders { .. }));
    }

    /// The filter at `height` from `peer` was checked. A batch is complete when each of its
    /// filters has been reported.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use btcpeer_core::chain::{ChainParams, FilterHeaderChain, HeaderChain, SyncConfig, SyncPlanner, SyncPhase, SyncRequest};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// let filters = FilterHeaderChain::new();
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.add_peer(1, 0);
    /// let now = Instant::now();
    /// plan.filter_received(1, 0); // not asked: ignored
    /// assert_eq!(plan.filters_height(), 0);
    /// ```
    pub fn filter_received(&mut self, peer: PeerId, height: u32) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        let Some(i) = p.in_flight.iter().position(|f| {
            matches!(f.request, SyncRequest::Filters { start_height, stop_height, .. } if (start_height..=stop_height).contains(&height))
        }) else {
            return;
        };
        let Some(f) = p.in_flight.get_mut(i) else { return };
        f.remaining = f.remaining.saturating_sub(1);
        if f.remaining > 0 {
            return;
        }
        let done = p.in_flight.remove(i);
        if let SyncRequest::Filters { start_height, stop_height, .. } = done.request {
            self.filters_done.insert(start_height, stop_height);
        }
        while let Some(stop) = self.filters_done.remove(&self.filters_next) {
            self.filters_next = stop.saturating_add(1);
        }
    }

    /// Peers with a request unanswered past the timeout at `now`. Their requests are freed
    /// (another peer gets them); the caller decides whether to drop the peer.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use btcpeer_core::chain::{ChainParams, FilterHeaderChain, HeaderChain, SyncConfig, SyncPlanner, SyncPhase, SyncRequest};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// let filters = FilterHeaderChain::new();
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.add_peer(1, 0);
    /// let now = Instant::now();
    /// plan.next_requests(now, &chain, &filters);
    /// assert_eq!(plan.stalled(now + Duration::from_secs(30)), vec![1]);
    /// ```
    pub fn stalled(&mut self, now: Instant) -> Vec<PeerId> {
        let timeout = self.config.request_timeout;
        let mut stalled = Vec::new();
        let mut freed = Vec::new();
        for (id, p) in &mut self.peers {
            let (late, on_time): (Vec<InFlight>, Vec<InFlight>) = std::mem::take(&mut p.in_flight)
                .into_iter()
                .partition(|f| now >= f.since.checked_add(timeout).unwrap_or(now));
            p.in_flight = on_time;
            if !late.is_empty() {
                stalled.push(*id);
                // A stalled headers request: that peer is not asked for headers again.
                if late.iter().any(|f| matches!(f.request, SyncRequest::Headers { .. })) {
                    p.headers_done = true;
                }
                freed.extend(late);
            }
        }
        self.free(freed);
        stalled
    }

    /// When [`stalled`](Self::stalled) should next be called: the earliest deadline in flight.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use btcpeer_core::chain::{ChainParams, FilterHeaderChain, HeaderChain, SyncConfig, SyncPlanner, SyncPhase, SyncRequest};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// let filters = FilterHeaderChain::new();
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.add_peer(1, 0);
    /// let now = Instant::now();
    /// assert_eq!(plan.poll_timeout(), None);
    /// plan.next_requests(now, &chain, &filters);
    /// assert_eq!(plan.poll_timeout(), Some(now + Duration::from_secs(30)));
    /// ```
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timeout = self.config.request_timeout;
        self.peers.values().flat_map(|p| p.in_flight.iter()).filter_map(|f| f.since.checked_add(timeout)).min()
    }

    /// A reorg disconnected every block above `fork_height`: requests in flight for ranges
    /// above it are dropped and filters above it are wanted again.
    ///
    /// ```
    /// use btcpeer_core::chain::{SyncConfig, SyncPlanner};
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.reorged(100);
    /// assert_eq!(plan.filters_height(), 0);
    /// ```
    pub fn reorged(&mut self, fork_height: u32) {
        for p in self.peers.values_mut() {
            p.in_flight.retain(|f| !matches!(f.request, SyncRequest::FilterHeaders { .. }));
            p.checkpoint_asked = false;
        }
        self.filters_again_from(fork_height.saturating_add(1));
    }

    /// Filters from height `above` on are wanted again: batches in flight that reach it are
    /// cut at it (what is above is asked again), those received above it are forgotten.
    fn filters_again_from(&mut self, above: u32) {
        let cut = |(start, stop): (u32, u32)| -> Option<(u32, u32)> {
            if stop < above {
                Some((start, stop))
            } else if start < above {
                Some((start, above.saturating_sub(1)))
            } else {
                None
            }
        };
        let mut retry = Vec::new();
        for p in self.peers.values_mut() {
            p.in_flight.retain(|f| match &f.request {
                SyncRequest::Filters { start_height, stop_height, .. } if *stop_height >= above => {
                    retry.extend(cut((*start_height, *stop_height)));
                    false
                }
                _ => true,
            });
        }
        self.filters_retry = self.filters_retry.iter().copied().filter_map(cut).chain(retry).collect();
        self.filters_done = std::mem::take(&mut self.filters_done).into_iter().filter_map(cut).collect();
        self.filters_next = self.filters_next.min(above).max(self.config.filters_from);
        self.filters_requested_to = self.filters_requested_to.min(above).max(self.config.filters_from);
    }

    /// The next filter height not yet received (everything from `filters_from` below it was).
    ///
    /// ```
    /// use btcpeer_core::chain::{SyncConfig, SyncPlanner};
    /// let plan = SyncPlanner::new(SyncConfig::default().with_filters_from(500));
    /// assert_eq!(plan.filters_height(), 500);
    /// ```
    pub fn filters_height(&self) -> u32 {
        self.filters_next
    }

    /// Where the sync is, given the chains.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use btcpeer_core::chain::{ChainParams, FilterHeaderChain, HeaderChain, SyncConfig, SyncPlanner, SyncPhase, SyncRequest};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// let filters = FilterHeaderChain::new();
    /// let mut plan = SyncPlanner::new(SyncConfig::default());
    /// plan.add_peer(1, 0);
    /// let now = Instant::now();
    /// assert_eq!(plan.phase(&chain, &filters), SyncPhase::Headers);
    /// ```
    pub fn phase(&self, chain: &HeaderChain, filters: &FilterHeaderChain) -> SyncPhase {
        if self.peers.is_empty() || self.peers.values().any(|p| !p.headers_done) {
            SyncPhase::Headers
        } else if filters.next_height() <= chain.height() {
            SyncPhase::FilterHeaders
        } else if self.filters_next <= chain.height() {
            SyncPhase::Filters
        } else {
            SyncPhase::Synced
        }
    }
}
