//! A synthetic Bitcoin network on loopback, to try a crawler on: `N` btcpeer nodes (default 500),
//! each on its own address from `127.2.0.1` up (all of 127/8 is loopback on Linux), on one port
//! (default 18444), regtest. Each answers `getaddr` with the next node (so all are reachable from
//! the first), four others, an address where nothing listens and a port that is not Bitcoin's.
//! Every third node accepts BIP324 v2; the rest speak v1 only. Runs until interrupted.
//!
//! ```sh
//! cargo run -p btcpeer --example synthetic_network -- 500 18444 &
//! btcpeer crawl 127.2.0.1:18444 --network regtest
//! ```

use std::net::Ipv4Addr;
use std::sync::Arc;

use btcpeer::bitcoin::p2p::ServiceFlags;
use btcpeer::bitcoin::p2p::address::{AddrV2, AddrV2Message};
use btcpeer::network::Network;
use btcpeer::peer::{Handler, NonceRegistry, Peer, PeerConfig, V2Policy};

/// Answers `getaddr` with its list.
struct Gossip(Vec<AddrV2Message>);

impl Handler for Gossip {
    fn on_getaddr(&self, peer: &Peer) {
        let _ = peer.push_addr(&self.0);
    }
}

/// Node `i`'s address: 127.2.x.y, 250 to a /24.
fn ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 2 + (i / 62_500) as u8, (i / 250 % 250) as u8, 1 + (i % 250) as u8)
}

fn entry(addr: Ipv4Addr, port: u16, services: ServiceFlags) -> AddrV2Message {
    AddrV2Message { time: 1_700_000_000, services, addr: AddrV2::Ipv4(addr), port }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let nodes: usize = args.next().map_or(Ok(500), |a| a.parse())?;
    let port: u16 = args.next().map_or(Ok(18_444), |a| a.parse())?;
    if nodes == 0 || nodes > 1_000_000 {
        return Err("between 1 and 1,000,000 nodes".into());
    }
    let registry = NonceRegistry::new();
    let v1 = PeerConfig::builder(Network::REGTEST).nonce_registry(registry.clone()).build()?;
    let v2 = PeerConfig::builder(Network::REGTEST)
        .nonce_registry(registry)
        .v2(V2Policy::Prefer)
        .services(ServiceFlags::NETWORK | ServiceFlags::P2P_V2)
        .user_agent("synthetic-v2", "0.1.0")
        .build()?;
    let services =
        |n: usize| if n % 3 == 0 { ServiceFlags::NETWORK | ServiceFlags::P2P_V2 } else { ServiceFlags::NETWORK };
    for i in 0..nodes {
        let listener = tokio::net::TcpListener::bind((ip(i), port)).await?;
        let mut list = vec![entry(ip((i + 1) % nodes), port, services((i + 1) % nodes))];
        for k in 1..=4 {
            let n = (i * 7 + k * 97) % nodes;
            list.push(entry(ip(n), port, services(n)));
        }
        // Nothing listens on 127.1.255.y, nor on port 9 of a node.
        list.push(entry(Ipv4Addr::new(127, 1, 255, 1 + (i % 20) as u8), port, ServiceFlags::NETWORK));
        list.push(entry(ip(i), 9, ServiceFlags::NETWORK));
        let (config, gossip) = (if i % 3 == 0 { v2.clone() } else { v1.clone() }, Arc::new(Gossip(list)));
        tokio::spawn(async move {
            while let Ok((stream, from)) = listener.accept().await {
                let peer = Peer::inbound(config.clone(), from, gossip.clone());
                if peer.associate(stream).is_ok() {
                    tokio::spawn(async move { peer.wait_for_disconnect().await });
                }
            }
        });
    }
    println!("{nodes} nodes from {}:{port} to {}:{port}; stop it with Ctrl-C", ip(0), ip(nodes - 1));
    std::future::pending::<()>().await;
    Ok(())
}
