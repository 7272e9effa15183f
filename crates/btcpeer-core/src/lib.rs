//! # btcpeer-core
//!
//! The runtime-free core of [btcpeer](https://docs.rs/btcpeer): no async runtime, no task, no
//! socket and no clock reading. Everything here takes bytes (or frames) and time as arguments and
//! gives back bytes to write, events, and the next deadline, so it can be driven by tokio (the
//! `btcpeer` crate does), by a blocking loop over `std::net::TcpStream` (see the `blocking`
//! example), by a simulator on simulated time (feature `sim`), or by a fuzzer, one input at a time.
//!
//! ```text
//!              bytes read            frames                 events (handshake, messages, end)
//!  socket ──► transport (v1/v2) ──► peer::PeerCore ──────────────────────────► application
//!  socket ◄── transport (v1/v2) ◄── peer::PeerCore ◄── commands (send, disconnect) ◄──┘
//!              bytes to write        messages     ▲
//!                                                 └── now: Instant  (poll_timeout / handle_timeout)
//! ```
//!
//! ## Modules
//!
//! - [`wire`]: every message Bitcoin Core speaks, decoded to typed values and encoded back
//!   byte-for-byte, with the protocol's limits enforced before allocation; v1 frames.
//! - [`transport`]: the v1 codec, BIP324's packet codec and ciphers, and its handshake as a state
//!   machine.
//! - [`network`]: built-in networks and custom ones (magic, port, payload limit).
//! - [`peer`]: the peer protocol as a state machine: the version handshake and its validation,
//!   the built-in handling of each message (pings, preferences, feature negotiation, Core's
//!   leniencies), liveness and stall deadlines.
//! - [`addrbook`]: an address book on Bitcoin Core's design (new and tried tables, keyed
//!   buckets, test-before-evict), bounded, with a checksummed file format.
//! - [`chain`]: the sans-IO chain logic of a BIP157/158 light client: the header chain with
//!   Core's checks, the filter-header chain, a sync planner, persistence.
//! - [`node`]: a node's connection policy: Core's inbound eviction, manual bans, the
//!   discouragement filter, the anchors file.
//! - [`persist`]: the framing (magic, version, checksum) and atomic write every file uses.
//! - [`blocking`]: a [`PeerCore`](peer::PeerCore) over a blocking `std::net::TcpStream`.
//! - `sim` (feature `sim`): many peer cores linked by in-memory links with latency, bandwidth and
//!   loss, on simulated time, seeded.
//!
//! Consensus types come from rust-bitcoin 0.32, re-exported as [`bitcoin`].
//!
//! ## Example: encoding and decoding a frame
//!
//! ```
//! use btcpeer_core::network::Network;
//! use btcpeer_core::wire::{frame, Command, Message};
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

pub use bitcoin;

pub mod addrbook;
pub mod blocking;
pub mod chain;
pub mod network;
pub mod node;
pub mod peer;
pub mod persist;
mod rng;
#[cfg(feature = "sim")]
pub mod sim;
pub mod transport;
pub mod wire;
