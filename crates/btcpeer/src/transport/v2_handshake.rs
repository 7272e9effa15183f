//! The BIP324 handshake over an async stream, and telling a v1 initiator from a v2 one.
//!
//! Both roles of BIP324's handshake: the 64-byte ElligatorSwift key and 0–4,095 bytes of random
//! garbage, the ECDH and key derivation ([`SessionKeys`]), the garbage terminator, optional decoy
//! packets, and the version packet (whose contents are ignored; the first packet after the garbage
//! authenticates it). The curve work is libsecp256k1's (one context for the process); everything
//! else is allocation-light: one buffer out, the read buffer in.
//!
//! An inbound peer that accepts both transports reads at most the first 16 bytes: if they are the
//! network magic followed by `version` padded with NULs, the remote speaks v1 and those bytes are
//! handed to the v1 reader unchanged; at the first byte that differs, it is a v2 key. An outbound
//! peer whose remote closes without sending a single byte learns that a v1 retry is worth trying.

use bitcoin::secp256k1::ellswift::{ElligatorSwift, ElligatorSwiftParty};
use bitcoin::secp256k1::{All, Secp256k1, SecretKey};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::v2::{IGNORE_BIT, LENGTH_BYTES, OVERHEAD, V2Decoder, V2Encoder, V2Error, max_contents};
use super::v2_cipher::{InboundCipher, SessionKeys};
use crate::network::Network;

/// Bytes of an ElligatorSwift public key.
const KEY_BYTES: usize = 64;
/// The most garbage BIP324 allows before the terminator.
pub const MAX_GARBAGE: usize = 4095;

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

/// Reads until the bytes in `buf` either are the 16-byte v1 prefix (`Ok(true)`) or differ from it
/// (`Ok(false)`). Reads no further than needed to decide, apart from what one read returns.
pub async fn detect_v1<R: AsyncRead + Unpin>(
    reader: &mut R,
    network: &Network,
    buf: &mut BytesMut,
) -> Result<bool, V2HandshakeError> {
    let prefix = v1_prefix(network);
    loop {
        let n = buf.len().min(16);
        if buf.get(..n) != prefix.get(..n) {
            return Ok(false);
        }
        if n == 16 {
            return Ok(true);
        }
        buf.reserve(64);
        if reader.read_buf(buf).await? == 0 {
            return Err(if buf.is_empty() { V2HandshakeError::ClosedBeforeAnyByte } else { V2HandshakeError::Closed });
        }
    }
}

/// A reset or broken pipe before the remote sent anything means the same as a clean close: over
/// TCP, a v1-only node that still has our unread key in its buffer answers with a reset.
fn early_close(e: std::io::Error, received: usize) -> V2HandshakeError {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    match e.kind() {
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof if received == 0 => {
            V2HandshakeError::ClosedBeforeAnyByte
        }
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => V2HandshakeError::Closed,
        _ => V2HandshakeError::Io(e),
    }
}

async fn fill<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    want: usize,
    received: &mut usize,
) -> Result<(), V2HandshakeError> {
    while buf.len() < want {
        // In steps, as in steady state: a remote announcing a 4 MB decoy and sending nothing
        // does not make us reserve 4 MB.
        super::reserve_towards(buf, want);
        buf.reserve(256);
        let n = reader.read_buf(buf).await.map_err(|e| early_close(e, *received))?;
        if n == 0 {
            return Err(if *received == 0 && buf.is_empty() {
                V2HandshakeError::ClosedBeforeAnyByte
            } else {
                V2HandshakeError::Closed
            });
        }
        *received = received.saturating_add(n);
    }
    Ok(())
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
/// use btcpeer::transport::v2_handshake::{ephemeral_key, session_keys};
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

/// Reads one packet's encrypted length with `cipher`, checks it against `max` before reserving
/// anything, and authenticates and decrypts the packet with `aad`. Returns its plaintext (header byte
/// first, tag bytes left at the end).
async fn next_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
    rest: &mut BytesMut,
    received: &mut usize,
    max: usize,
    cipher: &mut InboundCipher,
    aad: &[u8],
) -> Result<BytesMut, V2HandshakeError> {
    fill(reader, rest, LENGTH_BYTES, received).await?;
    let mut prefix = [0u8; LENGTH_BYTES];
    prefix.copy_from_slice(rest.get(..LENGTH_BYTES).unwrap_or(&[0; LENGTH_BYTES]));
    let contents = cipher.decrypt_length(prefix);
    if contents > max {
        return Err(V2HandshakeError::Packet(V2Error::PacketTooLarge { length: contents, max }));
    }
    rest.advance(LENGTH_BYTES);
    let len = contents.saturating_add(OVERHEAD);
    fill(reader, rest, len, received).await?;
    let mut packet = rest.split_to(len);
    cipher.decrypt(&mut packet, aad).map_err(|_| V2HandshakeError::Packet(V2Error::Authentication))?;
    Ok(packet)
}

/// Where the 16-byte `terminator` starts in `buf`, looking from `from` (a terminator cannot start
/// earlier than where the last search ended, less 15 bytes).
fn find_terminator(buf: &[u8], terminator: &[u8; 16], from: usize) -> Option<usize> {
    buf.get(from..)?.windows(16).position(|w| w == terminator).map(|p| p.saturating_add(from))
}

/// Runs the handshake as the initiator (outbound).
pub async fn initiate<R, W>(
    reader: &mut R,
    writer: &mut W,
    network: &Network,
    opts: &V2Options,
) -> Result<V2Session, V2HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    run(reader, writer, network, opts, true, BytesMut::new(), 0).await
}

