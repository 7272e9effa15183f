//! [`SyntheticChain`]: real blocks on a network's genesis block, and [`ChainBuilder`], which mines
//! them with payments to scripts a test watches and spends of those payments.

// Not fed by the network: fixtures built by the application itself.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::HashMap;

use bitcoin::absolute::LockTime;
use bitcoin::bip158::BlockFilter;
use bitcoin::block::{Header, Version};
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::hashes::Hash;
use bitcoin::script::Builder;
use bitcoin::{
    Amount, Block, BlockHash, FilterHash, FilterHeader, OutPoint, ScriptBuf, Sequence, Target, Transaction, TxIn,
    TxMerkleNode, TxOut, Txid, Witness, transaction,
};

/// A chain of blocks on top of a network's genesis block, with each block's BIP158 basic filter
/// and BIP157 filter header computed once when the chain is built.
///
/// Every block has a coinbase (paying to an empty script) and whatever [`ChainBuilder`] put in it:
/// payments to scripts, spends of earlier outputs. Merkle roots are real and, on regtest, so is the
/// proof of work (the genesis block's target, which regtest never changes).
///
/// ```
/// use btcpeer::testing::SyntheticChain;
///
/// let chain = SyntheticChain::new(bitcoin::Network::Regtest, 10);
/// assert_eq!(chain.len(), 10);
/// let after_genesis = chain.headers_after(&[chain.hash(0)], bitcoin::BlockHash::from_byte_array([0; 32]), 2_000);
/// assert_eq!(after_genesis.len(), 9);
/// assert!(chain.block(5).check_merkle_root());
/// # use bitcoin::hashes::Hash;
/// ```
#[derive(Debug, Clone)]
pub struct SyntheticChain {
    network: bitcoin::Network,
    blocks: Vec<Block>,
    index: HashMap<BlockHash, usize>,
    filters: Vec<Vec<u8>>,
    filter_headers: Vec<FilterHeader>,
    /// Every output the chain created, with its script (the filters' previous-output scripts).
    scripts: HashMap<OutPoint, ScriptBuf>,
    /// Mixed into each coinbase so that two forks built from the same parent differ.
    tag: u32,
}

fn coinbase(height: usize, tag: u32) -> Transaction {
    // BIP34: the height first, as a script number.
    let mut script = Builder::new().push_int(height as i64);
    if tag != 0 {
        script = script.push_int(i64::from(tag));
    }
    Transaction {
        version: transaction::Version::ONE,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: script.into_script(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut { value: Amount::from_sat(50 * 100_000_000), script_pubkey: ScriptBuf::new() }],
    }
}

/// A transaction spending `inputs` to `outputs`.
fn transaction(inputs: &[OutPoint], outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: inputs
            .iter()
            .map(|o| TxIn {
                previous_output: *o,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                // A signature-sized witness: the light client does not verify scripts.
                witness: Witness::from_slice(&[vec![0x30; 72], vec![0x02; 33]]),
            })
            .collect(),
        output: outputs,
    }
}

/// Mines a chain: empty blocks, payments to scripts, spends of earlier outputs, forks of another
/// chain. Each call that adds a transaction mines it in a block of its own.
///
/// ```
/// use btcpeer::testing::ChainBuilder;
/// use bitcoin::{Amount, ScriptBuf};
///
/// let watched = ScriptBuf::from_hex("0014000102030405060708090a0b0c0d0e0f10111213").unwrap();
/// let mut b = ChainBuilder::new(bitcoin::Network::Regtest);
/// b.mine(5);
/// let paid = b.pay(&watched, Amount::from_sat(10_000));
/// b.mine(3);
/// let spend = b.spend(paid, &ScriptBuf::new());
/// let chain = b.build();
/// assert_eq!(chain.len(), 11);
/// assert_eq!(chain.height_of_tx(&paid.txid), Some(6));
/// assert_eq!(chain.height_of_tx(&spend), Some(10));
/// // The filter of the paying block and of the spending block both match the watched script.
/// assert!(chain.filter_matches(6, &watched));
/// assert!(chain.filter_matches(10, &watched));
/// assert!(!chain.filter_matches(7, &watched));
/// ```
#[derive(Debug, Clone)]
pub struct ChainBuilder {
    chain: SyntheticChain,
    /// Coinbase outputs not spent yet, oldest first: the funds of payments.
    coins: std::collections::VecDeque<OutPoint>,
}

