//! What connecting headers gives back: the outcome and the errors of
//! [`HeaderChain::connect_headers`](super::HeaderChain::connect_headers).

use bitcoin::BlockHash;
use bitcoin::block::Header;

#[allow(unused_imports)] // For the docs.
use super::headers::{HeaderChain, MAX_HEADERS};

/// Why headers were refused. Nothing of a refused batch is connected.
///
/// ```
/// use btcpeer_core::chain::{ChainParams, HeaderChain, HeaderError};
/// let mut chain = HeaderChain::new(ChainParams::new(bitcoin::Network::Regtest));
/// let g = chain.params().genesis;
/// let err = chain.connect_headers(&vec![g; 2001], 0).unwrap_err();
/// assert_eq!(err, HeaderError::TooMany { count: 2001 });
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// More than [`MAX_HEADERS`] headers at once.
    #[error("{count} headers at once, at most {MAX_HEADERS}")]
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// Header `index` of the batch does not follow the one before it.
    #[error("header {index} of the batch does not build on the one before it")]
    NotContinuous {
        /// Its position in the batch.
        index: usize,
    },
    /// The first new header builds on a block this chain does not know (neither on the main
    /// chain nor on a kept side branch).
    #[error("header builds on unknown block {prev}")]
    UnknownPrevious {
        /// The unknown parent.
        prev: BlockHash,
    },
    /// The header's proof of work is invalid (Core's `high-hash`): its bits do not decode to a
    /// valid target, the target is above the network's limit, or the hash is above it.
    #[error("block {hash} at height {height}: {reason}")]
    BadProofOfWork {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// What is wrong.
        reason: String,
    },
    /// The bits are not what the difficulty rules require (Core's `bad-diffbits`).
    #[error("block {hash} at height {height}: bits {got:#010x}, the rules require {expected:#010x}")]
    BadDifficulty {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// What the rules require.
        expected: u32,
        /// What the header has.
        got: u32,
    },
    /// The time is not above the median of the previous 11 blocks (Core's `time-too-old`).
    #[error("block {hash} at height {height}: time {time} not above the median time past {median}")]
    TimeTooOld {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// Its time.
        time: u32,
        /// The median of the previous 11.
        median: u32,
    },
    /// The time is more than two hours ahead of adjusted time (Core's `time-too-new`).
    #[error("block {hash} at height {height}: time {time} more than 2 hours after {now}")]
    TimeTooNew {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// Its time.
        time: u32,
        /// The adjusted time given.
        now: u64,
    },
    /// BIP94 (testnet4): the first block of a period is more than 600 seconds before its parent
    /// (Core's `time-timewarp-attack`).
    #[error("block {hash} at height {height}: time {time} more than 600 s before its parent's {parent_time}")]
    TimeWarp {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// Its time.
        time: u32,
        /// Its parent's time.
        parent_time: u32,
    },
    /// A version that BIP34/66/65 made obsolete at this height (Core's `bad-version`).
    #[error("block {hash} at height {height}: obsolete version {version:#x}")]
    BadVersion {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// Its version.
        version: i32,
    },
    /// A block at a checkpoint's height with another hash (Core's `checkpoint mismatch`).
    #[error("block {got} at checkpoint height {height}, expected {expected}")]
    CheckpointMismatch {
        /// The height.
        height: u32,
        /// The checkpoint.
        expected: BlockHash,
        /// The header's hash.
        got: BlockHash,
    },
    /// A fork from below the last checkpoint the chain has passed (Core's
    /// `bad-fork-prior-to-checkpoint`).
    #[error("fork at height {height}, below the checkpoint at {checkpoint}")]
    ForkBeforeCheckpoint {
        /// The height of the first header of the fork.
        height: u32,
        /// The checkpoint's height.
        checkpoint: u32,
    },
    /// The chain would need a block below its start (a chain started from a checkpoint cannot
    /// check a fork from below it).
    #[error("height {height} is below the chain's start")]
    BelowStart {
        /// The height needed.
        height: u32,
    },
    /// [`HeaderChain::from_checkpoint`]: a start that is not the first block of a retarget
    /// period (the retarget rules need it).
    #[error("a chain can start only at a retarget boundary (a multiple of {interval}), not at {height}")]
    StartNotAtRetarget {
        /// The start height.
        height: u32,
        /// The retarget interval.
        interval: u32,
    },
}

/// A block connected to the main chain.
///
/// ```
/// use btcpeer_core::chain::HeadersOutcome;
/// for c in HeadersOutcome::default().connected {
///     println!("{} at {}: merkle root {}", c.hash, c.height, c.header.merkle_root);
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectedHeader {
    /// Its height.
    pub height: u32,
    /// Its hash.
    pub hash: BlockHash,
    /// The header (the [store](super::ChainStore) writes it; the chain keeps only hash, time and bits).
    pub header: Header,
}

/// What [`HeaderChain::connect_headers`] did.
///
/// On a reorg, `disconnected` lists the blocks taken off the main chain (highest first), then
/// `connected` the blocks of the new branch (lowest first), all in one outcome.
///
/// ```
/// use btcpeer_core::chain::HeadersOutcome;
/// let outcome = HeadersOutcome::default();
/// for (height, hash) in &outcome.disconnected { println!("disconnected {hash} at {height}"); }
/// for c in &outcome.connected { println!("connected {} at {}", c.hash, c.height); }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeadersOutcome {
    /// Blocks taken off the main chain, highest first, with their heights.
    pub disconnected: Vec<(u32, BlockHash)>,
    /// Blocks added to the main chain, lowest first.
    pub connected: Vec<ConnectedHeader>,
    /// Headers of the batch the chain already had (main chain or side branch).
    pub already_known: usize,
    /// Headers kept on a side branch that has no more work than the main chain (yet).
    pub side_branch: usize,
}

impl HeadersOutcome {
    /// Whether blocks were disconnected (a reorg).
    ///
    /// ```
    /// # use btcpeer_core::chain::HeadersOutcome;
    /// assert!(!HeadersOutcome::default().is_reorg());
    /// ```
    pub fn is_reorg(&self) -> bool {
        !self.disconnected.is_empty()
    }

    /// The height below which nothing changed (the fork point on a reorg), if anything changed.
    ///
    /// ```
    /// # use btcpeer_core::chain::HeadersOutcome;
    /// assert_eq!(HeadersOutcome::default().fork_height(), None);
    /// ```
    pub fn fork_height(&self) -> Option<u32> {
        let lowest = self.disconnected.last().map(|d| d.0).or_else(|| self.connected.first().map(|c| c.height))?;
        lowest.checked_sub(1)
    }
}
