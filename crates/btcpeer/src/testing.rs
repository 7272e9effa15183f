//! A synthetic chain and a peer handler that serves it, for demos, tests and benchmarks
//! (feature `testing`).
//!
//! [`SyntheticChain`] builds a chain on top of a network's real genesis block: every block has one
//! coinbase transaction, a correct merkle root, and (on regtest's easy target) valid proof of work.
//! [`ChainServer`] answers `getheaders` (up to 2,000 headers), `getblocks` (up to 500 block
//! announcements) and `getdata` for blocks, as a full node would.
//!
//! ```
//! use btcpeer::testing::SyntheticChain;
//!
//! let chain = SyntheticChain::new(bitcoin::Network::Regtest, 10);
//! assert_eq!(chain.len(), 10);
//! let after_genesis = chain.headers_after(&[chain.hash(0)], bitcoin::BlockHash::from_byte_array([0; 32]), 2_000);
//! assert_eq!(after_genesis.len(), 9);
//! assert!(chain.block(5).check_merkle_root());
//! # use bitcoin::hashes::Hash;
//! ```

// Not fed by the network: fixtures built by the application itself.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::sync::Arc;

use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version};
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::hashes::Hash;
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::{
    Amount, Block, BlockHash, OutPoint, ScriptBuf, Sequence, Target, Transaction, TxIn, TxMerkleNode, TxOut, Witness,
    transaction,
};

use crate::peer::{Handler, Peer};
use crate::wire::types::{GetBlocksMessage, GetHeadersMessage};
use crate::wire::{Inventory, Message};
use bitcoin::p2p::message_filter::{CFCheckpt, CFHeaders, CFilter, GetCFCheckpt, GetCFHeaders, GetCFilters};

/// A chain of blocks on top of a network's genesis block.
#[derive(Debug, Clone)]
pub struct SyntheticChain {
    blocks: Vec<Block>,
    index: HashMap<BlockHash, usize>,
}

fn coinbase(height: usize) -> Transaction {
    let mut height_bytes = PushBytesBuf::new();
    let _ = height_bytes.extend_from_slice(&(height as u64).to_le_bytes());
    Transaction {
        version: transaction::Version::ONE,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: Builder::new().push_slice(height_bytes).into_script(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut { value: Amount::from_sat(50 * 100_000_000), script_pubkey: ScriptBuf::new() }],
    }
}

impl SyntheticChain {
    /// A chain of `len` blocks (at least the genesis block) for `network`. Proof of work is ground
    /// to the genesis block's target, which is cheap only on regtest; on other networks the headers
    /// link correctly but their work is not valid.
    pub fn new(network: bitcoin::Network, len: usize) -> Self {
        let genesis = genesis_block(network);
        let target = Target::from_compact(genesis.header.bits);
        let grind = network == bitcoin::Network::Regtest;
        let mut blocks = Vec::with_capacity(len.max(1));
        blocks.push(genesis);
        for height in 1..len {
            let prev = blocks.last().map(|b| b.block_hash()).unwrap_or_else(BlockHash::all_zeros);
            let prev_time = blocks.last().map_or(0, |b| b.header.time);
            let txdata = vec![coinbase(height)];
            let merkle_root =
                bitcoin::merkle_tree::calculate_root(txdata.iter().map(|t| t.compute_txid().to_raw_hash()))
                    .map(TxMerkleNode::from_raw_hash)
                    .unwrap_or_else(TxMerkleNode::all_zeros);
            let mut header = Header {
                version: Version::TWO,
                prev_blockhash: prev,
                merkle_root,
                time: prev_time.saturating_add(600),
                bits: blocks.first().map_or(bitcoin::CompactTarget::from_consensus(0x207f_ffff), |g| g.header.bits),
                nonce: 0,
            };
            while grind && !target.is_met_by(header.block_hash()) {
                header.nonce = header.nonce.wrapping_add(1);
            }
            blocks.push(Block { header, txdata });
        }
        let index = blocks.iter().enumerate().map(|(i, b)| (b.block_hash(), i)).collect();
        SyntheticChain { blocks, index }
    }

