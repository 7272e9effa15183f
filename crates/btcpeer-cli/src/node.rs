//! `btcpeer node`: a small relay node on [`btcpeer::node::Node`]: it listens, dials from its
//! address book (or only `--connect` peers), learns and relays addresses as Core does, relays
//! transactions (asks for what an `inv` names, keeps the last 5,000 it received, announces each
//! new one to every other relaying peer and serves `getdata` for them), and shows its peers.
//!
//! On a terminal, stdout is a live table redrawn twice a second: a title (network, listening
//! address, connections by kind against their limits, the book), a row per peer (id, address,
//! kind, transport, relay, ping, bytes sent and received, `tx` and `block` messages received,
//! uptime) and the latest events under it. Otherwise a line per event, and the table at the end.
//!
//! | event | keys | when |
//! |---|---|---|
//! | `listening` | `addr`, `network` | first, with `--listen` |
//! | `accept` | `id`, `addr`, `evicted` (when one was) | an inbound connection admitted |
//! | `refused` | `addr`, `reason` | an inbound connection closed at once |
//! | `connected` | `id`, `addr`, `kind`, `transport`, `user_agent`, `version`, `relay` | a handshake completed |
//! | `dial_failed` | `addr`, `kind`, `error` | an outbound dial failed |
//! | `disconnected` | `id`, `addr`, `kind`, `reason`, `reason_kind`, `by_node` (when the node ended it) | a connection ended |
//! | `table` | `counts`, `book_new`, `book_tried`, `relayed_tx`, `peers` (rows as in the live table) | every 5 s and last |
//!
//! `--book FILE` keeps the address book in FILE, the bans in `FILE.bans` and the block-relay-only
//! anchors in `FILE.anchors`; a corrupt one is kept as `NAME.corrupt`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use btcpeer::bitcoin::p2p::ServiceFlags;
use btcpeer::bitcoin::{Transaction, Txid, Wtxid};
use btcpeer::node::{ConnKind, Node, NodeEvent, NodePeer};
use btcpeer::wire::{Inventory, Message};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::common::{interrupted, refusal_text, report_recovered};
use crate::events::Event;
use crate::report::{Output, PeerArgs, parse_secs, parse_target};
use crate::text::{bytes, fit, rtt_text};
use crate::{EXIT_FAILURE, EXIT_OK};

/// Transactions kept to serve `getdata` (the oldest go first).
const KEPT_TXS: usize = 5_000;
/// Lines of the latest events under the live table.
const LOG_LINES: usize = 6;

/// `btcpeer node` options.
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    #[command(flatten)]
    common: PeerArgs,
    /// Accept inbound peers here (IP:PORT; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Connect to these peers only, and keep them (as Core's -connect: no other outbound).
    #[arg(long, value_name = "ADDR", num_args = 1..)]
    connect: Vec<String>,
    /// Addresses to start the book with (dialed automatically, asked for more).
    #[arg(long, value_name = "ADDR", num_args = 1..)]
    seed: Vec<String>,
    /// The address book (bans in FILE.bans, anchors in FILE.anchors).
    #[arg(long, value_name = "FILE")]
    book: Option<PathBuf>,
    /// Connections in all; inbound gets what outbound and one feeler leave.
    #[arg(long, value_name = "N", default_value_t = 125)]
    max_connections: usize,
    /// Automatic full-relay outbound connections.
    #[arg(long, value_name = "N", default_value_t = 8)]
    outbound: usize,
    /// Automatic block-relay-only outbound connections.
    #[arg(long, value_name = "N", default_value_t = 2)]
    block_relay: usize,
    /// Keep loopback and private addresses on any network (always on regtest, simnet, --magic).
    #[arg(long)]
    allow_local: bool,
    /// Stop after SECS seconds (without it, run until Ctrl-C).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<Duration>,
}

/// One row of the table.
#[derive(Serialize, Debug, Clone)]
struct Row {
    id: u64,
    addr: String,
    kind: &'static str,
    transport: &'static str,
    relay: bool,
    ping_us: Option<u64>,
    bytes_sent: u64,
    bytes_received: u64,
    tx: u64,
    blocks: u64,
    uptime_s: u64,
}

