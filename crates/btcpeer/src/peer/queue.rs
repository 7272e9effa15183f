//! The outbound queue (R-S1, R-S2): ordered, bounded in bytes, with a completion per message.
//!
//! Messages are encoded once, when queued, into a shared arena that is dropped whenever the queue
//! drains (so an idle peer holds no buffer). Each message gets a sequence number; the writer reports
//! the highest number written, and the peer's end reports the reason the rest were dropped. A
//! [`Completion`] is just a sequence number and a shared progress cell: it costs nothing unless
//! awaited, and it always resolves, to [`SendOutcome::Sent`] or [`SendOutcome::Dropped`]. (The cell
//! is a mutex and a `Notify` rather than a `watch` channel: an idle peer holds one, and a watch
//! costs a few hundred bytes more.)

use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use super::error::{DisconnectReason, QueueError, SendOutcome};
use crate::transport::v2::{MAX_PACKET_CONTENTS, contents_len};
use crate::wire::frame::HEADER_LEN;
use crate::wire::limits::max_payload_len;
use crate::wire::{Command, EncodeError, Message};

/// Sequence number given to messages refused because the peer is already closed.
const NEVER: u64 = u64::MAX;

#[derive(Clone, Debug, Default)]
pub(crate) struct Progress {
    /// Every message with a sequence number up to this one was written.
    written: u64,
    /// Set when the peer has ended: every message not written was dropped for this reason.
    closed: Option<DisconnectReason>,
}

/// The queue's progress, shared with every completion: the writer and the end update it and wake
/// the completions waiting.
#[derive(Debug, Default)]
struct ProgressCell {
    progress: Mutex<Progress>,
    changed: Notify,
}

impl ProgressCell {
    fn read<R>(&self, f: impl FnOnce(&Progress) -> R) -> R {
        f(&self.progress.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn update(&self, f: impl FnOnce(&mut Progress)) {
        f(&mut self.progress.lock().unwrap_or_else(|e| e.into_inner()));
        self.changed.notify_waiters();
    }
}

/// A message waiting for the writer.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) command: Command,
    pub(crate) payload: Bytes,
    /// The v1 checksum, when the message was prepared with it.
    pub(crate) checksum: Option<[u8; 4]>,
    pub(crate) seq: u64,
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Outgoing>,
    /// Bytes queued or being written (payload plus v1 header each), not yet confirmed written.
    bytes: usize,
    next_seq: u64,
    closed: bool,
    arena: BytesMut,
}

#[derive(Debug)]
pub(crate) struct Queue {
    state: Mutex<State>,
    limit: usize,
    network_max: u32,
    /// Whether the connection speaks or may yet speak v2, whose packets carry at most 16 MiB.
    v2_possible: AtomicBool,
    /// Wakes the writer when a message is queued.
    pub(crate) writer: Notify,
    /// Wakes senders waiting for room.
    space: Notify,
    progress: Arc<ProgressCell>,
}

/// Resolves once the queued message was written or dropped (R-S1). Await it directly, or call
/// [`Completion::outcome`] to look without waiting. Dropping it does not cancel the message.
#[derive(Debug, Clone)]
#[must_use = "a completion does nothing unless awaited; drop it to send without waiting"]
pub struct Completion {
    seq: u64,
    progress: Arc<ProgressCell>,
}

impl Completion {
    fn check(seq: u64, p: &Progress) -> Option<SendOutcome> {
        if seq <= p.written {
            return Some(SendOutcome::Sent);
        }
        p.closed.clone().map(SendOutcome::Dropped)
    }

    /// The outcome, if the message was already written or dropped.
    pub fn outcome(&self) -> Option<SendOutcome> {
        self.progress.read(|p| Self::check(self.seq, p))
    }

    /// Waits for the outcome.
    pub async fn wait(self) -> SendOutcome {
        loop {
            // Registered before looking, so that an update between the look and the wait wakes it.
            let changed = self.progress.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if let Some(outcome) = self.outcome() {
                return outcome;
            }
            changed.await;
        }
    }
}

impl IntoFuture for Completion {
    type Output = SendOutcome;
    type IntoFuture = Pin<Box<dyn Future<Output = SendOutcome> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.wait())
    }
}

/// Bytes of small messages the arena reserves at a time.
const ARENA_STEP: usize = 4096;

