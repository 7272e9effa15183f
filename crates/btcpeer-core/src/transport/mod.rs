//! Bytes to frames and back, without I/O.
//!
//! [`v1`] is the plaintext framing: header checks before any payload space is reserved, one
//! checksum pass per frame, payloads handed on as `Bytes` without a copy, and messages encoded once
//! straight into the write buffer. [`v2`] is BIP324's packet framing over the ciphers of
//! [`v2_cipher`] (session keys, FSChaCha20, FSChaCha20Poly1305 on `ring`'s assembly), with the
//! handshake as a state machine in [`v2_handshake`]. [`framing`] puts them together for one
//! connection: v1 or v2 detection, the handshake, decoys, what is dropped and why it ends.

pub mod framing;
pub mod v1;
pub mod v2;
pub mod v2_cipher;
pub mod v2_handshake;

/// Room is reserved for a frame's or packet's body in steps of at most this many bytes.
const RESERVE_STEP: usize = 256 * 1024;

/// Makes room in `buf` towards `want` bytes as they arrive: at least a step, at most doubling what
/// has arrived, so a large frame is copied few times while a remote that announces megabytes and
/// sends nothing costs 256 KiB, not what it announced. Used by the v1 codec and the v2 decoder, and
/// by a driver reading into the buffer they decode from.
pub fn reserve_towards(buf: &mut bytes::BytesMut, want: usize) {
    let missing = want.saturating_sub(buf.len());
    buf.reserve(missing.min(RESERVE_STEP.max(buf.len())));
}
