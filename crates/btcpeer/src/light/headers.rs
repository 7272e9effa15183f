//! The best header chain and its filter headers, as far as the light client has them, kept on
//! disk in the data directory.
//!
//! A stopgap until `btcpeer_core::chain` (HeaderChain, FilterHeaderChain, their store) lands: the
//! checks here are the ones every network shares — each header links to its parent, meets the target
//! its bits claim, which is within the network's limit (Core: `CheckProofOfWork`), and on regtest
//! equals the genesis block's (`fPowNoRetargeting`); its time is above the median of the last 11
//! and at most two hours ahead (Core: `ContextualCheckBlockHeader`). Fork choice is by total work
//! (Core: `CChainState::FindMostWorkChain`). The retarget rules of the other networks are the
//! chain module's.

use std::collections::HashMap;

use bitcoin::block::Header;
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, FilterHeader, Target, Work};

/// Core's `MAX_FUTURE_BLOCK_TIME`.
const MAX_FUTURE_BLOCK_TIME: u32 = 2 * 60 * 60;
/// Core's `CBlockIndex::nMedianTimeSpan`.
const MEDIAN_TIME_SPAN: usize = 11;

/// Why headers were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The first header's parent is not a block we know.
    #[error("headers that do not connect (parent {0} unknown)")]
    Unconnected(BlockHash),
    /// A header does not follow the one before it.
    #[error("header at height {0} does not link to the one before it")]
    Unlinked(u32),
    /// Not enough proof of work, or a target the network does not allow.
    #[error("header at height {height} has invalid proof of work: {reason}")]
    ProofOfWork {
        /// Its height.
        height: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// A time at or below the median of the last 11 blocks, or too far in the future.
    #[error("header at height {0} has an invalid time")]
    Time(u32),
}

/// What [`HeaderChain::connect`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Connected {
    /// Blocks that left the best chain, tip first.
    pub disconnected: Vec<(u32, BlockHash)>,
    /// Blocks that joined it, lowest first.
    pub connected: Vec<(u32, BlockHash)>,
}

/// The best header chain from genesis and, beside it, the filter headers agreed so far.
#[derive(Debug)]
pub(crate) struct HeaderChain {
    network: bitcoin::Network,
    headers: Vec<Header>,
    hashes: Vec<BlockHash>,
    index: HashMap<BlockHash, u32>,
    filter_headers: Vec<FilterHeader>,
}

