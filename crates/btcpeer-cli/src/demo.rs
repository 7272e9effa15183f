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
//! times a second, with the latest events under it; when stdout is not a terminal, each event is one
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

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
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
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::connect::{check_connects, interrupted, nonce};
use crate::report::{TransportArg, handshake_event, parse_positive_secs, parse_secs, stats_event};
use crate::{EXIT_FAILURE, EXIT_OK, EXIT_TIMEOUT};

/// Blocks in the demo chain, genesis included: two `headers` batches (2,000 and 499).
const CHAIN_LEN: usize = 2_500;
/// Pings each outbound peer sends.
const PINGS: u32 = 3;
/// Transactions each outbound peer announces.
const TXS: u64 = 3;
/// The mean trickle interval, both directions (Core's are 5 s and 2 s).
const TRICKLE: Duration = Duration::from_millis(250);
/// How often the node's peers ping on their own (so the node's rows show a round trip too).
const NODE_PING_INTERVAL: Duration = Duration::from_secs(1);
/// A pause between an outbound peer's steps (and pings), so that the live view can be followed.
const PACE: Duration = Duration::from_millis(250);
/// How often the live view is redrawn.
const REFRESH: Duration = Duration::from_millis(100);
/// Events kept under the live table.
const LOG_LINES: usize = 6;
/// How often polled conditions are checked.
const POLL: Duration = Duration::from_millis(20);
/// The width of the user-agent column.
const UA_WIDTH: usize = 34;

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

/// Why the demo failed: the exit code and the line for stderr.
type Failure = (u8, String);

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn exit_code(reason: &DisconnectReason) -> u8 {
    if reason.is_timeout() { EXIT_TIMEOUT } else { EXIT_FAILURE }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts across the whole demo, for the summary.
#[derive(Default)]
struct Tally {
    handshakes_v1: AtomicU64,
    handshakes_v2: AtomicU64,
    announced: AtomicU64,
    /// Announcements the node received (from any peer).
    node_heard: AtomicU64,
    node_relayed: AtomicU64,
    suppressed: AtomicU64,
    inv_received: AtomicU64,
    pings: AtomicU64,
    min_rtt_us: AtomicU64,
    max_rtt_us: AtomicU64,
    addrs: AtomicU64,
    headers: AtomicU64,
    blocks: AtomicU64,
}

impl Tally {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn rtt(&self, rtt: Duration) {
        let us = micros(rtt);
        self.pings.fetch_add(1, Ordering::Relaxed);
        self.max_rtt_us.fetch_max(us, Ordering::Relaxed);
        // Zero means "none yet".
        let _ = self.min_rtt_us.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
            if m == 0 || us < m { Some(us.max(1)) } else { None }
        });
    }
}

/// What an outbound peer is doing, and what it has received, for the view and the waits.
#[derive(Default)]
struct Progress {
    step: Mutex<String>,
    inv_items: AtomicU64,
    addr_entries: AtomicU64,
}

impl Progress {
    fn set(&self, step: impl Into<String>) {
        *lock(&self.step) = step.into();
    }
}

/// What the node served to one of its inbound peers.
#[derive(Default, Clone, Copy)]
struct Served {
    headers: u64,
    blocks: u64,
    relayed: u64,
}

/// A row of the view.
#[derive(Clone)]
enum Role {
    /// One of our outbound peers.
    Client(Arc<Progress>),
    /// One of the node's inbound peers.
    Node,
}

/// What every part of the demo shares: the event channel, the peers, the counts.
struct Shared {
    events: mpsc::UnboundedSender<Value>,
    rows: Mutex<Vec<(Peer, Role)>>,
    served: Mutex<HashMap<u64, Served>>,
    tally: Tally,
    /// The node's peers that completed the handshake.
    node_handshakes: AtomicUsize,
}

impl Shared {
    fn emit(&self, event: Value) {
        // The receiver lives until the end; a send after that has nobody to tell.
        let _ = self.events.send(event);
    }

    fn serve(&self, peer: &Peer, f: impl FnOnce(&mut Served)) {
        f(lock(&self.served).entry(peer.id()).or_default());
    }
}

/// The handshake event, with the side it was seen from.
fn handshake(peer: &Peer, remote: &RemoteInfo) -> Value {
    let mut event = handshake_event(peer, remote);
    event["direction"] = json!(peer.direction().as_str());
    event
}

/// The node: serves the chain, pushes addresses, relays announcements. One handler for all its
/// inbound peers.
struct Node {
    server: ChainServer,
    shared: Arc<Shared>,
    /// Inbound peers that completed the handshake, in order.
    peers: Mutex<Vec<Peer>>,
    addrs: Vec<AddrV2Message>,
}

