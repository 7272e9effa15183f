//! Cross-checks between peers: where two peers' filter headers differ, a block's true basic
//! filter, what a filter must contain of a block, and who lied.

use bitcoin::bip158::{BlockFilter, FilterHash, FilterHeader};
use bitcoin::hashes::Hash;
use bitcoin::p2p::message_filter::CFHeaders;
use bitcoin::{Block, OutPoint, ScriptBuf};

use super::filters::{CFCHECKPT_INTERVAL, FilterError, filter_element_count};

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
    filter_element_count(filter)?;
    let filter = BlockFilter::new(filter);
    let scripts: Vec<&ScriptBuf> = block
        .txdata
        .iter()
        .flat_map(|tx| tx.output.iter())
        .map(|o| &o.script_pubkey)
        .filter(|s| !s.is_empty() && !s.is_op_return())
        .collect();
    // One pass over the filter for all of them; only on a miss, find which one.
    let all = filter
        .match_all(&block_hash, scripts.iter().map(|s| s.as_bytes()))
        .map_err(|e| FilterError::Filter(e.to_string()))?;
    if all {
        return Ok(());
    }
    for script in scripts {
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

/// One side of a dispute over the filter header at a height: the filter hash its peers gave
/// (in their `cfheaders`), how many peers gave it, and the filter one of them served for the
/// block when asked (`None`: withheld).
///
/// ```
/// use btcpeer_core::chain::DisputeSide;
/// use bitcoin::bip158::FilterHash;
/// use bitcoin::hashes::Hash;
/// let side = DisputeSide { filter_hash: FilterHash::all_zeros(), peers: 2, filter: None };
/// assert_eq!(side.peers, 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisputeSide {
    /// The filter hash the side committed to.
    pub filter_hash: FilterHash,
    /// Peers on this side.
    pub peers: usize,
    /// The filter a peer of this side served for the block, if any.
    pub filter: Option<Vec<u8>>,
}

/// What the block says of a [`DisputeSide`].
///
/// ```
/// use btcpeer_core::chain::DisputeVerdict;
/// assert_ne!(DisputeVerdict::Honest, DisputeVerdict::Withheld);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisputeVerdict {
    /// The side's filter is consistent with the block and, of the consistent ones, has the
    /// most elements (then the most peers).
    Honest,
    /// The side served no filter for the block in the dispute.
    Withheld,
    /// The side's filter does not hash to what it committed to, or lacks an output script of
    /// the block (or cannot be read): the block contradicts it.
    Contradicted,
    /// Consistent with the block's outputs, but with fewer elements than another consistent
    /// side: it can hide a spend (the previous outputs' scripts), so it loses.
    OmitsElements,
}

/// Settles a dispute over the filter at `block`'s height by block evidence, as neutrino's
/// `resolveConflict` does: a side whose filter lacks one of the block's output scripts (or
/// does not hash to what it committed to) lied; if several sides remain, the block alone
/// cannot tell (they differ on previous-output scripts) and the side whose filter has more
/// elements wins (one with more costs only false positives; one with fewer can hide a spend),
/// then the side with more peers. One verdict per side, in order.
///
/// ```
/// use btcpeer_core::chain::{basic_filter, settle_dispute, DisputeSide, DisputeVerdict};
/// use bitcoin::bip158::FilterHash;
/// use bitcoin::hashes::Hash;
/// let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
/// let truth = basic_filter(&genesis, |_| None)?.content;
/// let honest = DisputeSide { filter_hash: FilterHash::hash(&truth), peers: 1, filter: Some(truth) };
/// let liar = DisputeSide { filter_hash: FilterHash::hash(&[0]), peers: 2, filter: Some(vec![0]) };
/// let verdicts = settle_dispute(&genesis, &[honest, liar]);
/// assert_eq!(verdicts, vec![DisputeVerdict::Honest, DisputeVerdict::Contradicted]);
/// # Ok::<(), btcpeer_core::chain::FilterError>(())
/// ```
pub fn settle_dispute(block: &Block, sides: &[DisputeSide]) -> Vec<DisputeVerdict> {
    let mut verdicts = Vec::with_capacity(sides.len());
    // (elements, peers, index) of the sides the block does not contradict.
    let mut consistent = Vec::new();
    for (i, side) in sides.iter().enumerate() {
        let verdict = match &side.filter {
            None => DisputeVerdict::Withheld,
            Some(f) if FilterHash::hash(f) != side.filter_hash => DisputeVerdict::Contradicted,
            Some(f) => match (filter_element_count(f), check_outputs_in_filter(f, block)) {
                (Ok(elements), Ok(())) => {
                    consistent.push((elements, side.peers, i));
                    DisputeVerdict::Honest
                }
                _ => DisputeVerdict::Contradicted,
            },
        };
        verdicts.push(verdict);
    }
    let best = consistent.iter().max_by_key(|(elements, peers, i)| (*elements, *peers, std::cmp::Reverse(*i)));
    if let Some(&(_, _, winner)) = best {
        for &(_, _, i) in &consistent {
            if i != winner {
                if let Some(v) = verdicts.get_mut(i) {
                    *v = DisputeVerdict::OmitsElements;
                }
            }
        }
    }
    verdicts
}

/// What several peers' `cfcheckpt` lists (for the same chain) agree on: see
/// [`majority_checkpoints`].
///
/// ```
/// use btcpeer_core::chain::majority_checkpoints;
/// let vote = majority_checkpoints(std::iter::empty());
/// assert!(vote.agreed.is_empty() && vote.dissenters.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointVote {
    /// The longest prefix of checkpoints (heights 1,000, 2,000, …) on which, at each height, a
    /// strict majority of the lists that reach it agree.
    pub agreed: Vec<FilterHeader>,
    /// The lists (index, in the order given) that contradict a strict majority, each with the
    /// first checkpoint height where it does (it is not counted at the heights after).
    pub dissenters: Vec<(usize, u32)>,
}

