//! The 12-byte command name of a v1 frame, kept inline (no allocation per frame).

use std::fmt;

/// The largest command name: 12 bytes, NUL-padded on the wire.
pub const COMMAND_LEN: usize = 12;

/// A message's command name, such as `version` or `inv`.
///
/// Valid commands are at most 12 printable ASCII bytes (`0x20..=0x7e`), as Bitcoin Core requires. The
/// value is stored inline and is `Copy`, so decoding a frame header never allocates.
///
/// ```
/// use btcpeer_core::wire::Command;
///
/// let cmd = Command::new("sendtxrcncl").unwrap();
/// assert_eq!(cmd.as_str(), "sendtxrcncl");
/// assert_eq!(Command::from_wire(&cmd.to_wire()), Some(cmd));
/// assert!(Command::new("much-too-long-name").is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Command {
    bytes: [u8; COMMAND_LEN],
    len: u8,
}

/// Why a command name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Longer than 12 bytes.
    #[error("command {name:?} is {len} bytes long; at most 12 are allowed")]
    TooLong {
        /// The refused name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// Contains a byte outside printable ASCII.
    #[error("command {name:?} contains a byte outside printable ASCII")]
    NotPrintable {
        /// The refused name.
        name: String,
    },
}

const fn is_printable(b: u8) -> bool {
    b >= 0x20 && b <= 0x7e
}

impl Command {
    /// Builds a command at compile time; panics (at compile time, in a `const`) on an invalid name.
    #[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
    const fn from_static(name: &str) -> Command {
        let src = name.as_bytes();
        assert!(src.len() <= COMMAND_LEN, "command too long");
        let mut bytes = [0u8; COMMAND_LEN];
        let mut i = 0;
        while i < src.len() {
            assert!(is_printable(src[i]), "command not printable ASCII");
            bytes[i] = src[i];
            i += 1;
        }
        Command { bytes, len: src.len() as u8 }
    }

