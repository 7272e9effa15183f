//! `btcpeer listen ADDR` (R-C3): accept inbound peers, answer their pings (the peer does that),
//! and report what each one sends.
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
//! | `accept` | `peer`, `addr` | a connection was accepted |
//! | `refused` | `addr`, `reason` | a connection beyond `--max-peers` was closed at once |
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

use std::collections::HashMap;
use std::fmt;
use std::pin::pin;
use std::time::Duration;

use btcpeer::peer::{Peer, PeerConfig};
use serde::Serialize;
use tokio::task::{Id, JoinSet};

use crate::connect::interrupted;
use crate::events::{Event, PeerEvent};
use crate::report::{Output, PeerArgs, Reporter, parse_secs, parse_target};
use crate::{EXIT_FAILURE, EXIT_OK};

/// The events of `btcpeer listen` (see the module docs and `EVENTS.md`).
#[derive(Serialize, Debug)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ListenEvent {
    /// First, once: the bound address.
    Listening {
        addr: String,
        network: String,
    },
    Accept {
        peer: u64,
        addr: String,
    },
    /// A connection beyond `--max-peers`, closed at once.
    Refused {
        addr: String,
        reason: String,
    },
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
            ListenEvent::Accept { addr, .. } => write!(f, "accept {addr}"),
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
    /// Peers served at once; further connections are closed at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    max_peers: u32,
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

async fn serve(args: &ListenArgs, config: PeerConfig, addr: &str) -> u8 {
    let out = Output { json: args.common.json, peer_prefix: true };
    let (listener, bound) = match crate::report::bind("listen", addr).await {
        Ok(bound) => bound,
        Err(code) => return code,
    };
    out.emit(&ListenEvent::Listening { addr: bound.to_string(), network: config.network().name().to_string() });

    let max_peers = usize::try_from(args.max_peers).unwrap_or(usize::MAX);
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut live: HashMap<Id, Peer> = HashMap::new();
    let duration = args.duration;
    let mut end = pin!(async move {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    });
    let mut stop = pin!(interrupted());
    loop {
        tokio::select! {
            () = &mut end => break,
            () = &mut stop => break,
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                live.remove(&id);
            }
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Usually out of file descriptors: say so, and give peers time to leave.
                        eprintln!("btcpeer listen: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                while let Some(done) = tasks.try_join_next_with_id() {
                    live.remove(&done.map_or_else(|e| e.id(), |(id, ())| id));
                }
                if live.len() >= max_peers {
                    drop(stream);
                    out.emit(&ListenEvent::Refused {
                        addr: remote.to_string(),
                        reason: format!("already serving --max-peers {max_peers} peers"),
                    });
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let local = stream.local_addr();
                let peer = Peer::inbound(config.clone(), remote, Reporter::new(out, ListenEvent::Peer, true, None));
                out.emit(&ListenEvent::Accept { peer: peer.id(), addr: remote.to_string() });
                let associated = match local {
                    Ok(local) => peer.associate_with_local(stream, local).map_err(|e| e.to_string()),
                    Err(_) => peer.associate(stream).map_err(|e| e.to_string()),
                };
                if let Err(e) = associated {
                    eprintln!("btcpeer listen: peer {}: {e}", peer.id());
                    continue;
                }
                let watched = peer.clone();
                let handle = tasks.spawn(async move {
                    let reason = watched.closed().await;
                    out.emit(&ListenEvent::Peer(PeerEvent::stats(&watched.stats())));
                    out.emit(&ListenEvent::Peer(PeerEvent::disconnect(&watched, &reason)));
                });
                live.insert(handle.id(), peer);
            }
        }
    }
    drop(listener);
    for peer in live.values() {
        peer.disconnect();
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        eprintln!("btcpeer listen: {} peers did not finish within {}s", tasks.len(), SHUTDOWN_GRACE.as_secs());
    }
    EXIT_OK
}