impl Node {
    /// Announces `items` from `from` to every peer of the node; the peer it came from, and any that
    /// already has an item, is skipped by the peer's known-inventory check.
    fn relay(&self, from: &Peer, items: &[Inventory]) {
        let peers = lock(&self.peers).clone();
        let (mut relayed, mut suppressed) = (0u64, 0u64);
        for to in &peers {
            let mut queued = 0u64;
            for item in items {
                // A peer never gets a transaction by the kind of id it did not negotiate (a wtxid
                // without wtxidrelay, a txid with it): Core would drop it. Such items, like those
                // the peer already knows, are suppressed; a full node would fetch the transaction
                // and announce it with both ids (`on_tx` below).
                if to.queue_inventory(*item) {
                    queued = queued.saturating_add(1);
                } else {
                    suppressed = suppressed.saturating_add(1);
                }
            }
            relayed = relayed.saturating_add(queued);
            if queued > 0 {
                self.shared.serve(to, |s| s.relayed = s.relayed.saturating_add(queued));
            }
        }
        Tally::add(&self.shared.tally.node_relayed, relayed);
        Tally::add(&self.shared.tally.suppressed, suppressed);
        Tally::add(&self.shared.tally.node_heard, items.len() as u64);
        self.shared.emit(json!({
            "event": "relay",
            "peer": from.id(),
            "count": items.len(),
            "relayed": relayed,
            "suppressed": suppressed,
        }));
    }
}

impl Handler for Node {
    fn start_height(&self) -> i32 {
        self.server.start_height()
    }

    fn on_handshake(&self, peer: &Peer, remote: &RemoteInfo) {
        lock(&self.peers).push(peer.clone());
        self.shared.node_handshakes.fetch_add(1, Ordering::Relaxed);
        self.shared.emit(handshake(peer, remote));
        // A node tells its peers about others; these are made up (documentation ranges).
        let _ = peer.push_addr(&self.addrs);
        // A first ping at once (then one a second), so that the node's side shows a round trip too.
        let _ = peer.queue_message(&Message::Ping(nonce()));
    }

    fn on_disconnect(&self, peer: &Peer, _reason: &DisconnectReason) {
        lock(&self.peers).retain(|p| p.id() != peer.id());
    }

    fn on_getheaders(&self, peer: &Peer, msg: GetHeadersMessage) {
        self.shared.serve(peer, |s| s.headers = s.headers.saturating_add(1));
        self.server.on_getheaders(peer, msg);
    }

    fn on_getblocks(&self, peer: &Peer, msg: GetBlocksMessage) {
        self.server.on_getblocks(peer, msg);
    }

    fn on_getdata(&self, peer: &Peer, items: Vec<Inventory>) {
        let blocks = items.iter().filter(|i| matches!(i, Inventory::Block(_) | Inventory::WitnessBlock(_))).count();
        self.shared.serve(peer, |s| s.blocks = s.blocks.saturating_add(blocks as u64));
        self.server.on_getdata(peer, items);
    }

    fn on_inv(&self, peer: &Peer, inv: Vec<Inventory>) {
        self.relay(peer, &inv);
    }

    fn on_tx(&self, peer: &Peer, tx: Transaction) {
        let peers = lock(&self.peers).clone();
        for to in peers.iter().filter(|p| p.id() != peer.id()) {
            to.queue_transaction(tx.compute_txid(), tx.compute_wtxid());
        }
    }
}

/// What an outbound peer's handler passes on to its script.
enum Heard {
    Pong { nonce: u64, rtt: Option<Duration>, at: Instant },
    Headers(Vec<Header>),
    Block(Block, usize),
}

/// The handler of an outbound peer: reports, counts, and passes answers on to its script.
struct Client {
    shared: Arc<Shared>,
    progress: Arc<Progress>,
    heard: mpsc::UnboundedSender<Heard>,
}

impl Client {
    fn addresses(&self, peer: &Peer, command: &str, networks: Vec<&'static str>) {
        let count = networks.len() as u64;
        self.progress.addr_entries.fetch_add(count, Ordering::Relaxed);
        Tally::add(&self.shared.tally.addrs, count);
        let mut unique = networks;
        unique.sort_unstable();
        unique.dedup();
        self.shared.emit(json!({
            "event": "addr", "peer": peer.id(), "count": count, "command": command, "networks": unique,
        }));
    }
}

fn network_name(a: &AddrV2) -> &'static str {
    match a {
        AddrV2::Ipv4(_) => "ipv4",
        AddrV2::Ipv6(_) => "ipv6",
        AddrV2::TorV2(_) => "torv2",
        AddrV2::TorV3(_) => "torv3",
        AddrV2::I2p(_) => "i2p",
        AddrV2::Cjdns(_) => "cjdns",
        AddrV2::Unknown(..) => "unknown",
    }
}

impl Handler for Client {
    fn on_handshake(&self, peer: &Peer, remote: &RemoteInfo) {
        match remote.transport {
            Transport::V1 => Tally::add(&self.shared.tally.handshakes_v1, 1),
            Transport::V2 => Tally::add(&self.shared.tally.handshakes_v2, 1),
        }
        self.shared.emit(handshake(peer, remote));
    }

    fn on_pong(&self, peer: &Peer, nonce: u64) {
        let at = Instant::now();
        // The peer clears its outstanding ping only when this pong answered it.
        let stats = peer.stats();
        let rtt = if stats.outstanding_ping.is_none() { stats.last_ping_rtt } else { None };
        let _ = self.heard.send(Heard::Pong { nonce, rtt, at });
    }

