//! A synthetic chain and a peer handler that serves it, for demos, tests and benchmarks
//! (feature `testing`).
//!
//! [`SyntheticChain`] holds real blocks on top of a network's genesis block: correct merkle roots,
//! (on regtest's easy target) valid proof of work, and each block's real BIP158 basic filter and
//! BIP157 filter header. [`ChainBuilder`] mines one with payments to scripts a test watches and
//! spends of them, or a fork of another chain. [`ChainServer`] serves a chain as a full node with
//! compact filters does — or lies about it ([`Misbehaviour`]) — and [`serve`] accepts connections
//! for it on a loopback port.
//!
//! ```
//! use btcpeer::testing::SyntheticChain;
//!
//! let chain = SyntheticChain::new(bitcoin::Network::Regtest, 10);
//! assert_eq!(chain.len(), 10);
//! let after_genesis = chain.headers_after(&[chain.hash(0)], bitcoin::BlockHash::from_byte_array([0; 32]), 2_000);
//! assert_eq!(after_genesis.len(), 9);
//! assert!(chain.block(5).check_merkle_root());
//! # use bitcoin::hashes::Hash;
//! ```

mod chain;
mod server;

pub use chain::{ChainBuilder, SyntheticChain, big_block};
pub use server::{ChainServer, Misbehaviour, ServedRequests};

use std::net::SocketAddr;

use bitcoin::p2p::ServiceFlags;

use crate::network::Network;
use crate::peer::{NonceRegistry, Peer, PeerConfig, V2Policy};

/// Accepts connections on `listen` (such as `127.0.0.1:0`) and serves each with a clone of
/// `server`, as a node of `network` with `NODE_NETWORK | NODE_WITNESS | NODE_COMPACT_FILTERS`
/// that accepts v2 and v1 alike. Returns the bound address and the accepting task (abort it to
/// stop accepting; the connections end when their remotes hang up).
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use std::sync::Arc;
/// use btcpeer::network::Network;
/// use btcpeer::testing::{ChainServer, SyntheticChain, serve};
///
/// let chain = Arc::new(SyntheticChain::new(bitcoin::Network::Regtest, 100));
/// let (addr, task) = serve("127.0.0.1:0", Network::REGTEST, ChainServer::new(chain)).await?;
/// println!("serving on {addr}");
/// task.abort();
/// # Ok(()) }
/// ```
pub async fn serve(
    listen: &str,
    network: Network,
    server: ChainServer,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let config = PeerConfig::builder(network)
        .services(ServiceFlags::NETWORK | ServiceFlags::WITNESS | ServiceFlags::COMPACT_FILTERS)
        .v2(V2Policy::Prefer)
        .nonce_registry(NonceRegistry::new())
        .build()
        .map_err(std::io::Error::other)?;
    serve_with(listen, config, server).await
}

/// [`serve`] with a configuration of the caller's (other services, another transport policy).
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use btcpeer::network::Network;
/// use btcpeer::peer::{NonceRegistry, PeerConfig};
/// use btcpeer::testing::{ChainServer, SyntheticChain, serve_with};
///
/// // A node that does not advertise compact filters.
/// let config = PeerConfig::builder(Network::REGTEST).nonce_registry(NonceRegistry::new()).build()?;
/// let chain = Arc::new(SyntheticChain::new(bitcoin::Network::Regtest, 100));
/// let (addr, task) = serve_with("127.0.0.1:0", config, ChainServer::new(chain)).await?;
/// # Ok(()) }
/// ```
pub async fn serve_with(
    listen: &str,
    config: PeerConfig,
    server: ChainServer,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut peers: Vec<Peer> = Vec::new();
        loop {
            let Ok((stream, from)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            peers.retain(Peer::is_connected);
            let peer = Peer::inbound(config.clone(), from, server.clone());
            if peer.associate(stream).is_ok() {
                peers.push(peer);
            }
        }
    });
    Ok((addr, task))
}
