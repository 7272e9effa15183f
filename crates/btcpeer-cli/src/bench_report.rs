//! What `btcpeer bench` reports: the typed figures (`Figures` per transport, `ScaleFigures`, the
//! whole `BenchReport`), their ratios to the `sha256d` baseline and to btcd's reference figures,
//! and the readable table (`Display`). The JSON keys are listed in `bench`'s module docs.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::bench_crypto::HandshakeFigures;

/// btcd's peer package on this kind of machine (2 vCPU), from the specification.
const BTCD: [(&str, f64); 6] = [
    ("handshakes_per_sec", 3_800.0),
    ("ping_rtt_per_sec", 20_000.0),
    ("ping_pipelined_per_sec", 45_000.0),
    ("inv1000_msgs_per_sec", 5_500.0),
    ("block_decoded_per_sec", 150.0),
    ("rss_per_peer_bytes", 32_000.0),
];

/// Which figures were measured with both peers on one thread, and which with one thread each.
#[derive(Serialize, Debug, Clone)]
pub struct LayoutNames {
    pub one_thread: [&'static str; 2],
    pub two_threads: [&'static str; 5],
}

/// Every figure for one transport.
#[derive(Serialize, Debug, Clone)]
pub struct Figures {
    pub handshakes_per_sec: f64,
    pub ping_rtt_per_sec: f64,
    pub ping_pipelined_per_sec: f64,
    pub inv1_msgs_per_sec: f64,
    pub inv1000_msgs_per_sec: f64,
    pub block_size_bytes: usize,
    pub block_decoded_per_sec: f64,
    pub block_decoded_mbps: f64,
    pub block_raw_per_sec: f64,
    pub block_raw_mbps: f64,
    pub layout: LayoutNames,
}

impl Figures {
    /// The rates, each with its JSON key and its row in the table, in the table's order.
    pub fn rates(&self) -> [(&'static str, &'static str, f64); 9] {
        [
            ("handshakes_per_sec", "handshakes/s (TCP connect incl.)*", self.handshakes_per_sec),
            ("ping_rtt_per_sec", "ping round trips/s, one at a time*", self.ping_rtt_per_sec),
            ("ping_pipelined_per_sec", "ping round trips/s, pipelined", self.ping_pipelined_per_sec),
            ("inv1_msgs_per_sec", "inv (1 entry) messages/s", self.inv1_msgs_per_sec),
            ("inv1000_msgs_per_sec", "inv (1,000 entries) messages/s", self.inv1000_msgs_per_sec),
            ("block_decoded_per_sec", "1 MB blocks/s, decoded", self.block_decoded_per_sec),
            ("block_decoded_mbps", "  MB/s, decoded", self.block_decoded_mbps),
            ("block_raw_per_sec", "1 MB blocks/s, raw", self.block_raw_per_sec),
            ("block_raw_mbps", "  MB/s, raw", self.block_raw_mbps),
        ]
    }
}

/// One transport's figures with their ratios.
#[derive(Serialize, Debug, Clone)]
pub struct Rated {
    #[serde(flatten)]
    pub figures: Figures,
    /// Each rate over the `sha256d` baseline in MB/s.
    pub ratio_to_sha256d_mbps: BTreeMap<&'static str, f64>,
    /// Each rate btcd has a reference figure for, over that figure.
    pub times_btcd: BTreeMap<&'static str, f64>,
}

impl Rated {
    pub fn new(figures: Figures, sha: f64) -> Rated {
        let rates = figures.rates();
        let ratio_to_sha256d_mbps = rates.iter().map(|&(k, _, x)| (k, (x / sha * 1_000.0).round() / 1_000.0)).collect();
        let times_btcd = rates
            .iter()
            .filter_map(|&(k, _, x)| {
                let (_, btcd) = BTCD.iter().find(|(name, _)| *name == k)?;
                Some((k, (x / btcd * 100.0).round() / 100.0))
            })
            .collect();
        Rated { figures, ratio_to_sha256d_mbps, times_btcd }
    }
}

/// N/2 idle connected pairs: the time to bring them up, their memory, the time to tear them down.
/// Also what a `--scale-only` child prints.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ScaleFigures {
    pub peers: u32,
    pub connected_after_hold: usize,
    pub bring_up_ms: u64,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    pub rss_per_peer_bytes: u64,
    pub hold_secs: u64,
    pub teardown_ms: u64,
    /// The `--peers` asked for; `peers` is less when a limit cut it.
    #[serde(default)]
    pub peers_requested: u32,
    /// The soft open-file limit the peers were measured under (after raising it to the hard one).
    #[serde(default)]
    pub open_file_limit: u64,
    /// The hard open-file limit (`None`: unlimited).
    #[serde(default)]
    pub open_file_limit_hard: Option<u64>,
    /// Local ports from one address to one listener.
    #[serde(default)]
    pub local_ports: u64,
    /// `"open files"` or `"local ports"` when that limit cut `peers_requested`.
    #[serde(default)]
    pub limited_by: Option<String>,
    /// `rss_per_peer_bytes` × 100,000.
    #[serde(default)]
    pub projected_rss_100000_peers_bytes: u64,
}

/// What a v2 packet and a v2 handshake cost, beside what v1's do.
#[derive(Serialize, Debug, Clone, Copy)]
pub struct V2Costs {
    /// The BIP324 packet AEAD on 1 MB, one core, in MB/s.
    pub aead_mbps: f64,
    /// `aead_mbps` over the v1 checksum's (`sha256d`) rate, the two measured in alternating slices.
    pub aead_over_sha256d: f64,
    pub v2_handshake: HandshakeFigures,
}

/// The `bench` event: every figure measured (what was not measured is left out).
#[derive(Serialize, Debug, Clone, Default)]
#[serde(tag = "event", rename = "bench")]
pub struct BenchReport {
    /// The baseline: `sha256d` over 1 MB on one core, in MB/s.
    pub sha256d_mbps: f64,
    /// With v2 measured.
    #[serde(flatten)]
    pub v2_costs: Option<V2Costs>,
    /// With `--transport v1` or `both`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v1: Option<Rated>,
    /// With `--transport v2` or `both`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v2: Option<Rated>,
    /// Each v2 rate over its v1 counterpart, with both measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v2_over_v1: Option<BTreeMap<&'static str, f64>>,
    /// Idle v1 peers (none with `--peers 0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleFigures>,
    /// Idle v2 peers (none with `--peers 0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_v2: Option<ScaleFigures>,
    /// An idle v2 peer's resident memory minus an idle v1 one's, with both scales measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v2_idle_extra_bytes: Option<i64>,
}

impl BenchReport {
    /// Fills in what follows from the figures: each v2 rate over its v1 counterpart, and an idle
    /// v2 peer's memory minus a v1 one's.
    pub fn compare(&mut self) {
        if let (Some(v1), Some(v2)) = (&self.v1, &self.v2) {
            let ratios = v2.figures.rates().into_iter().zip(v1.figures.rates());
            self.v2_over_v1 = Some(ratios.map(|((k, _, b), (_, _, a))| (k, (b / a * 100.0).round() / 100.0)).collect());
        }
        if let (Some(a), Some(b)) = (&self.scale, &self.scale_v2) {
            let (a, b) = (i64::try_from(a.rss_per_peer_bytes), i64::try_from(b.rss_per_peer_bytes));
            self.v2_idle_extra_bytes = a.ok().zip(b.ok()).map(|(a, b)| b.saturating_sub(a));
        }
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "sha256d baseline (1 MB, one core): {:.0} MB/s", self.sha256d_mbps)?;
        write!(f, "{:<40} {:>12} {:>12}", "", "v1", "v2")?;
        let (v1, v2) = (self.v1.as_ref().map(|r| r.figures.rates()), self.v2.as_ref().map(|r| r.figures.rates()));
        let Some(rows) = v1.or(v2) else { return Ok(()) };
        for (i, (_, label, _)) in rows.iter().enumerate() {
            let cell = |t: Option<&[(&str, &str, f64); 9]>| {
                t.and_then(|r| r.get(i)).map_or_else(|| "-".to_string(), |(_, _, x)| format!("{x:.0}"))
            };
            write!(f, "\n{label:<40} {:>12} {:>12}", cell(v1.as_ref()), cell(v2.as_ref()))?;
        }
        write!(f, "\n* both peers on one worker thread; the other figures with each node on its own thread")?;
        if let Some(V2Costs { aead_mbps, aead_over_sha256d, v2_handshake: h }) = &self.v2_costs {
            write!(f, "\nv2 packet AEAD (1 MB, one core): {aead_mbps:.0} MB/s, {aead_over_sha256d} × sha256d")?;
            write!(
                f,
                "\nv2 handshake in memory, both sides: {} µs, {} × its curve work ({} µs)",
                h.handshake_us, h.over_floor, h.floor_us
            )?;
        }
        for (s, name) in [(&self.scale, "v1"), (&self.scale_v2, "v2")] {
            if let Some(s) = s {
                write!(
                    f,
                    "\nscale ({name}): {} idle peers up in {} ms, {} bytes resident per peer, torn down in {} ms; \
                     100,000 idle peers: {:.0} MiB projected",
                    s.peers,
                    s.bring_up_ms,
                    s.rss_per_peer_bytes,
                    s.teardown_ms,
                    s.projected_rss_100000_peers_bytes as f64 / (1024.0 * 1024.0)
                )?;
                let hard = s.open_file_limit_hard.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
                write!(f, "\n  limits: open files {} (hard {hard}), local ports {}", s.open_file_limit, s.local_ports)?;
                if let Some(limit) = &s.limited_by {
                    write!(f, "; {} peers asked, cut by the {limit} limit", s.peers_requested)?;
                }
            }
        }
        Ok(())
    }
}
