//! One round of the sync: the core's [`SyncPlanner`](crate::core::chain::SyncPlanner) says what
//! to ask whom; the requests go out at once, and each answer is checked and reported back to it.
//! The planner decides; this file only does the I/O.

use std::collections::HashMap;

use bitcoin::block::Header;
use bitcoin::p2p::message_filter::{CFCheckpt, CFHeaders, CFilter};
use bitcoin::{BlockHash, FilterHeader, hashes::Hash};

use super::LightError;
use super::headers::ChainStateError;
use super::peers::LightPeer;
use super::sync::{BASIC, Sync, now};
use crate::core::chain::{CFCHECKPT_INTERVAL, PeerId, SyncRequest, majority_checkpoints};
use crate::peer::RequestError;

/// A peer's answer to one request of a round.
pub(super) enum Answer {
    Headers(Result<Vec<Header>, RequestError>),
    Checkpoints(Result<CFCheckpt, RequestError>),
    FilterHeaders { start: u32, stop: BlockHash, answer: Result<CFHeaders, RequestError> },
    Filters { start: u32, stop: u32, answer: Result<Vec<CFilter>, RequestError> },
}

/// A `cfheaders` answer: the peer, the range (start height, stop block) and what came.
pub(super) type CfHeadersAnswer = (PeerId, LightPeer, u32, BlockHash, Result<CFHeaders, RequestError>);
/// A `cfilter` batch: the peer, the range (start and stop heights) and what came.
pub(super) type FiltersAnswer = (PeerId, LightPeer, u32, u32, Result<Vec<CFilter>, RequestError>);

/// An answer with the peer that gave it.
pub(super) struct Answered {
    pub(super) id: PeerId,
    pub(super) peer: LightPeer,
    pub(super) answer: Answer,
}

impl Sync {
    /// The height of our chain `p` has, as far as we know: its last header or announcement when
    /// that is on our chain (0 when it is not: another branch, or a block we have not yet), else
    /// the height it gave in its version message.
    fn height_of(&self, p: &LightPeer) -> u32 {
        match self.peers.wake.tip_of(&p.peer) {
            Some(tip) => self.chain.headers.height_of(&tip).unwrap_or(0),
            None => u32::try_from(p.peer.last_block_height()).unwrap_or(0),
        }
    }

    /// Tells the planner which peers are live and how high each is.
    fn update_planner_peers(&mut self) {
        let live: HashMap<PeerId, LightPeer> = self.peers.live.iter().map(|p| (p.peer.id(), p.clone())).collect();
        for id in self.plan.peer_ids() {
            if !live.contains_key(&id) {
                self.plan.remove_peer(id);
            }
        }
        for (id, p) in &live {
            let height = self.height_of(p);
            self.plan.add_peer(*id, height);
            self.plan.set_peer_height(*id, height);
        }
    }

    fn live_peer(&self, id: PeerId) -> Option<LightPeer> {
        self.peers.live.iter().find(|p| p.peer.id() == id).cloned()
    }