    /// Equality usable in constant tables.
    #[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
    pub(crate) const fn const_eq(&self, other: &Command) -> bool {
        if self.len != other.len {
            return false;
        }
        let mut i = 0;
        while i < COMMAND_LEN {
            if self.bytes[i] != other.bytes[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// Makes a command from a name of at most 12 printable ASCII bytes.
    pub fn new(name: &str) -> Result<Command, CommandError> {
        let src = name.as_bytes();
        if src.len() > COMMAND_LEN {
            return Err(CommandError::TooLong { name: name.to_string(), len: src.len() });
        }
        if !src.iter().all(|&b| is_printable(b)) {
            return Err(CommandError::NotPrintable { name: name.to_string() });
        }
        let mut bytes = [0u8; COMMAND_LEN];
        for (dst, &b) in bytes.iter_mut().zip(src) {
            *dst = b;
        }
        Ok(Command { bytes, len: src.len() as u8 })
    }

    /// Reads the 12 command bytes of a frame header: printable ASCII, then only NUL padding
    /// (Bitcoin Core's rule). Returns `None` for anything else.
    pub fn from_wire(raw: &[u8; COMMAND_LEN]) -> Option<Command> {
        let len = raw.iter().position(|&b| b == 0).unwrap_or(COMMAND_LEN);
        let (name, padding) = raw.split_at(len);
        if !name.iter().all(|&b| is_printable(b)) || padding.iter().any(|&b| b != 0) {
            return None;
        }
        Some(Command { bytes: *raw, len: len as u8 })
    }

    /// The 12 NUL-padded bytes as they appear in a frame header.
    pub fn to_wire(&self) -> [u8; COMMAND_LEN] {
        self.bytes
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored, so this cannot fail; no panic path either way.
        let name = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        std::str::from_utf8(name).unwrap_or_default()
    }

    /// Whether btcpeer decodes this command to a typed message (the 36 of `Command::KNOWN`).
    pub fn is_known(&self) -> bool {
        self.known_index().is_some()
    }

    /// This command's position in [`Command::KNOWN`], or `None` for a command btcpeer does not
    /// know. Statistics are kept in a fixed table indexed by it, so nothing grows with the names a
    /// remote chooses.
    ///
    /// ```
    /// use btcpeer_core::wire::Command;
    ///
    /// assert_eq!(Command::VERSION.known_index(), Some(0));
    /// assert_eq!(Command::KNOWN[Command::INV.known_index().unwrap()], Command::INV);
    /// assert_eq!(Command::new("xversion").unwrap().known_index(), None);
    /// ```
    pub fn known_index(&self) -> Option<usize> {
        // Names differ in length or in their first bytes, so this rarely compares a whole name.
        Command::KNOWN.iter().position(|k| k.len == self.len && k.bytes == self.bytes)
    }

    /// Every command [`crate::wire::Message`] decodes to a typed value (the 36 of `Command::KNOWN`).
    pub const KNOWN: [Command; 36] = KNOWN;

    /// `version`
    pub const VERSION: Command = Command::from_static("version");
    /// `verack`
    pub const VERACK: Command = Command::from_static("verack");
    /// `addr`
    pub const ADDR: Command = Command::from_static("addr");
    /// `addrv2` (BIP155)
    pub const ADDRV2: Command = Command::from_static("addrv2");
    /// `sendaddrv2` (BIP155)
    pub const SENDADDRV2: Command = Command::from_static("sendaddrv2");
    /// `inv`
    pub const INV: Command = Command::from_static("inv");
    /// `getdata`
    pub const GETDATA: Command = Command::from_static("getdata");
    /// `notfound`
    pub const NOTFOUND: Command = Command::from_static("notfound");
    /// `getblocks`
    pub const GETBLOCKS: Command = Command::from_static("getblocks");
    /// `getheaders`
    pub const GETHEADERS: Command = Command::from_static("getheaders");
    /// `headers`
    pub const HEADERS: Command = Command::from_static("headers");
    /// `block`
    pub const BLOCK: Command = Command::from_static("block");
    /// `tx`
    pub const TX: Command = Command::from_static("tx");
    /// `mempool`
    pub const MEMPOOL: Command = Command::from_static("mempool");
    /// `getaddr`
    pub const GETADDR: Command = Command::from_static("getaddr");
    /// `ping`
    pub const PING: Command = Command::from_static("ping");
    /// `pong`
    pub const PONG: Command = Command::from_static("pong");
    /// `reject` (BIP61)
    pub const REJECT: Command = Command::from_static("reject");
    /// `sendheaders` (BIP130)
    pub const SENDHEADERS: Command = Command::from_static("sendheaders");
    /// `feefilter` (BIP133)
    pub const FEEFILTER: Command = Command::from_static("feefilter");
    /// `filterload` (BIP37)
    pub const FILTERLOAD: Command = Command::from_static("filterload");
    /// `filteradd` (BIP37)
    pub const FILTERADD: Command = Command::from_static("filteradd");
    /// `filterclear` (BIP37)
    pub const FILTERCLEAR: Command = Command::from_static("filterclear");
    /// `merkleblock` (BIP37)
    pub const MERKLEBLOCK: Command = Command::from_static("merkleblock");
    /// `sendcmpct` (BIP152)
    pub const SENDCMPCT: Command = Command::from_static("sendcmpct");
    /// `cmpctblock` (BIP152)
    pub const CMPCTBLOCK: Command = Command::from_static("cmpctblock");
    /// `getblocktxn` (BIP152)
    pub const GETBLOCKTXN: Command = Command::from_static("getblocktxn");
    /// `blocktxn` (BIP152)
    pub const BLOCKTXN: Command = Command::from_static("blocktxn");
    /// `getcfilters` (BIP157)
    pub const GETCFILTERS: Command = Command::from_static("getcfilters");
    /// `cfilter` (BIP157)
    pub const CFILTER: Command = Command::from_static("cfilter");
    /// `getcfheaders` (BIP157)
    pub const GETCFHEADERS: Command = Command::from_static("getcfheaders");
    /// `cfheaders` (BIP157)
    pub const CFHEADERS: Command = Command::from_static("cfheaders");
    /// `getcfcheckpt` (BIP157)
    pub const GETCFCHECKPT: Command = Command::from_static("getcfcheckpt");
    /// `cfcheckpt` (BIP157)
    pub const CFCHECKPT: Command = Command::from_static("cfcheckpt");
    /// `wtxidrelay` (BIP339)
    pub const WTXIDRELAY: Command = Command::from_static("wtxidrelay");
    /// `sendtxrcncl` (BIP330)
    pub const SENDTXRCNCL: Command = Command::from_static("sendtxrcncl");
}

/// Every command [`crate::wire::Message`] decodes to a typed value.
const KNOWN: [Command; 36] = [
    Command::VERSION,
    Command::VERACK,
    Command::ADDR,
    Command::ADDRV2,
    Command::SENDADDRV2,
    Command::INV,
    Command::GETDATA,
    Command::NOTFOUND,
    Command::GETBLOCKS,
    Command::GETHEADERS,
    Command::HEADERS,
    Command::BLOCK,
    Command::TX,
    Command::MEMPOOL,
    Command::GETADDR,
    Command::PING,
    Command::PONG,
    Command::REJECT,
    Command::SENDHEADERS,
    Command::FEEFILTER,
    Command::FILTERLOAD,
    Command::FILTERADD,
    Command::FILTERCLEAR,
    Command::MERKLEBLOCK,
    Command::SENDCMPCT,
    Command::CMPCTBLOCK,
    Command::GETBLOCKTXN,
    Command::BLOCKTXN,
    Command::GETCFILTERS,
    Command::CFILTER,
    Command::GETCFHEADERS,
    Command::CFHEADERS,
    Command::GETCFCHECKPT,
    Command::CFCHECKPT,
    Command::WTXIDRELAY,
    Command::SENDTXRCNCL,
];

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Command({:?})", self.as_str())
    }
}

impl std::str::FromStr for Command {
    type Err = CommandError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Command::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_w3_command_bytes_must_be_printable_then_nul_padding() {
        assert_eq!(Command::from_wire(b"version\0\0\0\0\0"), Some(Command::VERSION));
        assert_eq!(Command::from_wire(b"sendtxrcncl\0").map(|c| c.len), Some(11));
        assert!(Command::from_wire(b"abcdefghijkl").is_some(), "12 printable bytes fill the field");
        assert!(Command::from_wire(b"ver\0sion\0\0\0\0").is_none(), "bytes after the first NUL");
        assert!(Command::from_wire(b"ver\x01ion\0\0\0\0\0").is_none(), "control byte");
        assert!(Command::from_wire(b"ver\xffion\0\0\0\0\0").is_none(), "non-ASCII byte");
        assert_eq!(Command::from_wire(&[0; 12]).map(|c| c.as_str().len()), Some(0), "Core accepts an empty name");
    }

    #[test]
    fn r_w3_command_new_refuses_long_or_unprintable_names() {
        assert!(matches!(Command::new("thirteen-byte"), Err(CommandError::TooLong { len: 13, .. })));
        assert!(matches!(Command::new("tab\there"), Err(CommandError::NotPrintable { .. })));
        assert_eq!(Command::new("inv").unwrap(), Command::INV);
        assert_eq!(format!("{}", Command::GETCFCHECKPT), "getcfcheckpt");
    }
}
