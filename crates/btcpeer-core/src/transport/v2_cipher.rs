//! BIP324's ciphers: the session keys, the length cipher (FSChaCha20) and the packet AEAD
//! (FSChaCha20Poly1305), with no I/O.
//!
//! # Why these implementations
//!
//! A v2 connection spends its time in ChaCha20-Poly1305: every byte of every packet is encrypted
//! and authenticated once each way. Measured side by side on this project's 2-vCPU machine (AVX-512,
//! release build, 1 MB messages, beside SHA-256d of the same megabyte, which bounds v1 because every
//! v1 frame carries a checksum):
//!
//! | implementation | MB/s | / sha256d |
//! |---|---|---|
//! | sha256d (rust-bitcoin, SHA extensions) | 1,948 | 1.00 |
//! | `ring` 0.17 `CHACHA20_POLY1305` (assembly, runtime CPU detection) | 2,996 | 1.54 |
//! | RustCrypto `chacha20poly1305` 0.11 (AVX2 backends) | 1,390 | 0.71 |
//! | rust-bitcoin `chacha20-poly1305` 0.1 (scalar; what the `bip324` crate uses) | 600 | 0.31 |
//!
//! So the packet AEAD is `ring`'s (ISC/Apache-2.0, maintained, its assembly built with the C compiler
//! every Rust toolchain here has, a portable C/Rust fallback where the CPU lacks the extensions);
//! BIP324's forward-secure wrapper (nonce layout, rekey every 224 packets) is ours. The length
//! cipher encrypts three bytes per packet, so rust-bitcoin's scalar ChaCha20 serves it: one 64-byte
//! block covers 21 packets.
//!
//! The `bip324` crate is no longer used at run time: its handshake hands out a cipher session whose
//! keys are private, so a faster AEAD cannot be put under it. The key derivation it did (ECDH on
//! ElligatorSwift keys, HKDF-SHA256) is a few lines here over libsecp256k1 and rust-bitcoin's HMAC,
//! checked against BIP324's official vectors and, in a differential test, against the crate itself.

use bitcoin::hashes::{Hash, HashEngine, Hmac, HmacEngine, sha256};
use chacha20_poly1305::chacha20::ChaCha20;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};

/// Packets (and length chunks) per key: both ciphers rekey after this many (BIP324).
pub const REKEY_INTERVAL: u64 = 224;
/// Bytes of a Poly1305 tag.
pub const TAG_LEN: usize = 16;

/// Every key BIP324 derives from a session's ECDH secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// The session id (for identifying a connection out of band).
    pub session_id: [u8; 32],
    /// The initiator's length-cipher key.
    pub initiator_length: [u8; 32],
    /// The initiator's packet-cipher key.
    pub initiator_packet: [u8; 32],
    /// The responder's length-cipher key.
    pub responder_length: [u8; 32],
    /// The responder's packet-cipher key.
    pub responder_packet: [u8; 32],
    /// What the initiator sends after its garbage.
    pub initiator_terminator: [u8; 16],
    /// What the responder sends after its garbage.
    pub responder_terminator: [u8; 16],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys").finish_non_exhaustive()
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut engine = HmacEngine::<sha256::Hash>::new(key);
    for p in parts {
        engine.input(p);
    }
    Hmac::<sha256::Hash>::from_engine(engine).to_byte_array()
}

