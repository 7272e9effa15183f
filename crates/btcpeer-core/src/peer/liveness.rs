//! Liveness: ping schedule, pong timeout, idle timeout, per-request stall deadlines and
//! the trickle schedule, as a plain struct driven by the runtime clock.
//!
//! Every deadline that charges the remote is measured on a *remote clock*: real time minus the time
//! spent inside our own handler. A handler that takes a second to process a block therefore never
//! makes the remote look a second slower (btcd credits such time only for the current 15-second
//! window). Time is always an argument (`now`), never read here: the driver passes its clock's
//! time (tokio's, paused in tests) and the simulator its simulated time.

use std::time::Duration;

use std::time::Instant;

use super::reason::DisconnectReason;
use crate::wire::Command;

/// `now + d`, saturating at a year ahead instead of overflowing.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600))).unwrap_or(now)
}

/// Outstanding requests tracked at most; requests beyond this are sent untracked.
const MAX_TRACKED_REQUESTS: usize = 1_024;

/// The liveness settings, taken from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// How often to ping (zero: never).
    pub ping_interval: Duration,
    /// How long a ping may go unanswered (zero: forever).
    pub pong_timeout: Duration,
    /// How long the remote may send nothing (zero: forever).
    pub idle_timeout: Duration,
    /// How long a request may go unanswered.
    pub stall: Duration,
    /// How long a `getheaders` may go unanswered.
    pub headers_stall: Duration,
    /// Whether requests are tracked for stalls at all.
    pub stall_enabled: bool,
}

/// A request that expects an answer, and the remote-clock time by which it must come.
#[derive(Clone, Copy, Debug)]
struct Stall {
    request: Command,
    expects: &'static [Command],
    deadline: Duration,
}

/// The answers a request expects, or `None` if it expects none.
fn expected_answers(request: Command, payload: &[u8]) -> Option<&'static [Command]> {
    const GETDATA: &[Command] =
        &[Command::BLOCK, Command::MERKLEBLOCK, Command::TX, Command::NOTFOUND, Command::CMPCTBLOCK];
    Some(match request.as_str() {
        "getdata" => GETDATA,
        "getheaders" => &[Command::HEADERS],
        // A getblocks with a zero stop hash gets no inv from a synced remote (btcd #1317).
        "getblocks" if payload.len().checked_sub(32).and_then(|i| payload.get(i..)).is_some_and(|s| s != [0u8; 32]) => {
            &[Command::INV]
        }
        // `mempool` is not tracked: a node with an empty mempool answers nothing (Core's
        // `ProcessMessage` for `MEMPOOL` only sets `m_send_mempool`).
        "getblocktxn" => &[Command::BLOCKTXN],
        "getcfilters" => &[Command::CFILTER],
        "getcfheaders" => &[Command::CFHEADERS],
        "getcfcheckpt" => &[Command::CFCHECKPT],
        _ => return None,
    })
}

/// What the timer asks the peer to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// Send a ping now.
    pub ping: bool,
    /// Flush the trickle queue now.
    pub trickle: bool,
}

/// The deadlines of one peer, on a remote clock that does not count time spent in our handler.
#[derive(Debug)]
pub struct Liveness {
    start: Instant,
    handler_total: Duration,
    handler_since: Option<Instant>,
    last_recv: Duration,
    next_ping: Option<Instant>,
    ping_sent: Option<Duration>,
    stalls: Vec<Stall>,
    next_trickle: Option<Instant>,
}

impl Liveness {
    /// Deadlines starting at `now` (the handshake's are the driver's). The timeouts are the
    /// caller's, passed to each step (a connection's configuration holds them once).
    pub fn new(now: Instant) -> Self {
        Liveness {
            start: now,
            handler_total: Duration::ZERO,
            handler_since: None,
            last_recv: Duration::ZERO,
            next_ping: None,
            ping_sent: None,
            stalls: Vec::new(),
            next_trickle: None,
        }
    }

    /// Real time since the start, minus time spent in our handler.
    fn remote_now(&self, now: Instant) -> Duration {
        let running = self.handler_since.map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        now.saturating_duration_since(self.start).saturating_sub(self.handler_total).saturating_sub(running)
    }

