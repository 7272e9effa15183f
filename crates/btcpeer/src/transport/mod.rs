//! A byte stream to frames and back.
//!
//! The codecs are the core's (`btcpeer_core::transport`, re-exported here, their one path in
//! btcpeer): [`v1`] is the plaintext framing, [`v2`] is BIP324's packet framing over the
//! ciphers of [`v2_cipher`], and [`framing`] is bytes ⇄ frames for either transport, the
//! handshake included, as a state machine. This crate adds the I/O: [`v2_handshake`] runs the
//! core's handshake state machine on an async stream, and an internal module reads and writes
//! frames of either transport on one.

pub use btcpeer_core::transport::{framing, reserve_towards, v1, v2, v2_cipher};

#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod stream;
#[cfg(not(feature = "internals"))]
pub(crate) mod stream;
pub mod v2_handshake;
