//! What happened to a queued message, and the errors of the peer's API. Why a peer disconnected is
//! the core's [`DisconnectReason`].

use std::fmt;

pub use btcpeer_core::peer::{DisconnectReason, Violation};

/// What became of a queued message (R-S1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Its bytes were written to the stream.
    Sent,
    /// The peer disconnected before it was written.
    Dropped(DisconnectReason),
}

/// Why a message could not be queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The outbound queue holds its maximum of bytes; try again later or use
    /// [`Peer::send`](super::Peer::send), which waits for room.
    #[error("outbound queue full: {queued} bytes queued, limit {limit}")]
    Full {
        /// Bytes queued now.
        queued: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The message could not be encoded.
    #[error(transparent)]
    Encode(#[from] crate::wire::EncodeError),
    /// The payload does not fit a BIP324 packet, whose length field has 24 bits, and the peer
    /// speaks v2 (or may, its handshake not being done). Only networks whose messages may exceed
    /// 16 MiB meet this.
    #[error("{command} payload of {length} bytes does not fit a v2 packet (at most {max} bytes of contents)")]
    TooLargeForV2 {
        /// The message's command.
        command: crate::wire::Command,
        /// The payload length.
        length: usize,
        /// The most contents (message id and payload) a packet carries.
        max: usize,
    },
}

/// Why a stream could not be associated with a peer. The stream is handed back when the peer
/// already has one; after a disconnect it is closed (dropped), as btcd does.
#[derive(thiserror::Error)]
pub enum AssociateError<S> {
    /// The peer already has a stream; this one is returned untouched.
    #[error("peer already has a connection")]
    AlreadyAssociated(S),
    /// The peer was disconnected first; the stream was closed.
    #[error("peer is disconnected: {0}")]
    Disconnected(DisconnectReason),
}

impl<S> fmt::Debug for AssociateError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssociateError::AlreadyAssociated(_) => f.write_str("AlreadyAssociated(..)"),
            AssociateError::Disconnected(r) => write!(f, "Disconnected({r:?})"),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A user-agent name, version or comment contains one of `/ : ( )` (BIP14's separators) or a
    /// character outside printable ASCII.
    #[error("user agent {part} {value:?} contains {bad:?}, which BIP14 reserves or forbids")]
    UserAgentCharacter {
        /// Which part: `name`, `version` or `comment`.
        part: &'static str,
        /// The offending text.
        value: String,
        /// The offending character.
        bad: char,
    },
    /// The whole user agent is longer than 256 bytes.
    #[error("user agent {user_agent:?} is {len} bytes long; at most 256 are allowed")]
    UserAgentTooLong {
        /// The user agent that would be sent.
        user_agent: String,
        /// Its length.
        len: usize,
    },
    /// A setting out of range.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}
