//! The BIP157 filter-header chain: filter headers chained from zero, checked against the
//! `getcfcheckpt` checkpoints and against the header chain, each filter checked against its
//! header; and the helpers that decide which of two disagreeing peers lied.

use bitcoin::BlockHash;
use bitcoin::bip158::{FilterHash, FilterHeader};
use bitcoin::hashes::Hash;
use bitcoin::p2p::message_filter::{CFCheckpt, CFHeaders, CFilter};

use super::headers::HeaderChain;

/// BIP157's `MAX_GETCFHEADERS_SIZE` (Core's `MAX_GETCFHEADERS_SIZE`): the most filter headers
/// one `cfheaders` message carries.
pub const MAX_CFHEADERS: usize = 2000;
/// BIP157's `MAX_GETCFILTERS_SIZE`: the most filters one `getcfilters` asks for.
pub const MAX_CFILTERS: u32 = 1000;
/// BIP157: `getcfcheckpt` gives the filter header at every multiple of this height.
pub const CFCHECKPT_INTERVAL: u32 = 1000;
/// The basic filter type (BIP158), the only one defined.
pub const BASIC_FILTER: u8 = 0;

/// Why filter headers or a filter were refused. Nothing changes on an error.
///
/// ```
/// use btcpeer_core::chain::{FilterError, FilterHeaderChain};
/// use bitcoin::hashes::Hash;
/// let err = FilterHeaderChain::new().check_filter_at(5, bitcoin::BlockHash::all_zeros(), &[0]).unwrap_err();
/// assert_eq!(err, FilterError::NotYet(5));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A filter type other than basic (0).
    #[error("filter type {0}, only basic (0) is supported")]
    FilterType(u8),
    /// The message names a block that is not on the main header chain.
    #[error("block {0} is not on the main header chain")]
    UnknownBlock(BlockHash),
    /// An empty `cfheaders`, or more than [`MAX_CFHEADERS`] in it.
    #[error("{0} filter hashes in one cfheaders (1 to {MAX_CFHEADERS} expected)")]
    BadCount(usize),
    /// More filter hashes than blocks up to the stop block.
    #[error("{count} filter hashes end at height {stop_height}: they would start below 0")]
    BelowGenesis {
        /// The count.
        count: usize,
        /// The stop block's height.
        stop_height: u32,
    },
    /// The range starts above the next filter header needed (a gap).
    #[error("cfheaders start at height {start}, the next needed is {next}")]
    Gap {
        /// The range's first height.
        start: u32,
        /// The next height this chain needs.
        next: u32,
    },
    /// The peer's previous filter header is not ours: its filter-header chain differs below
    /// the range.
    #[error("previous filter header at height {height} differs from ours")]
    PreviousMismatch {
        /// The height of the previous filter header.
        height: u32,
    },
    /// A filter header conflicts with one this chain already has.
    #[error("filter header at height {height} conflicts with ours")]
    Conflict {
        /// The first height that differs.
        height: u32,
    },
    /// A filter header differs from the `getcfcheckpt` checkpoint at its height.
    #[error("filter header at height {height} differs from the checkpoint")]
    CheckpointMismatch {
        /// The checkpoint's height.
        height: u32,
    },
    /// A `cfcheckpt` with more checkpoints than its stop block's height allows, or conflicting
    /// with filter headers this chain has.
    #[error("cfcheckpt: {0}")]
    BadCheckpoints(String),
    /// No filter header is known yet at this height.
    #[error("no filter header at height {0} yet")]
    NotYet(u32),
    /// The filter does not hash to the filter header at its height (a wrong filter).
    #[error("filter of block {block} at height {height} does not match its filter header")]
    FilterMismatch {
        /// The block.
        block: BlockHash,
        /// Its height.
        height: u32,
    },
    /// A block's output script is missing from a filter claimed for it.
    #[error("filter of block {block} misses output script {script}")]
    MissingScript {
        /// The block.
        block: BlockHash,
        /// The script (hex).
        script: String,
    },
    /// A filter that cannot be read (bad Golomb coding), or a block filter that cannot be
    /// computed (a previous output missing).
    #[error("{0}")]
    Filter(String),
}

/// What [`FilterHeaderChain::connect_cfheaders`] did.
///
/// ```
/// use btcpeer_core::chain::FilterHeadersOutcome;
/// assert!(FilterHeadersOutcome::default().connected.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FilterHeadersOutcome {
    /// The new filter headers, lowest first, with their heights (the store appends them).
    pub connected: Vec<(u32, FilterHeader)>,
    /// Headers of the message the chain already had (and that agreed).
    pub already_known: usize,
}

