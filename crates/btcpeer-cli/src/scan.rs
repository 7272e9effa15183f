//! `btcpeer scan`: a compact-filter light client (the library's `light::LightClient`) that syncs
//! from the `--connect` peers, prints every output paid to a watched address or script and every
//! spend of one, then a summary; exits 0 once synced (with `--follow` it keeps following the chain
//! and reports new blocks and reorgs until Ctrl-C).
//!
//! | event | keys | when |
//! |---|---|---|
//! | `peer_connected` | `addr`, `user_agent`, `transport` | a peer serving filters finished its handshake |
//! | `peer_dropped` | `addr`, `reason` | a peer lied, withheld, is on another network or has no filters |
//! | `tx` | `kind` (`received`/`spent`), `txid`, `vout`, `value`, `height`, `block`, then `script` (received) or `spending_txid`, `vin` (spent) | each output paid to a watched script, each spend of one |
//! | `reorg` | `fork_height`, `disconnected`, `old_tip`, `new_tip` | the best chain switched to a heavier fork |
//! | `block` | `height`, `hash` | with `--follow`, each block connected after the first sync |
//! | `synced` | `height`, `tip`, `received`, `spent`, `unspent_value`, `elapsed_ms` | caught up (last, without `--follow`) |
//!
//! For a spend, `txid` and `vout` name the output spent (as for its `received` line) and
//! `spending_txid` the transaction that spent it. On a terminal, stderr shows a progress bar
//! (headers, filter headers, filters, blocks); it is hidden with `--json` or when stderr is not a
//! terminal. No honest peer left is exit 1 with the reasons on stderr.

use std::collections::HashMap;
use std::fmt;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use btcpeer::bitcoin::{Address, OutPoint, ScriptBuf};
use btcpeer::light::{LightClient, LightError, LightEvent, Stage, TxKind};
use btcpeer::network::Network;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::events::{Event, millis};
use crate::report::{Output, TransportArg, parse_positive_secs, parse_target, usage};
use crate::{EXIT_FAILURE, EXIT_OK};

/// `btcpeer scan` options.
#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Network: mainnet, testnet3, testnet4, signet, regtest.
    #[arg(long, default_value = "mainnet", value_name = "NAME")]
    network: String,
    /// Peers to sync from (HOST:PORT, or HOST with the network's port), one or more; they must
    /// serve compact filters (NODE_COMPACT_FILTERS).
    #[arg(long, value_name = "HOST:PORT", num_args = 1.., required = true)]
    connect: Vec<String>,
    /// Addresses or output scripts (hex) to watch, one or more.
    #[arg(long, value_name = "ADDRESS|SCRIPT_HEX", num_args = 1.., required = true)]
    watch: Vec<String>,
    /// Match filters from this height (headers and filter headers are synced from genesis).
    #[arg(long, value_name = "HEIGHT", default_value_t = 0)]
    from: u32,
    /// Keep headers and filter headers here, so that the next run resumes.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep following the chain after the sync (new blocks, reorgs, payments) until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// Peers to sync from at once.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    peers: u32,
    /// Transport: v1, v2 (BIP324 only) or auto (v2, falling back to v1).
    #[arg(long, value_enum, default_value = "auto", value_name = "v1|v2|auto")]
    transport: TransportArg,
    /// Seconds a peer may take to answer one request before it is dropped as withholding.
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = parse_positive_secs)]
    timeout: Duration,
    /// One JSON object per line instead of readable text.
    #[arg(long)]
    json: bool,
}

/// The events of `btcpeer scan`.
#[derive(Serialize, Debug)]
#[serde(tag = "event", rename_all = "snake_case")]
enum ScanEvent {
    PeerConnected {
        addr: String,
        user_agent: String,
        transport: &'static str,
    },
    PeerDropped {
        addr: String,
        reason: String,
    },
    Tx {
        kind: &'static str,
        txid: String,
        vout: u32,
        value: u64,
        height: u32,
        block: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        script: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        spending_txid: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        vin: Option<u32>,
    },
    Reorg {
        fork_height: u32,
        disconnected: u32,
        old_tip: String,
        new_tip: String,
    },
    Block {
        height: u32,
        hash: String,
    },
    Synced {
        height: u32,
        tip: String,
        received: usize,
        spent: usize,
        unspent_value: u64,
        elapsed_ms: u64,
    },
}

impl Event for ScanEvent {}

