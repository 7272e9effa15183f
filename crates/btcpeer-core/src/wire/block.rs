//! Blocks and transactions beyond their decoding: a `block` payload checked without decoding it
//! (for drivers that hand blocks on undecoded, so that a malformed block is refused as a decoded
//! one would be), and messages in their serialization without witnesses (for a remote without
//! `NODE_WITNESS`).

use bitcoin::BlockHash;
use bitcoin::hashes::{Hash, sha256d};

use super::command::Command;
use super::error::PayloadError;
use super::limits::MAX_COMPACT_SIZE;
use super::message::Message;
use super::read::{MIN_TX_LEN, Reader};

/// `message` without witnesses when it is a `tx` or a `block` (Core's `TX_NO_WITNESS`
/// serialization, what a remote that does not signal `NODE_WITNESS` reads, and what a `getdata`
/// for `MSG_TX` or `MSG_BLOCK` asks for); `None` for any other message, which goes as it is.
///
/// ```
/// use btcpeer_core::bitcoin::{blockdata::constants::genesis_block, Network};
/// use btcpeer_core::wire::{Message, without_witness};
///
/// let block = Message::Block(genesis_block(Network::Regtest));
/// assert!(matches!(without_witness(&block), Some(Message::Block(_))));
/// assert!(without_witness(&Message::Ping(1)).is_none());
/// ```
pub fn without_witness(message: &Message) -> Option<Message> {
    let strip = |tx: &bitcoin::Transaction| {
        let mut stripped = tx.clone();
        for input in &mut stripped.input {
            input.witness.clear();
        }
        stripped
    };
    match message {
        Message::Tx(tx) => Some(Message::Tx(strip(tx))),
        Message::Block(block) => {
            let mut stripped = block.clone();
            stripped.txdata = block.txdata.iter().map(strip).collect();
            Some(Message::Block(stripped))
        }
        _ => None,
    }
}

/// Checks that `payload` is a `block` that [`Message::decode`](super::Message::decode) would
/// accept, without building it (no allocation), and returns its hash.
///
/// ```
/// use btcpeer_core::bitcoin::{block::Header, consensus, Block, BlockHash, hashes::Hash};
/// use btcpeer_core::wire::check_block;
///
/// let genesis = btcpeer_core::bitcoin::blockdata::constants::genesis_block(btcpeer_core::bitcoin::Network::Bitcoin);
/// let bytes = consensus::serialize(&genesis);
/// assert_eq!(check_block(&bytes).unwrap(), genesis.block_hash());
/// assert!(check_block(&bytes[..bytes.len() - 1]).is_err(), "truncated");
/// ```
pub fn check_block(payload: &[u8]) -> Result<BlockHash, PayloadError> {
    // The common case (a well-formed block) takes one tight pass that only answers yes or no; a
    // refused block is walked again by the error-reporting reader, which says where and why.
    match (Scan(payload).block(), payload.get(..80)) {
        (Some(()), Some(header)) => Ok(BlockHash::from_raw_hash(sha256d::Hash::hash(header))),
        _ => check_block_walk(payload),
    }
}

/// [`check_block`] through the error-reporting [`Reader`]: the same rules as [`Scan::block`],
/// with the field and the reason of the first one broken.
fn check_block_walk(payload: &[u8]) -> Result<BlockHash, PayloadError> {
    let mut r = Reader::new(Command::BLOCK, payload);
    let header = r.take("header", 80)?;
    let hash = BlockHash::from_raw_hash(sha256d::Hash::hash(header));
    let count = r.count("txdata", MAX_COMPACT_SIZE, MIN_TX_LEN)?;
    for _ in 0..count {
        let len = r.tx_walk("txdata", true)?;
        r.take("txdata", len)?;
    }
    r.finish()?;
    Ok(hash)
}

/// The yes-or-no shape scan of a block: what is left of the payload, narrowed as it is read.
/// Each step is [`Reader`]'s rule for the same field (a CompactSize minimal and at most
/// `MAX_SIZE`, a count backed by the bytes its smallest items need, a segwit flag of 1 and at
/// least one witness under it: rust-bitcoin's `Transaction::consensus_decode`, itself Core's
/// `UnserializeTransaction`), without positions, field names or error values, so that a 1 MB
/// block of thousands of transactions costs a pass over its bytes and little more.
struct Scan<'a>(&'a [u8]);