/// The chain of BIP157 basic filter headers, from height 0, following a [`HeaderChain`].
///
/// ```
/// use btcpeer_core::chain::FilterHeaderChain;
/// let filters = FilterHeaderChain::new();
/// assert_eq!(filters.height(), None);
/// assert_eq!(filters.next_height(), 0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct FilterHeaderChain {
    headers: Vec<FilterHeader>,
    checkpoints: Vec<(u32, FilterHeader)>,
}

/// The filter headers `hashes` make after `prev` (BIP157: `SHA256d(filter hash ‖ previous)`).
///
/// ```
/// use bitcoin::bip158::{FilterHash, FilterHeader};
/// use bitcoin::hashes::Hash;
/// let chain = btcpeer_core::chain::chain_filter_headers(FilterHeader::all_zeros(), &[FilterHash::all_zeros()]);
/// assert_eq!(chain.len(), 1);
/// ```
pub fn chain_filter_headers(prev: FilterHeader, hashes: &[FilterHash]) -> Vec<FilterHeader> {
    let mut out = Vec::with_capacity(hashes.len());
    let mut prev = prev;
    for h in hashes {
        prev = h.filter_header(&prev);
        out.push(prev);
    }
    out
}

impl FilterHeaderChain {
    /// An empty chain: the next filter header needed is height 0's.
    ///
    /// ```
    /// # use btcpeer_core::chain::FilterHeaderChain;
    /// assert_eq!(FilterHeaderChain::new().next_height(), 0);
    /// ```
    pub fn new() -> FilterHeaderChain {
        FilterHeaderChain::default()
    }

    /// The height of the last filter header, `None` when there is none.
    ///
    /// ```
    /// # use btcpeer_core::chain::FilterHeaderChain;
    /// assert_eq!(FilterHeaderChain::new().height(), None);
    /// ```
    pub fn height(&self) -> Option<u32> {
        u32::try_from(self.headers.len()).ok()?.checked_sub(1)
    }

    /// The next height a filter header is needed for.
    ///
    /// ```
    /// # use btcpeer_core::chain::FilterHeaderChain;
    /// assert_eq!(FilterHeaderChain::new().next_height(), 0);
    /// ```
    pub fn next_height(&self) -> u32 {
        u32::try_from(self.headers.len()).unwrap_or(u32::MAX)
    }

    /// The filter header at `height`.
    ///
    /// ```
    /// # use btcpeer_core::chain::FilterHeaderChain;
    /// assert_eq!(FilterHeaderChain::new().filter_header_at(0), None);
    /// ```
    pub fn filter_header_at(&self, height: u32) -> Option<FilterHeader> {
        self.headers.get(usize::try_from(height).ok()?).copied()
    }

    /// The filter header before `height` (all zeros before height 0).
    fn previous_of(&self, height: u32) -> Option<FilterHeader> {
        match height.checked_sub(1) {
            None => Some(FilterHeader::all_zeros()),
            Some(p) => self.filter_header_at(p),
        }
    }

    /// The checkpoints set by [`set_checkpoints`](Self::set_checkpoints), `(height, header)`.
    ///
    /// ```
    /// # use btcpeer_core::chain::FilterHeaderChain;
    /// assert!(FilterHeaderChain::new().checkpoints().is_empty());
    /// ```
    pub fn checkpoints(&self) -> &[(u32, FilterHeader)] {
        &self.checkpoints
    }

    /// Reserves room for `additional` more filter headers at once (capped at 2,000,000).
    ///
    /// ```
    /// # use btcpeer_core::chain::FilterHeaderChain;
    /// let mut f = FilterHeaderChain::new();
    /// f.reserve(10);
    /// assert!(f.heap_bytes() >= 320);
    /// ```
    pub fn reserve(&mut self, additional: usize) {
        self.headers.reserve_exact(additional.min(2_000_000));
    }

    /// Bytes of memory held.
    ///
    /// ```
    /// # use btcpeer_core::chain::FilterHeaderChain;
    /// assert_eq!(FilterHeaderChain::new().heap_bytes(), 0);
    /// ```
    pub fn heap_bytes(&self) -> usize {
        self.headers.capacity().saturating_mul(32).saturating_add(self.checkpoints.capacity().saturating_mul(36))
    }

