//! The sync planner driven against simulated peers on simulated time.

use std::time::{Duration, Instant};

use bitcoin::bip158::{FilterHash, FilterHeader};
use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::p2p::message_filter::{CFHeaders, CFilter};

use super::filters::{FilterHeaderChain, chain_filter_headers};
use super::headers::HeaderChain;
use super::params::ChainParams;
use super::sync::{PeerId, SyncConfig, SyncPhase, SyncPlanner, SyncRequest};
use super::testutil::{NOW, extend};

/// What a serving peer has: headers after genesis, and a filter per height.
struct Server {
    headers: Vec<Header>,
    salt: u8,
}

impl Server {
    fn new(n: usize) -> Server {
        let g = ChainParams::new(bitcoin::Network::Regtest).genesis;
        Server { headers: extend(g.block_hash(), g.time, n, 600, 0x207f_ffff, 1), salt: 0 }
    }
    fn hash_at(&self, h: u32) -> bitcoin::BlockHash {
        if h == 0 {
            ChainParams::new(bitcoin::Network::Regtest).genesis_hash()
        } else {
            self.headers[h as usize - 1].block_hash()
        }
    }
    fn height_of(&self, hash: &bitcoin::BlockHash) -> Option<u32> {
        (0..=self.headers.len() as u32).find(|h| self.hash_at(*h) == *hash)
    }
    fn filter(&self, h: u32) -> Vec<u8> {
        let hash = self.hash_at(h);
        vec![1, self.salt, hash[0], hash[1]]
    }
    fn answer_headers(&self, locator: &[bitcoin::BlockHash]) -> Vec<Header> {
        let from = locator.iter().find_map(|h| self.height_of(h)).unwrap_or(0) as usize;
        self.headers.iter().skip(from).take(2000).copied().collect()
    }
    fn answer_cfheaders(&self, start: u32, stop_hash: bitcoin::BlockHash) -> CFHeaders {
        let stop = self.height_of(&stop_hash).unwrap();
        let hashes: Vec<FilterHash> = (0..=stop).map(|h| FilterHash::hash(&self.filter(h))).collect();
        let all = chain_filter_headers(FilterHeader::all_zeros(), &hashes);
        let prev = if start == 0 { FilterHeader::all_zeros() } else { all[start as usize - 1] };
        CFHeaders {
            filter_type: 0,
            stop_hash,
            previous_filter_header: prev,
            filter_hashes: hashes[start as usize..].to_vec(),
        }
    }
}

struct Client {
    chain: HeaderChain,
    filters: FilterHeaderChain,
    plan: SyncPlanner,
    now: Instant,
    sent: Vec<(PeerId, SyncRequest)>,
}