impl SessionKeys {
    /// HKDF-SHA256 (RFC 5869) of the ECDH secret, salted with `bitcoin_v2_shared_secret` and the
    /// network magic, as BIP324 (and Core's `BIP324Cipher::Initialize`) derive them.
    ///
    /// ```
    /// use btcpeer_core::transport::v2_cipher::SessionKeys;
    ///
    /// let a = SessionKeys::derive(&[1; 32], [0xf9, 0xbe, 0xb4, 0xd9]);
    /// let b = SessionKeys::derive(&[1; 32], [0xfa, 0xbf, 0xb5, 0xda]);
    /// assert_ne!(a.session_id, b.session_id, "the magic separates networks");
    /// ```
    pub fn derive(shared_secret: &[u8; 32], magic: [u8; 4]) -> SessionKeys {
        let mut salt = [0u8; 28];
        let (text, tail) = salt.split_at_mut(24);
        text.copy_from_slice(b"bitcoin_v2_shared_secret");
        tail.copy_from_slice(&magic);
        let prk = hmac(&salt, &[shared_secret]);
        // Every output is one block: T(1) = HMAC(PRK, info || 0x01).
        let expand = |info: &[u8]| hmac(&prk, &[info, &[1]]);
        let garbage = expand(b"garbage_terminators");
        let mut initiator_terminator = [0u8; 16];
        let mut responder_terminator = [0u8; 16];
        let (first, second) = garbage.split_at(16);
        initiator_terminator.copy_from_slice(first);
        responder_terminator.copy_from_slice(second);
        SessionKeys {
            session_id: expand(b"session_id"),
            initiator_length: expand(b"initiator_L"),
            initiator_packet: expand(b"initiator_P"),
            responder_length: expand(b"responder_L"),
            responder_packet: expand(b"responder_P"),
            initiator_terminator,
            responder_terminator,
        }
    }

    /// The ciphers of one side: what it sends with, what it receives with.
    pub fn ciphers(&self, initiator: bool) -> (InboundCipher, OutboundCipher) {
        let (ours, theirs) = if initiator {
            ((self.initiator_length, self.initiator_packet), (self.responder_length, self.responder_packet))
        } else {
            ((self.responder_length, self.responder_packet), (self.initiator_length, self.initiator_packet))
        };
        (
            InboundCipher { length: LengthCipher::new(theirs.0), packet: PacketCipher::new(theirs.1) },
            OutboundCipher { length: LengthCipher::new(ours.0), packet: PacketCipher::new(ours.1) },
        )
    }
}

/// FSChaCha20: a ChaCha20 keystream XORed onto each packet's 3-byte length, rekeyed every 224
/// lengths with 32 bytes of its own keystream.
#[derive(Clone)]
pub struct LengthCipher {
    key: [u8; 32],
    chunks: u64,
    block: u32,
    keystream: [u8; 64],
    /// Bytes of `keystream` already used (64: none left).
    used: usize,
}

impl LengthCipher {
    /// A cipher starting at chunk 0 of `key`.
    pub fn new(key: [u8; 32]) -> Self {
        LengthCipher { key, chunks: 0, block: 0, keystream: [0; 64], used: 64 }
    }

    fn next_byte(&mut self) -> u8 {
        if self.used >= self.keystream.len() {
            let mut nonce = [0u8; 12];
            if let Some(tail) = nonce.get_mut(4..) {
                tail.copy_from_slice(&(self.chunks / REKEY_INTERVAL).to_le_bytes());
            }
            let chacha = ChaCha20::new_from_block(
                chacha20_poly1305::Key::new(self.key),
                chacha20_poly1305::Nonce::new(nonce),
                self.block,
            );
            self.keystream = chacha.get_keystream(self.block);
            self.block = self.block.wrapping_add(1);
            self.used = 0;
        }
        let b = self.keystream.get(self.used).copied().unwrap_or(0);
        self.used = self.used.saturating_add(1);
        b
    }

    /// Encrypts or decrypts one chunk (a packet's length) in place.
    pub fn crypt(&mut self, chunk: &mut [u8]) {
        for b in chunk.iter_mut() {
            *b ^= self.next_byte();
        }
        if self.chunks.wrapping_add(1) % REKEY_INTERVAL == 0 {
            let mut key = [0u8; 32];
            for k in &mut key {
                *k = self.next_byte();
            }
            self.key = key;
            self.block = 0;
            self.used = self.keystream.len();
        }
        self.chunks = self.chunks.wrapping_add(1);
    }
}

/// FSChaCha20Poly1305: RFC 8439 ChaCha20-Poly1305 with BIP324's nonce (the packet number within the
/// key's 224, then the key's number) and a new key every 224 packets, taken from the cipher itself.
pub struct PacketCipher {
    /// The current key's bytes.
    raw: [u8; 32],
    /// ring's key object for `raw`, made on first use and dropped by [`PacketCipher::release`]:
    /// it takes 544 bytes (ring sizes it for its largest algorithm), which an idle peer should not
    /// hold twice.
    key: Option<Box<LessSafeKey>>,
    packets: u64,
}

impl std::fmt::Debug for PacketCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketCipher").field("packets", &self.packets).finish_non_exhaustive()
    }
}