    /// Sets the checkpoints a `cfcheckpt` gives (the filter header at heights 1,000, 2,000, …
    /// up to its stop block). Filter headers connected later must agree with them.
    ///
    /// Errors: [`FilterError::FilterType`], [`FilterError::UnknownBlock`] (stop block not on
    /// the main chain), [`FilterError::BadCheckpoints`] (more checkpoints than the stop
    /// height allows, or one conflicting with a filter header this chain has: then call
    /// [`truncate`](Self::truncate) below it, or drop the peer).
    ///
    /// ```
    /// use btcpeer_core::chain::{ChainParams, FilterHeaderChain, HeaderChain};
    /// use bitcoin::p2p::message_filter::CFCheckpt;
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// let mut filters = FilterHeaderChain::new();
    /// let msg = CFCheckpt { filter_type: 0, stop_hash: chain.tip(), filter_headers: vec![] };
    /// filters.set_checkpoints(&msg, &chain)?;
    /// # Ok::<(), btcpeer_core::chain::FilterError>(())
    /// ```
    pub fn set_checkpoints(&mut self, msg: &CFCheckpt, chain: &HeaderChain) -> Result<(), FilterError> {
        if msg.filter_type != BASIC_FILTER {
            return Err(FilterError::FilterType(msg.filter_type));
        }
        let stop = chain.height_of(&msg.stop_hash).ok_or(FilterError::UnknownBlock(msg.stop_hash))?;
        let allowed = usize::try_from(stop.checked_div(CFCHECKPT_INTERVAL).unwrap_or(0)).unwrap_or(usize::MAX);
        if msg.filter_headers.len() > allowed {
            return Err(FilterError::BadCheckpoints(format!(
                "{} checkpoints up to height {stop}, at most {allowed}",
                msg.filter_headers.len()
            )));
        }
        let mut cps = Vec::with_capacity(msg.filter_headers.len());
        let mut height = 0u32;
        for fh in &msg.filter_headers {
            height = height.saturating_add(CFCHECKPT_INTERVAL);
            if let Some(ours) = self.filter_header_at(height) {
                if ours != *fh {
                    return Err(FilterError::BadCheckpoints(format!(
                        "checkpoint at height {height} differs from ours"
                    )));
                }
            }
            cps.push((height, *fh));
        }
        self.checkpoints = cps;
        Ok(())
    }

    /// Connects a `cfheaders` answer: the filter hashes of the blocks up to its stop block
    /// (on the main chain), chained from its previous filter header. The range may overlap the
    /// headers this chain has (they must agree) but not leave a gap. Each new header is
    /// checked against the checkpoints.
    ///
    /// Errors: [`FilterError::FilterType`], [`FilterError::UnknownBlock`],
    /// [`FilterError::BadCount`], [`FilterError::BelowGenesis`], [`FilterError::Gap`],
    /// [`FilterError::PreviousMismatch`], [`FilterError::Conflict`],
    /// [`FilterError::CheckpointMismatch`].
    ///
    /// ```
    /// use btcpeer_core::chain::{ChainParams, FilterHeaderChain, HeaderChain};
    /// use bitcoin::bip158::{FilterHash, FilterHeader};
    /// use bitcoin::hashes::Hash;
    /// use bitcoin::p2p::message_filter::CFHeaders;
    ///
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// let mut filters = FilterHeaderChain::new();
    /// let msg = CFHeaders {
    ///     filter_type: 0,
    ///     stop_hash: chain.tip(),
    ///     previous_filter_header: FilterHeader::all_zeros(),
    ///     filter_hashes: vec![FilterHash::all_zeros()],
    /// };
    /// let outcome = filters.connect_cfheaders(&msg, &chain)?;
    /// assert_eq!(outcome.connected.len(), 1);
    /// assert_eq!(filters.height(), Some(0));
    /// # Ok::<(), btcpeer_core::chain::FilterError>(())
    /// ```
    pub fn connect_cfheaders(
        &mut self,
        msg: &CFHeaders,
        chain: &HeaderChain,
    ) -> Result<FilterHeadersOutcome, FilterError> {
        if msg.filter_type != BASIC_FILTER {
            return Err(FilterError::FilterType(msg.filter_type));
        }
        let count = msg.filter_hashes.len();
        if count == 0 || count > MAX_CFHEADERS {
            return Err(FilterError::BadCount(count));
        }
        let stop = chain.height_of(&msg.stop_hash).ok_or(FilterError::UnknownBlock(msg.stop_hash))?;
        let start = u32::try_from(count)
            .ok()
            .and_then(|c| stop.checked_add(1)?.checked_sub(c))
            .ok_or(FilterError::BelowGenesis { count, stop_height: stop })?;
        let next = self.next_height();
        if start > next {
            return Err(FilterError::Gap { start, next });
        }
        let prev = self.previous_of(start).ok_or(FilterError::Gap { start, next })?;
        if prev != msg.previous_filter_header {
            return Err(FilterError::PreviousMismatch { height: start.saturating_sub(1) });
        }
        let computed = chain_filter_headers(prev, &msg.filter_hashes);
        let mut outcome = FilterHeadersOutcome::default();
        let mut height = start;
        for fh in &computed {
            if let Some(ours) = self.filter_header_at(height) {
                if ours != *fh {
                    return Err(FilterError::Conflict { height });
                }
                outcome.already_known = outcome.already_known.saturating_add(1);
            } else {
                if let Some((_, cp)) = self.checkpoints.iter().find(|(h, _)| *h == height) {
                    if cp != fh {
                        return Err(FilterError::CheckpointMismatch { height });
                    }
                }
                outcome.connected.push((height, *fh));
            }
            height = height.saturating_add(1);
        }
        self.headers.extend(outcome.connected.iter().map(|(_, fh)| *fh));
        Ok(outcome)
    }

