//! The outbound queue for the tokio driver: the core's accounting
//! ([`OutboundQueue`]: ordered, bounded in bytes, a sequence number per message, the arena) under a
//! lock, the writer's and the waiting senders' wake-ups, and the completions.
//!
//! A [`Completion`] is just a sequence number and a shared progress cell (the core's [`Progress`]
//! behind a mutex, with a `Notify`): it costs nothing unless awaited, and it always resolves, to
//! [`SendOutcome::Sent`] or [`SendOutcome::Dropped`]. (A mutex and a `Notify` rather than a `watch`
//! channel: an idle peer holds one, and a watch costs a few hundred bytes more.)

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use btcpeer_core::peer::outbound::{NEVER, OutboundQueue, Progress};
use bytes::Bytes;
use tokio::sync::Notify;

pub(crate) use btcpeer_core::peer::outbound::Outgoing;

use super::error::{DisconnectReason, QueueError, SendOutcome};
use crate::wire::{Command, Message};

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

#[derive(Debug)]
pub(crate) struct Queue {
    state: Mutex<OutboundQueue>,
    /// Wakes the writer when a message is queued.
    pub(crate) writer: Notify,
    /// Wakes senders waiting for room.
    space: Notify,
    progress: Arc<ProgressCell>,
}

/// Resolves once the queued message was written or dropped. Await it directly, or call
/// [`Completion::outcome`] to look without waiting. Dropping it does not cancel the message.
#[derive(Debug, Clone)]
#[must_use = "a completion does nothing unless awaited; drop it to send without waiting"]
pub struct Completion {
    seq: u64,
    progress: Arc<ProgressCell>,
}

impl Completion {
    /// The outcome, if the message was already written or dropped.
    pub fn outcome(&self) -> Option<SendOutcome> {
        self.progress.read(|p| p.outcome(self.seq))
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
            state: Mutex::new(OutboundQueue::new(limit, network_max, v2_possible)),
            writer: Notify::new(),
            space: Notify::new(),
            progress: Arc::new(ProgressCell::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutboundQueue> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A completion for `seq`; a newly queued message wakes the writer.
    fn queued(&self, seq: u64) -> Completion {
        if seq != NEVER {
            self.writer.notify_one();
        }
        Completion { seq, progress: Arc::clone(&self.progress) }
    }

    /// Encodes and queues `msg`, or reports that the queue is full.
    pub(crate) fn push(&self, msg: &Message) -> Result<Completion, QueueError> {
        let seq = self.lock().push(msg)?;
        Ok(self.queued(seq))
    }

    /// Queues an already-encoded payload, with its checksum if known.
    pub(crate) fn push_raw(
        &self,
        command: Command,
        payload: Bytes,
        checksum: Option<[u8; 4]>,
    ) -> Result<Completion, QueueError> {
        let seq = self.lock().push_raw(command, payload, checksum)?;
        Ok(self.queued(seq))
    }

    /// Queues `msg`, waiting for room if the queue is full.
    pub(crate) async fn push_wait(&self, msg: &Message) -> Result<Completion, QueueError> {
        self.wait_for_room(|| self.push(msg)).await
    }

    /// Queues an already-encoded payload, waiting for room if the queue is full.
    pub(crate) async fn push_raw_wait(
        &self,
        command: Command,
        payload: &Bytes,
        checksum: Option<[u8; 4]>,
    ) -> Result<Completion, QueueError> {
        self.wait_for_room(|| self.push_raw(command, payload.clone(), checksum)).await
    }

    /// Tries `push` until it finds room (or fails for another reason).
    async fn wait_for_room(&self, push: impl Fn() -> Result<Completion, QueueError>) -> Result<Completion, QueueError> {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match push() {
                Err(QueueError::Full { .. }) => notified.await,
                other => return other,
            }
        }
    }

    /// Takes queued messages for one write: at least one, then more while under `max_bytes`.
    pub(crate) fn take_batch(&self, max_bytes: usize, out: &mut Vec<Outgoing>) {
        self.lock().take_batch(max_bytes, out);
    }

    /// Records that every message up to `seq` was written, freeing `bytes`.
    pub(crate) fn written(&self, seq: u64, bytes: usize) {
        self.lock().written(bytes);
        self.progress.update(|p| p.written = p.written.max(seq));
        self.space.notify_waiters();
    }

    /// Ends the queue: everything not written is dropped for `reason`, as is anything queued later.
    pub(crate) fn close(&self, reason: DisconnectReason) {
        self.lock().close();
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
        self.lock().set_v2(v2);
    }

    /// Messages and bytes waiting or being written.
    pub(crate) fn depth(&self) -> (usize, usize) {
        self.lock().depth()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
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
