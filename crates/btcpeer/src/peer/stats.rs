//! The per-peer statistics: kept in one place, copied out consistently by
//! [`Peer::stats`](super::Peer::stats).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::message_compact_blocks::SendCmpct;

use super::error::DisconnectReason;
use super::{Direction, PeerAddr, Transport};
use crate::wire::Command;
use bitcoin::BlockHash;
use btcpeer_core::peer::ProtocolState;
use btcpeer_core::peer::liveness::Liveness;

/// Traffic of one command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandStats {
    /// Messages sent.
    pub messages_sent: u64,
    /// Bytes sent, frame headers included.
    pub bytes_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Bytes received, frame headers included.
    pub bytes_received: u64,
}

/// Traffic per command: one entry for each command btcpeer knows (the 36 of [`Command::KNOWN`])
/// and one `other` bucket for everything else, as Bitcoin Core counts (`NET_MESSAGE_TYPE_OTHER`
/// in `net.cpp`). It is indexed by command, never by a name the remote chose, and holds at most
/// 37 entries: a remote sending a million distinct unknown command names changes one bucket,
/// not the peer's memory. Entries are made on a command's first traffic, so an idle peer keeps
/// only the dozen it saw.
///
/// ```
/// use btcpeer::peer::CommandTable;
/// use btcpeer::wire::Command;
///
/// let table = CommandTable::default();
/// assert_eq!(table.of(Command::PING).messages_received, 0);
/// assert_eq!(table.get("ping"), None, "no traffic yet");
/// assert_eq!(table["ping"], table[Command::PING]);
/// assert_eq!(table.iter().count(), 0, "only commands with traffic are listed");
/// ```
#[derive(Clone, Debug)]
pub struct CommandTable {
    /// For each known command (by [`Command::known_index`]) and then `other`: 0 when it has seen
    /// no traffic, else its position in `used` plus one. Indexed by command, never by a name.
    slot: [u8; SLOTS],
    /// The entries of the commands that saw traffic (at most [`SLOTS`]): an idle peer that saw a
    /// dozen commands keeps a dozen entries, not 37.
    used: Vec<CommandStats>,
}

/// The known commands and the `other` bucket.
const SLOTS: usize = Command::KNOWN.len() + 1;
/// The `other` bucket's slot.
const OTHER: usize = Command::KNOWN.len();

impl Default for CommandTable {
    fn default() -> Self {
        CommandTable { slot: [0; SLOTS], used: Vec::new() }
    }
}

/// Equal when every command's traffic is (whatever order the commands first appeared in).
impl PartialEq for CommandTable {
    fn eq(&self, other: &Self) -> bool {
        (0..SLOTS).all(|i| self.at(i) == other.at(i))
    }
}

impl Eq for CommandTable {}

impl CommandTable {
    fn slot_of(command: Command) -> usize {
        command.known_index().unwrap_or(OTHER)
    }

    /// The entry of a slot, made on first use. `None` only for a slot out of range, which
    /// [`CommandTable::slot_of`] never gives.
    fn entry_at(&mut self, slot: usize) -> Option<&mut CommandStats> {
        let s = self.slot.get_mut(slot)?;
        if *s == 0 {
            self.used.push(CommandStats::default());
            // One entry per slot: at most 37, so the position fits a byte.
            *s = u8::try_from(self.used.len()).unwrap_or(u8::MAX);
        }
        self.used.get_mut(usize::from(*s).saturating_sub(1))
    }

    fn entry(&mut self, command: Command) -> Option<&mut CommandStats> {
        self.entry_at(Self::slot_of(command))
    }

    /// The entry of a slot that saw traffic.
    fn used_at(&self, slot: usize) -> Option<&CommandStats> {
        match self.slot.get(slot) {
            Some(&s) if s > 0 => self.used.get(usize::from(s).saturating_sub(1)),
            _ => None,
        }
    }

    /// A slot's traffic, zero when it saw none.
    fn at_ref(&self, slot: usize) -> &CommandStats {
        self.used_at(slot).unwrap_or(&NO_TRAFFIC)
    }

    fn at(&self, slot: usize) -> CommandStats {
        *self.at_ref(slot)
    }

    /// The traffic of `command`; for a command btcpeer does not know, the `other` bucket.
    pub fn of(&self, command: Command) -> CommandStats {
        self.at(Self::slot_of(command))
    }