/// Votes on checkpoints, as neutrino does before fetching filter headers: at each checkpoint
/// height, a value held by a strict majority of the peers that reach it wins and the peers that
/// differ are dissenters; a tie decides nothing (the filter headers' cross-check, settled by the
/// block, must). Peers whose list is shorter are not counted at the heights they lack.
///
/// ```
/// use btcpeer_core::chain::majority_checkpoints;
/// use bitcoin::bip158::FilterHeader;
/// use bitcoin::hashes::Hash;
/// let (a, b) = (FilterHeader::all_zeros(), FilterHeader::hash(b"lie"));
/// let vote = majority_checkpoints([&[a, a][..], &[a, a][..], &[a, b][..]]);
/// assert_eq!(vote.agreed, vec![a, a]);
/// assert_eq!(vote.dissenters, vec![(2, 2000)]);
/// ```
pub fn majority_checkpoints<'a>(lists: impl IntoIterator<Item = &'a [FilterHeader]>) -> CheckpointVote {
    let lists: Vec<&[FilterHeader]> = lists.into_iter().collect();
    let len = lists.iter().map(|l| l.len()).max().unwrap_or(0);
    let mut vote = CheckpointVote::default();
    let mut prefix = true;
    for k in 0..len {
        let height = u32::try_from(k).unwrap_or(u32::MAX).saturating_add(1).saturating_mul(CFCHECKPT_INTERVAL);
        let values: Vec<(usize, FilterHeader)> = lists
            .iter()
            .enumerate()
            .filter(|(i, _)| !vote.dissenters.iter().any(|(d, _)| d == i))
            .filter_map(|(i, l)| l.get(k).map(|v| (i, *v)))
            .collect();
        let majority = values.iter().find(|(_, v)| {
            let n = values.iter().filter(|(_, w)| w == v).count();
            n.saturating_mul(2) > values.len()
        });
        match majority {
            Some(&(_, winner)) => {
                vote.dissenters.extend(values.iter().filter(|(_, v)| *v != winner).map(|(i, _)| (*i, height)));
                if prefix {
                    vote.agreed.push(winner);
                }
            }
            None => prefix = false,
        }
    }
    vote
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::{Amount, Transaction, TxIn, TxOut};

    /// Genesis with a second transaction that spends an output paying `prevout`.
    fn block_with_a_spend() -> Block {
        let mut block = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        let tx = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![TxIn { previous_output: OutPoint::new(bitcoin::Txid::all_zeros(), 7), ..TxIn::default() }],
            output: vec![TxOut { value: Amount::from_sat(1), script_pubkey: ScriptBuf::from_bytes(vec![0x51, 0x51]) }],
        };
        block.txdata.push(tx);
        block
    }

    fn side(filter: Option<Vec<u8>>, peers: usize) -> DisputeSide {
        let filter_hash = FilterHash::hash(filter.as_deref().unwrap_or(&[9]));
        DisputeSide { filter_hash, peers, filter }
    }

    #[test]
    fn a_checkpoint_tie_decides_nothing_and_a_majority_names_each_dissenter_once() {
        let (a, b, c) = (FilterHeader::all_zeros(), FilterHeader::hash(b"b"), FilterHeader::hash(b"c"));
        let tie = majority_checkpoints([&[a][..], &[b][..]]);
        assert_eq!(tie, CheckpointVote { agreed: vec![], dissenters: vec![] });
        // Peer 2 lies at 1000 and is not counted after; peer 1 is short (not counted at 2000);
        // at 3000 peers 0 and 3 are one against one: nothing agreed there, no one named.
        let vote = majority_checkpoints([&[a, a, a][..], &[a][..], &[b, c, c][..], &[a, a, b][..]]);
        assert_eq!(vote.dissenters, vec![(2, 1000)]);
        assert_eq!(vote.agreed, vec![a, a]);
    }

    #[test]
    fn a_filter_hiding_a_spend_loses_to_the_full_one_even_with_more_peers() {
        let block = block_with_a_spend();
        let spent = ScriptBuf::from_bytes(vec![0x52]);
        let full = basic_filter(&block, |_| Some(spent.clone())).unwrap().content;
        let hiding = basic_filter(&block, |_| Some(ScriptBuf::new())).unwrap().content;
        assert_ne!(full, hiding);
        let verdicts = settle_dispute(&block, &[side(Some(hiding), 3), side(Some(full), 1)]);
        assert_eq!(verdicts, vec![DisputeVerdict::OmitsElements, DisputeVerdict::Honest]);
    }

    #[test]
    fn a_side_that_withholds_or_lacks_the_outputs_or_breaks_its_hash_is_named() {
        let block = block_with_a_spend();
        let full = basic_filter(&block, |_| Some(ScriptBuf::from_bytes(vec![0x52]))).unwrap().content;
        let mut broken = side(Some(full.clone()), 1);
        broken.filter_hash = FilterHash::all_zeros();
        let sides = [side(None, 1), side(Some(vec![0]), 1), broken, side(Some(full), 1)];
        assert_eq!(
            settle_dispute(&block, &sides),
            vec![
                DisputeVerdict::Withheld,
                DisputeVerdict::Contradicted,
                DisputeVerdict::Contradicted,
                DisputeVerdict::Honest
            ]
        );
    }
}
