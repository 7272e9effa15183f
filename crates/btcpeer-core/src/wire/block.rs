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
        let decoded = Message::decode(Command::BLOCK, bytes::Bytes::copy_from_slice(payload));
        match (check_block(payload), decoded) {
            (Ok(hash), Ok(Message::Block(b))) => assert_eq!(hash, b.block_hash()),
            (Err(_), Err(_)) => {}
            (checked, decoded) => panic!("check {checked:?} but decode {decoded:?} for {payload:02x?}"),
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
