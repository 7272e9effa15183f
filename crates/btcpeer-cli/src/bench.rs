//! `btcpeer bench` (R-C5, P-2 … P-4): peer figures over 127.0.0.1 in one process, for v1 and v2,
//! beside the machine's single-core `sha256d` rate measured in the same run.
//!
//! Figures: sequential handshakes per second (TCP connect included); ping round trips per second, one
//! at a time and pipelined; one-way `inv` messages per second with 1 and with 1,000 entries; 1 MB
//! block messages per second and MB/s, decoded and raw; and in the scale mode N/2 connected idle
//! pairs: the time to bring them up, resident memory per peer, and the time to tear them down. Each
//! figure is also given as a ratio to the `sha256d` baseline (MB/s), so runs on different machines
//! compare, and beside btcd's reference figures for this kind of machine.
//!
//! # JSON
//!
//! With `--json`, one object: `{"event":"bench", "sha256d_mbps", "v1": {...}, "v2": {...}, "scale":
//! {...}}`, where each transport object has `handshakes_per_sec`, `ping_rtt_per_sec`,
//! `ping_pipelined_per_sec`, `inv1_msgs_per_sec`, `inv1000_msgs_per_sec`, `block_decoded_per_sec`,
//! `block_decoded_mbps`, `block_raw_per_sec`, `block_raw_mbps`, `block_size_bytes`, `layout` (which
//! figures had both peers on one thread), `ratio_to_sha256d_mbps` (each rate divided by
//! `sha256d_mbps`) and `times_btcd` (each rate btcd has a figure for, over it); `scale` has `peers`, `bring_up_ms`, `rss_per_peer_bytes`, `hold_secs`,
//! `teardown_ms` (idle v1 peers), `peers_requested`, `open_file_limit`, `open_file_limit_hard`,
//! `local_ports`, `limited_by` (`"open files"` or `"local ports"` when N was cut, else null) and
//! `projected_rss_100000_peers_bytes` (see `bench_scale`), and `scale_v2` the same for v2 peers. With v2 measured: `aead_mbps`
//! and `aead_over_sha256d` (the BIP324 packet AEAD on 1 MB beside the v1 checksum's cost, the two
//! measured in alternating slices),
//! `v2_handshake` (`handshake_us` for both sides in memory, `floor_us` for their curve work alone,
//! `over_floor`), `v2_over_v1` (each v2 figure over its v1 counterpart) and `v2_idle_extra_bytes`
//! (resident memory of an idle v2 peer minus a v1 one). What was not measured is left out. The
//! report's types and its table are in `bench_report`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use btcpeer::bitcoin::hashes::Hash;
use btcpeer::bitcoin::{Block, BlockHash};
use btcpeer::network::Network;
use btcpeer::peer::{Handler, NonceRegistry, NoopHandler, Peer, PeerConfig, V2Policy};
use btcpeer::wire::{Command, Inventory, Message};
use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::bench_report::{BenchReport, Figures, LayoutNames, Rated, V2Costs};
use crate::events::json_line;
use crate::{EXIT_FAILURE, EXIT_OK, EXIT_TIMEOUT};
use crate::{bench_crypto, bench_scale};

/// The transports `--transport` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Transports {
    V1,
    V2,
    Both,
}

impl Transports {
    fn includes(self, t: Measured) -> bool {
        match self {
            Transports::Both => true,
            Transports::V1 => t == Measured::V1,
            Transports::V2 => t == Measured::V2,
        }
    }
}

/// One transport measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Measured {
    V1,
    V2,
}

impl Measured {
    pub(crate) fn policy(self) -> V2Policy {
        match self {
            Measured::V1 => V2Policy::Never,
            Measured::V2 => V2Policy::Require,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Measured::V1 => "v1",
            Measured::V2 => "v2",
        }
    }
}

/// Why the bench stopped.
#[derive(Debug)]
pub(crate) enum BenchError {
    /// A wait took longer than `--timeout` (exit code 3).
    Timeout(String),
    /// Anything else (exit code 1).
    Failed(String),
}

