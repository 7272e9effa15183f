//! The header chain: headers from genesis (or a checkpoint), each checked as Core's
//! `CheckBlockHeader` and `ContextualCheckBlockHeader` do, fork choice by total work, reorgs
//! reported as blocks disconnected then connected, and Core's block locators.
//!
//! Memory: the main chain keeps 40 bytes a block (hash, time, bits) in one vector and a
//! 4-byte-a-slot hash index; full headers live in the [store](super::ChainStore). Side branches are
//! bounded ([`MAX_SIDE_HEADERS`]).

use std::collections::HashMap;

use bitcoin::BlockHash;
use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::pow::Work;

use super::index::HashIndex;
pub use super::outcome::{ConnectedHeader, HeaderError, HeadersOutcome};
use super::params::ChainParams;
use super::pow::{self, Link, PowError};

/// Core's `MAX_HEADERS_RESULTS`: the most headers one `headers` message carries, and the most
/// [`HeaderChain::connect_headers`] takes at once.
pub const MAX_HEADERS: usize = 2000;
/// Core's `MAX_FUTURE_BLOCK_TIME`: a header may be at most two hours ahead of adjusted time.
pub const MAX_FUTURE_BLOCK_TIME: u64 = 2 * 60 * 60;
/// The most headers kept off the main chain (competing branches that have less work for now).
/// The lowest are dropped first when there are more.
pub const MAX_SIDE_HEADERS: usize = 10_000;
/// Core's `MAX_BLOCKS_IN_LOCATOR`-era shape: locators have at most this many hashes.
const WORK_MARK_EVERY: u32 = 1024;

/// 40 bytes a block on the main chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    hash: [u8; 32],
    time: u32,
    bits: u32,
}

/// A block on a side branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SideEntry {
    header: Header,
    height: u32,
}

/// A candidate block while a batch is checked.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    hash: BlockHash,
    time: u32,
    bits: u32,
    header: Header,
}

/// A chain of block headers, validated as Core validates them, with fork choice by total
/// work. Sans-IO: the caller passes headers and the adjusted time in, and gets what changed.
///
/// The signet block signature (in the coinbase) is not checked: a header chain cannot see it;
/// signet is otherwise checked as mainnet is.
///
/// ```
/// use btcpeer_core::chain::{ChainParams, HeaderChain};
///
/// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
/// assert_eq!(chain.height(), 0);
/// assert_eq!(chain.tip(), bitcoin::constants::genesis_block(bitcoin::Network::Regtest).block_hash());
/// assert_eq!(chain.locator(), vec![chain.tip()]);
/// ```
#[derive(Clone, Debug)]
pub struct HeaderChain {
    params: ChainParams,
    base: u32,
    entries: Vec<Entry>,
    index: HashIndex,
    /// Total work at heights base, base + WORK_MARK_EVERY, …
    marks: Vec<Work>,
    tip_work: Work,
    side: HashMap<BlockHash, SideEntry>,
}

#[allow(clippy::arithmetic_side_effects)] // Work sums: each term is below 2^256 / target, see `add_work`.
fn add_work(a: Work, b: Work) -> Work {
    // Work of a valid header is at most 2^256 / (target + 1) with a target a real hash met;
    // the sum of a chain's work does not come near 2^256.
    a + b
}

