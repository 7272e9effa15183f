//! Filter headers fetched from every peer and cross-checked: when peers disagree, the block at the
//! first height they differ decides who lied.

use bitcoin::hashes::Hash;
use bitcoin::p2p::message_filter::CFHeaders;
use bitcoin::{BlockHash, FilterHash, FilterHeader};

use super::headers::ChainStateError;
use super::round::CfHeadersAnswer;
use super::sync::{BASIC, Sync};
use super::{LightError, LightEvent, Stage};
use crate::core::chain::{DisputeSide, DisputeVerdict, settle_dispute};
use crate::peer::RequestError;

impl Sync {
    /// One range of filter headers, as the planner asked it of several peers: kept when they
    /// agree; when they do not, the block at the first height they differ decides who lied.
    pub(super) async fn filter_headers_answered(&mut self, answered: Vec<CfHeadersAnswer>) -> Result<(), LightError> {
        let Some((_, _, start, stop, _)) = answered.first() else { return Ok(()) };
        let (start, stop) = (*start, *stop);
        let Some(stop_height) = self.chain.headers.height_of(&stop) else {
            // A reorg in this round took the range away: the planner asks again.
            for (id, ..) in &answered {
                self.plan.filter_headers_received(*id);
            }
            return Ok(());
        };
        let prev = match start.checked_sub(1) {
            Some(h) => self.chain.filter_header(h).unwrap_or_else(FilterHeader::all_zeros),
            None => FilterHeader::all_zeros(),
        };
        let count = usize::try_from(stop_height.saturating_sub(start).saturating_add(1)).unwrap_or(0);
        let mut answers: Vec<(String, Vec<FilterHash>)> = Vec::new();
        for (id, p, _, _, r) in answered {
            self.plan.filter_headers_received(id);
            match check_cfheaders(r, stop, prev, count) {
                Ok(hashes) => answers.push((p.addr, hashes)),
                Err(reason) => self.peers.drop_peer(&p.addr, reason, &self.events).await,
            }
        }
        let Some((_, first)) = answers.first() else { return Ok(()) };
        let differ = (0..count).find(|&i| {
            let h = first.get(i);
            answers.iter().any(|(_, a)| a.get(i) != h)
        });
        match differ {
            None => {
                let hashes = first.clone();
                match self.chain.connect_filter_hashes(start, stop, &hashes) {
                    Ok(_) => {}
                    Err(ChainStateError::Filters(e)) => {
                        // Every peer agrees on what the chain refuses (a checkpoint, say): none is kept.
                        for (addr, _) in &answers {
                            self.peers.drop_peer(addr, format!("filter headers: {e}"), &self.events).await;
                        }
                        return Ok(());
                    }
                    Err(e) => return Err(self.store_error(e)),
                }
                let target = self.chain.tip_height();
                self.emit(LightEvent::Progress { stage: Stage::FilterHeaders, height: stop_height, target }).await
            }
            Some(i) => {
                let height = start.saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
                self.resolve(height, i, answers).await
            }
        }
    }

    /// Peers disagree on the filter at `height` (index `i` of their answers): fetch the block and
    /// each side's filter; a filter that lacks one of the block's output scripts is a lie (as
    /// neutrino's `resolveConflict` decides), and its side is dropped; if the block cannot tell,
    /// the majority wins.
    async fn resolve(
        &mut self,
        height: u32,
        i: usize,
        answers: Vec<(String, Vec<FilterHash>)>,
    ) -> Result<(), LightError> {
        let Some(hash) = self.chain.hash(height) else { return Ok(()) };
        let Some(block) = self.fetch_block(height, hash).await? else { return Ok(()) };
        let mut sides: Vec<(FilterHash, Vec<String>)> = Vec::new();
        for (addr, a) in &answers {
            let Some(fh) = a.get(i) else { continue };
            match sides.iter_mut().find(|(h, _)| h == fh) {
                Some((_, addrs)) => addrs.push(addr.clone()),
                None => sides.push((*fh, vec![addr.clone()])),
            }
        }
        // The verdicts are the core's (`settle_dispute`); this only fetched the evidence.
        let mut evidence = Vec::with_capacity(sides.len());
        for (fh, addrs) in &sides {
            let mut served = None;
            for addr in addrs {
                let Some(p) = self.peers.live.iter().find(|p| &p.addr == addr).cloned() else { continue };
                let r = p.peer.requests().timeout(self.settings.timeout).get_cfilters_of(BASIC, height, &[hash]).await;
                served = r.ok().and_then(|f| f.into_iter().find(|f| f.block_hash == hash)).map(|f| f.filter);
                if served.is_some() {
                    break;
                }
            }
            evidence.push(DisputeSide { filter_hash: *fh, peers: addrs.len(), filter: served });
        }
        let mut liars = Vec::new();
        for ((_, addrs), verdict) in sides.iter().zip(settle_dispute(&block, &evidence)) {
            let reason = match verdict {
                DisputeVerdict::Honest => continue,
                DisputeVerdict::Withheld => format!("withheld the filter at {height} in a dispute"),
                DisputeVerdict::OmitsElements => {
                    format!("filter headers at {height} whose filter omits elements the others have")
                }
                _ => format!("filter headers contradicted by block {height}: its filter lacks the block's outputs"),
            };
            liars.extend(addrs.iter().map(|a| (a.clone(), reason.clone())));
        }
        for (addr, reason) in liars {
            self.peers.drop_peer(&addr, reason, &self.events).await;
        }
        Ok(())
    }
}

/// The filter hashes of a `cfheaders` answer, or why the peer is dropped.
fn check_cfheaders(
    r: Result<CFHeaders, RequestError>,
    stop: BlockHash,
    prev: FilterHeader,
    count: usize,
) -> Result<Vec<FilterHash>, String> {
    match r {
        Err(RequestError::Timeout(t)) => Err(format!("withheld filter headers: no answer within {t:?}")),
        Err(e) => Err(format!("filter headers: {e}")),
        Ok(cf) if cf.stop_hash != stop || cf.filter_hashes.len() != count => {
            Err(format!("{} filter headers where {count} were asked for", cf.filter_hashes.len()))
        }
        Ok(cf) if cf.previous_filter_header != prev => {
            Err("filter headers that do not connect to those agreed before".to_string())
        }
        Ok(cf) => Ok(cf.filter_hashes),
    }
}
