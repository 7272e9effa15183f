//! The BIP324 handshake as a state machine (bytes in, bytes out), and telling a v1 initiator from
//! a v2 one.
//!
//! Both roles of BIP324's handshake: the 64-byte ElligatorSwift key and 0–4,095 bytes of random
//! garbage, the ECDH and key derivation ([`SessionKeys`]), the garbage terminator, optional decoy
//! packets, and the version packet (whose contents are ignored; the first packet after the garbage
//! authenticates it). The curve work is libsecp256k1's (one context for the process).
//!
//! [`V2Handshake`] reads no socket and keeps no clock: the caller writes what
//! [`V2Handshake::take_output`] gives, feeds what it reads to [`V2Handshake::receive`], and stops
//! when a [`V2Session`] comes out. What it holds is bounded by what arrived: a packet announced at
//! 4 MB of which ten bytes came costs ten bytes, and nothing announced above the network's limit is
//! waited for.
//!
//! An inbound peer that accepts both transports looks at no more than the first 16 bytes
//! ([`detect_v1`]): if they are the network magic followed by `version` padded with NULs, the
//! remote speaks v1 and those bytes go to the v1 codec unchanged; at the first byte that differs,
//! it is a v2 key.
//!
//! ```
//! use btcpeer_core::network::Network;
//! use btcpeer_core::transport::v2_handshake::{V2Handshake, V2Options};
//!
//! let opts = V2Options { garbage_len: Some(10), decoys: vec![] };
//! let mut a = V2Handshake::initiator(&Network::REGTEST, &opts)?;
//! let mut b = V2Handshake::responder(&Network::REGTEST, &opts)?;
//! // Exchange bytes until both sides have a session.
//! let (mut sa, mut sb) = (None, None);
//! for _ in 0..4 {
//!     let to_b = a.take_output();
//!     let to_a = b.take_output();
//!     if sb.is_none() { sb = b.receive(&to_b)?; }
//!     if sa.is_none() { sa = a.receive(&to_a)?; }
//! }
//! let (mut sa, mut sb) = (sa.unwrap(), sb.unwrap());
//! // The sessions talk: a packet sealed by one opens on the other.
//! let mut wire = bytes::BytesMut::new();
//! sa.encoder.encode(btcpeer_core::wire::Command::PING, &[7u8; 8], &mut wire);
//! let (frame, _) = sb.decoder.decode(&mut wire)?.unwrap();
//! assert_eq!(&frame.payload[..], &[7u8; 8]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use bitcoin::secp256k1::ellswift::{ElligatorSwift, ElligatorSwiftParty};
use bitcoin::secp256k1::{All, Secp256k1, SecretKey};
use bytes::{Buf, BytesMut};

use super::v2::{IGNORE_BIT, LENGTH_BYTES, OVERHEAD, V2Decoder, V2Encoder, V2Error, max_contents};
use super::v2_cipher::{InboundCipher, OutboundCipher, SessionKeys};
use crate::network::Network;

/// Bytes of an ElligatorSwift public key.
const KEY_BYTES: usize = 64;
/// The most garbage BIP324 allows before the terminator.
pub const MAX_GARBAGE: usize = 4095;
/// Bytes of a garbage terminator.
const TERMINATOR_BYTES: usize = 16;

/// What to send during the handshake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct V2Options {
    /// Garbage bytes after our key; `None` draws a random length from 0 to 4,095.
    pub garbage_len: Option<usize>,
    /// Lengths of decoy packets to send before the version packet.
    pub decoys: Vec<usize>,
}

