//! R-A: what btcd's and bchd's peers offer: the last announced block, the non-witness
//! serialization (asked for, and automatic for a remote without NODE_WITNESS).

mod common;

use btcpeer::bitcoin::hashes::Hash;
use btcpeer::bitcoin::p2p::ServiceFlags;
use btcpeer::bitcoin::{BlockHash, Transaction, Witness};
use btcpeer::peer::NoopHandler;
use btcpeer::wire::{Inventory, Message};
use common::{duplex_pair, next_message, quiet, recorder, samples, within};

fn segwit_tx() -> Transaction {
    let mut tx = samples::tx();
    tx.input[0].witness = Witness::from_slice(&[vec![7u8; 72], vec![2u8; 33]]);
    assert_ne!(tx.compute_txid().to_byte_array(), tx.compute_wtxid().to_byte_array());
    tx
}

#[tokio::test]
async fn r_a_last_announced_block_follows_inv_and_headers() {
    let (rec, mut rx) = recorder();
    let (sender, receiver) = duplex_pair(quiet().build().unwrap(), NoopHandler, quiet().build().unwrap(), rec);
    within(receiver.handshake()).await.unwrap();
    assert_eq!(receiver.last_announced_block(), None);
    let a = BlockHash::from_byte_array([1; 32]);
    let _ = sender.queue_message(&Message::Inv(vec![Inventory::Block(a)])).unwrap();
    next_message(&mut rx, |m| matches!(m, Message::Inv(_))).await;
    assert_eq!(receiver.last_announced_block(), Some(a));
    let header = samples::header();
    let _ = sender.queue_message(&Message::Headers(vec![header])).unwrap();
    next_message(&mut rx, |m| matches!(m, Message::Headers(_))).await;
    assert_eq!(receiver.last_announced_block(), Some(header.block_hash()));
    let b = BlockHash::from_byte_array([2; 32]);
    receiver.update_last_announced_block(b);
    assert_eq!(receiver.last_announced_block(), Some(b));
}

#[tokio::test]
async fn r_a_transactions_go_without_witness_when_asked_or_when_the_remote_lacks_it() {
    let tx = segwit_tx();
    let witness = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    let (rec, mut rx) = recorder();
    let (sender, receiver) =
        duplex_pair(quiet().build().unwrap(), NoopHandler, quiet().services(witness).build().unwrap(), rec);
    within(receiver.handshake()).await.unwrap();
    // To a witness remote: as given, unless asked otherwise.
    let _ = sender.queue_message(&Message::Tx(tx.clone())).unwrap();
    let got = next_message(&mut rx, |m| matches!(m, Message::Tx(_))).await;
    assert!(matches!(got, Message::Tx(t) if t == tx));
    let _ = sender.queue_without_witness(&Message::Tx(tx.clone())).unwrap();
    let got = next_message(&mut rx, |m| matches!(m, Message::Tx(_))).await;
    assert!(matches!(&got, Message::Tx(t) if t.input[0].witness.is_empty() && t.compute_txid() == tx.compute_txid()));

    // To a remote without NODE_WITNESS: stripped by itself.
    let (rec, mut rx) = recorder();
    let (sender, receiver) = duplex_pair(
        quiet().build().unwrap(),
        NoopHandler,
        quiet().services(ServiceFlags::NETWORK).build().unwrap(),
        rec,
    );
    within(sender.handshake()).await.unwrap();
    within(receiver.handshake()).await.unwrap();
    let _ = sender.queue_message(&Message::Tx(tx.clone())).unwrap();
    let got = next_message(&mut rx, |m| matches!(m, Message::Tx(_))).await;
    assert!(matches!(&got, Message::Tx(t) if t.input[0].witness.is_empty()), "{got:?}");
}