impl Client {
    fn new(config: SyncConfig) -> Client {
        Client {
            chain: HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest)),
            filters: FilterHeaderChain::new(),
            plan: SyncPlanner::new(config),
            now: Instant::now(),
            sent: Vec::new(),
        }
    }

    /// Answers every request from `server`, except those to `silent` peers; returns how many
    /// rounds it took to reach Synced.
    fn run(&mut self, server: &Server, silent: &[PeerId]) -> usize {
        for round in 0..200 {
            if self.plan.phase(&self.chain, &self.filters) == SyncPhase::Synced {
                return round;
            }
            let reqs = self.plan.next_requests(self.now, &self.chain, &self.filters);
            self.sent.extend(reqs.iter().cloned());
            for (peer, req) in reqs {
                if silent.contains(&peer) {
                    continue;
                }
                self.answer(server, peer, req);
            }
            self.now += Duration::from_secs(1);
            for p in self.plan.stalled(self.now) {
                self.plan.remove_peer(p);
            }
        }
        panic!("not synced after 200 rounds: {:?}", self.plan.phase(&self.chain, &self.filters));
    }

    fn answer(&mut self, server: &Server, peer: PeerId, req: SyncRequest) {
        match req {
            SyncRequest::Headers { locator } => {
                let hs = server.answer_headers(&locator);
                let out = self.chain.connect_headers(&hs, NOW).unwrap();
                if let Some(fork) = out.fork_height().filter(|_| out.is_reorg()) {
                    self.filters.truncate(Some(fork));
                    self.plan.reorged(fork);
                }
                self.plan.headers_received(peer, hs.len());
            }
            SyncRequest::FilterCheckpoints { .. } => self.plan.checkpoints_received(peer),
            SyncRequest::FilterHeaders { start_height, stop_hash } => {
                assert!(self.chain.height_of(&stop_hash).unwrap() - start_height < 2000);
                let msg = server.answer_cfheaders(start_height, stop_hash);
                // The second peer's answer for a range agrees: all already known.
                self.filters.connect_cfheaders(&msg, &self.chain).unwrap();
                self.plan.filter_headers_received(peer);
            }
            SyncRequest::Filters { start_height, stop_height, stop_hash } => {
                assert!(stop_height - start_height < 1000);
                assert_eq!(self.chain.hash_at(stop_height), Some(stop_hash));
                for h in start_height..=stop_height {
                    let msg = CFilter { filter_type: 0, block_hash: server.hash_at(h), filter: server.filter(h) };
                    assert_eq!(self.filters.check_filter(&msg, &self.chain), Ok(h));
                    self.plan.filter_received(peer, h);
                }
            }
        }
    }
}

#[test]
fn two_peers_sync_headers_then_filter_headers_then_every_filter() {
    let server = Server::new(4500);
    let mut c = Client::new(SyncConfig::default());
    c.plan.add_peer(1, 4500);
    c.plan.add_peer(2, 4500);
    c.run(&server, &[]);
    assert_eq!(c.chain.height(), 4500);
    assert_eq!(c.filters.height(), Some(4500));
    assert_eq!(c.plan.filters_height(), 4501);
    // Headers were asked three times of one peer (2000, 2000, 500) and once of the other.
    let headers = c.sent.iter().filter(|(_, r)| matches!(r, SyncRequest::Headers { .. })).count();
    assert_eq!(headers, 4);
    // Every peer was asked for its checkpoints; filter headers came in 3 ranges, each asked of
    // both peers (cross-checked: the second answer agreed).
    assert_eq!(c.sent.iter().filter(|(_, r)| matches!(r, SyncRequest::FilterCheckpoints { .. })).count(), 2);
    let ranges: Vec<(PeerId, u32)> = c
        .sent
        .iter()
        .filter_map(|(p, r)| match r {
            SyncRequest::FilterHeaders { start_height, .. } => Some((*p, *start_height)),
            _ => None,
        })
        .collect();
    assert_eq!(ranges, vec![(1, 0), (2, 0), (1, 2000), (2, 2000), (1, 4000), (2, 4000)]);
    // Filters were spread over both peers.
    let filters_to = |p| c.sent.iter().filter(|(id, r)| *id == p && matches!(r, SyncRequest::Filters { .. })).count();
    assert!(filters_to(1) > 0 && filters_to(2) > 0);
}

