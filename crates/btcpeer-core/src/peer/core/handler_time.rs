//! [`PeerCore`]'s clock for the remote: time our application spends on an event is not charged to
//! the remote's deadlines (idle, pong, stall), as the tokio driver's handler time is not.

use std::time::Instant;

use super::PeerCore;

impl PeerCore {
    /// The application started working on an event at `now` (call
    /// [`event_handled`](PeerCore::event_handled) when it is done): until then, the remote's
    /// deadlines do not run.
    pub fn event_taken(&mut self, now: Instant) {
        if let Some(l) = self.state.liveness.as_mut() {
            l.handler_started(now);
        }
    }

    /// The application finished the event it took at [`event_taken`](PeerCore::event_taken).
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use btcpeer_core::peer::{CoreConfig, Direction, PeerCore};
    /// use btcpeer_core::wire::frame::RawFrame;
    ///
    /// let now = Instant::now();
    /// let mut a = PeerCore::new(CoreConfig::seeded(Direction::Outbound, 1), now, SystemTime::now());
    /// let mut b = PeerCore::new(CoreConfig::seeded(Direction::Inbound, 2), now, SystemTime::now());
    /// for _ in 0..4 {
    ///     while let Some(m) = a.poll_transmit(now) { b.handle_frame(RawFrame::from_message(&m).unwrap(), now, SystemTime::now()); }
    ///     while let Some(m) = b.poll_transmit(now) { a.handle_frame(RawFrame::from_message(&m).unwrap(), now, SystemTime::now()); }
    /// }
    /// // Ten minutes in our own handler, with the remote silent: not the remote's fault.
    /// a.event_taken(now);
    /// let later = now + Duration::from_secs(600);
    /// a.event_handled(later);
    /// a.handle_timeout(later);
    /// assert!(a.is_established(), "the idle timeout (5 minutes) did not run meanwhile");
    /// ```
    pub fn event_handled(&mut self, now: Instant) {
        if let Some(l) = self.state.liveness.as_mut() {
            l.handler_finished(now);
        }
    }
}