/// The events of `btcpeer node`.
#[derive(Serialize, Debug)]
#[serde(tag = "event", rename_all = "snake_case")]
enum NodeLine {
    Listening {
        addr: String,
        network: String,
    },
    Accept {
        id: u64,
        addr: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        evicted: Option<String>,
    },
    Refused {
        addr: String,
        reason: &'static str,
    },
    Connected {
        id: u64,
        addr: String,
        kind: &'static str,
        transport: &'static str,
        user_agent: String,
        version: u32,
        relay: bool,
    },
    DialFailed {
        addr: String,
        kind: &'static str,
        error: String,
    },
    Disconnected {
        id: u64,
        addr: String,
        kind: &'static str,
        reason: String,
        reason_kind: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        by_node: Option<String>,
    },
    Table {
        counts: Counts,
        book_new: usize,
        book_tried: usize,
        relayed_tx: u64,
        peers: Vec<Row>,
    },
}

#[derive(Serialize, Debug, Clone, Copy, Default)]
struct Counts {
    inbound: usize,
    full_relay: usize,
    block_relay: usize,
    feeler: usize,
    manual: usize,
}

impl Event for NodeLine {}

impl fmt::Display for NodeLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeLine::Listening { addr, network } => write!(f, "listening on {addr} ({network})"),
            NodeLine::Accept { id, addr, evicted: None } => write!(f, "[{id}] accept {addr}"),
            NodeLine::Accept { id, addr, evicted: Some(e) } => write!(f, "[{id}] accept {addr}, evicting {e}"),
            NodeLine::Refused { addr, reason } => write!(f, "refused {addr}: {reason}"),
            NodeLine::Connected { id, addr, kind, transport, user_agent, .. } => {
                write!(f, "[{id}] connected {addr} ({kind}, {transport}) {user_agent}")
            }
            NodeLine::DialFailed { addr, kind, error } => write!(f, "dial {addr} ({kind}) failed: {error}"),
            NodeLine::Disconnected { id, addr, reason, by_node, .. } => match by_node {
                Some(by) => write!(f, "[{id}] {addr} ended by the node ({by}): {reason}"),
                None => write!(f, "[{id}] {addr} left: {reason}"),
            },
            NodeLine::Table { counts, book_new, book_tried, relayed_tx, peers } => {
                write!(
                    f,
                    "{} peers (in {}, full relay {}, block relay {}, manual {}), book {book_new} new / {book_tried} tried, {relayed_tx} tx relayed",
                    peers.len(),
                    counts.inbound,
                    counts.full_relay,
                    counts.block_relay,
                    counts.manual
                )
            }
        }
    }
}

fn kind_name(kind: ConnKind) -> &'static str {
    match kind {
        ConnKind::Inbound => "inbound",
        ConnKind::FullRelay => "full-relay",
        ConnKind::BlockRelay => "block-relay",
        ConnKind::Feeler => "feeler",
        ConnKind::Manual => "manual",
        _ => "other",
    }
}

fn row(p: &NodePeer) -> Row {
    Row {
        id: p.id,
        addr: p.addr.to_string(),
        kind: kind_name(p.kind),
        transport: p.transport.as_str(),
        relay: p.relay,
        ping_us: p.ping.or(p.min_ping).map(|d| d.as_micros() as u64),
        bytes_sent: p.bytes_sent,
        bytes_received: p.bytes_received,
        tx: p.tx_received,
        blocks: p.blocks_received,
        uptime_s: p.uptime.as_secs(),
    }
}

/// The transactions relayed: the last [`KEPT_TXS`] received, by txid and by wtxid.
#[derive(Default)]
struct Relay {
    txs: HashMap<Txid, Transaction>,
    by_wtxid: HashMap<Wtxid, Txid>,
    order: VecDeque<(Txid, Wtxid)>,
    relayed: u64,
}

impl Relay {
    fn knows(&self, inv: &Inventory) -> bool {
        match inv {
            Inventory::Tx(t) | Inventory::WitnessTx(t) => self.txs.contains_key(t),
            Inventory::WTx(w) => self.by_wtxid.contains_key(w),
            _ => true,
        }
    }

    fn get(&self, inv: &Inventory) -> Option<&Transaction> {
        match inv {
            Inventory::Tx(t) | Inventory::WitnessTx(t) => self.txs.get(t),
            Inventory::WTx(w) => self.by_wtxid.get(w).and_then(|t| self.txs.get(t)),
            _ => None,
        }
    }

