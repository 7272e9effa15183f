//! The light client's view of the chain: `btcpeer_core::chain`'s [`HeaderChain`] (Core's header
//! checks, retarget rules per network, checkpoints, fork choice by work) and
//! [`FilterHeaderChain`], written through to a [`ChainStore`] in the data directory when there is
//! one (crash-safe: a torn tail dropped, a corrupt file kept aside).

use bitcoin::hashes::Hash;
use bitcoin::p2p::message_filter::CFHeaders;
use bitcoin::{BlockHash, FilterHash, FilterHeader};

use std::path::Path;

use crate::core::chain::{
    BASIC_FILTER, ChainParams, ChainStore, FilterError, FilterHeaderChain, FilterHeadersOutcome, HeaderChain,
    HeadersOutcome, StoreError,
};

use crate::core::chain::HeaderError;

/// The two chains.
#[derive(Debug)]
pub(crate) struct ChainState {
    pub headers: HeaderChain,
    pub filters: FilterHeaderChain,
    store: Option<ChainStore>,
}

/// Why the chain could not be kept: the store failed (the sync stops).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChainStateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Headers(#[from] HeaderError),
    #[error(transparent)]
    Filters(#[from] FilterError),
}

impl ChainState {
    /// The chains of `network`, loaded from `dir` when given; what loading repaired.
    pub(crate) fn open(network: bitcoin::Network, dir: Option<&Path>) -> Result<(Self, Vec<String>), StoreError> {
        let params = ChainParams::new(network);
        match dir {
            Some(dir) => {
                let (store, loaded) = ChainStore::open(dir, params)?;
                let state = ChainState { headers: loaded.headers, filters: loaded.filter_headers, store: Some(store) };
                Ok((state, loaded.repairs))
            }
            None => Ok((
                ChainState { headers: HeaderChain::new(params), filters: FilterHeaderChain::new(), store: None },
                Vec::new(),
            )),
        }
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

    /// Connects headers (and writes them); filter headers above a fork are dropped with the
    /// blocks they commit to.
    pub(crate) fn connect(
        &mut self,
        headers: &[bitcoin::block::Header],
        now: u32,
    ) -> Result<HeadersOutcome, ChainStateError> {
        let outcome = self.headers.connect_headers(headers, u64::from(now))?;
        if outcome.is_reorg() {
            self.filters.truncate(outcome.fork_height());
        }
        if let Some(store) = &mut self.store {
            store.apply_headers(&outcome)?;
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
    ) -> Result<FilterHeadersOutcome, ChainStateError> {
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
        let outcome = self.filters.connect_cfheaders(&msg, &self.headers)?;
        if let Some(store) = &mut self.store {
            store.apply_filter_headers(&outcome)?;
        }
        Ok(outcome)
    }

    /// The data directory, if any.
    pub(crate) fn dir(&self) -> Option<&Path> {
        self.store.as_ref().map(ChainStore::dir)
    }
}
