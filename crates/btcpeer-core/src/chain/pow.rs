//! Proof of work: the compact target decoding, `CheckProofOfWork`, and `GetNextWorkRequired` /
//! `CalculateNextWorkRequired` of Core's `pow.cpp`, over the ancestors of the block being
//! checked.

use bitcoin::BlockHash;
use bitcoin::pow::{Target, Work};

use super::params::ChainParams;

/// Core's `MAX_TIMEWARP` (BIP94): the first block of a period may be at most this many seconds
/// earlier than its parent.
pub(crate) const MAX_TIMEWARP: u32 = 600;

/// What the retarget rules need of an ancestor: its time and bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) time: u32,
    pub(crate) bits: u32,
}

/// Core's `arith_uint256::SetCompact`, refusing what `CheckProofOfWork` refuses: a negative
/// target, an overflowing one, and zero. `None` for those.
pub(crate) fn decode_compact(bits: u32) -> Option<Target> {
    let size = bits >> 24;
    let word = bits & 0x007f_ffff;
    let negative = word != 0 && bits & 0x0080_0000 != 0;
    let overflow = word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32));
    if negative || overflow || word == 0 {
        return None;
    }
    let mut be = [0u8; 32];
    if size <= 3 {
        let shifted = word.checked_shr(8u32.saturating_mul(3u32.saturating_sub(size))).unwrap_or(0);
        if shifted == 0 {
            return None;
        }
        be[29..32].copy_from_slice(&shifted.to_be_bytes()[1..4]);
    } else {
        // The word's three bytes end at byte 32 - (size - 3) of the big-endian number.
        let end = 32usize.checked_sub(usize::try_from(size.saturating_sub(3)).ok()?)?;
        let word_bytes = word.to_be_bytes();
        for (i, b) in word_bytes.iter().skip(1).enumerate() {
            // Position of this byte: end - 3 + i; bytes shifted past the top are zero (overflow
            // was refused above, so they are).
            if let Some(pos) = end.checked_sub(3).and_then(|s| s.checked_add(i)) {
                if let Some(slot) = be.get_mut(pos) {
                    *slot = *b;
                }
            }
        }
    }
    let t = Target::from_be_bytes(be);
    (t != Target::ZERO).then_some(t)
}

/// Core's `CheckProofOfWork`: the bits decode to a target that is not above the proof-of-work
/// limit, and the hash is at or below it.
pub(crate) fn check_proof_of_work(hash: BlockHash, bits: u32, params: &ChainParams) -> Result<Target, PowError> {
    let target = decode_compact(bits).ok_or(PowError::BadBits(bits))?;
    if target > params.pow_limit {
        return Err(PowError::AbovePowLimit(bits));
    }
    if !target.is_met_by(hash) {
        return Err(PowError::HashAboveTarget(bits));
    }
    Ok(target)
}

/// Why proof of work failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PowError {
    BadBits(u32),
    AbovePowLimit(u32),
    HashAboveTarget(u32),
}

/// The work a block with these bits proves (Core's `GetBlockProof`); zero for invalid bits.
pub(crate) fn work_of(bits: u32) -> Work {
    match decode_compact(bits) {
        Some(t) => t.to_work(),
        None => Work::from_le_bytes([0; 32]),
    }
}

/// `target * num / den` in 256 bits, `None` if the result does not fit (then it is above every
/// limit anyway).
fn mul_div(target: Target, num: u64, den: u64) -> Option<Target> {
    if den == 0 {
        return None;
    }
    let le = target.to_le_bytes();
    let mut limbs = [0u64; 4];
    for (i, chunk) in le.chunks_exact(8).enumerate() {
        let mut a = [0u8; 8];
        a.copy_from_slice(chunk);
        if let Some(l) = limbs.get_mut(i) {
            *l = u64::from_le_bytes(a);
        }
    }
    // Multiply into five limbs.
    let mut prod = [0u64; 5];
    let mut carry: u128 = 0;
    for (i, l) in limbs.iter().enumerate() {
        let v = u128::from(*l).checked_mul(u128::from(num))?.checked_add(carry)?;
        if let Some(p) = prod.get_mut(i) {
            *p = v as u64;
        }
        carry = v >> 64;
    }
    if let Some(p) = prod.get_mut(4) {
        *p = carry as u64;
    }
    // Divide from the top limb down.
    let mut rem: u128 = 0;
    let mut quot = [0u64; 5];
    for i in (0..5).rev() {
        let cur = (rem << 64) | u128::from(prod.get(i).copied().unwrap_or(0));
        let q = cur.checked_div(u128::from(den))?;
        rem = cur.checked_rem(u128::from(den))?;
        if let Some(slot) = quot.get_mut(i) {
            *slot = q as u64;
        }
    }
    if quot.get(4).copied().unwrap_or(0) != 0 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&quot.get(i).copied().unwrap_or(0).to_le_bytes());
    }
    Some(Target::from_le_bytes(out))
}

