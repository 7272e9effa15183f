//! The peer protocol as one state machine: bytes and time are arguments, never read here.
//!
//! [`PeerCore`] is the whole protocol of one connection (the shape of `quinn-proto`'s
//! `Connection`: bytes or frames in, `poll_transmit`, `poll_event`, `poll_timeout`,
//! `handle_timeout`), and every driver runs it: `btcpeer`'s tokio `Peer` (one per peer, under its
//! lock), the blocking driver, the simulator and the fuzz targets. Its parts are internal: the
//! version handshake (Core's order and leniencies), the rules for each message after it
//! ([`rules`]), the deadlines (a clock that does not charge our own processing time to the
//! remote), what the remote knows ([`KnownInventory`]) and the trickle, the byte-bounded,
//! numbered outbound queue, the statistics.
//!
//! What a driver or an application reads: [`CoreConfig`] (the library's one set of defaults),
//! [`Event`], [`ProtocolState`] (through accessors), [`Progress`] (what became of each queued
//! message: every completion resolves), [`Traffic`] and [`CommandTable`], and
//! [`DisconnectReason`] (why a connection ended, for every path).

mod core;
mod handshake;
pub mod inventory;
mod liveness;
mod outbound;
mod reason;
pub mod rules;
mod state;
mod stats;

pub use self::core::{CoreConfig, Event, PeerCore, Read};
pub use handshake::HandshakeRules;
pub use inventory::KnownInventory;
pub use liveness::{Timeouts, poisson_delay, poisson_delay_from};
pub use outbound::{Progress, QueueError, SendOutcome};
pub use reason::{DisconnectReason, Violation};
pub use state::{Announced, ProtocolState};
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
