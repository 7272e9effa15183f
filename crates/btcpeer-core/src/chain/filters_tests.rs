//! Tests of the filter-header chain, with Core's BIP158 vectors (src/test/data/blockfilters.json).

use std::collections::HashMap;

use bitcoin::bip158::{BlockFilter, FilterHash, FilterHeader};
use bitcoin::hashes::Hash;
use bitcoin::p2p::message_filter::{CFCheckpt, CFHeaders, CFilter};
use bitcoin::{Block, BlockHash, OutPoint, ScriptBuf};

use super::crosscheck::*;
use super::filters::*;
use super::headers::HeaderChain;
use super::params::ChainParams;
use super::testutil::{NOW, extend};

struct Vector {
    height: u32,
    block: Block,
    prev_scripts: Vec<ScriptBuf>,
    prev_header: FilterHeader,
    filter: Vec<u8>,
    header: FilterHeader,
}

fn vectors() -> Vec<Vector> {
    let rows: Vec<serde_json::Value> = serde_json::from_str(include_str!("testdata/blockfilters.json")).unwrap();
    rows.iter()
        .skip(1)
        .map(|r| {
            let hex = |i: usize| r[i].as_str().unwrap().to_string();
            let block: Block = bitcoin::consensus::encode::deserialize_hex(&hex(2)).unwrap();
            assert_eq!(block.block_hash().to_string(), hex(1));
            Vector {
                height: r[0].as_u64().unwrap() as u32,
                block,
                prev_scripts: r[3]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| ScriptBuf::from_hex(s.as_str().unwrap()).unwrap())
                    .collect(),
                prev_header: hex(4).parse().unwrap(),
                filter: bitcoin::hex::FromHex::from_hex(&hex(5)).unwrap(),
                header: hex(6).parse().unwrap(),
            }
        })
        .collect()
}

fn prevouts(v: &Vector) -> HashMap<OutPoint, ScriptBuf> {
    let inputs = v.block.txdata.iter().skip(1).flat_map(|tx| tx.input.iter().map(|i| i.previous_output));
    inputs.zip(v.prev_scripts.iter().cloned()).collect()
}

#[test]
fn cores_bip158_vectors_compute_their_filters_and_filter_headers() {
    let vs = vectors();
    assert_eq!(vs.len(), 6);
    for v in &vs {
        let map = prevouts(v);
        let filter = basic_filter(&v.block, |op| map.get(op).cloned()).unwrap();
        assert_eq!(filter.content, v.filter, "filter of height {}", v.height);
        assert_eq!(filter.filter_header(&v.prev_header), v.header, "header of height {}", v.height);
        assert_eq!(chain_filter_headers(v.prev_header, &[FilterHash::hash(&v.filter)]), vec![v.header]);
        // The outputs are in it; a filter of another block misses them.
        check_outputs_in_filter(&v.filter, &v.block).unwrap();
    }
    // Missing previous outputs: an error, not a wrong filter.
    let witness = &vs[5];
    assert!(matches!(basic_filter(&witness.block, |_| None), Err(FilterError::Filter(_))));
}

#[test]
fn a_filter_that_misses_an_output_script_is_caught_and_the_liar_named() {
    let vs = vectors();
    let v = &vs[3]; // many outputs
    let other = &vs[1].filter;
    assert!(matches!(check_outputs_in_filter(other, &v.block), Err(FilterError::MissingScript { .. })));
    let map = prevouts(v);
    let truth = basic_filter(&v.block, |op| map.get(op).cloned()).unwrap();
    let honest = FilterHash::hash(&v.filter);
    let liar = FilterHash::hash(other);
    assert_eq!(judge_filters(&truth, &honest, &liar), Verdict::BLied);
    assert_eq!(judge_filters(&truth, &liar, &honest), Verdict::ALied);
    assert_eq!(judge_filters(&truth, &honest, &honest), Verdict::BothHonest);
    assert_eq!(judge_filters(&truth, &liar, &liar), Verdict::BothLied);
}

