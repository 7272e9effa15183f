//! `btcpeer connect HOST:PORT` (R-C2): dial a peer, perform the handshake, optionally fetch its
//! headers, ping it and listen to it (in that order), print the statistics, disconnect.
//!
//! # Transport
//!
//! `--transport v1` speaks plaintext v1; `--transport v2` requires BIP324 (a v1-only remote fails
//! the handshake: exit 1); `--transport auto` (the default) tries v2 and, when the remote hangs up
//! on our v2 key without sending a byte (a v1-only node), prints a `retry` event and dials again in
//! v1. The `handshake` event's `transport` says which one was used.
//!
//! # SOCKS5
//!
//! `--socks5 IP:PORT` dials through a SOCKS5 proxy such as Tor: HOST:PORT goes to the proxy as
//! given, unresolved (`.onion` names included), the peer is known by that name, and our version
//! message carries neither the proxy's address nor the remote's name. A retry in v1 goes through
//! the proxy again.
//!
//! # Events
//!
//! With `--json`, each line on stdout is one JSON object; every object has `"event"` and `"peer"`
//! (the peer's id in this process). In order:
//!
//! | event | keys | when |
//! |---|---|---|
//! | `retry` | `transport` (`"v1"`), `reason` (text), `kind` (`v1_retry_advised`) | `--transport auto` only: the remote hung up on our v2 handshake without a byte; we dial again in v1 (this attempt prints no `stats` or `disconnect`) |
//! | `recv` | `command`, `size` (bytes on the wire, header included for v1; the packet for v2) | with `--listen`: every frame read, handshake frames included |
//! | `dropped` | `reason`, `size` | with `--listen`: a frame dropped unread as Bitcoin Core drops it (bad checksum, invalid command bytes); the connection stays |
//! | `handshake` | `addr`, `version`, `services` (number), `service_names`, `user_agent`, `start_height`, `relay`, `transport` (`"v1"` or `"v2"`: the one in use), `negotiated_version`, `wants_addrv2`, `wtxid_relay`, `time_offset` | the handshake completed |
//! | `headers` | `count` (headers received, genesis excluded), `tip` (hash of the last header, or of the genesis block when none came; display order), `batches` (headers messages received in answer, an empty last one included), `elapsed_ms`, `headers_per_sec` | with `--headers`: the remote had no more headers |
//! | `pong` | `seq` (1 … N), `nonce`, `rtt_us` | with `--ping N`: each pong answering our ping |
//! | `stats` | the statistics snapshot, below | at the end, before disconnecting (also after a failure, once connected) |
//! | `disconnect` | `reason` (text), `kind` (stable name: `local_request`, `remote_closed`, `handshake_timeout` …) | last |
//!
//! The `stats` event carries every field of [`btcpeer::peer::PeerStats`]: `id`, `addr`, `local_addr`,
//! `direction`, `transport`, `services`, `service_names`, `version`, `negotiated_version`,
//! `user_agent`, `start_height`, `last_block_height`, `time_offset`; `connected_at`, `handshake_at`,
//! `last_send`, `last_recv` (Unix seconds or null); `bytes_sent`, `bytes_received`, `messages_sent`,
//! `messages_received`; `per_command` (an object keyed by command, each with `messages_sent`,
//! `bytes_sent`, `messages_received`, `bytes_received`), `per_command_other` (the same for every
//! command btcpeer does not know and for dropped frames); `unknown_received`, `ignored_received`,
//! `dropped_frames`; `relay` (the remote wants transaction announcements), `refused_announcements`;
//! `last_ping_rtt_us`, `min_ping_rtt_us` (microseconds or null); `outstanding_ping` (`nonce`,
//! `waited_us`, or null); `wants_headers`, `wants_addrv2`, `wtxid_relay`; `compact_blocks`
//! (`announce`, `version`, or null); `fee_filter`; `queued_messages`, `queued_bytes`,
//! `known_inventory`; `disconnect_reason` and `disconnect_kind` (null while connected).
//!
//! Without `--json`, each event is one readable line (the statistics a few indented lines).
//!
//! # Headers
//!
//! `--headers` fetches the remote's headers from the network's genesis block: a `getheaders` whose
//! locator is the last header received (at first the genesis block) and whose stop hash is zero,
//! again and again until an answer holds fewer than 2,000 headers. Every header must connect to the
//! one before it (the first to the genesis block); a batch that does not is a failure. While it runs,
//! a progress bar (count, rate, and the remote's `start_height` as the target), drawn by `indicatif`
//! without colour, is redrawn on stderr when stderr is a terminal, and nothing is written there
//! otherwise.
//!
//! On a network whose genesis block btcpeer does not know (simnet, a custom `--magic`), the first
//! locator is a hash no chain has: Bitcoin Core (`FindForkInGlobalIndex`) and btcd then answer from
//! their genesis block, whose hash is taken from the first header's parent; every header after it
//! must connect as above. If the remote has nothing past its genesis block, `tip` is the zero hash.
//!
//! # Exit codes
//!
//! 0 success; 1 failure (connection refused, by the remote or the SOCKS5 proxy; handshake refused,
//! a v2 handshake with a v1-only remote under `--transport v2` included; disconnected early;
//! headers that do not connect); 2 usage error; 3 timeout (connecting, the handshake, a headers
//! answer, or a pong took longer than `--timeout`). The reason for a non-zero exit is one line on
//! stderr.