/// The reader's smallest transaction input and smallest transaction, as lengths in memory.
const MIN_TXIN: usize = 32 + 4 + 1 + 4;
const MIN_TX: usize = 4 + 1 + MIN_TXIN + 1 + 4;
/// Smallest encoded transaction output: value and empty script.
const MIN_TXOUT: usize = 8 + 1;

impl Scan<'_> {
    #[inline(always)]
    fn skip(&mut self, n: usize) -> Option<()> {
        self.0 = self.0.get(n..)?;
        Some(())
    }

    #[inline(always)]
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (bytes, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*bytes)
    }

    /// A CompactSize used as a length or count: minimal and at most `MAX_SIZE`
    /// ([`Reader::compact_size`]).
    #[inline(always)]
    fn compact(&mut self) -> Option<usize> {
        let (value, min) = match self.byte()? {
            0xfd => (u64::from(u16::from_le_bytes(self.array()?)), 0xfd),
            0xfe => (u64::from(u32::from_le_bytes(self.array()?)), 0x1_0000),
            0xff => (u64::from_le_bytes(self.array()?), 0x1_0000_0000),
            n => return Some(usize::from(n)),
        };
        if value < min || value > MAX_COMPACT_SIZE {
            return None;
        }
        usize::try_from(value).ok()
    }

    /// `count` items of at least `min` bytes fit in what is left ([`Reader::backed`]).
    #[inline(always)]
    fn backed(&self, count: usize, min: usize) -> Option<()> {
        (count.saturating_mul(min) <= self.0.len()).then_some(())
    }

    /// One transaction, as [`Reader::tx_walk`] with `whole` walks it.
    #[inline(always)]
    fn tx(&mut self) -> Option<()> {
        self.skip(4)?; // version
        let mut inputs = self.compact()?;
        let segwit = inputs == 0;
        if segwit {
            if self.byte()? != 1 {
                return None;
            }
            inputs = self.compact()?;
        }
        self.backed(inputs, MIN_TXIN)?;
        for _ in 0..inputs {
            self.skip(36)?; // outpoint
            let script = self.compact()?;
            self.skip(script.saturating_add(4))?; // script, sequence
        }
        let outputs = self.compact()?;
        self.backed(outputs, MIN_TXOUT)?;
        for _ in 0..outputs {
            self.skip(8)?; // value
            let script = self.compact()?;
            self.skip(script)?;
        }
        if segwit {
            let mut witnessed = false;
            for _ in 0..inputs {
                let elements = self.compact()?;
                witnessed |= elements > 0;
                self.backed(elements, 1)?;
                for _ in 0..elements {
                    let len = self.compact()?;
                    self.skip(len)?;
                }
            }
            // rust-bitcoin: "witness flag set but no witnesses present".
            if inputs > 0 && !witnessed {
                return None;
            }
        }
        self.skip(4) // lock time
    }

    /// A whole `block` payload: header, transactions, nothing after them.
    fn block(mut self) -> Option<()> {
        self.skip(80)?;
        let count = self.compact()?;
        self.backed(count, MIN_TX)?;
        for _ in 0..count {
            self.tx()?;
        }
        self.0.is_empty().then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Message;
    use bitcoin::blockdata::constants::genesis_block;
    use bitcoin::consensus::serialize;
    use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness, absolute, transaction};

    fn segwit_tx(witness: Vec<Vec<u8>>) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::from_slice(&witness),
            }],
            output: vec![TxOut { value: Amount::from_sat(1), script_pubkey: ScriptBuf::from_bytes(vec![0x51]) }],
        }
    }

    /// The check and the decoder agree on `payload`.
    fn agree(payload: &[u8]) {
        assert_eq!(
            Scan(payload).block().is_some(),
            check_block_walk(payload).is_ok(),
            "the scan and the walk disagree on {payload:02x?}"
        );
        let decoded = Message::decode(Command::BLOCK, bytes::Bytes::copy_from_slice(payload));
        match (check_block(payload), decoded) {
            (Ok(hash), Ok(Message::Block(b))) => assert_eq!(hash, b.block_hash()),
            (Err(_), Err(_)) => {}
            (checked, decoded) => panic!("check {checked:?} but decode {decoded:?} for {payload:02x?}"),
        }
    }

    /// A transaction of `inputs` inputs (each with a `script`-byte script and the given witness
    /// element lengths) and `outputs` outputs.
    fn shaped_tx(inputs: usize, outputs: usize, script: usize, witness: &[usize]) -> Transaction {
        let mut tx = segwit_tx(witness.iter().map(|&n| vec![0x30; n]).collect());
        tx.input = (0..inputs).map(|_| tx.input[0].clone()).collect();
        for input in &mut tx.input {
            input.script_sig = ScriptBuf::from_bytes(vec![0x51; script]);
        }
        tx.output = (0..outputs).map(|_| tx.output[0].clone()).collect();
        tx
    }

    proptest::proptest! {
        /// Blocks of random shapes (legacy and segwit, empty and long scripts, zero to three
        /// inputs, outputs and witness elements), then a few bytes overwritten and a possible cut:
        /// the scan, the walk and the decoder agree on every one.
        #[test]
        fn a_mutated_raw_block_is_refused_exactly_when_decoding_it_would_be(
            shapes in proptest::collection::vec(
                (0usize..3, 0usize..3, 0usize..260, proptest::collection::vec(0usize..80, 0..3)),
                1..4,
            ),
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 0..3),
            cut in proptest::option::of(proptest::prelude::any::<proptest::sample::Index>()),
        ) {
            let mut block = genesis_block(bitcoin::Network::Regtest);
            block.txdata.extend(shapes.iter().map(|(i, o, s, w)| shaped_tx(*i, *o, *s, w)));
            let mut bytes = serialize(&block);
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if let Some(at) = cut {
                bytes.truncate(at.index(bytes.len()));
            }
            agree(&bytes);
        }
    }

    #[test]
    fn a_raw_block_is_refused_exactly_when_decoding_it_would_be() {
        let mut block = genesis_block(bitcoin::Network::Regtest);
        block.txdata.push(segwit_tx(vec![vec![1, 2, 3], vec![]]));
        let bytes = serialize(&block);
        agree(&bytes);
        for len in 0..bytes.len() {
            agree(bytes.get(..len).unwrap_or_default());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        agree(&longer);
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut mutated = bytes.clone();
                if let Some(b) = mutated.get_mut(i) {
                    *b ^= flip;
                }
                agree(&mutated);
            }
        }
    }

    #[test]
    fn the_fast_block_scan_accepts_exactly_what_the_reader_walk_accepts() {
        assert_eq!(MIN_TX as u64, MIN_TX_LEN);
        // Several transactions, legacy and segwit, with scripts and witness elements of lengths
        // that take one- and three-byte CompactSizes.
        let mut block = genesis_block(bitcoin::Network::Regtest);
        block.txdata.push(segwit_tx(vec![vec![0x30; 72], vec![0x02; 33]]));
        block.txdata.push(segwit_tx(vec![vec![0x51; 300], vec![]]));
        let mut legacy = segwit_tx(vec![]);
        legacy.input[0].script_sig = ScriptBuf::from_bytes(vec![0x00; 253]);
        block.txdata.push(legacy);
        let bytes = serialize(&block);
        assert!(Scan(&bytes).block().is_some());
        for len in 0..bytes.len() {
            agree(bytes.get(..len).unwrap_or_default());
        }
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x02, 0x10, 0x80, 0xfc, 0xfd, 0xfe, 0xff] {
                let mut mutated = bytes.clone();
                if let Some(b) = mutated.get_mut(i) {
                    *b = flip;
                }
                agree(&mutated);
            }
        }
        // Counts: non-minimal, above MAX_SIZE, not backed by bytes.
        let header = serialize(&block.header);
        for count in [&[0xfd, 0x01, 0x00][..], &[0xfe, 0x00, 0x00, 0x00, 0x03], &[0xfd, 0xff, 0xff], &[0x00]] {
            let mut payload = header.clone();
            payload.extend_from_slice(count);
            agree(&payload);
        }
    }

    #[test]
    fn a_raw_block_with_a_witness_flag_and_no_witness_is_refused() {
        let mut block = genesis_block(bitcoin::Network::Regtest);
        block.txdata.push(segwit_tx(vec![vec![7]]));
        let mut bytes = serialize(&block);
        // The last transaction's witness (count 1, a 1-byte element) before its 4-byte lock time
        // becomes an empty one (count 0).
        let witness = bytes.len() - 4 - 3;
        bytes.splice(witness..witness + 3, [0u8]);
        assert!(check_block(&bytes).is_err());
        agree(&bytes);
    }
}
