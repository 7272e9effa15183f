//! A peer's life: waiting for its handshake, stopping its task, ending it once (the queue
//! resolved, the application told, the waiters released), and waiting for that end.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::{Assoc, DisconnectReason, HandshakeState, Peer, RemoteInfo};

impl Peer {
    /// Waits for the handshake: the remote's version details, or why the peer ended first.
    pub async fn handshake(&self) -> Result<RemoteInfo, DisconnectReason> {
        loop {
            // Registered before looking, so that a change in between wakes it.
            let changed = self.shared.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            {
                let st = self.lock();
                match &st.handshake {
                    HandshakeState::Done => {
                        if let Some(info) = st.core.remote() {
                            return Ok(info.clone());
                        }
                    }
                    HandshakeState::Failed => {
                        return Err(st.reason());
                    }
                    HandshakeState::Pending => {}
                }
            }
            changed.await;
        }
    }

    /// The handshake completed (the driver, on the core's event).
    pub(crate) fn handshake_done(&self) {
        {
            let mut st = self.lock();
            st.handshake = HandshakeState::Done;
            st.handshake_at = Some(SystemTime::now());
        }
        self.shared.changed.notify_waiters();
    }

    /// Whether the peer is stopping (its task's loops end).
    pub(crate) fn is_stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Acquire)
    }

    /// Stops the task's loops (the peer's end is recorded by whoever stops it).
    pub(crate) fn stop_task(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.changed.notify_waiters();
        self.shared.wake.notify_one();
    }

    /// Resolves once the peer is stopping.
    pub(crate) async fn stopped(&self) {
        loop {
            let changed = self.shared.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if self.is_stopping() {
                return;
            }
            changed.await;
        }
    }

    /// Ends the peer. Idempotent and safe from any task, before, during or after the
    /// handshake.
    pub fn disconnect(&self) {
        self.stop(DisconnectReason::LocalRequest);
    }

    /// Records why the peer ends (the first reason wins) and stops its tasks.
    pub(crate) fn stop(&self, reason: DisconnectReason) {
        let finalize_now = {
            let mut st = self.lock();
            // The first reason wins (the core's own end, if it came first): the core keeps it, and
            // its queue closes, every message not written dropped for it.
            st.core.closed(Some(reason));
            match st.assoc {
                Assoc::Waiting => {
                    st.assoc = Assoc::Ended;
                    true
                }
                Assoc::Running | Assoc::Ended => false,
            }
        };
        self.stop_task();
        if finalize_now {
            self.finalize();
        }
    }

    /// The last step of a peer's life: resolve the queue, tell the application, release waiters.
    pub(crate) fn finalize(&self) {
        let reason = {
            let mut st = self.lock();
            // Once: a task that panicked after its peer had ended must not end it twice.
            if std::mem::replace(&mut st.finalizing, true) {
                return;
            }
            st.assoc = Assoc::Ended;
            // Every request waiting learns the end (its answers channel closes).
            st.requests.clear();
            st.core.closed(Some(DisconnectReason::LocalRequest));
            let reason = st.reason();
            if matches!(st.handshake, HandshakeState::Pending) {
                st.handshake = HandshakeState::Failed;
            }
            reason
        };
        self.shared.progress.close(reason.clone());
        self.shared.changed.notify_waiters();
        tracing::debug!(parent: &self.shared.span, %reason, "disconnected");
        self.shared.sink.disconnected(self, &reason);
        self.lock().done = true;
        self.shared.changed.notify_waiters();
    }

    /// Waits until the peer has ended: its tasks have stopped, the stream is closed, and every
    /// queued message's completion has resolved. Returns why it ended.
    pub async fn wait_for_disconnect(&self) -> DisconnectReason {
        self.closed().await
    }

    /// The same as [`Peer::wait_for_disconnect`], as a `'static` future that does not borrow the
    /// peer.
    pub fn closed(&self) -> impl std::future::Future<Output = DisconnectReason> + Send + 'static {
        // The state, not the application's share: waiting does not keep the peer alive.
        let shared = self.shared.clone();
        async move {
            loop {
                let changed = shared.changed.notified();
                let mut changed = std::pin::pin!(changed);
                changed.as_mut().enable();
                {
                    let st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                    if st.done {
                        return st.reason();
                    }
                }
                changed.await;
            }
        }
    }

    /// Why the peer ended, once it has.
    pub fn disconnect_reason(&self) -> Option<DisconnectReason> {
        let st = self.lock();
        if st.done { Some(st.reason()) } else { None }
    }
}