use std::fmt;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::{Duration, Instant};

use btcpeer::bitcoin::block::Header;
use btcpeer::bitcoin::blockdata::constants::genesis_block;
use btcpeer::peer::{DisconnectReason, Peer, PeerAddr, PeerConfig, PeerConfigBuilder, RemoteInfo, V2Policy};
use btcpeer::wire::Message;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::common::{interrupted, nonce, parse_proxy};
use crate::events::{Event, PeerEvent, micros, pong_text};
use crate::headers::{HeaderSync, HeadersDone, SyncFrom, Synced, rate};
use crate::report::{
    Failure, Output, PeerArgs, PongSeen, Reporter, TransportArg, exit_code, parse_positive_secs, parse_secs,
    parse_target, secs,
};
use crate::{EXIT_FAILURE, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE};

/// The events of `btcpeer connect` (see the module docs and `EVENTS.md`).
#[derive(Serialize, Debug)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ConnectEvent {
    /// `--transport auto`: the remote hung up on our v2 handshake; dialing again in v1.
    Retry { peer: u64, transport: &'static str, reason: String, kind: &'static str },
    /// With `--headers`: the remote had no more.
    Headers {
        #[serde(flatten)]
        done: HeadersDone,
        headers_per_sec: u64,
    },
    /// With `--ping N`: a pong answering ping `seq`.
    Pong { peer: u64, seq: u32, nonce: u64, rtt_us: u64 },
    /// `recv`, `dropped`, `handshake`, `stats`, `disconnect`.
    #[serde(untagged)]
    Peer(PeerEvent),
}

impl Event for ConnectEvent {
    fn peer(&self) -> Option<u64> {
        match self {
            ConnectEvent::Retry { peer, .. } | ConnectEvent::Pong { peer, .. } => Some(*peer),
            ConnectEvent::Headers { done, .. } => Some(done.peer),
            ConnectEvent::Peer(e) => e.peer(),
        }
    }
}

impl fmt::Display for ConnectEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectEvent::Retry { transport, reason, .. } => write!(f, "retry: {reason}; dialing again in {transport}"),
            ConnectEvent::Headers { done, headers_per_sec } => write!(
                f,
                "headers: {} in {} batches, tip {}, {headers_per_sec} headers/s",
                done.synced.count, done.synced.batches, done.synced.tip
            ),
            ConnectEvent::Pong { rtt_us, .. } => f.write_str(&pong_text(*rtt_us)),
            ConnectEvent::Peer(e) => e.fmt(f),
        }
    }
}

