//! Networks: the magic that starts every v1 frame, the default port and the largest payload a frame
//! may carry.
//!
//! The built-in networks are Bitcoin's mainnet, testnet3, testnet4, signet (the default signet
//! challenge), regtest, and btcd's simnet. Any other network that shares Bitcoin's wire protocol can
//! be described with [`Network::custom`]:
//!
//! ```
//! use btcpeer_core::network::{Magic, Network};
//!
//! // Bitcoin Cash: its own magic and 32 MB blocks.
//! let bch = Network::custom("bch", Magic::from_bytes([0xe3, 0xe1, 0xf3, 0xe8]), 8333)
//!     .with_max_payload(32_000_000);
//! assert_eq!(bch.magic().to_bytes(), [0xe3, 0xe1, 0xf3, 0xe8]);
//! assert_eq!(bch.max_payload(), 32_000_000);
//! assert_eq!(bch.default_port(), 8333);
//! assert_eq!(bch.bitcoin_network(), None);
//! ```

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

pub use bitcoin::p2p::Magic;

/// Bitcoin Core's largest accepted protocol message payload (`MAX_PROTOCOL_MESSAGE_LENGTH`).
pub const DEFAULT_MAX_PAYLOAD: u32 = 4_000_000;

/// A peer-to-peer network: its name, magic bytes, default port and payload limit.
///
/// Cheap to clone; the built-in networks are constants.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Network {
    name: Cow<'static, str>,
    magic: [u8; 4],
    default_port: u16,
    max_payload: u32,
    bitcoin: Option<bitcoin::Network>,
}

impl Network {
    /// Bitcoin mainnet (`f9beb4d9`, port 8333).
    pub const MAINNET: Network = Network::builtin("mainnet", [0xf9, 0xbe, 0xb4, 0xd9], 8333, bitcoin::Network::Bitcoin);
    /// Bitcoin testnet3 (`0b110907`, port 18333).
    pub const TESTNET3: Network =
        Network::builtin("testnet3", [0x0b, 0x11, 0x09, 0x07], 18333, bitcoin::Network::Testnet);
    /// Bitcoin testnet4 (`1c163f28`, port 48333).
    pub const TESTNET4: Network =
        Network::builtin("testnet4", [0x1c, 0x16, 0x3f, 0x28], 48333, bitcoin::Network::Testnet4);
    /// Bitcoin signet with the default challenge (`0a03cf40`, port 38333).
    pub const SIGNET: Network = Network::builtin("signet", [0x0a, 0x03, 0xcf, 0x40], 38333, bitcoin::Network::Signet);
    /// Bitcoin regtest (`fabfb5da`, port 18444).
    pub const REGTEST: Network =
        Network::builtin("regtest", [0xfa, 0xbf, 0xb5, 0xda], 18444, bitcoin::Network::Regtest);
    /// btcd's simulation network (`161c1412` on the wire, port 18555).
    pub const SIMNET: Network = Network {
        name: Cow::Borrowed("simnet"),
        magic: [0x16, 0x1c, 0x14, 0x12],
        default_port: 18555,
        max_payload: DEFAULT_MAX_PAYLOAD,
        bitcoin: None,
    };

    /// Every built-in network, in the order the CLI lists them.
    pub const BUILTIN: [Network; 6] =
        [Network::MAINNET, Network::TESTNET3, Network::TESTNET4, Network::SIGNET, Network::REGTEST, Network::SIMNET];

    const fn builtin(name: &'static str, magic: [u8; 4], port: u16, net: bitcoin::Network) -> Network {
        Network {
            name: Cow::Borrowed(name),
            magic,
            default_port: port,
            max_payload: DEFAULT_MAX_PAYLOAD,
            bitcoin: Some(net),
        }
    }

    /// Describes a network that is not built in. The payload limit starts at
    /// [`DEFAULT_MAX_PAYLOAD`]; change it with [`Network::with_max_payload`].
    pub fn custom(name: impl Into<Cow<'static, str>>, magic: Magic, default_port: u16) -> Network {
        Network {
            name: name.into(),
            magic: magic.to_bytes(),
            default_port,
            max_payload: DEFAULT_MAX_PAYLOAD,
            bitcoin: None,
        }
    }

    /// Returns this network with another largest payload (in bytes) a frame may announce.
    ///
    /// Frames announcing more are refused before anything is allocated for them. Messages with
    /// their own smaller maximum (a `ping`, an `inv`) keep it.
    #[must_use]
    pub fn with_max_payload(mut self, max_payload: u32) -> Network {
        self.max_payload = max_payload;
        self
    }

    /// The network's name (`mainnet`, `regtest`, or the name given to [`Network::custom`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The four bytes that start every v1 frame on this network.
    pub fn magic(&self) -> Magic {
        Magic::from_bytes(self.magic)
    }

    /// The port nodes of this network listen on by default.
    pub fn default_port(&self) -> u16 {
        self.default_port
    }

    /// The largest payload, in bytes, a frame may announce on this network.
    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    /// The hash of the network's genesis block, for every built-in network (simnet's is btcd's);
    /// `None` for a custom one.
    ///
    /// ```
    /// use btcpeer_core::network::Network;
    ///
    /// let genesis = Network::MAINNET.genesis_hash().unwrap();
    /// assert_eq!(genesis.to_string(), "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f");
    /// assert!(Network::custom("mine", btcpeer_core::network::Magic::from_bytes([1, 2, 3, 4]), 9000).genesis_hash().is_none());
    /// ```
    pub fn genesis_hash(&self) -> Option<bitcoin::BlockHash> {
        use bitcoin::hashes::Hash;
        match self.bitcoin {
            Some(net) => Some(bitcoin::blockdata::constants::genesis_block(net).block_hash()),
            // btcd's `simNetGenesisHash` (chaincfg/genesis.go), in wire byte order.
            None if self.magic == Network::SIMNET.magic && self.name == Network::SIMNET.name => {
                Some(bitcoin::BlockHash::from_byte_array(SIMNET_GENESIS))
            }
            None => None,
        }
    }