    fn on_headers(&self, _peer: &Peer, headers: Vec<Header>) {
        let _ = self.heard.send(Heard::Headers(headers));
    }

    fn on_block(&self, _peer: &Peer, block: Block, raw: Bytes) {
        let _ = self.heard.send(Heard::Block(block, raw.len()));
    }

    fn on_inv(&self, peer: &Peer, inv: Vec<Inventory>) {
        let count = inv.len() as u64;
        self.progress.inv_items.fetch_add(count, Ordering::Relaxed);
        Tally::add(&self.shared.tally.inv_received, count);
        self.shared.emit(json!({"event": "inv", "peer": peer.id(), "count": count}));
    }

    fn on_addrv2(&self, peer: &Peer, addrs: Vec<AddrV2Message>) {
        let networks = addrs.iter().map(|a| network_name(&a.addr)).collect();
        self.addresses(peer, "addrv2", networks);
    }

    fn on_addr(&self, peer: &Peer, addrs: Vec<(u32, Address)>) {
        let networks = addrs
            .iter()
            .map(|(_, a)| if std::net::Ipv6Addr::from(a.address).to_ipv4_mapped().is_some() { "ipv4" } else { "ipv6" })
            .collect();
        self.addresses(peer, "addr", networks);
    }
}

/// The made-up addresses the node pushes: documentation ranges and a made-up Tor v3 key.
fn made_up_addresses() -> Vec<AddrV2Message> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let time = u32::try_from(now).unwrap_or(u32::MAX);
    let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    let onion = sha256d::Hash::hash(b"btcpeer demo onion").to_byte_array();
    vec![
        AddrV2Message { time, services, addr: AddrV2::Ipv4(std::net::Ipv4Addr::new(203, 0, 113, 7)), port: 18444 },
        AddrV2Message {
            time,
            services,
            addr: AddrV2::Ipv6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
            port: 18444,
        },
        AddrV2Message { time, services, addr: AddrV2::TorV3(onion), port: 18444 },
    ]
}

/// A made-up transaction's txid and wtxid, unique per peer, number and run.
fn made_up_tx(salt: u64, index: usize, k: u64) -> (Txid, Wtxid) {
    let seed = format!("btcpeer demo {salt} {index} {k}");
    let txid = Txid::from_raw_hash(sha256d::Hash::hash(seed.as_bytes()));
    let wtxid = Wtxid::from_raw_hash(sha256d::Hash::hash(format!("{seed} w").as_bytes()));
    (txid, wtxid)
}

/// What every outbound peer's script needs.
struct Ctx {
    shared: Arc<Shared>,
    node: SocketAddr,
    limit: Duration,
    peers: usize,
    config: PeerConfigBuilder,
    /// Stay connected until then, pinging and announcing (`--duration`).
    linger_until: Option<Instant>,
    /// Set on Ctrl-C: the lingering ends.
    stop: watch::Receiver<bool>,
    /// Scripts that finished every step.
    finished: AtomicUsize,
    salt: u64,
}

/// Which transport outbound peer `index` speaks.
fn transport_of(choice: TransportArg, index: usize) -> Transport {
    match choice {
        TransportArg::V1 => Transport::V1,
        TransportArg::V2 => Transport::V2,
        // Half and half, starting with v2 (a single peer prefers v2, as auto does).
        TransportArg::Auto if index % 2 == 0 => Transport::V2,
        TransportArg::Auto => Transport::V1,
    }
}

/// Waits for what `pick` accepts among what the handler heard, at most `limit`, while the peer lives.
async fn next_heard<T>(
    peer: &Peer,
    heard: &mut mpsc::UnboundedReceiver<Heard>,
    limit: Duration,
    what: &str,
    mut pick: impl FnMut(Heard) -> Option<T>,
) -> Result<T, Failure> {
    let mut closed = pin!(peer.closed());
    let mut deadline = pin!(tokio::time::sleep(limit));
    loop {
        tokio::select! {
            got = heard.recv() => match got {
                Some(h) => if let Some(t) = pick(h) { return Ok(t) },
                None => return Err((EXIT_FAILURE, format!("peer {}: ended while waiting for {what}", peer.id()))),
            },
            reason = &mut closed => {
                return Err((exit_code(&reason), format!("peer {}: disconnected waiting for {what}: {reason}", peer.id())));
            }
            () = &mut deadline => {
                return Err((EXIT_TIMEOUT, format!("peer {}: no {what} within {}", peer.id(), secs(limit))));
            }
        }
    }
}