impl Clone for PacketCipher {
    fn clone(&self) -> Self {
        PacketCipher { raw: self.raw, key: None, packets: self.packets }
    }
}

fn less_safe_key(key: &[u8; 32]) -> LessSafeKey {
    // The only failure is a key of the wrong length for the algorithm, which a `[u8; 32]` is not;
    // ring has no other way to build this key.
    match UnboundKey::new(&CHACHA20_POLY1305, key) {
        Ok(k) => LessSafeKey::new(k),
        Err(_) => unreachable_key(),
    }
}

#[cold]
fn unreachable_key() -> LessSafeKey {
    // ChaCha20-Poly1305 keys are 32 bytes; this cannot run. Without a way to build a key, abort
    // rather than continue with a cipher that would encrypt nothing.
    std::process::abort()
}

impl PacketCipher {
    /// A cipher starting at packet 0 of `key`.
    pub fn new(key: [u8; 32]) -> Self {
        PacketCipher { raw: key, key: None, packets: 0 }
    }

    /// Drops ring's key object until the next packet (an idle connection keeps 32 bytes of key,
    /// not 544); building it again costs about 25 ns.
    pub fn release(&mut self) {
        self.key = None;
    }

    fn key(&mut self) -> &LessSafeKey {
        let raw = self.raw;
        self.key.get_or_insert_with(|| Box::new(less_safe_key(&raw)))
    }

    fn nonce(&self) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        let (within, epoch) = nonce.split_at_mut(4);
        within.copy_from_slice(&((self.packets % REKEY_INTERVAL) as u32).to_le_bytes());
        epoch.copy_from_slice(&(self.packets / REKEY_INTERVAL).to_le_bytes());
        nonce
    }

    fn advance(&mut self, nonce: [u8; 12]) {
        if self.packets.wrapping_add(1) % REKEY_INTERVAL == 0 {
            // The next key: the first 32 bytes of encrypting 32 zeros under nonce 0xffffffff and
            // this key's number.
            let mut rekey = [0xffu8; 12];
            if let (Some(dst), Some(src)) = (rekey.get_mut(4..), nonce.get(4..)) {
                dst.copy_from_slice(src);
            }
            let mut next = [0u8; 32];
            // Sealing 32 bytes cannot exceed ring's input limit.
            let _ = self.key().seal_in_place_separate_tag(Nonce::assume_unique_for_key(rekey), Aad::empty(), &mut next);
            self.raw = next;
            self.key = None;
        }
        self.packets = self.packets.wrapping_add(1);
    }

    /// Encrypts `text` in place with `aad` and returns the tag.
    pub fn encrypt(&mut self, aad: &[u8], text: &mut [u8]) -> [u8; TAG_LEN] {
        let nonce = self.nonce();
        // ring refuses only inputs above 256 GiB; a zero tag would make the remote refuse the packet.
        let tag = self
            .key()
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), text)
            .map_or([0; TAG_LEN], |t| tag_bytes(&t));
        self.advance(nonce);
        tag
    }

    /// Decrypts `text` in place if `tag` authenticates it with `aad`.
    pub fn decrypt(&mut self, aad: &[u8], text: &mut [u8], tag: [u8; TAG_LEN]) -> Result<(), AuthenticationError> {
        let nonce = self.nonce();
        let result = self.key().open_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            Tag::from(tag),
            text,
            0..,
        );
        self.advance(nonce);
        result.map(|_| ()).map_err(|_| AuthenticationError)
    }
}

fn tag_bytes(tag: &Tag) -> [u8; TAG_LEN] {
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

/// A packet failed authentication: tampered with, or the stream is out of sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("packet authentication failed")]
pub struct AuthenticationError;

/// Bytes of a packet's encrypted length.
pub const LENGTH_LEN: usize = 3;

/// What decrypts the packets the remote sends.
#[derive(Clone)]
pub struct InboundCipher {
    length: LengthCipher,
    packet: PacketCipher,
}

impl std::fmt::Debug for InboundCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundCipher").field("packets", &self.packet.packets).finish_non_exhaustive()
    }
}

