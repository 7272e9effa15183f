//! `btcpeer bench`'s scale mode: N/2 connected idle pairs in one process (a fresh one per
//! transport), the time to bring them up, resident memory per peer, the time to tear them down,
//! and what bounded N.
//!
//! Each peer is one socket and both ends of every pair live in this process, so the process's
//! open-file limit bounds the peers: the soft `RLIMIT_NOFILE` is raised to the hard one first (as
//! a node does at start), then N is cut to what the limit leaves after the files already open and a
//! reserve, and to the local ports one address has towards one listener (every pair's dialing end
//! takes one). The report says which limit applied (`limited_by`) and projects the resident memory
//! of 100,000 idle peers from the per-peer figure.

use std::time::{Duration, Instant};

use btcpeer::peer::{NoopHandler, V2Policy};
use tokio::net::TcpListener;
use tokio::runtime::Handle;

use crate::EXIT_TIMEOUT;
use crate::bench::{BenchArgs, BenchError, Layout, Measured, Nodes, close, pair, pair_of};
use crate::bench_report::ScaleFigures;
use crate::events::millis;

/// Files kept out of the peers' budget: the listener, the runtimes' event queues and wakers,
/// standard streams, `/proc` reads, and room for the warm-up pair.
const RESERVED_FILES: u64 = 64;
/// Local ports kept out of the pairs' budget (a port just released may still be in use).
const RESERVED_PORTS: u64 = 16;

/// What bounds the idle peers this process can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The soft open-file limit, after raising it to the hard one where allowed.
    pub(crate) open_files: u64,
    /// The hard open-file limit (`None`: unlimited).
    pub(crate) open_files_hard: Option<u64>,
    /// Files open before the peers come up.
    pub(crate) open_now: u64,
    /// Local ports for connections from one address to one listener.
    pub(crate) local_ports: u64,
}

impl Limits {
    /// Raises the soft open-file limit to the hard one (where the system allows it), then reads
    /// the limits that apply.
    pub(crate) fn of_this_process() -> Limits {
        let (open_files, open_files_hard) = raise_open_file_limit();
        Limits { open_files, open_files_hard, open_now: open_files_now(), local_ports: local_ports() }
    }

    /// The pairs to bring up for `peers` asked, and the limit that cut them (if one did).
    pub(crate) fn pairs(&self, peers: u32) -> (u32, Option<&'static str>) {
        let asked = peers / 2;
        let by_files = self.open_files.saturating_sub(self.open_now).saturating_sub(RESERVED_FILES) / 2;
        let by_ports = self.local_ports.saturating_sub(RESERVED_PORTS);
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        if u64::from(asked) <= by_files.min(by_ports) {
            (asked, None)
        } else if by_files <= by_ports {
            (clamp(by_files), Some("open files"))
        } else {
            (clamp(by_ports), Some("local ports"))
        }
    }
}

/// Sets the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit then in force and the
/// hard one (`None`: unlimited). Where raising fails (macOS refuses an unlimited soft limit), the
/// soft limit stays as it was.
#[cfg(unix)]
fn raise_open_file_limit() -> (u64, Option<u64>) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    if before.current != before.maximum {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: before.maximum, maximum: before.maximum });
    }
    let now = getrlimit(Resource::Nofile);
    (now.current.unwrap_or(u64::MAX), now.maximum)
}

#[cfg(not(unix))]
fn raise_open_file_limit() -> (u64, Option<u64>) {
    (u64::MAX, None)
}

/// Files this process has open (Linux: `/proc/self/fd`; elsewhere a small guess).
fn open_files_now() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(16, |dir| dir.count() as u64)
}

