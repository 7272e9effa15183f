//! The core driven over blocking `std::net` sockets, with no async runtime.
//!
//! Connect: a handshake (v1, or BIP324 v2 with `--v2`), one ping, the remote's user agent and the
//! round trip.
//!
//! ```text
//! cargo run -p btcpeer-core --example blocking -- 127.0.0.1:18444 --network regtest [--v2]
//! ```
//!
//! Exits 0 after the pong, 1 on any failure (with the reason on stderr), 2 on bad arguments.
//!
//! Listen: accepts connections, a thread each, each a `PeerCore` with the library's defaults
//! (pings answered by the core), and prints one JSON line per event on stdout: `listening` first,
//! then `accept`, `handshake` (with `transport` and `user_agent`) and `disconnect` (with `reason`
//! and `kind`) for each connection. With `--transport auto` (the default) v1 and v2 initiators are
//! told apart by their first bytes, as `btcpeer listen` does. Runs until killed; SIGTERM exits 0.
//!
//! ```text
//! cargo run -p btcpeer-core --example blocking -- --listen 127.0.0.1:18444 --network regtest --transport auto
//! ```

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use btcpeer_core::blocking::{BlockingError, BlockingPeer};
use btcpeer_core::network::Network;
use btcpeer_core::peer::{CoreConfig, Direction, Event};
use btcpeer_core::transport::framing::TransportPolicy;

/// How long each step (connect, handshake, ping) may take.
const STEP: Duration = Duration::from_secs(15);
/// How long a write to a listener's connection may block (a client that never reads its pongs).
const WRITE_TIMEOUT: Duration = Duration::from_secs(20);

const USAGE: &str = "usage: blocking HOST:PORT [--network NAME] [--v2]\n       \
                     blocking --listen ADDR [--network NAME] [--transport v1|v2|auto]";

/// What the command line asks for.
enum Mode {
    Connect { addr: String, v2: bool },
    Listen { addr: String, policy: TransportPolicy },
}

fn parse(args: &[String]) -> Result<(Mode, Network), String> {
    let mut network = "mainnet".to_string();
    let (mut target, mut listen, mut v2, mut policy) = (None, None, false, TransportPolicy::Auto);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--network" => network = value()?,
            "--v2" => v2 = true,
            "--listen" => listen = Some(value()?),
            "--transport" => {
                policy = match value()?.as_str() {
                    "v1" => TransportPolicy::V1,
                    "v2" => TransportPolicy::V2,
                    "auto" => TransportPolicy::Auto,
                    other => return Err(format!("unknown transport {other}")),
                }
            }
            other if !other.starts_with("--") && target.is_none() => target = Some(other.to_string()),
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    let network: Network = network.parse().map_err(|e| format!("bad network {network}: {e}"))?;
    let mode = match (target, listen) {
        (Some(addr), None) => Mode::Connect { addr, v2 },
        (None, Some(addr)) if !v2 => Mode::Listen { addr, policy },
        _ => return Err("give HOST:PORT to connect, or --listen ADDR".into()),
    };
    Ok((mode, network))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, network) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match mode {
        Mode::Connect { addr, v2 } => connect(&addr, network, v2),
        Mode::Listen { addr, policy } => listen(&addr, network, policy),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn connect(addr: &str, network: Network, v2: bool) -> Result<(), Box<dyn std::error::Error>> {
    let socket = addr.to_socket_addrs()?.next().ok_or("no address")?;
    let stream = TcpStream::connect_timeout(&socket, STEP)?;
    stream.set_nodelay(true)?;
    let policy = if v2 { TransportPolicy::V2 } else { TransportPolicy::V1 };
    let mut peer = BlockingPeer::with_transport(stream, network, CoreConfig::new(Direction::Outbound), policy)?;
    let remote = peer.handshake(STEP)?;
    println!("user agent: {}", remote.version.user_agent);
    println!("version: {} (negotiated {})", remote.version.version, remote.negotiated_version);
    println!("transport: {}", remote.transport.as_str());
    let rtt = peer.ping(STEP)?;
    println!("round trip: {:.3} ms", rtt.as_secs_f64() * 1e3);
    Ok(())
}

/// `s` as a JSON string literal.
fn json(s: &str) -> String {
    let mut out = String::with_capacity(s.len().saturating_add(2));
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Prints one JSON line (one write, so lines from different threads do not mix).
fn emit(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn listen(addr: &str, network: Network, policy: TransportPolicy) -> Result<(), Box<dyn std::error::Error>> {
    exit_on_sigterm();
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    emit(format!(r#"{{"event":"listening","addr":{},"network":{}}}"#, json(&local.to_string()), json(network.name())));
    let mut next_id: u64 = 0;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        next_id = next_id.saturating_add(1);
        let (id, network) = (next_id, network.clone());
        std::thread::spawn(move || serve(id, stream, network, policy));
    }
    Ok(())
}

/// One accepted connection, until it ends.
fn serve(id: u64, stream: TcpStream, network: Network, policy: TransportPolicy) {
    let remote = stream.peer_addr().map_or_else(|_| "unknown".to_string(), |a: SocketAddr| a.to_string());
    emit(format!(r#"{{"event":"accept","peer":{id},"addr":{}}}"#, json(&remote)));
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let peer = BlockingPeer::with_transport(stream, network, CoreConfig::new(Direction::Inbound), policy);
    let reason = match peer {
        Err(e) => e,
        Ok(mut peer) => loop {
            // The core's own deadlines (handshake, idle, pong) end a silent connection; this one
            // only bounds each wait.
            match peer.next_event(Instant::now() + Duration::from_secs(3600)) {
                Ok(Event::Handshake(info)) => emit(format!(
                    r#"{{"event":"handshake","peer":{id},"addr":{},"transport":"{}","user_agent":{},"version":{}}}"#,
                    json(&remote),
                    info.transport.as_str(),
                    json(&info.version.user_agent),
                    info.version.version
                )),
                Ok(_) | Err(BlockingError::TimedOut) => {}
                Err(e) => break e,
            }
        },
    };
    let (text, kind) = match &reason {
        BlockingError::Disconnected(r) => (r.to_string(), r.kind()),
        other => (other.to_string(), "io"),
    };
    emit(format!(
        r#"{{"event":"disconnect","peer":{id},"addr":{},"reason":{},"kind":"{kind}"}}"#,
        json(&remote),
        json(&text)
    ));
}

/// SIGTERM ends the listener with exit status 0 (the default action would report the signal).
fn exit_on_sigterm() {
    extern "C" fn on_term(_: libc::c_int) {
        // Only async-signal-safe calls here.
        unsafe { libc::_exit(0) }
    }
    let handler: extern "C" fn(libc::c_int) = on_term;
    unsafe {
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}
