//! The peer protocol as state machines: bytes and time are arguments, never read here.
//!
//! - [`VersionHandshake`]: the version handshake and its validation, in Core's
//!   order and with Core's leniencies.
//! - [`rules`]: what the peer does itself with each message after the handshake:
//!   answer a ping, record a preference, ignore and count, or end the connection.
//! - [`Liveness`]: ping schedule, pong, idle and stall deadlines on a clock that does not charge
//!   our own processing time to the remote.
//! - [`KnownInventory`] and [`TrickleQueue`]: what the remote already knows, and announcements
//!   waiting for the trickle tick.
//! - [`ProtocolState`]: one connection's state after the handshake and the compound steps on it,
//!   kept in one place by both drivers.
//! - [`PeerCore`]: all of the above for one connection, driven by frames in, time and commands;
//!   giving messages to send, events and the next deadline (the shape of `quinn-proto`'s
//!   `Connection`: `handle_frame`, `poll_transmit`, `poll_event`, `poll_timeout`,
//!   `handle_timeout`).
//! - [`OutboundQueue`] and [`Progress`]: the outbound queue's accounting and what became of each
//!   queued message (every completion resolves).
//! - [`Traffic`] and [`CommandTable`]: bytes and messages each way, per command, bounded.
//! - [`DisconnectReason`]: why a connection ended, for every path.

mod core;
mod handshake;
pub mod inventory;
pub mod liveness;
pub mod outbound;
mod reason;
pub mod rules;
mod state;
mod stats;

pub use self::core::{CoreConfig, Event, PeerCore, Read};
pub use handshake::{HandshakeRules, HandshakeStep, VersionHandshake};
pub use inventory::{KnownInventory, TrickleQueue};
pub use liveness::{Liveness, Timeouts};
pub use outbound::{OutboundQueue, Progress, QueueError, SendOutcome};
pub use reason::{DisconnectReason, Violation};
pub use state::{Announced, LocatorUndo, ProtocolState};
pub use stats::{CommandStats, CommandTable, Traffic};

use crate::wire::{SendTxRcncl, VersionMessage};

/// Whether we dialed the remote or it dialed us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The remote connected to us.
    Inbound,
    /// We connected to the remote.
    Outbound,
}

impl Direction {
    /// `"inbound"` or `"outbound"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// What the handshake learned about the remote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteInfo {
    /// The remote's version message.
    pub version: VersionMessage,
    /// min(our version, the remote's).
    pub negotiated_version: u32,
    /// The remote's clock minus ours, in seconds.
    pub time_offset: i64,
    /// The remote sent `sendaddrv2` at a version that allows it.
    pub wants_addrv2: bool,
    /// The remote sent `wtxidrelay` at a version that allows it.
    pub wtxid_relay: bool,
    /// The relay flag of the remote's version (BIP37): whether it wants transaction announcements.
    /// `false` for Core's block-relay-only connections and `-blocksonly` nodes, which get none
    /// until they load a filter (the driver's `relays_transactions` follows that).
    pub relay: bool,
    /// The remote's `sendtxrcncl`, if it sent one.
    pub txrcncl: Option<SendTxRcncl>,
    /// The transport the connection uses.
    pub transport: Transport,
}

/// Which transport a peer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// Plaintext v1 framing.
    V1,
    /// BIP324 encrypted transport.
    V2,
}

impl Transport {
    /// `"v1"` or `"v2"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::V1 => "v1",
            Transport::V2 => "v2",
        }
    }
}