/// A queue that goes away unclosed (its peer dropped without ending, which the peer's own drop
/// prevents) still resolves every completion.
impl Drop for Queue {
    fn drop(&mut self) {
        self.progress.update(|p| {
            if p.closed.is_none() {
                p.closed = Some(DisconnectReason::LocalRequest);
            }
        });
    }
}

impl Queue {
    pub(crate) fn new(limit: usize, network_max: u32, v2_possible: bool) -> Queue {
        Queue {
            state: Mutex::new(State { next_seq: 1, ..State::default() }),
            limit,
            network_max,
            v2_possible: AtomicBool::new(v2_possible),
            writer: Notify::new(),
            space: Notify::new(),
            progress: Arc::new(ProgressCell::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn completion(&self, seq: u64) -> Completion {
        Completion { seq, progress: Arc::clone(&self.progress) }
    }

    /// Encodes and queues `msg`, or reports that the queue is full.
    pub(crate) fn push(&self, msg: &Message) -> Result<Completion, QueueError> {
        let mut st = self.lock();
        if st.closed {
            return Ok(self.completion(NEVER));
        }
        if st.arena.capacity().saturating_sub(st.arena.len()) < 256 {
            st.arena.reserve(ARENA_STEP);
        }
        // A failed encode must leave nothing behind, or the next message would carry its bytes.
        let start = st.arena.len();
        if let Err(e) = msg.encode_payload(&mut st.arena) {
            st.arena.truncate(start);
            return Err(e.into());
        }
        let payload = st.arena.split().freeze();
        self.admit(st, msg.command(), payload, None)
    }

    /// Queues an already-encoded payload, with its checksum if known.
    pub(crate) fn push_raw(
        &self,
        command: Command,
        payload: Bytes,
        checksum: Option<[u8; 4]>,
    ) -> Result<Completion, QueueError> {
        let st = self.lock();
        if st.closed {
            return Ok(self.completion(NEVER));
        }
        self.admit(st, command, payload, checksum)
    }

    fn admit(
        &self,
        mut st: std::sync::MutexGuard<'_, State>,
        command: Command,
        payload: Bytes,
        checksum: Option<[u8; 4]>,
    ) -> Result<Completion, QueueError> {
        let max = max_payload_len(command, self.network_max);
        if payload.len() > max as usize {
            return Err(QueueError::Encode(EncodeError::PayloadTooLarge { command, length: payload.len(), max }));
        }
        // The cheap test first: only payloads near 16 MiB need the message id's length.
        if payload.len() > MAX_PACKET_CONTENTS.saturating_sub(1 + crate::wire::COMMAND_LEN)
            && self.v2_possible.load(Ordering::Relaxed)
            && contents_len(command, payload.len()) > MAX_PACKET_CONTENTS
        {
            return Err(QueueError::TooLargeForV2 { command, length: payload.len(), max: MAX_PACKET_CONTENTS });
        }
        let size = payload.len().saturating_add(HEADER_LEN);
        // An empty queue takes any message, so one larger than the limit can still be sent.
        if st.bytes > 0 && st.bytes.saturating_add(size) > self.limit {
            return Err(QueueError::Full { queued: st.bytes, limit: self.limit });
        }
        let seq = st.next_seq;
        st.next_seq = seq.saturating_add(1);
        st.bytes = st.bytes.saturating_add(size);
        st.items.push_back(Outgoing { command, payload, checksum, seq });
        drop(st);
        self.writer.notify_one();
        Ok(self.completion(seq))
    }

    /// Queues `msg`, waiting for room if the queue is full.
    pub(crate) async fn push_wait(&self, msg: &Message) -> Result<Completion, QueueError> {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.push(msg) {
                Err(QueueError::Full { .. }) => notified.await,
                other => return other,
            }
        }
    }

    /// Queues an already-encoded payload, waiting for room if the queue is full.
    pub(crate) async fn push_raw_wait(
        &self,
        command: Command,
        payload: &Bytes,
        checksum: Option<[u8; 4]>,
    ) -> Result<Completion, QueueError> {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.push_raw(command, payload.clone(), checksum) {
                Err(QueueError::Full { .. }) => notified.await,
                other => return other,
            }
        }
    }

    /// Takes queued messages for one write: at least one, then more while under `max_bytes`.
    pub(crate) fn take_batch(&self, max_bytes: usize, out: &mut Vec<Outgoing>) {
        let mut st = self.lock();
        let mut taken = 0usize;
        while let Some(front) = st.items.front() {
            let size = front.payload.len().saturating_add(HEADER_LEN);
            if !out.is_empty() && taken.saturating_add(size) > max_bytes {
                break;
            }
            taken = taken.saturating_add(size);
            if let Some(item) = st.items.pop_front() {
                out.push(item);
            }
        }
    }

    /// Records that every message up to `seq` was written, freeing `bytes`.
    pub(crate) fn written(&self, seq: u64, bytes: usize) {
        {
            let mut st = self.lock();
            st.bytes = st.bytes.saturating_sub(bytes);
            if st.items.is_empty() {
                // Nothing waits: let the arena's memory go once the writer drops its slices.
                st.arena = BytesMut::new();
            }
        }
        self.progress.update(|p| p.written = p.written.max(seq));
        self.space.notify_waiters();
    }

    /// Ends the queue: everything not written is dropped for `reason`, as is anything queued later.
    pub(crate) fn close(&self, reason: DisconnectReason) {
        {
            let mut st = self.lock();
            st.closed = true;
            st.items.clear();
            st.bytes = 0;
            st.arena = BytesMut::new();
        }
        self.progress.update(|p| {
            if p.closed.is_none() {
                p.closed = Some(reason);
            }
        });
        self.space.notify_waiters();
        self.writer.notify_one();
    }

    /// The transport is settled: v2 or not.
    pub(crate) fn set_v2(&self, v2: bool) {
        self.v2_possible.store(v2, Ordering::Relaxed);
    }

    /// Messages and bytes waiting or being written.
    pub(crate) fn depth(&self) -> (usize, usize) {
        let st = self.lock();
        (st.items.len(), st.bytes)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn r_s1_completions_resolve_in_order_sent_then_dropped() {
        let q = Queue::new(1 << 20, 4_000_000, false);
        let a = q.push(&Message::Ping(1)).unwrap();
        let b = q.push(&Message::Ping(2)).unwrap();
        let c = q.push(&Message::Ping(3)).unwrap();
        assert_eq!(a.outcome(), None);
        let mut batch = Vec::new();
        q.take_batch(usize::MAX, &mut batch);
        assert_eq!(batch.iter().map(|o| o.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        q.written(2, 64);
        assert_eq!(a.clone().await, SendOutcome::Sent);
        assert_eq!(b.outcome(), Some(SendOutcome::Sent));
        assert_eq!(c.outcome(), None);
        q.close(DisconnectReason::LocalRequest);
        assert_eq!(c.await, SendOutcome::Dropped(DisconnectReason::LocalRequest));
        // Anything queued after the end is dropped at once, never lost.
        let d = q.push(&Message::Verack).unwrap();
        assert_eq!(d.await, SendOutcome::Dropped(DisconnectReason::LocalRequest));
    }

    #[tokio::test]
    async fn r_s2_queue_is_bounded_in_bytes() {
        let q = Queue::new(100, 4_000_000, false);
        let _ = q.push(&Message::Ping(1)).unwrap(); // 32 bytes
        let _ = q.push(&Message::Ping(2)).unwrap(); // 64
        let _ = q.push(&Message::Ping(3)).unwrap(); // 96
        assert_eq!(q.push(&Message::Ping(4)).unwrap_err(), QueueError::Full { queued: 96, limit: 100 });
        assert_eq!(q.depth(), (3, 96));
        // A message larger than the whole limit still goes into an empty queue.
        let big = Queue::new(100, 4_000_000, false);
        assert!(big.push(&Message::FilterAdd(crate::wire::FilterAdd { data: vec![0; 500] })).is_ok());
    }

    #[tokio::test]
    async fn r_s2_send_waits_for_room() {
        let q = std::sync::Arc::new(Queue::new(64, 4_000_000, false));
        let _ = q.push(&Message::Ping(1)).unwrap();
        let _ = q.push(&Message::Ping(2)).unwrap();
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.push_wait(&Message::Ping(3)).await.map(|c| c.seq) });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let mut batch = Vec::new();
        q.take_batch(usize::MAX, &mut batch);
        q.written(2, 64);
        assert_eq!(waiter.await.unwrap(), Ok(3));
    }
}
