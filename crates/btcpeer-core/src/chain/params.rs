//! A network's consensus parameters for header validation: genesis, proof-of-work limit,
//! retarget rules and checkpoints (Core's `CChainParams` / `Consensus::Params`, the parts a
//! header chain needs).

use bitcoin::BlockHash;
use bitcoin::block::Header;
use bitcoin::pow::Target;

/// A block every valid chain of the network has at `height` (Core's `checkpointData`).
///
/// ```
/// use btcpeer_core::chain::ChainParams;
/// let first = ChainParams::new(bitcoin::Network::Bitcoin).checkpoints[0];
/// assert_eq!(first.height, 11111);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// The block's height.
    pub height: u32,
    /// The block's hash.
    pub hash: BlockHash,
}

/// The consensus rules a [`HeaderChain`](super::HeaderChain) checks headers against.
///
/// Built from a network with [`ChainParams::new`] (or [`ChainParams::for_network`]); every
/// field is public so a test or a custom network can adjust them.
///
/// ```
/// use btcpeer_core::chain::ChainParams;
///
/// let p = ChainParams::new(bitcoin::Network::Testnet4);
/// assert!(p.enforce_bip94 && p.allow_min_difficulty_blocks);
/// assert_eq!(p.difficulty_adjustment_interval(), 2016);
/// assert_eq!(p.genesis_hash(), bitcoin::constants::genesis_block(bitcoin::Network::Testnet4).block_hash());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChainParams {
    /// The network these rules are for.
    pub network: bitcoin::Network,
    /// The genesis block's header (height 0).
    pub genesis: Header,
    /// The easiest target a header may have (Core's `powLimit`, in its attainable compact form).
    pub pow_limit: Target,
    /// Seconds between blocks the retarget aims for (`nPowTargetSpacing`, 600).
    pub pow_target_spacing: u32,
    /// Seconds a retarget period should last (`nPowTargetTimespan`, two weeks).
    pub pow_target_timespan: u32,
    /// testnet3/testnet4/regtest: a block more than 20 minutes after its parent may have the
    /// minimum difficulty (`fPowAllowMinDifficultyBlocks`).
    pub allow_min_difficulty_blocks: bool,
    /// regtest: the difficulty never changes (`fPowNoRetargeting`).
    pub no_retargeting: bool,
    /// testnet4 (BIP94): a retarget starts from the bits of the period's first block, not its
    /// last (`enforce_BIP94`).
    pub enforce_bip94: bool,
    /// Blocks every valid chain has; sorted by height.
    pub checkpoints: Vec<Checkpoint>,
    /// From this height a header's version must be at least 2 (BIP34; Core's `bad-version`).
    pub bip34_height: u32,
    /// From this height a header's version must be at least 3 (BIP66).
    pub bip66_height: u32,
    /// From this height a header's version must be at least 4 (BIP65).
    pub bip65_height: u32,
}

impl ChainParams {
    /// The parameters of a built-in network, with Core's checkpoints for it (mainnet and
    /// testnet3 have some; testnet4, signet and regtest have none).
    ///
    /// Signet is checked as mainnet is (retargets every 2,016 blocks); the signet block
    /// signature (in the coinbase) is not checked: a header chain cannot see it.
    ///
    /// ```
    /// use btcpeer_core::chain::ChainParams;
    /// let p = ChainParams::new(bitcoin::Network::Bitcoin);
    /// assert_eq!(p.checkpoints.len(), 13);
    /// assert!(!p.allow_min_difficulty_blocks && !p.no_retargeting);
    /// assert!(ChainParams::new(bitcoin::Network::Regtest).no_retargeting);
    /// ```
    pub fn new(network: bitcoin::Network) -> ChainParams {
        let p = bitcoin::params::Params::new(network);
        ChainParams {
            network,
            genesis: bitcoin::constants::genesis_block(network).header,
            pow_limit: p.max_attainable_target,
            pow_target_spacing: u32::try_from(p.pow_target_spacing).unwrap_or(600),
            pow_target_timespan: u32::try_from(p.pow_target_timespan).unwrap_or(1_209_600),
            allow_min_difficulty_blocks: p.allow_min_difficulty_blocks,
            no_retargeting: p.no_pow_retargeting,
            enforce_bip94: network == bitcoin::Network::Testnet4,
            checkpoints: super::checkpoints::for_network(network),
            bip34_height: p.bip34_height,
            bip66_height: p.bip66_height,
            bip65_height: p.bip65_height,
        }
    }

    /// The parameters of a btcpeer network, if it is one of Bitcoin's (`None` for custom
    /// networks and simnet).
    ///
    /// ```
    /// use btcpeer_core::{chain::ChainParams, network::Network};
    /// assert!(ChainParams::for_network(&Network::SIGNET).is_some());
    /// assert!(ChainParams::for_network(&Network::SIMNET).is_none());
    /// ```
    pub fn for_network(network: &crate::network::Network) -> Option<ChainParams> {
        network.bitcoin_network().map(ChainParams::new)
    }

    /// The same parameters with other checkpoints (sorted here by height).
    ///
    /// ```
    /// use btcpeer_core::chain::ChainParams;
    /// let p = ChainParams::new(bitcoin::Network::Bitcoin).with_checkpoints(Vec::new());
    /// assert!(p.checkpoints.is_empty());
    /// ```
    pub fn with_checkpoints(mut self, mut checkpoints: Vec<Checkpoint>) -> ChainParams {
        checkpoints.sort_by_key(|c| c.height);
        self.checkpoints = checkpoints;
        self
    }

    /// Blocks per retarget period (`DifficultyAdjustmentInterval`: timespan / spacing, 2,016).
    ///
    /// ```
    /// # use btcpeer_core::chain::ChainParams;
    /// assert_eq!(ChainParams::new(bitcoin::Network::Bitcoin).difficulty_adjustment_interval(), 2016);
    /// ```
    pub fn difficulty_adjustment_interval(&self) -> u32 {
        self.pow_target_timespan.checked_div(self.pow_target_spacing).unwrap_or(1).max(1)
    }

    /// The genesis block's hash.
    ///
    /// ```
    /// # use btcpeer_core::chain::ChainParams;
    /// let p = ChainParams::new(bitcoin::Network::Regtest);
    /// assert_eq!(p.genesis_hash(), p.genesis.block_hash());
    /// ```
    pub fn genesis_hash(&self) -> BlockHash {
        self.genesis.block_hash()
    }

    /// The checkpoint at `height`, if there is one.
    ///
    /// ```
    /// # use btcpeer_core::chain::ChainParams;
    /// let p = ChainParams::new(bitcoin::Network::Bitcoin);
    /// assert!(p.checkpoint_at(11111).is_some());
    /// assert!(p.checkpoint_at(11112).is_none());
    /// ```
    pub fn checkpoint_at(&self, height: u32) -> Option<BlockHash> {
        self.checkpoints.iter().find(|c| c.height == height).map(|c| c.hash)
    }

    /// The highest checkpoint at or below `height`, if any.
    ///
    /// ```
    /// # use btcpeer_core::chain::ChainParams;
    /// let p = ChainParams::new(bitcoin::Network::Bitcoin);
    /// assert_eq!(p.last_checkpoint_at_or_below(20_000).map(|c| c.height), Some(11111));
    /// ```
    pub fn last_checkpoint_at_or_below(&self, height: u32) -> Option<Checkpoint> {
        self.checkpoints.iter().rev().find(|c| c.height <= height).copied()
    }
}
