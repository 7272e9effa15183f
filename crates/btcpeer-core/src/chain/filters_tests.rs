//! Tests of the filter-header chain: BIP158's genesis vector, blocks built here, synthetic chains.

use bitcoin::bip158::{BlockFilter, FilterHash, FilterHeader};
use bitcoin::hashes::Hash;
use bitcoin::p2p::message_filter::{CFCheckpt, CFHeaders, CFilter};
use bitcoin::{Block, BlockHash, OutPoint, ScriptBuf};

use super::crosscheck::*;
use super::filters::*;
use super::headers::HeaderChain;
use super::params::ChainParams;
use super::testutil::{NOW, extend};

/// BIP158's published values for testnet3's genesis block (its first test vector): the basic
/// filter's bytes and its filter header chained from zero. Two numbers are facts; the blocks of the
/// other tests are built here.
const GENESIS_FILTER: &str = "019dfca8";
const GENESIS_FILTER_HEADER: &str = "21584579b7eb08997773e5aeff3a7f932700042d0ed2a6129012b7d7ae81b750";

fn script(tag: u8) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([tag; 20]))
}

/// A block with a coinbase and one transaction spending `spent` (whose script is `script(0xaa)`) to
/// `outputs` new scripts.
fn block_spending(spent: OutPoint, outputs: u8) -> Block {
    use bitcoin::{Amount, Sequence, Transaction, TxIn, TxOut, Witness, absolute::LockTime, transaction};
    let tx = |input: Vec<TxIn>, output: Vec<TxOut>| Transaction {
        version: transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input,
        output,
    };
    let out = |tag: u8| TxOut { value: Amount::from_sat(1_000), script_pubkey: script(tag) };
    let coinbase = tx(
        vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(vec![1, 7]),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        vec![out(0x01)],
    );
    let spend = tx(
        vec![TxIn {
            previous_output: spent,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        (0..outputs).map(|i| out(0x10 + i)).collect(),
    );
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
    let mut block = Block { header: genesis.header, txdata: vec![coinbase, spend] };
    block.header.prev_blockhash = genesis.block_hash();
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    block
}

#[test]
fn bip158s_genesis_vector_computes_its_filter_and_filter_header() {
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Testnet);
    let filter = basic_filter(&genesis, |_| None).unwrap();
    let expected: Vec<u8> = bitcoin::hex::FromHex::from_hex(GENESIS_FILTER).unwrap();
    assert_eq!(filter.content, expected);
    let header: FilterHeader = GENESIS_FILTER_HEADER.parse().unwrap();
    assert_eq!(filter.filter_header(&FilterHeader::all_zeros()), header);
    assert_eq!(chain_filter_headers(FilterHeader::all_zeros(), &[FilterHash::hash(&expected)]), vec![header]);
    check_outputs_in_filter(&expected, &genesis).unwrap();
}

#[test]
fn a_block_filter_holds_its_outputs_and_spent_scripts_and_missing_prevouts_are_an_error() {
    let spent = OutPoint { txid: bitcoin::Txid::from_byte_array([9; 32]), vout: 3 };
    let block = block_spending(spent, 5);
    let filter = basic_filter(&block, |op| (*op == spent).then(|| script(0xaa))).unwrap();
    check_outputs_in_filter(&filter.content, &block).unwrap();
    // The spent output's script is in it too (a wallet finds its spends by it).
    assert!(filter.match_any(&block.block_hash(), [script(0xaa).as_bytes()].into_iter()).unwrap());
    // Missing previous outputs: an error, not a wrong filter.
    assert!(matches!(basic_filter(&block, |_| None), Err(FilterError::Filter(_))));
}

#[test]
fn a_filter_that_misses_an_output_script_is_caught_and_the_liar_named() {
    let spent = OutPoint { txid: bitcoin::Txid::from_byte_array([9; 32]), vout: 3 };
    let block = block_spending(spent, 20);
    let truth = basic_filter(&block, |op| (*op == spent).then(|| script(0xaa))).unwrap();
    // Another block's filter (testnet3's genesis) misses this block's outputs.
    let other: Vec<u8> = bitcoin::hex::FromHex::from_hex(GENESIS_FILTER).unwrap();
    assert!(matches!(check_outputs_in_filter(&other, &block), Err(FilterError::MissingScript { .. })));
    let honest = FilterHash::hash(&truth.content);
    let liar = FilterHash::hash(&other);
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
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Testnet);
    let bytes: Vec<u8> = bitcoin::hex::FromHex::from_hex(GENESIS_FILTER).unwrap();
    let filter = BlockFilter::new(&bytes);
    let script = &genesis.txdata[0].output[0].script_pubkey;
    assert!(filter.match_any(&genesis.block_hash(), std::iter::once(script.as_bytes())).unwrap());
}

#[test]
fn a_filter_with_more_elements_than_bytes_is_refused_before_anything_decodes_it() {
    // A liar serving a consistent header chain and a filter claiming 2^64 - 1 elements.
    let c = chain(3);
    let hostile = vec![0xff; 40];
    let mut f = FilterHeaderChain::new();
    let msg = CFHeaders {
        filter_type: 0,
        stop_hash: c.hash_at(0).unwrap(),
        previous_filter_header: FilterHeader::all_zeros(),
        filter_hashes: vec![FilterHash::hash(&hostile)],
    };
    f.connect_cfheaders(&msg, &c).unwrap();
    let cf = CFilter { filter_type: 0, block_hash: c.hash_at(0).unwrap(), filter: hostile.clone() };
    assert!(matches!(f.check_filter(&cf, &c), Err(FilterError::Filter(_))));
    // The output check refuses it too, instead of overflowing in rust-bitcoin's matcher.
    let block = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
    assert!(matches!(check_outputs_in_filter(&hostile, &block), Err(FilterError::Filter(_))));
    // Real filters fit.
    let genesis: Vec<u8> = bitcoin::hex::FromHex::from_hex(GENESIS_FILTER).unwrap();
    assert!(filter_element_count(&genesis).is_ok());
    let spent = OutPoint { txid: bitcoin::Txid::from_byte_array([9; 32]), vout: 3 };
    let built = block_spending(spent, 20);
    let truth = basic_filter(&built, |op| (*op == spent).then(|| script(0xaa))).unwrap();
    assert!(filter_element_count(&truth.content).is_ok());
}