fn height_of(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl HeaderChain {
    pub(crate) fn new(network: bitcoin::Network) -> Self {
        let genesis = genesis_block(network).header;
        let hash = genesis.block_hash();
        HeaderChain {
            network,
            headers: vec![genesis],
            hashes: vec![hash],
            index: HashMap::from([(hash, 0)]),
            filter_headers: Vec::new(),
        }
    }

    pub(crate) fn tip_height(&self) -> u32 {
        height_of(self.headers.len().saturating_sub(1))
    }

    pub(crate) fn tip(&self) -> BlockHash {
        self.hashes.last().copied().unwrap_or_else(BlockHash::all_zeros)
    }

    pub(crate) fn hash(&self, height: u32) -> Option<BlockHash> {
        self.hashes.get(usize::try_from(height).ok()?).copied()
    }

    pub(crate) fn height(&self, hash: &BlockHash) -> Option<u32> {
        self.index.get(hash).copied()
    }

    pub(crate) fn headers_from(&self, height: u32) -> &[Header] {
        self.headers.get(usize::try_from(height).unwrap_or(usize::MAX)..).unwrap_or(&[])
    }

    /// Block locator hashes: the tip, then back one by one for ten, then doubling the step, the
    /// genesis block last (Core: `LocatorEntries`).
    pub(crate) fn locator(&self) -> Vec<BlockHash> {
        let mut out = Vec::new();
        let mut height = self.headers.len().saturating_sub(1);
        let mut step = 1usize;
        loop {
            if let Some(h) = self.hashes.get(height) {
                out.push(*h);
            }
            if height == 0 {
                break;
            }
            if out.len() >= 10 {
                step = step.saturating_mul(2);
            }
            height = height.saturating_sub(step);
        }
        out
    }

    /// Checks `header` as the child of the block at `parent` on a chain whose blocks up to
    /// `parent` are `chain` (headers from genesis).
    fn check(&self, chain: &[Header], header: &Header, now: u32) -> Result<(), HeaderError> {
        let height = height_of(chain.len());
        let parent = chain.last().ok_or(HeaderError::Unlinked(height))?;
        if header.prev_blockhash != parent.block_hash() {
            return Err(HeaderError::Unlinked(height));
        }
        let limit = bitcoin::consensus::Params::new(self.network).max_attainable_target;
        let target = header.target();
        if target > limit || target == Target::ZERO {
            return Err(HeaderError::ProofOfWork { height, reason: "a target above the network's limit" });
        }
        if self.network == bitcoin::Network::Regtest && header.bits != parent.bits {
            return Err(HeaderError::ProofOfWork { height, reason: "regtest does not retarget" });
        }
        if header.validate_pow(target).is_err() {
            return Err(HeaderError::ProofOfWork { height, reason: "the hash is above its target" });
        }
        let mut times: Vec<u32> = chain.iter().rev().take(MEDIAN_TIME_SPAN).map(|h| h.time).collect();
        times.sort_unstable();
        let median = times.get(times.len() / 2).copied().unwrap_or(0);
        if header.time <= median || header.time > now.saturating_add(MAX_FUTURE_BLOCK_TIME) {
            return Err(HeaderError::Time(height));
        }
        Ok(())
    }

    #[allow(clippy::arithmetic_side_effects)] // 256-bit sums of block work: no chain comes near overflow.
    fn work(headers: &[Header]) -> Work {
        headers.iter().fold(Work::from_be_bytes([0; 32]), |w, h| w + h.work())
    }

    /// Connects `headers` (consecutive, as a `headers` message brings them): extends the tip, or
    /// switches to a fork with more work. Headers already known are skipped; a fork with less or
    /// equal work is kept out (`Ok` with nothing connected).
    pub(crate) fn connect(&mut self, headers: &[Header], now: u32) -> Result<Connected, HeaderError> {
        let Some(first) = headers.first() else { return Ok(Connected::default()) };
        let fork = self.height(&first.prev_blockhash).ok_or(HeaderError::Unconnected(first.prev_blockhash))?;
        let fork_len = usize::try_from(fork).unwrap_or(usize::MAX).saturating_add(1);
        // Skip what we already have on the best chain.
        let known = headers
            .iter()
            .zip(self.hashes.get(fork_len..).unwrap_or(&[]))
            .take_while(|(h, known)| h.block_hash() == **known)
            .count();
        let new = headers.get(known..).unwrap_or(&[]);
        if new.is_empty() {
            return Ok(Connected::default());
        }
        let base_len = fork_len.saturating_add(known);
        let mut candidate: Vec<Header> = self.headers.get(..base_len).unwrap_or(&[]).to_vec();
        for h in new {
            self.check(&candidate, h, now)?;
            candidate.push(*h);
        }
        let ours = Self::work(self.headers.get(base_len..).unwrap_or(&[]));
        let theirs = Self::work(new);
        if theirs <= ours {
            return Ok(Connected::default());
        }
        let mut done = Connected::default();
        while self.headers.len() > base_len {
            let height = height_of(self.headers.len().saturating_sub(1));
            self.headers.pop();
            if let Some(hash) = self.hashes.pop() {
                self.index.remove(&hash);
                done.disconnected.push((height, hash));
            }
        }
        self.filter_headers.truncate(base_len);
        for h in new {
            let hash = h.block_hash();
            let height = height_of(self.headers.len());
            self.headers.push(*h);
            self.hashes.push(hash);
            self.index.insert(hash, height);
            done.connected.push((height, hash));
        }
        Ok(done)
    }

    /// The filter headers agreed so far (`len` is the next height to fetch).
    pub(crate) fn filter_headers_len(&self) -> u32 {
        height_of(self.filter_headers.len())
    }

    pub(crate) fn filter_header(&self, height: u32) -> Option<FilterHeader> {
        self.filter_headers.get(usize::try_from(height).ok()?).copied()
    }

    pub(crate) fn push_filter_headers(&mut self, headers: &[FilterHeader]) {
        let room = self.headers.len().saturating_sub(self.filter_headers.len());
        self.filter_headers.extend(headers.iter().take(room));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ChainBuilder, SyntheticChain};

    const NOW: u32 = 2_000_000_000;

    fn headers(chain: &SyntheticChain, from: usize) -> Vec<Header> {
        (from..chain.len()).map(|h| chain.block(h).header).collect()
    }

    #[test]
    fn a_heavier_fork_disconnects_then_connects() {
        let chain = SyntheticChain::new(bitcoin::Network::Regtest, 20);
        let mut c = HeaderChain::new(bitcoin::Network::Regtest);
        assert_eq!(c.connect(&headers(&chain, 1), NOW).map(|d| d.connected.len()), Ok(19));
        let mut fork = ChainBuilder::fork(&chain, 15, 7);
        fork.mine(3);
        let short = fork.clone().build();
        // Equal work (19 blocks each): kept out.
        assert_eq!(c.connect(&headers(&short, 16), NOW), Ok(Connected::default()));
        fork.mine(2);
        let long = fork.build();
        let done = c.connect(&headers(&long, 16), NOW).expect("connects");
        assert_eq!(done.disconnected.iter().map(|d| d.0).collect::<Vec<_>>(), vec![19, 18, 17, 16]);
        assert_eq!(done.connected.len(), 5);
        assert_eq!(c.tip(), long.tip());
    }

    #[test]
    fn headers_without_their_work_or_link_are_refused() {
        let chain = SyntheticChain::new(bitcoin::Network::Regtest, 5);
        let mut c = HeaderChain::new(bitcoin::Network::Regtest);
        let mut bad = headers(&chain, 1);
        bad[2].nonce = bad[2].nonce.wrapping_add(1);
        let refused = c.connect(&bad, NOW);
        assert!(matches!(refused, Err(HeaderError::ProofOfWork { .. } | HeaderError::Unlinked(_))), "{refused:?}");
        let mut late = headers(&chain, 1);
        late[0].time = 1;
        assert!(c.connect(&late, NOW).is_err());
        assert_eq!(c.tip_height(), 0);
        assert!(matches!(c.connect(&headers(&chain, 3), NOW), Err(HeaderError::Unconnected(_))));
    }

    #[test]
    fn the_locator_steps_back_then_doubles() {
        let chain = SyntheticChain::new(bitcoin::Network::Regtest, 100);
        let mut c = HeaderChain::new(bitcoin::Network::Regtest);
        c.connect(&headers(&chain, 1), NOW).expect("connects");
        let heights: Vec<usize> = c.locator().iter().filter_map(|h| chain.height_of(h)).collect();
        assert_eq!(heights, vec![99, 98, 97, 96, 95, 94, 93, 92, 91, 90, 88, 84, 76, 60, 28, 0]);
    }
}
