//! A BIP324 (v2) connection between two peers over 127.0.0.1: the encrypted handshake, then pings
//! through the encrypted packets. Runs on its own, no network needed.
//!
//! ```sh
//! cargo run -p btcpeer --example v2
//! ```

use std::time::Duration;

use btcpeer::network::Network;
use btcpeer::peer::{NonceRegistry, NoopHandler, Peer, PeerConfig, V2Policy};
use btcpeer::wire::Message;
use tokio::net::{TcpListener, TcpStream};

fn config(policy: V2Policy) -> Result<PeerConfig, Box<dyn std::error::Error>> {
    Ok(PeerConfig::builder(Network::REGTEST).nonce_registry(NonceRegistry::new()).v2(policy).build()?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (server, from) = server?;
    // The initiator insists on v2; the responder accepts v2 and v1 alike.
    let initiator = Peer::outbound(config(V2Policy::Require)?, addr, NoopHandler);
    let responder = Peer::inbound(config(V2Policy::Prefer)?, from, NoopHandler);
    initiator.associate(client?).map_err(|e| e.to_string())?;
    responder.associate(server).map_err(|e| e.to_string())?;
    let remote = initiator.handshake().await?;
    responder.handshake().await?;
    println!("handshake over {} with {}", remote.transport.as_str(), remote.version.user_agent);

    for n in 0..5 {
        initiator.queue_message(&Message::Ping(n))?.await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Some(rtt) = initiator.stats().last_ping_rtt {
            println!("ping {n}: {} µs", rtt.as_micros());
        }
    }
    let s = initiator.stats();
    println!("{} bytes sent, {} received, all encrypted ({})", s.bytes_sent, s.bytes_received, s.transport.as_str());
    initiator.disconnect();
    responder.wait_for_disconnect().await;
    Ok(())
}
