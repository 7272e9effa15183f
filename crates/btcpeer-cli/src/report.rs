//! What `btcpeer connect` and `btcpeer listen` share: the network and transport options, target
//! and duration parsing, the event printer, and the handler that reports what a peer receives.
//!
//! Events (the typed ones of `events`, and each subcommand's own enum) are printed one JSON object
//! per line with `--json`, or as readable text otherwise; stdout is flushed after every event so
//! that a reader sees each one at once. The events themselves are listed in `EVENTS.md`.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use btcpeer::bitcoin::block::Header;
use btcpeer::bitcoin::hex::FromHex;
use btcpeer::network::{Magic, Network};
use btcpeer::peer::{DisconnectReason, Handler, Peer, PeerConfig, PeerConfigBuilder, ReadEvent, RemoteInfo, V2Policy};
use tokio::sync::mpsc;

use crate::events::{Event, Handshake, PeerEvent, json_line, print_line};

/// The transports `--transport` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportArg {
    /// Plaintext v1 framing only.
    V1,
    /// BIP324 encrypted transport only: a v1 remote is refused.
    V2,
    /// v2 when the remote speaks it, v1 otherwise (outbound: dial again in v1 when the remote closes
    /// on our v2 handshake; inbound: accept v1 and v2 initiators alike).
    Auto,
}

impl TransportArg {
    /// The library's policy for this choice: v1 `Never`, v2 `Require`, auto `Prefer`.
    pub fn policy(self) -> V2Policy {
        match self {
            TransportArg::V1 => V2Policy::Never,
            TransportArg::V2 => V2Policy::Require,
            TransportArg::Auto => V2Policy::Prefer,
        }
    }

    /// `"v1"`, `"v2"` or `"auto"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportArg::V1 => "v1",
            TransportArg::V2 => "v2",
            TransportArg::Auto => "auto",
        }
    }
}

/// The options `connect` and `listen` share.
#[derive(clap::Args, Debug)]
pub struct PeerArgs {
    /// Network: mainnet, testnet3, testnet4, signet, regtest, simnet.
    #[arg(long, default_value = "mainnet", value_name = "NAME")]
    pub network: String,
    /// Custom network magic as 8 hex digits (overrides --network), e.g. e3e1f3e8.
    #[arg(long, value_name = "HEX")]
    pub magic: Option<String>,
    /// Transport: v1 (plaintext), v2 (BIP324 encrypted, v1 refused) or auto (v2 when the remote
    /// speaks it, else v1).
    #[arg(long, value_enum, default_value = "auto", value_name = "v1|v2|auto")]
    pub transport: TransportArg,
    /// A comment for our user agent (BIP14), e.g. research; may be given more than once.
    #[arg(long = "user-agent-comment", value_name = "TEXT")]
    pub user_agent_comment: Vec<String>,
    /// One JSON object per line instead of readable text.
    #[arg(long)]
    pub json: bool,
}

/// Prints a usage error for `subcommand` on stderr; returns the usage exit code.
pub fn usage(subcommand: &str, e: &str) -> u8 {
    eprintln!("btcpeer {subcommand}: {e}");
    crate::EXIT_USAGE
}

impl PeerArgs {
    /// The network, or (printed) the usage error of `subcommand` and its exit code.
    pub fn network_for(&self, subcommand: &str) -> Result<Network, u8> {
        self.network().map_err(|e| usage(subcommand, &e))
    }

    /// The network named by `--magic` or `--network`.
    pub fn network(&self) -> Result<Network, String> {
        match &self.magic {
            Some(hex) => {
                let bytes = <[u8; 4]>::from_hex(hex).map_err(|e| format!("--magic {hex:?}: {e}"))?;
                Ok(Network::custom("custom", Magic::from_bytes(bytes), 0))
            }
            None => self.network.parse::<Network>().map_err(|e| format!("--network: {e}")),
        }
    }

    /// The peer configuration for `network` with the `--transport` policy; `handshake_timeout`
    /// replaces the default deadline.
    pub fn config(&self, network: Network, handshake_timeout: Option<Duration>) -> Result<PeerConfig, String> {
        self.builder(network, handshake_timeout).build().map_err(|e| e.to_string())
    }