/// Why a v2 handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum V2HandshakeError {
    /// The remote closed before sending a single byte: likely a v1-only node (retry in v1).
    #[error("remote closed before answering our v2 key")]
    ClosedBeforeAnyByte,
    /// The remote answered with a v1 message.
    #[error("remote speaks v1")]
    RemoteSpeaksV1,
    /// The remote closed during the handshake.
    #[error("remote closed during the v2 handshake")]
    Closed,
    /// A packet was refused.
    #[error(transparent)]
    Packet(#[from] V2Error),
    /// The stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An established v2 session: the two halves of the cipher as codecs, and the bytes already read
/// past the handshake.
#[derive(Debug)]
pub struct V2Session {
    /// Decrypts what the remote sends.
    pub decoder: V2Decoder,
    /// Encrypts what we send.
    pub encoder: V2Encoder,
    /// Bytes read after the remote's version packet (the start of its first message, if pipelined).
    pub leftover: BytesMut,
    /// Bytes written during the handshake.
    pub bytes_sent: usize,
    /// Bytes the handshake itself took from the stream (not counting `leftover`).
    pub bytes_received: usize,
}

/// The first 16 bytes a v1 initiator sends: the magic and `version` padded with NULs.
pub fn v1_prefix(network: &Network) -> [u8; 16] {
    let mut p = [0u8; 16];
    let (magic, command) = p.split_at_mut(4);
    magic.copy_from_slice(&network.magic().to_bytes());
    command.copy_from_slice(&crate::wire::Command::VERSION.to_wire()[..12]);
    p
}

/// Whether the first bytes an inbound connection received are a v1 initiator's (`Some(true)`), a
/// v2 key's (`Some(false)`), or too few to tell (`None`): the answer comes at the first byte that
/// differs from [`v1_prefix`], or after 16 bytes that match (Core's
/// `V2Transport::ProcessReceivedMaybeV1Bytes`).
pub fn detect_v1(received: &[u8], network: &Network) -> Option<bool> {
    let prefix = v1_prefix(network);
    let n = received.len().min(16);
    if received.get(..n) != prefix.get(..n) {
        return Some(false);
    }
    (n == 16).then_some(true)
}

fn garbage(opts: &V2Options) -> Vec<u8> {
    let len = opts.garbage_len.unwrap_or_else(|| {
        // 4,096 possible lengths: the low 12 bits of a random number are uniform over 0..=4095.
        (getrandom::u32().unwrap_or(0) & 0x0fff) as usize
    });
    let mut g = vec![0u8; len.min(MAX_GARBAGE)];
    // Unpredictable garbage is better; zeros still follow the protocol if the OS source fails.
    let _ = getrandom::fill(&mut g);
    g
}

/// One context for every handshake: building one costs far more than a handshake's curve work.
fn curve() -> &'static Secp256k1<All> {
    static CURVE: std::sync::OnceLock<Secp256k1<All>> = std::sync::OnceLock::new();
    CURVE.get_or_init(Secp256k1::new)
}

fn key_failure() -> V2HandshakeError {
    V2HandshakeError::Packet(V2Error::Handshake("key generation failed"))
}

/// A fresh secret key from the OS's CSPRNG and its ElligatorSwift encoding (randomised too): one
/// side's curve work before the ECDH. Keys are single-use: each handshake draws its own.
///
/// ```
/// use btcpeer_core::transport::v2_handshake::{ephemeral_key, session_keys};
///
/// let (a, a_pub) = ephemeral_key().unwrap();
/// let (b, b_pub) = ephemeral_key().unwrap();
/// let magic = [0xfa, 0xbf, 0xb5, 0xda];
/// let initiator = session_keys(a, &a_pub, &b_pub, true, magic);
/// let responder = session_keys(b, &b_pub, &a_pub, false, magic);
/// assert_eq!(initiator, responder, "both sides derive the same keys");
/// ```
pub fn ephemeral_key() -> Result<(SecretKey, ElligatorSwift), V2HandshakeError> {
    let mut bytes = [0u8; 32];
    let mut aux = [0u8; 32];
    // A value outside the curve order is vanishingly rare; draw again a few times.
    for _ in 0..4 {
        getrandom::fill(&mut bytes).map_err(|_| key_failure())?;
        getrandom::fill(&mut aux).map_err(|_| key_failure())?;
        if let Ok(secret) = SecretKey::from_slice(&bytes) {
            return Ok((secret, ElligatorSwift::from_seckey(curve(), secret, Some(aux))));
        }
    }
    Err(key_failure())
}

