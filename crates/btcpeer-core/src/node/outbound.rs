//! Outbound bookkeeping: per-address backoff after failed dials, the manual peer list, and the
//! exponential delays of feelers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Addresses with a backoff remembered at most; beyond it the one whose wait ends first is
/// forgotten.
pub(crate) const MAX_BACKOFF: usize = 4_096;
/// Manual peers kept at most.
pub(crate) const MAX_MANUAL: usize = 256;
/// The wait between outbound selection rounds that found nothing (Core's `ThreadOpenConnections`
/// sleeps 500 ms between rounds); it doubles while nothing changes, up to
/// [`MAX_SELECT_RETRY`], to bound the cost of a book with nothing to offer.
pub(crate) const SELECT_RETRY: Duration = Duration::from_millis(500);
/// The longest wait between fruitless selection rounds.
pub(crate) const MAX_SELECT_RETRY: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    until: Instant,
}

/// Exponential backoff per address: after the n-th failure in a row, no dial before
/// `base · 2^(n-1)`, capped at `max`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Backoff {
    map: HashMap<SocketAddr, Entry>,
}

impl Backoff {
    /// The wait after `failures` failures in a row.
    pub(crate) fn delay(base: Duration, max: Duration, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(31);
        base.saturating_mul(1u32 << shift).min(max)
    }

    /// A dial of `addr` failed (or its connection ended before the handshake).
    pub(crate) fn failed(&mut self, addr: SocketAddr, base: Duration, max: Duration, now: Instant) -> Duration {
        let failures = self.map.get(&addr).map_or(0, |e| e.failures).saturating_add(1);
        let wait = Self::delay(base, max, failures);
        self.insert(addr, Entry { failures, until: now.checked_add(wait).unwrap_or(now) });
        wait
    }

    /// An established connection to `addr` ended: failures start over, and it is not redialed
    /// before `wait`.
    pub(crate) fn ended(&mut self, addr: SocketAddr, wait: Duration, now: Instant) {
        self.insert(addr, Entry { failures: 0, until: now.checked_add(wait).unwrap_or(now) });
    }

    /// The handshake with `addr` succeeded.
    pub(crate) fn succeeded(&mut self, addr: SocketAddr) {
        self.map.remove(&addr);
    }

    fn insert(&mut self, addr: SocketAddr, entry: Entry) {
        if !self.map.contains_key(&addr) && self.map.len() >= MAX_BACKOFF {
            // Forget the entry whose wait ends first (the least useful to keep).
            if let Some(oldest) = self.map.iter().min_by_key(|(a, e)| (e.until, **a)).map(|(a, _)| *a) {
                self.map.remove(&oldest);
            }
        }
        self.map.insert(addr, entry);
    }

    /// Whether `addr` must still wait at `now`.
    pub(crate) fn waiting(&self, addr: &SocketAddr, now: Instant) -> bool {
        self.map.get(addr).is_some_and(|e| e.until > now)
    }

    /// When `addr` may be dialed again (`None`: now).
    pub(crate) fn until(&self, addr: &SocketAddr) -> Option<Instant> {
        self.map.get(addr).map(|e| e.until)
    }

    /// Failures in a row for `addr`.
    pub(crate) fn failures(&self, addr: &SocketAddr) -> u32 {
        self.map.get(addr).map_or(0, |e| e.failures)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// A peer the user asked for.
#[derive(Clone, Debug)]
pub(crate) struct Manual {
    pub(crate) addr: SocketAddr,
    pub(crate) persistent: bool,
    /// A non-persistent peer is dialed once.
    pub(crate) dialed: bool,
}

impl Manual {
    /// Whether it is still to be dialed (persistent peers always are).
    pub(crate) fn pending(&self) -> bool {
        self.persistent || !self.dialed
    }
}

/// A delay drawn from an exponential distribution of mean `mean` (Core's `rand_exp_duration`),
/// from a 64-bit random value.
pub(crate) fn exponential(mean: Duration, random: u64) -> Duration {
    let u = (random >> 11) as f64 / (1u64 << 53) as f64;
    // -ln(1 - u) · mean, capped at 100 means (u is below 1, so the log is finite).
    let factor = (-(1.0 - u).ln()).min(100.0);
    mean.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let (b, m) = (Duration::from_secs(5), Duration::from_secs(60));
        let d: Vec<_> = (1..=6).map(|n| Backoff::delay(b, m, n).as_secs()).collect();
        assert_eq!(d, [5, 10, 20, 40, 60, 60]);
        assert_eq!(Backoff::delay(b, m, u32::MAX), m);
    }

    #[test]
    fn backoff_map_is_bounded() {
        let now = Instant::now();
        let mut bo = Backoff::default();
        for i in 0..(MAX_BACKOFF + 100) {
            let addr = SocketAddr::from(([10, 0, (i / 256) as u8, (i % 256) as u8], 8333));
            bo.failed(addr, Duration::from_secs(1), Duration::from_secs(10), now);
        }
        assert_eq!(bo.len(), MAX_BACKOFF);
    }

    #[test]
    fn exponential_has_the_mean() {
        let mut x = 7u64;
        let n = 20_000;
        let total: f64 =
            (0..n).map(|_| exponential(Duration::from_secs(120), crate::rng::next(&mut x)).as_secs_f64()).sum();
        let mean = total / f64::from(n);
        assert!((mean - 120.0).abs() < 6.0, "{mean}");
    }
}