    /// Keeps `tx` (whose ids the caller computed); false if it was known.
    fn insert(&mut self, txid: Txid, wtxid: Wtxid, tx: Transaction) -> bool {
        if self.txs.contains_key(&txid) {
            return false;
        }
        if self.order.len() >= KEPT_TXS {
            if let Some((old, old_w)) = self.order.pop_front() {
                self.txs.remove(&old);
                self.by_wtxid.remove(&old_w);
            }
        }
        self.by_wtxid.insert(wtxid, txid);
        self.order.push_back((txid, wtxid));
        self.txs.insert(txid, tx);
        true
    }

    /// What a peer's message asks of the relay: getdata for what an `inv` names that we lack,
    /// announcements for a new `tx`, the transactions (or `notfound`) a `getdata` wants.
    fn on_message(&mut self, node: &Node, id: u64, message: &Message) {
        match message {
            Message::Inv(items) => {
                let wanted: Vec<Inventory> =
                    items.iter().filter(|i| i.is_transaction() && !self.knows(i)).copied().collect();
                if let (false, Some(peer)) = (wanted.is_empty(), node.peer(id)) {
                    let _ = peer.queue_message(&Message::GetData(wanted));
                }
            }
            Message::Tx(tx) => {
                let (txid, wtxid) = (tx.compute_txid(), tx.compute_wtxid());
                if !self.txs.contains_key(&txid) && self.insert(txid, wtxid, tx.clone()) {
                    self.relayed = self.relayed.saturating_add(1);
                    node.announce_transaction(txid, wtxid);
                }
            }
            Message::GetData(items) => {
                let Some(peer) = node.peer(id) else { return };
                let mut missing = Vec::new();
                for inv in items {
                    match (self.get(inv), inv) {
                        // MSG_TX asks for the serialization without witnesses (Core's TX_NO_WITNESS).
                        (Some(tx), Inventory::Tx(_)) => {
                            let _ = peer.queue_without_witness(&Message::Tx(tx.clone()));
                        }
                        (Some(tx), _) => {
                            let _ = peer.queue_message(&Message::Tx(tx.clone()));
                        }
                        (None, i) if i.is_transaction() => missing.push(*i),
                        _ => {}
                    }
                }
                if !missing.is_empty() {
                    let _ = peer.queue_message(&Message::NotFound(missing));
                }
            }
            _ => {}
        }
    }
}

/// Parses `ADDR` (HOST:PORT or HOST, the network's port) to a socket address.
fn socket(text: &str, port: u16) -> Result<SocketAddr, String> {
    let target = parse_target(text, port)?;
    target.to_socket_addrs().map_err(|e| format!("{text}: {e}"))?.next().ok_or_else(|| format!("{text}: no address"))
}

