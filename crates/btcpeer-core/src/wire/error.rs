//! Typed errors for frames and payloads: which command, which field, what was wrong.

use std::sync::Arc;

use super::command::{COMMAND_LEN, Command};
use crate::network::Magic;

/// A payload that could not be decoded: the command, the field, and the reason.
///
/// ```
/// use btcpeer_core::wire::{Command, Message, PayloadErrorKind};
///
/// // An `inv` claiming 50,001 entries is refused before anything is allocated for them.
/// let payload = bytes::Bytes::from_static(&[0xfd, 0x51, 0xc3]);
/// let err = Message::decode(Command::INV, payload).unwrap_err();
/// assert_eq!(err.command, Command::INV);
/// assert_eq!(err.field, "count");
/// assert!(matches!(err.kind, PayloadErrorKind::TooMany { count: 50_001, max: 50_000 }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{command} payload, field {field}: {kind}")]
pub struct PayloadError {
    /// The message's command.
    pub command: Command,
    /// The field being read (`count`, `user_agent`, `inventory[3].hash`, …).
    pub field: &'static str,
    /// What was wrong.
    pub kind: PayloadErrorKind,
}

/// What was wrong with a payload field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadErrorKind {
    /// The payload ended inside the field.
    #[error("payload ends early: {needed} bytes needed, {available} left")]
    Truncated {
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the payload.
        available: usize,
    },
    /// A count above the protocol's limit for this message.
    #[error("{count} entries, at most {max} allowed")]
    TooMany {
        /// The count read off the wire.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// A byte string longer than the protocol allows.
    #[error("{len} bytes, at most {max} allowed")]
    TooLong {
        /// The length read off the wire.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A CompactSize encoded in more bytes than needed.
    #[error("non-minimal CompactSize")]
    NonMinimalCompactSize,
    /// A CompactSize length above 0x02000000 (Bitcoin Core's `MAX_SIZE`).
    #[error("CompactSize {value} exceeds the maximum size 33554432")]
    CompactSizeTooLarge {
        /// The value read.
        value: u64,
    },
    /// Bytes left over after the last field.
    #[error("{count} bytes left over after the last field")]
    TrailingBytes {
        /// How many bytes were left.
        count: usize,
    },
    /// An addrv2 address whose length does not fit its network id.
    #[error("address of {len} bytes for network id {network_id}, which needs {expected}")]
    AddressLength {
        /// The BIP155 network id.
        network_id: u8,
        /// The length read off the wire.
        len: u64,
        /// The length that network needs.
        expected: u64,
    },
    /// A value the protocol does not allow.
    #[error("invalid value: {0}")]
    Invalid(&'static str),
    /// rust-bitcoin refused a consensus structure (block, transaction, header …) after its shape
    /// was checked.
    #[error("consensus decoding failed: {0}")]
    Consensus(ConsensusError),
}

/// rust-bitcoin's consensus decoding error, shared (cheap to clone) and comparable by its text.
#[derive(Debug, Clone)]
pub struct ConsensusError(pub Arc<bitcoin::consensus::encode::Error>);

impl std::fmt::Display for ConsensusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for ConsensusError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for ConsensusError {}

/// A v1 frame header (or whole frame) that was refused. The variants are listed in the order the
/// checks run (magic, network length, command bytes, command length): every check but the
/// checksum happens before any payload space is reserved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame starts with another network's magic.
    #[error("wrong network magic {found} (expected {expected})")]
    WrongMagic {
        /// This network's magic.
        expected: Magic,
        /// The magic received.
        found: Magic,
    },
    /// The announced payload length is above the network's maximum.
    #[error("frame announces {length} payload bytes; the network allows at most {max}")]
    PayloadTooLarge {
        /// The announced length.
        length: u32,
        /// The network's maximum.
        max: u32,
    },
    /// The command bytes are not printable ASCII followed by NUL padding.
    #[error("invalid command bytes {raw:02x?}")]
    InvalidCommand {
        /// The 12 bytes received.
        raw: [u8; COMMAND_LEN],
    },
    /// The announced payload length is above this command's own maximum.
    #[error("{command} frame announces {length} payload bytes; at most {max} allowed for it")]
    CommandPayloadTooLarge {
        /// The frame's command.
        command: Command,
        /// The announced length.
        length: u32,
        /// The command's maximum.
        max: u32,
    },
    /// The payload does not hash to the header's checksum.
    #[error("{command} frame checksum mismatch: header says {header:02x?}, payload hashes to {computed:02x?}")]
    BadChecksum {
        /// The frame's command.
        command: Command,
        /// The checksum in the header.
        header: [u8; 4],
        /// The first four bytes of the payload's double SHA-256.
        computed: [u8; 4],
    },
    /// The input ended before the frame did (only from slice decoding; a stream waits for more).
    #[error("frame truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the frame needs in all.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl FrameError {
    /// Whether a stream reader drops just this frame and carries on, as Bitcoin Core does
    /// (`V1Transport::GetReceivedMessage` in `net.cpp` sets `reject_message` for a bad checksum or
    /// an invalid message type, and the connection stays): a bad checksum or invalid command
    /// bytes. Every other frame error ends the connection.
    ///
    /// ```
    /// use btcpeer_core::wire::{Command, FrameError};
    ///
    /// let bad = FrameError::BadChecksum { command: Command::PING, header: [0; 4], computed: [1; 4] };
    /// assert!(bad.is_droppable());
    /// assert!(!FrameError::PayloadTooLarge { length: 5_000_000, max: 4_000_000 }.is_droppable());
    /// ```
    pub fn is_droppable(&self) -> bool {
        matches!(self, FrameError::BadChecksum { .. } | FrameError::InvalidCommand { .. })
    }
}

/// A frame or payload that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame (header, length, checksum) was refused.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The frame was sound but its payload was not.
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

/// A message that cannot be encoded as it stands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded payload is larger than the command's (or network's) maximum, so the remote would
    /// refuse it.
    #[error("{command} payload of {length} bytes exceeds its maximum of {max}")]
    PayloadTooLarge {
        /// The message's command.
        command: Command,
        /// The encoded payload length.
        length: usize,
        /// The maximum.
        max: u32,
    },
    /// A field holds a value the protocol cannot carry.
    #[error("{command} field {field}: {reason}")]
    Invalid {
        /// The message's command.
        command: Command,
        /// The field.
        field: &'static str,
        /// Why it cannot be encoded.
        reason: &'static str,
    },
}
