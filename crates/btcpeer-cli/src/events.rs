//! The typed events more than one subcommand prints, and how any event is printed.
//!
//! Each subcommand has its own event enum (`ConnectEvent`, `ListenEvent`, `DemoEvent`,
//! `DecodeEvent`) or report (`BenchReport`), `#[derive(Serialize)]` for `--json` (one object per
//! line, `"event"` first) and `Display` for the readable line. What several of them share lives
//! here: the events of a peer (`PeerEvent`: `recv`, `dropped`, `handshake`, `stats`,
//! `disconnect`) and the `Handshake` and `Stats` payloads. Their keys are documented in
//! `crates/btcpeer-cli/EVENTS.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use btcpeer::peer::{CommandStats, DisconnectReason, Peer, PeerStats, RemoteInfo};
use serde::Serialize;

use crate::fields::service_names;

/// An event a subcommand prints: its JSON form with `--json`, its `Display` form otherwise.
pub trait Event: Serialize + fmt::Display {
    /// The peer the event is about, if any (`listen` prefixes its lines with it).
    fn peer(&self) -> Option<u64> {
        None
    }
}

/// `value` as one line of JSON.
pub fn json_line<T: Serialize + ?Sized>(value: &T) -> String {
    // The events hold strings, numbers, lists and maps keyed by strings: nothing that fails.
    serde_json::to_string(value)
        .unwrap_or_else(|e| format!(r#"{{"event":"error","reason":{}}}"#, serde_json::Value::from(e.to_string())))
}

/// Prints `line` on stdout and flushes, so that a reader sees it at once.
pub fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (a reader that went away) is not worth dying for.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A duration in whole microseconds.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A duration in whole milliseconds.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Microseconds as `0.163 ms`, or `-`.
fn ms_text(us: Option<u64>) -> String {
    us.map_or_else(|| "-".to_string(), |us| format!("{:.3} ms", us as f64 / 1000.0))
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn unix_secs(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs())
}

/// The `handshake` event: who the remote is and what it asked for.
#[derive(Serialize, Debug, Clone)]
pub struct Handshake {
    pub peer: u64,
    pub addr: String,
    pub version: u32,
    pub services: u64,
    pub service_names: Vec<&'static str>,
    pub user_agent: String,
    pub start_height: i32,
    pub relay: bool,
    /// The transport in use, `"v1"` or `"v2"`.
    pub transport: &'static str,
    pub negotiated_version: u32,
    pub wants_addrv2: bool,
    pub wtxid_relay: bool,
    pub time_offset: i64,
}

impl Handshake {
    pub fn new(peer: &Peer, remote: &RemoteInfo) -> Handshake {
        let v = &remote.version;
        Handshake {
            peer: peer.id(),
            addr: peer.addr().to_string(),
            version: v.version,
            services: v.services.to_u64(),
            service_names: service_names(v.services),
            user_agent: v.user_agent.clone(),
            start_height: v.start_height,
            relay: v.relay,
            transport: remote.transport.as_str(),
            negotiated_version: remote.negotiated_version,
            wants_addrv2: remote.wants_addrv2,
            wtxid_relay: remote.wtxid_relay,
            time_offset: remote.time_offset,
        }
    }
}

impl fmt::Display for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let services = if self.service_names.is_empty() { "none".to_string() } else { self.service_names.join("|") };
        write!(
            f,
            "handshake: {} version {} (negotiated {}) services {services} height {}, transport {}, relay {}, \
             addrv2 {}, wtxidrelay {}",
            self.user_agent,
            self.version,
            self.negotiated_version,
            self.start_height,
            self.transport,
            yes_no(self.relay),
            yes_no(self.wants_addrv2),
            yes_no(self.wtxid_relay),
        )
    }
}

/// The events of a peer that `connect` and `listen` both print; their own enums carry these as
/// an untagged variant, so that each keeps its own `"event"` name.
#[derive(Serialize, Debug)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PeerEvent {
    /// A frame read; `size` is its bytes on the wire.
    Recv {
        peer: u64,
        command: String,
        size: usize,
    },
    /// A frame dropped unread, as Bitcoin Core drops it.
    Dropped {
        peer: u64,
        reason: String,
        size: usize,
    },
    Handshake(Handshake),
    Stats(Box<Stats>),
    /// `kind` is a stable name: `local_request`, `remote_closed` …
    Disconnect {
        peer: u64,
        reason: String,
        kind: &'static str,
    },
}

