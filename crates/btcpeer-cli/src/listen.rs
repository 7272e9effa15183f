//! `btcpeer listen ADDR` (R-C3): accept inbound peers, answer their pings (the peer does that),
//! and report what each one sends. It is a [`btcpeer::node::Node`] that only accepts: at most
//! `--max-peers` inbound peers, a full table making room by Core's eviction (a connection that
//! never finished its handshake first, so a flood of silent connections cannot lock honest peers
//! out), `getaddr` answered once per connection from its book, address gossip rate-limited.
//!
//! `--transport auto` (the default) accepts v1 and BIP324 v2 initiators alike (a v1 initiator is
//! recognised from its first 16 bytes, which are not lost); `--transport v2` refuses v1 initiators
//! (their peer ends with a `disconnect` of kind `protocol_violation`); `--transport v1` speaks v1
//! only. The `handshake` and `stats` events say which transport each peer uses.
//!
//! # Events
//!
//! With `--json`, each line on stdout is one JSON object with an `"event"` key; stdout is flushed
//! after every line. Every event about a peer has `"peer"`, the peer's id in this process.
//!
//! | event | keys | when |
//! |---|---|---|
//! | `listening` | `addr` (the bound address, with the real port when ADDR asked for port 0), `network` | first, once |
//! | `accept` | `peer`, `addr`, and `evicted` (the address ended to make room) when the table was full | a connection was accepted |
//! | `refused` | `addr`, `reason` | a connection was closed at once: banned, or the table full with nobody to evict |
//! | `recv` | `peer`, `command`, `size` (bytes on the wire, header included) | every frame read, handshake frames included |
//! | `dropped` | `peer`, `reason`, `size` | a frame dropped unread, as Bitcoin Core drops it (bad checksum, invalid command bytes); the peer carries on |
//! | `handshake` | `peer` and the keys of `connect`'s `handshake` event (`transport` `"v1"` or `"v2"`) | the handshake completed |
//! | `stats` | `peer` and the statistics snapshot (keys as in `connect`) | a peer disconnected, or the duration ended |
//! | `disconnect` | `peer`, `reason` (text), `kind` (stable name: `remote_closed`, `local_request` …) | right after that peer's `stats` |
//!
//! Like Bitcoin Core, a listener is lenient where Core is: a message before `version`, a second
//! `version` or `verack`, `sendtxrcncl`, a `feefilter` outside the money range or a `sendcmpct`
//! other than version 2 is ignored (counted in the `stats` event's `ignored_received`); a frame
//! with a bad checksum or invalid command bytes is dropped (`dropped_frames`, and its bytes in
//! `per_command_other`); a `version` with bytes after the relay flag and a `reject` with a long
//! reason are accepted. A wrong network magic, an over-long length or a malformed known message
//! still ends the peer.
//!
//! Without `--json`, each event is one readable line prefixed with `[peer N]`.
//!
//! # Exit codes
//!
//! 0 when `--duration` ends (or on Ctrl-C); 1 when the address cannot be bound; 2 usage error.

use std::fmt;
use std::time::Duration;

use btcpeer::node::{Node, NodeEvent, NodeHandler};
use btcpeer::peer::{DisconnectReason, Handler, Peer, PeerConfig, ReadEvent, RemoteInfo};
use btcpeer::wire::Message;
use bytes::Bytes;
use serde::Serialize;

use crate::common::{interrupted, refusal_text, report_recovered};
use crate::events::{Event, PeerEvent};
use crate::report::{Output, PeerArgs, Reporter, parse_secs, parse_target};
use crate::{EXIT_FAILURE, EXIT_OK};

/// The events of `btcpeer listen` (see the module docs and `EVENTS.md`).
#[derive(Serialize, Debug)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ListenEvent {
    /// First, once: the bound address.
    Listening { addr: String, network: String },
    Accept {
        peer: u64,
        addr: String,
        /// The address of the connection evicted to make room, when the table was full.
        #[serde(skip_serializing_if = "Option::is_none")]
        evicted: Option<String>,
    },
    /// A connection beyond `--max-peers`, closed at once.
    Refused { addr: String, reason: String },
    /// A peer's `recv`, `dropped`, `handshake`, `stats` and `disconnect` events, as in `connect`.
    #[serde(untagged)]
    Peer(PeerEvent),
}

impl Event for ListenEvent {
    fn peer(&self) -> Option<u64> {
        match self {
            ListenEvent::Listening { .. } | ListenEvent::Refused { .. } => None,
            ListenEvent::Accept { peer, .. } => Some(*peer),
            ListenEvent::Peer(e) => e.peer(),
        }
    }
}

impl fmt::Display for ListenEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenEvent::Listening { addr, network } => write!(f, "listening on {addr} ({network})"),
            ListenEvent::Accept { addr, evicted: None, .. } => write!(f, "accept {addr}"),
            ListenEvent::Accept { addr, evicted: Some(e), .. } => write!(f, "accept {addr} (evicted {e} for room)"),
            ListenEvent::Refused { addr, reason } => write!(f, "refused {addr}: {reason}"),
            ListenEvent::Peer(e) => e.fmt(f),
        }
    }
}