/// The arguments of `btcpeer connect`.
#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// The peer: HOST:PORT, IP:PORT, or an IPv6 address in brackets and :PORT (without a port, the
    /// network's default port).
    #[arg(value_name = "HOST:PORT")]
    target: String,
    #[command(flatten)]
    common: PeerArgs,
    /// Stay connected SECS seconds after the handshake (and the headers and pings), printing every message
    /// received (from the start, handshake included).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    listen: Option<Duration>,
    /// Fetch the remote's headers from the genesis block (getheaders until an answer holds fewer than
    /// 2,000), checking that each connects to the one before; a progress line is shown on stderr when
    /// it is a terminal; then print the count, the tip and the rate. On every network, --magic included.
    #[arg(long)]
    headers: bool,
    /// Send N pings, one after another, and print each round trip.
    #[arg(long, value_name = "N", default_value_t = 0)]
    ping: u32,
    /// The bound on every wait, in seconds: connecting, the handshake, each headers answer, each pong,
    /// the disconnect.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_positive_secs)]
    timeout: Duration,
    /// Dial through this SOCKS5 proxy (IP:PORT, e.g. Tor's 127.0.0.1:9050). HOST goes to the proxy
    /// unresolved, so .onion names work, and our version message carries no address of ours.
    #[arg(long, value_name = "ADDR", value_parser = parse_proxy)]
    socks5: Option<SocketAddr>,
}

/// Headers messages that may wait for the sync loop; only one is expected at a time.
const HEADERS_BACKLOG: usize = 8;

