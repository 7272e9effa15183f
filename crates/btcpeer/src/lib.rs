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
//! The protocol lives in the runtime-free [`core`] (`btcpeer-core`): its transports and the peer's
//! rules are state machines taking bytes, frames and time and giving bytes, events and deadlines;
//! the per-connection protocol state is its `ProtocolState`, which this crate keeps under each
//! peer's one lock (as quinn keeps `quinn-proto`'s connection). This crate adds what needs a
//! runtime: the task that reads and writes the stream, the outbound queue with a completion per
//! message, the [`Peer`](peer::Peer) handle, handlers and channels, SOCKS5, and `tracing` spans.
//! The core also drives a blocking `std::net::TcpStream` (`core::blocking`) and, with its `sim`
//! feature, a deterministic simulator.
//!
//! ## Modules
//!
//! - [`peer`]: the peer — [`Peer`](peer::Peer), its [`PeerConfig`](peer::PeerConfig), the
//!   [`Handler`](peer::Handler) trait (or a channel of [`PeerEvent`](peer::PeerEvent)s), completions,
//!   statistics and disconnect reasons.
//! - [`core`]: the runtime-free core (`btcpeer-core`), re-exported.
//! - [`wire`]: every message Bitcoin Core speaks, decoded to typed values and encoded back
//!   byte-for-byte, with the protocol's limits enforced before allocation; v1 frames.
//! - [`transport`]: byte streams to frames and back: the v1 codec and BIP324 v2.
//! - [`network`]: built-in networks and custom ones (magic, port, payload limit).
//! - `socks` (feature `socks`): dialing through a SOCKS5 proxy, `.onion` names included.
//! - `testing` (feature `testing`): a synthetic chain and a handler that serves it.
//!
//! Consensus types come from rust-bitcoin 0.32, re-exported as [`bitcoin`], so applications use the
//! same version.
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

/// The runtime-free core this crate drives: the protocol as state machines, a blocking driver and
/// (feature `sim` of `btcpeer-core`) the simulator.
pub use btcpeer_core as core;
pub use btcpeer_core::bitcoin;
pub use btcpeer_core::{network, wire};

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
