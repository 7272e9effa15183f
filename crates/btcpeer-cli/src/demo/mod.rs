//! `btcpeer demo` (R-C1), also what a bare `btcpeer` runs: a small Bitcoin network inside this
//! process, on 127.0.0.1 only, with a live view of every peer.
//!
//! A *node* listens on `127.0.0.1:0`. Its inbound peers serve a synthetic regtest chain of 2,500
//! blocks (headers in batches of 2,000, blocks by `getdata`), push a few made-up addresses (IPv4,
//! IPv6, Tor v3) to every peer after the handshake, and relay: an announcement one peer makes is
//! announced to the node's other peers through their trickle (a 250 ms mean here, so the demo is
//! quick); the peer it came from already knows it, so it is not echoed back (known-inventory
//! suppression). Then `--peers N` outbound peers (default 4) dial the node. With `--transport auto`
//! (the default) half of them speak BIP324 v2 and half v1, and the node accepts both; `v1` or `v2`
//! makes them all speak that one (and the node require it). The node also pings each of its peers
//! at once and then every second. Each outbound peer, all at the same time, with a quarter-second
//! pause between steps (and pings) so that the live view can be followed:
//!
//! 1. performs the handshake (and checks the transport is the one it asked for);
//! 2. sends 3 pings, one after another, and reports each round trip;
//! 3. once the node has completed a handshake with every peer, announces 3 made-up transactions
//!    (`queue_transaction`), which the node relays to the others;
//! 4. fetches the headers from the genesis block with `getheaders` until an answer holds fewer than
//!    2,000 (2 batches), checking each connects to the one before;
//! 5. asks for one block with `getdata` and checks its hash and merkle root;
//! 6. waits for the node's addresses and for every other peer's announcements, relayed.
//!
//! With `--duration SECS`, the peers then stay connected until SECS after the start, each pinging
//! and announcing a transaction once a second, and the view stays alive (Ctrl-C ends it early).
//! Finally every peer's statistics are printed, the peers disconnect, and a summary follows.
//!
//! # Output
//!
//! On a terminal (stdout), a table of peers (id, direction, transport, protocol version, user agent,
//! last ping round trip, bytes and messages each way, what each is doing) is redrawn in place ten
//! times a second by `indicatif` (no colour), with the latest events under it; when stdout is not a terminal, each event is one
//! plain line, and the table is printed once at the end. Both end with a summary.
//!
//! # Events
//!
//! With `--json`, each line on stdout is one JSON object with an `"event"` key; `peer` is a peer's
//! id in this process (outbound peers and the node's inbound peers are numbered together).
//!
//! | event | keys | when |
//! |---|---|---|
//! | `start` | `listen` (the node's address), `network` (`"regtest"`), `peers`, `transport` (`"v1"`, `"v2"`, `"auto"`), `blocks` (in the chain, genesis included) | first, once |
//! | `handshake` | `peer`, `direction` (`"outbound"`: one of ours, `"inbound"`: the node's side), and the keys of `connect`'s `handshake` event (`transport` `"v1"` or `"v2"`, `version`, `user_agent` …) | a handshake completed (twice per connection: once on each side) |
//! | `pong` | `peer`, `seq`, `rtt_us` | an outbound peer got the pong to its ping |
//! | `announce` | `peer`, `count` | an outbound peer queued that many transaction announcements |
//! | `relay` | `peer` (the node's inbound peer the announcement came from), `count` (items in the `inv`), `relayed` (announcements queued to the node's other peers), `suppressed` (not queued: the peer already knew the item) | the node received an `inv` |
//! | `inv` | `peer`, `count` | an outbound peer received an `inv` (relayed by the node) |
//! | `addr` | `peer`, `count`, `command` (`"addrv2"` or `"addr"`), `networks` (e.g. `["ipv4","ipv6","torv3"]`) | an outbound peer received addresses |
//! | `headers` | `peer`, `count` (headers after genesis), `tip` (hash, display order), `batches`, `elapsed_ms` | an outbound peer has every header |
//! | `block` | `peer`, `hash`, `height`, `txs`, `size` (bytes), `merkle_root_ok` | an outbound peer received and checked its block |
//! | `stats` | `peer` and the statistics snapshot (keys as in `connect`'s `stats`) | at the end, for every peer, before disconnecting |
//! | `summary` | `peers`, `handshakes_v1`, `handshakes_v2` (outbound handshakes by transport), `announced`, `inv_relayed` (announcements outbound peers received through the node), `inv_suppressed`, `pings` (pongs), `min_rtt_us`, `max_rtt_us`, `addrs` (addresses received), `headers` (received, all peers), `blocks` (received and checked), `elapsed_ms`, `ok`, `failure` (text, or null) | last |
//!
//! # Exit codes
//!
//! 0 every step of every peer succeeded; 1 a step failed (or Ctrl-C before the steps were done),
//! with one line on stderr saying which; 2 usage error; 3 a step timed out (see `--timeout`).

