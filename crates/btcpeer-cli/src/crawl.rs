//! `btcpeer crawl`: breadth-first over the network from seeds (the library's `crawl::Crawler`),
//! a line per node, then a summary: reachable nodes by protocol version, user agent (top 10),
//! services and network type, the v2 share and the median round trip.
//!
//! | event | keys | when |
//! |---|---|---|
//! | `node` | `addr`, `ok`, then `version`, `services`, `user_agent`, `start_height`, `relay`, `transport`, `rtt_us`, `addresses` (reachable) or `failure` | each address tried, once |
//! | `summary` | `tried`, `reachable`, `failed`, `discovered`, `elapsed_ms`, `nodes_per_sec`, `by_version`, `by_user_agent`, `by_services`, `by_network`, `v2_share`, `median_rtt_us` | last |
//!
//! On a terminal, stderr shows a progress bar (done of discovered, then discovered, tried,
//! reachable, failed and the rate), drawn by `indicatif` ten times a second; it is hidden otherwise.
//!
//! Seeds and gossip may name Tor v3 (`….onion`) and I2P (`….b32.i2p`) addresses: they are dialed
//! through `--socks5`, and skipped without it. Each address is dialed in v2 first under `--transport
//! auto` unless the book remembers a failed v2 attempt: then straight in v1.
//!
//! On regtest, simnet and `--magic` networks local addresses learnt from gossip are crawled; on the
//! others only with `--allow-local`. `--book FILE` loads what an earlier run learnt (a corrupt file
//! is kept as `FILE.corrupt` and the crawl starts empty), crawls its addresses after the seeds (so a
//! second run needs no seed), and saves the book at the end.

use std::collections::BTreeMap;
use std::fmt;
use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use btcpeer::core::addrbook::{AddrBook, Endpoint, NetKind};
use btcpeer::crawl::{CrawlFailure, CrawlSummary, Crawler, NodeReport};
use btcpeer::peer::Transport;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::events::Event;
use crate::report::{Output, PeerArgs, parse_secs};
use crate::{EXIT_FAILURE, EXIT_OK};

/// `btcpeer crawl` options.
#[derive(clap::Args, Debug)]
pub struct CrawlArgs {
    /// Where to start: HOST:PORT (or HOST, the network's default port), one or more; optional with
    /// a `--book` that has addresses (its tried ones first, then the rest, after any seeds).
    #[arg(value_name = "SEED")]
    seeds: Vec<String>,
    #[command(flatten)]
    common: PeerArgs,
    /// Connections at once.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// Nodes tried at most.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_nodes: usize,
    /// Seconds per node (dial, handshake, ping, addresses).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    timeout: Duration,
    /// Crawl loopback and private addresses learnt from gossip on any network.
    #[arg(long)]
    allow_local: bool,
    /// Dial through this SOCKS5 proxy (IP:PORT, e.g. Tor's 127.0.0.1:9050).
    #[arg(long, value_name = "ADDR", value_parser = crate::common::parse_proxy)]
    socks5: Option<SocketAddr>,
    /// The address book to start from and save to.
    #[arg(long, value_name = "FILE")]
    book: Option<PathBuf>,
    /// Also write the JSON lines to FILE.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// The events of `btcpeer crawl`.
#[derive(Serialize, Debug)]
#[serde(tag = "event", rename_all = "snake_case")]
enum CrawlEvent {
    Node {
        addr: String,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        services: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_agent: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        start_height: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        relay: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        transport: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rtt_us: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        addresses: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        failure: Option<String>,
    },
    Summary(Summary),
}

#[derive(Serialize, Debug, Default)]
struct Summary {
    tried: usize,
    reachable: usize,
    failed: usize,
    discovered: usize,
    skipped: usize,
    elapsed_ms: u64,
    nodes_per_sec: u64,
    by_version: BTreeMap<u32, usize>,
    by_user_agent: Vec<(String, usize)>,
    by_services: BTreeMap<u64, usize>,
    by_network: BTreeMap<&'static str, usize>,
    v2_share: f64,
    median_rtt_us: Option<u64>,
}

impl Event for CrawlEvent {}

impl fmt::Display for CrawlEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrawlEvent::Node { addr, ok: true, user_agent, version, rtt_us, addresses, .. } => write!(
                f,
                "{addr}: {} version {} rtt {} µs, {} addresses",
                user_agent.as_deref().unwrap_or(""),
                version.unwrap_or(0),
                rtt_us.map_or("-".into(), |r| r.to_string()),
                addresses.unwrap_or(0)
            ),
            CrawlEvent::Node { addr, failure, .. } => write!(f, "{addr}: failed: {}", failure.as_deref().unwrap_or("")),
            CrawlEvent::Summary(s) => {
                writeln!(
                    f,
                    "crawled {} addresses in {} ms ({} nodes/s): {} reachable, {} failed, {} discovered, {} skipped",
                    s.tried, s.elapsed_ms, s.nodes_per_sec, s.reachable, s.failed, s.discovered, s.skipped
                )?;
                writeln!(f, "  by protocol version: {}", join(s.by_version.iter()))?;
                writeln!(f, "  by user agent (top 10): {}", join(s.by_user_agent.iter().map(|(k, v)| (k, v))))?;
                writeln!(f, "  by services: {}", join(s.by_services.iter().map(|(k, v)| (format!("{k:#x}"), v))))?;
                writeln!(f, "  by network: {}", join(s.by_network.iter()))?;
                write!(
                    f,
                    "  v2 share {:.0} %, median round trip {}",
                    s.v2_share * 100.0,
                    s.median_rtt_us.map_or("-".into(), |r| format!("{r} µs"))
                )
            }
        }
    }
}