#[test]
fn filter_batches_respect_the_in_flight_limits() {
    let server = Server::new(6000);
    let mut c = Client::new(SyncConfig::default());
    c.plan.add_peer(1, 6000);
    // Headers and filter headers first.
    while c.plan.phase(&c.chain, &c.filters) != SyncPhase::Filters {
        for (p, r) in c.plan.next_requests(c.now, &c.chain, &c.filters) {
            assert!(!matches!(r, SyncRequest::Filters { .. }) || c.filters.height().is_some());
            if matches!(r, SyncRequest::Filters { .. }) {
                continue; // Left unanswered for now.
            }
            c.answer(&server, p, r);
        }
    }
    let in_flight = c.plan.next_requests(c.now, &c.chain, &c.filters);
    // The per-peer limit (2), counting a batch possibly sent above.
    assert!(in_flight.len() <= 2);
    let mut c2 = Client::new(SyncConfig::default().with_filters_in_flight(5, 3));
    c2.chain = c.chain.clone();
    c2.filters = c.filters.clone();
    for p in 1..=4 {
        c2.plan.add_peer(p, 6000);
        c2.plan.headers_received(p, 0);
        c2.plan.checkpoints_received(p);
    }
    let _ = c2.plan.next_requests(c2.now, &c2.chain, &c2.filters); // the checkpoints
    for p in 1..=4 {
        c2.plan.checkpoints_received(p);
    }
    let reqs = c2.plan.next_requests(c2.now, &c2.chain, &c2.filters);
    let batches: Vec<(u32, u32)> = reqs
        .iter()
        .filter_map(|(_, r)| match r {
            SyncRequest::Filters { start_height, stop_height, .. } => Some((*start_height, *stop_height)),
            _ => None,
        })
        .collect();
    assert_eq!(batches, vec![(0, 999), (1000, 1999), (2000, 2999)]);
}

#[test]
fn a_lying_peers_filter_headers_conflict_with_the_honest_answer_for_the_same_range() {
    use super::filters::FilterError;
    let server = Server::new(100);
    let liar = Server { headers: server.headers.clone(), salt: 9 };
    let mut c = Client::new(SyncConfig::default());
    c.plan.add_peer(1, 100);
    c.plan.add_peer(2, 100);
    loop {
        let reqs = c.plan.next_requests(c.now, &c.chain, &c.filters);
        let fh: Vec<_> = reqs.iter().filter(|(_, r)| matches!(r, SyncRequest::FilterHeaders { .. })).cloned().collect();
        if !fh.is_empty() {
            assert_eq!(fh.len(), 2);
            let SyncRequest::FilterHeaders { start_height, stop_hash } = fh[0].1.clone() else { unreachable!() };
            let honest = server.answer_cfheaders(start_height, stop_hash);
            let lie = liar.answer_cfheaders(start_height, stop_hash);
            c.filters.connect_cfheaders(&honest, &c.chain).unwrap();
            // The liar's answer differs from the first height on.
            assert_eq!(c.filters.connect_cfheaders(&lie, &c.chain), Err(FilterError::Conflict { height: 0 }));
            assert_eq!(super::crosscheck::first_divergence(&honest, &lie, 100), super::crosscheck::Divergence::At(0));
            break;
        }
        for (p, r) in reqs {
            c.answer(&server, p, r);
        }
    }
}

#[test]
fn a_stalled_peer_is_reported_and_its_filters_go_to_another() {
    let server = Server::new(2500);
    let mut c = Client::new(SyncConfig::default());
    c.plan.add_peer(1, 2500);
    c.plan.add_peer(2, 2500);
    // Peer 2 never answers: it stalls after 30 s, is dropped, and peer 1 does everything.
    c.run(&server, &[2]);
    assert_eq!(c.plan.peer_count(), 1);
    assert_eq!(c.plan.filters_height(), 2501);
    assert_eq!(c.filters.height(), Some(2500));
    // Nothing is left in flight.
    assert_eq!(c.plan.poll_timeout(), None);
}

