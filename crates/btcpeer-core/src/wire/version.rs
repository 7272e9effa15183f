//! Protocol versions, and which messages and fields exist at which negotiated version.
//!
//! This is data the peer consults: it does not send a message the negotiated version does not
//! define, and it does not hand such a message from the remote to the application.
//!
//! ```
//! use btcpeer_core::wire::{version, Command};
//!
//! assert!(version::is_defined(Command::SENDHEADERS, 70012));
//! assert!(!version::is_defined(Command::SENDHEADERS, 70011));
//! assert!(version::is_defined(Command::INV, 209), "messages from the start are always defined");
//! assert_eq!(version::introduced_in(Command::WTXIDRELAY), Some(70016));
//! ```

use super::command::Command;

/// The protocol version btcpeer speaks by default (BIP339 wtxidrelay and BIP155 addrv2).
pub const PROTOCOL_VERSION: u32 = 70016;
/// The lowest remote version accepted by default (Bitcoin Core's `MIN_PEER_PROTO_VERSION`).
pub const MIN_PEER_PROTO_VERSION: u32 = 31800;
/// Up to and including this version, `ping` carries no nonce and gets no `pong` (BIP31).
pub const BIP0031_VERSION: u32 = 60000;
/// `mempool` exists from this version (BIP35).
pub const MEMPOOL_VERSION: u32 = 60002;
/// Bloom filtering messages and the version message's relay flag exist from this version (BIP37).
pub const BLOOM_VERSION: u32 = 70001;
/// `reject` exists from this version (BIP61).
pub const REJECT_VERSION: u32 = 70002;
/// From this version, a node without `NODE_BLOOM` disconnects peers that send bloom messages (BIP111).
pub const NO_BLOOM_VERSION: u32 = 70011;
/// `sendheaders` exists from this version (BIP130).
pub const SENDHEADERS_VERSION: u32 = 70012;
/// `feefilter` exists from this version (BIP133).
pub const FEEFILTER_VERSION: u32 = 70013;
/// Compact block messages exist from this version (BIP152).
pub const SHORT_IDS_BLOCKS_VERSION: u32 = 70014;
/// Invalid compact blocks are not punished from this version.
pub const INVALID_CB_NO_BAN_VERSION: u32 = 70015;
/// `wtxidrelay` exists from this version (BIP339).
pub const WTXID_RELAY_VERSION: u32 = 70016;
/// `sendaddrv2` and `addrv2` are sent to peers of this version or later (BIP155).
pub const ADDRV2_VERSION: u32 = 70016;

/// Messages that appeared after the start of the protocol, with the version that introduced them.
/// Every command not listed (the original messages, and unknown ones) is defined at every version.
/// BIP157's filter messages are gated by the `NODE_COMPACT_FILTERS` service bit, not by a version.
pub const MESSAGE_VERSIONS: &[(Command, u32)] = &[
    (Command::MEMPOOL, MEMPOOL_VERSION),
    (Command::FILTERLOAD, BLOOM_VERSION),
    (Command::FILTERADD, BLOOM_VERSION),
    (Command::FILTERCLEAR, BLOOM_VERSION),
    (Command::MERKLEBLOCK, BLOOM_VERSION),
    (Command::REJECT, REJECT_VERSION),
    (Command::SENDHEADERS, SENDHEADERS_VERSION),
    (Command::FEEFILTER, FEEFILTER_VERSION),
    (Command::SENDCMPCT, SHORT_IDS_BLOCKS_VERSION),
    (Command::CMPCTBLOCK, SHORT_IDS_BLOCKS_VERSION),
    (Command::GETBLOCKTXN, SHORT_IDS_BLOCKS_VERSION),
    (Command::BLOCKTXN, SHORT_IDS_BLOCKS_VERSION),
    (Command::WTXIDRELAY, WTXID_RELAY_VERSION),
    (Command::SENDADDRV2, ADDRV2_VERSION),
    (Command::ADDRV2, ADDRV2_VERSION),
    (Command::SENDTXRCNCL, WTXID_RELAY_VERSION),
];

/// The version that introduced `command`, or `None` if it has always existed (or is unknown).
pub fn introduced_in(command: Command) -> Option<u32> {
    MESSAGE_VERSIONS.iter().find(|(c, _)| *c == command).map(|&(_, v)| v)
}

/// Whether `command` is defined at the negotiated protocol `version`.
pub fn is_defined(command: Command, version: u32) -> bool {
    introduced_in(command).is_none_or(|since| version >= since)
}

/// Whether `ping` carries a nonce (and is answered by `pong`) at this negotiated version (BIP31).
pub fn ping_has_nonce(version: u32) -> bool {
    version > BIP0031_VERSION
}

/// Whether the version message carries the relay flag at this version (BIP37).
pub fn version_has_relay(version: u32) -> bool {
    version >= BLOOM_VERSION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_r5_message_versions_table() {
        let cases = [
            (Command::MEMPOOL, 60002),
            (Command::FILTERLOAD, 70001),
            (Command::REJECT, 70002),
            (Command::SENDHEADERS, 70012),
            (Command::FEEFILTER, 70013),
            (Command::SENDCMPCT, 70014),
            (Command::WTXIDRELAY, 70016),
            (Command::SENDADDRV2, 70016),
        ];
        for (cmd, since) in cases {
            assert!(!is_defined(cmd, since - 1), "{cmd} before {since}");
            assert!(is_defined(cmd, since), "{cmd} at {since}");
        }
        assert!(is_defined(Command::new("feature").unwrap(), 0));
        assert!(!ping_has_nonce(60000));
        assert!(ping_has_nonce(60001));
        assert!(!version_has_relay(70000));
        assert!(version_has_relay(70001));
    }
}