    /// The traffic of the command named `name`, if it saw any, as a map keyed by name would give it
    /// (`per_command.get("inv")`); a name btcpeer does not know gives the `other` bucket.
    pub fn get(&self, name: &str) -> Option<&CommandStats> {
        self.used_at(Command::new(name).map_or(OTHER, Self::slot_of))
    }

    /// The traffic of every command btcpeer does not know, and of frames dropped before their
    /// command could be trusted (bad checksum, invalid command bytes).
    pub fn other(&self) -> CommandStats {
        self.at(OTHER)
    }

    /// The known commands that saw any traffic, in [`Command::KNOWN`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Command, CommandStats)> + '_ {
        Command::KNOWN.iter().enumerate().filter_map(|(i, c)| self.used_at(i).map(|s| (*c, *s)))
    }
}

/// No traffic: what indexing gives for a command that saw none.
static NO_TRAFFIC: CommandStats =
    CommandStats { messages_sent: 0, bytes_sent: 0, messages_received: 0, bytes_received: 0 };

impl std::ops::Index<Command> for CommandTable {
    type Output = CommandStats;

    /// The traffic of `command` (the `other` bucket for a command btcpeer does not know).
    fn index(&self, command: Command) -> &CommandStats {
        self.at_ref(CommandTable::slot_of(command))
    }
}

/// `stats.per_command["ping"]`: the traffic of the command of that name; a name btcpeer does not
/// know, or that is no valid command, gives the `other` bucket.
impl std::ops::Index<&str> for CommandTable {
    type Output = CommandStats;

    fn index(&self, name: &str) -> &CommandStats {
        self.at_ref(Command::new(name).map_or(OTHER, Self::slot_of))
    }
}

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

/// The mutable state behind the snapshot.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) transport: Transport,
    /// The protocol state (known inventory, trickle, deadlines, the remote, its preferences, relay,
    /// pings, counts): the core's, kept here under the peer's one lock.
    pub(crate) proto: ProtocolState,
    pub(crate) last_getblocks: Option<(Option<BlockHash>, BlockHash)>,
    pub(crate) last_getheaders: Option<(Option<BlockHash>, BlockHash)>,
    pub(crate) local_addr: Option<SocketAddr>,
    pub(crate) connected_at: Option<SystemTime>,
    pub(crate) handshake_at: Option<SystemTime>,
    pub(crate) last_block_height: i32,
    pub(crate) last_send: Option<SystemTime>,
    pub(crate) last_recv: Option<SystemTime>,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) messages_sent: u64,
    pub(crate) messages_received: u64,
    pub(crate) per_command: CommandTable,
    pub(crate) dropped_frames: u64,
}

impl Counters {
    pub(crate) fn new(known_capacity: usize, max_pending: usize) -> Self {
        Counters {
            transport: Transport::V1,
            proto: ProtocolState::new(known_capacity, max_pending),
            last_getblocks: None,
            last_getheaders: None,
            local_addr: None,
            connected_at: None,
            handshake_at: None,
            last_block_height: 0,
            last_send: None,
            last_recv: None,
            bytes_sent: 0,
            bytes_received: 0,
            messages_sent: 0,
            messages_received: 0,
            per_command: CommandTable::default(),
            dropped_frames: 0,
        }
    }

    pub(crate) fn sent(&mut self, command: Command, bytes: usize) {
        let bytes = bytes as u64;
        self.bytes_sent = self.bytes_sent.saturating_add(bytes);
        self.messages_sent = self.messages_sent.saturating_add(1);
        if let Some(c) = self.per_command.entry(command) {
            c.messages_sent = c.messages_sent.saturating_add(1);
            c.bytes_sent = c.bytes_sent.saturating_add(bytes);
        }
    }

    pub(crate) fn received(&mut self, command: Command, bytes: usize) {
        let bytes = bytes as u64;
        self.bytes_received = self.bytes_received.saturating_add(bytes);
        self.messages_received = self.messages_received.saturating_add(1);
        if let Some(c) = self.per_command.entry(command) {
            c.messages_received = c.messages_received.saturating_add(1);
            c.bytes_received = c.bytes_received.saturating_add(bytes);
        }
    }

