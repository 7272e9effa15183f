//! The light client's view of the chain: `btcpeer_core::chain`'s [`HeaderChain`] (Core's header
//! checks, retarget rules per network, checkpoints, fork choice by work) and
//! [`FilterHeaderChain`], with the filter hashes kept beside them for the store.

use bitcoin::hashes::Hash;
use bitcoin::p2p::message_filter::CFHeaders;
use bitcoin::{BlockHash, FilterHash, FilterHeader};

use crate::core::chain::{
    BASIC_FILTER, ChainParams, FilterError, FilterHeaderChain, FilterHeadersOutcome, HeaderChain, HeadersOutcome,
};

pub use crate::core::chain::HeaderError;

/// The two chains.
#[derive(Debug)]
pub(crate) struct ChainState {
    pub headers: HeaderChain,
    pub filters: FilterHeaderChain,
}

impl ChainState {
    pub(crate) fn new(network: bitcoin::Network) -> Self {
        ChainState { headers: HeaderChain::new(ChainParams::new(network)), filters: FilterHeaderChain::new() }
    }

    pub(crate) fn tip_height(&self) -> u32 {
        self.headers.height()
    }

    pub(crate) fn tip(&self) -> BlockHash {
        self.headers.tip()
    }

    pub(crate) fn hash(&self, height: u32) -> Option<BlockHash> {
        self.headers.hash_at(height)
    }

    pub(crate) fn locator(&self) -> Vec<BlockHash> {
        self.headers.locator()
    }

    /// Connects headers; filter headers above a fork are dropped with the blocks they commit to.
    pub(crate) fn connect(
        &mut self,
        headers: &[bitcoin::block::Header],
        now: u32,
    ) -> Result<HeadersOutcome, HeaderError> {
        let outcome = self.headers.connect_headers(headers, u64::from(now))?;
        if outcome.is_reorg() {
            self.filters.truncate(outcome.fork_height());
        }
        Ok(outcome)
    }

    /// The next height whose filter header is wanted.
    pub(crate) fn filter_headers_len(&self) -> u32 {
        self.filters.next_height()
    }

    pub(crate) fn filter_header(&self, height: u32) -> Option<FilterHeader> {
        self.filters.filter_header_at(height)
    }

    /// Connects filter hashes from the filter header at `start - 1` up to `stop`.
    pub(crate) fn connect_filter_hashes(
        &mut self,
        start: u32,
        stop: BlockHash,
        hashes: &[FilterHash],
    ) -> Result<FilterHeadersOutcome, FilterError> {
        let previous_filter_header = match start.checked_sub(1) {
            Some(h) => self.filters.filter_header_at(h).unwrap_or_else(FilterHeader::all_zeros),
            None => FilterHeader::all_zeros(),
        };
        let msg = CFHeaders {
            filter_type: BASIC_FILTER,
            stop_hash: stop,
            previous_filter_header,
            filter_hashes: hashes.to_vec(),
        };
        self.filters.connect_cfheaders(&msg, &self.headers)
    }
}
