//! An inbound listener: accepts peers, answers their pings (the peer does that itself), prints what
//! each one sends, and reports its statistics when it leaves.
//!
//! ```sh
//! cargo run -p btcpeer --example listener -- 127.0.0.1:18444 regtest
//! ```

use std::sync::Arc;

use btcpeer::network::Network;
use btcpeer::peer::{DisconnectReason, Handler, Peer, PeerConfig, RemoteInfo, V2Policy};
use btcpeer::wire::Message;
use bytes::Bytes;

struct Log;

impl Handler for Log {
    fn on_handshake(&self, peer: &Peer, remote: &RemoteInfo) {
        println!("[{}] {} connected over {}", peer.id(), remote.version.user_agent, remote.transport.as_str());
    }
    fn on_message(&self, peer: &Peer, message: Message, raw: Bytes) {
        println!("[{}] {} ({} bytes)", peer.id(), message.command(), raw.len());
    }
    fn on_disconnect(&self, peer: &Peer, reason: &DisconnectReason) {
        let s = peer.stats();
        println!("[{}] left: {reason} (sent {} B, received {} B)", peer.id(), s.bytes_sent, s.bytes_received);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18444".to_string());
    let network: Network = args.next().as_deref().unwrap_or("regtest").parse()?;
    // Accept v1 and v2 (BIP324) initiators alike.
    let config = PeerConfig::builder(network).v2(V2Policy::Prefer).user_agent("listener-example", "0.1").build()?;
    let handler: Arc<dyn Handler> = Arc::new(Log);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, from) = listener.accept().await?;
        let peer = Peer::inbound(config.clone(), from, handler.clone());
        peer.associate(stream).map_err(|e| e.to_string())?;
        // A peer lives while a handle to it does: this task holds it until it ends.
        tokio::spawn(async move { peer.wait_for_disconnect().await });
    }
}