    /// The BIP158 basic filter of the block at `height` (its blocks spend nothing but coinbases,
    /// so output scripts are the whole filter).
    pub fn filter(&self, height: usize) -> Vec<u8> {
        let no_prevouts = |_: &bitcoin::OutPoint| Err(bitcoin::bip158::Error::UtxoMissing(bitcoin::OutPoint::null()));
        bitcoin::bip158::BlockFilter::new_script_filter::<_, bitcoin::ScriptBuf>(self.block(height), no_prevouts)
            .map(|f| f.content)
            .unwrap_or_default()
    }

    /// The BIP157 filter header at `height` (the genesis block's previous header being zero).
    pub fn filter_header(&self, height: usize) -> bitcoin::FilterHeader {
        (0..=height).fold(bitcoin::FilterHeader::all_zeros(), |prev, h| {
            bitcoin::bip158::BlockFilter::new(&self.filter(h)).filter_header(&prev)
        })
    }

    /// Blocks in the chain, genesis included.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether the chain is empty (never: the genesis block is always there).
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The hash of the block at `height` (clamped to the tip).
    pub fn hash(&self, height: usize) -> BlockHash {
        self.block(height).block_hash()
    }

    /// The block at `height` (clamped to the tip).
    pub fn block(&self, height: usize) -> &Block {
        let h = height.min(self.blocks.len().saturating_sub(1));
        // The chain always holds the genesis block, so an index within len exists.
        &self.blocks[h]
    }

    /// The tip's hash.
    pub fn tip(&self) -> BlockHash {
        self.hash(self.blocks.len().saturating_sub(1))
    }

    /// The height of a block of this chain.
    pub fn height_of(&self, hash: &BlockHash) -> Option<usize> {
        self.index.get(hash).copied()
    }

    /// The first locator hash this chain knows, as a full node picks the fork point (the genesis
    /// block when none is known).
    fn fork_point(&self, locator: &[BlockHash]) -> usize {
        locator.iter().find_map(|h| self.height_of(h)).unwrap_or(0)
    }

    /// Up to `max` headers after the fork point of `locator`, stopping after `stop`.
    pub fn headers_after(&self, locator: &[BlockHash], stop: BlockHash, max: usize) -> Vec<Header> {
        let from = self.fork_point(locator).saturating_add(1);
        let mut out = Vec::new();
        for block in self.blocks.iter().skip(from).take(max) {
            out.push(block.header);
            if block.block_hash() == stop {
                break;
            }
        }
        out
    }

    /// Up to `max` block hashes after the fork point of `locator`, stopping after `stop`.
    pub fn blocks_after(&self, locator: &[BlockHash], stop: BlockHash, max: usize) -> Vec<BlockHash> {
        self.headers_after(locator, stop, max).iter().map(Header::block_hash).collect()
    }
}

/// A block of about `size` bytes for benchmarks: segwit transactions with two inputs (each with a
/// 72-byte signature and a 33-byte key in its witness) and two outputs, about 370 bytes each. The
/// merkle root is not computed.
pub fn big_block(size: usize) -> Block {
    let tx = |i: u32| Transaction {
        version: transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: (0..2)
            .map(|k| TxIn {
                previous_output: OutPoint { txid: bitcoin::Txid::from_byte_array([(i % 251) as u8; 32]), vout: k },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::from_slice(&[vec![0x30; 72], vec![0x02; 33]]),
            })
            .collect(),
        output: (0..2u8)
            .map(|k| TxOut {
                value: Amount::from_sat(1_000 + u64::from(i)),
                script_pubkey: ScriptBuf::from_bytes(vec![k; 22]),
            })
            .collect(),
    };
    let per_tx = bitcoin::consensus::serialize(&tx(0)).len().max(1);
    let count = u32::try_from((size / per_tx).max(1)).unwrap_or(u32::MAX);
    Block {
        header: Header {
            version: Version::TWO,
            prev_blockhash: BlockHash::all_zeros(),
            merkle_root: TxMerkleNode::all_zeros(),
            time: 1_700_000_000,
            bits: bitcoin::CompactTarget::from_consensus(0x207f_ffff),
            nonce: 0,
        },
        txdata: (0..count).map(tx).collect(),
    }
}

