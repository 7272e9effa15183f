//! The errors of the peer's API. Why a peer disconnected, what became of a queued message and why
//! one could not be queued are the core's ([`DisconnectReason`], [`SendOutcome`], [`QueueError`]).

use std::fmt;

pub use btcpeer_core::peer::{DisconnectReason, QueueError, SendOutcome, Violation};

/// Why a stream could not be associated with a peer. The stream is handed back when the peer
/// already has one; after a disconnect it is closed (dropped), as btcd does.
#[derive(thiserror::Error)]
#[non_exhaustive]
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
