//! Tests of the header chain against Core's rules.

use bitcoin::BlockHash;
use bitcoin::hashes::Hash;

use super::headers::{HeaderChain, HeaderError, MAX_FUTURE_BLOCK_TIME};
use super::params::{ChainParams, Checkpoint};
use super::pow;
use super::testutil::{NOW, easy, extend, mine, unmined};

const REG: u32 = 0x207f_ffff;

fn regtest() -> HeaderChain {
    HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest))
}

fn tip_time(c: &HeaderChain) -> u32 {
    c.time_at(c.height()).unwrap()
}

#[test]
fn a_regtest_chain_connects_and_every_block_is_found_by_height_and_hash() {
    let mut c = regtest();
    let hs = extend(c.tip(), tip_time(&c), 300, 600, REG, 1);
    let out = c.connect_headers(&hs, NOW).unwrap();
    assert_eq!(out.connected.len(), 300);
    assert_eq!(out.connected[0].height, 1);
    assert_eq!(c.height(), 300);
    for (i, h) in hs.iter().enumerate() {
        let height = i as u32 + 1;
        assert_eq!(c.hash_at(height), Some(h.block_hash()));
        assert_eq!(c.height_of(&h.block_hash()), Some(height));
    }
    assert_eq!(c.height_of(&BlockHash::all_zeros()), None);
    // Sent again: all known, nothing changes.
    let again = c.connect_headers(&hs[100..200], NOW).unwrap();
    assert_eq!((again.already_known, again.connected.len()), (100, 0));
}

#[test]
fn the_locator_is_cores_ten_then_doubling_steps_to_genesis() {
    let mut c = regtest();
    c.connect_headers(&extend(c.tip(), tip_time(&c), 30, 600, REG, 1), NOW).unwrap();
    let heights: Vec<u32> = c.locator().iter().map(|h| c.height_of(h).unwrap()).collect();
    assert_eq!(heights, vec![30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 17, 13, 5, 0]);
}

#[test]
fn headers_that_do_not_link_are_refused_and_nothing_is_connected() {
    let mut c = regtest();
    let mut hs = extend(c.tip(), tip_time(&c), 5, 600, REG, 1);
    hs.swap(2, 3);
    assert_eq!(c.connect_headers(&hs, NOW), Err(HeaderError::NotContinuous { index: 2 }));
    let orphan = extend(BlockHash::from_byte_array([7; 32]), 1_600_000_000, 2, 600, REG, 1);
    assert!(matches!(c.connect_headers(&orphan, NOW), Err(HeaderError::UnknownPrevious { .. })));
    assert_eq!(c.height(), 0);
    let too_many = vec![c.params().genesis; 2001];
    assert_eq!(c.connect_headers(&too_many, NOW), Err(HeaderError::TooMany { count: 2001 }));
}

#[test]
fn a_bad_header_at_the_end_refuses_the_whole_batch() {
    let mut c = regtest();
    let mut hs = extend(c.tip(), tip_time(&c), 5, 600, REG, 1);
    let last = unmined(hs[4].block_hash(), hs[4].time + 600, REG);
    hs.push(last);
    let err = c.connect_headers(&hs, NOW).unwrap_err();
    assert!(matches!(err, HeaderError::BadProofOfWork { height: 6, .. }), "{err:?}");
    assert_eq!(c.height(), 0);
}

#[test]
fn proof_of_work_bits_and_limit_are_checked() {
    let mut c = regtest();
    let g = c.tip();
    let t = tip_time(&c) + 600;
    // Hash above the target.
    assert!(matches!(c.connect_headers(&[unmined(g, t, REG)], NOW), Err(HeaderError::BadProofOfWork { .. })));
    // Bits above the pow limit (a target of 2^255 and more).
    assert!(matches!(c.connect_headers(&[mine(g, t, 0x2100_ffff, 1)], NOW), Err(HeaderError::BadProofOfWork { .. })));
    // Valid work but other bits than the rules require (regtest never retargets).
    let harder = mine(g, t, 0x2000_ffff, 1);
    assert_eq!(
        c.connect_headers(&[harder], NOW),
        Err(HeaderError::BadDifficulty { hash: harder.block_hash(), height: 1, expected: REG, got: 0x2000_ffff })
    );
}