impl BenchError {
    fn exit_code(&self) -> u8 {
        match self {
            BenchError::Timeout(_) => EXIT_TIMEOUT,
            BenchError::Failed(_) => EXIT_FAILURE,
        }
    }
}

impl From<String> for BenchError {
    fn from(e: String) -> BenchError {
        BenchError::Failed(e)
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Timeout(e) | BenchError::Failed(e) => f.write_str(e),
        }
    }
}

/// The arguments of `btcpeer bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Transports to measure: v1, v2 or both.
    #[arg(long, value_enum, default_value = "both")]
    transport: Transports,
    /// Sequential handshakes per transport.
    #[arg(long, default_value_t = 2_000)]
    handshakes: u32,
    /// Ping round trips one at a time.
    #[arg(long, default_value_t = 20_000)]
    pings: u32,
    /// Pings in flight at once.
    #[arg(long, default_value_t = 300_000)]
    pipelined: u32,
    /// inv messages of 1 entry.
    #[arg(long, default_value_t = 1_000_000)]
    inv1: u32,
    /// inv messages of 1,000 entries.
    #[arg(long, default_value_t = 40_000)]
    inv1000: u32,
    /// Block messages (each round, decoded and raw).
    #[arg(long, default_value_t = 500)]
    blocks: u32,
    /// Size of the block messages in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    block_size: usize,
    /// Scale mode: idle connected peers to bring up (N/2 pairs; 0 skips it). Up to what the
    /// process's open-file limit allows (the soft limit is raised to the hard one first) and the
    /// local ports allow; the report says which limit cut a larger N.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) peers: u32,
    /// Seconds to hold the idle peers in the scale mode.
    #[arg(long, default_value_t = 3)]
    pub(crate) hold: u64,
    /// Bound on every wait, in seconds.
    #[arg(long, default_value_t = 120)]
    pub(crate) timeout: u64,
    /// Internal: measure only the scale mode for one transport and print its JSON (the full bench
    /// runs each scale measurement in a fresh process, so that memory one freed cannot hide the
    /// next one's growth).
    #[arg(long, hide = true, value_enum)]
    scale_only: Option<Measured>,
}

/// Counts what a receiving peer sees and wakes the bench when a target is reached.
#[derive(Default)]
struct Counter {
    count: AtomicU64,
    bytes: AtomicU64,
    target: AtomicU64,
    reached: Notify,
}

impl Counter {
    fn hit(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let n = self.count.fetch_add(1, Ordering::AcqRel) + 1;
        if n == self.target.load(Ordering::Acquire) {
            self.reached.notify_one();
        }
    }

    fn expect(&self, n: u64) {
        self.count.store(0, Ordering::Release);
        self.bytes.store(0, Ordering::Release);
        self.target.store(n, Ordering::Release);
    }
}

struct Counting(Arc<Counter>);

impl Handler for Counting {
    fn on_pong(&self, _: &Peer, _: u64) {
        self.0.hit(8);
    }
    fn on_inv(&self, _: &Peer, inv: Vec<Inventory>) {
        self.0.hit(inv.len());
    }
    fn on_block(&self, _: &Peer, _: Block, raw: Bytes) {
        self.0.hit(raw.len());
    }
    fn on_raw_block(&self, _: &Peer, raw: Bytes) {
        self.0.hit(raw.len());
    }
}

fn config(policy: V2Policy, registry: &NonceRegistry, raw_blocks: bool) -> PeerConfig {
    PeerConfig::builder(Network::REGTEST)
        .nonce_registry(registry.clone())
        .v2(policy)
        .raw_blocks(raw_blocks)
        .max_queue_bytes(32 * 1024 * 1024)
        .ping_interval(Duration::ZERO)
        .build()
        .unwrap_or_else(|_| unreachable_config())
}

/// The bench's fixed configuration is always valid; this keeps the type checker (and clippy) happy.
fn unreachable_config() -> PeerConfig {
    PeerConfig::builder(Network::REGTEST).build().unwrap_or_else(|e| panic!("default config: {e}"))
}

