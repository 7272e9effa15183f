//! Filters fetched in batches (one per peer at once), checked against their filter headers and
//! matched against the watch list; the blocks that match are fetched and scanned.

use bitcoin::bip158::BlockFilter;
use bitcoin::{Block, BlockHash, OutPoint};

use super::peers::LightPeer;
use super::round::FiltersAnswer;
use super::sync::{Coin, Sync};
use bitcoin::p2p::message_filter::CFilter;

/// Matched blocks fetched at once (over the peers): enough to fill the link, few enough to bound
/// memory (16 blocks of at most 4 MB).
const BLOCKS_AT_ONCE: usize = 16;
use super::{LightError, LightEvent, RelevantTx, Stage, TxKind};
use crate::peer::RequestError;

/// Whether `filter` (a BIP158 basic filter of block `hash`) matches any script; an error for a
/// filter whose element count its bytes cannot hold (the core's `filter_element_count`: rust-bitcoin's
/// matcher multiplies the count unchecked) or that does not decode.
pub(super) fn filter_matches<'a>(
    filter: &[u8],
    hash: &BlockHash,
    scripts: impl Iterator<Item = &'a [u8]>,
) -> Result<bool, String> {
    btcpeer_core::chain::filter_element_count(filter).map_err(|e| e.to_string())?;
    BlockFilter::new(filter).match_any(hash, scripts).map_err(|_| "a filter that does not decode".to_string())
}

impl Sync {
    /// The filter batches of a round, in height order, as the planner asked them: each filter
    /// checked against its filter header and matched against the watch list, the blocks that
    /// match fetched and scanned, and each batch then reported to the planner. A peer whose batch
    /// fails is dropped; the batches after it are given back to the planner (blocks are scanned
    /// in order), which asks them again.
    pub(super) async fn filters_answered(&mut self, batches: Vec<FiltersAnswer>) -> Result<(), LightError> {
        let mut failed = false;
        for (id, p, start, stop_height, answer) in batches {
            // Only the batch that continues what was scanned; the others wait their turn.
            if failed || start != self.plan.filters_height() {
                self.plan.filters_failed(id, start);
                failed = true;
                continue;
            }
            let Some(matched) = self.check_filters(&p, start, stop_height, answer).await else {
                self.plan.filters_failed(id, start);
                failed = true;
                continue;
            };
            if !self.scan_matched(&matched).await? {
                // No peer gave a block: this batch again, with the peers left.
                self.plan.filters_failed(id, start);
                failed = true;
                continue;
            }
            for height in start..=stop_height {
                self.plan.filter_received(id, height);
            }
            let target = self.chain.tip_height();
            self.emit(LightEvent::Progress { stage: Stage::Filters, height: stop_height, target }).await?;
        }
        Ok(())
    }

    /// Fetches and scans the matched blocks in order; `false` when a block could not be had.
    async fn scan_matched(&mut self, matched: &[(u32, BlockHash)]) -> Result<bool, LightError> {
        for chunk in matched.chunks(BLOCKS_AT_ONCE) {
            let mut blocks = self.fetch_blocks(chunk).await;
            for (i, (height, hash)) in chunk.iter().copied().enumerate() {
                let fetched = blocks.get_mut(i).and_then(Option::take);
                let block = match fetched {
                    Some(b) => b,
                    // Not given at once: one peer after another (a liar is dropped).
                    None => match self.fetch_block(height, hash).await? {
                        Some(b) => b,
                        None => return Ok(false),
                    },
                };
                self.scan_block(&block, height, hash).await?;
                let target = self.chain.tip_height();
                self.emit(LightEvent::Progress { stage: Stage::Blocks, height, target }).await?;
            }
        }
        Ok(true)
    }