#[test]
fn the_deadline_is_the_oldest_request_plus_the_timeout() {
    let mut c = Client::new(SyncConfig::default());
    c.plan.add_peer(1, 10);
    let t0 = c.now;
    let reqs = c.plan.next_requests(t0, &c.chain, &c.filters);
    assert_eq!(reqs.len(), 1);
    assert_eq!(c.plan.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    assert!(c.plan.stalled(t0 + Duration::from_secs(29)).is_empty());
    assert_eq!(c.plan.stalled(t0 + Duration::from_secs(30)), vec![1]);
}

#[test]
fn after_a_reorg_the_sync_restarts_from_the_fork() {
    let mut server = Server::new(1500);
    let mut c = Client::new(SyncConfig::default());
    c.plan.add_peer(1, 1500);
    c.run(&server, &[]);
    let old_tip = c.chain.tip();
    // The server reorgs from height 1200 onto a longer branch with other filters.
    let base = server.headers[1199];
    let branch = extend(base.block_hash(), base.time, 400, 601, 0x207f_ffff, 7);
    server.headers.truncate(1200);
    server.headers.extend(branch);
    c.plan.peer_announced(1, 1600);
    c.run(&server, &[]);
    assert_ne!(c.chain.tip(), old_tip);
    assert_eq!(c.chain.height(), 1600);
    assert_eq!(c.filters.height(), Some(1600));
    assert_eq!(c.plan.filters_height(), 1601);
    // Filters above the fork were fetched again: some batch starts at 1201.
    assert!(c.sent.iter().any(|(_, r)| matches!(
        r,
        SyncRequest::Filters { start_height: 1201, .. } | SyncRequest::Filters { start_height: 1000, .. }
    )));
}

#[test]
fn filters_start_at_the_wallet_birthday() {
    let server = Server::new(3000);
    let mut c = Client::new(SyncConfig::default().with_filters_from(2500));
    c.plan.add_peer(1, 3000);
    c.run(&server, &[]);
    let first = c
        .sent
        .iter()
        .find_map(|(_, r)| match r {
            SyncRequest::Filters { start_height, .. } => Some(*start_height),
            _ => None,
        })
        .unwrap();
    assert_eq!(first, 2500);
    assert_eq!(c.plan.filters_height(), 3001);
}

mod shuffled {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Answers delivered in any order, some held back a round, one peer possibly silent:
        /// the sync still ends with every filter received, and no batch is ever above the limits.
        #[test]
        fn any_answer_order_still_syncs(seed in any::<u64>(), silent in 0u64..4, n in 1usize..3500) {
            let server = Server::new(n);
            let mut c = Client::new(SyncConfig::default());
            for p in 1..=3 {
                c.plan.add_peer(p, n as u32);
            }
            let mut rng = seed;
            let mut next = |m: usize| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng % m.max(1) as u64) as usize
            };
            let mut held: Vec<(PeerId, SyncRequest)> = Vec::new();
            let mut synced = false;
            for _ in 0..400 {
                if c.plan.phase(&c.chain, &c.filters) == SyncPhase::Synced {
                    synced = true;
                    break;
                }
                let mut reqs = c.plan.next_requests(c.now, &c.chain, &c.filters);
                for (_, r) in &reqs {
                    if let SyncRequest::Filters { start_height, stop_height, .. } = r {
                        prop_assert!(stop_height - start_height < 1000);
                    }
                }
                reqs.append(&mut held);
                // Shuffle, and hold some back for a round.
                for i in (1..reqs.len()).rev() {
                    let j = next(i + 1);
                    reqs.swap(i, j);
                }
                for (peer, req) in reqs {
                    if peer == silent {
                        continue;
                    }
                    if next(4) == 0 {
                        held.push((peer, req));
                        continue;
                    }
                    c.answer(&server, peer, req);
                }
                c.now += Duration::from_secs(3);
                for p in c.plan.stalled(c.now) {
                    c.plan.remove_peer(p);
                    held.retain(|(id, _)| *id != p);
                }
            }
            prop_assert!(synced, "not synced: {:?}", c.plan.phase(&c.chain, &c.filters));
            prop_assert_eq!(c.plan.filters_height(), n as u32 + 1);
            prop_assert_eq!(c.filters.height(), Some(n as u32));
        }
    }
}

/// The filter batches `reqs` asks for: (peer, start, stop).
fn batches(reqs: &[(PeerId, SyncRequest)]) -> Vec<(PeerId, u32, u32)> {
    reqs.iter()
        .filter_map(|(p, r)| match r {
            SyncRequest::Filters { start_height, stop_height, .. } => Some((*p, *start_height, *stop_height)),
            _ => None,
        })
        .collect()
}