/// The session keys from our secret and both encodings (BIP324's x-only ECDH on ElligatorSwift
/// keys, hashed with the `bip324_ellswift_xonly_ecdh` tag; Core's `BIP324Cipher::Initialize`).
pub fn session_keys(
    secret: SecretKey,
    ours: &ElligatorSwift,
    theirs: &ElligatorSwift,
    initiator: bool,
    magic: [u8; 4],
) -> SessionKeys {
    let (a, b, party) =
        if initiator { (*ours, *theirs, ElligatorSwiftParty::A) } else { (*theirs, *ours, ElligatorSwiftParty::B) };
    let shared = ElligatorSwift::shared_secret(a, b, secret, party, None);
    SessionKeys::derive(shared.as_secret_bytes(), magic)
}

/// Where the 16-byte `terminator` starts in `buf`, looking from `from` (a terminator cannot start
/// earlier than where the last search ended, less 15 bytes).
fn find_terminator(buf: &[u8], terminator: &[u8; 16], from: usize) -> Option<usize> {
    buf.get(from..)?.windows(TERMINATOR_BYTES).position(|w| w == terminator).map(|p| p.saturating_add(from))
}

/// Where the handshake is.
enum Stage {
    /// Waiting for the remote's 64-byte key.
    Key { secret: SecretKey, ours: ElligatorSwift, garbage: Vec<u8>, decoys: Vec<usize> },
    /// Keys derived, our packets sent; looking for the remote's garbage terminator.
    Terminator { ciphers: Box<(InboundCipher, OutboundCipher)>, terminator: [u8; 16], searched: usize },
    /// Reading decoys until the version packet; `garbage` authenticates the first packet.
    Version { ciphers: Box<(InboundCipher, OutboundCipher)>, garbage: Option<BytesMut> },
    /// Finished (a session came out) or failed: nothing more happens.
    Over,
}

/// One side of a BIP324 handshake, sans I/O: [`take_output`](V2Handshake::take_output) what to
/// write, [`receive`](V2Handshake::receive) what was read, until it returns the [`V2Session`].
pub struct V2Handshake {
    network: Network,
    initiator: bool,
    stage: Stage,
    /// Bytes to write.
    out: BytesMut,
    /// Bytes received and not yet used.
    buf: BytesMut,
    /// The contents length of a packet whose length is decrypted and whose body is still arriving.
    pending: Option<usize>,
    received: usize,
    sent: usize,
}

