//! The sans-IO chain logic of a BIP157/158 light client: a header chain checked as Bitcoin
//! Core checks headers, the filter-header chain, cross-checks between peers, a sync planner,
//! and crash-safe persistence of both chains.
//!
//! Nothing here reads a clock or a socket: headers, filter headers, filters and the time are
//! passed in; what changed and what to ask next come out. The `btcpeer` crate's `light`
//! module drives it over peers.
//!
//! ```
//! use btcpeer_core::chain::{ChainParams, FilterHeaderChain, HeaderChain};
//!
//! let mut headers = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
//! let filters = FilterHeaderChain::new();
//! // Ask a peer for headers after our locator, then connect what it sends:
//! let locator = headers.locator();
//! assert_eq!(locator.len(), 1);
//! let outcome = headers.connect_headers(&[], 1_700_000_000)?;
//! assert!(outcome.connected.is_empty());
//! assert_eq!(filters.next_height(), 0);
//! # Ok::<(), btcpeer_core::chain::HeaderError>(())
//! ```
//!
//! - [`HeaderChain`]: Core's `CheckProofOfWork`, `ContextualCheckBlockHeader` and `pow.cpp`
//!   per network; fork choice by total work; locators.
//! - [`FilterHeaderChain`]: BIP157 filter headers from zero, `getcfcheckpt` checkpoints,
//!   each filter checked against its header; [`first_divergence`], [`basic_filter`],
//!   [`check_outputs_in_filter`] and [`judge_filters`] to find which peer lied.
//! - [`SyncPlanner`]: which request to which peer next.
//! - [`ChainStore`]: the two chains on disk.

mod checkpoints;
mod crosscheck;
mod filters;
#[cfg(test)]
mod filters_tests;
mod headers;
#[cfg(test)]
mod headers_tests;
mod index;
mod outcome;
mod params;
mod pow;
mod store;
#[cfg(test)]
mod store_tests;
mod sync;
#[cfg(test)]
mod sync_tests;
mod sync_types;
#[cfg(test)]
mod testutil;

pub use crosscheck::{
    CheckpointVote, DisputeSide, DisputeVerdict, Divergence, Verdict, basic_filter, check_outputs_in_filter,
    first_checkpoint_difference, first_divergence, judge_filters, majority_checkpoints, settle_dispute,
};
pub use filters::{
    BASIC_FILTER, CFCHECKPT_INTERVAL, FilterError, FilterHeaderChain, FilterHeadersOutcome, MAX_CFHEADERS,
    MAX_CFILTERS, chain_filter_headers, filter_element_count,
};
pub use headers::{
    ConnectedHeader, HeaderChain, HeaderError, HeadersOutcome, MAX_FUTURE_BLOCK_TIME, MAX_HEADERS, MAX_SIDE_HEADERS,
};
pub use params::{ChainParams, Checkpoint};
pub use store::{ChainStore, FILTER_HEADERS_FILE, HEADERS_FILE, Loaded, StoreError};
pub use sync::{PeerId, SyncConfig, SyncPhase, SyncPlanner, SyncRequest};