pub(crate) struct Pair {
    pub(crate) out: Peer,
    pub(crate) inb: Peer,
}

/// The two nodes of a measurement: one dials, one listens. Each has its own configuration (and so
/// its own nonce registry), shared by all its peers as in a real node.
pub(crate) struct Nodes {
    dialer: PeerConfig,
    listener: PeerConfig,
}

impl Nodes {
    pub(crate) fn new(policy: V2Policy, raw: bool) -> Nodes {
        Nodes {
            dialer: config(policy, &NonceRegistry::new(), false),
            listener: config(policy, &NonceRegistry::new(), raw),
        }
    }
}

/// Where the listening node's end of a pair runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Both peers on the dialing node's worker thread: a round trip costs what the two peers do,
    /// not the operating system's cross-core wake-up (tens of microseconds and very noisy on a
    /// shared virtual machine; Go's scheduler hides it by spinning idle threads).
    OneThread,
    /// The listening node on its own runtime and thread (see [`run`]): both cores work, for
    /// throughput.
    TwoThreads,
}

pub(crate) async fn pair(
    listener: &TcpListener,
    policy: V2Policy,
    out: impl Handler,
    inb: impl Handler,
    raw: bool,
    layout: Layout,
    listening: &Handle,
) -> Result<Pair, BenchError> {
    pair_of(listener, &Nodes::new(policy, raw), out, inb, layout, listening).await
}

pub(crate) async fn pair_of(
    listener: &TcpListener,
    nodes: &Nodes,
    out: impl Handler,
    inb: impl Handler,
    layout: Layout,
    listening: &Handle,
) -> Result<Pair, BenchError> {
    let remote = (layout == Layout::TwoThreads).then_some(listening);
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let client = client.map_err(|e| e.to_string())?;
    let (server, from) = server.map_err(|e| e.to_string())?;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let o = Peer::outbound(nodes.dialer.clone(), addr, out);
    let i = Peer::inbound(nodes.listener.clone(), from, inb);
    // The listening node runs on its own runtime (as a remote node runs on its own threads): its
    // connection is registered with that runtime's reactor and its peer's task runs there.
    let server = match remote {
        Some(handle) => {
            let std = server.into_std().map_err(|e| e.to_string())?;
            let _entered = handle.enter();
            TcpStream::from_std(std).map_err(|e| e.to_string())?
        }
        None => server,
    };
    o.associate(client).map_err(|e| e.to_string())?;
    match remote {
        Some(handle) => {
            let _entered = handle.enter();
            i.associate(server).map_err(|e| e.to_string())?;
        }
        None => i.associate(server).map_err(|e| e.to_string())?,
    }
    o.handshake().await.map_err(|e| e.to_string())?;
    i.handshake().await.map_err(|e| e.to_string())?;
    Ok(Pair { out: o, inb: i })
}

pub(crate) async fn close(p: Pair) {
    p.out.disconnect();
    p.inb.disconnect();
    p.out.wait_for_disconnect().await;
    p.inb.wait_for_disconnect().await;
}