/// Answers every request but filters until the planner is in the filters phase.
fn to_filters_phase(c: &mut Client, server: &Server) {
    for _ in 0..50 {
        if c.plan.phase(&c.chain, &c.filters) == SyncPhase::Filters {
            return;
        }
        for (p, r) in c.plan.next_requests(c.now, &c.chain, &c.filters) {
            if !matches!(r, SyncRequest::Filters { .. }) {
                c.answer(server, p, r);
            } else {
                c.sent.push((p, r));
            }
        }
    }
    panic!("never reached the filters phase");
}

#[test]
fn a_peer_behind_a_range_is_not_asked_for_its_filter_headers_filters_or_later_checkpoints() {
    let server = Server::new(2500);
    let mut c = Client::new(SyncConfig::default().with_filters_batch(500));
    c.plan.add_peer(1, 2500);
    c.plan.add_peer(2, 2500);
    // Peer 2 turned out to have our chain only up to 1200 (another branch above).
    c.plan.set_peer_height(2, 1200);
    c.run(&server, &[]);
    for (p, r) in &c.sent {
        let stop = match r {
            SyncRequest::FilterHeaders { stop_hash, .. } | SyncRequest::FilterCheckpoints { stop_hash } => {
                c.chain.height_of(stop_hash).unwrap()
            }
            SyncRequest::Filters { stop_height, .. } => *stop_height,
            SyncRequest::Headers { .. } => 0,
        };
        assert!(*p == 1 || stop <= 1200, "{r:?} asked of peer 2");
    }
    // Peer 2 was still used where it has the blocks.
    assert!(batches(&c.sent).iter().any(|(p, _, _)| *p == 2));
    assert_eq!(c.plan.filters_height(), 2501);
}

#[test]
fn batches_given_back_are_asked_again_lowest_first() {
    let server = Server::new(3000);
    let mut c = Client::new(SyncConfig::default().with_filters_batch(1000));
    c.plan.add_peer(1, 3000);
    to_filters_phase(&mut c, &server);
    let first = batches(&c.sent);
    assert_eq!(first, vec![(1, 0, 999), (1, 1000, 1999)]);
    // The driver could not use them (a block was missing): it gives them back, higher first.
    c.plan.filters_failed(1, 1000);
    c.plan.filters_failed(1, 0);
    let again = batches(&c.plan.next_requests(c.now, &c.chain, &c.filters));
    assert_eq!(again, vec![(1, 0, 999), (1, 1000, 1999)]);
}

#[test]
fn no_filter_is_asked_while_unwanted_and_a_rescan_asks_again_from_its_height() {
    let server = Server::new(1500);
    let mut c = Client::new(SyncConfig::default().with_filters_batch(400));
    c.plan.add_peer(1, 1500);
    c.plan.set_filters_wanted(false);
    for _ in 0..20 {
        for (p, r) in c.plan.next_requests(c.now, &c.chain, &c.filters) {
            c.sent.push((p, r.clone()));
            c.answer(&server, p, r);
        }
    }
    assert_eq!(c.filters.height(), Some(1500));
    assert!(batches(&c.sent).is_empty());
    c.plan.set_filters_wanted(true);
    c.run(&server, &[]);
    assert_eq!(c.plan.filters_height(), 1501);
    // Batches of the configured size, from 0.
    assert_eq!(batches(&c.sent).first(), Some(&(1, 0, 399)));
    c.plan.rescan_from(900);
    assert_eq!(c.plan.filters_height(), 900);
    let reqs = c.plan.next_requests(c.now, &c.chain, &c.filters);
    assert_eq!(batches(&reqs).first(), Some(&(1, 900, 1299)));
    for (p, r) in reqs {
        c.answer(&server, p, r);
    }
    c.run(&server, &[]);
    assert_eq!(c.plan.filters_height(), 1501);
}
