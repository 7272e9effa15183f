//! Cross-checks between peers: where two peers' filter headers differ, a block's true basic
//! filter, what a filter must contain of a block, and who lied.

use bitcoin::bip158::{BlockFilter, FilterHash, FilterHeader};
use bitcoin::hashes::Hash;
use bitcoin::p2p::message_filter::CFHeaders;
use bitcoin::{Block, OutPoint, ScriptBuf};

use super::filters::{CFCHECKPT_INTERVAL, FilterError};

/// Where two peers' `cfheaders` for the same range first differ.
///
/// ```
/// use btcpeer_core::chain::Divergence;
/// assert_ne!(Divergence::At(5), Divergence::None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Divergence {
    /// They agree.
    None,
    /// Their previous filter headers differ: they disagree below the range; ask for an earlier
    /// range (or compare `cfcheckpt`s).
    BeforeRange,
    /// The filter hash at this height differs (all below agree): fetch that block and its
    /// filters and see who lied ([`judge_filters`]).
    At(u32),
    /// The messages are not about the same range (other stop block or count): not comparable.
    OtherRange,
}

/// Compares two peers' `cfheaders` for the same range (same stop hash and count): the first
/// height whose filter header differs. `stop_height` is the stop block's height.
///
/// ```
/// use btcpeer_core::chain::{first_divergence, Divergence};
/// use bitcoin::bip158::{FilterHash, FilterHeader};
/// use bitcoin::hashes::Hash;
/// use bitcoin::p2p::message_filter::CFHeaders;
///
/// let a = CFHeaders { filter_type: 0, stop_hash: bitcoin::BlockHash::all_zeros(),
///     previous_filter_header: FilterHeader::all_zeros(),
///     filter_hashes: vec![FilterHash::all_zeros(), FilterHash::all_zeros()] };
/// let mut b = a.clone();
/// assert_eq!(first_divergence(&a, &b, 10), Divergence::None);
/// b.filter_hashes[1] = FilterHash::hash(b"other");
/// assert_eq!(first_divergence(&a, &b, 10), Divergence::At(10));
/// ```
pub fn first_divergence(a: &CFHeaders, b: &CFHeaders, stop_height: u32) -> Divergence {
    if a.stop_hash != b.stop_hash || a.filter_hashes.len() != b.filter_hashes.len() || a.filter_type != b.filter_type {
        return Divergence::OtherRange;
    }
    if a.previous_filter_header != b.previous_filter_header {
        return Divergence::BeforeRange;
    }
    let Some(start) =
        u32::try_from(a.filter_hashes.len()).ok().and_then(|c| stop_height.checked_add(1)?.checked_sub(c))
    else {
        return Divergence::OtherRange;
    };
    match a.filter_hashes.iter().zip(&b.filter_hashes).position(|(x, y)| x != y) {
        None => Divergence::None,
        Some(i) => Divergence::At(start.saturating_add(u32::try_from(i).unwrap_or(u32::MAX))),
    }
}

/// Compares two peers' `cfcheckpt` answers for the same stop block: the height of the first
/// checkpoint that differs (or where one list ends early), `None` when they agree.
///
/// ```
/// use btcpeer_core::chain::first_checkpoint_difference;
/// use bitcoin::bip158::FilterHeader;
/// use bitcoin::hashes::Hash;
/// let z = FilterHeader::all_zeros();
/// assert_eq!(first_checkpoint_difference(&[z, z], &[z, z]), None);
/// assert_eq!(first_checkpoint_difference(&[z, z], &[z]), Some(2000));
/// ```
pub fn first_checkpoint_difference(a: &[FilterHeader], b: &[FilterHeader]) -> Option<u32> {
    let len = a.len().max(b.len());
    (0..len)
        .find(|i| a.get(*i) != b.get(*i))
        .map(|i| u32::try_from(i).unwrap_or(u32::MAX).saturating_add(1).saturating_mul(CFCHECKPT_INTERVAL))
}

