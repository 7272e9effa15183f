//! Inventory relay between two peers over 127.0.0.1: one side announces transactions through the
//! trickle (randomised batches), the other receives them and announces one back, which known-
//! inventory suppression keeps from echoing. Runs on its own, no network needed.
//!
//! ```sh
//! cargo run -p btcpeer --example relay
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use btcpeer::bitcoin::hashes::Hash;
use btcpeer::bitcoin::{Txid, Wtxid};
use btcpeer::network::Network;
use btcpeer::peer::{Handler, NonceRegistry, NoopHandler, Peer, PeerConfig};
use btcpeer::wire::Inventory;
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Announced(AtomicUsize);

impl Handler for Announced {
    fn on_inv(&self, peer: &Peer, inv: Vec<Inventory>) {
        let total = self.0.fetch_add(inv.len(), Ordering::Relaxed) + inv.len();
        println!("peer {} received an inv of {} entries ({} so far)", peer.id(), inv.len(), total);
        // Relaying the first item back is suppressed: the sender is known to have it.
        if let Some(first) = inv.first() {
            assert!(!peer.queue_inventory(*first), "known inventory is not announced back");
        }
    }
}

fn config() -> Result<PeerConfig, Box<dyn std::error::Error>> {
    // Each side is its own node (own nonce registry); a short trickle so the example is quick.
    Ok(PeerConfig::builder(Network::REGTEST)
        .nonce_registry(NonceRegistry::new())
        .trickle_interval(Duration::from_millis(200), Duration::from_millis(200))
        .build()?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let received = Arc::new(Announced::default());
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (server, from) = server?;
    let sender = Peer::outbound(config()?, addr, NoopHandler);
    let receiver = Peer::inbound(config()?, from, received.clone());
    sender.associate(client?).map_err(|e| e.to_string())?;
    receiver.associate(server).map_err(|e| e.to_string())?;
    sender.handshake().await?;
    receiver.handshake().await?;

    for n in 0..2_500u32 {
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&n.to_le_bytes());
        sender.queue_transaction(Txid::from_byte_array(h), Wtxid::from_byte_array(h));
    }
    println!("queued 2,500 transactions for the trickle");
    tokio::time::timeout(Duration::from_secs(10), async {
        while received.0.load(Ordering::Relaxed) < 2_500 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await?;
    let s = sender.stats();
    println!(
        "all 2,500 announced in {} inv messages; {} entries known to the receiver",
        s.per_command.get("inv").map_or(0, |c| c.messages_sent),
        receiver.stats().known_inventory
    );
    sender.disconnect();
    receiver.wait_for_disconnect().await;
    Ok(())
}