/// Runs `btcpeer node`; returns the exit code.
pub fn run(args: NodeArgs) -> u8 {
    let usage = |e: String| crate::report::usage("node", &e);
    let network = match args.common.network_for("node") {
        Ok(n) => n,
        Err(code) => return code,
    };
    let port = network.default_port();
    let parse_all = |list: &[String]| list.iter().map(|a| socket(a, port)).collect::<Result<Vec<_>, _>>();
    let (connect, seeds) = match (parse_all(&args.connect), parse_all(&args.seed)) {
        (Ok(c), Ok(s)) => (c, s),
        (Err(e), _) | (_, Err(e)) => return usage(e),
    };
    let config = match args
        .common
        .builder(network.clone(), None)
        .services(ServiceFlags::NETWORK | ServiceFlags::WITNESS)
        .build()
    {
        Ok(c) => c,
        Err(e) => return usage(e.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("btcpeer node: cannot start the async runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    let local_network = network.bitcoin_network().is_none_or(|n| n == btcpeer::bitcoin::Network::Regtest);
    let mut builder = Node::builder(config)
        .max_connections(args.max_connections)
        .outbound(args.outbound, args.block_relay)
        .allow_local(args.allow_local || local_network)
        .dial_outbound(connect.is_empty());
    if let Some(book) = &args.book {
        let beside = |ext: &str| {
            let mut name = book.as_os_str().to_owned();
            name.push(ext);
            PathBuf::from(name)
        };
        builder = builder.book_file(book).bans_file(beside(".bans")).anchors_file(beside(".anchors"));
    }
    let (node, events) = match builder.build_with_channel(4_096) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("btcpeer node: {e}");
            return EXIT_FAILURE;
        }
    };
    report_recovered("node", &node);
    let json = args.common.json;
    let live = !json && std::io::stdout().is_terminal();
    runtime.block_on(serve(&args, node, events, connect, seeds, network.name().to_string(), json, live))
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    args: &NodeArgs,
    node: Node,
    mut events: tokio::sync::mpsc::Receiver<NodeEvent>,
    connect: Vec<SocketAddr>,
    seeds: Vec<SocketAddr>,
    network: String,
    json: bool,
    live: bool,
) -> u8 {
    let out = Output { json, peer_prefix: false };
    let mut view = View::new(live, out);
    let listener = match &args.listen {
        Some(addr) => match crate::report::bind("node", addr).await {
            Ok((l, bound)) => {
                view.line(&NodeLine::Listening { addr: bound.to_string(), network: network.clone() });
                Some(l)
            }
            Err(code) => return code,
        },
        None => None,
    };
    if !seeds.is_empty() {
        node.add_seeds(&seeds);
    }
    if let Err(e) = node.start(listener) {
        eprintln!("btcpeer node: {e}");
        return EXIT_FAILURE;
    }
    for addr in &connect {
        node.add_peer(*addr, true);
    }
    view.title =
        format!("btcpeer node · {network} · {}", node.local_addr().map_or("not listening".into(), |a| a.to_string()));
    let mut relay = Relay::default();
    let end = async move {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(end);
    let stop = interrupted();
    tokio::pin!(stop);
    let mut redraw = tokio::time::interval(Duration::from_millis(500));
    let mut table_every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = &mut end => break,
            () = &mut stop => break,
            Some(event) = events.recv() => {
                if let Some(line) = line_of(&event) {
                    view.line(&line);
                }
                if let NodeEvent::Message { id, message, .. } = &event {
                    relay.on_message(&node, *id, message);
                }
            }
            _ = redraw.tick(), if live => view.draw(&node, relay.relayed),
            _ = table_every.tick(), if json => view.line(&table(&node, relay.relayed)),
        }
    }
    let last = table(&node, relay.relayed);
    let code = match node.shutdown().await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("btcpeer node: {e}");
            EXIT_FAILURE
        }
    };
    view.finish(&last);
    code
}

/// The line an event prints, if any (messages do not).
fn line_of(event: &NodeEvent) -> Option<NodeLine> {
    Some(match event {
        NodeEvent::Accepted { id, addr, evicted, .. } => {
            NodeLine::Accept { id: *id, addr: addr.to_string(), evicted: evicted.map(|(_, a)| a.to_string()) }
        }
        NodeEvent::Refused { addr, refusal } => {
            NodeLine::Refused { addr: addr.to_string(), reason: refusal_text(*refusal) }
        }
        NodeEvent::Connected { id, addr, kind, remote } => NodeLine::Connected {
            id: *id,
            addr: addr.to_string(),
            kind: kind_name(*kind),
            transport: remote.transport.as_str(),
            user_agent: remote.version.user_agent.clone(),
            version: remote.version.version,
            relay: remote.version.relay,
        },
        NodeEvent::DialFailed { addr, kind, error } => {
            NodeLine::DialFailed { addr: addr.to_string(), kind: kind_name(*kind), error: error.clone() }
        }
        NodeEvent::Disconnected { id, addr, kind, reason, by_node } => NodeLine::Disconnected {
            id: *id,
            addr: addr.to_string(),
            kind: kind_name(*kind),
            reason: reason.to_string(),
            reason_kind: reason.kind(),
            by_node: by_node.map(|b| b.as_str().to_string()),
        },
        _ => return None,
    })
}

fn table(node: &Node, relayed: u64) -> NodeLine {
    let c = node.counts();
    let (book_new, book_tried) = node.with_book(|b| (b.new_len(), b.tried_len())).unwrap_or_default();
    let mut peers: Vec<Row> = node.peers().iter().map(row).collect();
    peers.sort_by_key(|r| r.id);
    NodeLine::Table {
        counts: Counts {
            inbound: c.inbound,
            full_relay: c.full_relay,
            block_relay: c.block_relay,
            feeler: c.feeler,
            manual: c.manual,
        },
        book_new,
        book_tried,
        relayed_tx: relayed,
        peers,
    }
}

/// The live table (a terminal), or plain lines.
struct View {
    out: Output,
    live: Option<ProgressBar>,
    log: VecDeque<String>,
    title: String,
}