/// How long peers get to finish when the listener stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The arguments of `btcpeer listen`.
#[derive(clap::Args, Debug)]
pub struct ListenArgs {
    /// The address to listen on: IP:PORT (port 0 picks a free port; without a port, the network's
    /// default port).
    #[arg(value_name = "ADDR")]
    addr: String,
    #[command(flatten)]
    common: PeerArgs,
    /// Inbound peers at once. When full, a newcomer makes room by Core's eviction (the oldest
    /// connection still without a handshake first); refused when nobody may be evicted.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    max_peers: u32,
    /// The address book: what peers gossip (rate-limited, as Core) is kept here, and `getaddr` is
    /// answered from it.
    #[arg(long, value_name = "FILE")]
    book: Option<std::path::PathBuf>,
    /// Stop after SECS seconds (without it, run until Ctrl-C).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<Duration>,
}

/// Runs `btcpeer listen`; returns the exit code.
pub fn run(args: ListenArgs) -> u8 {
    let usage = |e: String| crate::report::usage("listen", &e);
    let network = match args.common.network_for("listen") {
        Ok(n) => n,
        Err(code) => return code,
    };
    let addr = match parse_target(&args.addr, network.default_port()) {
        Ok(a) => a,
        Err(e) => return usage(e),
    };
    let config = match args.common.config(network, None) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("btcpeer listen: cannot start the async runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    runtime.block_on(serve(&args, config, &addr))
}

/// Each peer's events, as in `connect`, then its `stats` and `disconnect` when it ends.
struct ListenPeer {
    out: Output,
    reporter: Reporter<ListenEvent>,
}

impl Handler for ListenPeer {
    fn on_handshake(&self, peer: &Peer, remote: &RemoteInfo) {
        self.reporter.on_handshake(peer, remote);
    }
    fn on_read(&self, peer: &Peer, event: &ReadEvent<'_>) {
        self.reporter.on_read(peer, event);
    }
    fn on_message(&self, peer: &Peer, message: Message, raw: Bytes) {
        self.reporter.on_message(peer, message, raw);
    }
    fn on_disconnect(&self, peer: &Peer, reason: &DisconnectReason) {
        // The snapshot as it stands once the peer has ended (the reason is recorded after this call).
        let mut stats = peer.stats();
        stats.disconnect_reason.get_or_insert_with(|| reason.clone());
        self.out.emit(&ListenEvent::Peer(PeerEvent::stats(&stats)));
        self.out.emit(&ListenEvent::Peer(PeerEvent::disconnect(peer, reason)));
    }
}

/// The node's own events: admissions (with the connection evicted for room) and refusals.
struct ListenNode {
    out: Output,
}

impl NodeHandler for ListenNode {
    fn on_event(&self, event: &NodeEvent) {
        match event {
            NodeEvent::Accepted { addr, peer, evicted, .. } => self.out.emit(&ListenEvent::Accept {
                peer: *peer,
                addr: addr.to_string(),
                evicted: evicted.map(|(_, a)| a.to_string()),
            }),
            NodeEvent::Refused { addr, refusal } => {
                self.out.emit(&ListenEvent::Refused { addr: addr.to_string(), reason: refusal_text(*refusal).into() })
            }
            _ => {}
        }
    }
}

async fn serve(args: &ListenArgs, config: PeerConfig, addr: &str) -> u8 {
    let out = Output { json: args.common.json, peer_prefix: true };
    let (listener, bound) = match crate::report::bind("listen", addr).await {
        Ok(bound) => bound,
        Err(code) => return code,
    };
    let network = config.network().clone();
    let local_network = network.bitcoin_network().is_none_or(|n| n == btcpeer::bitcoin::Network::Regtest);
    let max_peers = usize::try_from(args.max_peers).unwrap_or(usize::MAX);
    // Inbound only: no outbound slots, no feelers, so every connection but one spare is inbound.
    let mut builder = Node::builder(config.clone())
        .outbound(0, 0)
        .feelers(false)
        .dial_outbound(false)
        .max_connections(max_peers.saturating_add(1))
        .allow_local(local_network)
        .handler(ListenNode { out })
        .peer_handler(ListenPeer { out, reporter: Reporter::new(out, ListenEvent::Peer, true, None) });
    if let Some(book) = &args.book {
        builder = builder.book_file(book);
    }
    let node = match builder.build() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("btcpeer listen: {e}");
            return EXIT_FAILURE;
        }
    };
    report_recovered("listen", &node);
    out.emit(&ListenEvent::Listening { addr: bound.to_string(), network: network.name().to_string() });
    if let Err(e) = node.start(Some(listener)) {
        eprintln!("btcpeer listen: {e}");
        return EXIT_FAILURE;
    }
    let duration = args.duration;
    let end = async move {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = end => {}
        () = interrupted() => {}
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, node.shutdown()).await {
        Ok(Ok(())) => EXIT_OK,
        Ok(Err(e)) => {
            eprintln!("btcpeer listen: {e}");
            EXIT_FAILURE
        }
        Err(_) => {
            eprintln!("btcpeer listen: peers did not finish within {}s", SHUTDOWN_GRACE.as_secs());
            EXIT_OK
        }
    }
}