    /// A frame was dropped unread (bad checksum, invalid command): counted in the `other` bucket,
    /// as Core's `V1Transport` counts a rejected message.
    pub(crate) fn dropped(&mut self, bytes: usize) {
        let bytes = bytes as u64;
        self.bytes_received = self.bytes_received.saturating_add(bytes);
        self.dropped_frames = self.dropped_frames.saturating_add(1);
        if let Some(c) = self.per_command.entry_at(OTHER) {
            c.messages_received = c.messages_received.saturating_add(1);
            c.bytes_received = c.bytes_received.saturating_add(bytes);
        }
    }

    /// A message was ignored.
    pub(crate) fn ignored(&mut self) {
        self.proto.ignored();
    }

    /// Frames ignored or dropped so far: what the misbehaviour limit counts.
    pub(crate) fn misbehaviour(&self) -> u64 {
        self.proto.ignored_received.saturating_add(self.dropped_frames)
    }

    pub(crate) fn snapshot(&mut self, base: SnapshotBase) -> PeerStats {
        let p = &mut self.proto;
        let remote = p.remote.as_ref();
        PeerStats {
            id: base.id,
            addr: base.addr,
            local_addr: self.local_addr,
            direction: base.direction,
            transport: self.transport,
            services: remote.map_or(ServiceFlags::NONE, |r| r.version.services),
            version: remote.map_or(0, |r| r.version.version),
            negotiated_version: remote.map_or(base.our_version, |r| r.negotiated_version),
            user_agent: remote.map(|r| r.version.user_agent.clone()).unwrap_or_default(),
            start_height: remote.map_or(0, |r| r.version.start_height),
            last_block_height: self.last_block_height,
            time_offset: remote.map_or(0, |r| r.time_offset),
            connected_at: self.connected_at,
            handshake_at: self.handshake_at,
            last_send: self.last_send,
            last_recv: self.last_recv,
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            messages_sent: self.messages_sent,
            messages_received: self.messages_received,
            per_command: self.per_command.clone(),
            unknown_received: p.unknown_received,
            ignored_received: p.ignored_received,
            dropped_frames: self.dropped_frames,
            relay: p.relay,
            refused_announcements: p.refused_announcements,
            last_ping_rtt: p.last_rtt,
            min_ping_rtt: p.min_rtt,
            outstanding_ping: p.ping_outstanding.map(|(n, sent)| (n, super::now().saturating_duration_since(sent))),
            wants_headers: p.prefs.wants_headers,
            wants_addrv2: remote.is_some_and(|r| r.wants_addrv2),
            wtxid_relay: remote.is_some_and(|r| r.wtxid_relay),
            compact_blocks: p.prefs.compact_blocks,
            fee_filter: p.prefs.fee_filter,
            queued_messages: base.queue.0,
            queued_bytes: base.queue.1,
            known_inventory: p.known.len(),
            pending_requests: p.liveness.as_ref().map_or(0, Liveness::pending_requests),
            pending_announcements: p.trickle.len(),
            dropped_announcements: p.trickle.dropped(),
            disconnect_reason: base.reason,
        }
    }
}

pub(crate) struct SnapshotBase {
    pub(crate) id: u64,
    pub(crate) addr: PeerAddr,
    pub(crate) direction: Direction,
    pub(crate) our_version: u32,
    pub(crate) queue: (usize, usize),
    pub(crate) reason: Option<DisconnectReason>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_item1_the_command_table_holds_at_most_one_entry_per_known_command_and_one_other() {
        let mut c = Counters::new(10, 10);
        for i in 0..100_000u32 {
            c.received(Command::new(&format!("n{i}")).unwrap_or(Command::PING), 24);
        }
        for k in Command::KNOWN {
            c.received(k, 24);
            c.sent(k, 24);
        }
        c.dropped(30);
        assert_eq!(c.per_command.used.len(), Command::KNOWN.len() + 1);
        assert_eq!(c.per_command.other().messages_received, 100_001);
        assert_eq!(c.per_command.other().bytes_received, 100_000 * 24 + 30);
        assert_eq!(c.per_command.iter().count(), Command::KNOWN.len());
        assert_eq!(c.per_command.get("ping").map(|s| s.messages_sent), Some(1));
        assert_eq!(c.per_command.get("n5"), Some(&c.per_command.other()), "unknown names share a bucket");
        assert!(c.per_command.iter().all(|(_, s)| s.messages_sent == 1 && s.messages_received == 1));
    }
}
