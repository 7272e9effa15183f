//! The outbound queue's accounting, without I/O: ordered, bounded in bytes, a
//! sequence number per message, and the bookkeeping that resolves every completion.
//!
//! Messages are encoded once, when queued, into a shared arena that is dropped whenever the queue
//! drains (so an idle peer holds no buffer). Each message gets a sequence number; the writer reports
//! the highest number written ([`Progress::written`]), and the end reports the reason the rest were
//! dropped ([`Progress::closed`]); [`Progress::outcome`] then says what became of any message. The
//! `btcpeer` driver keeps an [`OutboundQueue`] under a lock and its [`Progress`] where completions
//! can wait on it.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::DisconnectReason;
use crate::transport::v2::{MAX_PACKET_CONTENTS, contents_len};
use crate::wire::frame::HEADER_LEN;
use crate::wire::limits::max_payload_len;
use crate::wire::{Command, EncodeError, Message};

/// What became of a queued message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// the driver's waiting send (`btcpeer`'s `Peer::send`), which waits for room.
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

/// Sequence number given to messages refused because the queue is already closed: never written,
/// so their outcome is the close's.
pub const NEVER: u64 = u64::MAX;
/// Bytes of small messages the arena reserves at a time.
const ARENA_STEP: usize = 4096;

/// How far the writer got, and why the rest was dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Every message with a sequence number up to this one was written.
    pub written: u64,
    /// Set when the peer has ended: every message not written was dropped for this reason.
    pub closed: Option<DisconnectReason>,
}

impl Progress {
    /// What became of message `seq`, if it is settled.
    pub fn outcome(&self, seq: u64) -> Option<SendOutcome> {
        if seq <= self.written {
            return Some(SendOutcome::Sent);
        }
        self.closed.clone().map(SendOutcome::Dropped)
    }
}

/// A message waiting for the writer.
#[derive(Debug)]
pub struct Outgoing {
    /// Its command.
    pub command: Command,
    /// Its payload.
    pub payload: Bytes,
    /// The v1 checksum, when the message was prepared with it.
    pub checksum: Option<[u8; 4]>,
    /// Its sequence number.
    pub seq: u64,
}

/// The queue: see the [module](self).
#[derive(Debug)]
pub struct OutboundQueue {
    items: VecDeque<Outgoing>,
    /// Bytes queued or being written (payload plus v1 header each), not yet confirmed written.
    bytes: usize,
    next_seq: u64,
    closed: bool,
    arena: BytesMut,
    limit: usize,
    network_max: u32,
    /// Whether the connection speaks or may yet speak v2, whose packets carry at most 16 MiB.
    v2_possible: bool,
}

impl OutboundQueue {
    /// A queue holding up to `limit` bytes (one message of any size when empty), for a network
    /// whose payloads may reach `network_max`.
    pub fn new(limit: usize, network_max: u32, v2_possible: bool) -> Self {
        OutboundQueue {
            items: VecDeque::new(),
            bytes: 0,
            next_seq: 1,
            closed: false,
            arena: BytesMut::new(),
            limit,
            network_max,
            v2_possible,
        }
    }

    /// Encodes and queues `msg`: its sequence number ([`NEVER`] once closed), or why not. A failed
    /// encode leaves nothing behind.
    pub fn push(&mut self, msg: &Message) -> Result<u64, QueueError> {
        self.push_message(msg)
    }

    fn push_message(&mut self, msg: &Message) -> Result<u64, QueueError> {
        if self.closed {
            return Ok(NEVER);
        }
        if self.arena.capacity().saturating_sub(self.arena.len()) < 256 {
            self.arena.reserve(ARENA_STEP);
        }
        // A failed encode must leave nothing behind, or the next message would carry its bytes.
        let start = self.arena.len();
        if let Err(e) = msg.encode_payload(&mut self.arena) {
            self.arena.truncate(start);
            return Err(e.into());
        }
        let payload = self.arena.split().freeze();
        self.push_raw(msg.command(), payload, None)
    }

