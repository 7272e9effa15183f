//! # btcpeer
//!
//! A complete, concurrency-safe Bitcoin peer-to-peer *peer* for Rust applications: node and wallet
//! developers, SPV and BIP157 light clients, crawlers, proxies and monitors. The application dials or
//! accepts a connection; btcpeer speaks the wire protocol on it.
//!
//! This release provides the foundation:
//!
//! - [`wire`]: every message Bitcoin Core speaks, decoded to typed values and encoded back
//!   byte-for-byte, with the protocol's limits enforced before allocation and typed errors;
//! - [`network`]: built-in and custom networks (magic, port, payload limit);
//! - [`transport::v1`]: the v1 frame codec for async streams.
//!
//! Consensus types come from rust-bitcoin 0.32, re-exported as [`bitcoin`] so that applications use
//! the same version.
//!
//! ## Example: encode and decode a frame
//!
//! ```
//! use btcpeer::network::Network;
//! use btcpeer::wire::{frame, Command, Message, VersionMessage, VersionTail, blank_address};
//! use btcpeer::bitcoin::p2p::ServiceFlags;
//!
//! let version = Message::Version(VersionMessage {
//!     version: 70016,
//!     services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
//!     timestamp: 1_700_000_000,
//!     receiver: blank_address(),
//!     sender: blank_address(),
//!     nonce: 0x0123_4567_89ab_cdef,
//!     user_agent: "/btcpeer:0.1.0/".to_string(),
//!     start_height: 0,
//!     relay: true,
//!     tail: VersionTail::Complete,
//! });
//!
//! // Encode once into a reusable buffer: header, payload, checksum.
//! let mut buf = bytes::BytesMut::with_capacity(256);
//! let len = frame::encode_frame(&version, &Network::REGTEST, &mut buf)?;
//! assert_eq!(len, buf.len());
//!
//! // Decode: the header is checked, the checksum verified once, the payload decoded.
//! let bytes = buf.freeze();
//! let (raw, used) = frame::decode_frame(&bytes, &Network::REGTEST)?;
//! assert_eq!((raw.command, used), (Command::VERSION, len));
//! assert_eq!(raw.decode()?, version);
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

pub mod network;
pub mod peer;
#[cfg(feature = "socks")]
pub mod socks;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;
pub mod wire;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