#[test]
fn time_must_be_above_the_median_of_11_and_at_most_two_hours_ahead() {
    let mut c = regtest();
    let hs = extend(c.tip(), tip_time(&c), 11, 600, REG, 1);
    c.connect_headers(&hs, NOW).unwrap();
    let mtp = c.median_time_past();
    assert_eq!(mtp, hs[5].time); // heights 1..=11: the median is height 6's
    let at_median = mine(c.tip(), mtp, REG, 9);
    assert!(
        matches!(c.connect_headers(&[at_median], NOW), Err(HeaderError::TimeTooOld { median, .. }) if median == mtp)
    );
    // One second above the median is enough, even below the parent's time.
    let above = mine(c.tip(), mtp + 1, REG, 9);
    let now = u64::from(tip_time(&c));
    let mut c2 = c.clone();
    c2.connect_headers(&[above], now).unwrap();
    // Two hours ahead of adjusted time is the limit.
    let edge = mine(c.tip(), (now + MAX_FUTURE_BLOCK_TIME) as u32, REG, 9);
    let past_edge = mine(c.tip(), (now + MAX_FUTURE_BLOCK_TIME + 1) as u32, REG, 9);
    assert!(matches!(c.connect_headers(&[past_edge], now), Err(HeaderError::TimeTooNew { .. })));
    c.connect_headers(&[edge], now).unwrap();
}

#[test]
fn obsolete_versions_are_refused_after_bip34_66_65() {
    let mut c = HeaderChain::new(easy(bitcoin::Network::Bitcoin).with_checkpoints(Vec::new()));
    let mut h = mine(c.tip(), tip_time(&c) + 600, REG, 1);
    h.version = bitcoin::block::Version::from_consensus(3);
    let h = {
        let mut h = h;
        while !bitcoin::pow::Target::from_compact(h.bits).is_met_by(h.block_hash()) {
            h.nonce += 1;
        }
        h
    };
    assert!(matches!(c.connect_headers(&[h], NOW), Err(HeaderError::BadVersion { version: 3, .. })));
}

#[test]
fn a_fork_with_more_work_wins_and_is_reported_as_disconnected_then_connected() {
    let mut c = regtest();
    let main = extend(c.tip(), tip_time(&c), 10, 600, REG, 1);
    c.connect_headers(&main, NOW).unwrap();
    let fork_base = &main[4]; // height 5
    // Equal work (5 blocks on height 5 → height 10): kept aside, the first seen stays.
    let fork = extend(fork_base.block_hash(), fork_base.time, 6, 601, REG, 2);
    let out = c.connect_headers(&fork[..5], NOW).unwrap();
    assert_eq!((out.side_branch, out.connected.len(), out.disconnected.len()), (5, 0, 0));
    assert_eq!(c.tip(), main[9].block_hash());
    assert_eq!(c.side_branch_len(), 5);
    let work_before = c.total_work();
    // One more block on the fork: it has more work now.
    let out = c.connect_headers(&fork[5..], NOW).unwrap();
    assert!(out.is_reorg());
    assert_eq!(out.fork_height(), Some(5));
    let disconnected: Vec<u32> = out.disconnected.iter().map(|d| d.0).collect();
    assert_eq!(disconnected, vec![10, 9, 8, 7, 6]);
    assert_eq!(out.disconnected[0].1, main[9].block_hash());
    let connected: Vec<(u32, BlockHash)> = out.connected.iter().map(|c| (c.height, c.hash)).collect();
    let expected: Vec<(u32, BlockHash)> =
        fork.iter().enumerate().map(|(i, h)| (6 + i as u32, h.block_hash())).collect();
    assert_eq!(connected, expected);
    assert_eq!(c.height(), 11);
    assert_eq!(c.tip(), fork[5].block_hash());
    assert!(c.total_work() > work_before);
    assert_eq!(c.side_branch_len(), 0);
    // The old branch is gone from the index; the new one is there.
    assert_eq!(c.height_of(&main[9].block_hash()), None);
    assert_eq!(c.height_of(&fork[0].block_hash()), Some(6));
    assert_eq!(c.hash_at(5), Some(main[4].block_hash()));
    // The old branch coming back with more work reorgs again.
    let longer = extend(main[9].block_hash(), main[9].time, 2, 600, REG, 3);
    let mut back = main[5..].to_vec();
    back.extend(longer);
    let out = c.connect_headers(&back, NOW).unwrap();
    assert_eq!(out.disconnected.len(), 6);
    assert_eq!(out.connected.len(), 7);
    assert_eq!(c.height(), 12);
    assert_eq!(c.height_of(&main[9].block_hash()), Some(10));
}