impl PeerEvent {
    /// The `stats` event for `stats`.
    pub fn stats(stats: &PeerStats) -> PeerEvent {
        PeerEvent::Stats(Box::new(Stats::from(stats)))
    }

    /// The `disconnect` event for `peer`, which ended for `reason`.
    pub fn disconnect(peer: &Peer, reason: &DisconnectReason) -> PeerEvent {
        PeerEvent::Disconnect { peer: peer.id(), reason: reason.to_string(), kind: reason.kind() }
    }
}

impl Event for PeerEvent {
    fn peer(&self) -> Option<u64> {
        Some(match self {
            PeerEvent::Recv { peer, .. } | PeerEvent::Dropped { peer, .. } | PeerEvent::Disconnect { peer, .. } => {
                *peer
            }
            PeerEvent::Handshake(h) => h.peer,
            PeerEvent::Stats(s) => s.peer,
        })
    }
}

impl fmt::Display for PeerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerEvent::Recv { command, size, .. } => write!(f, "recv {command} {size} bytes"),
            PeerEvent::Dropped { reason, size, .. } => write!(f, "dropped {size} bytes: {reason}"),
            PeerEvent::Handshake(h) => h.fmt(f),
            PeerEvent::Stats(s) => s.fmt(f),
            PeerEvent::Disconnect { reason, kind, .. } => write!(f, "disconnect: {reason} ({kind})"),
        }
    }
}

/// Messages and bytes each way, for one command (or all others).
#[derive(Serialize, Debug, Clone, Copy)]
pub struct Traffic {
    pub messages_sent: u64,
    pub bytes_sent: u64,
    pub messages_received: u64,
    pub bytes_received: u64,
}

impl From<CommandStats> for Traffic {
    fn from(c: CommandStats) -> Traffic {
        Traffic {
            messages_sent: c.messages_sent,
            bytes_sent: c.bytes_sent,
            messages_received: c.messages_received,
            bytes_received: c.bytes_received,
        }
    }
}

/// A ping waiting for its pong.
#[derive(Serialize, Debug, Clone, Copy)]
pub struct OutstandingPing {
    pub nonce: u64,
    pub waited_us: u64,
}

/// The remote's `sendcmpct` preference.
#[derive(Serialize, Debug, Clone, Copy)]
pub struct CompactBlocks {
    pub announce: bool,
    pub version: u64,
}

/// The `stats` event: every field of the snapshot, durations in microseconds (`_us`), times in
/// Unix seconds, `per_command` keyed by command.
#[derive(Serialize, Debug, Clone)]
pub struct Stats {
    /// The peer's id, twice: `peer` as in every event, `id` as in the snapshot.
    pub peer: u64,
    pub id: u64,
    pub addr: String,
    pub local_addr: Option<String>,
    pub direction: &'static str,
    pub transport: &'static str,
    /// What the remote's `version` said.
    pub services: u64,
    pub service_names: Vec<&'static str>,
    pub version: u32,
    pub negotiated_version: u32,
    pub user_agent: String,
    /// Heights: the remote's at the handshake, and the last block it announced.
    pub start_height: i32,
    pub last_block_height: i32,
    pub time_offset: i64,
    /// Times, in Unix seconds (null until they happen).
    pub connected_at: Option<u64>,
    pub handshake_at: Option<u64>,
    pub last_send: Option<u64>,
    pub last_recv: Option<u64>,
    /// Messages and bytes each way, in all.
    #[serde(flatten)]
    pub totals: Traffic,
    /// The same per command, keyed by command.
    pub per_command: BTreeMap<String, Traffic>,
    /// What the remote sent that was dropped or of a command btcpeer does not know (C-1, C-3).
    pub per_command_other: Traffic,
    pub unknown_received: u64,
    /// Ignored and dropped as Bitcoin Core does.
    pub ignored_received: u64,
    pub dropped_frames: u64,
    /// The remote wants transaction announcements.
    pub relay: bool,
    pub refused_announcements: u64,
    /// Ping round trips, in microseconds (null before the first pong).
    pub last_ping_rtt_us: Option<u64>,
    pub min_ping_rtt_us: Option<u64>,
    pub outstanding_ping: Option<OutstandingPing>,
    /// What the remote asked for: `sendheaders`, `sendaddrv2`, `wtxidrelay`, `sendcmpct`, `feefilter`.
    pub wants_headers: bool,
    pub wants_addrv2: bool,
    pub wtxid_relay: bool,
    pub compact_blocks: Option<CompactBlocks>,
    pub fee_filter: Option<i64>,
    /// What waits to be sent, and the inventory the remote is known to have.
    pub queued_messages: usize,
    pub queued_bytes: usize,
    pub known_inventory: usize,
    /// Why the peer ended (null while connected).
    pub disconnect_reason: Option<String>,
    pub disconnect_kind: Option<&'static str>,
}