impl ChainBuilder {
    /// A chain holding `network`'s genesis block.
    pub fn new(network: bitcoin::Network) -> Self {
        let genesis = genesis_block(network);
        let mut chain = SyntheticChain {
            network,
            blocks: Vec::new(),
            index: HashMap::new(),
            filters: Vec::new(),
            filter_headers: Vec::new(),
            scripts: HashMap::new(),
            tag: 0,
        };
        chain.push(genesis);
        ChainBuilder { chain, coins: Default::default() }
    }

    /// A fork of `chain`: its blocks up to `height` (inclusive), then what this builder mines.
    /// `tag` makes this fork's blocks differ from the other chain's (use a distinct one per fork).
    pub fn fork(chain: &SyntheticChain, height: usize, tag: u32) -> Self {
        let mut b = ChainBuilder::new(chain.network);
        for block in chain.blocks.iter().take(height.saturating_add(1)).skip(1) {
            b.chain.push(block.clone());
        }
        b.chain.tag = tag.max(1);
        b
    }

    /// The height of the last block mined.
    pub fn height(&self) -> usize {
        self.chain.len().saturating_sub(1)
    }

    /// Mines `n` blocks holding only their coinbase.
    pub fn mine(&mut self, n: usize) -> &mut Self {
        for _ in 0..n {
            self.mine_with(Vec::new());
        }
        self
    }

    /// Mines a block paying `value` to `script`; the new output.
    pub fn pay(&mut self, script: &ScriptBuf, value: Amount) -> OutPoint {
        self.pay_many(&[(script.clone(), value)])
    }

    /// Mines a block with one transaction paying each `(script, value)` in order (output `i` pays
    /// the `i`-th); its first output. The funds are an earlier coinbase (one is mined first when
    /// none is left).
    pub fn pay_many(&mut self, outputs: &[(ScriptBuf, Amount)]) -> OutPoint {
        let fund = match self.coins.pop_front() {
            Some(c) => c,
            None => {
                self.mine(1);
                self.coins.pop_front().unwrap_or_else(OutPoint::null)
            }
        };
        let outs = outputs.iter().map(|(s, v)| TxOut { value: *v, script_pubkey: s.clone() }).collect();
        let tx = transaction(&[fund], outs);
        let txid = tx.compute_txid();
        self.mine_with(vec![tx]);
        OutPoint { txid, vout: 0 }
    }

    /// Mines a block spending `outpoint` to `to` (its whole value, no fee); the spending txid.
    pub fn spend(&mut self, outpoint: OutPoint, to: &ScriptBuf) -> Txid {
        let value = self.chain.value_of(&outpoint).unwrap_or(Amount::ZERO);
        let tx = transaction(&[outpoint], vec![TxOut { value, script_pubkey: to.clone() }]);
        let txid = tx.compute_txid();
        self.mine_with(vec![tx]);
        txid
    }

    /// Mines a block holding its coinbase and `txs`.
    pub fn mine_with(&mut self, txs: Vec<Transaction>) -> BlockHash {
        let chain = &mut self.chain;
        let height = chain.blocks.len();
        let prev = chain.blocks.last().map(|b| b.header).unwrap_or_else(|| genesis_block(chain.network).header);
        let mut txdata = vec![coinbase(height, chain.tag)];
        txdata.extend(txs);
        let merkle_root = bitcoin::merkle_tree::calculate_root(txdata.iter().map(|t| t.compute_txid().to_raw_hash()))
            .map(TxMerkleNode::from_raw_hash)
            .unwrap_or_else(TxMerkleNode::all_zeros);
        let bits = chain.blocks.first().map_or(prev.bits, |g| g.header.bits);
        let mut header = Header {
            // BIP9 version bits, as miners signal: past the BIP34/65/66 version floors.
            version: Version::from_consensus(0x2000_0000),
            prev_blockhash: prev.block_hash(),
            merkle_root,
            time: prev.time.saturating_add(600),
            bits,
            nonce: 0,
        };
        // Proof of work is ground to the genesis block's target, which is cheap only on regtest.
        if chain.network == bitcoin::Network::Regtest {
            let target = Target::from_compact(bits);
            while !target.is_met_by(header.block_hash()) {
                header.nonce = header.nonce.wrapping_add(1);
            }
        }
        let block = Block { header, txdata };
        let hash = block.block_hash();
        self.coins.push_back(OutPoint { txid: block.txdata[0].compute_txid(), vout: 0 });
        chain.push(block);
        hash
    }