/// A regtest header chain of `n` blocks after genesis.
fn chain(n: usize) -> HeaderChain {
    let mut c = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    let mut left = n;
    while left > 0 {
        let k = left.min(2000);
        let hs = extend(c.tip(), c.time_at(c.height()).unwrap(), k, 600, 0x207f_ffff, 1);
        c.connect_headers(&hs, NOW).unwrap();
        left -= k;
    }
    c
}

/// Filter i of a synthetic chain: distinct bytes per height and `salt`.
fn filt(i: u32, salt: u8) -> Vec<u8> {
    vec![1, salt, (i & 0xff) as u8, (i >> 8) as u8]
}

fn cfheaders(c: &HeaderChain, start: u32, stop: u32, prev: FilterHeader, salt: u8) -> CFHeaders {
    CFHeaders {
        filter_type: 0,
        stop_hash: c.hash_at(stop).unwrap(),
        previous_filter_header: prev,
        filter_hashes: (start..=stop).map(|i| FilterHash::hash(&filt(i, salt))).collect(),
    }
}

#[test]
fn filter_headers_chain_from_zero_in_ranges_and_each_filter_checks_against_its_header() {
    let c = chain(2500);
    let mut f = FilterHeaderChain::new();
    let out = f.connect_cfheaders(&cfheaders(&c, 0, 1999, FilterHeader::all_zeros(), 0), &c).unwrap();
    assert_eq!(out.connected.len(), 2000);
    assert_eq!(f.height(), Some(1999));
    let prev = f.filter_header_at(1999).unwrap();
    f.connect_cfheaders(&cfheaders(&c, 2000, 2500, prev, 0), &c).unwrap();
    assert_eq!(f.next_height(), 2501);
    // Each filter against its header.
    for h in [0u32, 1, 1999, 2000, 2500] {
        let msg = CFilter { filter_type: 0, block_hash: c.hash_at(h).unwrap(), filter: filt(h, 0) };
        assert_eq!(f.check_filter(&msg, &c), Ok(h));
        let wrong = CFilter { filter: filt(h, 9), ..msg };
        assert_eq!(f.check_filter(&wrong, &c), Err(FilterError::FilterMismatch { block: wrong.block_hash, height: h }));
    }
    // An overlapping range that agrees is fine; one that conflicts is refused.
    let prev = f.filter_header_at(99).unwrap();
    let again = f.connect_cfheaders(&cfheaders(&c, 100, 199, prev, 0), &c).unwrap();
    assert_eq!((again.already_known, again.connected.len()), (100, 0));
    let mut bad = cfheaders(&c, 100, 199, prev, 0);
    bad.filter_hashes[50] = FilterHash::hash(b"lie");
    assert_eq!(f.connect_cfheaders(&bad, &c), Err(FilterError::Conflict { height: 150 }));
    // A wrong previous header, a gap, an unknown stop, a count past genesis.
    let mut f2 = FilterHeaderChain::new();
    assert_eq!(
        f2.connect_cfheaders(&cfheaders(&c, 0, 9, FilterHeader::hash(b"x"), 0), &c),
        Err(FilterError::PreviousMismatch { height: 0 })
    );
    assert_eq!(f2.connect_cfheaders(&cfheaders(&c, 5, 9, prev, 0), &c), Err(FilterError::Gap { start: 5, next: 0 }));
    let mut unknown = cfheaders(&c, 0, 9, FilterHeader::all_zeros(), 0);
    unknown.stop_hash = BlockHash::all_zeros();
    assert!(matches!(f2.connect_cfheaders(&unknown, &c), Err(FilterError::UnknownBlock(_))));
    let mut past = cfheaders(&c, 0, 9, FilterHeader::all_zeros(), 0);
    past.filter_hashes.push(FilterHash::all_zeros());
    assert!(matches!(f2.connect_cfheaders(&past, &c), Err(FilterError::BelowGenesis { count: 11, stop_height: 9 })));
    let mut empty = past.clone();
    empty.filter_hashes.clear();
    assert_eq!(f2.connect_cfheaders(&empty, &c), Err(FilterError::BadCount(0)));
    let mut other = cfheaders(&c, 0, 9, FilterHeader::all_zeros(), 0);
    other.filter_type = 1;
    assert_eq!(f2.connect_cfheaders(&other, &c), Err(FilterError::FilterType(1)));
    assert_eq!(f2.height(), None);
}

