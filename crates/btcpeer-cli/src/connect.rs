//! `btcpeer connect HOST:PORT` (R-C2): dial a peer, perform the handshake, optionally ping it and
//! listen to it, print the statistics, disconnect.
//!
//! Only the v1 transport exists so far: `--transport v2` and `--transport auto` are usage errors.
//!
//! # Events
//!
//! With `--json`, each line on stdout is one JSON object; every object has `"event"` and `"peer"`
//! (the peer's id in this process). In order:
//!
//! | event | keys | when |
//! |---|---|---|
//! | `recv` | `command`, `size` (bytes on the wire, header included) | with `--listen`: every frame read, handshake frames included |
//! | `handshake` | `addr`, `version`, `services` (number), `service_names`, `user_agent`, `start_height`, `relay`, `transport` (`"v1"`), `negotiated_version`, `wants_addrv2`, `wtxid_relay`, `time_offset` | the handshake completed |
//! | `pong` | `seq` (1 … N), `nonce`, `rtt_us` | with `--ping N`: each pong answering our ping |
//! | `stats` | the statistics snapshot, below | at the end, before disconnecting (also after a failure, once connected) |
//! | `disconnect` | `reason` (text), `kind` (stable name: `local_request`, `remote_closed`, `handshake_timeout` …) | last |
//!
//! The `stats` event carries every field of [`btcpeer::peer::PeerStats`]: `id`, `addr`, `local_addr`,
//! `direction`, `transport`, `services`, `service_names`, `version`, `negotiated_version`,
//! `user_agent`, `start_height`, `last_block_height`, `time_offset`; `connected_at`, `handshake_at`,
//! `last_send`, `last_recv` (Unix seconds or null); `bytes_sent`, `bytes_received`, `messages_sent`,
//! `messages_received`; `per_command` (an object keyed by command, each with `messages_sent`,
//! `bytes_sent`, `messages_received`, `bytes_received`); `unknown_received`, `ignored_received`;
//! `last_ping_rtt_us`, `min_ping_rtt_us` (microseconds or null); `outstanding_ping` (`nonce`,
//! `waited_us`, or null); `wants_headers`, `wants_addrv2`, `wtxid_relay`; `compact_blocks`
//! (`announce`, `version`, or null); `fee_filter`; `queued_messages`, `queued_bytes`,
//! `known_inventory`; `disconnect_reason` and `disconnect_kind` (null while connected).
//!
//! Without `--json`, each event is one readable line (the statistics a few indented lines).
//!
//! # Exit codes
//!
//! 0 success; 1 failure (connection refused, handshake refused, disconnected early); 2 usage error;
//! 3 timeout (connecting, the handshake, or a pong took longer than `--timeout`). The reason for a
//! non-zero exit is one line on stderr.

use std::pin::pin;
use std::time::{Duration, Instant};

use btcpeer::peer::{DisconnectReason, Peer, PeerAddr, PeerConfig};
use btcpeer::wire::Message;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::report::{
    Output, PeerArgs, PongSeen, Reporter, disconnect_event, parse_positive_secs, parse_secs, parse_target, stats_event,
};
use crate::{EXIT_FAILURE, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE};

/// The arguments of `btcpeer connect`.
#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// The peer: HOST:PORT, IP:PORT, or an IPv6 address in brackets and :PORT (without a port, the
    /// network's default port).
    #[arg(value_name = "HOST:PORT")]
    target: String,
    #[command(flatten)]
    common: PeerArgs,
    /// Stay connected SECS seconds after the handshake (and the pings), printing every message
    /// received (from the start, handshake included).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    listen: Option<Duration>,
    /// Send N pings, one after another, and print each round trip.
    #[arg(long, value_name = "N", default_value_t = 0)]
    ping: u32,
    /// The bound on every wait, in seconds: connecting, the handshake, each pong, the disconnect.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_positive_secs)]
    timeout: Duration,
}

/// Why a session failed: the exit code and the line for stderr.
type Failure = (u8, String);

fn exit_code(reason: &DisconnectReason) -> u8 {
    if reason.is_timeout() { EXIT_TIMEOUT } else { EXIT_FAILURE }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// A random ping nonce.
fn nonce() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        // No OS randomness: the clock is unique enough to match a pong to its ping.
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    })
}