/// A handler that serves a [`SyntheticChain`] the way a full node does.
#[derive(Debug, Clone)]
pub struct ChainServer {
    chain: Arc<SyntheticChain>,
}

impl ChainServer {
    /// Serves `chain`.
    pub fn new(chain: Arc<SyntheticChain>) -> Self {
        ChainServer { chain }
    }
}

impl Handler for ChainServer {
    fn start_height(&self) -> i32 {
        i32::try_from(self.chain.len().saturating_sub(1)).unwrap_or(i32::MAX)
    }

    fn on_getheaders(&self, peer: &Peer, msg: GetHeadersMessage) {
        let headers = self.chain.headers_after(&msg.locator_hashes, msg.stop_hash, 2_000);
        let _ = peer.queue_message(&Message::Headers(headers));
    }

    fn on_getblocks(&self, peer: &Peer, msg: GetBlocksMessage) {
        let hashes = self.chain.blocks_after(&msg.locator_hashes, msg.stop_hash, 500);
        if !hashes.is_empty() {
            let _ = peer.queue_message(&Message::Inv(hashes.into_iter().map(Inventory::Block).collect()));
        }
    }

    fn on_getcfilters(&self, peer: &Peer, msg: GetCFilters) {
        let Some(stop) = self.chain.height_of(&msg.stop_hash) else { return };
        // Core serves at most 1,000 per request (`MAX_GETCFILTERS_SIZE`).
        for height in (msg.start_height as usize..=stop).take(1_000) {
            let filter =
                CFilter { filter_type: 0, block_hash: self.chain.hash(height), filter: self.chain.filter(height) };
            let _ = peer.queue_message(&Message::CFilter(filter));
        }
    }

    fn on_getcfheaders(&self, peer: &Peer, msg: GetCFHeaders) {
        let Some(stop) = self.chain.height_of(&msg.stop_hash) else { return };
        let start = msg.start_height as usize;
        let previous_filter_header = match start.checked_sub(1) {
            Some(h) => self.chain.filter_header(h),
            None => bitcoin::FilterHeader::all_zeros(),
        };
        let filter_hashes = (start..=stop).map(|h| bitcoin::FilterHash::hash(&self.chain.filter(h))).collect();
        let headers = CFHeaders { filter_type: 0, stop_hash: msg.stop_hash, previous_filter_header, filter_hashes };
        let _ = peer.queue_message(&Message::CFHeaders(headers));
    }

    fn on_getcfcheckpt(&self, peer: &Peer, msg: GetCFCheckpt) {
        let Some(stop) = self.chain.height_of(&msg.stop_hash) else { return };
        let filter_headers = (1..=stop / 1_000).map(|k| self.chain.filter_header(k * 1_000)).collect();
        let _ = peer.queue_message(&Message::CFCheckpt(CFCheckpt {
            filter_type: 0,
            stop_hash: msg.stop_hash,
            filter_headers,
        }));
    }

    fn on_getdata(&self, peer: &Peer, items: Vec<Inventory>) {
        let mut missing = Vec::new();
        for item in items {
            let found = match item {
                Inventory::Block(h) | Inventory::WitnessBlock(h) => self.chain.height_of(&h),
                _ => None,
            };
            match found {
                // `MSG_BLOCK` asks for the block without witnesses (Core's `TX_NO_WITNESS`).
                Some(height) if matches!(item, Inventory::Block(_)) => {
                    let _ = peer.queue_without_witness(&Message::Block(self.chain.block(height).clone()));
                }
                Some(height) => {
                    let _ = peer.queue_message(&Message::Block(self.chain.block(height).clone()));
                }
                None => missing.push(item),
            }
        }
        if !missing.is_empty() {
            let _ = peer.queue_message(&Message::NotFound(missing));
        }
    }
}
