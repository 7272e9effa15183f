//! What a [`Node`](super::Node) tells its application, and the rows of its peer table.

use std::net::SocketAddr;
use std::time::Duration;

use btcpeer_core::node::{ConnId, ConnKind, NodeReason, Refusal};

use crate::peer::{DisconnectReason, RemoteInfo, Transport};
use crate::wire::Message;

/// Something that happened on a node.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum NodeEvent {
    /// An inbound connection was admitted (its handshake follows).
    Accepted {
        /// The connection.
        id: ConnId,
        /// The remote's address.
        addr: SocketAddr,
        /// The peer's own id ([`Peer::id`](crate::peer::Peer::id)), as a per-peer handler sees it.
        peer: u64,
        /// The connection evicted to make room, if the table was full, and its address.
        evicted: Option<(ConnId, SocketAddr)>,
    },
    /// A connection completed its handshake.
    Connected {
        /// The connection.
        id: ConnId,
        /// The remote's address.
        addr: SocketAddr,
        /// What the connection is for.
        kind: ConnKind,
        /// What the remote said of itself.
        remote: Box<RemoteInfo>,
    },
    /// A connection ended (after its handshake, or an inbound one before it).
    Disconnected {
        /// The connection.
        id: ConnId,
        /// The remote's address.
        addr: SocketAddr,
        /// What the connection was for.
        kind: ConnKind,
        /// How it ended.
        reason: DisconnectReason,
        /// Why the node ended it, when it did (an eviction, a ban, a feeler's work done, shutdown).
        by_node: Option<NodeReason>,
    },
    /// A message from a connected peer (after the peer's and the node's own handling: `addr`,
    /// `getaddr`, pings are already dealt with and still shown).
    Message {
        /// The connection.
        id: ConnId,
        /// The remote's address.
        addr: SocketAddr,
        /// The message.
        message: Box<Message>,
    },
    /// An inbound connection was refused.
    Refused {
        /// Who tried.
        addr: SocketAddr,
        /// Why not.
        refusal: Refusal,
    },
    /// An outbound dial failed (refused, timed out, or its handshake failed).
    DialFailed {
        /// Where to.
        addr: SocketAddr,
        /// What for.
        kind: ConnKind,
        /// Why, in words.
        error: String,
    },
}

/// Receives a node's events, on the task where they happen: keep it short (hand heavy work to
/// a task of your own). A panic is caught, logged and counted; the node carries on.
///
/// ```
/// use btcpeer::node::{NodeEvent, NodeHandler};
///
/// struct Log;
/// impl NodeHandler for Log {
///     fn on_event(&self, event: &NodeEvent) {
///         if let NodeEvent::Connected { addr, kind, .. } = event {
///             println!("{addr} connected ({kind:?})");
///         }
///     }
/// }
/// ```
pub trait NodeHandler: Send + Sync + 'static {
    /// One event.
    fn on_event(&self, event: &NodeEvent);
}

/// One row of [`Node::peers`](super::Node::peers), as Core's `getpeerinfo`: the policy's view of
/// the connection and the peer's statistics.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NodePeer {
    /// The connection.
    pub id: ConnId,
    /// The remote's address.
    pub addr: SocketAddr,
    /// What it is for.
    pub kind: ConnKind,
    /// Whether its handshake completed.
    pub established: bool,
    /// The transport (v1 until a v2 handshake completes).
    pub transport: Transport,
    /// Whether transactions are relayed to it (its relay flag, and the connection's kind).
    pub relay: bool,
    /// Its user agent, once known.
    pub user_agent: String,
    /// The last ping's round trip.
    pub ping: Option<Duration>,
    /// The fastest ping.
    pub min_ping: Option<Duration>,
    /// How long it has been connected.
    pub uptime: Duration,
    /// Bytes sent to it.
    pub bytes_sent: u64,
    /// Bytes received from it.
    pub bytes_received: u64,
    /// `tx` messages received.
    pub tx_received: u64,
    /// `block` messages received.
    pub blocks_received: u64,
    /// Addresses from it the node processed.
    pub addr_processed: u64,
    /// Addresses from it dropped by the rate limit.
    pub addr_rate_limited: u64,
}
