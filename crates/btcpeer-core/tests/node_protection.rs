//! NodeCore: what earns eviction protection (issue 23 item 6: a new transaction we asked for, a new
//! header with valid proof of work near the best chain) and the block-relay-only peer that sends
//! transactions (item 14, Core's `RejectIncomingTxs`). Time is an argument throughout.

use std::time::{Duration, Instant};

use btcpeer_core::addrbook::AddrBook;
use btcpeer_core::node::{Action, ConnId, ConnKind, NodeCore};

use btcpeer_core::bitcoin::block::{Header, Version as BlockVersion};
use btcpeer_core::bitcoin::hashes::Hash;
use btcpeer_core::bitcoin::pow::{CompactTarget, Target};
use btcpeer_core::bitcoin::{BlockHash, Transaction, TxMerkleNode};
use btcpeer_core::wire::{Inventory, Message};

mod common;
use common::*;

fn tx(n: u32) -> Transaction {
    Transaction {
        version: btcpeer_core::bitcoin::transaction::Version::TWO,
        lock_time: btcpeer_core::bitcoin::absolute::LockTime::from_consensus(n),
        input: vec![],
        output: vec![],
    }
}

/// A header on `prev` at `bits` whose proof of work is valid (`valid`) or not.
fn header(prev: BlockHash, bits: u32, salt: u32, valid: bool) -> Header {
    let mut h = Header {
        version: BlockVersion::TWO,
        prev_blockhash: prev,
        merkle_root: TxMerkleNode::from_byte_array([salt as u8; 32]),
        time: 1_700_000_000 + salt,
        bits: CompactTarget::from_consensus(bits),
        nonce: 0,
    };
    while h.validate_pow(h.target()).is_ok() != valid {
        h.nonce += 1;
    }
    h
}

fn inbound_peers(n: &mut NodeCore, count: usize, t0: Instant) -> Vec<ConnId> {
    (0..count)
        .map(|i| {
            let id = accept(n, addr(i), t0);
            n.established(id, &hello(), t0, UNIX);
            id
        })
        .collect()
}

// Item 6. Core credits `m_last_tx_time` for a transaction accepted to its mempool; a relay node
// credits one that is new and was asked for by us.
#[test]
fn only_a_new_transaction_we_asked_for_earns_eviction_protection() {
    let t0 = Instant::now();
    let mut n = NodeCore::new(settings(), AddrBook::new([1; 32], 1), t0);
    let ids = inbound_peers(&mut n, 3, t0);
    let t1 = t0 + Duration::from_secs(5);
    let last_tx = |n: &NodeCore, id| n.conn(id).unwrap().last_tx;
    // Never-seen junk, unsolicited: nothing (it used to take one of the 4 protected places).
    for k in 0..100 {
        n.received(ids[0], &Message::Tx(tx(k)), t1, UNIX);
    }
    assert_eq!(last_tx(&n, ids[0]), None);
    // The answer to our getdata, by wtxid: credited.
    n.requested(ids[1], &[Inventory::WTx(tx(500).compute_wtxid())]);
    n.received(ids[1], &Message::Tx(tx(500)), t1, UNIX);
    assert_eq!(last_tx(&n, ids[1]), Some(t1));
    // The same transaction again, asked for from another peer: not new, nothing.
    n.requested(ids[2], &[Inventory::Tx(tx(500).compute_txid())]);
    n.received(ids[2], &Message::Tx(tx(500)), t1, UNIX);
    assert_eq!(last_tx(&n, ids[2]), None);
}

