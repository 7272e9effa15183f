//! The BIP324 handshake over an async stream, and telling a v1 initiator from a v2 one.
//!
//! The `bip324` crate provides the key exchange and the state machine; this module moves the bytes:
//! the 64-byte ElligatorSwift key and 0–4,095 bytes of random garbage, the garbage terminator,
//! optional decoy packets and the version packet (whose contents are ignored), in both roles.
//!
//! An inbound peer that accepts both transports reads at most the first 16 bytes: if they are the
//! network magic followed by `version` padded with NULs, the remote speaks v1 and those bytes are
//! handed to the v1 reader unchanged; at the first byte that differs, it is a v2 key. An outbound
//! peer whose remote closes without sending a single byte learns that a v1 retry is worth trying.

use bip324::{GarbageResult, Handshake, Initialized, ReceivedKey, Role, VersionResult};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::v2::{IGNORE_BIT, LENGTH_BYTES, OVERHEAD, V2Decoder, V2Encoder, V2Error, max_contents};
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
        buf.reserve(want.saturating_sub(buf.len()).max(256));
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

/// Whether a decrypted packet (header byte first) is genuine: its ignore bit is clear.
fn is_genuine(packet: &[u8]) -> bool {
    packet.first().is_some_and(|h| h & IGNORE_BIT == 0)
}

/// Reads one packet's encrypted length (decrypted by `decrypt_len`, which the caller's cipher
/// advances), checks it against `max` before reserving anything, and returns the packet's bytes.
async fn next_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
    rest: &mut BytesMut,
    received: &mut usize,
    max: usize,
    decrypt_len: impl FnOnce([u8; LENGTH_BYTES]) -> Option<usize>,
) -> Result<BytesMut, V2HandshakeError> {
    fill(reader, rest, LENGTH_BYTES, received).await?;
    let mut prefix = [0u8; LENGTH_BYTES];
    prefix.copy_from_slice(rest.get(..LENGTH_BYTES).unwrap_or(&[0; LENGTH_BYTES]));
    let len = decrypt_len(prefix).ok_or(V2HandshakeError::Packet(V2Error::Handshake("key exchange failed")))?;
    let contents = len.saturating_sub(OVERHEAD);
    if contents > max {
        return Err(V2HandshakeError::Packet(V2Error::PacketTooLarge { length: contents, max }));
    }
    rest.advance(LENGTH_BYTES);
    fill(reader, rest, len, received).await?;
    Ok(rest.split_to(len))
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

/// Secret keys come from the OS's CSPRNG.
struct OsRandom;

impl bip324::FillBytes for OsRandom {
    fn fill_bytes(&mut self, dest: &mut [u8; 32]) {
        // A failed OS source leaves zeros, which is not a valid key: the handshake then fails.
        let _ = getrandom::fill(dest);
    }
}

/// One signing context for every handshake (the crate's `Handshake::new` builds one per call).
fn curve() -> &'static bitcoin::secp256k1::Secp256k1<bitcoin::secp256k1::SignOnly> {
    static CURVE: std::sync::OnceLock<bitcoin::secp256k1::Secp256k1<bitcoin::secp256k1::SignOnly>> =
        std::sync::OnceLock::new();
    CURVE.get_or_init(bitcoin::secp256k1::Secp256k1::signing_only)
}

fn crypto(_: bip324::Error) -> V2HandshakeError {
    V2HandshakeError::Packet(V2Error::Handshake("key exchange failed"))
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
    run(reader, writer, network, opts, Role::Initiator, BytesMut::new(), 0).await
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
    run(reader, writer, network, opts, Role::Responder, buf, already).await
}