#[test]
fn a_single_batch_fork_with_more_work_reorgs_at_once() {
    let mut c = regtest();
    let main = extend(c.tip(), tip_time(&c), 3, 600, REG, 1);
    c.connect_headers(&main, NOW).unwrap();
    let fork = extend(
        c.hash_at(0).unwrap(),
        tip_time(&HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest))),
        4,
        600,
        REG,
        5,
    );
    let out = c.connect_headers(&fork, NOW).unwrap();
    assert_eq!(out.disconnected.len(), 3);
    assert_eq!(out.connected.len(), 4);
    assert_eq!(c.tip(), fork[3].block_hash());
}

#[test]
fn checkpoints_refuse_another_block_at_their_height_and_forks_below_them() {
    let params = ChainParams::new(bitcoin::Network::Regtest);
    let base = HeaderChain::new(params.clone());
    let hs = extend(base.tip(), tip_time(&base), 8, 600, REG, 1);
    let cp = Checkpoint { height: 5, hash: hs[4].block_hash() };
    let mut c = HeaderChain::new(params.with_checkpoints(vec![cp]));
    // Another block at height 5.
    let mut wrong = hs[..4].to_vec();
    wrong.extend(extend(hs[3].block_hash(), hs[3].time, 1, 600, REG, 77));
    assert!(matches!(c.connect_headers(&wrong, NOW), Err(HeaderError::CheckpointMismatch { height: 5, .. })));
    c.connect_headers(&hs, NOW).unwrap();
    // A (longer) fork from height 3, below the checkpoint.
    let fork = extend(hs[2].block_hash(), hs[2].time, 10, 600, REG, 9);
    assert_eq!(c.connect_headers(&fork, NOW), Err(HeaderError::ForkBeforeCheckpoint { height: 4, checkpoint: 5 }));
    // A fork from above it is fine.
    let fork = extend(hs[5].block_hash(), hs[5].time, 5, 600, REG, 9);
    assert!(c.connect_headers(&fork, NOW).unwrap().is_reorg());
}

/// Mines a full first period (heights 1..=2015) `spacing` seconds apart at the limit.
fn first_period_spaced(c: &mut HeaderChain, spacing: u32) -> Vec<bitcoin::block::Header> {
    let limit = pow::pow_limit_bits(c.params());
    let mut all = Vec::new();
    for _ in 0..2 {
        let (tip, t) = (c.tip(), tip_time(c));
        let n = (2015 - c.height() as usize).min(2000);
        let hs = extend(tip, t, n, spacing, limit, 3);
        c.connect_headers(&hs, NOW).unwrap();
        all.extend(hs);
    }
    assert_eq!(c.height(), 2015);
    all
}

/// [`first_period_spaced`] 60 s apart.
fn first_period(c: &mut HeaderChain) -> Vec<bitcoin::block::Header> {
    first_period_spaced(c, 60)
}

#[test]
fn mainnet_rules_retarget_at_2016_with_the_four_times_clamp() {
    let mut c = HeaderChain::new(easy(bitcoin::Network::Bitcoin));
    first_period(&mut c);
    // 2015 blocks 60 s apart: a tenth of the timespan, clamped to a quarter: target / 4.
    let expected = 0x201f_ffff;
    let wrong = mine(c.tip(), tip_time(&c) + 60, REG, 1);
    assert_eq!(
        c.connect_headers(&[wrong], NOW),
        Err(HeaderError::BadDifficulty { hash: wrong.block_hash(), height: 2016, expected, got: REG })
    );
    let right = mine(c.tip(), tip_time(&c) + 60, expected, 1);
    c.connect_headers(&[right], NOW).unwrap();
    // Between retargets the bits stay; mainnet has no 20-minute rule.
    let late_min = mine(c.tip(), tip_time(&c) + 3600, REG, 1);
    assert!(matches!(c.connect_headers(&[late_min], NOW), Err(HeaderError::BadDifficulty { .. })));
}

#[test]
fn testnet3_allows_the_minimum_after_20_minutes_and_walks_back_after() {
    let mut c = HeaderChain::new(easy(bitcoin::Network::Testnet));
    first_period(&mut c);
    let real = 0x201f_ffff;
    c.connect_headers(&[mine(c.tip(), tip_time(&c) + 60, real, 1)], NOW).unwrap(); // 2016
    // 2017: more than 20 minutes after its parent, the minimum is allowed.
    c.connect_headers(&[mine(c.tip(), tip_time(&c) + 1201, REG, 1)], NOW).unwrap();
    // 2018: within 20 minutes, the bits of the last block not at the minimum (2016's).
    let min_again = mine(c.tip(), tip_time(&c) + 1200, REG, 2);
    assert!(
        matches!(c.connect_headers(&[min_again], NOW), Err(HeaderError::BadDifficulty { expected, .. }) if expected == real)
    );
    c.connect_headers(&[mine(c.tip(), tip_time(&c) + 1200, real, 2)], NOW).unwrap();
    assert_eq!(c.height(), 2018);
}