impl View {
    fn new(live: bool, out: Output) -> View {
        let live = live.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout_with_hz(4));
            // A fixed, valid template; the default would also show the message.
            bar.set_style(ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
            bar
        });
        View { out, live, log: VecDeque::new(), title: String::new() }
    }

    fn line(&mut self, line: &NodeLine) {
        if self.live.is_some() {
            if self.log.len() >= LOG_LINES {
                self.log.pop_front();
            }
            self.log.push_back(line.to_string());
        } else {
            self.out.emit(line);
        }
    }

    fn draw(&self, node: &Node, relayed: u64) {
        let Some(bar) = &self.live else { return };
        let width = terminal_width();
        let lines = screen(&self.title, &table(node, relayed), &self.log);
        bar.set_message(lines.iter().map(|l| fit(l, width)).collect::<Vec<_>>().join("\n"));
    }

    fn finish(&mut self, last: &NodeLine) {
        match self.live.take() {
            Some(bar) => {
                let lines = screen(&self.title, last, &self.log);
                bar.set_message(lines.join("\n"));
                bar.finish();
            }
            None if self.out.json => self.out.emit(last),
            None => {
                for l in screen(&self.title, last, &VecDeque::new()) {
                    println!("{l}");
                }
            }
        }
    }
}

/// The terminal's width: lines are cut to it so that none wraps (a wrapped line would throw off
/// the redraw), as the demo's table is.
fn terminal_width() -> usize {
    usize::from(console::Term::stdout().size().1).max(1)
}

/// The table's lines: the title, the totals, a header, a row per peer, then the latest events.
fn screen(title: &str, table: &NodeLine, log: &VecDeque<String>) -> Vec<String> {
    let mut lines = vec![title.to_string(), table.to_string()];
    lines.push(format!(
        "{:>4}  {:<22} {:<11} {:<3} {:<5} {:>9} {:>10} {:>10} {:>6} {:>6} {:>7}",
        "id", "peer", "kind", "tr", "relay", "ping", "sent", "recv", "tx", "blocks", "uptime"
    ));
    if let NodeLine::Table { peers, .. } = table {
        for r in peers {
            lines.push(format!(
                "{:>4}  {:<22} {:<11} {:<3} {:<5} {:>9} {:>10} {:>10} {:>6} {:>6} {:>6}s",
                r.id,
                r.addr,
                r.kind,
                r.transport,
                if r.relay { "yes" } else { "no" },
                rtt_text(r.ping_us),
                bytes(r.bytes_sent),
                bytes(r.bytes_received),
                r.tx,
                r.blocks,
                r.uptime_s
            ));
        }
    }
    if !log.is_empty() {
        lines.push(String::new());
        lines.extend(log.iter().cloned());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_keeps_at_most_its_bound_and_forgets_the_oldest() {
        let mut relay = Relay::default();
        let tx = |n: u32| Transaction {
            version: btcpeer::bitcoin::transaction::Version::TWO,
            lock_time: btcpeer::bitcoin::absolute::LockTime::from_consensus(n),
            input: vec![],
            output: vec![],
        };
        let keep = |relay: &mut Relay, t: Transaction| relay.insert(t.compute_txid(), t.compute_wtxid(), t);
        for n in 0..(KEPT_TXS as u32 + 10) {
            assert!(keep(&mut relay, tx(n)));
        }
        assert!(!keep(&mut relay, tx(KEPT_TXS as u32 + 9)), "known");
        assert_eq!((relay.txs.len(), relay.by_wtxid.len(), relay.order.len()), (KEPT_TXS, KEPT_TXS, KEPT_TXS));
        assert!(!relay.knows(&Inventory::Tx(tx(0).compute_txid())), "the oldest went first");
        assert!(relay.knows(&Inventory::WTx(tx(KEPT_TXS as u32).compute_wtxid())));
    }

    #[test]
    fn the_table_has_a_row_per_peer_under_its_header() {
        let table =
            NodeLine::Table { counts: Counts::default(), book_new: 3, book_tried: 1, relayed_tx: 0, peers: vec![] };
        let lines = screen("title", &table, &VecDeque::from(vec!["an event".to_string()]));
        assert_eq!(lines[0], "title");
        assert!(lines[1].contains("book 3 new / 1 tried"), "{lines:?}");
        assert!(lines[2].contains("ping") && lines[2].contains("blocks"));
        assert_eq!(lines.last().map(String::as_str), Some("an event"));
    }
}