    /// `blocks` fetched at once, spread over the peers, each checked (hash and merkle root); a
    /// block not given (or not right) at once is `None`, for [`Sync::fetch_block`] to try again.
    async fn fetch_blocks(&self, blocks: &[(u32, BlockHash)]) -> Vec<Option<Block>> {
        let peers = self.peers.live.clone();
        let mut asks = tokio::task::JoinSet::new();
        for (i, (_, hash)) in blocks.iter().copied().enumerate() {
            let Some(p) = peers.get(i.checked_rem(peers.len()).unwrap_or(0)).cloned() else { break };
            let timeout = self.settings.timeout;
            asks.spawn(async move {
                let block = p.peer.requests().timeout(timeout).get_block(hash).await.ok();
                (i, block.filter(|b| b.block_hash() == hash && b.check_merkle_root()))
            });
        }
        let mut out: Vec<Option<Block>> = blocks.iter().map(|_| None).collect();
        while let Some(done) = asks.join_next().await {
            if let Ok((i, block)) = done {
                if let Some(slot) = out.get_mut(i) {
                    *slot = block;
                }
            }
        }
        out
    }

    /// The heights (with hashes) of a batch whose filters match the watch list, or `None` when
    /// the peer failed the batch (it is then dropped with the reason).
    async fn check_filters(
        &mut self,
        p: &LightPeer,
        start: u32,
        stop_height: u32,
        answer: Result<Vec<CFilter>, RequestError>,
    ) -> Option<Vec<(u32, BlockHash)>> {
        let filters = match answer {
            Ok(f) => f,
            Err(RequestError::Timeout(t)) => {
                let reason = format!("withheld filters: no answer within {t:?}");
                self.peers.drop_peer(&p.addr, reason, &self.events).await;
                return None;
            }
            Err(e) => {
                self.peers.drop_peer(&p.addr, format!("filters: {e}"), &self.events).await;
                return None;
            }
        };
        let mut matched = Vec::new();
        let mut height = start;
        for f in &filters {
            let Some(hash) = self.chain.hash(height) else { break };
            if f.block_hash != hash || self.chain.filters.check_filter_at(height, hash, &f.filter).is_err() {
                let reason = format!("a filter at {height} that does not match its filter header");
                self.peers.drop_peer(&p.addr, reason, &self.events).await;
                return None;
            }
            match filter_matches(&f.filter, &hash, self.watched.iter().map(|s| s.as_bytes())) {
                Ok(true) => matched.push((height, hash)),
                Ok(false) => {}
                Err(reason) => {
                    self.peers.drop_peer(&p.addr, format!("{reason} at {height}"), &self.events).await;
                    return None;
                }
            }
            height = height.saturating_add(1);
            if height > stop_height {
                break;
            }
        }
        if height <= stop_height {
            let asked = stop_height.saturating_sub(start).saturating_add(1);
            let reason = format!("withheld filters: {} of {asked}", filters.len());
            self.peers.drop_peer(&p.addr, reason, &self.events).await;
            return None;
        }
        Some(matched)
    }

    async fn scan_block(&mut self, block: &Block, height: u32, hash: BlockHash) -> Result<(), LightError> {
        for tx in &block.txdata {
            let txid = tx.compute_txid();
            for (vin, input) in tx.input.iter().enumerate() {
                let Some(coin) = self.coins.get_mut(&input.previous_output) else { continue };
                if coin.spent.is_some_and(|s| s <= height) {
                    continue;
                }
                coin.spent = Some(height);
                let kind = TxKind::Spent {
                    vin: u32::try_from(vin).unwrap_or(u32::MAX),
                    outpoint: input.previous_output,
                    value: coin.value,
                };
                self.emit(LightEvent::Tx(RelevantTx { txid, kind, height, block: hash, tx: tx.clone() })).await?;
            }
            for (vout, output) in tx.output.iter().enumerate() {
                if !self.watched.contains(&output.script_pubkey) {
                    continue;
                }
                let vout = u32::try_from(vout).unwrap_or(u32::MAX);
                let coin = Coin { value: output.value, height, spent: None };
                if self.coins.insert(OutPoint { txid, vout }, coin).is_some_and(|c| c.height == height) {
                    // Seen already (a rescan over the same block).
                }
                let kind = TxKind::Received { vout, value: output.value, script: output.script_pubkey.clone() };
                self.emit(LightEvent::Tx(RelevantTx { txid, kind, height, block: hash, tx: tx.clone() })).await?;
            }
        }
        Ok(())
    }
}