#[test]
fn testnet4_bip94_refuses_a_timewarp_at_the_period_start() {
    // 150 s apart: the median time past is 750 s below the tip, and the retarget still clamps.
    let mut c = HeaderChain::new(easy(bitcoin::Network::Testnet4));
    first_period_spaced(&mut c, 150);
    let bits = 0x201f_ffff;
    // More than 600 s before the parent: refused (the median time past is far below).
    let warped = mine(c.tip(), tip_time(&c) - 601, bits, 1);
    assert!(matches!(c.connect_headers(&[warped], NOW), Err(HeaderError::TimeWarp { height: 2016, .. })));
    // 600 s before is allowed.
    let ok = mine(c.tip(), tip_time(&c) - 600, bits, 1);
    c.connect_headers(&[ok], NOW).unwrap();
    // Mainnet rules would take that warp.
    let mut m = HeaderChain::new(easy(bitcoin::Network::Bitcoin));
    first_period_spaced(&mut m, 150);
    m.connect_headers(&[mine(m.tip(), tip_time(&m) - 601, bits, 1)], NOW).unwrap();
}

#[test]
fn real_mainnet_headers_connect_to_genesis() {
    let h1: bitcoin::block::Header = bitcoin::consensus::encode::deserialize_hex(
        "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299",
    )
    .unwrap();
    let h2: bitcoin::block::Header = bitcoin::consensus::encode::deserialize_hex(
        "010000004860eb18bf1b1620e37e9490fc8a427514416fd75159ab86688e9a8300000000d5fdcc541e25de1c7a5addedf24858b8bb665c9f36ef744ee42c316022c90f9bb0bc6649ffff001d08d2bd61",
    )
    .unwrap();
    assert_eq!(h1.block_hash().to_string(), "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048");
    let mut c = HeaderChain::new(ChainParams::new(bitcoin::Network::Bitcoin));
    let out = c.connect_headers(&[h1, h2], NOW).unwrap();
    assert_eq!(out.connected.len(), 2);
    assert_eq!(c.tip().to_string(), "000000006a625f06636b8bb6ac7b960a8d03705d1ace08b1a19da3fdcc99ddbd");
    // Each block of difficulty 1 adds 2^32 + 1 hashes of work... (0x100010001 exactly).
    assert_eq!(&c.total_work().to_be_bytes()[24..], &[0, 0, 0, 3, 0, 3, 0, 3]);
    // A block dated more than two hours after "now" is refused.
    let mut c = HeaderChain::new(ChainParams::new(bitcoin::Network::Bitcoin));
    assert!(matches!(c.connect_headers(&[h1], u64::from(h1.time) - 7201), Err(HeaderError::TimeTooNew { .. })));
}

#[test]
fn a_chain_from_a_checkpoint_extends_and_refuses_bad_starts() {
    let params = ChainParams::new(bitcoin::Network::Regtest);
    let base = HeaderChain::new(params.clone());
    let hs = extend(base.tip(), tip_time(&base), 10, 600, REG, 1);
    let mut c = HeaderChain::from_checkpoint(params, 5, hs[4]).unwrap();
    assert_eq!((c.start_height(), c.height()), (5, 5));
    c.connect_headers(&hs[5..], NOW).unwrap();
    assert_eq!(c.height(), 10);
    assert_eq!(c.hash_at(4), None);
    assert_eq!(c.locator().last(), Some(&hs[4].block_hash()));
    assert!(matches!(
        HeaderChain::from_checkpoint(ChainParams::new(bitcoin::Network::Bitcoin), 5, hs[4]),
        Err(HeaderError::StartNotAtRetarget { height: 5, interval: 2016 })
    ));
}

#[test]
fn side_branches_are_bounded() {
    let mut c = regtest();
    let main = extend(c.tip(), tip_time(&c), 20, 600, REG, 1);
    c.connect_headers(&main, NOW).unwrap();
    // Many one-block forks of equal or less work.
    for i in 0..60u64 {
        let fork = extend(main[9].block_hash(), main[9].time, 1, 600, REG, 1000 + i);
        c.connect_headers(&fork, NOW).unwrap();
    }
    assert_eq!(c.side_branch_len(), 60);
    assert!(c.side_branch_len() <= super::headers::MAX_SIDE_HEADERS);
}