    /// Appends filter headers already checked (the store's reload), from the next height.
    pub(crate) fn push_trusted(&mut self, fh: FilterHeader) {
        self.headers.push(fh);
    }

    /// Drops every filter header above `height` (after a reorg disconnected blocks above it).
    /// `None` drops all.
    ///
    /// ```
    /// # use btcpeer_core::chain::FilterHeaderChain;
    /// let mut f = FilterHeaderChain::new();
    /// f.truncate(None);
    /// assert_eq!(f.height(), None);
    /// ```
    pub fn truncate(&mut self, height: Option<u32>) {
        let keep = height.map_or(0, |h| usize::try_from(h).unwrap_or(usize::MAX).saturating_add(1));
        self.headers.truncate(keep);
    }

    /// Checks a `cfilter` against the filter header at its block's height: the filter's hash
    /// chained with the previous filter header must be the stored filter header. Returns the
    /// block's height.
    ///
    /// Errors: [`FilterError::FilterType`], [`FilterError::UnknownBlock`] (not on the main
    /// chain), [`FilterError::NotYet`] (no filter header at that height yet),
    /// [`FilterError::FilterMismatch`] (a wrong filter).
    ///
    /// ```
    /// use btcpeer_core::chain::{ChainParams, FilterHeaderChain, HeaderChain};
    /// use bitcoin::bip158::{FilterHash, FilterHeader};
    /// use bitcoin::hashes::Hash;
    /// use bitcoin::p2p::message_filter::{CFHeaders, CFilter};
    ///
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// let mut filters = FilterHeaderChain::new();
    /// let filter = vec![0u8]; // an empty filter: zero elements
    /// let msg = CFHeaders {
    ///     filter_type: 0,
    ///     stop_hash: chain.tip(),
    ///     previous_filter_header: FilterHeader::all_zeros(),
    ///     filter_hashes: vec![FilterHash::hash(&filter)],
    /// };
    /// filters.connect_cfheaders(&msg, &chain)?;
    /// let cf = CFilter { filter_type: 0, block_hash: chain.tip(), filter };
    /// assert_eq!(filters.check_filter(&cf, &chain)?, 0);
    /// let bad = CFilter { filter: vec![1, 2, 3], ..cf };
    /// assert!(filters.check_filter(&bad, &chain).is_err());
    /// # Ok::<(), btcpeer_core::chain::FilterError>(())
    /// ```
    pub fn check_filter(&self, msg: &CFilter, chain: &HeaderChain) -> Result<u32, FilterError> {
        if msg.filter_type != BASIC_FILTER {
            return Err(FilterError::FilterType(msg.filter_type));
        }
        let height = chain.height_of(&msg.block_hash).ok_or(FilterError::UnknownBlock(msg.block_hash))?;
        self.check_filter_at(height, msg.block_hash, &msg.filter)?;
        Ok(height)
    }

    /// Checks filter bytes against the filter header at `height` (see
    /// [`check_filter`](Self::check_filter)); `block` is named in the error.
    ///
    /// Errors: [`FilterError::NotYet`], [`FilterError::FilterMismatch`].
    ///
    /// ```
    /// # use btcpeer_core::chain::FilterHeaderChain;
    /// # use bitcoin::hashes::Hash;
    /// assert!(FilterHeaderChain::new().check_filter_at(0, bitcoin::BlockHash::all_zeros(), &[0]).is_err());
    /// ```
    pub fn check_filter_at(&self, height: u32, block: BlockHash, filter: &[u8]) -> Result<(), FilterError> {
        let ours = self.filter_header_at(height).ok_or(FilterError::NotYet(height))?;
        let prev = self.previous_of(height).ok_or(FilterError::NotYet(height))?;
        if FilterHash::hash(filter).filter_header(&prev) != ours {
            return Err(FilterError::FilterMismatch { block, height });
        }
        Ok(())
    }
}