/// Waits until `done` holds, at most `limit`, while the peer lives.
async fn until(peer: &Peer, limit: Duration, what: &str, done: impl Fn() -> bool) -> Result<(), Failure> {
    let started = Instant::now();
    loop {
        if done() {
            return Ok(());
        }
        if let Some(reason) = peer.disconnect_reason() {
            return Err((exit_code(&reason), format!("peer {}: disconnected waiting for {what}: {reason}", peer.id())));
        }
        if started.elapsed() >= limit {
            return Err((EXIT_TIMEOUT, format!("peer {}: no {what} within {}", peer.id(), secs(limit))));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Sends a ping and waits for its pong; reports it as ping `seq`.
async fn ping(ctx: &Ctx, peer: &Peer, heard: &mut mpsc::UnboundedReceiver<Heard>, seq: u64) -> Result<(), Failure> {
    let nonce = nonce();
    let sent_at = Instant::now();
    drop(
        peer.queue_message(&Message::Ping(nonce))
            .map_err(|e| (EXIT_FAILURE, format!("peer {}: cannot send ping {seq}: {e}", peer.id())))?,
    );
    let rtt = next_heard(peer, heard, ctx.limit, &format!("pong to ping {seq}"), |h| match h {
        Heard::Pong { nonce: n, rtt, at } if n == nonce => Some(rtt.unwrap_or_else(|| at.duration_since(sent_at))),
        _ => None,
    })
    .await?;
    ctx.shared.tally.rtt(rtt);
    ctx.shared.emit(json!({"event": "pong", "peer": peer.id(), "seq": seq, "rtt_us": micros(rtt)}));
    Ok(())
}

/// Announces made-up transactions number `from` … `to - 1`.
fn announce(ctx: &Ctx, peer: &Peer, index: usize, from: u64, to: u64) {
    let mut count = 0u64;
    for k in from..to {
        let (txid, wtxid) = made_up_tx(ctx.salt, index, k);
        if peer.queue_transaction(txid, wtxid) {
            count = count.saturating_add(1);
        }
    }
    Tally::add(&ctx.shared.tally.announced, count);
    ctx.shared.emit(json!({"event": "announce", "peer": peer.id(), "count": count}));
}

/// Fetches every header from genesis; returns them.
async fn sync_headers(
    ctx: &Ctx,
    peer: &Peer,
    heard: &mut mpsc::UnboundedReceiver<Heard>,
    progress: &Progress,
    genesis: BlockHash,
    target: u64,
) -> Result<Vec<Header>, Failure> {
    let started = Instant::now();
    let mut all: Vec<Header> = Vec::new();
    let mut tip = genesis;
    let mut batches = 0u64;
    loop {
        let n = batches.saturating_add(1);
        match peer.push_getheaders(vec![tip], BlockHash::all_zeros()) {
            Ok(Some(completion)) => drop(completion),
            Ok(None) => {
                return Err((EXIT_FAILURE, format!("peer {}: getheaders {n} not sent: same as the last", peer.id())));
            }
            Err(e) => return Err((EXIT_FAILURE, format!("peer {}: cannot send getheaders {n}: {e}", peer.id()))),
        }
        let batch = next_heard(peer, heard, ctx.limit, &format!("headers batch {n}"), |h| match h {
            Heard::Headers(headers) => Some(headers),
            _ => None,
        })
        .await?;
        if let Err((i, parent, expected)) = check_connects(tip, &batch) {
            return Err((
                EXIT_FAILURE,
                format!(
                    "peer {}: headers batch {n} does not connect: header {} follows {parent}, expected {expected}",
                    peer.id(),
                    i.saturating_add(1)
                ),
            ));
        }
        batches = n;
        let done = (batch.len() as u64) < MAX_HEADERS;
        if let Some(last) = batch.last() {
            tip = last.block_hash();
        }
        all.extend(batch);
        progress.set(format!("headers {}/{}", group(all.len() as u64), group(target)));
        if done {
            break;
        }
    }
    Tally::add(&ctx.shared.tally.headers, all.len() as u64);
    ctx.shared.emit(json!({
        "event": "headers",
        "peer": peer.id(),
        "count": all.len(),
        "tip": tip.to_string(),
        "batches": batches,
        "elapsed_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }));
    Ok(all)
}

/// Asks for the block at `height` of `headers` and checks it.
async fn fetch_block(
    ctx: &Ctx,
    peer: &Peer,
    heard: &mut mpsc::UnboundedReceiver<Heard>,
    headers: &[Header],
    height: usize,
) -> Result<(), Failure> {
    let Some(header) = height.checked_sub(1).and_then(|i| headers.get(i)) else {
        return Err((EXIT_FAILURE, format!("peer {}: no header at height {height} to ask a block for", peer.id())));
    };
    let hash = header.block_hash();
    drop(
        peer.queue_message(&Message::GetData(vec![Inventory::Block(hash)]))
            .map_err(|e| (EXIT_FAILURE, format!("peer {}: cannot send getdata: {e}", peer.id())))?,
    );
    let (block, size) = next_heard(peer, heard, ctx.limit, &format!("block {height}"), |h| match h {
        Heard::Block(block, size) => Some((block, size)),
        _ => None,
    })
    .await?;
    if block.block_hash() != hash {
        return Err((EXIT_FAILURE, format!("peer {}: asked for block {hash}, got {}", peer.id(), block.block_hash())));
    }
    if !block.check_merkle_root() {
        return Err((EXIT_FAILURE, format!("peer {}: block {hash} has a wrong merkle root", peer.id())));
    }
    Tally::add(&ctx.shared.tally.blocks, 1);
    ctx.shared.emit(json!({
        "event": "block",
        "peer": peer.id(),
        "hash": hash.to_string(),
        "height": height,
        "txs": block.txdata.len(),
        "size": size,
        "merkle_root_ok": true,
    }));
    Ok(())
}

/// One outbound peer: dial the node and go through every step (see the module docs).
async fn client(ctx: Arc<Ctx>, index: usize, transport: Transport) -> Result<(), Failure> {
    let who = format!("outbound peer #{}", index.saturating_add(1));
    let policy = match transport {
        Transport::V1 => V2Policy::Never,
        Transport::V2 => V2Policy::Require,
    };
    let config = ctx
        .config
        .clone()
        .user_agent_comment(format!("peer-{}", index.saturating_add(1)))
        .v2(policy)
        .build()
        .map_err(|e| (EXIT_FAILURE, format!("{who}: {e}")))?;
    // Created before dialing, so that our peers are numbered first, in order.
    let progress = Arc::new(Progress::default());
    progress.set("connecting");
    let (tx, mut heard) = mpsc::unbounded_channel();
    let handler = Client { shared: ctx.shared.clone(), progress: progress.clone(), heard: tx };
    let peer = Peer::outbound(config, ctx.node, handler);
    lock(&ctx.shared.rows).push((peer.clone(), Role::Client(progress.clone())));
    let stream = match tokio::time::timeout(ctx.limit, TcpStream::connect(ctx.node)).await {
        Err(_) => return Err((EXIT_TIMEOUT, format!("{who}: no connection to the node within {}", secs(ctx.limit)))),
        Ok(Err(e)) => return Err((EXIT_FAILURE, format!("{who}: cannot connect to the node: {e}"))),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr();
    progress.set("handshake");
    let associated = match local {
        Ok(local) => peer.associate_with_local(stream, local).map_err(|e| e.to_string()),
        Err(_) => peer.associate(stream).map_err(|e| e.to_string()),
    };
    associated.map_err(|e| (EXIT_FAILURE, format!("peer {}: {e}", peer.id())))?;

    let result = steps(&ctx, &peer, &mut heard, &progress, index, transport).await;
    match &result {
        Ok(()) => progress.set("done ✓"),
        Err(_) => progress.set("failed ✗"),
    }
    result
}

/// The steps of one outbound peer, after it is connected.
async fn steps(
    ctx: &Ctx,
    peer: &Peer,
    heard: &mut mpsc::UnboundedReceiver<Heard>,
    progress: &Progress,
    index: usize,
    transport: Transport,
) -> Result<(), Failure> {
    let id = peer.id();
    let remote = match tokio::time::timeout(ctx.limit.saturating_add(Duration::from_secs(1)), peer.handshake()).await {
        Ok(Ok(remote)) => remote,
        Ok(Err(reason)) => return Err((exit_code(&reason), format!("peer {id}: handshake failed: {reason}"))),
        Err(_) => return Err((EXIT_TIMEOUT, format!("peer {id}: handshake timed out after {}", secs(ctx.limit)))),
    };
    if remote.transport != transport {
        return Err((
            EXIT_FAILURE,
            format!("peer {id}: handshake in {}, expected {}", remote.transport.as_str(), transport.as_str()),
        ));
    }

    for seq in 1..=PINGS {
        tokio::time::sleep(PACE).await;
        progress.set(format!("ping {seq}/{PINGS}"));
        ping(ctx, peer, heard, u64::from(seq)).await?;
    }

    // Announce once the node knows every peer, so that each announcement reaches all the others.
    progress.set("waiting");
    until(peer, ctx.limit, "handshakes of every peer with the node", || {
        ctx.shared.node_handshakes.load(Ordering::Relaxed) >= ctx.peers
    })
    .await?;
    tokio::time::sleep(PACE).await;
    progress.set("announce");
    announce(ctx, peer, index, 0, TXS);
    tokio::time::sleep(PACE).await;

    let genesis = btcpeer::bitcoin::blockdata::constants::genesis_block(btcpeer::bitcoin::Network::Regtest);
    let target = u64::try_from(remote.version.start_height).unwrap_or(0);
    progress.set("headers");
    let headers = sync_headers(ctx, peer, heard, progress, genesis.block_hash(), target).await?;
    if headers.len() < MAX_HEADERS as usize {
        return Err((EXIT_FAILURE, format!("peer {id}: only {} headers; the demo chain has more", headers.len())));
    }

    // Each peer asks for a different block near the tip.
    let height = headers.len().saturating_sub(index % headers.len());
    tokio::time::sleep(PACE).await;
    progress.set(format!("block {}", group(height as u64)));
    fetch_block(ctx, peer, heard, &headers, height).await?;

    progress.set("addresses");
    let want_addrs = made_up_addresses().len() as u64;
    until(peer, ctx.limit, "addresses from the node", || progress.addr_entries.load(Ordering::Relaxed) >= want_addrs)
        .await?;

    let want_inv = TXS.saturating_mul(ctx.peers.saturating_sub(1) as u64);
    progress.set("relay");
    until(peer, ctx.limit, &format!("{want_inv} relayed announcements"), || {
        let got = progress.inv_items.load(Ordering::Relaxed);
        progress.set(format!("relay {got}/{want_inv}"));
        got >= want_inv
    })
    .await?;
    // Every peer's announcements have reached the node (with one peer nothing is relayed, but its
    // own announcements must still arrive before the counts are final).
    let want_heard = TXS.saturating_mul(ctx.peers as u64);
    until(peer, ctx.limit, &format!("{want_heard} announcements at the node"), || {
        Tally::get(&ctx.shared.tally.node_heard) >= want_heard
    })
    .await?;
    ctx.finished.fetch_add(1, Ordering::Relaxed);

    if let Some(end) = ctx.linger_until {
        linger(ctx, peer, heard, progress, index, end).await?;
    }
    Ok(())
}

/// `--duration`: once a second, a ping and an announcement, until `end` or Ctrl-C.
async fn linger(
    ctx: &Ctx,
    peer: &Peer,
    heard: &mut mpsc::UnboundedReceiver<Heard>,
    progress: &Progress,
    index: usize,
    end: Instant,
) -> Result<(), Failure> {
    let mut stop = ctx.stop.clone();
    let mut seq = u64::from(PINGS);
    let mut k = TXS;
    loop {
        let now = Instant::now();
        if now >= end || *stop.borrow() {
            return Ok(());
        }
        progress.set(format!("live {}s", end.saturating_duration_since(now).as_secs()));
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1).min(end.saturating_duration_since(now))) => {}
            _ = stop.changed() => return Ok(()),
        }
        if Instant::now() >= end {
            return Ok(());
        }
        seq = seq.saturating_add(1);
        ping(ctx, peer, heard, seq).await?;
        announce(ctx, peer, index, k, k.saturating_add(1));
        k = k.saturating_add(1);
    }
}

/// `1234567` → `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len().saturating_add(digits.len() / 3));
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len().saturating_sub(i)) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes with a binary unit: `812 B`, `4.3 KiB`, `1.2 MiB`.
fn bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if n < 1024 {
        format!("{n} B")
    } else if f < KIB * KIB {
        format!("{:.1} KiB", f / KIB)
    } else {
        format!("{:.1} MiB", f / (KIB * KIB))
    }
}

/// A round trip: `98 µs`, `1.24 ms`, `-`.
fn rtt_text(us: Option<u64>) -> String {
    match us {
        None => "-".to_string(),
        Some(us) if us < 1_000 => format!("{us} µs"),
        Some(us) => format!("{:.2} ms", us as f64 / 1_000.0),
    }
}

/// `text` cut to `width` characters, with an ellipsis when cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

fn count(v: &Value) -> String {
    v.as_u64().map_or_else(|| text(v), group)
}

/// `n` and `word`, with an `s` unless `n` is 1: `1 transaction`, `3 transactions`.
fn plural(v: &Value, word: &str) -> String {
    let n = count(v);
    if n == "1" { format!("1 {word}") } else { format!("{n} {word}s") }
}

/// One event as a readable line; `None` for events the table shows better.
fn human(e: &Value) -> Option<String> {
    let peer = text(&e["peer"]);
    let line = match e["event"].as_str().unwrap_or("") {
        "start" => format!(
            "node listening on {} ({}), a chain of {} blocks; {} outbound peers, transport {}",
            text(&e["listen"]),
            text(&e["network"]),
            count(&e["blocks"]),
            text(&e["peers"]),
            text(&e["transport"]),
        ),
        "handshake" if e["direction"] == "inbound" => {
            format!("[node] handshake with peer {peer} in {}: {}", text(&e["transport"]), text(&e["user_agent"]),)
        }
        "handshake" => format!(
            "[peer {peer}] handshake in {}: {} version {}, height {}",
            text(&e["transport"]),
            text(&e["user_agent"]),
            text(&e["version"]),
            count(&e["start_height"]),
        ),
        "pong" => format!("[peer {peer}] pong {}: {}", text(&e["seq"]), rtt_text(e["rtt_us"].as_u64())),
        "announce" => format!("[peer {peer}] announced {}", plural(&e["count"], "transaction")),
        "relay" => format!(
            "[node] relayed {} from peer {peer} ({} not repeated: already known)",
            plural(&e["relayed"], "announcement"),
            text(&e["suppressed"]),
        ),
        "inv" => format!("[peer {peer}] inv: {} relayed by the node", plural(&e["count"], "announcement")),
        "addr" => {
            let networks: Vec<String> =
                e["networks"].as_array().map(|a| a.iter().map(text).collect()).unwrap_or_default();
            let addresses = plural(&e["count"], "address").replace("addresss", "addresses");
            format!("[peer {peer}] {}: {addresses} ({})", text(&e["command"]), networks.join(", "))
        }
        "headers" => format!(
            "[peer {peer}] headers: {} in {}, tip {}",
            count(&e["count"]),
            plural(&e["batches"], "batch").replace("batchs", "batches"),
            fit(&text(&e["tip"]), 20),
        ),
        "block" => format!(
            "[peer {peer}] block {} {}: {} tx, {}, merkle root ok",
            count(&e["height"]),
            fit(&text(&e["hash"]), 20),
            text(&e["txs"]),
            e["size"].as_u64().map_or_else(|| "-".to_string(), bytes),
        ),
        _ => return None,
    };
    Some(line)
}

/// How the demo shows itself.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `--json`: one event per line.
    Json,
    /// Not a terminal: one plain line per event, the table once at the end.
    Plain,
    /// A terminal: the table redrawn in place, the latest events under it.
    Live,
}

/// The view: prints events and draws the table.
struct View {
    mode: Mode,
    shared: Arc<Shared>,
    title: String,
    started: Instant,
    log: VecDeque<String>,
    drawn: usize,
}

impl View {
    fn print(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        // A closed stdout (a reader that went away) is not worth dying for.
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    fn event(&mut self, e: &Value) {
        match self.mode {
            Mode::Json => self.print(&e.to_string()),
            Mode::Plain => {
                if let Some(line) = human(e) {
                    self.print(&line);
                }
            }
            Mode::Live => {
                if let Some(line) = human(e) {
                    if self.log.len() >= LOG_LINES {
                        self.log.pop_front();
                    }
                    self.log.push_back(line);
                }
            }
        }
    }

    /// The table's lines: a title, a header, a row per peer (each outbound peer followed by the
    /// node's side of the same connection), and a line of totals.
    fn table(&self) -> Vec<String> {
        let rows = lock(&self.shared.rows).clone();
        let served = lock(&self.shared.served).clone();
        let stats: Vec<_> = rows.iter().map(|(p, role)| (p.stats(), role.clone(), p.handshake_complete())).collect();
        // Pair each outbound peer with the node's inbound peer whose remote is its local address.
        let mut order: Vec<usize> = Vec::with_capacity(stats.len());
        for (i, (s, role, _)) in stats.iter().enumerate() {
            if !matches!(role, Role::Client(_)) {
                continue;
            }
            order.push(i);
            if let Some(local) = s.local_addr {
                if let Some(mate) = stats
                    .iter()
                    .position(|(t, r, _)| matches!(r, Role::Node) && t.addr == btcpeer::peer::PeerAddr::Socket(local))
                {
                    order.push(mate);
                }
            }
        }
        for i in 0..stats.len() {
            if !order.contains(&i) {
                order.push(i);
            }
        }

        let mut lines = Vec::with_capacity(order.len().saturating_add(4));
        lines.push(format!("btcpeer demo · {} · {:.1} s", self.title, self.started.elapsed().as_secs_f64()));
        lines.push(format!(
            "{:>4}  {:<4} {:<2} {:>7}  {:<UA_WIDTH$} {:>8}  {:>9} {:>5}  {:>9} {:>5}  {}",
            "peer", "dir", "tr", "version", "user agent", "rtt", "sent", "msgs", "received", "msgs", "step"
        ));
        for i in order {
            let Some((s, role, shook)) = stats.get(i) else { continue };
            let (dir, step) = match role {
                Role::Client(progress) => ("out", lock(&progress.step).clone()),
                Role::Node => {
                    let sv = served.get(&s.id).copied().unwrap_or_default();
                    let state = if s.disconnect_reason.is_some() { "closed" } else { "node" };
                    ("in", format!("{state}: {} hdrs, {} blk, {} inv", sv.headers, sv.blocks, sv.relayed))
                }
            };
            let (tr, version, ua) = if *shook {
                (s.transport.as_str(), s.version.to_string(), fit(&s.user_agent, UA_WIDTH))
            } else {
                ("-", "-".to_string(), "-".to_string())
            };
            lines.push(format!(
                "{:>4}  {:<4} {:<2} {:>7}  {:<UA_WIDTH$} {:>8}  {:>9} {:>5}  {:>9} {:>5}  {}",
                s.id,
                dir,
                tr,
                version,
                ua,
                rtt_text(s.last_ping_rtt.map(micros)),
                bytes(s.bytes_sent),
                group(s.messages_sent),
                bytes(s.bytes_received),
                group(s.messages_received),
                step,
            ));
        }
        let t = &self.shared.tally;
        lines.push(format!(
            "relayed {} · pongs {} · addresses {} · headers {} · blocks {}",
            group(Tally::get(&t.inv_received)),
            group(Tally::get(&t.pings)),
            group(Tally::get(&t.addrs)),
            group(Tally::get(&t.headers)),
            group(Tally::get(&t.blocks)),
        ));
        lines
    }

    /// Redraws the live view in place.
    fn redraw(&mut self) {
        if self.mode != Mode::Live {
            return;
        }
        let mut lines = self.table();
        if !self.log.is_empty() {
            lines.push(String::new());
            lines.extend(self.log.iter().cloned());
        }
        let mut frame = String::new();
        if self.drawn > 0 {
            // To the first column of the first line drawn last time.
            let _ = write!(frame, "\x1b[{}F", self.drawn);
        } else {
            // Lines longer than the terminal are cut, not wrapped, so that the redraw stays in place.
            frame.push_str("\x1b[?7l");
        }
        for line in &lines {
            let _ = writeln!(frame, "\x1b[2K{line}");
        }
        // Whatever the last frame had below this one.
        frame.push_str("\x1b[J");
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(frame.as_bytes());
        let _ = out.flush();
        self.drawn = lines.len();
    }

    /// The last drawing: the live view one final time (line wrapping back on), or the table.
    fn finish(&mut self) {
        match self.mode {
            Mode::Json => {}
            Mode::Plain => {
                self.print("");
                for line in self.table() {
                    self.print(&line);
                }
            }
            Mode::Live => {
                self.redraw();
                // Line wrapping back on.
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(b"\x1b[?7h");
                let _ = out.flush();
            }
        }
    }
}

/// The summary's numbers.
fn summary(shared: &Shared, peers: usize, elapsed: Duration, failure: Option<&str>) -> Value {
    let t = &shared.tally;
    let min = Tally::get(&t.min_rtt_us);
    json!({
        "event": "summary",
        "peers": peers,
        "handshakes_v1": Tally::get(&t.handshakes_v1),
        "handshakes_v2": Tally::get(&t.handshakes_v2),
        "announced": Tally::get(&t.announced),
        "inv_relayed": Tally::get(&t.inv_received),
        "inv_suppressed": Tally::get(&t.suppressed),
        "pings": Tally::get(&t.pings),
        "min_rtt_us": if min == 0 { Value::Null } else { json!(min) },
        "max_rtt_us": if Tally::get(&t.pings) == 0 { Value::Null } else { json!(Tally::get(&t.max_rtt_us)) },
        "addrs": Tally::get(&t.addrs),
        "headers": Tally::get(&t.headers),
        "blocks": Tally::get(&t.blocks),
        "elapsed_ms": u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        "ok": failure.is_none(),
        "failure": failure,
    })
}

/// The summary as readable lines.
fn summary_lines(s: &Value) -> Vec<String> {
    let n = |k: &str| count(&s[k]);
    let rtt = |k: &str| rtt_text(s[k].as_u64());
    vec![
        String::new(),
        "summary".to_string(),
        format!("  handshakes   {} (v1 {}, v2 {})", n("peers"), n("handshakes_v1"), n("handshakes_v2")),
        format!(
            "  relay        {} announced, {} relayed through the node, {} not echoed (already known)",
            n("announced"),
            n("inv_relayed"),
            n("inv_suppressed"),
        ),
        format!("  pings        {} pongs, round trip {} … {}", n("pings"), rtt("min_rtt_us"), rtt("max_rtt_us")),
        format!("  addresses    {} received", n("addrs")),
        format!("  headers      {} received", n("headers")),
        format!("  blocks       {} received, merkle roots checked", n("blocks")),
        {
            let elapsed = s["elapsed_ms"].as_u64().unwrap_or(0) as f64 / 1_000.0;
            if s["ok"] == true {
                format!("  result       ok in {elapsed:.1} s")
            } else {
                format!("  result       FAILED after {elapsed:.1} s: {}", text(&s["failure"]))
            }
        },
    ]
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
fn base_config(comment: Option<&str>, limit: Duration, nonces: NonceRegistry) -> PeerConfigBuilder {
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

async fn demo(args: DemoArgs) -> u8 {
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

    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("btcpeer demo: cannot listen on 127.0.0.1: {e}");
            return EXIT_FAILURE;
        }
    };
    let node_addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("btcpeer demo: cannot read the listening address: {e}");
            return EXIT_FAILURE;
        }
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
    let shared = Arc::new(Shared {
        events,
        rows: Mutex::new(Vec::new()),
        served: Mutex::new(HashMap::new()),
        tally: Tally::default(),
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
    shared.emit(json!({
        "event": "start",
        "listen": node_addr.to_string(),
        "network": "regtest",
        "peers": n,
        "transport": args.transport.as_str(),
        "blocks": chain.len(),
    }));

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
            let peer = Peer::inbound_shared(node_config.clone(), from, node.clone());
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

    let mut view = View {
        mode,
        shared: shared.clone(),
        title: format!(
            "regtest node on {node_addr} · {n} outbound peers ({v1s} v1, {v2s} v2) · {} blocks",
            group(chain.len() as u64)
        ),
        started,
        log: VecDeque::new(),
        drawn: 0,
    };
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
            view.event(&stats_event(&p.stats()));
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
    let s = summary(&shared, n, started.elapsed(), message);
    match mode {
        Mode::Json => view.print(&s.to_string()),
        Mode::Plain | Mode::Live => {
            for line in summary_lines(&s) {
                view.print(&line);
            }
        }
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
