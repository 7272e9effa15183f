//! Bitcoin Core's checkpoints per network (`checkpointData` in `kernel/chainparams.cpp`, as
//! Core carried them until v28): a header chain refuses a block at a checkpoint's height with
//! another hash, and a fork below the last checkpoint it has passed.

use bitcoin::BlockHash;
use std::str::FromStr;

use super::params::Checkpoint;

/// Core's mainnet checkpoints (`CMainParams`).
const MAINNET: &[(u32, &str)] = &[
    (11111, "0000000069e244f73d78e8fd29ba2fd2ed618bd6fa2ee92559f542fdb26e7c1d"),
    (33333, "000000002dd5588a74784eaa7ab0507a18ad16a236e7b1ce69f00d7ddfb5d0a6"),
    (74000, "0000000000573993a3c9e41ce34471c079dcf5f52a0e824a81e7f953b8661a20"),
    (105000, "00000000000291ce28027faea320c8d2b054b2e0fe44a773f3eefb151d6bdc97"),
    (134444, "00000000000005b12ffd4cd315cd34ffd4a594f430ac814c91184a0d42d2b0fe"),
    (168000, "000000000000099e61ea72015e79632f216fe6cb33d7899acb35b75c8303b763"),
    (193000, "000000000000059f452a5f7340de6682a977387c17010ff6e6c3bd83ca8b1317"),
    (210000, "000000000000048b95347e83192f69cf0366076336c639f9b7228e9ba171342e"),
    (216116, "00000000000001b4f4b433e81ee46494af945cf96014816a4e2370f11b23df4e"),
    (225430, "00000000000001c108384350f74090433e7fcf79a606b8e797f065b130575932"),
    (250000, "000000000000003887df1f29024b06fc2200b55f8af8f35453d7be294df2d214"),
    (279000, "0000000000000001ae8c72a0b0c301f67e3afca10e819efa9041e458e9bd7e40"),
    (295000, "00000000000000004d9b4ef50f0f9d686fd69db2e03af35a100370c64632a983"),
];

/// Core's testnet3 checkpoint (`CTestNetParams`).
const TESTNET3: &[(u32, &str)] = &[(546, "000000002a936ca763904c3c35fce2f3556c559c0214345d31b1bcebf76acb70")];

/// The checkpoints of a network, sorted by height (none for testnet4, signet and regtest).
pub(crate) fn for_network(network: bitcoin::Network) -> Vec<Checkpoint> {
    let table = match network {
        bitcoin::Network::Bitcoin => MAINNET,
        bitcoin::Network::Testnet => TESTNET3,
        _ => &[],
    };
    table
        .iter()
        .filter_map(|(height, hex)| BlockHash::from_str(hex).ok().map(|hash| Checkpoint { height: *height, hash }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_checkpoint_parses_and_they_are_sorted() {
        let main = for_network(bitcoin::Network::Bitcoin);
        assert_eq!(main.len(), MAINNET.len());
        assert!(main.windows(2).all(|w| w[0].height < w[1].height));
        assert_eq!(for_network(bitcoin::Network::Testnet).len(), 1);
        assert!(for_network(bitcoin::Network::Regtest).is_empty());
    }
}
