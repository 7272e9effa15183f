//! Test helpers: headers mined on trivial targets.

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::pow::{CompactTarget, Target};
use bitcoin::{BlockHash, TxMerkleNode};

use super::params::ChainParams;

/// Regtest-like parameters for `network`'s rules, with regtest's easy proof-of-work limit and
/// genesis, so headers mine in a few hashes.
pub(crate) fn easy(network: bitcoin::Network) -> ChainParams {
    let mut p = ChainParams::new(network).with_checkpoints(Vec::new());
    p.pow_limit = Target::MAX_ATTAINABLE_REGTEST;
    p.genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
    p.bip34_height = 1;
    p.bip65_height = 1;
    p.bip66_height = 1;
    p
}

/// A header on `prev` with this time and bits, its nonce ground until it meets its target.
/// `salt` goes into the merkle root so siblings differ.
pub(crate) fn mine(prev: BlockHash, time: u32, bits: u32, salt: u64) -> Header {
    let mut root = [0u8; 32];
    root[..8].copy_from_slice(&salt.to_le_bytes());
    let mut h = Header {
        version: Version::from_consensus(0x2000_0000),
        prev_blockhash: prev,
        merkle_root: TxMerkleNode::from_byte_array(root),
        time,
        bits: CompactTarget::from_consensus(bits),
        nonce: 0,
    };
    let target = Target::from_compact(h.bits);
    while !target.is_met_by(h.block_hash()) {
        h.nonce += 1;
    }
    h
}

/// A header on `prev` that does NOT meet its target.
pub(crate) fn unmined(prev: BlockHash, time: u32, bits: u32) -> Header {
    let mut h = mine(prev, time, bits, 0);
    let target = Target::from_compact(h.bits);
    while target.is_met_by(h.block_hash()) {
        h.nonce += 1;
    }
    h
}

/// `n` headers after `prev` (at `prev_time`), `spacing` seconds apart, all with `bits`.
pub(crate) fn extend(prev: BlockHash, prev_time: u32, n: usize, spacing: u32, bits: u32, salt: u64) -> Vec<Header> {
    let mut out = Vec::with_capacity(n);
    let (mut prev, mut time) = (prev, prev_time);
    for i in 0..n {
        time += spacing;
        let h = mine(prev, time, bits, salt.wrapping_mul(1_000_003).wrapping_add(i as u64));
        prev = h.block_hash();
        out.push(h);
    }
    out
}

/// A time far in the future for "adjusted now".
pub(crate) const NOW: u64 = 4_000_000_000;
