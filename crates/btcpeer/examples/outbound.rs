//! An outbound peer that prints what it receives.
//!
//! ```sh
//! cargo run -p btcpeer --example outbound -- 127.0.0.1:18444 regtest 30
//! ```
//! Arguments: the peer's address, the network (default mainnet), and how many seconds to listen
//! (default 30).

use std::time::Duration;

use btcpeer::network::Network;
use btcpeer::peer::{Handler, Peer, PeerConfig, ReadEvent};
use btcpeer::wire::Message;
use bytes::Bytes;

struct Printer;

impl Handler for Printer {
    fn on_read(&self, _peer: &Peer, event: &ReadEvent<'_>) {
        if let Some(command) = event.command {
            println!("recv {command:<12} {:>8} bytes", event.bytes);
        }
    }

    fn on_message(&self, _peer: &Peer, message: Message, _raw: Bytes) {
        match message {
            Message::Inv(items) => println!("  inv of {} items, first {:?}", items.len(), items.first()),
            Message::Addr(a) => println!("  {} addresses", a.len()),
            Message::AddrV2(a) => println!("  {} addrv2 addresses", a.len()),
            Message::Headers(h) => println!("  {} headers", h.len()),
            other => println!("  {}", other.command()),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8333".to_string());
    let network: Network = args.next().as_deref().unwrap_or("mainnet").parse()?;
    let secs: u64 = args.next().as_deref().unwrap_or("30").parse()?;

    let config = PeerConfig::builder(network).user_agent("outbound-example", "0.1").build()?;
    let stream = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(&addr)).await??;
    let peer = Peer::outbound(config, addr.as_str(), Printer);
    peer.associate(stream).map_err(|e| e.to_string())?;
    let remote = peer.handshake().await?;
    println!(
        "connected: {} version {} (negotiated {}), height {}",
        remote.version.user_agent, remote.version.version, remote.negotiated_version, remote.version.start_height
    );
    // Ask for addresses; whatever else the remote sends is printed too.
    let _ = peer.queue_message(&Message::GetAddr)?;
    tokio::select! {
        reason = peer.wait_for_disconnect() => println!("disconnected: {reason}"),
        () = tokio::time::sleep(Duration::from_secs(secs)) => {
            peer.disconnect();
            peer.wait_for_disconnect().await;
        }
    }
    let stats = peer.stats();
    println!("sent {} bytes, received {} bytes", stats.bytes_sent, stats.bytes_received);
    Ok(())
}
