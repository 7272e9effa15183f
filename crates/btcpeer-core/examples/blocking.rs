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
//! told apart by their first bytes, as `btcpeer listen` does. The connections share one registry
//! of their handshakes' nonces, as `btcpeer listen`'s peers do: a remote `version` carrying one of
//! them is our own come back (a relay looping us to ourselves), and that connection ends with
//! `self_connection`. Runs until killed; SIGTERM exits 0.
//!
//! ```text
//! cargo run -p btcpeer-core --example blocking -- --listen 127.0.0.1:18444 --network regtest --transport auto
//! ```

use std::collections::HashSet;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use btcpeer_core::blocking::{BlockingError, BlockingPeer};
use btcpeer_core::network::Network;
use btcpeer_core::peer::{CoreConfig, Direction, Event, RemoteInfo};
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
    let nonces = Nonces::default();
    let mut next_id: u64 = 0;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        next_id = next_id.saturating_add(1);
        let (id, network, nonces) = (next_id, network.clone(), nonces.clone());
        std::thread::spawn(move || serve(id, stream, network, policy, &nonces));
    }
    Ok(())
}

/// The nonces of the listener's handshakes in flight, shared by its connections (Core:
/// `CConnman::CheckIncomingNonce` over its nodes' local nonces; btcpeer's `NonceRegistry`).
#[derive(Clone, Default)]
struct Nonces(Arc<Mutex<HashSet<u64>>>);

impl Nonces {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `nonce` until the returned entry is dropped (the handshake ended, either way).
    fn register(&self, nonce: u64) -> NonceEntry {
        self.lock().insert(nonce);
        NonceEntry { nonces: self.clone(), nonce }
    }

    fn contains(&self, nonce: u64) -> bool {
        self.lock().contains(&nonce)
    }
}

/// One handshake's nonce in the registry.
struct NonceEntry {
    nonces: Nonces,
    nonce: u64,
}

impl Drop for NonceEntry {
    fn drop(&mut self) {
        self.nonces.lock().remove(&self.nonce);
    }
}

/// One accepted connection, until it ends.
fn serve(id: u64, stream: TcpStream, network: Network, policy: TransportPolicy, nonces: &Nonces) {
    let remote = stream.peer_addr().map_or_else(|_| "unknown".to_string(), |a: SocketAddr| a.to_string());
    emit(format!(r#"{{"event":"accept","peer":{id},"addr":{}}}"#, json(&remote)));
    let on_handshake = |info: &RemoteInfo| {
        emit(format!(
            r#"{{"event":"handshake","peer":{id},"addr":{},"transport":"{}","user_agent":{},"version":{}}}"#,
            json(&remote),
            info.transport.as_str(),
            json(&info.version.user_agent),
            info.version.version
        ))
    };
    let reason = run_connection(stream, network, policy, nonces, on_handshake);
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

/// Runs one accepted connection with the library's defaults until it ends; returns why.
fn run_connection(
    stream: TcpStream,
    network: Network,
    policy: TransportPolicy,
    nonces: &Nonces,
    on_handshake: impl Fn(&RemoteInfo),
) -> BlockingError {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut config = CoreConfig::new(Direction::Inbound);
    // The remote's version waits for our check against the listener's registry.
    config.version_decision = true;
    let mut peer = match BlockingPeer::with_transport(stream, network, config, policy) {
        Ok(peer) => peer,
        Err(e) => return e,
    };
    let mut entry = Some(nonces.register(peer.core().nonce()));
    loop {
        // The core's own deadlines (handshake, idle, pong) end a silent connection; this one
        // only bounds each wait.
        match peer.next_event(Instant::now() + Duration::from_secs(3600)) {
            Ok(Event::Version(info)) => {
                let now = Instant::now();
                if nonces.contains(info.version.nonce) {
                    peer.core().refuse_self_connection();
                } else {
                    peer.core().decide_version(Ok(()), now, SystemTime::now());
                }
            }
            Ok(Event::Handshake(info)) => {
                entry = None;
                on_handshake(&info);
            }
            Ok(_) | Err(BlockingError::TimedOut) => {}
            Err(e) => {
                drop(entry);
                return e;
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use std::io::Read;

    use btcpeer_core::peer::{DisconnectReason, PeerCore};
    use btcpeer_core::wire::frame::encode_frame;

    use super::*;

    /// One whole frame read from `stream`: its 24-byte header and its payload, as they came.
    fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
        let mut frame = vec![0u8; 24];
        stream.read_exact(&mut frame).unwrap();
        let len = u32::from_le_bytes(frame[16..20].try_into().unwrap()) as usize;
        frame.resize(24 + len, 0);
        stream.read_exact(&mut frame[24..]).unwrap();
        frame
    }

    /// The listener's connections share one nonce registry: a relay that takes the version the
    /// listener sent on one connection and hands it in on another is caught as a self-connection
    /// (without the registry the second connection answered it and went on).
    #[test]
    fn the_listeners_connections_share_one_nonce_registry_and_refuse_their_own_version() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let nonces = Nonces::default();
        let serving = {
            let nonces = nonces.clone();
            std::thread::spawn(move || {
                (0..2)
                    .map(|_| {
                        let (stream, _) = listener.accept().unwrap();
                        let nonces = nonces.clone();
                        std::thread::spawn(move || {
                            run_connection(stream, Network::REGTEST, TransportPolicy::V1, &nonces, |_| {})
                        })
                    })
                    .collect::<Vec<_>>()
            })
        };
        // Connection A: a remote's version, then the listener's own version back.
        let now = Instant::now();
        let mut remote = PeerCore::new(CoreConfig::new(Direction::Outbound), now, SystemTime::now());
        let mut ours = bytes::BytesMut::new();
        let version = remote.poll_transmit(now).unwrap();
        encode_frame(&version, &Network::REGTEST, &mut ours).unwrap();
        let mut a = TcpStream::connect(addr).unwrap();
        a.set_read_timeout(Some(STEP)).unwrap();
        a.write_all(&ours).unwrap();
        let listeners_version = read_frame(&mut a);
        assert_eq!(&listeners_version[4..11], b"version");
        // Connection B: A's version from the listener, handed back (A's handshake still in flight).
        let mut b = TcpStream::connect(addr).unwrap();
        b.set_read_timeout(Some(STEP)).unwrap();
        b.write_all(&listeners_version).unwrap();
        let mut rest = Vec::new();
        let _ = b.read_to_end(&mut rest);
        assert!(rest.is_empty(), "nothing answered to our own version: {rest:02x?}");
        drop((a, b));
        let ends: Vec<BlockingError> = serving.join().unwrap().into_iter().map(|t| t.join().unwrap()).collect();
        assert!(
            ends.iter().any(|e| matches!(e, BlockingError::Disconnected(DisconnectReason::SelfConnection))),
            "{ends:?}"
        );
        assert!(nonces.lock().is_empty(), "every entry left with its handshake");
    }
}