    /// One round: what the planner asks for, sent at once, the answers handled; `Ok(false)` when
    /// the planner has nothing to ask.
    pub(super) async fn step(&mut self) -> Result<bool, LightError> {
        self.update_planner_peers();
        if std::mem::take(&mut self.headers_stale) {
            for id in self.plan.peer_ids() {
                self.plan.peer_announced(id, 0);
            }
        }
        let now = tokio::time::Instant::now().into_std();
        for id in self.plan.stalled(now) {
            if let Some(p) = self.live_peer(id) {
                let reason = format!("stalled: no answer within {:?}", self.settings.timeout);
                self.peers.drop_peer(&p.addr, reason, &self.events).await;
            }
        }
        self.update_planner_peers();
        self.plan.set_filters_wanted(!self.watched.is_empty());
        let requests = self.plan.next_requests(now, &self.chain.headers, &self.chain.filters);
        if requests.is_empty() {
            return Ok(false);
        }
        let mut asks = tokio::task::JoinSet::new();
        for (id, request) in requests {
            let Some(p) = self.live_peer(id) else { continue };
            let timeout = self.settings.timeout;
            let blocks: Vec<BlockHash> = match &request {
                SyncRequest::Filters { start_height, stop_height, .. } => {
                    (*start_height..=*stop_height).map_while(|h| self.chain.hash(h)).collect()
                }
                _ => Vec::new(),
            };
            asks.spawn(async move {
                let r = p.peer.requests().timeout(timeout);
                let answer = match request {
                    SyncRequest::Headers { locator } => {
                        Answer::Headers(r.get_headers(&locator, BlockHash::all_zeros()).await)
                    }
                    SyncRequest::FilterCheckpoints { stop_hash } => {
                        Answer::Checkpoints(r.get_cfcheckpt(BASIC, stop_hash).await)
                    }
                    SyncRequest::FilterHeaders { start_height, stop_hash } => Answer::FilterHeaders {
                        start: start_height,
                        stop: stop_hash,
                        answer: r.get_cfheaders(BASIC, start_height, stop_hash).await,
                    },
                    SyncRequest::Filters { start_height, stop_height, .. } => Answer::Filters {
                        start: start_height,
                        stop: stop_height,
                        answer: r.get_cfilters_of(BASIC, start_height, &blocks).await,
                    },
                    // A request this driver does not know (the planner grew): none.
                    _ => Answer::Headers(Ok(Vec::new())),
                };
                Answered { id, peer: p, answer }
            });
        }
        // Every request carries its own timeout, so the round ends; the planner's deadline is a
        // second bound, after which `stalled` names the peers that did not answer.
        let mut answers = Vec::new();
        let deadline = self.plan.poll_timeout().map(tokio::time::Instant::from_std);
        loop {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, asks.join_next()).await {
                    Ok(n) => n,
                    Err(_) => break,
                },
                None => asks.join_next().await,
            };
            match next {
                Some(Ok(a)) => answers.push(a),
                Some(Err(_)) => {}
                None => break,
            }
        }
        asks.abort_all();
        self.handle(answers).await?;
        Ok(true)
    }

    /// Handles a round's answers: headers, then checkpoints, then filter headers (one range,
    /// compared across peers), then filters in height order.
    async fn handle(&mut self, answers: Vec<Answered>) -> Result<(), LightError> {
        let mut checkpoints = Vec::new();
        let mut filter_headers = Vec::new();
        let mut filters = Vec::new();
        for a in answers {
            match a.answer {
                Answer::Headers(r) => self.headers_answered(a.id, &a.peer, r).await?,
                Answer::Checkpoints(r) => checkpoints.push((a.id, a.peer, r)),
                Answer::FilterHeaders { start, stop, answer } => {
                    filter_headers.push((a.id, a.peer, start, stop, answer))
                }
                Answer::Filters { start, stop, answer } => filters.push((a.id, a.peer, start, stop, answer)),
            }
        }
        if !checkpoints.is_empty() {
            self.checkpoints_answered(checkpoints).await;
        }
        if !filter_headers.is_empty() {
            self.filter_headers_answered(filter_headers).await?;
        }
        if !filters.is_empty() {
            filters.sort_by_key(|f| f.2);
            self.filters_answered(filters).await?;
        }
        Ok(())
    }

    async fn headers_answered(
        &mut self,
        id: PeerId,
        p: &LightPeer,
        answer: Result<Vec<Header>, RequestError>,
    ) -> Result<(), LightError> {
        let headers = match answer {
            Ok(h) => h,
            Err(e) => {
                self.peers.drop_peer(&p.addr, format!("headers: {e}"), &self.events).await;
                self.plan.remove_peer(id);
                return Ok(());
            }
        };
        if let Some(last) = headers.last() {
            self.peers.wake.set_tip(&p.peer, last.block_hash());
        }
        let before = self.chain.tip();
        match self.chain.connect(&headers, now()) {
            Ok(done) => {
                let connected: Vec<(u32, BlockHash)> = done.connected.iter().map(|c| (c.height, c.hash)).collect();
                if let Some(first) = connected.first() {
                    if !done.disconnected.is_empty() {
                        self.plan.reorged(first.0.saturating_sub(1));
                    }
                    self.connected(&done.disconnected, &connected, before, first.0).await?;
                }
                // Nothing new from a full answer (all known): the peer has no more for us.
                let count = if connected.is_empty() { 0 } else { headers.len() };
                self.plan.headers_received(id, count);
            }
            Err(ChainStateError::Headers(e)) => {
                self.peers.drop_peer(&p.addr, format!("invalid headers: {e}"), &self.events).await;
                self.plan.remove_peer(id);
            }
            Err(e) => return Err(self.store_error(e)),
        }
        Ok(())
    }

    /// Each peer's `cfcheckpt` (BIP157: a filter header every 1,000 blocks), reported to the
    /// planner and checked: a peer whose checkpoint differs from the filter headers we hold, or
    /// from what a strict majority of the peers that reached that height say, is dropped; the
    /// checkpoints a strict majority agrees on become the filter-header chain's, so a range of
    /// filter headers that contradicts them is refused. A tie (one against one) is left to the
    /// cross-check of the filter headers themselves, which the block settles.
    async fn checkpoints_answered(&mut self, answers: Vec<(PeerId, LightPeer, Result<CFCheckpt, RequestError>)>) {
        let mut lists: Vec<(LightPeer, Vec<FilterHeader>)> = Vec::new();
        for (id, p, answer) in answers {
            self.plan.checkpoints_received(id);
            let reason = match answer {
                Ok(cp) => {
                    let stop = self.chain.headers.height_of(&cp.stop_hash);
                    let allowed = stop.map_or(0, |h| h.checked_div(CFCHECKPT_INTERVAL).unwrap_or(0));
                    let count = u32::try_from(cp.filter_headers.len()).unwrap_or(u32::MAX);
                    if cp.filter_type != BASIC || stop.is_none() || count > allowed {
                        format!("filter checkpoints: {count} for a block where at most {allowed} fit")
                    } else if let Some(h) = self.checkpoint_against_ours(&cp.filter_headers) {
                        format!("filter checkpoint at height {h} differs from the filter headers agreed before")
                    } else {
                        lists.push((p, cp.filter_headers));
                        continue;
                    }
                }
                Err(e) => format!("filter checkpoints: {e}"),
            };
            self.peers.drop_peer(&p.addr, reason, &self.events).await;
            self.plan.remove_peer(id);
        }
        let vote = majority_checkpoints(lists.iter().map(|(_, l)| l.as_slice()));
        let (agreed, liars) = (vote.agreed, vote.dissenters);
        for (i, height) in liars {
            if let Some((p, _)) = lists.get(i) {
                let reason = format!("filter checkpoint at height {height} disagrees with the majority of peers");
                self.peers.drop_peer(&p.addr, reason, &self.events).await;
                self.plan.remove_peer(p.peer.id());
            }
        }
        if !agreed.is_empty() && agreed.len() >= self.chain.filters.checkpoints().len() {
            let msg = CFCheckpt { filter_type: BASIC, stop_hash: self.chain.tip(), filter_headers: agreed };
            // Checked against ours above; a failure here only leaves the checkpoints as they were.
            let _ = self.chain.filters.set_checkpoints(&msg, &self.chain.headers);
        }
    }

    /// The first checkpoint height where `list` differs from a filter header we hold.
    fn checkpoint_against_ours(&self, list: &[FilterHeader]) -> Option<u32> {
        let mut height = 0u32;
        for fh in list {
            height = height.saturating_add(CFCHECKPT_INTERVAL);
            if self.chain.filter_header(height).is_some_and(|ours| ours != *fh) {
                return Some(height);
            }
        }
        None
    }
}