impl From<&PeerStats> for Stats {
    fn from(s: &PeerStats) -> Stats {
        Stats {
            peer: s.id,
            id: s.id,
            addr: s.addr.to_string(),
            local_addr: s.local_addr.map(|a| a.to_string()),
            direction: s.direction.as_str(),
            transport: s.transport.as_str(),
            services: s.services.to_u64(),
            service_names: service_names(s.services),
            version: s.version,
            negotiated_version: s.negotiated_version,
            user_agent: s.user_agent.clone(),
            start_height: s.start_height,
            last_block_height: s.last_block_height,
            time_offset: s.time_offset,
            connected_at: unix_secs(s.connected_at),
            handshake_at: unix_secs(s.handshake_at),
            last_send: unix_secs(s.last_send),
            last_recv: unix_secs(s.last_recv),
            totals: Traffic {
                messages_sent: s.messages_sent,
                bytes_sent: s.bytes_sent,
                messages_received: s.messages_received,
                bytes_received: s.bytes_received,
            },
            per_command: s.per_command.iter().map(|(command, c)| (command.to_string(), Traffic::from(c))).collect(),
            per_command_other: Traffic::from(s.per_command.other()),
            unknown_received: s.unknown_received,
            ignored_received: s.ignored_received,
            dropped_frames: s.dropped_frames,
            relay: s.relay,
            refused_announcements: s.refused_announcements,
            last_ping_rtt_us: s.last_ping_rtt.map(micros),
            min_ping_rtt_us: s.min_ping_rtt.map(micros),
            outstanding_ping: s
                .outstanding_ping
                .map(|(nonce, waited)| OutstandingPing { nonce, waited_us: micros(waited) }),
            wants_headers: s.wants_headers,
            wants_addrv2: s.wants_addrv2,
            wtxid_relay: s.wtxid_relay,
            compact_blocks: s.compact_blocks.map(|c| CompactBlocks { announce: c.send_compact, version: c.version }),
            fee_filter: s.fee_filter,
            queued_messages: s.queued_messages,
            queued_bytes: s.queued_bytes,
            known_inventory: s.known_inventory,
            disconnect_reason: s.disconnect_reason.as_ref().map(|r| r.to_string()),
            disconnect_kind: s.disconnect_reason.as_ref().map(|r| r.kind()),
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stats: {} {} {}\n  sent {} messages ({} bytes), received {} messages ({} bytes)",
            self.addr,
            self.direction,
            self.transport,
            self.totals.messages_sent,
            self.totals.bytes_sent,
            self.totals.messages_received,
            self.totals.bytes_received,
        )?;
        if self.last_ping_rtt_us.is_some() {
            write!(
                f,
                "\n  ping round trip: last {}, min {}",
                ms_text(self.last_ping_rtt_us),
                ms_text(self.min_ping_rtt_us)
            )?;
        }
        if self.ignored_received > 0 || self.dropped_frames > 0 {
            write!(
                f,
                "\n  ignored {} messages, dropped {} frames (as Bitcoin Core does)",
                self.ignored_received, self.dropped_frames
            )?;
        }
        if !self.relay {
            write!(f, "\n  the remote asked for no transaction announcements (relay = false)")?;
        }
        if !self.per_command.is_empty() {
            write!(f, "\n  per command:")?;
            for (command, c) in &self.per_command {
                write!(
                    f,
                    "\n    {command}: sent {} ({} bytes), received {} ({} bytes)",
                    c.messages_sent, c.bytes_sent, c.messages_received, c.bytes_received,
                )?;
            }
        }
        Ok(())
    }
}

/// The `pong` text: `pong: 0.163 ms`.
pub fn pong_text(rtt_us: u64) -> String {
    format!("pong: {}", ms_text(Some(rtt_us)))
}

/// Serializes with `Display` (hashes as in their display order).
pub fn display<T: fmt::Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// Serializes a duration as whole milliseconds.
pub fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(millis(*d))
}