    /// Starts the post-handshake timers.
    pub fn handshake_complete(&mut self, t: &Timeouts, now: Instant) {
        self.last_recv = self.remote_now(now);
        if !t.ping_interval.is_zero() {
            self.next_ping = Some(later(now, t.ping_interval));
        }
    }

    /// Our handler started working on a message: its time is not the remote's.
    pub fn handler_started(&mut self, now: Instant) {
        self.handler_since = Some(now);
    }

    /// Our handler finished.
    pub fn handler_finished(&mut self, now: Instant) {
        if let Some(since) = self.handler_since.take() {
            self.handler_total = self.handler_total.saturating_add(now.saturating_duration_since(since));
        }
    }

    /// Bytes arrived that carried no message (a dropped frame): the remote is alive.
    pub fn alive(&mut self, now: Instant) {
        self.last_recv = self.remote_now(now);
    }

    /// A message arrived: the remote is alive, and it may answer a pending request.
    pub fn received(&mut self, command: Command, now: Instant) {
        self.last_recv = self.remote_now(now);
        if let Some(i) = self.stalls.iter().position(|s| s.expects.contains(&command)) {
            self.stalls.remove(i);
        }
    }

    /// A message was written: requests start their stall deadline, pings their pong timeout.
    pub fn sent(&mut self, t: &Timeouts, command: Command, payload: &[u8], now: Instant) {
        let remote_now = self.remote_now(now);
        if command == Command::PING {
            self.ping_sent = Some(remote_now);
        }
        if !t.stall_enabled || self.stalls.len() >= MAX_TRACKED_REQUESTS {
            return;
        }
        if let Some(expects) = expected_answers(command, payload) {
            let limit = if command == Command::GETHEADERS { t.headers_stall } else { t.stall };
            if !limit.is_zero() {
                self.stalls.push(Stall { request: command, expects, deadline: remote_now.saturating_add(limit) });
            }
        }
    }

    /// The ping was answered.
    pub fn pong(&mut self) {
        self.ping_sent = None;
    }

    /// Requests waiting for an answer.
    pub fn pending_requests(&self) -> usize {
        self.stalls.len()
    }

    /// Whether a trickle tick is scheduled.
    pub fn trickle_scheduled(&self) -> bool {
        self.next_trickle.is_some()
    }

    /// Schedules a trickle tick after `delay`, unless one is already due sooner.
    pub fn schedule_trickle(&mut self, now: Instant, delay: Duration) {
        let at = later(now, delay);
        if self.next_trickle.is_none_or(|t| at < t) {
            self.next_trickle = Some(at);
        }
    }

    /// Checks every deadline: an error ends the peer, otherwise says what is due.
    pub fn check(&mut self, t: &Timeouts, now: Instant, ping_outstanding: bool) -> Result<Due, DisconnectReason> {
        let remote_now = self.remote_now(now);
        if !t.idle_timeout.is_zero() && remote_now.saturating_sub(self.last_recv) >= t.idle_timeout {
            return Err(DisconnectReason::IdleTimeout);
        }
        if let Some(sent) = self.ping_sent.filter(|_| !t.pong_timeout.is_zero()) {
            if remote_now.saturating_sub(sent) >= t.pong_timeout {
                return Err(DisconnectReason::PongTimeout);
            }
        }
        if let Some(stall) = self.stalls.iter().find(|s| remote_now >= s.deadline) {
            return Err(DisconnectReason::StallTimeout { request: stall.request });
        }
        let mut due = Due::default();
        if let Some(at) = self.next_ping.filter(|&at| now >= at) {
            // Only one ping at a time, so that its pong timeout means something.
            due.ping = !ping_outstanding;
            self.next_ping = Some(later(at.max(now), t.ping_interval));
        }
        if self.next_trickle.is_some_and(|at| now >= at) {
            self.next_trickle = None;
            due.trickle = true;
        }
        Ok(due)
    }