mod client;
mod event;
mod node;
mod script;
mod view;

use client::*;
use event::*;
use node::*;
use script::*;
use view::*;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use btcpeer::bitcoin::block::Header;
use btcpeer::bitcoin::hashes::{Hash, sha256d};
use btcpeer::bitcoin::p2p::address::{AddrV2, AddrV2Message};
use btcpeer::bitcoin::p2p::{Address, ServiceFlags};
use btcpeer::bitcoin::{Block, BlockHash, Transaction, Txid, Wtxid};
use btcpeer::network::Network;
use btcpeer::peer::{
    Direction, DisconnectReason, Handler, NonceRegistry, Peer, PeerConfig, PeerConfigBuilder, RemoteInfo, Transport,
    V2Policy,
};
use btcpeer::testing::{ChainServer, SyntheticChain};
use btcpeer::wire::limits::MAX_HEADERS;
use btcpeer::wire::types::{GetBlocksMessage, GetHeadersMessage};
use btcpeer::wire::{Inventory, Message};
use bytes::Bytes;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::common::{interrupted, nonce};
use crate::events::{Handshake, Stats, json_line, micros, millis, print_line};
use crate::fields::addrv2_network;
use crate::headers::{HeadersDone, SyncFrom};
use crate::report::{Failure, TransportArg, exit_code, parse_positive_secs, parse_secs, secs};
use crate::{EXIT_FAILURE, EXIT_OK, EXIT_TIMEOUT};

/// Blocks in the demo chain, genesis included: two `headers` batches (2,000 and 499).
pub(super) const CHAIN_LEN: usize = 2_500;
/// Pings each outbound peer sends.
pub(super) const PINGS: u32 = 3;
/// Transactions each outbound peer announces.
pub(super) const TXS: u64 = 3;
/// The mean trickle interval, both directions (Core's are 5 s and 2 s).
pub(super) const TRICKLE: Duration = Duration::from_millis(250);
/// How often the node's peers ping on their own (so the node's rows show a round trip too).
pub(super) const NODE_PING_INTERVAL: Duration = Duration::from_secs(1);
/// A pause between an outbound peer's steps (and pings), so that the live view can be followed.
pub(super) const PACE: Duration = Duration::from_millis(250);
/// How often the live view is redrawn.
pub(super) const REFRESH: Duration = Duration::from_millis(100);
/// Events kept under the live table.
pub(super) const LOG_LINES: usize = 6;
/// How often polled conditions are checked.
pub(super) const POLL: Duration = Duration::from_millis(20);
/// The width of the user-agent column.
pub(super) const UA_WIDTH: usize = 34;

