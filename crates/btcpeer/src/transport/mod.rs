//! A byte stream to frames and back.
//!
//! [`v1`] is the plaintext framing as a `tokio_util` codec: header checks before any payload space is
//! reserved, one checksum pass per frame, payloads handed on as `Bytes` without a copy, and messages
//! encoded once straight into the write buffer. [`v2`] is BIP324's packet framing over the ciphers of
//! [`v2_cipher`] (session keys, FSChaCha20, FSChaCha20Poly1305 on `ring`'s assembly), with the
//! handshake in [`v2_handshake`]; [`stream`] reads and writes either on an async byte stream.

pub mod stream;
pub mod v1;
pub mod v2;
pub mod v2_cipher;
pub mod v2_handshake;