impl fmt::Display for ScanEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanEvent::PeerConnected { addr, user_agent, transport } => {
                write!(f, "connected to {addr} ({user_agent}, {transport})")
            }
            ScanEvent::PeerDropped { addr, reason } => write!(f, "dropped {addr}: {reason}"),
            ScanEvent::Tx { kind: "spent", txid, vout, value, height, spending_txid, .. } => write!(
                f,
                "spent     {txid}:{vout} {value} sat at height {height} by {}",
                spending_txid.as_deref().unwrap_or("")
            ),
            ScanEvent::Tx { txid, vout, value, height, .. } => {
                write!(f, "received  {txid}:{vout} {value} sat at height {height}")
            }
            ScanEvent::Reorg { fork_height, disconnected, new_tip, .. } => {
                write!(f, "reorg: {disconnected} blocks above {fork_height} replaced; new tip {new_tip}")
            }
            ScanEvent::Block { height, hash } => write!(f, "block {height} {hash}"),
            ScanEvent::Synced { height, tip, received, spent, unspent_value, elapsed_ms } => write!(
                f,
                "synced to height {height} ({tip}) in {elapsed_ms} ms: {received} outputs received, {spent} spent, \
                 {unspent_value} sat unspent"
            ),
        }
    }
}

/// `ADDRESS` (of `network`) or `SCRIPT_HEX` as the script it stands for.
fn parse_watch(s: &str, network: &Network) -> Result<ScriptBuf, String> {
    if let Ok(address) = s.parse::<Address<btcpeer::bitcoin::address::NetworkUnchecked>>() {
        let Some(chain) = network.bitcoin_network() else {
            return Err(format!("{s}: an address needs a known network"));
        };
        return address.require_network(chain).map(|a| a.script_pubkey()).map_err(|e| format!("{s}: {e}"));
    }
    match ScriptBuf::from_hex(s) {
        Ok(script) if !script.is_empty() => Ok(script),
        _ => Err(format!("{s:?} is neither an address nor a script in hex")),
    }
}

/// What the scan found on the current chain, for the summary: each output received with its
/// value, the height it was received at, and the height it was spent at.
#[derive(Default)]
struct Tally {
    outputs: HashMap<OutPoint, (u64, u32, Option<u32>)>,
}

impl Tally {
    fn received(&mut self, outpoint: OutPoint, value: u64, height: u32) {
        self.outputs.insert(outpoint, (value, height, None));
    }

    fn spent(&mut self, outpoint: OutPoint, height: u32) {
        if let Some(o) = self.outputs.get_mut(&outpoint) {
            o.2 = Some(height);
        }
    }

    /// Blocks above `fork` left the chain: what they received is gone, what they spent is not.
    fn reorg(&mut self, fork: u32) {
        self.outputs.retain(|_, o| o.1 <= fork);
        for o in self.outputs.values_mut() {
            if o.2.is_some_and(|h| h > fork) {
                o.2 = None;
            }
        }
    }

    /// Outputs received, those spent, and the value of the others.
    fn summary(&self) -> (usize, usize, u64) {
        let spent = self.outputs.values().filter(|o| o.2.is_some()).count();
        let unspent = self.outputs.values().filter(|o| o.2.is_none()).map(|o| o.0).sum();
        (self.outputs.len(), spent, unspent)
    }
}