    /// Queues an already-encoded payload, with its checksum if known.
    pub fn push_raw(&mut self, command: Command, payload: Bytes, checksum: Option<[u8; 4]>) -> Result<u64, QueueError> {
        if self.closed {
            return Ok(NEVER);
        }
        let max = max_payload_len(command, self.network_max);
        if payload.len() > max as usize {
            return Err(QueueError::Encode(EncodeError::PayloadTooLarge { command, length: payload.len(), max }));
        }
        // The cheap test first: only payloads near 16 MiB need the message id's length.
        if payload.len() > MAX_PACKET_CONTENTS.saturating_sub(1 + crate::wire::COMMAND_LEN)
            && self.v2_possible
            && contents_len(command, payload.len()) > MAX_PACKET_CONTENTS
        {
            return Err(QueueError::TooLargeForV2 { command, length: payload.len(), max: MAX_PACKET_CONTENTS });
        }
        let size = payload.len().saturating_add(HEADER_LEN);
        // An empty queue takes any message, so one larger than the limit can still be sent.
        if self.bytes > 0 && self.bytes.saturating_add(size) > self.limit {
            return Err(QueueError::Full { queued: self.bytes, limit: self.limit });
        }
        let seq = self.next_seq;
        self.next_seq = seq.saturating_add(1);
        self.bytes = self.bytes.saturating_add(size);
        self.items.push_back(Outgoing { command, payload, checksum, seq });
        Ok(seq)
    }

    /// Takes the next message for writing (its bytes stay counted until
    /// [`written`](OutboundQueue::written)).
    pub(crate) fn pop(&mut self) -> Option<Outgoing> {
        self.items.pop_front()
    }

    /// `bytes` taken by [`take_batch`](OutboundQueue::take_batch) were written.
    pub fn written(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_sub(bytes);
        if self.items.is_empty() {
            // Nothing waits: let the arena's memory go once the writer drops its slices.
            self.arena = BytesMut::new();
        }
    }

    /// Ends the queue: everything waiting is dropped, as is anything queued later.
    pub fn close(&mut self) {
        self.closed = true;
        self.items.clear();
        self.bytes = 0;
        self.arena = BytesMut::new();
    }

    /// The transport is settled: v2 or not.
    pub fn set_v2(&mut self, v2: bool) {
        self.v2_possible = v2;
    }

    /// Messages and bytes waiting or being written.
    pub fn depth(&self) -> (usize, usize) {
        (self.items.len(), self.bytes)
    }

    /// Whether nothing waits for the writer.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_s1_outcomes_follow_the_writer_then_the_close() {
        let mut q = OutboundQueue::new(1 << 20, 4_000_000, false);
        let (a, b) = (q.push(&Message::Ping(1)).unwrap(), q.push(&Message::Ping(2)).unwrap());
        let mut p = Progress::default();
        assert_eq!(p.outcome(a), None);
        p.written = q.pop().unwrap().seq;
        q.written(32);
        assert_eq!((p.outcome(a), p.outcome(b)), (Some(SendOutcome::Sent), None));
        q.close();
        p.closed = Some(DisconnectReason::LocalRequest);
        assert_eq!(p.outcome(b), Some(SendOutcome::Dropped(DisconnectReason::LocalRequest)));
        assert_eq!(q.push(&Message::Ping(3)).unwrap(), NEVER);
    }

    #[test]
    fn r_s2_bounded_in_bytes_but_an_empty_queue_takes_anything() {
        let mut q = OutboundQueue::new(100, 4_000_000, false);
        let big = Message::Unknown { command: Command::new("big").unwrap(), payload: vec![0u8; 500].into() };
        assert!(q.push(&big).is_ok());
        assert!(matches!(q.push(&Message::Ping(1)), Err(QueueError::Full { .. })));
        assert_eq!(q.depth(), (1, 524));
    }
}