/// Runs the handshake as the responder (inbound), after [`detect_v1`] found a v2 key starting in
/// `buf`.
pub async fn respond<R, W>(
    reader: &mut R,
    writer: &mut W,
    network: &Network,
    opts: &V2Options,
    buf: BytesMut,
) -> Result<V2Session, V2HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let already = buf.len();
    run(reader, writer, network, opts, false, buf, already).await
}

async fn run<R, W>(
    reader: &mut R,
    writer: &mut W,
    network: &Network,
    opts: &V2Options,
    initiator: bool,
    mut buf: BytesMut,
    mut received: usize,
) -> Result<V2Session, V2HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let magic = network.magic().to_bytes();
    let garbage = garbage(opts);
    let (secret, ours) = ephemeral_key()?;
    let mut out = Vec::with_capacity(KEY_BYTES.saturating_add(garbage.len()));
    out.extend_from_slice(&ours.to_array());
    out.extend_from_slice(&garbage);
    writer.write_all(&out).await.map_err(|e| early_close(e, received))?;
    writer.flush().await.map_err(|e| early_close(e, received))?;
    let mut sent = out.len();

    fill(reader, &mut buf, KEY_BYTES, &mut received).await?;
    let mut key = [0u8; KEY_BYTES];
    key.copy_from_slice(buf.get(..KEY_BYTES).unwrap_or(&[0u8; KEY_BYTES]));
    buf.advance(KEY_BYTES);
    // A v1 version (for this network or another): its command sits where a key's bytes 4..16
    // would. Core's responder checks the same (`V2Transport::ProcessReceivedMaybeV1Bytes`).
    if key.get(4..16) == v1_prefix(network).get(4..16) {
        return Err(V2HandshakeError::RemoteSpeaksV1);
    }
    let theirs = ElligatorSwift::from_array(key);
    let keys = session_keys(secret, &ours, &theirs, initiator, magic);
    let (mut inbound, mut outbound) = keys.ciphers(initiator);
    let (send_terminator, recv_terminator) = if initiator {
        (keys.initiator_terminator, keys.responder_terminator)
    } else {
        (keys.responder_terminator, keys.initiator_terminator)
    };

    // Our terminator, decoys, then the version packet (empty contents); the first packet after
    // the garbage carries it as associated data.
    let decoy_bytes = opts.decoys.iter().fold(0usize, |sum, &n| sum.saturating_add(n.min(1 << 16)).saturating_add(20));
    let mut packets = BytesMut::with_capacity(decoy_bytes.saturating_add(36));
    packets.extend_from_slice(&send_terminator);
    let mut aad: &[u8] = &garbage;
    for &n in &opts.decoys {
        outbound.encrypt_into(IGNORE_BIT, aad, &mut packets, |o| o.resize(o.len().saturating_add(n.min(1 << 16)), 0));
        aad = &[];
    }
    outbound.encrypt_into(0, aad, &mut packets, |_| {});
    writer.write_all(&packets).await.map_err(|e| early_close(e, received))?;
    writer.flush().await.map_err(|e| early_close(e, received))?;
    sent = sent.saturating_add(packets.len());

    // The remote's garbage and terminator: at most 4,095 bytes of garbage, so the terminator ends
    // within 4,111 bytes of the key (a terminator right after the largest garbage is found).
    let mut searched = 0;
    let garbage_len = loop {
        let window = buf.get(..buf.len().min(MAX_GARBAGE + 16)).unwrap_or_default();
        if let Some(at) = find_terminator(window, &recv_terminator, searched) {
            break at;
        }
        if window.len() >= MAX_GARBAGE + 16 {
            return Err(V2HandshakeError::Packet(V2Error::Handshake("no garbage terminator")));
        }
        searched = window.len().saturating_sub(15);
        let want = buf.len().saturating_add(1);
        fill(reader, &mut buf, want, &mut received).await?;
    };
    let their_garbage = buf.split_to(garbage_len);
    buf.advance(16);

    // Decoys, then the version packet: the first packet whose header lacks the ignore bit (BIP324;
    // reserved bits mean nothing).
    let max = max_contents(network.max_payload());
    let mut aad: &[u8] = &their_garbage;
    loop {
        let packet = next_packet(reader, &mut buf, &mut received, max, &mut inbound, aad).await?;
        aad = &[];
        if packet.first().is_some_and(|h| h & IGNORE_BIT == 0) {
            break;
        }
    }
    // Bytes read past the version packet belong to the first message and are counted with it. They
    // get a buffer of their own: the handshake's (garbage included, kilobytes) is released, instead
    // of being held by every idle peer for as long as it lives.
    let bytes_received = received.saturating_sub(buf.len());
    let leftover = if buf.is_empty() { BytesMut::new() } else { BytesMut::from(&buf[..]) };
    Ok(V2Session {
        decoder: V2Decoder::new(inbound, network.max_payload()),
        encoder: V2Encoder::new(outbound),
        bytes_received,
        leftover,
        bytes_sent: sent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn r_w3_a_large_announced_packet_reserves_room_in_steps_during_the_handshake() {
        let (mut remote, mut ours) = tokio::io::duplex(1 << 16);
        remote.write_all(&[7; 10]).await.unwrap();
        let (mut buf, mut received) = (BytesMut::new(), 0);
        // A packet announced at 4 MB of which 10 bytes arrive: the wait goes on, the room does not.
        let waited = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            fill(&mut ours, &mut buf, 4_000_000, &mut received),
        )
        .await;
        assert!(waited.is_err(), "still waiting for the rest");
        assert_eq!(received, 10);
        assert!(buf.capacity() <= 512 * 1024, "reserved {} bytes for 10 received", buf.capacity());
    }
}