    /// The chain mined so far.
    pub fn build(self) -> SyntheticChain {
        self.chain
    }
}

impl SyntheticChain {
    /// A chain of `len` blocks (at least the genesis block) for `network`, each holding only its
    /// coinbase. Proof of work is ground to the genesis block's target, which is cheap only on
    /// regtest; on other networks the headers link correctly but their work is not valid.
    pub fn new(network: bitcoin::Network, len: usize) -> Self {
        let mut b = ChainBuilder::new(network);
        b.mine(len.saturating_sub(1));
        b.build()
    }

    /// Appends `block`, computing its filter and filter header.
    fn push(&mut self, block: Block) {
        let filter = {
            let scripts = &self.scripts;
            let prevout = |o: &OutPoint| scripts.get(o).cloned().ok_or(bitcoin::bip158::Error::UtxoMissing(*o));
            BlockFilter::new_script_filter(&block, prevout).map(|f| f.content).unwrap_or_default()
        };
        let prev = self.filter_headers.last().copied().unwrap_or_else(FilterHeader::all_zeros);
        self.filter_headers.push(BlockFilter::new(&filter).filter_header(&prev));
        self.filters.push(filter);
        for tx in &block.txdata {
            let txid = tx.compute_txid();
            for (vout, out) in tx.output.iter().enumerate() {
                self.scripts.insert(OutPoint { txid, vout: vout as u32 }, out.script_pubkey.clone());
            }
        }
        self.index.insert(block.block_hash(), self.blocks.len());
        self.blocks.push(block);
    }

    /// The value of an output the chain created.
    fn value_of(&self, outpoint: &OutPoint) -> Option<Amount> {
        self.blocks
            .iter()
            .flat_map(|b| &b.txdata)
            .find(|t| t.compute_txid() == outpoint.txid)
            .and_then(|t| t.output.get(usize::try_from(outpoint.vout).ok()?).map(|o| o.value))
    }

    /// The network whose genesis block this chain starts from.
    pub fn network(&self) -> bitcoin::Network {
        self.network
    }

    /// The BIP158 basic filter of the block at `height` (clamped to the tip): its output scripts
    /// and the scripts of the outputs it spends.
    pub fn filter(&self, height: usize) -> Vec<u8> {
        self.filters[height.min(self.filters.len().saturating_sub(1))].clone()
    }

    /// The BIP157 filter header at `height` (clamped; the genesis block's previous header being zero).
    pub fn filter_header(&self, height: usize) -> FilterHeader {
        self.filter_headers[height.min(self.filter_headers.len().saturating_sub(1))]
    }

    /// The hash of the filter at `height` (clamped).
    pub fn filter_hash(&self, height: usize) -> FilterHash {
        FilterHash::hash(&self.filters[height.min(self.filters.len().saturating_sub(1))])
    }

    /// Whether the filter at `height` matches `script`.
    pub fn filter_matches(&self, height: usize, script: &ScriptBuf) -> bool {
        let hash = self.hash(height);
        BlockFilter::new(&self.filter(height)).match_any(&hash, std::iter::once(script.as_bytes())).unwrap_or(false)
    }

    /// The height of the block holding transaction `txid`.
    pub fn height_of_tx(&self, txid: &Txid) -> Option<usize> {
        self.blocks.iter().position(|b| b.txdata.iter().any(|t| t.compute_txid() == *txid))
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