/// Ports in the ephemeral range (Linux: `ip_local_port_range`; elsewhere the IANA range).
fn local_ports() -> u64 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut bounds = range.split_whitespace().filter_map(|n| n.parse::<u64>().ok());
    match (bounds.next(), bounds.next()) {
        (Some(low), Some(high)) if high >= low => high - low + 1,
        _ => 65_535 - 49_152 + 1,
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

/// The scale figures for `transport`, measured by this binary in a fresh process (in this one when
/// the executable cannot be found again).
pub(crate) async fn scale_in_child(
    args: &BenchArgs,
    transport: Measured,
    listening: &Handle,
) -> Result<ScaleFigures, BenchError> {
    let name = transport.name();
    let Ok(exe) = std::env::current_exe() else {
        let (hold, timeout) = (Duration::from_secs(args.hold), Duration::from_secs(args.timeout));
        return scale(args.peers, hold, timeout, transport.policy(), listening).await;
    };
    let output = tokio::process::Command::new(exe)
        .args(["bench", "--json", "--scale-only", name])
        .args(["--peers", &args.peers.to_string(), "--hold", &args.hold.to_string()])
        .args(["--timeout", &args.timeout.to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("the scale measurement did not start: {e}"))?;
    if !output.status.success() {
        // The child's line already starts with the command's name.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let why = stderr.trim();
        let why = why.strip_prefix("btcpeer bench: ").unwrap_or(why);
        let message = format!("the {name} scale measurement failed: {why}");
        return Err(match output.status.code() {
            Some(code) if code == i32::from(EXIT_TIMEOUT) => BenchError::Timeout(message),
            _ => BenchError::Failed(message),
        });
    }
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim())
        .map_err(|e| BenchError::Failed(format!("the {name} scale measurement printed no JSON: {e}")))
}

/// N/2 connected pairs, held idle, then torn down.
pub(crate) async fn scale(
    peers: u32,
    hold: Duration,
    timeout: Duration,
    policy: V2Policy,
    listening: &Handle,
) -> Result<ScaleFigures, BenchError> {
    let limits = Limits::of_this_process();
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let (pairs, limited_by) = limits.pairs(peers);
    // Warm the runtime and allocator up with one pair first, so the baseline is not inflated.
    close(pair(&listener, policy, NoopHandler, NoopHandler, false, Layout::TwoThreads, listening).await?).await;
    let rss_before = rss_bytes();
    let start = Instant::now();
    let mut all = Vec::with_capacity(pairs as usize);
    let nodes = Nodes::new(policy, false);
    for _ in 0..pairs {
        let p = tokio::time::timeout(
            timeout,
            pair_of(&listener, &nodes, NoopHandler, NoopHandler, Layout::TwoThreads, listening),
        )
        .await
        .map_err(|_| BenchError::Timeout("bringing peers up timed out".to_string()))??;
        all.push(p);
    }
    let bring_up = start.elapsed();
    tokio::time::sleep(hold).await;
    let rss_after = rss_bytes();
    let connected = all.iter().filter(|p| p.out.is_connected() && p.inb.is_connected()).count();
    let start = Instant::now();
    for p in &all {
        p.out.disconnect();
        p.inb.disconnect();
    }
    for p in all {
        p.out.wait_for_disconnect().await;
        p.inb.wait_for_disconnect().await;
    }
    let teardown = start.elapsed();
    let per_peer = rss_after.saturating_sub(rss_before) / u64::from((pairs * 2).max(1));
    Ok(ScaleFigures {
        peers: pairs * 2,
        peers_requested: peers,
        open_file_limit: limits.open_files,
        open_file_limit_hard: limits.open_files_hard,
        local_ports: limits.local_ports,
        limited_by: limited_by.map(str::to_string),
        projected_rss_100000_peers_bytes: per_peer.saturating_mul(100_000),
        connected_after_hold: connected * 2,
        bring_up_ms: millis(bring_up),
        rss_before_bytes: rss_before,
        rss_after_bytes: rss_after,
        rss_per_peer_bytes: per_peer,
        hold_secs: hold.as_secs(),
        teardown_ms: millis(teardown),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(open_files: u64, local_ports: u64) -> Limits {
        Limits { open_files, open_files_hard: Some(open_files), open_now: 10, local_ports }
    }

    #[test]
    fn the_pairs_asked_are_cut_by_whichever_limit_is_tighter() {
        assert_eq!(limits(20_000, 28_232).pairs(10_000), (5_000, None));
        assert_eq!(
            limits(20_000, 28_232).pairs(1_000_000),
            (((20_000 - 10 - RESERVED_FILES) / 2) as u32, Some("open files"))
        );
        assert_eq!(limits(1_000_000, 28_232).pairs(1_000_000), ((28_232 - RESERVED_PORTS) as u32, Some("local ports")));
        assert_eq!(limits(50, 28_232).pairs(10), (0, Some("open files")));
        assert_eq!(limits(u64::MAX, u64::MAX).pairs(u32::MAX), (u32::MAX / 2, None));
    }
}