/// Runs `btcpeer connect`; returns the exit code.
pub fn run(args: ConnectArgs) -> u8 {
    let usage = |e: String| crate::report::usage("connect", &e);
    let network = match args.common.network_for("connect") {
        Ok(n) => n,
        Err(code) => return code,
    };
    // With --headers: from the genesis block where btcpeer knows it (see the module docs).
    let headers = args.headers.then(|| match network.bitcoin_network() {
        Some(n) => SyncFrom::Genesis(genesis_block(n).block_hash()),
        None => SyncFrom::RemoteGenesis,
    });
    let target = match parse_target(&args.target, network.default_port()) {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let mut builder = args.common.builder(network, Some(args.timeout));
    if let Some(proxy) = args.socks5 {
        builder = builder.proxy(proxy);
    }
    // Checked once here; a retry only changes the transport policy.
    if let Err(e) = builder.clone().build() {
        return usage(e.to_string());
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("btcpeer connect: cannot start the async runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    runtime.block_on(session(&args, builder, &target, headers))
}

/// How one connection attempt ended.
enum Attempt {
    /// With this exit code.
    Exit(u8),
    /// The remote closed on our v2 handshake: dial again in v1 (`--transport auto` only).
    RetryV1(DisconnectReason, u64),
}

/// Dials, and with `--transport auto` dials again in v1 when the remote closes on our v2 handshake.
async fn session(args: &ConnectArgs, builder: PeerConfigBuilder, target: &str, headers: Option<SyncFrom>) -> u8 {
    let out = Output { json: args.common.json, peer_prefix: false };
    let mut transport = args.common.transport;
    loop {
        let config = match builder.clone().v2(transport.policy()).build() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("btcpeer connect: {e}");
                return EXIT_USAGE;
            }
        };
        let may_retry = transport == TransportArg::Auto;
        match attempt(args, config, target, headers, out, may_retry).await {
            Attempt::Exit(code) => return code,
            Attempt::RetryV1(reason, peer) => {
                out.emit(&ConnectEvent::Retry {
                    peer,
                    transport: TransportArg::V1.as_str(),
                    reason: reason.to_string(),
                    kind: reason.kind(),
                });
                transport = TransportArg::V1;
            }
        }
    }
}

/// Connects to `target`, directly or through the `--socks5` proxy. Returns the stream and the
/// remote's address as the peer should know it.
async fn dial(args: &ConnectArgs, target: &str) -> Result<(TcpStream, PeerAddr), Failure> {
    let limit = args.timeout;
    match args.socks5 {
        None => match tokio::time::timeout(limit, TcpStream::connect(target)).await {
            Err(_) => Err((EXIT_TIMEOUT, format!("timed out after {} connecting to {target}", secs(limit)))),
            Ok(Err(e)) => Err((EXIT_FAILURE, format!("cannot connect to {target}: {e}"))),
            Ok(Ok(stream)) => {
                let remote = stream.peer_addr().map_or_else(|_| PeerAddr::from(target), PeerAddr::from);
                Ok((stream, remote))
            }
        },
        Some(proxy) => match tokio::time::timeout(limit, btcpeer::socks::connect(proxy, target, None)).await {
            Err(_) => Err((
                EXIT_TIMEOUT,
                format!("timed out after {} connecting to {target} through the SOCKS5 proxy {proxy}", secs(limit)),
            )),
            Ok(Err(e)) => {
                Err((EXIT_FAILURE, format!("cannot connect to {target} through the SOCKS5 proxy {proxy}: {e}")))
            }
            // The name as given: it was never resolved here, and the version message must not carry it.
            Ok(Ok(stream)) => Ok((stream, PeerAddr::from(target))),
        },
    }
}

/// One connection: dial, handshake, then the headers, pings and listening period.
async fn attempt(
    args: &ConnectArgs,
    config: PeerConfig,
    target: &str,
    sync_from: Option<SyncFrom>,
    out: Output,
    may_retry: bool,
) -> Attempt {
    let limit = args.timeout;
    let (stream, remote) = match dial(args, target).await {
        Ok(s) => s,
        Err((code, message)) => {
            eprintln!("btcpeer connect: {message}");
            return Attempt::Exit(code);
        }
    };
    // Pings are small; do not let Nagle's algorithm sit on them.
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr();
    let (tx, mut pongs) = mpsc::unbounded_channel();
    let mut reporter = Reporter::new(out, ConnectEvent::Peer, args.listen.is_some(), Some(tx));
    let mut headers = None;
    if let Some(from) = sync_from {
        let (tx, rx) = mpsc::channel(HEADERS_BACKLOG);
        reporter = reporter.with_headers(tx);
        headers = Some((from, rx));
    }
    let policy = config.v2_policy();
    let peer = Peer::outbound(config, remote, reporter);
    let associated = match local {
        Ok(local) => peer.associate_with_local(stream, local).map_err(|e| e.to_string()),
        Err(_) => peer.associate(stream).map_err(|e| e.to_string()),
    };
    if let Err(e) = associated {
        eprintln!("btcpeer connect: {e}");
        return Attempt::Exit(EXIT_FAILURE);
    }

    // The peer's own handshake deadline is `limit`; this one only guards against it not firing.
    let result = match tokio::time::timeout(limit.saturating_add(Duration::from_secs(1)), peer.handshake()).await {
        Ok(Ok(remote)) => converse(args, &peer, out, &mut pongs, headers, &remote).await,
        // The library says when a v1 retry is worth it: the remote closed or reset the connection
        // before sending a byte of the v2 handshake (`V2HandshakeError::ClosedBeforeAnyByte`).
        Ok(Err(DisconnectReason::V1RetryAdvised)) if may_retry => {
            let reason = DisconnectReason::V1RetryAdvised;
            peer.disconnect();
            let _ = tokio::time::timeout(limit, peer.wait_for_disconnect()).await;
            return Attempt::RetryV1(reason, peer.id());
        }
        Ok(Err(reason)) => {
            let hint = if policy == V2Policy::Require && reason.suggests_v1_only() {
                " (the remote seems to speak only v1: try --transport auto or v1)"
            } else {
                ""
            };
            Err((exit_code(&reason), format!("handshake failed: {reason}{hint}")))
        }
        Err(_) => Err((EXIT_TIMEOUT, format!("handshake timed out after {}", secs(limit)))),
    };

    out.emit(&ConnectEvent::Peer(PeerEvent::stats(&peer.stats())));
    peer.disconnect();
    let reason = match tokio::time::timeout(limit, peer.wait_for_disconnect()).await {
        Ok(reason) => reason,
        Err(_) => peer.disconnect_reason().unwrap_or(DisconnectReason::LocalRequest),
    };
    out.emit(&ConnectEvent::Peer(PeerEvent::disconnect(&peer, &reason)));
    match result {
        Ok(()) => Attempt::Exit(EXIT_OK),
        Err((code, message)) => {
            eprintln!("btcpeer connect: {message}");
            Attempt::Exit(code)
        }
    }
}

/// After the handshake: the headers, the pings and the listening period. `headers` is where the
/// sync starts and the channel the handler passes `headers` messages on to, with `--headers`.
async fn converse(
    args: &ConnectArgs,
    peer: &Peer,
    out: Output,
    pongs: &mut mpsc::UnboundedReceiver<PongSeen>,
    headers: Option<(SyncFrom, mpsc::Receiver<Vec<Header>>)>,
    remote: &RemoteInfo,
) -> Result<(), Failure> {
    let limit = args.timeout;
    if let Some((from, mut batches)) = headers {
        let target = u64::try_from(remote.version.start_height).ok().filter(|&h| h > 0);
        let progress = Progress::new(std::io::stderr().is_terminal(), target);
        let synced = sync_headers(peer, from, limit, &mut batches, progress).await?;
        // Later headers messages (announcements) find the channel closed and are dropped.
        drop(batches);
        out.emit(&ConnectEvent::Headers { done: synced.done(peer.id()), headers_per_sec: synced.rate() });
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
        out.emit(&ConnectEvent::Pong { peer: peer.id(), seq, nonce, rtt_us: micros(rtt) });
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

/// Fetches headers from `from` until the remote has no more (see the module docs). Each answer is
/// awaited at most `limit`.
async fn sync_headers(
    peer: &Peer,
    from: SyncFrom,
    limit: Duration,
    batches: &mut mpsc::Receiver<Vec<Header>>,
    progress: Progress,
) -> Result<Synced, Failure> {
    let mut sync = HeaderSync::new(from);
    let mut closed = pin!(peer.closed());
    loop {
        let n = sync.request(peer)?;
        let mut deadline = pin!(tokio::time::sleep(limit));
        let headers = tokio::select! {
            batch = batches.recv() => match batch {
                Some(headers) => headers,
                None => return Err((EXIT_FAILURE, format!("disconnected while waiting for headers batch {n}"))),
            },
            reason = &mut closed => {
                return Err((exit_code(&reason), format!("disconnected while waiting for headers batch {n}: {reason}")));
            }
            () = &mut deadline => {
                return Err((EXIT_TIMEOUT, format!("no headers in answer to getheaders {n} within {}", secs(limit))));
            }
        };
        let done = sync.accept(&headers)?;
        progress.update(sync.synced().count, sync.elapsed());
        if done {
            return Ok(sync.synced());
        }
    }
}

/// The progress bar of `--headers` on stderr, drawn by `indicatif` at most ten times a second: a
/// bar towards the remote's `start_height` (a count alone when it announced none, or once it sent
/// more), and the rate on the sync's own clock. Hidden when stderr is not a terminal; no colour is
/// used, so there is nothing for `NO_COLOR` to turn off. Cleared when dropped, so that what
/// follows starts clean.
struct Progress {
    bar: ProgressBar,
    target: Option<u64>,
}

impl Progress {
    /// With a target: a bar 30 characters wide.
    const BAR: &str = "headers [{bar:30}] {pos}/{len} ({percent}%) {msg}";
    /// Without a target.
    const COUNT: &str = "headers {pos} {msg}";

    fn new(terminal: bool, target: Option<u64>) -> Progress {
        let draw = if terminal { ProgressDrawTarget::stderr_with_hz(10) } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(target, draw);
        let progress = Progress { bar, target };
        progress.style(target.is_some());
        progress
    }

    fn style(&self, with_bar: bool) {
        let template = if with_bar { Self::BAR } else { Self::COUNT };
        // Both templates are fixed and valid; the default style would do as well.
        let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
        self.bar.set_style(style.progress_chars("#-"));
    }

    fn update(&self, count: u64, elapsed: Duration) {
        if self.target.is_some_and(|t| count > t) && self.bar.length().is_some() {
            // A remote with more headers than it announced: no bar.
            self.bar.unset_length();
            self.style(false);
        }
        self.bar.set_message(format!("{} headers/s", rate(count, elapsed)));
        self.bar.set_position(count);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_bar_shows_count_rate_and_target() {
        let p = Progress::new(false, Some(4_000));
        p.update(2_000, Duration::from_secs(2));
        assert_eq!((p.bar.position(), p.bar.length()), (2_000, Some(4_000)));
        assert_eq!(p.bar.message(), "1000 headers/s");
        // A remote with more headers than it announced: no bar.
        let p = Progress::new(false, Some(10));
        p.update(2_000, Duration::from_secs(1));
        assert_eq!((p.bar.position(), p.bar.length()), (2_000, None));
        let p = Progress::new(false, None);
        p.update(2_000, Duration::from_millis(500));
        assert_eq!((p.bar.length(), p.bar.message()), (None, "4000 headers/s".to_string()));
        assert_eq!(rate(5, Duration::ZERO), 5_000_000);
    }
}