#[test]
fn checkpoints_catch_a_peer_serving_other_filter_headers() {
    let c = chain(2100);
    // The honest checkpoints, from an honest peer's chain.
    let mut honest = FilterHeaderChain::new();
    honest.connect_cfheaders(&cfheaders(&c, 0, 1999, FilterHeader::all_zeros(), 0), &c).unwrap();
    let cps = vec![honest.filter_header_at(1000).unwrap()];
    let msg = CFCheckpt { filter_type: 0, stop_hash: c.hash_at(2100).unwrap(), filter_headers: cps.clone() };
    let mut f = FilterHeaderChain::new();
    f.set_checkpoints(&msg, &c).unwrap();
    assert_eq!(f.checkpoints(), &[(1000, cps[0])]);
    // A liar's range that differs at 999 is caught at the checkpoint 1000.
    let mut lie = cfheaders(&c, 0, 1999, FilterHeader::all_zeros(), 0);
    lie.filter_hashes[999] = FilterHash::hash(b"lie");
    assert_eq!(f.connect_cfheaders(&lie, &c), Err(FilterError::CheckpointMismatch { height: 1000 }));
    assert_eq!(f.height(), None);
    f.connect_cfheaders(&cfheaders(&c, 0, 1999, FilterHeader::all_zeros(), 0), &c).unwrap();
    // Too many checkpoints for the stop height; one conflicting with what we have.
    let too_many = CFCheckpt { filter_headers: vec![cps[0]; 3], ..msg.clone() };
    assert!(matches!(f.set_checkpoints(&too_many, &c), Err(FilterError::BadCheckpoints(_))));
    let conflicting = CFCheckpt { filter_headers: vec![FilterHeader::hash(b"x")], ..msg };
    assert!(matches!(f.set_checkpoints(&conflicting, &c), Err(FilterError::BadCheckpoints(_))));
    // Two peers' checkpoint lists: where they first differ.
    assert_eq!(first_checkpoint_difference(&cps, &[FilterHeader::hash(b"x")]), Some(1000));
}

#[test]
fn two_peers_cfheaders_diverge_where_one_lied_and_truncate_follows_a_reorg() {
    let c = chain(300);
    let a = cfheaders(&c, 101, 300, FilterHeader::hash(b"p"), 0);
    let mut b = a.clone();
    assert_eq!(first_divergence(&a, &b, 300), Divergence::None);
    b.filter_hashes[17] = FilterHash::hash(b"lie");
    assert_eq!(first_divergence(&a, &b, 300), Divergence::At(118));
    b.previous_filter_header = FilterHeader::all_zeros();
    assert_eq!(first_divergence(&a, &b, 300), Divergence::BeforeRange);
    b.filter_hashes.pop();
    assert_eq!(first_divergence(&a, &b, 300), Divergence::OtherRange);

    let mut f = FilterHeaderChain::new();
    f.connect_cfheaders(&cfheaders(&c, 0, 300, FilterHeader::all_zeros(), 0), &c).unwrap();
    f.truncate(Some(250));
    assert_eq!(f.height(), Some(250));
    f.truncate(None);
    assert_eq!(f.height(), None);
}

#[test]
fn an_empty_block_filter_from_core_matches_the_genesis_vector() {
    // The genesis vector's filter is the coinbase output alone.
    let v = &vectors()[0];
    let filter = BlockFilter::new(&v.filter);
    let script = &v.block.txdata[0].output[0].script_pubkey;
    assert!(filter.match_any(&v.block.block_hash(), std::iter::once(script.as_bytes())).unwrap());
}