    /// The matching rust-bitcoin network, for the built-in Bitcoin networks.
    pub fn bitcoin_network(&self) -> Option<bitcoin::Network> {
        self.bitcoin
    }

    /// Finds the built-in network whose magic this is.
    pub fn from_magic(magic: Magic) -> Option<Network> {
        Network::BUILTIN.into_iter().find(|n| n.magic() == magic)
    }
}

impl Default for Network {
    fn default() -> Self {
        Network::MAINNET
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// btcd's simnet genesis block hash (683e86bd…69d77af6 as displayed), in wire byte order.
const SIMNET_GENESIS: [u8; 32] = [
    0xf6, 0x7a, 0xd7, 0x69, 0x5d, 0x9b, 0x66, 0x2a, 0x72, 0xff, 0x3d, 0x8e, 0xdb, 0xbb, 0x2d, 0xe0, 0xbf, 0xa6, 0x7b,
    0x13, 0x97, 0x4b, 0xb9, 0x91, 0x0d, 0x11, 0x6d, 0x5c, 0xbd, 0x86, 0x3e, 0x68,
];

/// The built-in network of a rust-bitcoin network.
impl TryFrom<bitcoin::Network> for Network {
    type Error = UnknownNetwork;

    fn try_from(net: bitcoin::Network) -> Result<Self, Self::Error> {
        Network::BUILTIN.into_iter().find(|n| n.bitcoin == Some(net)).ok_or_else(|| UnknownNetwork(net.to_string()))
    }
}

/// The rust-bitcoin network of a built-in Bitcoin network (not simnet, not custom ones).
impl TryFrom<&Network> for bitcoin::Network {
    type Error = UnknownNetwork;

    fn try_from(net: &Network) -> Result<Self, Self::Error> {
        net.bitcoin.ok_or_else(|| UnknownNetwork(net.name.to_string()))
    }
}

/// The error of parsing a network name that is not built in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown network {0:?} (expected mainnet, testnet3, testnet4, signet, regtest or simnet)")]
pub struct UnknownNetwork(pub String);

impl FromStr for Network {
    type Err = UnknownNetwork;

    /// Parses a built-in network's name; `bitcoin`, `main` and `testnet` are accepted as aliases.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = match s.to_ascii_lowercase().as_str() {
            "bitcoin" | "main" => "mainnet".to_string(),
            "testnet" | "test" => "testnet3".to_string(),
            other => other.to_string(),
        };
        Network::BUILTIN.into_iter().find(|n| n.name == wanted.as_str()).ok_or_else(|| UnknownNetwork(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_a_every_builtin_network_knows_its_genesis_and_converts_to_rust_bitcoin() {
        let genesis = |n: &Network| n.genesis_hash().map(|h| h.to_string());
        assert_eq!(
            genesis(&Network::TESTNET3).as_deref(),
            Some("000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943")
        );
        assert_eq!(
            genesis(&Network::REGTEST).as_deref(),
            Some("0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206")
        );
        assert_eq!(
            genesis(&Network::SIMNET).as_deref(),
            Some("683e86bd5c6d110d91b94b97137ba6bfe02dbbdb8e3dff722a669b5d69d77af6")
        );
        assert!(Network::BUILTIN.iter().all(|n| n.genesis_hash().is_some()));
        for n in Network::BUILTIN.iter().filter(|n| n.bitcoin_network().is_some()) {
            let b = bitcoin::Network::try_from(n).unwrap();
            assert_eq!(&Network::try_from(b).unwrap(), n);
        }
        assert!(bitcoin::Network::try_from(&Network::SIMNET).is_err());
    }

    #[test]
    fn r_w7_builtin_networks_have_their_magic_and_port() {
        let table = [
            ("mainnet", "f9beb4d9", 8333),
            ("testnet3", "0b110907", 18333),
            ("testnet4", "1c163f28", 48333),
            ("signet", "0a03cf40", 38333),
            ("regtest", "fabfb5da", 18444),
            ("simnet", "161c1412", 18555),
        ];
        for (name, magic, port) in table {
            let net: Network = name.parse().expect("built-in name parses");
            let hex: String = net.magic().to_bytes().iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, magic, "{name}");
            assert_eq!(net.default_port(), port, "{name}");
            assert_eq!(net.max_payload(), DEFAULT_MAX_PAYLOAD);
            assert_eq!(Network::from_magic(net.magic()), Some(net.clone()));
        }
        assert_eq!(Network::MAINNET.bitcoin_network(), Some(bitcoin::Network::Bitcoin));
        assert_eq!(Network::MAINNET.magic(), Magic::BITCOIN);
        assert_eq!(Network::REGTEST.magic(), Magic::REGTEST);
        assert_eq!(Network::TESTNET4.magic(), Magic::TESTNET4);
        assert_eq!(Network::SIGNET.magic(), Magic::SIGNET);
        assert!("nonsense".parse::<Network>().is_err());
    }

    #[test]
    fn r_w7_custom_network_bitcoin_cash() {
        let bch =
            Network::custom("bch", Magic::from_bytes([0xe3, 0xe1, 0xf3, 0xe8]), 8333).with_max_payload(32_000_000);
        assert_eq!(bch.name(), "bch");
        assert_eq!(bch.to_string(), "bch");
        assert_eq!(bch.max_payload(), 32_000_000);
        assert_eq!(Network::from_magic(bch.magic()), None);
    }
}