#[test]
fn the_chain_holds_about_fifty_bytes_a_header() {
    let mut c = regtest();
    for _ in 0..10 {
        let hs = extend(c.tip(), tip_time(&c), 2000, 600, REG, c.height() as u64);
        c.connect_headers(&hs, NOW).unwrap();
    }
    assert_eq!(c.height(), 20_000);
    // 40 bytes an entry and a 4-byte slot index at most half full, with vector slack:
    // at most 2 x 40 + 16 bytes a header (930,000 headers measure 54 bytes a header).
    let per_header = c.heap_bytes() / 20_000;
    assert!(per_header <= 96, "{per_header} bytes a header");
    assert_eq!(c.height_of(&c.hash_at(12_345).unwrap()), Some(12_345));
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Headers made of arbitrary bytes, on a real chain tip or not: an error or an outcome,
        /// never a panic, and the chain stays consistent.
        #[test]
        fn arbitrary_headers_never_panic(raw in proptest::collection::vec(any::<[u8; 80]>(), 0..20), link in any::<bool>(), bits in any::<u32>()) {
            let mut c = regtest();
            c.connect_headers(&extend(c.tip(), tip_time(&c), 3, 600, REG, 1), NOW).unwrap();
            let mut prev = c.tip();
            let headers: Vec<bitcoin::block::Header> = raw
                .iter()
                .map(|b| {
                    let mut h: bitcoin::block::Header = bitcoin::consensus::deserialize(b).unwrap();
                    if link {
                        h.prev_blockhash = prev;
                        h.bits = bitcoin::CompactTarget::from_consensus(bits);
                        prev = h.block_hash();
                    }
                    h
                })
                .collect();
            let height = c.height();
            if let Ok(out) = c.connect_headers(&headers, NOW) {
                prop_assert_eq!(c.height() as usize, height as usize + out.connected.len() - out.disconnected.len());
            }
            prop_assert_eq!(c.height_of(&c.tip()), Some(c.height()));
        }

        /// Arbitrary cfheaders against a real chain: never a panic.
        #[test]
        fn arbitrary_cfheaders_never_panic(count in 0usize..40, stop in 0u32..8, prev in any::<[u8; 32]>(), ty in 0u8..2) {
            use bitcoin::bip158::{FilterHash, FilterHeader};
            let mut c = regtest();
            c.connect_headers(&extend(c.tip(), tip_time(&c), 5, 600, REG, 1), NOW).unwrap();
            let mut f = super::super::filters::FilterHeaderChain::new();
            let msg = bitcoin::p2p::message_filter::CFHeaders {
                filter_type: ty,
                stop_hash: c.hash_at(stop).unwrap_or(BlockHash::all_zeros()),
                previous_filter_header: FilterHeader::from_byte_array(prev),
                filter_hashes: (0..count).map(|i| FilterHash::hash(&[i as u8])).collect(),
            };
            let _ = f.connect_cfheaders(&msg, &c);
            prop_assert!(f.height().unwrap_or(0) <= c.height());
        }
    }
}

mod reorgs {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        /// Any sequence of extensions and reorgs: every main-chain block is found by its hash at
        /// its height, every block taken off is not, and the work only grows.
        #[test]
        fn the_index_follows_any_sequence_of_reorgs(steps in proptest::collection::vec((0u32..40, 1usize..60), 1..25)) {
            let mut c = regtest();
            let mut gone: Vec<BlockHash> = Vec::new();
            let mut salt = 0u64;
            for (depth, len) in steps {
                salt += 1;
                let fork = c.height().saturating_sub(depth);
                let base_time = c.time_at(fork).unwrap();
                let hs = extend(c.hash_at(fork).unwrap(), base_time, len, 600, REG, salt * 7919);
                let work = c.total_work();
                let out = c.connect_headers(&hs, NOW).unwrap();
                prop_assert!(c.total_work() >= work);
                gone.extend(out.disconnected.iter().map(|d| d.1));
                gone.retain(|h| c.height_of(h).is_none());
            }
            for h in 0..=c.height() {
                prop_assert_eq!(c.height_of(&c.hash_at(h).unwrap()), Some(h));
            }
            for g in &gone {
                prop_assert_eq!(c.height_of(g), None);
            }
            let tip = c.tip();
            prop_assert_eq!(c.locator().first().copied(), Some(tip));
        }
    }
}
