//! A byte stream to frames and back.
//!
//! [`v1`] is the plaintext framing as a `tokio_util` codec: header checks before any payload space is
//! reserved, one checksum pass per frame, payloads handed on as `Bytes` without a copy, and messages
//! encoded once straight into the write buffer. This module knows nothing of handshakes.

pub mod stream;
pub mod v1;
pub mod v2;
pub mod v2_handshake;