/// The arguments of `btcpeer demo` (and of a bare `btcpeer`).
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Outbound peers to start (1 to 32).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub peers: u32,
    /// Transport: auto (half the peers v2, half v1; the node accepts both), v1 or v2 (every peer, and
    /// the node requires it).
    #[arg(long, value_enum, default_value = "auto", value_name = "v1|v2|auto")]
    pub transport: TransportArg,
    /// One JSON object per line instead of the live view.
    #[arg(long)]
    pub json: bool,
    /// Keep the peers connected (pinging and announcing once a second) and the view alive until SECS
    /// seconds after the start.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<Duration>,
    /// The bound on every wait, in seconds: connecting, a handshake, a pong, a headers answer, the
    /// block, the relayed announcements.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_positive_secs)]
    pub timeout: Duration,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts across the whole demo; serialized as the `summary` event's counts (see `Summary`).
#[derive(Default, Debug, Serialize)]
pub(super) struct Tally {
    /// Outbound handshakes by transport.
    pub(super) handshakes_v1: AtomicU64,
    pub(super) handshakes_v2: AtomicU64,
    pub(super) announced: AtomicU64,
    /// Announcements the node received (from any peer).
    #[serde(skip)]
    pub(super) node_heard: AtomicU64,
    /// Announcements the node did not queue: the peer already knew the item.
    #[serde(rename = "inv_suppressed")]
    pub(super) suppressed: AtomicU64,
    /// Announcements outbound peers received through the node.
    #[serde(rename = "inv_relayed")]
    pub(super) inv_received: AtomicU64,
    /// Pongs.
    pub(super) pings: AtomicU64,
    /// Zero (null in JSON) while there is no round trip.
    #[serde(serialize_with = "none_if_zero")]
    pub(super) min_rtt_us: AtomicU64,
    #[serde(serialize_with = "none_if_zero")]
    pub(super) max_rtt_us: AtomicU64,
    pub(super) addrs: AtomicU64,
    pub(super) headers: AtomicU64,
    pub(super) blocks: AtomicU64,
}

/// A counter whose zero means "none yet", as a number or null.
fn none_if_zero<S: serde::Serializer>(counter: &AtomicU64, s: S) -> Result<S::Ok, S::Error> {
    match Tally::get(counter) {
        0 => s.serialize_none(),
        n => s.serialize_some(&n),
    }
}

impl Tally {
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(super) fn rtt(&self, rtt: Duration) {
        let us = micros(rtt);
        self.pings.fetch_add(1, Ordering::Relaxed);
        // Zero means "none yet".
        self.max_rtt_us.fetch_max(us.max(1), Ordering::Relaxed);
        let _ = self.min_rtt_us.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
            if m == 0 || us < m { Some(us.max(1)) } else { None }
        });
    }
}

/// What an outbound peer is doing, and what it has received, for the view and the waits.
#[derive(Default)]
pub(super) struct Progress {
    pub(super) step: Mutex<String>,
    pub(super) inv_items: AtomicU64,
    pub(super) addr_entries: AtomicU64,
}

impl Progress {
    pub(super) fn set(&self, step: impl Into<String>) {
        *lock(&self.step) = step.into();
    }
}

/// What the node served to one of its inbound peers.
#[derive(Default, Clone, Copy)]
pub(super) struct Served {
    pub(super) headers: u64,
    pub(super) blocks: u64,
    pub(super) relayed: u64,
}

/// A row of the view.
#[derive(Clone)]
pub(super) enum Role {
    /// One of our outbound peers.
    Client(Arc<Progress>),
    /// One of the node's inbound peers.
    Node,
}

/// What every part of the demo shares: the event channel, the peers, the counts.
pub(super) struct DemoShared {
    pub(super) events: mpsc::UnboundedSender<DemoEvent>,
    pub(super) rows: Mutex<Vec<(Peer, Role)>>,
    pub(super) served: Mutex<HashMap<u64, Served>>,
    pub(super) tally: Arc<Tally>,
    /// The node's peers that completed the handshake.
    pub(super) node_handshakes: AtomicUsize,
}

impl DemoShared {
    pub(super) fn emit(&self, event: DemoEvent) {
        // The receiver lives until the end; a send after that has nobody to tell.
        let _ = self.events.send(event);
    }