/// The pow limit in compact form (Core: `UintToArith256(params.powLimit).GetCompact()`).
pub(crate) fn pow_limit_bits(params: &ChainParams) -> u32 {
    params.pow_limit.to_compact_lossy().to_consensus()
}

/// Core's `CalculateNextWorkRequired`: the bits of the first block of a new period, from the
/// last block of the one before (`last`, at `last_height`) and the period's first block.
pub(crate) fn calculate_next_work_required(params: &ChainParams, last: Link, first: Link) -> u32 {
    if params.no_retargeting {
        return last.bits;
    }
    let timespan = i64::from(params.pow_target_timespan);
    let actual = i64::from(last.time)
        .saturating_sub(i64::from(first.time))
        .clamp(timespan.checked_div(4).unwrap_or(0), timespan.saturating_mul(4));
    // BIP94: start from the bits of the period's first block, not its last.
    let base_bits = if params.enforce_bip94 { first.bits } else { last.bits };
    let Some(base) = decode_compact(base_bits) else {
        return pow_limit_bits(params);
    };
    let actual = u64::try_from(actual).unwrap_or(0);
    let timespan = u64::try_from(timespan).unwrap_or(1);
    let new = match mul_div(base, actual, timespan) {
        Some(t) if t <= params.pow_limit => t,
        _ => params.pow_limit,
    };
    new.to_compact_lossy().to_consensus()
}

