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