/// Resolves once Ctrl-C is pressed (never, if the signal cannot be watched).
pub(crate) async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs `btcpeer connect`; returns the exit code.
pub fn run(args: ConnectArgs) -> u8 {
    let usage = |e: String| {
        eprintln!("btcpeer connect: {e}");
        EXIT_USAGE
    };
    let network = match args.common.network() {
        Ok(n) => n,
        Err(e) => return usage(e),
    };
    let target = match parse_target(&args.target, network.default_port()) {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let config = match args.common.config(network, Some(args.timeout)) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("btcpeer connect: cannot start the async runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    runtime.block_on(session(&args, config, &target))
}

async fn session(args: &ConnectArgs, config: PeerConfig, target: &str) -> u8 {
    let out = Output { json: args.common.json, peer_prefix: false };
    let limit = args.timeout;
    let stream = match tokio::time::timeout(limit, TcpStream::connect(target)).await {
        Err(_) => {
            eprintln!("btcpeer connect: timed out after {} connecting to {target}", secs(limit));
            return EXIT_TIMEOUT;
        }
        Ok(Err(e)) => {
            eprintln!("btcpeer connect: cannot connect to {target}: {e}");
            return EXIT_FAILURE;
        }
        Ok(Ok(stream)) => stream,
    };
    // Pings are small; do not let Nagle's algorithm sit on them.
    let _ = stream.set_nodelay(true);
    let remote = stream.peer_addr().map_or_else(|_| PeerAddr::from(target), PeerAddr::from);
    let local = stream.local_addr();
    let (tx, mut pongs) = mpsc::unbounded_channel();
    let peer = Peer::outbound(config, remote, Reporter::new(out, args.listen.is_some(), Some(tx)));
    let associated = match local {
        Ok(local) => peer.associate_with_local(stream, local).map_err(|e| e.to_string()),
        Err(_) => peer.associate(stream).map_err(|e| e.to_string()),
    };
    if let Err(e) = associated {
        eprintln!("btcpeer connect: {e}");
        return EXIT_FAILURE;
    }

    let result = converse(args, &peer, out, &mut pongs).await;

    out.emit(&stats_event(&peer.stats()));
    peer.disconnect();
    let reason = match tokio::time::timeout(limit, peer.wait_for_disconnect()).await {
        Ok(reason) => reason,
        Err(_) => peer.disconnect_reason().unwrap_or(DisconnectReason::LocalRequest),
    };
    out.emit(&disconnect_event(&peer, &reason));
    match result {
        Ok(()) => EXIT_OK,
        Err((code, message)) => {
            eprintln!("btcpeer connect: {message}");
            code
        }
    }
}

/// The handshake, the pings and the listening period.
async fn converse(
    args: &ConnectArgs,
    peer: &Peer,
    out: Output,
    pongs: &mut mpsc::UnboundedReceiver<PongSeen>,
) -> Result<(), Failure> {
    let limit = args.timeout;
    // The peer's own handshake deadline is `limit`; this one only guards against it not firing.
    match tokio::time::timeout(limit.saturating_add(Duration::from_secs(1)), peer.handshake()).await {
        Ok(Ok(_)) => {}
        Ok(Err(reason)) => return Err((exit_code(&reason), format!("handshake failed: {reason}"))),
        Err(_) => return Err((EXIT_TIMEOUT, format!("handshake timed out after {}", secs(limit)))),
    }

    for seq in 1..=args.ping {
        let nonce = nonce();
        let sent_at = Instant::now();
        // The pong tells us the ping went out; its completion is not needed.
        drop(
            peer.queue_message(&Message::Ping(nonce))
                .map_err(|e| (EXIT_FAILURE, format!("cannot send ping {seq}: {e}")))?,
        );
        let mut deadline = pin!(tokio::time::sleep(limit));
        let mut closed = pin!(peer.closed());
        let rtt = loop {
            tokio::select! {
                seen = pongs.recv() => match seen {
                    Some(pong) if pong.nonce == nonce => {
                        break pong.rtt.unwrap_or_else(|| pong.at.saturating_duration_since(sent_at));
                    }
                    Some(_) => {}
                    None => return Err((EXIT_FAILURE, format!("disconnected while waiting for pong {seq}"))),
                },
                reason = &mut closed => {
                    return Err((exit_code(&reason), format!("disconnected while waiting for pong {seq}: {reason}")));
                }
                () = &mut deadline => {
                    return Err((EXIT_TIMEOUT, format!("no pong to ping {seq} within {}", secs(limit))));
                }
            }
        };
        out.emit(&json!({
            "event": "pong",
            "peer": peer.id(),
            "seq": seq,
            "nonce": nonce,
            "rtt_us": u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX),
        }));
    }

    if let Some(listen) = args.listen {
        let started = Instant::now();
        tokio::select! {
            () = tokio::time::sleep(listen) => {}
            () = interrupted() => {}
            reason = peer.closed() => {
                let after = secs(Duration::from_millis(started.elapsed().as_millis() as u64));
                return Err((exit_code(&reason), format!("disconnected after {after} of {}: {reason}", secs(listen))));
            }
        }
    }
    Ok(())
}