impl InboundCipher {
    /// Decrypts a packet's length prefix: the length of its contents (header byte and tag
    /// excluded). Call exactly once per packet, in order.
    pub fn decrypt_length(&mut self, mut prefix: [u8; LENGTH_LEN]) -> usize {
        self.length.crypt(&mut prefix);
        let [a, b, c] = prefix;
        u32::from_le_bytes([a, b, c, 0]) as usize
    }

    /// Drops what an idle connection need not hold (see [`PacketCipher::release`]).
    pub fn release(&mut self) {
        self.packet.release();
    }

    /// Authenticates and decrypts, in place, a packet's header byte, contents and tag (`packet`,
    /// everything after the length prefix); on success the first `packet.len() - 16` bytes are the
    /// plaintext header and contents.
    pub fn decrypt(&mut self, packet: &mut [u8], aad: &[u8]) -> Result<(), AuthenticationError> {
        let split = packet.len().checked_sub(TAG_LEN).ok_or(AuthenticationError)?;
        let (text, tag) = packet.split_at_mut(split);
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(tag);
        self.packet.decrypt(aad, text, t)
    }
}

/// What encrypts the packets we send.
#[derive(Clone)]
pub struct OutboundCipher {
    length: LengthCipher,
    packet: PacketCipher,
}

impl std::fmt::Debug for OutboundCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundCipher").field("packets", &self.packet.packets).finish_non_exhaustive()
    }
}

impl OutboundCipher {
    /// Drops what an idle connection need not hold (see [`PacketCipher::release`]).
    pub fn release(&mut self) {
        self.packet.release();
    }

    /// Appends one packet to `out`: the encrypted length, then `header` and the contents written by
    /// `contents` (straight into `out`, encrypted there in place), then the tag. Returns the packet's
    /// size on the wire. `contents` must write at most 16 MiB − 1 bytes (the length field's
    /// limit), which the caller checks.
    pub fn encrypt_into(
        &mut self,
        header: u8,
        aad: &[u8],
        out: &mut bytes::BytesMut,
        contents: impl FnOnce(&mut bytes::BytesMut),
    ) -> usize {
        let start = out.len();
        out.extend_from_slice(&[0, 0, 0, header]);
        contents(out);
        let contents_len = out.len().saturating_sub(start).saturating_sub(LENGTH_LEN + 1);
        let mut prefix = [0u8; LENGTH_LEN];
        let [a, b, c, _] = (contents_len as u32).to_le_bytes();
        prefix.copy_from_slice(&[a, b, c]);
        self.length.crypt(&mut prefix);
        let tag = match out.get_mut(start..) {
            Some(packet) => {
                let (len, text) = packet.split_at_mut(LENGTH_LEN.min(packet.len()));
                len.copy_from_slice(&prefix);
                self.packet.encrypt(aad, text)
            }
            None => [0; TAG_LEN],
        };
        out.extend_from_slice(&tag);
        out.len().saturating_sub(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p5_both_directions_agree_across_rekeys() {
        let keys = SessionKeys::derive(&[7; 32], [1, 2, 3, 4]);
        let (mut inbound, _) = keys.ciphers(false);
        let (_, mut outbound) = keys.ciphers(true);
        for n in 0..1_000usize {
            let mut out = bytes::BytesMut::new();
            let contents: Vec<u8> = (0..n % 300).map(|i| i as u8).collect();
            outbound
                .encrypt_into(0, if n == 0 { b"garbage" } else { b"" }, &mut out, |o| o.extend_from_slice(&contents));
            let mut prefix = [0u8; 3];
            prefix.copy_from_slice(&out[..3]);
            assert_eq!(inbound.decrypt_length(prefix), contents.len());
            let packet = &mut out[3..];
            inbound.decrypt(packet, if n == 0 { b"garbage" } else { b"" }).expect("authentic");
            assert_eq!(&packet[1..1 + contents.len()], &contents[..], "packet {n}");
        }
        // A flipped bit fails.
        let mut out = bytes::BytesMut::new();
        outbound.encrypt_into(0, b"", &mut out, |o| o.extend_from_slice(b"hello"));
        out[5] ^= 1;
        let mut prefix = [0u8; 3];
        prefix.copy_from_slice(&out[..3]);
        inbound.decrypt_length(prefix);
        assert_eq!(inbound.decrypt(&mut out[3..], b""), Err(AuthenticationError));
    }
}