fn join<K: fmt::Display, V: fmt::Display>(items: impl Iterator<Item = (K, V)>) -> String {
    items.map(|(k, v)| format!("{k} ({v})")).collect::<Vec<_>>().join(", ")
}

fn node_event(report: &NodeReport) -> CrawlEvent {
    let addr = report.addr.to_string();
    match &report.result {
        Ok(i) => CrawlEvent::Node {
            addr,
            ok: true,
            version: Some(i.version),
            services: Some(i.services.to_u64()),
            user_agent: Some(i.user_agent.clone()),
            start_height: Some(i.start_height),
            relay: Some(i.relay),
            transport: Some(if i.transport == Transport::V2 { "v2" } else { "v1" }),
            rtt_us: i.rtt.map(|r| r.as_micros() as u64),
            addresses: Some(i.addresses),
            failure: None,
        },
        Err(e) => {
            let failure = match e {
                CrawlFailure::Unreachable(why) => format!("unreachable: {why}"),
                CrawlFailure::Timeout => "timeout".into(),
                CrawlFailure::Handshake(reason) => format!("handshake: {reason}"),
                CrawlFailure::WrongNetwork(reason) => format!("wrong network: {reason}"),
                other => format!("{other:?}"),
            };
            CrawlEvent::Node {
                addr,
                ok: false,
                version: None,
                services: None,
                user_agent: None,
                start_height: None,
                relay: None,
                transport: None,
                rtt_us: None,
                addresses: None,
                failure: Some(failure),
            }
        }
    }
}

/// Loads the book, keeping a corrupt file aside as `FILE.corrupt`.
fn load_book(path: Option<&PathBuf>, key: [u8; 32]) -> AddrBook {
    let Some(path) = path.filter(|p| p.exists()) else { return AddrBook::new(key, 1) };
    match AddrBook::load(path, 1) {
        Ok(book) => book,
        Err(e) => {
            let kept = path.with_extension("corrupt");
            let _ = std::fs::rename(path, &kept);
            eprintln!("btcpeer crawl: {e}; kept as {} and starting empty", kept.display());
            AddrBook::new(key, 1)
        }
    }
}