async fn wait_counter(c: &Counter, timeout: Duration) -> Result<(), BenchError> {
    let target = c.target.load(Ordering::Acquire);
    let wait = async {
        while c.count.load(Ordering::Acquire) < target {
            let notified = c.reached.notified();
            if c.count.load(Ordering::Acquire) >= target {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    };
    let what = if target == 1 { "an answer".to_string() } else { format!("{target} messages") };
    tokio::time::timeout(timeout, wait).await.map_err(|_| BenchError::Timeout(format!("timed out waiting for {what}")))
}

/// Every figure for one transport.
async fn transport_figures(
    args: &BenchArgs,
    policy: V2Policy,
    timeout: Duration,
    listening: &Handle,
) -> Result<Figures, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;

    // Sequential handshakes, TCP connect included.
    let start = Instant::now();
    for _ in 0..args.handshakes {
        let p = tokio::time::timeout(
            timeout,
            pair(&listener, policy, NoopHandler, NoopHandler, false, Layout::OneThread, listening),
        )
        .await
        .map_err(|_| BenchError::Timeout("handshake timed out".to_string()))??;
        close(p).await;
    }
    let handshakes = f64::from(args.handshakes) / start.elapsed().as_secs_f64();

    // Pings, one at a time, then pipelined.
    let pongs = Arc::new(Counter::default());
    let p = pair(&listener, policy, Counting(pongs.clone()), NoopHandler, false, Layout::OneThread, listening).await?;
    let start = Instant::now();
    for n in 0..args.pings {
        pongs.expect(1);
        let _ = p.out.send(&Message::Ping(u64::from(n))).await.map_err(|e| e.to_string())?;
        wait_counter(&pongs, timeout).await?;
    }
    let ping_rtt = f64::from(args.pings) / start.elapsed().as_secs_f64();
    close(p).await;
    let p = pair(&listener, policy, Counting(pongs.clone()), NoopHandler, false, Layout::TwoThreads, listening).await?;
    pongs.expect(u64::from(args.pipelined));
    let start = Instant::now();
    for n in 0..args.pipelined {
        let _ = p.out.send(&Message::Ping(u64::from(n))).await.map_err(|e| e.to_string())?;
    }
    wait_counter(&pongs, timeout).await?;
    let ping_pipelined = f64::from(args.pipelined) / start.elapsed().as_secs_f64();
    close(p).await;

    // One-way inv messages of 1 and of 1,000 entries.
    let mut inv_rates = Vec::new();
    for (count, entries) in [(args.inv1, 1usize), (args.inv1000, 1_000)] {
        let got = Arc::new(Counter::default());
        let p =
            pair(&listener, policy, NoopHandler, Counting(got.clone()), false, Layout::TwoThreads, listening).await?;
        let items: Vec<Inventory> =
            (0..entries).map(|i| Inventory::Block(BlockHash::from_byte_array([(i % 251) as u8; 32]))).collect();
        // Encoded once (checksum included), sent many times, as a relay would.
        let prepared = btcpeer::wire::frame::Prepared::new(&Message::Inv(items)).map_err(|e| e.to_string())?;
        got.expect(u64::from(count));
        let start = Instant::now();
        for _ in 0..count {
            let _ = p.out.send_prepared(&prepared).await.map_err(|e| e.to_string())?;
        }
        wait_counter(&got, timeout).await?;
        inv_rates.push(f64::from(count) / start.elapsed().as_secs_f64());
        close(p).await;
    }

    // 1 MB blocks, decoded by the receiver, then handed on raw.
    let block = btcpeer::testing::big_block(args.block_size);
    let prepared = btcpeer::wire::frame::Prepared::raw(
        Command::BLOCK,
        Bytes::from(btcpeer::bitcoin::consensus::serialize(&block)),
    );
    let mut block_rates = Vec::new();
    for raw in [false, true] {
        let got = Arc::new(Counter::default());
        let p = pair(&listener, policy, NoopHandler, Counting(got.clone()), raw, Layout::TwoThreads, listening).await?;
        got.expect(u64::from(args.blocks));
        let start = Instant::now();
        for _ in 0..args.blocks {
            let _ = p.out.send_prepared(&prepared).await.map_err(|e| e.to_string())?;
        }
        wait_counter(&got, timeout).await?;
        let secs = start.elapsed().as_secs_f64();
        block_rates.push((f64::from(args.blocks) / secs, got.bytes.load(Ordering::Relaxed) as f64 / secs / 1e6));
        close(p).await;
    }

    Ok(Figures {
        handshakes_per_sec: handshakes.round(),
        ping_rtt_per_sec: ping_rtt.round(),
        ping_pipelined_per_sec: ping_pipelined.round(),
        inv1_msgs_per_sec: inv_rates[0].round(),
        inv1000_msgs_per_sec: inv_rates[1].round(),
        block_size_bytes: prepared.payload().len(),
        block_decoded_per_sec: (block_rates[0].0 * 10.0).round() / 10.0,
        block_decoded_mbps: block_rates[0].1.round(),
        block_raw_per_sec: (block_rates[1].0 * 10.0).round() / 10.0,
        block_raw_mbps: block_rates[1].1.round(),
        layout: LayoutNames {
            one_thread: ["handshakes_per_sec", "ping_rtt_per_sec"],
            two_threads: [
                "ping_pipelined_per_sec",
                "inv1_msgs_per_sec",
                "inv1000_msgs_per_sec",
                "block_decoded_per_sec",
                "block_raw_per_sec",
            ],
        },
    })
}

/// Runs the benchmark; returns the exit code.
pub fn run(args: BenchArgs) -> u8 {
    // Two nodes, each with one worker thread of its own, on the machine's two cores: the dialing
    // node (and the bench itself) here, the listening node on `listening` (its handle is passed
    // down to where pairs are made). In one shared
    // runtime, tokio would run both ends of a single connection on one thread (a woken task runs
    // next on the waker's thread), which measures the scheduler, not the peers. The latency-bound
    // figures (handshakes, pings one at a time) put both peers on one thread instead: see `Layout`.
    let listening = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("listening-node")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("btcpeer bench: cannot start the runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("btcpeer bench: cannot start the runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    let timeout = Duration::from_secs(args.timeout);
    // The driver runs as a task on the dialing node's worker (not on this thread), so a
    // latency-bound figure measures peer to peer, not an extra thread hop per round trip.
    let result: Result<String, BenchError> = runtime.block_on(async {
        tokio::spawn(driver(args, timeout, listening.handle().clone()))
            .await
            .unwrap_or_else(|e| Err(BenchError::Failed(format!("the bench driver failed: {e}"))))
    });
    match result {
        Ok(out) => {
            crate::events::print_line(&out);
            EXIT_OK
        }
        Err(e) => {
            eprintln!("btcpeer bench: {e}");
            e.exit_code()
        }
    }
}

/// Measures what `args` asks for; returns what to print: the report (JSON or the table), or with
/// `--scale-only` the scale figures as JSON.
async fn driver(args: BenchArgs, timeout: Duration, listening: Handle) -> Result<String, BenchError> {
    let listening = &listening;
    if let Some(transport) = args.scale_only {
        let figures =
            bench_scale::scale(args.peers, Duration::from_secs(args.hold), timeout, transport.policy(), listening)
                .await?;
        return Ok(json_line(&figures));
    }
    let sha = bench_crypto::sha256d_mbps();
    let mut report = BenchReport { sha256d_mbps: sha.round(), ..BenchReport::default() };
    let v2 = args.transport.includes(Measured::V2);
    if v2 {
        // What a v2 packet costs beside what a v1 frame costs (its checksum), and a handshake
        // beside its curve work.
        let (aead, ratio) = bench_crypto::aead_figures();
        report.v2_costs = Some(V2Costs {
            aead_mbps: aead.round(),
            aead_over_sha256d: (ratio * 100.0).round() / 100.0,
            v2_handshake: bench_crypto::handshake_figures().await?,
        });
    }
    for t in [Measured::V1, Measured::V2] {
        if args.transport.includes(t) {
            let rated = Some(Rated::new(transport_figures(&args, t.policy(), timeout, listening).await?, sha));
            match t {
                Measured::V1 => report.v1 = rated,
                Measured::V2 => report.v2 = rated,
            }
        }
    }
    if args.peers > 0 {
        if args.transport.includes(Measured::V1) {
            report.scale = Some(bench_scale::scale_in_child(&args, Measured::V1, listening).await?);
        }
        if v2 {
            report.scale_v2 = Some(bench_scale::scale_in_child(&args, Measured::V2, listening).await?);
        }
    }
    report.compare();
    Ok(if args.json { json_line(&report) } else { report.to_string() })
}