impl HeaderChain {
    /// A chain holding only the network's genesis block.
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Bitcoin));
    /// assert_eq!(chain.start_height(), 0);
    /// ```
    pub fn new(params: ChainParams) -> HeaderChain {
        let genesis = params.genesis;
        HeaderChain::start_at(params, 0, &genesis)
    }

    /// A chain starting at a trusted block: `header` at `height`, which must be the first
    /// block of a retarget period (a multiple of 2,016) unless the network never retargets.
    ///
    /// Blocks below it are unknown: a fork from below is refused ([`HeaderError::BelowStart`]),
    /// the median time past of the first ten blocks after it is taken over the fewer blocks
    /// known, and [`total_work`](HeaderChain::total_work) counts from it.
    ///
    /// Errors: [`HeaderError::StartNotAtRetarget`].
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// let params = ChainParams::new(bitcoin::Network::Bitcoin);
    /// let genesis = params.genesis;
    /// assert!(HeaderChain::from_checkpoint(params.clone(), 2016, genesis).is_ok());
    /// assert!(HeaderChain::from_checkpoint(params, 2017, genesis).is_err());
    /// ```
    pub fn from_checkpoint(params: ChainParams, height: u32, header: Header) -> Result<HeaderChain, HeaderError> {
        let interval = params.difficulty_adjustment_interval();
        if !params.no_retargeting && height.checked_rem(interval).unwrap_or(0) != 0 {
            return Err(HeaderError::StartNotAtRetarget { height, interval });
        }
        Ok(HeaderChain::start_at(params, height, &header))
    }

    fn start_at(params: ChainParams, height: u32, header: &Header) -> HeaderChain {
        let entry =
            Entry { hash: header.block_hash().to_byte_array(), time: header.time, bits: header.bits.to_consensus() };
        let work = pow::work_of(entry.bits);
        let mut chain = HeaderChain {
            params,
            base: height,
            entries: vec![entry],
            index: HashIndex::new(),
            marks: vec![work],
            tip_work: work,
            side: HashMap::new(),
        };
        chain.reindex();
        chain
    }

    fn reindex(&mut self) {
        let entries = &self.entries;
        let len = entries.len();
        self.index.rebuild(len, &|i| entries.get(i as usize).map(|e| e.hash));
    }

    /// The rules this chain checks against.
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Signet));
    /// assert_eq!(chain.params().network, bitcoin::Network::Signet);
    /// ```
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The height of the first block held (0, or the checkpoint's height).
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// assert_eq!(HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest)).start_height(), 0);
    /// ```
    pub fn start_height(&self) -> u32 {
        self.base
    }

    /// The height of the tip.
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// assert_eq!(HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest)).height(), 0);
    /// ```
    pub fn height(&self) -> u32 {
        let len = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        self.base.saturating_add(len.saturating_sub(1))
    }

    /// The hash of the tip.
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// assert_eq!(chain.tip(), chain.params().genesis_hash());
    /// ```
    pub fn tip(&self) -> BlockHash {
        self.entries.last().map(|e| BlockHash::from_byte_array(e.hash)).unwrap_or_else(BlockHash::all_zeros)
    }

    fn entry(&self, height: u32) -> Option<&Entry> {
        let i = height.checked_sub(self.base)?;
        self.entries.get(usize::try_from(i).ok()?)
    }

    /// The hash of the main-chain block at `height`, `None` above the tip or below the start.
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// assert_eq!(chain.hash_at(0), Some(chain.tip()));
    /// assert_eq!(chain.hash_at(1), None);
    /// ```
    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        self.entry(height).map(|e| BlockHash::from_byte_array(e.hash))
    }

    /// The time of the main-chain block at `height`.
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Bitcoin));
    /// assert_eq!(chain.time_at(0), Some(1231006505));
    /// ```
    pub fn time_at(&self, height: u32) -> Option<u32> {
        self.entry(height).map(|e| e.time)
    }

    /// The bits (compact target) of the main-chain block at `height`.
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Bitcoin));
    /// assert_eq!(chain.bits_at(0), Some(0x1d00ffff));
    /// ```
    pub fn bits_at(&self, height: u32) -> Option<u32> {
        self.entry(height).map(|e| e.bits)
    }

    /// The height of a block on the main chain (`None` for a side branch or an unknown block).
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// assert_eq!(chain.height_of(&chain.tip()), Some(0));
    /// ```
    pub fn height_of(&self, hash: &BlockHash) -> Option<u32> {
        let entries = &self.entries;
        let i = self.index.get(hash.as_byte_array(), |i| entries.get(i as usize).map(|e| e.hash))?;
        self.base.checked_add(i)
    }

    /// Whether the block is known, on the main chain or a kept side branch.
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// assert!(chain.contains(&chain.tip()));
    /// ```
    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.height_of(hash).is_some() || self.side.contains_key(hash)
    }

    /// Total work of the main chain (from its start).
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// assert_eq!(chain.total_work().to_be_bytes()[31], 2); // regtest genesis: 2 hashes
    /// ```
    pub fn total_work(&self) -> Work {
        self.tip_work
    }

    /// Headers kept on side branches.
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// assert_eq!(HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest)).side_branch_len(), 0);
    /// ```
    pub fn side_branch_len(&self) -> usize {
        self.side.len()
    }

    /// Bytes of memory the chain holds (vectors' capacity, the index, side branches).
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// assert!(HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest)).heap_bytes() < 4096);
    /// ```
    pub fn heap_bytes(&self) -> usize {
        self.entries
            .capacity()
            .saturating_mul(std::mem::size_of::<Entry>())
            .saturating_add(self.index.heap_bytes())
            .saturating_add(self.marks.capacity().saturating_mul(std::mem::size_of::<Work>()))
            .saturating_add(
                self.side.capacity().saturating_mul(std::mem::size_of::<(BlockHash, SideEntry)>().saturating_add(1)),
            )
    }

    /// Reserves room for `additional` more main-chain blocks at once (say, the size of a
    /// saved chain before reloading it), so the chain does not grow by doubling. Capped at
    /// 2,000,000.
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// let mut chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// chain.reserve(1000);
    /// assert!(chain.heap_bytes() >= 40_000);
    /// ```
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve_exact(additional.min(2_000_000));
    }

    /// The median time past of the tip (Core's `GetMedianTimePast`: the median of the times
    /// of the tip and the ten blocks before it).
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Bitcoin));
    /// assert_eq!(chain.median_time_past(), 1231006505);
    /// ```
    pub fn median_time_past(&self) -> u32 {
        let h = self.height();
        median_time_past(h, self.base, &|x| self.entry(x).map(|e| Link { time: e.time, bits: e.bits }))
    }

    /// A block locator for the tip (Core's `LocatorEntries`): the tip, the nine blocks before
    /// it, then steps doubling back, ending with the chain's first block.
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// assert_eq!(chain.locator(), vec![chain.tip()]);
    /// ```
    pub fn locator(&self) -> Vec<BlockHash> {
        self.locator_from(self.height())
    }

    /// A block locator starting at the main-chain block at `height` (empty above the tip).
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, HeaderChain};
    /// let chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// assert!(chain.locator_from(5).is_empty());
    /// ```
    pub fn locator_from(&self, height: u32) -> Vec<BlockHash> {
        let mut have = Vec::with_capacity(32);
        if height > self.height() {
            return have;
        }
        let mut h = height;
        let mut step = 1u32;
        // Core: LocatorEntries.
        while let Some(hash) = self.hash_at(h) {
            have.push(hash);
            if h <= self.base {
                break;
            }
            h = h.saturating_sub(step).max(self.base);
            if have.len() > 10 {
                step = step.saturating_mul(2);
            }
        }
        have
    }

    /// Total work up to and including the main-chain block at `height`.
    fn work_at(&self, height: u32) -> Option<Work> {
        let rel = height.checked_sub(self.base)?;
        let k = rel.checked_div(WORK_MARK_EVERY)?;
        let mut w = *self.marks.get(usize::try_from(k).ok()?)?;
        let from = self.base.saturating_add(k.saturating_mul(WORK_MARK_EVERY)).saturating_add(1);
        for h in from..=height {
            w = add_work(w, pow::work_of(self.entry(h)?.bits));
        }
        Some(w)
    }

    /// Connects a batch of headers (at most [`MAX_HEADERS`], each building on the one before;
    /// the first on a known block). Headers already known are skipped. Each new header is
    /// checked as Core checks headers (proof of work, bits as the network's difficulty rules
    /// require, time above the median time past, at most two hours ahead of
    /// `adjusted_now_secs`, BIP94's timewarp rule on testnet4, versions, checkpoints); then the
    /// branch they make becomes the main chain if it has more total work (equal work keeps the
    /// first seen), or is kept as a side branch.
    ///
    /// Atomic: on an error nothing changes.
    ///
    /// Errors: every [`HeaderError`] but `StartNotAtRetarget`.
    ///
    /// ```
    /// use btcpeer_core::chain::{ChainParams, HeaderChain, HeaderError};
    /// use bitcoin::hashes::Hash;
    ///
    /// let mut chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
    /// let mut header = chain.params().genesis;
    /// header.prev_blockhash = bitcoin::BlockHash::all_zeros();
    /// header.time += 1;
    /// assert!(matches!(chain.connect_headers(&[header], 2_000_000_000), Err(HeaderError::UnknownPrevious { .. })));
    /// assert_eq!(chain.connect_headers(&[], 0).unwrap().connected.len(), 0);
    /// ```
    pub fn connect_headers(
        &mut self,
        headers: &[Header],
        adjusted_now_secs: u64,
    ) -> Result<HeadersOutcome, HeaderError> {
        let mut outcome = HeadersOutcome::default();
        if headers.len() > MAX_HEADERS {
            return Err(HeaderError::TooMany { count: headers.len() });
        }
        let hashes: Vec<BlockHash> = headers.iter().map(|h| h.block_hash()).collect();
        for (index, (pair, hashes)) in headers.windows(2).zip(hashes.windows(2)).enumerate() {
            if let ([_, b], [a_hash, _]) = (pair, hashes) {
                if b.prev_blockhash != *a_hash {
                    return Err(HeaderError::NotContinuous { index: index.saturating_add(1) });
                }
            }
        }
        let known = hashes.iter().take_while(|h| self.contains(h)).count();
        outcome.already_known = known;
        let (Some(new), Some(new_hashes)) = (headers.get(known..), hashes.get(known..)) else {
            return Ok(outcome);
        };
        let Some(first) = new.first() else {
            return Ok(outcome);
        };

        // The branch: main chain up to `fork`, then side entries, then the new headers.
        let prev = first.prev_blockhash;
        let (fork, mut branch) = if let Some(h) = self.height_of(&prev) {
            (h, Vec::new())
        } else if self.side.contains_key(&prev) {
            self.side_path(prev)?
        } else {
            return Err(HeaderError::UnknownPrevious { prev });
        };
        let first_height = fork.saturating_add(1);
        if fork < self.height() {
            // Core: ContextualCheckBlockHeader, bad-fork-prior-to-checkpoint.
            if let Some(cp) = self.params.last_checkpoint_at_or_below(self.height()) {
                if first_height < cp.height {
                    return Err(HeaderError::ForkBeforeCheckpoint { height: first_height, checkpoint: cp.height });
                }
            }
        }
        for (header, hash) in new.iter().zip(new_hashes) {
            let height = first_height.saturating_add(u32::try_from(branch.len()).unwrap_or(u32::MAX));
            let candidate =
                Candidate { hash: *hash, time: header.time, bits: header.bits.to_consensus(), header: *header };
            self.check_header(header, *hash, height, fork, &branch, adjusted_now_secs)?;
            branch.push(candidate);
        }

        // Fork choice by total work.
        let mut branch_work = self.work_at(fork).ok_or(HeaderError::BelowStart { height: fork })?;
        for c in &branch {
            branch_work = add_work(branch_work, pow::work_of(c.bits));
        }
        if fork == self.height() || branch_work > self.tip_work {
            self.disconnect_above(fork, &mut outcome);
            for c in branch {
                self.side.remove(&c.hash);
                self.push(c.hash, c.time, c.bits);
                outcome.connected.push(ConnectedHeader { height: self.height(), hash: c.hash, header: c.header });
            }
        } else {
            let start = branch.len().saturating_sub(new.len());
            for (i, c) in branch.iter().enumerate().skip(start) {
                let height = first_height.saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
                self.side.insert(c.hash, SideEntry { header: c.header, height });
            }
            outcome.side_branch = new.len();
            self.prune_side();
        }
        Ok(outcome)
    }

    /// The side entries from the main chain up to `tip` (a side block), lowest first, and the
    /// main-chain height they fork from.
    fn side_path(&self, tip: BlockHash) -> Result<(u32, Vec<Candidate>), HeaderError> {
        let mut path = Vec::new();
        let mut at = tip;
        for _ in 0..=self.side.len() {
            if let Some(h) = self.height_of(&at) {
                path.reverse();
                return Ok((h, path));
            }
            let Some(e) = self.side.get(&at) else {
                return Err(HeaderError::UnknownPrevious { prev: at });
            };
            path.push(Candidate {
                hash: at,
                time: e.header.time,
                bits: e.header.bits.to_consensus(),
                header: e.header,
            });
            at = e.header.prev_blockhash;
        }
        Err(HeaderError::UnknownPrevious { prev: at })
    }

    /// Checks one header at `height`, whose ancestors are the main chain up to `fork` then
    /// `branch`.
    fn check_header(
        &self,
        header: &Header,
        hash: BlockHash,
        height: u32,
        fork: u32,
        branch: &[Candidate],
        adjusted_now: u64,
    ) -> Result<(), HeaderError> {
        let params = &self.params;
        let ancestor = |h: u32| -> Option<Link> {
            if h <= fork {
                self.entry(h).map(|e| Link { time: e.time, bits: e.bits })
            } else {
                let i = h.checked_sub(fork)?.checked_sub(1)?;
                branch.get(usize::try_from(i).ok()?).map(|c| Link { time: c.time, bits: c.bits })
            }
        };
        let bits = header.bits.to_consensus();
        // Core: CheckBlockHeader → CheckProofOfWork.
        if let Err(e) = pow::check_proof_of_work(hash, bits, params) {
            let reason = match e {
                PowError::BadBits(b) => format!("bits {b:#010x} are not a valid target"),
                PowError::AbovePowLimit(b) => format!("bits {b:#010x} are above the proof-of-work limit"),
                PowError::HashAboveTarget(b) => format!("hash above the target of bits {b:#010x}"),
            };
            return Err(HeaderError::BadProofOfWork { hash, height, reason });
        }
        let parent_height = height.checked_sub(1).ok_or(HeaderError::BelowStart { height })?;
        let parent = ancestor(parent_height).ok_or(HeaderError::BelowStart { height: parent_height })?;
        // Core: ContextualCheckBlockHeader, bad-diffbits (GetNextWorkRequired).
        let expected = pow::next_work_required(params, parent_height, parent, header.time, &ancestor)
            .ok_or(HeaderError::BelowStart { height: parent_height })?;
        if bits != expected {
            return Err(HeaderError::BadDifficulty { hash, height, expected, got: bits });
        }
        // Core: checkpoint mismatch (once in ContextualCheckBlockHeader via the block index).
        if let Some(expected) = params.checkpoint_at(height) {
            if expected != hash {
                return Err(HeaderError::CheckpointMismatch { height, expected, got: hash });
            }
        }
        // Core: time-too-old.
        let median = median_time_past(parent_height, self.base, &ancestor);
        if header.time <= median {
            return Err(HeaderError::TimeTooOld { hash, height, time: header.time, median });
        }
        // Core: BIP94 time-timewarp-attack.
        if params.enforce_bip94
            && height.checked_rem(params.difficulty_adjustment_interval()).unwrap_or(1) == 0
            && header.time < parent.time.saturating_sub(pow::MAX_TIMEWARP)
        {
            return Err(HeaderError::TimeWarp { hash, height, time: header.time, parent_time: parent.time });
        }
        // Core: time-too-new.
        if u64::from(header.time) > adjusted_now.saturating_add(MAX_FUTURE_BLOCK_TIME) {
            return Err(HeaderError::TimeTooNew { hash, height, time: header.time, now: adjusted_now });
        }
        // Core: bad-version (BIP34, BIP66, BIP65).
        let v = header.version.to_consensus();
        if (v < 2 && height >= params.bip34_height)
            || (v < 3 && height >= params.bip66_height)
            || (v < 4 && height >= params.bip65_height)
        {
            return Err(HeaderError::BadVersion { hash, height, version: v });
        }
        Ok(())
    }

    /// Takes every main-chain block above `height` off. They are forgotten (the chain keeps no
    /// full header of them): a peer on that branch sends them again from the fork point, as a
    /// locator makes it.
    fn disconnect_above(&mut self, height: u32, outcome: &mut HeadersOutcome) {
        while self.height() > height && self.entries.len() > 1 {
            let h = self.height();
            let Some(e) = self.entries.pop() else { break };
            outcome.disconnected.push((h, BlockHash::from_byte_array(e.hash)));
        }
        self.tip_work = self.work_at(self.height()).unwrap_or(self.tip_work);
        let keep = usize::try_from(self.height().saturating_sub(self.base).checked_div(WORK_MARK_EVERY).unwrap_or(0))
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        self.marks.truncate(keep);
        self.prune_side();
    }

    fn push(&mut self, hash: BlockHash, time: u32, bits: u32) {
        self.entries.push(Entry { hash: hash.to_byte_array(), time, bits });
        self.tip_work = add_work(self.tip_work, pow::work_of(bits));
        let rel = self.height().saturating_sub(self.base);
        if rel.checked_rem(WORK_MARK_EVERY) == Some(0) {
            self.marks.push(self.tip_work);
        }
        let idx = u32::try_from(self.entries.len().saturating_sub(1)).unwrap_or(u32::MAX);
        let entries = &self.entries;
        self.index.insert(hash.as_byte_array(), idx, entries.len(), |i| entries.get(i as usize).map(|e| e.hash));
    }

    /// Keeps at most [`MAX_SIDE_HEADERS`] side headers, dropping the lowest.
    fn prune_side(&mut self) {
        if self.side.len() <= MAX_SIDE_HEADERS {
            return;
        }
        let mut heights: Vec<u32> = self.side.values().map(|e| e.height).collect();
        heights.sort_unstable();
        let excess = self.side.len().saturating_sub(MAX_SIDE_HEADERS);
        let cut = heights.get(excess).copied().unwrap_or(u32::MAX);
        self.side.retain(|_, e| e.height >= cut);
    }
}

/// Core's `CBlockIndex::GetMedianTimePast` for the block at `height`: the median of its time
/// and the ten before it (fewer near the chain's start).
fn median_time_past(height: u32, base: u32, ancestor: &dyn Fn(u32) -> Option<Link>) -> u32 {
    let mut times = [0u32; 11];
    let mut n = 0usize;
    let mut h = height;
    while n < 11 {
        let Some(link) = ancestor(h) else { break };
        if let Some(slot) = times.get_mut(n) {
            *slot = link.time;
        }
        n = n.saturating_add(1);
        if h <= base {
            break;
        }
        h = h.saturating_sub(1);
    }
    let slice = times.get_mut(..n).unwrap_or_default();
    slice.sort_unstable();
    slice.get(n.checked_div(2).unwrap_or(0)).copied().unwrap_or(0)
}