/// Runs `btcpeer crawl`; returns the exit code.
pub fn run(args: CrawlArgs) -> u8 {
    let usage = |e: String| crate::report::usage("crawl", &e);
    let network = match args.common.network_for("crawl") {
        Ok(n) => n,
        Err(code) => return code,
    };
    let mut seeds: Vec<Endpoint> = Vec::new();
    for s in &args.seeds {
        if let Some(name) = s.parse::<Endpoint>().ok().filter(|p| p.socket_addr().is_none()) {
            if args.socks5.is_none() {
                return usage(format!("{s}: a Tor or I2P address needs --socks5"));
            }
            seeds.push(name);
            continue;
        }
        let target = match crate::report::parse_target(s, network.default_port()) {
            Ok(t) => t,
            Err(e) => return usage(e),
        };
        match target.to_socket_addrs() {
            Ok(mut a) => seeds.extend(a.next().map(Endpoint::from)),
            Err(e) => return usage(format!("{s}: {e}")),
        }
    }
    let local_network = network.bitcoin_network().is_none_or(|n| n == btcpeer::bitcoin::Network::Regtest);
    let mut builder = args.common.builder(network, Some(args.timeout));
    if let Some(proxy) = args.socks5 {
        builder = builder.proxy(proxy);
    }
    let config = match builder.build() {
        Ok(c) => c,
        Err(e) => return usage(e.to_string()),
    };
    let key = {
        let mut k = [0u8; 32];
        let _ = getrandom::fill(&mut k);
        k
    };
    let mut book = load_book(args.book.as_ref(), key).allow_local(args.allow_local || local_network);
    // A second run starts from what the first learnt: the book's addresses after the seeds, those
    // that answered before first.
    let mut known: Vec<_> = book.entries().map(|e| (!e.in_tried, e.peer.clone())).collect();
    known.sort_by_key(|(untried, _)| *untried);
    seeds.extend(known.into_iter().map(|(_, p)| p));
    if seeds.is_empty() {
        return usage("no SEED given and no addresses in the book to start from".into());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("btcpeer crawl: cannot start the async runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    let out = Output { json: args.common.json, peer_prefix: false };
    let mut file = args.out.as_ref().and_then(|p| std::fs::File::create(p).ok());
    let mut reachable = Vec::new();
    let started = Instant::now();
    let crawler = Crawler::new(config)
        .concurrency(args.concurrency as usize)
        .max_nodes(args.max_nodes)
        .timeout(args.timeout)
        .allow_local(args.allow_local || local_network);
    let progress = CrawlProgress::new(std::io::stderr().is_terminal() && !args.common.json);
    let totals = runtime.block_on(crawler.run_with_progress(seeds, &mut book, |node, so_far| {
        let event = node_event(node);
        progress.bar.suspend(|| out.emit(&event));
        progress.update(so_far, started.elapsed());
        if let Some(f) = file.as_mut() {
            use std::io::Write;
            let _ = writeln!(f, "{}", serde_json::to_string(&event).unwrap_or_default());
        }
        if let Ok(info) = &node.result {
            reachable.push((node.addr.clone(), info.clone()));
        }
    }));
    drop(progress);
    let elapsed = started.elapsed();
    let summary = summarise(&totals, &reachable, elapsed);
    out.emit(&CrawlEvent::Summary(summary));
    if let Some(path) = &args.book {
        if let Err(e) = book.save(path) {
            eprintln!("btcpeer crawl: cannot save {}: {e}", path.display());
            return EXIT_FAILURE;
        }
    }
    EXIT_OK
}

fn summarise(
    totals: &btcpeer::crawl::CrawlSummary,
    nodes: &[(Endpoint, btcpeer::crawl::NodeInfo)],
    elapsed: Duration,
) -> Summary {
    let mut s = Summary {
        tried: totals.tried,
        reachable: totals.reachable,
        failed: totals.failed,
        discovered: totals.discovered,
        skipped: totals.skipped,
        elapsed_ms: elapsed.as_millis() as u64,
        nodes_per_sec: (totals.tried as f64 / elapsed.as_secs_f64().max(1e-3)) as u64,
        ..Summary::default()
    };
    let mut agents: BTreeMap<String, usize> = BTreeMap::new();
    let mut rtts: Vec<u64> = Vec::new();
    let mut v2 = 0usize;
    for (addr, n) in nodes {
        *s.by_version.entry(n.version).or_default() += 1;
        *agents.entry(n.user_agent.clone()).or_default() += 1;
        *s.by_services.entry(n.services.to_u64()).or_default() += 1;
        *s.by_network.entry(network_name(&addr.addr)).or_default() += 1;
        v2 += usize::from(n.transport == Transport::V2);
        rtts.extend(n.rtt.map(|r| r.as_micros() as u64));
    }
    let mut agents: Vec<_> = agents.into_iter().collect();
    agents.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    agents.truncate(10);
    s.by_user_agent = agents;
    s.v2_share = if nodes.is_empty() { 0.0 } else { v2 as f64 / nodes.len() as f64 };
    rtts.sort_unstable();
    s.median_rtt_us = rtts.get(rtts.len() / 2).copied();
    s
}

/// The network type of the summary's `by_network`.
fn network_name(addr: &btcpeer::bitcoin::p2p::address::AddrV2) -> &'static str {
    match NetKind::of(addr) {
        Some(NetKind::Ipv4) => "ipv4",
        Some(NetKind::Ipv6) => "ipv6",
        Some(NetKind::Onion) => "onion",
        Some(NetKind::I2p) => "i2p",
        Some(NetKind::Cjdns) => "cjdns",
        _ => "other",
    }
}

/// The crawl's progress bar on stderr (hidden when stderr is not a terminal, or with `--json`):
/// done of discovered, with the counts and the rate. Cleared when dropped.
struct CrawlProgress {
    bar: ProgressBar,
}

impl CrawlProgress {
    const TEMPLATE: &str = "crawl [{bar:30}] {pos}/{len} {msg}";

    fn new(terminal: bool) -> CrawlProgress {
        let draw = if terminal { ProgressDrawTarget::stderr_with_hz(10) } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(0), draw);
        // The template is fixed and valid; the default style would do as well.
        let style = ProgressStyle::with_template(Self::TEMPLATE).unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("#-"));
        CrawlProgress { bar }
    }

    fn update(&self, s: &CrawlSummary, elapsed: Duration) {
        let done = s.reachable.saturating_add(s.failed) as u64;
        self.bar.set_length(s.discovered as u64);
        self.bar.set_position(done);
        self.bar.set_message(progress_message(s, elapsed));
    }
}

