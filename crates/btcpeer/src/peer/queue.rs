//! The completions of queued messages. The queue itself is the core's (`PeerCore`: ordered,
//! bounded in bytes, a sequence number per message); its progress (how far the writer got, why the
//! rest was dropped) is mirrored here, where completions wait on it.
//!
//! A [`Completion`] is just a sequence number and the shared progress cell (the core's
//! [`Progress`] behind a mutex, with a `Notify`): it costs nothing unless awaited, and it always
//! resolves, to [`SendOutcome::Sent`] or [`SendOutcome::Dropped`]. (A mutex and a `Notify` rather
//! than a `watch` channel: an idle peer holds one, and a watch costs a few hundred bytes more.)

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use btcpeer_core::peer::Progress;
use tokio::sync::Notify;

use super::error::{DisconnectReason, SendOutcome};

/// The queue's progress, shared with every completion: the driver's writer and the end update it
/// and wake the completions waiting.
#[derive(Debug, Default)]
pub(crate) struct ProgressCell {
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

    /// Resolves at the next update (something written, or the end): for senders waiting for
    /// room, and a last reject's flush. Enable it before looking at what it waits for.
    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Every message up to `seq` was written (the core's progress).
    pub(crate) fn written(&self, seq: u64) {
        self.update(|p| p.written = p.written.max(seq));
    }

    /// The peer ended: every message not written was dropped for `reason`.
    pub(crate) fn close(&self, reason: DisconnectReason) {
        self.update(|p| {
            if p.closed.is_none() {
                p.closed = Some(reason);
            }
        });
    }
}

/// A cell that goes away unclosed still resolves every completion waiting on it.
impl Drop for ProgressCell {
    fn drop(&mut self) {
        let p = self.progress.get_mut().unwrap_or_else(|e| e.into_inner());
        if p.closed.is_none() {
            p.closed = Some(DisconnectReason::LocalRequest);
        }
    }
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
    pub(crate) fn new(seq: u64, progress: Arc<ProgressCell>) -> Completion {
        Completion { seq, progress }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn r_s1_completions_resolve_in_order_sent_then_dropped() {
        let cell = Arc::new(ProgressCell::default());
        let [a, b, c] = [1, 2, 3].map(|seq| Completion::new(seq, cell.clone()));
        assert_eq!(a.outcome(), None);
        cell.written(2);
        assert_eq!(a.clone().await, SendOutcome::Sent);
        assert_eq!(b.outcome(), Some(SendOutcome::Sent));
        assert_eq!(c.outcome(), None);
        cell.close(DisconnectReason::LocalRequest);
        assert_eq!(c.await, SendOutcome::Dropped(DisconnectReason::LocalRequest));
        // Anything queued after the end is dropped at once, never lost.
        // (The core numbers a message refused after the end `u64::MAX`: never written.)
        let d = Completion::new(u64::MAX, cell);
        assert_eq!(d.await, SendOutcome::Dropped(DisconnectReason::LocalRequest));
    }
}