async fn run<R, W>(
    reader: &mut R,
    writer: &mut W,
    network: &Network,
    opts: &V2Options,
    role: Role,
    mut buf: BytesMut,
    mut received: usize,
) -> Result<V2Session, V2HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let magic = network.magic().to_bytes();
    let garbage = garbage(opts);
    let hs = Handshake::<Initialized>::new_with_rng(magic, role, &mut OsRandom, curve()).map_err(crypto)?;
    let mut out = vec![0u8; Handshake::<Initialized>::send_key_len(Some(&garbage))];
    let hs = hs.send_key(Some(&garbage), &mut out).map_err(crypto)?;
    writer.write_all(&out).await.map_err(|e| early_close(e, received))?;
    writer.flush().await.map_err(|e| early_close(e, received))?;
    let mut sent = out.len();

    fill(reader, &mut buf, KEY_BYTES, &mut received).await?;
    let mut key = [0u8; KEY_BYTES];
    key.copy_from_slice(buf.get(..KEY_BYTES).unwrap_or(&[0u8; KEY_BYTES]));
    buf.advance(KEY_BYTES);
    // A v1 version for another network: its command sits where a key's bytes 4..16 would.
    if key.get(4..16) == v1_prefix(network).get(4..16) {
        return Err(V2HandshakeError::RemoteSpeaksV1);
    }
    let hs = match hs.receive_key(key) {
        Ok(hs) => hs,
        Err(bip324::Error::V1Protocol) => return Err(V2HandshakeError::RemoteSpeaksV1),
        Err(e) => return Err(crypto(e)),
    };

    let decoys: Vec<Vec<u8>> = opts.decoys.iter().map(|&n| vec![0u8; n.min(1 << 16)]).collect();
    let decoy_refs: Vec<&[u8]> = decoys.iter().map(Vec::as_slice).collect();
    let mut out = vec![0u8; Handshake::<ReceivedKey<'_>>::send_version_len(Some(&decoy_refs))];
    let mut hs = hs.send_version(&mut out, Some(&decoy_refs)).map_err(crypto)?;
    writer.write_all(&out).await.map_err(|e| early_close(e, received))?;
    writer.flush().await.map_err(|e| early_close(e, received))?;
    sent = sent.saturating_add(out.len());

    // The remote's garbage and terminator: the crate searches at most 4,095 + 16 bytes, so a
    // terminator right after the largest garbage is found.
    let (mut hs, mut rest) = loop {
        match hs.receive_garbage(&buf) {
            Ok(GarbageResult::FoundGarbage { handshake, consumed_bytes }) => {
                let rest = BytesMut::from(buf.get(consumed_bytes..).unwrap_or_default());
                break (handshake, rest);
            }
            Ok(GarbageResult::NeedMoreData(h)) => hs = h,
            Err(_) => return Err(V2HandshakeError::Packet(V2Error::Handshake("no garbage terminator"))),
        }
        let want = buf.len().saturating_add(1);
        fill(reader, &mut buf, want, &mut received).await?;
    };

    // Decoys, then the version packet. A packet is a decoy when its header has the ignore bit set,
    // whatever the reserved bits are (BIP324; Core's `V2Transport::ProcessReceivedPacketBytes`);
    // the crate only calls a header of exactly 0x80 a decoy, so its answer is checked here. Decrypting
    // advances the cipher the same way for either kind, so a misread decoy leaves the cipher right.
    let max = max_contents(network.max_payload());
    let cipher = loop {
        let mut packet = next_packet(reader, &mut rest, &mut received, max, |p| hs.decrypt_packet_len(p).ok()).await?;
        match hs.receive_version(&mut packet) {
            Ok(VersionResult::Complete { cipher }) if is_genuine(&packet) => break cipher,
            Ok(VersionResult::Complete { cipher }) => {
                // A decoy the crate took for the version: read on with the session's cipher (only
                // the first packet after the garbage authenticates it).
                let mut cipher = cipher;
                loop {
                    let inbound = cipher.inbound();
                    let mut packet =
                        next_packet(reader, &mut rest, &mut received, max, |p| Some(inbound.decrypt_packet_len(p)))
                            .await?;
                    if inbound.decrypt_in_place(&mut packet, None).is_err() {
                        return Err(V2HandshakeError::Packet(V2Error::Authentication));
                    }
                    if is_genuine(&packet) {
                        break;
                    }
                }
                break cipher;
            }
            Ok(VersionResult::Decoy(h)) => hs = h,
            Err(_) => return Err(V2HandshakeError::Packet(V2Error::Authentication)),
        }
    };
    let (inbound, outbound) = cipher.into_split();
    Ok(V2Session {
        decoder: V2Decoder::new(inbound, network.max_payload()),
        encoder: V2Encoder::new(outbound),
        // Bytes read past the version packet belong to the first message and are counted with it.
        bytes_received: received.saturating_sub(rest.len()),
        leftover: rest,
        bytes_sent: sent,
    })
}
