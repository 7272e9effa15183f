//! The per-peer statistics: kept in one place, copied out consistently by
//! [`Peer::stats`](super::Peer::stats).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::message_compact_blocks::SendCmpct;

use super::error::DisconnectReason;
use super::{ConnState, Direction, Peer, PeerAddr, Transport};
use btcpeer_core::peer::CommandTable;

/// A consistent copy of a peer's statistics.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PeerStats {
    /// The peer's id (unique in the process, from 1).
    pub id: u64,
    /// The remote's address.
    pub addr: PeerAddr,
    /// Our side's address, when known.
    pub local_addr: Option<SocketAddr>,
    /// Inbound or outbound.
    pub direction: Direction,
    /// The transport.
    pub transport: Transport,
    /// The remote's services (none before its version arrives).
    pub services: ServiceFlags,
    /// The protocol version the remote advertised (0 before its version arrives).
    pub version: u32,
    /// The negotiated protocol version: min(ours, theirs), or ours before the handshake.
    pub negotiated_version: u32,
    /// The remote's user agent.
    pub user_agent: String,
    /// The height in the remote's version message.
    pub start_height: i32,
    /// The remote's latest known height: the start height, then raised by
    /// [`Peer::update_last_block_height`](super::Peer::update_last_block_height), never lowered.
    pub last_block_height: i32,
    /// The remote's clock minus ours, in seconds, at version time.
    pub time_offset: i64,
    /// When the stream was associated.
    pub connected_at: Option<SystemTime>,
    /// When the handshake completed.
    pub handshake_at: Option<SystemTime>,
    /// When a message was last written.
    pub last_send: Option<SystemTime>,
    /// When a message was last read.
    pub last_recv: Option<SystemTime>,
    /// Bytes written on the wire.
    pub bytes_sent: u64,
    /// Bytes read from the wire.
    pub bytes_received: u64,
    /// Messages written.
    pub messages_sent: u64,
    /// Messages read.
    pub messages_received: u64,
    /// Traffic per command: the known commands, plus one `other` bucket.
    pub per_command: CommandTable,
    /// Messages with a command btcpeer does not know.
    pub unknown_received: u64,
    /// Messages ignored, as Bitcoin Core ignores them: before `version` or before `verack`, a
    /// second `version` or `verack`, not defined at the negotiated version, forbidden by the bloom
    /// rules at an old version, `sendtxrcncl`, a `feefilter` outside the money range, a
    /// `sendcmpct` of another version than 2.
    pub ignored_received: u64,
    /// Frames dropped unread, as Core drops them: a v1 frame with a bad checksum or invalid command
    /// bytes, a v2 packet whose contents name no valid command. Their bytes are in
    /// `per_command.other()`.
    pub dropped_frames: u64,
    /// Whether the remote wants transaction announcements: its version's relay flag, switched on
    /// by a later `filterload` or `filterclear` (BIP37). While false, transaction inventory is not
    /// announced to it.
    pub relay: bool,
    /// Transaction announcements not made because the remote asked for none (`relay = false`) or
    /// because they named a transaction by the kind of id the negotiation excludes.
    pub refused_announcements: u64,
    /// The last ping round trip.
    pub last_ping_rtt: Option<Duration>,
    /// The smallest ping round trip.
    pub min_ping_rtt: Option<Duration>,
    /// The nonce of the ping awaiting its pong, and how long it has waited.
    pub outstanding_ping: Option<(u64, Duration)>,
    /// The remote sent `sendheaders` (BIP130).
    pub wants_headers: bool,
    /// The remote sent `sendaddrv2` at a version that allows it (BIP155).
    pub wants_addrv2: bool,
    /// The remote sent `wtxidrelay` at a version that allows it (BIP339).
    pub wtxid_relay: bool,
    /// The remote's `sendcmpct` preference (BIP152).
    pub compact_blocks: Option<SendCmpct>,
    /// The remote's fee filter in sat/kvB (BIP133).
    pub fee_filter: Option<i64>,
    /// Messages waiting in the outbound queue.
    pub queued_messages: usize,
    /// Bytes waiting in the outbound queue.
    pub queued_bytes: usize,
    /// Entries in the known-inventory cache.
    pub known_inventory: usize,
    /// Requests waiting for an answer under a stall deadline.
    pub pending_requests: usize,
    /// Announcements waiting for the trickle tick.
    pub pending_announcements: usize,
    /// Announcements dropped because too many were waiting.
    pub dropped_announcements: u64,
    /// Why the peer disconnected, once it has.
    pub disconnect_reason: Option<DisconnectReason>,
}

/// A copy of the statistics: the core's protocol state and counts, and what the driver keeps
/// (addresses, times, the queue's depth).
pub(crate) fn snapshot(peer: &Peer, st: &mut ConnState, reason: Option<DisconnectReason>) -> PeerStats {
    let known_inventory = st.core.state_mut().known().len();
    let core = &st.core;
    let p = core.state();
    let remote = p.remote();
    let our_version = peer.shared.config.inner.protocol_version;
    let (queued_messages, queued_bytes) = core.queue_depth();
    let (last_ping_rtt, min_ping_rtt) = p.rtts();
    let (pending_announcements, dropped_announcements) = p.pending_announcements();
    let prefs = p.prefs();
    let traffic = p.traffic();
    PeerStats {
        id: peer.shared.id,
        addr: peer.shared.addr.clone(),
        local_addr: st.local_addr,
        direction: peer.shared.direction,
        transport: core.transport().unwrap_or(Transport::V1),
        services: remote.map_or(ServiceFlags::NONE, |r| r.version.services),
        version: remote.map_or(0, |r| r.version.version),
        negotiated_version: remote.map_or(our_version, |r| r.negotiated_version),
        user_agent: remote.map(|r| r.version.user_agent.clone()).unwrap_or_default(),
        start_height: remote.map_or(0, |r| r.version.start_height),
        last_block_height: st.last_block_height,
        time_offset: remote.map_or(0, |r| r.time_offset),
        connected_at: st.connected_at,
        handshake_at: st.handshake_at,
        last_send: st.last_send,
        last_recv: st.last_recv,
        bytes_sent: traffic.bytes_sent(),
        bytes_received: traffic.bytes_received(),
        messages_sent: traffic.messages_sent(),
        messages_received: traffic.messages_received(),
        per_command: traffic.per_command().clone(),
        unknown_received: p.unknown_received(),
        ignored_received: p.ignored_received(),
        dropped_frames: traffic.dropped_frames(),
        relay: p.relay(),
        refused_announcements: p.refused_announcements(),
        last_ping_rtt,
        min_ping_rtt,
        outstanding_ping: p.ping_outstanding().map(|(n, sent)| (n, super::now().saturating_duration_since(sent))),
        wants_headers: prefs.wants_headers,
        wants_addrv2: remote.is_some_and(|r| r.wants_addrv2),
        wtxid_relay: remote.is_some_and(|r| r.wtxid_relay),
        compact_blocks: prefs.compact_blocks,
        fee_filter: prefs.fee_filter,
        queued_messages,
        queued_bytes,
        known_inventory,
        pending_requests: p.pending_requests(),
        pending_announcements,
        dropped_announcements,
        disconnect_reason: reason,
    }
}
