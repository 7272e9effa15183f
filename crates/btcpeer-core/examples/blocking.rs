//! The core driven over a blocking `std::net::TcpStream`, with no async runtime: a handshake, one
//! ping, the remote's user agent and the round trip.
//!
//! ```text
//! cargo run -p btcpeer-core --example blocking -- 127.0.0.1:18444 --network regtest
//! ```
//!
//! Exits 0 after the pong, 1 on any failure (with the reason on stderr), 2 on bad arguments.

use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use btcpeer_core::blocking::BlockingPeer;
use btcpeer_core::network::Network;
use btcpeer_core::peer::{CoreConfig, Direction};

/// How long each step (connect, handshake, ping) may take.
const STEP: Duration = Duration::from_secs(15);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, network) = match args.as_slice() {
        [addr] => (addr, "mainnet"),
        [addr, flag, name] if flag == "--network" => (addr, name.as_str()),
        _ => {
            eprintln!("usage: blocking HOST:PORT [--network NAME]");
            return ExitCode::from(2);
        }
    };
    let network: Network = match network.parse() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("bad network {network}: {e}");
            return ExitCode::from(2);
        }
    };
    match run(addr, network) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(addr: &str, network: Network) -> Result<(), Box<dyn std::error::Error>> {
    let socket = addr.to_socket_addrs()?.next().ok_or("no address")?;
    let stream = TcpStream::connect_timeout(&socket, STEP)?;
    stream.set_nodelay(true)?;
    let mut peer = BlockingPeer::new(stream, network, CoreConfig::new(Direction::Outbound));
    let remote = peer.handshake(STEP)?;
    println!("user agent: {}", remote.version.user_agent);
    println!("version: {} (negotiated {})", remote.version.version, remote.negotiated_version);
    let rtt = peer.ping(STEP)?;
    println!("round trip: {:.3} ms", rtt.as_secs_f64() * 1e3);
    Ok(())
}