    /// When the timer should next look, in real time.
    pub fn next_wakeup(&self, t: &Timeouts, now: Instant) -> Option<Instant> {
        let remote_now = self.remote_now(now);
        let real = |remote_deadline: Duration| later(now, remote_deadline.saturating_sub(remote_now));
        let candidates = [
            (!t.idle_timeout.is_zero()).then(|| real(self.last_recv.saturating_add(t.idle_timeout))),
            self.ping_sent.filter(|_| !t.pong_timeout.is_zero()).map(|s| real(s.saturating_add(t.pong_timeout))),
            self.stalls.iter().map(|s| real(s.deadline)).min(),
            self.next_ping,
            self.next_trickle,
        ];
        candidates.into_iter().flatten().min()
    }
}

/// A Poisson-process delay with the given mean (exponentially distributed), as Bitcoin Core uses
/// for trickling so that announcement timing does not reveal a transaction's origin.
pub fn poisson_delay(mean: Duration) -> Duration {
    poisson_delay_from(mean, getrandom::u64().unwrap_or(u64::MAX / 2))
}

/// [`poisson_delay`] from a given uniform random number (the simulator's seeded generator's).
pub fn poisson_delay_from(mean: Duration, random: u64) -> Duration {
    if mean.is_zero() {
        return Duration::ZERO;
    }
    // A uniform value in (0, 1]: never zero, so the logarithm is finite.
    let bits = random >> 11;
    let u = (bits as f64 + 1.0) / (1u64 << 53) as f64;
    let factor = -u.ln();
    Duration::from_secs_f64((mean.as_secs_f64() * factor).min(mean.as_secs_f64() * 50.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            ping_interval: Duration::from_secs(120),
            pong_timeout: Duration::from_secs(1200),
            idle_timeout: Duration::from_secs(300),
            stall: Duration::from_secs(30),
            headers_stall: Duration::from_secs(90),
            stall_enabled: true,
        }
    }

    #[test]
    fn r_v4_handler_time_is_not_charged_to_the_remote() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        l.handshake_complete(&timeouts(), t0);
        l.sent(&timeouts(), Command::GETDATA, &[], t0);
        // 25 s pass, 20 of them inside our handler.
        l.handler_started(t0 + Duration::from_secs(5));
        l.handler_finished(t0 + Duration::from_secs(25));
        // At 40 s real time the remote has had 20 s: no stall yet.
        assert_eq!(l.check(&timeouts(), t0 + Duration::from_secs(40), false), Ok(Due::default()));
        // At 50 s it has had 30 s.
        assert_eq!(
            l.check(&timeouts(), t0 + Duration::from_secs(50), false),
            Err(DisconnectReason::StallTimeout { request: Command::GETDATA })
        );
    }

    #[test]
    fn r_v4_answers_clear_the_oldest_matching_request() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        l.sent(&timeouts(), Command::GETHEADERS, &[], t0);
        l.sent(&timeouts(), Command::GETDATA, &[], t0);
        assert_eq!(l.pending_requests(), 2);
        l.received(Command::TX, t0);
        assert_eq!(l.pending_requests(), 1);
        // The headers request has 90 s.
        assert!(l.check(&timeouts(), t0 + Duration::from_secs(60), false).is_ok());
        assert_eq!(
            l.check(&timeouts(), t0 + Duration::from_secs(90), false),
            Err(DisconnectReason::StallTimeout { request: Command::GETHEADERS })
        );
    }

    #[test]
    fn r_v4_getblocks_with_a_zero_stop_hash_is_not_tracked() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        l.sent(&timeouts(), Command::GETBLOCKS, &[0u8; 69], t0);
        assert_eq!(l.pending_requests(), 0);
        let mut payload = [0u8; 69];
        payload[68] = 1;
        l.sent(&timeouts(), Command::GETBLOCKS, &payload, t0);
        assert_eq!(l.pending_requests(), 1);
    }

    #[test]
    fn r_v5_poisson_delays_average_to_the_mean() {
        let mean = Duration::from_secs(5);
        let n = 20_000;
        let total: f64 = (0..n).map(|_| poisson_delay(mean).as_secs_f64()).sum();
        let avg = total / n as f64;
        assert!((avg - 5.0).abs() < 0.25, "mean {avg}");
        assert_eq!(poisson_delay(Duration::ZERO), Duration::ZERO);
    }
}