/// The BIP158 basic filter of `block`, given the script of each output its inputs spend
/// (rust-bitcoin's `BlockFilter::new_script_filter`).
///
/// Errors: [`FilterError::Filter`] when `prevout_script` has no script for an input.
///
/// ```
/// use btcpeer_core::chain::basic_filter;
/// let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
/// let filter = basic_filter(&genesis, |_| None)?; // the coinbase spends nothing
/// assert!(!filter.content.is_empty());
/// # Ok::<(), btcpeer_core::chain::FilterError>(())
/// ```
pub fn basic_filter(
    block: &Block,
    prevout_script: impl Fn(&OutPoint) -> Option<ScriptBuf>,
) -> Result<BlockFilter, FilterError> {
    BlockFilter::new_script_filter(block, |op| prevout_script(op).ok_or(bitcoin::bip158::Error::UtxoMissing(*op)))
        .map_err(|e| FilterError::Filter(e.to_string()))
}

/// Checks what a light client can check of a filter without the previous outputs (as
/// neutrino's `VerifyBasicBlockFilter` does): every output script of `block` that BIP158
/// puts in the filter (not empty, not `OP_RETURN`) matches it.
///
/// Errors: [`FilterError::MissingScript`] (the filter lies), [`FilterError::Filter`] (it
/// cannot be read).
///
/// ```
/// use btcpeer_core::chain::{basic_filter, check_outputs_in_filter};
/// let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
/// let filter = basic_filter(&genesis, |_| None)?;
/// check_outputs_in_filter(&filter.content, &genesis)?;
/// assert!(check_outputs_in_filter(&[0], &genesis).is_err());
/// # Ok::<(), btcpeer_core::chain::FilterError>(())
/// ```
pub fn check_outputs_in_filter(filter: &[u8], block: &Block) -> Result<(), FilterError> {
    let block_hash = block.block_hash();
    let filter = BlockFilter::new(filter);
    for out in block.txdata.iter().flat_map(|tx| tx.output.iter()) {
        let script = &out.script_pubkey;
        if script.is_empty() || script.is_op_return() {
            continue;
        }
        let found = filter
            .match_any(&block_hash, std::iter::once(script.as_bytes()))
            .map_err(|e| FilterError::Filter(e.to_string()))?;
        if !found {
            return Err(FilterError::MissingScript { block: block_hash, script: script.to_hex_string() });
        }
    }
    Ok(())
}

/// Who lied, once a block's true filter is known.
///
/// ```
/// use btcpeer_core::chain::{judge_filters, Verdict};
/// use bitcoin::bip158::{BlockFilter, FilterHash};
/// use bitcoin::hashes::Hash;
/// let truth = BlockFilter::new(&[0]);
/// let h = FilterHash::hash(&truth.content);
/// assert_eq!(judge_filters(&truth, &h, &h), Verdict::BothHonest);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Both peers gave the true filter hash.
    BothHonest,
    /// Peer A's filter hash is false, B's true.
    ALied,
    /// Peer B's filter hash is false, A's true.
    BLied,
    /// Neither gave the true filter hash.
    BothLied,
}

/// Given the block's true filter (from [`basic_filter`]) and the filter hashes two peers gave
/// for it (from their `cfheaders`), who lied.
///
/// ```
/// use btcpeer_core::chain::{judge_filters, Verdict};
/// use bitcoin::bip158::{BlockFilter, FilterHash};
/// use bitcoin::hashes::Hash;
/// let truth = BlockFilter::new(&[1, 2, 3]);
/// let good = FilterHash::hash(&truth.content);
/// assert_eq!(judge_filters(&truth, &good, &FilterHash::all_zeros()), Verdict::BLied);
/// ```
pub fn judge_filters(truth: &BlockFilter, a: &FilterHash, b: &FilterHash) -> Verdict {
    let t = FilterHash::hash(&truth.content);
    match (*a == t, *b == t) {
        (true, true) => Verdict::BothHonest,
        (false, true) => Verdict::ALied,
        (true, false) => Verdict::BLied,
        (false, false) => Verdict::BothLied,
    }
}