impl Drop for CrawlProgress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn progress_message(s: &CrawlSummary, elapsed: Duration) -> String {
    let rate = s.reachable.saturating_add(s.failed) as f64 / elapsed.as_secs_f64().max(1e-3);
    format!(
        "discovered {} · tried {} · reachable {} · failed {} · {:.0} nodes/s",
        s.discovered, s.tried, s.reachable, s.failed, rate
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_shows_discovered_tried_reachable_failed_and_rate() {
        let mut s = CrawlSummary::default();
        (s.discovered, s.tried, s.reachable, s.failed) = (40, 30, 20, 5);
        assert_eq!(
            progress_message(&s, Duration::from_secs(5)),
            "discovered 40 · tried 30 · reachable 20 · failed 5 · 5 nodes/s"
        );
        let p = CrawlProgress::new(false);
        p.update(&s, Duration::from_secs(5));
        assert_eq!((p.bar.position(), p.bar.length()), (25, Some(40)));
    }

    #[test]
    fn the_summary_names_every_network_type() {
        use btcpeer::bitcoin::p2p::address::AddrV2;
        assert_eq!(network_name(&AddrV2::Ipv4([8, 8, 8, 8].into())), "ipv4");
        assert_eq!(network_name(&AddrV2::TorV3([1; 32])), "onion");
        assert_eq!(network_name(&AddrV2::I2p([1; 32])), "i2p");
        assert_eq!(network_name(&AddrV2::Cjdns("fc00::1".parse().unwrap())), "cjdns");
    }
}