    pub(super) fn serve(&self, peer: &Peer, f: impl FnOnce(&mut Served)) {
        f(lock(&self.served).entry(peer.id()).or_default());
    }
}

/// Runs `btcpeer demo`; returns the exit code.
pub fn run(args: DemoArgs) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("btcpeer demo: cannot start the async runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    runtime.block_on(demo(args))
}

/// The configuration both sides start from.
pub(super) fn base_config(comment: Option<&str>, limit: Duration, nonces: NonceRegistry) -> PeerConfigBuilder {
    let mut b = PeerConfig::builder(Network::REGTEST)
        .user_agent("demo", env!("CARGO_PKG_VERSION"))
        .trickle_interval(TRICKLE, TRICKLE)
        .handshake_timeout(limit)
        .nonce_registry(nonces);
    if let Some(c) = comment {
        b = b.user_agent_comment(c);
    }
    b
}

pub(super) async fn demo(args: DemoArgs) -> u8 {
    let started = Instant::now();
    let mode = if args.json {
        Mode::Json
    } else if std::io::stdout().is_terminal() {
        Mode::Live
    } else {
        Mode::Plain
    };
    let n = usize::try_from(args.peers).unwrap_or(1).max(1);
    let limit = args.timeout;

    let (listener, node_addr) = match crate::report::bind("demo", "127.0.0.1:0").await {
        Ok(bound) => bound,
        Err(code) => return code,
    };
    let chain = Arc::new(SyntheticChain::new(btcpeer::bitcoin::Network::Regtest, CHAIN_LEN));

    // The node and the outbound peers are distinct nodes: each has its own self-connection nonces.
    let node_policy = args.transport.policy();
    let node_config = match base_config(Some("node"), limit, NonceRegistry::new())
        .services(ServiceFlags::NETWORK | ServiceFlags::WITNESS)
        .ping_interval(NODE_PING_INTERVAL)
        .v2(node_policy)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("btcpeer demo: {e}");
            return EXIT_FAILURE;
        }
    };

    let (events, mut rx) = mpsc::unbounded_channel();
    let shared = Arc::new(DemoShared {
        events,
        rows: Mutex::new(Vec::new()),
        served: Mutex::new(HashMap::new()),
        tally: Arc::default(),
        node_handshakes: AtomicUsize::new(0),
    });
    let node: Arc<dyn Handler> = Arc::new(Node {
        server: ChainServer::new(chain.clone()),
        shared: shared.clone(),
        peers: Mutex::new(Vec::new()),
        addrs: made_up_addresses(),
    });

    let transports: Vec<Transport> = (0..n).map(|i| transport_of(args.transport, i)).collect();
    let v2s = transports.iter().filter(|t| **t == Transport::V2).count();
    let v1s = n.saturating_sub(v2s);
    shared.emit(DemoEvent::Start {
        listen: node_addr.to_string(),
        network: "regtest",
        peers: n,
        transport: args.transport.as_str(),
        blocks: chain.len(),
    });

    // The node: accept, serve, relay.
    let accept_shared = shared.clone();
    let accepting = tokio::spawn(async move {
        loop {
            let Ok((stream, from)) = listener.accept().await else {
                tokio::time::sleep(POLL).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr();
            let peer = Peer::inbound(node_config.clone(), from, node.clone());
            lock(&accept_shared.rows).push((peer.clone(), Role::Node));
            let _ = match local {
                Ok(local) => peer.associate_with_local(stream, local).map_err(|e| e.to_string()),
                Err(_) => peer.associate(stream).map_err(|e| e.to_string()),
            };
        }
    });

    let (stop_tx, stop) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        shared: shared.clone(),
        node: node_addr,
        limit,
        peers: n,
        config: base_config(None, limit, NonceRegistry::new()),
        linger_until: args.duration.map(|d| started.checked_add(d).unwrap_or(started)),
        stop,
        finished: AtomicUsize::new(0),
        salt: nonce(),
    });
    let mut scripts = JoinSet::new();
    for (i, t) in transports.iter().enumerate() {
        scripts.spawn(client(ctx.clone(), i, *t));
    }

    let title = format!(
        "regtest node on {node_addr} · {n} outbound peers ({v1s} v1, {v2s} v2) · {} blocks",
        group(chain.len() as u64)
    );
    let mut view = View::new(mode, shared.clone(), title, started);
    let mut failure: Option<Failure> = None;
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ctrl_c = pin!(interrupted());
    let mut stopping = false;
    while !scripts.is_empty() {
        tokio::select! {
            Some(event) = rx.recv() => view.event(&event),
            _ = tick.tick() => view.redraw(),
            Some(done) = scripts.join_next() => {
                let result = done.unwrap_or_else(|e| Err((EXIT_FAILURE, format!("a peer's task failed: {e}"))));
                if let Err(f) = result {
                    if failure.is_none() {
                        failure = Some(f);
                    }
                    // The others would only wait for it: stop them.
                    scripts.abort_all();
                }
            }
            () = &mut ctrl_c, if !stopping => {
                stopping = true;
                if ctx.finished.load(Ordering::Relaxed) >= n {
                    // Every step is done; only the lingering ends early.
                    let _ = stop_tx.send(true);
                } else {
                    failure = Some((EXIT_FAILURE, "interrupted before every step was done".to_string()));
                    scripts.abort_all();
                }
            }
        }
    }
    while let Ok(event) = rx.try_recv() {
        view.event(&event);
    }

    // The statistics, while everyone is still connected; then goodbye.
    let peers: Vec<Peer> = lock(&shared.rows).iter().map(|(p, _)| p.clone()).collect();
    if mode == Mode::Json {
        for p in &peers {
            view.event(&DemoEvent::Stats(Box::new(Stats::from(&p.stats()))));
        }
    }
    view.finish();
    for p in peers.iter().filter(|p| p.direction() == Direction::Outbound) {
        p.disconnect();
    }
    let _ = tokio::time::timeout(limit, async {
        for p in &peers {
            let _ = p.wait_for_disconnect().await;
        }
    })
    .await;
    for p in &peers {
        p.disconnect();
    }
    accepting.abort();

    let message = failure.as_ref().map(|(_, m)| m.as_str());
    let summary = Summary::new(&shared, n, started.elapsed(), message);
    match mode {
        Mode::Json => view.print(&json_line(&DemoEvent::Summary(summary))),
        Mode::Plain | Mode::Live => view.print(&summary.to_string()),
    }
    match failure {
        None => EXIT_OK,
        Some((code, message)) => {
            eprintln!("btcpeer demo: {message}");
            code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_units_read_well() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(2_499), "2,499");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(4_403), "4.3 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(rtt_text(None), "-");
        assert_eq!(rtt_text(Some(98)), "98 µs");
        assert_eq!(rtt_text(Some(1_240)), "1.24 ms");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }

    #[test]
    fn auto_splits_the_peers_between_the_transports() {
        let t: Vec<Transport> = (0..4).map(|i| transport_of(TransportArg::Auto, i)).collect();
        assert_eq!(t, [Transport::V2, Transport::V1, Transport::V2, Transport::V1]);
        assert_eq!(transport_of(TransportArg::Auto, 0), Transport::V2);
        assert!((0..3).all(|i| transport_of(TransportArg::V1, i) == Transport::V1));
        assert!((0..3).all(|i| transport_of(TransportArg::V2, i) == Transport::V2));
    }

    #[test]
    fn made_up_transactions_differ() {
        let a = made_up_tx(1, 0, 0);
        assert_ne!(a, made_up_tx(1, 0, 1));
        assert_ne!(a, made_up_tx(1, 1, 0));
        assert_ne!(a, made_up_tx(2, 0, 0));
        assert_ne!(a.0.to_byte_array(), a.1.to_byte_array());
    }
}