    /// The configuration builder behind [`PeerArgs::config`], for callers that add to it.
    pub fn builder(&self, network: Network, handshake_timeout: Option<Duration>) -> PeerConfigBuilder {
        let mut builder = PeerConfig::builder(network).v2(self.transport.policy());
        for comment in &self.user_agent_comment {
            builder = builder.user_agent_comment(comment.as_str());
        }
        if let Some(timeout) = handshake_timeout {
            builder = builder.handshake_timeout(timeout);
        }
        builder
    }
}

/// Parses a number of seconds (fractions allowed) for clap.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a number of seconds"));
    }
    // More than ~30 years is as good as forever, and keeps every deadline computable.
    Duration::try_from_secs_f64(secs.min(1e9)).map_err(|e| format!("{s:?}: {e}"))
}

/// Parses a number of seconds that must be more than zero.
pub fn parse_positive_secs(s: &str) -> Result<Duration, String> {
    let d = parse_secs(s)?;
    if d.is_zero() {
        return Err("must be more than zero".to_string());
    }
    Ok(d)
}

/// Turns `HOST:PORT`, `IP:PORT`, `[IPv6]:PORT`, or a host or IP alone (then the network's default
/// port) into an address string that tokio can resolve.
pub fn parse_target(s: &str, default_port: u16) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty address".to_string());
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr.to_string());
    }
    let no_port = || {
        if default_port == 0 {
            Err(format!("{s:?} has no port, and a custom network has no default port; give HOST:PORT"))
        } else {
            Ok(default_port)
        }
    };
    let bare = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, no_port()?).to_string());
    }
    match s.rsplit_once(':') {
        Some((host, port)) => {
            let port: u16 = port.parse().map_err(|_| format!("{s:?}: {port:?} is not a port number"))?;
            if host.is_empty() || host.contains(':') || host.contains('[') {
                return Err(format!("{s:?} is not HOST:PORT"));
            }
            Ok(format!("{host}:{port}"))
        }
        None => Ok(format!("{s}:{}", no_port()?)),
    }
}

/// Prints events: JSON lines, or readable text. Every event is flushed at once.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    /// One JSON object per line.
    pub json: bool,
    /// Prefix readable lines with `[peer N]` (for `listen`, where peers interleave).
    pub peer_prefix: bool,
}

impl Output {
    /// Prints one event.
    pub fn emit<E: Event>(&self, event: &E) {
        let line = match (self.json, self.peer_prefix.then(|| event.peer()).flatten()) {
            (true, _) => json_line(event),
            (false, Some(peer)) => format!("[peer {peer}] {event}"),
            (false, None) => event.to_string(),
        };
        print_line(&line);
    }
}

/// Why a command failed: the exit code and the line for stderr.
pub(crate) type Failure = (u8, String);

/// The exit code for a peer that ended for `reason`: 3 for a timeout, 1 otherwise.
pub(crate) fn exit_code(reason: &DisconnectReason) -> u8 {
    if reason.is_timeout() { crate::EXIT_TIMEOUT } else { crate::EXIT_FAILURE }
}

/// A duration as `1.5s`, for messages.
pub(crate) fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// Binds a TCP listener to `addr` and reads the address it got (the port, when `addr` asked for
/// port 0); on failure prints one line for `command` on stderr and gives exit code 1.
pub(crate) async fn bind(command: &str, addr: &str) -> Result<(tokio::net::TcpListener, std::net::SocketAddr), u8> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        eprintln!("btcpeer {command}: cannot listen on {addr}: {e}");
        crate::EXIT_FAILURE
    })?;
    let bound = listener.local_addr().map_err(|e| {
        eprintln!("btcpeer {command}: cannot read the bound address: {e}");
        crate::EXIT_FAILURE
    })?;
    Ok((listener, bound))
}

/// A pong seen by the [`Reporter`].
#[derive(Clone, Copy, Debug)]
pub struct PongSeen {
    /// The pong's nonce.
    pub nonce: u64,
    /// The round trip the peer measured, when this pong answered its outstanding ping.
    pub rtt: Option<Duration>,
    /// When the pong was handled.
    pub at: Instant,
}