/// Runs `btcpeer scan`; returns the exit code.
pub fn run(args: ScanArgs) -> u8 {
    let network: Network = match args.network.parse() {
        Ok(n) => n,
        Err(e) => return usage("scan", &format!("--network: {e}")),
    };
    let mut scripts = Vec::new();
    for w in &args.watch {
        match parse_watch(w, &network) {
            Ok(s) => scripts.push(s),
            Err(e) => return usage("scan", &e),
        }
    }
    let mut peers = Vec::new();
    for c in &args.connect {
        match parse_target(c, network.default_port()) {
            Ok(t) => peers.push(t),
            Err(e) => return usage("scan", &format!("--connect: {e}")),
        }
    }
    let mut builder = LightClient::builder(network)
        .peers(peers)
        .watch(scripts)
        .from_height(args.from)
        .target_peers(args.peers as usize)
        .v2(args.transport.policy())
        .request_timeout(args.timeout);
    if let Some(dir) = &args.data_dir {
        builder = builder.data_dir(dir);
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(LightError::UnknownChain(n)) => return usage("scan", &format!("--network {n} has no known chain")),
        Err(e) => {
            eprintln!("btcpeer scan: {e}");
            return EXIT_FAILURE;
        }
    };
    if let Some(repaired) = client.repaired() {
        eprintln!("btcpeer scan: {repaired}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("btcpeer scan: cannot start the async runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    runtime.block_on(scan(client, args.json, args.follow))
}

async fn scan(client: LightClient, json: bool, follow: bool) -> u8 {
    let started = Instant::now();
    let out = Output { json, peer_prefix: false };
    let progress = ScanProgress::new(std::io::stderr().is_terminal() && !json);
    let mut handle = match client.start() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("btcpeer scan: {e}");
            return EXIT_FAILURE;
        }
    };
    let mut tally = Tally::default();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let event = tokio::select! {
            e = handle.next_event() => e,
            _ = &mut ctrl_c => return EXIT_OK,
        };
        let Some(event) = event else {
            eprintln!("btcpeer scan: the client stopped");
            return EXIT_FAILURE;
        };
        let printed = match event {
            LightEvent::PeerConnected { addr, user_agent, v2, .. } => {
                Some(ScanEvent::PeerConnected { addr, user_agent, transport: if v2 { "v2" } else { "v1" } })
            }
            LightEvent::PeerDropped { addr, reason, .. } => Some(ScanEvent::PeerDropped { addr, reason }),
            LightEvent::Progress { stage, height, target, .. } => {
                progress.update(stage, height, target);
                None
            }
            LightEvent::Tx(t) => Some(match t.kind {
                TxKind::Received { vout, value, script, .. } => {
                    tally.received(OutPoint { txid: t.txid, vout }, value.to_sat(), t.height);
                    ScanEvent::Tx {
                        kind: "received",
                        txid: t.txid.to_string(),
                        vout,
                        value: value.to_sat(),
                        height: t.height,
                        block: t.block.to_string(),
                        script: Some(script.to_hex_string()),
                        spending_txid: None,
                        vin: None,
                    }
                }
                TxKind::Spent { vin, outpoint, value, .. } => {
                    tally.spent(outpoint, t.height);
                    ScanEvent::Tx {
                        kind: "spent",
                        txid: outpoint.txid.to_string(),
                        vout: outpoint.vout,
                        value: value.to_sat(),
                        height: t.height,
                        block: t.block.to_string(),
                        script: None,
                        spending_txid: Some(t.txid.to_string()),
                        vin: Some(vin),
                    }
                }
                _ => continue,
            }),
            LightEvent::Reorg { fork_height, disconnected, old_tip, new_tip, .. } => {
                tally.reorg(fork_height);
                Some(ScanEvent::Reorg {
                    fork_height,
                    disconnected,
                    old_tip: old_tip.to_string(),
                    new_tip: new_tip.to_string(),
                })
            }
            LightEvent::BlockConnected { height, hash, .. } if follow => {
                Some(ScanEvent::Block { height, hash: hash.to_string() })
            }
            LightEvent::Synced { height, tip, .. } => {
                progress.bar.finish_and_clear();
                let (received, spent, unspent_value) = tally.summary();
                let synced = ScanEvent::Synced {
                    height,
                    tip: tip.to_string(),
                    received,
                    spent,
                    unspent_value,
                    elapsed_ms: millis(started.elapsed()),
                };
                out.emit(&synced);
                if !follow {
                    return EXIT_OK;
                }
                None
            }
            LightEvent::Stopped(e) => {
                progress.bar.finish_and_clear();
                eprintln!("btcpeer scan: {e}");
                return EXIT_FAILURE;
            }
            _ => None,
        };
        if let Some(e) = printed {
            progress.bar.suspend(|| out.emit(&e));
        }
    }
}

/// The progress bar on stderr (hidden when stderr is not a terminal, or with `--json`).
struct ScanProgress {
    bar: ProgressBar,
}

impl ScanProgress {
    fn new(terminal: bool) -> ScanProgress {
        let draw = if terminal { ProgressDrawTarget::stderr_with_hz(10) } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(0), draw);
        // The template is fixed and valid; the default style would do as well.
        let style = ProgressStyle::with_template("scan {msg:>16} [{bar:30}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("#-"));
        ScanProgress { bar }
    }

    fn update(&self, stage: Stage, height: u32, target: u32) {
        self.bar.set_message(stage.as_str().replace('_', " "));
        self.bar.set_length(u64::from(target));
        self.bar.set_position(u64::from(height));
    }
}

impl Drop for ScanProgress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_is_an_address_of_the_network_or_a_script_in_hex() {
        let regtest = Network::REGTEST;
        let script = parse_watch("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", &regtest).expect("an address");
        assert_eq!(script.to_hex_string(), "0014751e76e8199196d454941c45d1b3a323f1433bd6");
        assert_eq!(parse_watch("0014751e76e8199196d454941c45d1b3a323f1433bd6", &regtest), Ok(script));
        assert!(parse_watch("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", &regtest).is_err(), "a mainnet address");
        assert!(parse_watch("zz", &regtest).is_err());
    }

    #[test]
    fn the_summary_forgets_what_a_reorg_took_away() {
        let (a, b) = (OutPoint { vout: 0, ..OutPoint::null() }, OutPoint { vout: 1, ..OutPoint::null() });
        let mut t = Tally::default();
        t.received(a, 10, 5);
        t.received(b, 20, 50);
        t.spent(a, 60);
        assert_eq!(t.summary(), (2, 1, 20));
        t.reorg(40);
        assert_eq!(t.summary(), (1, 0, 10), "b's block is gone, a's spend too");
    }

    #[test]
    fn the_progress_bar_follows_the_stages() {
        let p = ScanProgress::new(false);
        p.update(Stage::FilterHeaders, 2_000, 4_000);
        assert_eq!((p.bar.position(), p.bar.length()), (2_000, Some(4_000)));
        assert_eq!(p.bar.message(), "filter headers");
    }
}
