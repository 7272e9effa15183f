//! # btcpeer
//!
//! A complete, concurrency-safe Bitcoin peer-to-peer *peer*. The application dials or accepts a
//! connection and hands btcpeer the stream; btcpeer speaks the wire protocol on it (v1, or BIP324 v2),
//! performs the version handshake with feature negotiation, keeps the link alive, queues outbound
//! messages with a completion for each, trickles inventory while avoiding what the remote already
//! knows, and hands every inbound message to the application.
//!
//! ## Two layers
//!
//! ```text
//!  socket ──► [btcpeer: one tokio task per peer] ──bytes──► btcpeer-core: transport ──frames──► rules,
//!  socket ◄── [         queue + completions    ] ◄─bytes─── (v1 / BIP324)           ◄─messages─ handshake,
//!             [ Peer handle, Handler / channel ] ◄─────────────── events ──────────────────── liveness,
//!             [ tokio timers                   ] ──now──► deadlines ◄──next deadline───────── inventory
//! ```
//!
//! The protocol lives in the runtime-free core (the crate `btcpeer-core`): its transports and the peer's
//! rules are state machines taking bytes, frames and time and giving bytes, events and deadlines;
//! the per-connection protocol state is its `ProtocolState`, which this crate keeps under each
//! peer's one lock (as quinn keeps `quinn-proto`'s connection). This crate adds what needs a
//! runtime: the task that reads and writes the stream, the outbound queue with a completion per
//! message, the [`Peer`](peer::Peer) handle, handlers and channels, SOCKS5, and `tracing` spans.
//! The core also drives a blocking `std::net::TcpStream` ([`core::blocking`]) and, with the `sim`
//! feature, a deterministic simulator (`core::sim`).
//!
//! ## Modules
//!
//! - [`peer`]: the peer — [`Peer`](peer::Peer), its [`PeerConfig`](peer::PeerConfig), the
//!   [`Handler`](peer::Handler) trait (or a channel of [`PeerEvent`](peer::PeerEvent)s), completions,
//!   statistics and disconnect reasons.
//! - [`crawl`]: a crawler over the network from seeds, into an address book.
//! - [`core`]: the parts of the runtime-free core (`btcpeer-core`) not offered elsewhere: the
//!   address book, the light client's chain logic, the node's policy, files, the blocking driver,
//!   the simulator, the peer's state machine.
//! - [`wire`]: every message Bitcoin Core speaks, decoded to typed values and encoded back
//!   byte-for-byte, with the protocol's limits enforced before allocation; v1 frames.
//! - [`transport`]: byte streams to frames and back: the v1 codec, BIP324 v2 and both as one
//!   state machine (`framing`).
//! - [`network`]: built-in networks and custom ones (magic, port, payload limit).
//! - `socks` (feature `socks`): dialing through a SOCKS5 proxy, `.onion` names included.
//! - `testing` (feature `testing`): a synthetic chain and a handler that serves it.
//!
//! Consensus types come from rust-bitcoin 0.32, re-exported as [`bitcoin`], so applications use the
//! same version.
//!
//! ## Public paths
//!
//! Every item has one path in this crate; the core's items are re-exported where an application
//! looks for them, not a second time under [`core`].
//!
//! | Area | Path |
//! |------|------|
//! | Consensus types (rust-bitcoin) | [`btcpeer::bitcoin`](bitcoin) |
//! | Messages, v1 frames | [`btcpeer::wire`](wire) |
//! | Networks | [`btcpeer::network`](network) |
//! | v1 codec, BIP324 packets and ciphers, bytes ⇄ frames | [`btcpeer::transport::{v1, v2, v2_cipher, framing}`](transport) |
//! | The BIP324 handshake (state machine and async) | [`btcpeer::transport::v2_handshake`](transport::v2_handshake) |
//! | The tokio peer, and the core's types it shows (`Direction`, `DisconnectReason`, `RemoteInfo`, `Transport`, `KnownInventory`, `CommandStats`, …) | [`btcpeer::peer`](peer) |
//! | The tokio node, and the core's types it shows (`ConnId`, `ConnKind`, `Counts`, `NodeReason`, `NodeSettings`, `Refusal`) | [`btcpeer::node`](node) |
//! | Crawler, light client | [`btcpeer::crawl`](crawl), [`btcpeer::light`](light) |
//! | The peer's sans-IO state machine (`PeerCore`, `CoreConfig`, `Event`, `Timeouts`, …) | [`btcpeer::core::peer`](core::peer) |
//! | The node's sans-IO policy (`NodeCore`), bans, eviction | [`btcpeer::core::node`](core::node) |
//! | Address book (`AddrBook`, `Endpoint`) | [`btcpeer::core::addrbook`](core::addrbook) |
//! | Header and filter chains, sync planner | [`btcpeer::core::chain`](core::chain) |
//! | File framing, atomic writes | [`btcpeer::core::persist`](core::persist) |
//! | Blocking driver over `std::net::TcpStream` | [`btcpeer::core::blocking`](core::blocking) |
//! | Simulator (feature `sim`) | `btcpeer::core::sim` |
//! | SOCKS5 (feature `socks`), synthetic chain server (feature `testing`) | `btcpeer::socks`, `btcpeer::testing` |
//!
//! ## Example: two peers, a handshake, a message and its answer
//!
//! Any `AsyncRead + AsyncWrite` stream will do; here an in-memory pipe stands in for a TCP connection.
//!
//! ```
//! use btcpeer::network::Network;
//! use btcpeer::peer::{Handler, NonceRegistry, NoopHandler, Peer, PeerConfig, SendOutcome};
//! use btcpeer::wire::{Inventory, Message};
//! use btcpeer::bitcoin::{hashes::Hash, BlockHash};
//!
//! /// The application's side: count the announcements it receives (pings are answered for it).
//! struct Announcements(tokio::sync::mpsc::UnboundedSender<usize>);
//!
//! impl Handler for Announcements {
//!     fn on_inv(&self, _peer: &Peer, inv: Vec<Inventory>) {
//!         let _ = self.0.send(inv.len());
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Two nodes in one process: each gets its own nonce registry (self-connection detection).
//! let config = || PeerConfig::builder(Network::REGTEST).nonce_registry(NonceRegistry::new()).build();
//! let (a, b) = tokio::io::duplex(64 * 1024);
//! let (tx, mut announced) = tokio::sync::mpsc::unbounded_channel();
//!
//! let outbound = Peer::outbound(config()?, "127.0.0.1:18444", NoopHandler);
//! let inbound = Peer::inbound(config()?, "127.0.0.1:50000", Announcements(tx));
//! outbound.associate(a).map_err(|e| e.to_string())?;
//! inbound.associate(b).map_err(|e| e.to_string())?;
//!
//! // The handshake: version, wtxidrelay, sendaddrv2, verack, in both directions.
//! let remote = outbound.handshake().await?;
//! assert_eq!(remote.negotiated_version, 70016);
//!
//! // Blocks are announced at once; the completion resolves when the bytes were written.
//! let inv = Message::Inv(vec![Inventory::Block(BlockHash::all_zeros())]);
//! assert_eq!(outbound.queue_message(&inv)?.await, SendOutcome::Sent);
//! assert_eq!(announced.recv().await, Some(1));
//!
//! // Ending one side ends the other; every task is gone when these return.
//! outbound.disconnect();
//! outbound.wait_for_disconnect().await;
//! println!("inbound ended: {}", inbound.wait_for_disconnect().await);
//! # Ok(()) }
//! ```
//!
//! ## Cookbook
//!
//! Each recipe runs here against the crate's own synthetic chain server (feature `testing`) over an
//! in-memory pipe; against a real node, dial with [`Peer::connect`](peer::Peer::connect) instead.
//!
//! ```
//! # use std::sync::Arc;
//! # use btcpeer::network::Network;
//! # use btcpeer::peer::{NoopHandler, Peer, PeerConfig, NonceRegistry};
//! # use btcpeer::bitcoin::p2p::ServiceFlags;
//! # use btcpeer::testing::{ChainServer, SyntheticChain};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let chain = Arc::new(SyntheticChain::new(btcpeer::bitcoin::Network::Regtest, 4_500));
//! # let cfg = |s| PeerConfig::builder(Network::REGTEST).services(s).nonce_registry(NonceRegistry::new()).build();
//! # let (a, b) = tokio::io::duplex(1 << 20);
//! # let server = Peer::inbound(cfg(ServiceFlags::NETWORK | ServiceFlags::WITNESS | ServiceFlags::COMPACT_FILTERS)?, "127.0.0.1:50000", ChainServer::new(chain.clone()));
//! # server.associate(b).map_err(|e| e.to_string())?;
//! # let peer = Peer::outbound(cfg(ServiceFlags::NONE)?, "127.0.0.1:18444", NoopHandler);
//! # peer.associate(a).map_err(|e| e.to_string())?;
//! use btcpeer::bitcoin::{block::Header, BlockHash, hashes::Hash};
//!
//! // An SPV headers sync: ask for headers after our tip until the remote has no more.
//! let genesis = Network::REGTEST.genesis_hash().expect("a built-in network");
//! let mut chain_of_headers: Vec<Header> = Vec::new();
//! loop {
//!     let tip = chain_of_headers.last().map_or(genesis, |h| h.block_hash());
//!     let batch = peer.get_headers(&[tip], BlockHash::all_zeros()).await?;
//!     if batch.is_empty() {
//!         break;
//!     }
//!     // Each header must follow the one before it.
//!     assert!(batch.windows(2).all(|w| w[1].prev_blockhash == w[0].block_hash()));
//!     assert_eq!(batch[0].prev_blockhash, tip);
//!     chain_of_headers.extend(batch);
//! }
//! assert_eq!(chain_of_headers.len(), 4_499);
//!
//! // A block, with its merkle root checked against its header.
//! let block = peer.get_block(chain_of_headers[99].block_hash()).await?;
//! assert!(block.check_merkle_root());
//!
//! // BIP157 filters (the remote signals NODE_COMPACT_FILTERS), a full range at a time: 1,000
//! // blocks, the most one request may cover. With the headers in hand, each filter is checked to
//! // be its block's, in order; a range comes whole or not at all. (`chain_of_headers[k]` is the
//! // header at height k + 1.)
//! for (i, range) in chain_of_headers.chunks(1_000).enumerate() {
//!     let start = u32::try_from(i * 1_000 + 1)?;
//!     let blocks: Vec<BlockHash> = range.iter().map(|h| h.block_hash()).collect();
//!     let filters = peer.get_cfilters_of(0, start, &blocks).await?;
//!     assert_eq!(filters.len(), blocks.len());
//! }
//! // Without the headers: from a height up to a block (the range's size learned from the remote).
//! let filters = peer.get_cfilters(0, 4_001, chain_of_headers[4_498].block_hash()).await?;
//! assert_eq!(filters.len(), 499);
//! # Ok(()) }
//! ```
//!
//! Broadcasting a transaction, and what became of it:
//!
//! ```no_run
//! # async fn f(peer: btcpeer::peer::Peer, tx: btcpeer::bitcoin::Transaction) -> Result<(), btcpeer::peer::RequestError> {
//! use btcpeer::peer::BroadcastOutcome;
//!
//! match peer.broadcast_transaction(tx).await? {
//!     BroadcastOutcome::Requested => println!("the remote asked for it and got it"),
//!     BroadcastOutcome::NotRequested => println!("the remote did not ask (it has it, or wants none)"),
//!     BroadcastOutcome::Rejected { code, reason } => println!("rejected ({code:?}): {reason}"),
//!     _ => {}
//! }
//! # Ok(()) }
//! ```
//!
//! ## Encoding and decoding without a peer
//!
//! ```
//! use btcpeer::network::Network;
//! use btcpeer::wire::{frame, Command, Message};
//!
//! let mut buf = bytes::BytesMut::new();
//! frame::encode_frame(&Message::Ping(7), &Network::MAINNET, &mut buf)?;
//! let (raw, _) = frame::decode_frame(&buf.freeze(), &Network::MAINNET)?;
//! assert_eq!((raw.command, raw.decode()?), (Command::PING, Message::Ping(7)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

pub use btcpeer_core::bitcoin;
pub use btcpeer_core::{network, wire};

pub mod core;
pub mod crawl;
pub mod light;
pub mod node;
pub mod peer;
#[cfg(feature = "socks")]
pub mod socks;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