/// The handler of `connect` and `listen`: prints `handshake` and (optionally) `recv` and
/// `dropped` events (`PeerEvent`s, in the subcommand's event type `E`), and passes pongs and headers on to whoever
/// waits for them.
pub struct Reporter<E> {
    out: Output,
    /// The subcommand's event for a `PeerEvent`.
    wrap: fn(PeerEvent) -> E,
    recv: bool,
    pongs: Option<mpsc::UnboundedSender<PongSeen>>,
    headers: Option<mpsc::Sender<Vec<Header>>>,
}

impl<E> Reporter<E> {
    /// A reporter printing to `out`, each event wrapped by `wrap`; `recv` prints a `recv` event for
    /// every frame read; `pongs` receives every pong.
    pub fn new(
        out: Output,
        wrap: fn(PeerEvent) -> E,
        recv: bool,
        pongs: Option<mpsc::UnboundedSender<PongSeen>>,
    ) -> Reporter<E> {
        Reporter { out, wrap, recv, pongs, headers: None }
    }

    /// Also passes every `headers` message on to `headers`. The channel is bounded: a message that
    /// finds it full (the remote sent many batches nobody asked for) is dropped, and once the
    /// receiver is gone every message is.
    pub fn with_headers(mut self, headers: mpsc::Sender<Vec<Header>>) -> Reporter<E> {
        self.headers = Some(headers);
        self
    }
}

impl<E> Handler for Reporter<E>
where
    E: Event + 'static,
{
    fn on_handshake(&self, peer: &Peer, remote: &RemoteInfo) {
        self.out.emit(&(self.wrap)(PeerEvent::Handshake(Handshake::new(peer, remote))));
    }

    fn on_read(&self, peer: &Peer, event: &ReadEvent<'_>) {
        if !self.recv {
            return;
        }
        if let Some(command) = event.command {
            let (peer, command, size) = (peer.id(), command.as_str().to_string(), event.bytes);
            self.out.emit(&(self.wrap)(PeerEvent::Recv { peer, command, size }));
        } else if let Some(dropped) = event.dropped {
            // A frame Core would drop too (bad checksum, invalid command bytes): the peer carries on.
            let (peer, reason, size) = (peer.id(), dropped.to_string(), event.bytes);
            self.out.emit(&(self.wrap)(PeerEvent::Dropped { peer, reason, size }));
        }
    }

    fn on_pong(&self, peer: &Peer, nonce: u64) {
        let at = Instant::now();
        if let Some(tx) = &self.pongs {
            // The peer clears its outstanding ping only when this pong answered it.
            let stats = peer.stats();
            let rtt = if stats.outstanding_ping.is_none() { stats.last_ping_rtt } else { None };
            let _ = tx.send(PongSeen { nonce, rtt, at });
        }
    }

    fn on_headers(&self, _peer: &Peer, headers: Vec<Header>) {
        if let Some(tx) = &self.headers {
            // Never blocks the peer's reading task; see `with_headers`.
            let _ = tx.try_send(headers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_get_the_default_port_when_they_have_none() {
        assert_eq!(parse_target("127.0.0.1:18444", 8333).as_deref(), Ok("127.0.0.1:18444"));
        assert_eq!(parse_target("127.0.0.1", 8333).as_deref(), Ok("127.0.0.1:8333"));
        assert_eq!(parse_target("::1", 8333).as_deref(), Ok("[::1]:8333"));
        assert_eq!(parse_target("[::1]", 8333).as_deref(), Ok("[::1]:8333"));
        assert_eq!(parse_target("[::1]:1", 8333).as_deref(), Ok("[::1]:1"));
        assert_eq!(parse_target("example.org:8", 8333).as_deref(), Ok("example.org:8"));
        assert_eq!(parse_target("example.org", 8333).as_deref(), Ok("example.org:8333"));
        assert!(parse_target("example.org", 0).is_err());
        assert!(parse_target("example.org:x", 8333).is_err());
        assert!(parse_target("example.org:70000", 8333).is_err());
        assert!(parse_target(":8333", 8333).is_err());
        assert!(parse_target("", 8333).is_err());
    }

    #[test]
    fn seconds_parse_with_fractions_and_refuse_nonsense() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_secs("0"), Ok(Duration::ZERO));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("NaN").is_err());
        assert!(parse_secs("x").is_err());
        assert!(parse_secs("1e300").is_ok());
        assert!(parse_positive_secs("0").is_err());
    }
}
