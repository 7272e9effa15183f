//! Filter headers fetched from every peer and cross-checked: when peers disagree, the block at the
//! first height they differ decides who lied.

use bitcoin::hashes::Hash;
use bitcoin::p2p::message_filter::CFHeaders;
use bitcoin::{BlockHash, FilterHash, FilterHeader};

use super::headers::ChainStateError;
use super::round::CfHeadersAnswer;
use super::scan::check_count;
use super::sync::{BASIC, Sync};
use super::{LightError, LightEvent, Stage};
use crate::core::chain::check_outputs_in_filter;
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
        let mut honest = Vec::new();
        let mut liars = Vec::new();
        for (fh, addrs) in &sides {
            let mut verdict = None;
            let mut elements = 0u64;
            for addr in addrs {
                let Some(p) = self.peers.live.iter().find(|p| &p.addr == addr).cloned() else { continue };
                let r = p.peer.requests().timeout(self.settings.timeout).get_cfilters_of(BASIC, height, &[hash]).await;
                let filter = match r {
                    Ok(f) => f.into_iter().find(|f| f.block_hash == hash),
                    Err(_) => None,
                };
                let Some(filter) = filter else { continue };
                if FilterHash::hash(&filter.filter) != *fh {
                    verdict = Some(false);
                    break;
                }
                let ok = check_count(&filter.filter).is_ok() && check_outputs_in_filter(&filter.filter, &block).is_ok();
                elements = element_count(&filter.filter);
                verdict = Some(ok);
                break;
            }
            match verdict {
                Some(true) => honest.push((elements, addrs)),
                Some(false) => liars.extend(addrs.iter().map(|a| {
                    (
                        a.clone(),
                        format!("filter headers contradicted by block {height}: its filter lacks the block's outputs"),
                    )
                })),
                None => liars
                    .extend(addrs.iter().map(|a| (a.clone(), format!("withheld the filter at {height} in a dispute")))),
            }
        }
        if honest.len() > 1 {
            // The block cannot tell (the sides differ on previous-output scripts). A filter with
            // fewer elements is the one that can hide a spend (one with more costs only a false
            // positive), so the side with more elements wins, then the majority.
            honest.sort_by_key(|(elements, addrs)| std::cmp::Reverse((*elements, addrs.len())));
            for (_, addrs) in honest.iter().skip(1) {
                liars.extend(addrs.iter().map(|a| {
                    (a.clone(), format!("filter headers at {height} whose filter omits elements the others have"))
                }));
            }
        }
        for (addr, reason) in liars {
            self.peers.drop_peer(&addr, reason, &self.events).await;
        }
        Ok(())
    }
}

/// The element count a basic filter starts with (0 when it cannot be read).
fn element_count(filter: &[u8]) -> u64 {
    let mut cursor = filter;
    bitcoin::consensus::Decodable::consensus_decode(&mut cursor).map_or(0, |v: bitcoin::VarInt| v.0)
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