impl std::fmt::Debug for V2Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V2Handshake")
            .field("initiator", &self.initiator)
            .field("received", &self.received)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl V2Handshake {
    /// The initiator's side (outbound): our key and garbage are ready to write at once.
    pub fn initiator(network: &Network, opts: &V2Options) -> Result<Self, V2HandshakeError> {
        Self::new(network, opts, true)
    }

    /// The responder's side (inbound), after [`detect_v1`] said the first bytes are a v2 key: feed
    /// them to [`receive`](V2Handshake::receive) first.
    pub fn responder(network: &Network, opts: &V2Options) -> Result<Self, V2HandshakeError> {
        Self::new(network, opts, false)
    }

    fn new(network: &Network, opts: &V2Options, initiator: bool) -> Result<Self, V2HandshakeError> {
        let garbage = garbage(opts);
        let (secret, ours) = ephemeral_key()?;
        let mut out = BytesMut::with_capacity(KEY_BYTES.saturating_add(garbage.len()));
        out.extend_from_slice(&ours.to_array());
        out.extend_from_slice(&garbage);
        Ok(V2Handshake {
            network: network.clone(),
            initiator,
            stage: Stage::Key { secret, ours, garbage, decoys: opts.decoys.clone() },
            sent: out.len(),
            out,
            buf: BytesMut::new(),
            pending: None,
            received: 0,
        })
    }

    /// The bytes to write now (empty when there are none). Write them before waiting to read.
    pub fn take_output(&mut self) -> BytesMut {
        self.out.split()
    }

    /// Whether bytes wait to be written.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Bytes received so far.
    pub fn bytes_received(&self) -> usize {
        self.received
    }

    /// The error for a stream that ended now: [`V2HandshakeError::ClosedBeforeAnyByte`] if the
    /// remote never sent a byte (a v1-only node, worth a v1 retry), else
    /// [`V2HandshakeError::Closed`].
    pub fn closed(&self) -> V2HandshakeError {
        if self.received == 0 { V2HandshakeError::ClosedBeforeAnyByte } else { V2HandshakeError::Closed }
    }

    /// Takes bytes read from the stream and goes as far as they allow: `Ok(Some(session))` when the
    /// remote's version packet is in (bytes past it are the session's `leftover`), `Ok(None)` when
    /// more are needed (write [`take_output`](V2Handshake::take_output) first). After an error or
    /// a session, nothing more is done.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Option<V2Session>, V2HandshakeError> {
        self.received = self.received.saturating_add(bytes.len());
        self.buf.extend_from_slice(bytes);
        match self.advance() {
            Ok(session) => Ok(session),
            Err(e) => {
                self.stage = Stage::Over;
                Err(e)
            }
        }
    }

    fn advance(&mut self) -> Result<Option<V2Session>, V2HandshakeError> {
        loop {
            match std::mem::replace(&mut self.stage, Stage::Over) {
                Stage::Key { secret, ours, garbage, decoys } => {
                    if self.buf.len() < KEY_BYTES {
                        self.stage = Stage::Key { secret, ours, garbage, decoys };
                        return Ok(None);
                    }
                    self.stage = self.keys(secret, &ours, &garbage, &decoys)?;
                }
                Stage::Terminator { ciphers, terminator, searched } => {
                    // At most 4,095 bytes of garbage, so the terminator ends within 4,111 bytes of
                    // the key (a terminator right after the largest garbage is found).
                    let window = self.buf.get(..self.buf.len().min(MAX_GARBAGE + TERMINATOR_BYTES)).unwrap_or_default();
                    let Some(at) = find_terminator(window, &terminator, searched) else {
                        if window.len() >= MAX_GARBAGE + TERMINATOR_BYTES {
                            return Err(V2HandshakeError::Packet(V2Error::Handshake("no garbage terminator")));
                        }
                        let searched = window.len().saturating_sub(TERMINATOR_BYTES - 1);
                        self.stage = Stage::Terminator { ciphers, terminator, searched };
                        return Ok(None);
                    };
                    let garbage = self.buf.split_to(at);
                    self.buf.advance(TERMINATOR_BYTES);
                    self.stage = Stage::Version { ciphers, garbage: Some(garbage) };
                }
                Stage::Version { mut ciphers, garbage } => {
                    let aad = garbage.as_deref().unwrap_or_default();
                    let Some(header) = self.next_packet(&mut ciphers.0, aad)? else {
                        self.stage = Stage::Version { ciphers, garbage };
                        return Ok(None);
                    };
                    // Decoys, then the version packet: the first packet whose header lacks the ignore
                    // bit (BIP324; reserved bits mean nothing).
                    if header & IGNORE_BIT != 0 {
                        self.stage = Stage::Version { ciphers, garbage: None };
                        continue;
                    }
                    return Ok(Some(self.session(*ciphers)));
                }
                Stage::Over => return Ok(None),
            }
        }
    }

    /// The remote's key is in: derive the session and queue our terminator, decoys and version
    /// packet (the first packet after our garbage carries it as associated data).
    fn keys(
        &mut self,
        secret: SecretKey,
        ours: &ElligatorSwift,
        garbage: &[u8],
        decoys: &[usize],
    ) -> Result<Stage, V2HandshakeError> {
        let mut key = [0u8; KEY_BYTES];
        key.copy_from_slice(self.buf.get(..KEY_BYTES).unwrap_or(&[0u8; KEY_BYTES]));
        self.buf.advance(KEY_BYTES);
        // A v1 version (for this network or another): its command sits where a key's bytes 4..16
        // would. Core's responder checks the same (`V2Transport::ProcessReceivedMaybeV1Bytes`).
        if key.get(4..16) == v1_prefix(&self.network).get(4..16) {
            return Err(V2HandshakeError::RemoteSpeaksV1);
        }
        let theirs = ElligatorSwift::from_array(key);
        let keys = session_keys(secret, ours, &theirs, self.initiator, self.network.magic().to_bytes());
        let (inbound, mut outbound) = keys.ciphers(self.initiator);
        let (send, recv) = if self.initiator {
            (keys.initiator_terminator, keys.responder_terminator)
        } else {
            (keys.responder_terminator, keys.initiator_terminator)
        };
        let before = self.out.len();
        self.out.extend_from_slice(&send);
        let mut aad: &[u8] = garbage;
        for &n in decoys {
            outbound
                .encrypt_into(IGNORE_BIT, aad, &mut self.out, |o| o.resize(o.len().saturating_add(n.min(1 << 16)), 0));
            aad = &[];
        }
        outbound.encrypt_into(0, aad, &mut self.out, |_| {});
        self.sent = self.sent.saturating_add(self.out.len().saturating_sub(before));
        Ok(Stage::Terminator { ciphers: Box::new((inbound, outbound)), terminator: recv, searched: 0 })
    }

    /// Authenticates and decrypts the next whole packet in the buffer, returning its header byte;
    /// `None` until it is all in. Its length is checked against the network's limit first.
    fn next_packet(&mut self, cipher: &mut InboundCipher, aad: &[u8]) -> Result<Option<u8>, V2HandshakeError> {
        let contents = match self.pending {
            Some(contents) => contents,
            None => {
                let Some(prefix) = self.buf.get(..LENGTH_BYTES).and_then(|p| <[u8; LENGTH_BYTES]>::try_from(p).ok())
                else {
                    return Ok(None);
                };
                let contents = cipher.decrypt_length(prefix);
                let max = max_contents(self.network.max_payload());
                if contents > max {
                    return Err(V2HandshakeError::Packet(V2Error::PacketTooLarge { length: contents, max }));
                }
                self.buf.advance(LENGTH_BYTES);
                self.pending = Some(contents);
                contents
            }
        };
        let len = contents.saturating_add(OVERHEAD);
        if self.buf.len() < len {
            return Ok(None);
        }
        self.pending = None;
        let mut packet = self.buf.split_to(len);
        cipher.decrypt(&mut packet, aad).map_err(|_| V2HandshakeError::Packet(V2Error::Authentication))?;
        Ok(Some(packet.first().copied().unwrap_or(0)))
    }

    fn session(&mut self, (inbound, outbound): (InboundCipher, OutboundCipher)) -> V2Session {
        // Bytes past the version packet belong to the first message and are counted with it. They
        // get a buffer of their own: the handshake's (garbage included, kilobytes) is released,
        // instead of being held by every idle peer for as long as it lives.
        let leftover = if self.buf.is_empty() { BytesMut::new() } else { BytesMut::from(&self.buf[..]) };
        self.buf = BytesMut::new();
        V2Session {
            decoder: V2Decoder::new(inbound, self.network.max_payload()),
            encoder: V2Encoder::new(outbound),
            bytes_received: self.received.saturating_sub(leftover.len()),
            leftover,
            bytes_sent: self.sent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(garbage: usize, decoys: Vec<usize>) -> V2Options {
        V2Options { garbage_len: Some(garbage), decoys }
    }

    /// Runs both sides, delivering each side's output to the other in chunks of `chunk` bytes.
    fn run(a_opts: &V2Options, b_opts: &V2Options, chunk: usize) -> (V2Session, V2Session) {
        let net = Network::REGTEST;
        let mut a = V2Handshake::initiator(&net, a_opts).unwrap();
        let mut b = V2Handshake::responder(&net, b_opts).unwrap();
        let (mut sa, mut sb) = (None, None);
        for _ in 0..10_000 {
            let (to_b, to_a) = (a.take_output(), b.take_output());
            for c in to_b.chunks(chunk) {
                if sb.is_none() {
                    sb = b.receive(c).unwrap();
                }
            }
            for c in to_a.chunks(chunk) {
                if sa.is_none() {
                    sa = a.receive(c).unwrap();
                }
            }
            if sa.is_some() && sb.is_some() && a.take_output().is_empty() && b.take_output().is_empty() {
                break;
            }
        }
        (sa.unwrap(), sb.unwrap())
    }

    #[test]
    fn r_t4_both_roles_agree_whatever_the_chunking() {
        for chunk in [1, 7, 64, 5000] {
            let (mut a, mut b) = run(&opts(100, vec![3, 0]), &opts(MAX_GARBAGE, vec![]), chunk);
            let mut wire = BytesMut::new();
            b.encoder.encode(crate::wire::Command::PING, &[1u8; 8], &mut wire);
            let (frame, _) = a.decoder.decode(&mut wire).unwrap().unwrap();
            assert_eq!(frame.command, crate::wire::Command::PING);
            assert_eq!(a.bytes_sent, b.bytes_received, "chunk {chunk}");
            assert_eq!(b.bytes_sent, a.bytes_received, "chunk {chunk}");
        }
    }

    #[test]
    fn r_t4_bytes_past_the_version_packet_are_the_sessions_leftover() {
        let net = Network::REGTEST;
        let mut a = V2Handshake::initiator(&net, &opts(0, vec![])).unwrap();
        let mut b = V2Handshake::responder(&net, &opts(0, vec![])).unwrap();
        assert!(b.receive(&a.take_output()).unwrap().is_none());
        let mut to_a = b.take_output();
        to_a.extend_from_slice(b"next message");
        assert!(a.receive(&to_a).unwrap().is_some_and(|s| &s.leftover[..] == b"next message"));
    }

    #[test]
    fn r_t4_a_v1_version_in_place_of_a_key_is_named() {
        let net = Network::REGTEST;
        let mut a = V2Handshake::initiator(&net, &opts(0, vec![])).unwrap();
        let mut v1 = v1_prefix(&net).to_vec();
        v1.resize(KEY_BYTES, 0);
        assert!(matches!(a.receive(&v1), Err(V2HandshakeError::RemoteSpeaksV1)));
        assert!(matches!(a.closed(), V2HandshakeError::Closed));
        assert!(matches!(
            V2Handshake::initiator(&net, &opts(0, vec![])).unwrap().closed(),
            V2HandshakeError::ClosedBeforeAnyByte
        ));
    }

    #[test]
    fn r_w3_no_terminator_in_4111_bytes_fails_and_holds_only_what_arrived() {
        let net = Network::REGTEST;
        let mut a = V2Handshake::initiator(&net, &opts(0, vec![])).unwrap();
        let mut b = V2Handshake::responder(&net, &opts(0, vec![])).unwrap();
        b.receive(&a.take_output()).unwrap();
        let key = b.take_output().split_to(KEY_BYTES);
        assert!(a.receive(&key).unwrap().is_none());
        for _ in 0..MAX_GARBAGE + 15 {
            assert!(a.receive(&[0x5a]).unwrap().is_none());
        }
        assert!(a.buf.capacity() < 64 * 1024);
        assert!(matches!(a.receive(&[0x5a]), Err(V2HandshakeError::Packet(V2Error::Handshake(_)))));
    }

    #[test]
    fn detect_v1_decides_at_the_first_differing_byte() {
        let net = Network::REGTEST;
        let prefix = v1_prefix(&net);
        assert_eq!(detect_v1(&prefix[..5], &net), None);
        assert_eq!(detect_v1(&prefix, &net), Some(true));
        assert_eq!(detect_v1(&[prefix[0] ^ 1], &net), Some(false));
        assert_eq!(detect_v1(&[], &net), None);
    }
}