/// Core's `GetNextWorkRequired`: the bits a block at `last_height + 1` with time `new_time`
/// must have. `ancestor(h)` gives the time and bits of the block at height `h` of the branch
/// being extended; `None` when it needs an ancestor it cannot have (below a checkpoint start).
pub(crate) fn next_work_required(
    params: &ChainParams,
    last_height: u32,
    last: Link,
    new_time: u32,
    ancestor: &dyn Fn(u32) -> Option<Link>,
) -> Option<u32> {
    let interval = params.difficulty_adjustment_interval();
    let limit = pow_limit_bits(params);
    let next_height = last_height.checked_add(1)?;
    if next_height.checked_rem(interval).unwrap_or(0) != 0 {
        if params.allow_min_difficulty_blocks {
            // A block more than twice the spacing after its parent may be at the minimum.
            if u64::from(new_time)
                > u64::from(last.time).saturating_add(u64::from(params.pow_target_spacing).saturating_mul(2))
            {
                return Some(limit);
            }
            // Regtest (no retargeting, genesis at the limit): every block is at the limit, so
            // the walk below ends at the limit too; skip it (it is up to 2,015 steps).
            if params.no_retargeting && params.genesis.bits.to_consensus() == limit {
                return Some(limit);
            }
            // Otherwise the bits of the last block that was not at the minimum by that rule.
            let mut h = last_height;
            let mut link = last;
            // (The walk ends at genesis, or at the start of a chain started from a checkpoint.)
            while h > 0 && h.checked_rem(interval).unwrap_or(0) != 0 && link.bits == limit {
                h = h.saturating_sub(1);
                match ancestor(h) {
                    Some(l) => link = l,
                    None => break,
                }
            }
            return Some(link.bits);
        }
        return Some(last.bits);
    }
    let first_height = last_height.checked_sub(interval.saturating_sub(1))?;
    let first = ancestor(first_height)?;
    Some(calculate_next_work_required(params, last, first))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(net: bitcoin::Network) -> ChainParams {
        ChainParams::new(net)
    }

    fn link(time: u32, bits: u32) -> Link {
        Link { time, bits }
    }

    // Core's pow_tests.cpp, `get_next_work`: block 32255 → 0x1d00d86a.
    #[test]
    fn core_get_next_work() {
        let p = params(bitcoin::Network::Bitcoin);
        let bits = calculate_next_work_required(&p, link(1262152739, 0x1d00ffff), link(1261130161, 0));
        assert_eq!(bits, 0x1d00d86a);
    }

    // `get_next_work_pow_limit`: stays at the limit.
    #[test]
    fn core_get_next_work_pow_limit() {
        let p = params(bitcoin::Network::Bitcoin);
        let bits = calculate_next_work_required(&p, link(1233061996, 0x1d00ffff), link(1231006505, 0));
        assert_eq!(bits, 0x1d00ffff);
    }

    // `get_next_work_lower_limit_actual`: clamped to a quarter of the timespan.
    #[test]
    fn core_get_next_work_lower_limit_actual() {
        let p = params(bitcoin::Network::Bitcoin);
        let bits = calculate_next_work_required(&p, link(1279297671, 0x1c05a3f4), link(1279008237, 0));
        assert_eq!(bits, 0x1c0168fd);
    }

    // `get_next_work_upper_limit_actual`: clamped to four times the timespan.
    #[test]
    fn core_get_next_work_upper_limit_actual() {
        let p = params(bitcoin::Network::Bitcoin);
        let bits = calculate_next_work_required(&p, link(1269211443, 0x1c387f6f), link(1263163443, 0));
        assert_eq!(bits, 0x1d00e1fd);
    }

    #[test]
    fn the_product_never_loses_bits_and_caps_at_the_limit() {
        let p = params(bitcoin::Network::Bitcoin);
        // Four times the limit is capped at the limit.
        let bits = calculate_next_work_required(&p, link(10_000_000, 0x1d00ffff), link(0, 0x1d00ffff));
        assert_eq!(bits, 0x1d00ffff);
        // regtest never retargets.
        let r = params(bitcoin::Network::Regtest);
        assert_eq!(calculate_next_work_required(&r, link(10_000_000, 0x207fffff), link(0, 0x207fffff)), 0x207fffff);
    }

    #[test]
    fn bip94_retargets_from_the_first_block_of_the_period() {
        let p = params(bitcoin::Network::Testnet4);
        // Last block at the minimum difficulty, first block at real difficulty: the result
        // follows the first block's bits (here a timespan exactly on target keeps them).
        let first = link(1_000_000, 0x1c05a3f4);
        let last = link(1_000_000 + p.pow_target_timespan, 0x1d00ffff);
        assert_eq!(calculate_next_work_required(&p, last, first), 0x1c05a3f4);
        let mut not94 = p.clone();
        not94.enforce_bip94 = false;
        assert_eq!(calculate_next_work_required(&not94, last, first), 0x1d00ffff);
    }

    #[test]
    fn decode_compact_refuses_negative_overflow_and_zero() {
        assert!(decode_compact(0x1d00ffff).is_some());
        assert_eq!(decode_compact(0x1d00ffff), Some(Target::MAX_ATTAINABLE_MAINNET));
        assert_eq!(decode_compact(0x207fffff), Some(Target::MAX_ATTAINABLE_REGTEST));
        assert_eq!(decode_compact(0x04923456), None); // negative
        assert_eq!(decode_compact(0xff123456), None); // overflow
        assert_eq!(decode_compact(0x00000000), None);
        assert_eq!(decode_compact(0x01003456), None); // rounds to zero
        // Core's `SetCompact` examples (arith_uint256_tests): 0x01123456 → 0x12.
        assert_eq!(decode_compact(0x01123456).map(|t| t.to_le_bytes()[0]), Some(0x12));
        assert_eq!(decode_compact(0x05009234).map(|t| t.to_be_bytes()[28..32].to_vec()), Some(vec![0x92, 0x34, 0, 0]));
        assert_eq!(decode_compact(0x20123456).map(|t| t.to_be_bytes()[0..3].to_vec()), Some(vec![0x12, 0x34, 0x56]));
    }

    #[test]
    fn testnet_min_difficulty_walks_back_to_the_last_real_bits() {
        let p = params(bitcoin::Network::Testnet);
        let limit = pow_limit_bits(&p);
        // Heights 2016 (real bits) .. 2020 at the minimum.
        let chain = |h: u32| -> Option<Link> {
            match h {
                2016 => Some(link(1000, 0x1c05a3f4)),
                2017..=2020 => Some(link(1000 + (h - 2016) * 1300, limit)),
                _ => None,
            }
        };
        let last = chain(2020).unwrap();
        // Within 20 minutes of the parent: the last real bits.
        assert_eq!(next_work_required(&p, 2020, last, last.time + 1200, &chain), Some(0x1c05a3f4));
        // More than 20 minutes after the parent: the minimum.
        assert_eq!(next_work_required(&p, 2020, last, last.time + 1201, &chain), Some(limit));
        // Mainnet has no such rule: the parent's bits.
        let m = params(bitcoin::Network::Bitcoin);
        assert_eq!(next_work_required(&m, 2020, last, last.time + 5000, &chain), Some(limit));
    }
}