// Item 6. Core credits `m_last_block_time` for a new valid block; a relay node credits a block
// or header with valid proof of work on or near the best chain it has seen.
#[test]
fn only_a_block_or_header_with_valid_work_near_the_best_chain_earns_eviction_protection() {
    let t0 = Instant::now();
    let mut s = settings();
    s.pow_limit = Target::MAX_ATTAINABLE_REGTEST;
    let mut n = NodeCore::new(s, AddrBook::new([1; 32], 1), t0);
    let ids = inbound_peers(&mut n, 4, t0);
    let t1 = t0 + Duration::from_secs(5);
    let last_block = |n: &NodeCore, id| n.conn(id).unwrap().last_block;
    let genesis = BlockHash::all_zeros();
    // Junk headers (proof of work not met), never seen before: nothing.
    let junk: Vec<Header> = (0..20).map(|k| header(genesis, 0x1f00_ffff, k, false)).collect();
    n.received(ids[0], &Message::Headers(junk), t1, UNIX);
    assert_eq!(last_block(&n, ids[0]), None);
    // A header with valid work: credited (the first one the node sees).
    let hard = header(genesis, 0x1f00_ffff, 100, true);
    n.received(ids[0], &Message::Headers(vec![hard]), t1, UNIX);
    assert_eq!(last_block(&n, ids[0]), Some(t1));
    // A much cheaper header (target over 4 times easier), not on that chain: nothing.
    let cheap = header(BlockHash::from_byte_array([9; 32]), 0x207f_ffff, 101, true);
    n.received(ids[1], &Message::Headers(vec![cheap]), t1, UNIX);
    assert_eq!(last_block(&n, ids[1]), None);
    // One extending the chain at a target 4 times easier (a retarget's bound): credited.
    let next = header(hard.block_hash(), 0x1f03_fffc, 102, true);
    n.received(ids[1], &Message::Headers(vec![next]), t1, UNIX);
    assert_eq!(last_block(&n, ids[1]), Some(t1));
    // The same header again from someone else: not new, nothing.
    n.received(ids[2], &Message::Headers(vec![hard]), t1, UNIX);
    assert_eq!(last_block(&n, ids[2]), None);
    // On mainnet's limit, even valid regtest-difficulty work earns nothing.
    let mut n = NodeCore::new(settings(), AddrBook::new([1; 32], 1), t0);
    let ids = inbound_peers(&mut n, 1, t0);
    n.received(ids[0], &Message::Headers(vec![hard]), t1, UNIX);
    assert_eq!(last_block(&n, ids[0]), None);
}

// Item 14, the policy's part. Core: `RejectIncomingTxs` — a block-relay-only peer that sends a
// `tx` or announces one is disconnected (not discouraged).
#[test]
fn a_block_relay_only_peer_that_sends_or_announces_a_transaction_is_disconnected() {
    let t0 = Instant::now();
    let mut s = settings();
    s.full_relay = 0;
    s.block_relay = 2;
    s.feelers = false;
    let mut n = NodeCore::new(s, book_with([addr(1), addr(2)]), t0);
    let dials: Vec<_> = std::iter::from_fn(|| n.poll_dial(t0, UNIX)).collect();
    assert_eq!(dials.len(), 2);
    for d in &dials {
        assert_eq!(d.kind, ConnKind::BlockRelay);
        n.established(d.id, &hello(), t0, UNIX);
    }
    let _ = actions(&mut n);
    n.received(dials[0].id, &Message::Tx(tx(1)), t0, UNIX);
    n.received(dials[1].id, &Message::Inv(vec![Inventory::WTx(tx(2).compute_wtxid())]), t0, UNIX);
    let ends = actions(&mut n);
    for d in &dials {
        assert!(
            ends.contains(&Action::Disconnect { id: d.id, reason: btcpeer_core::node::NodeReason::TxFromBlockRelay }),
            "{ends:?}"
        );
        assert!(!n.discouraged().is_discouraged(d.addr.ip()));
    }
    // A block announcement is what it is for: kept.
    let mut s = settings();
    s.full_relay = 0;
    s.block_relay = 1;
    s.feelers = false;
    let mut n = NodeCore::new(s, book_with([addr(3)]), t0);
    let d = n.poll_dial(t0, UNIX).unwrap();
    n.established(d.id, &hello(), t0, UNIX);
    n.received(d.id, &Message::Inv(vec![Inventory::Block(BlockHash::all_zeros())]), t0, UNIX);
    assert!(n.conn(d.id).is_some());
}
