//! The BIP324 handshake over an async stream: the core's state machine
//! ([`btcpeer_core::transport::v2_handshake::V2Handshake`]) driven by reads and writes, and telling
//! a v1 initiator from a v2 one on an inbound stream.
//!
//! An inbound peer that accepts both transports reads at most the first 16 bytes: if they are the
//! network magic followed by `version` padded with NULs, the remote speaks v1 and those bytes are
//! handed to the v1 reader unchanged; at the first byte that differs, it is a v2 key. An outbound
//! peer whose remote closes without sending a single byte learns that a v1 retry is worth trying.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use btcpeer_core::transport::v2_handshake::{
    MAX_GARBAGE, V2Handshake, V2HandshakeError, V2Options, V2Session, ephemeral_key, session_keys, v1_prefix,
};

use crate::network::Network;

/// Bytes read from the stream at a time during the handshake.
const READ_CHUNK: usize = 4096;

/// Reads until the bytes in `buf` either are the 16-byte v1 prefix (`Ok(true)`) or differ from it
/// (`Ok(false)`). Reads no further than needed to decide, apart from what one read returns.
pub async fn detect_v1<R: AsyncRead + Unpin>(
    reader: &mut R,
    network: &Network,
    buf: &mut BytesMut,
) -> Result<bool, V2HandshakeError> {
    loop {
        if let Some(v1) = btcpeer_core::transport::v2_handshake::detect_v1(buf, network) {
            return Ok(v1);
        }
        buf.reserve(64);
        if reader.read_buf(buf).await? == 0 {
            return Err(if buf.is_empty() { V2HandshakeError::ClosedBeforeAnyByte } else { V2HandshakeError::Closed });
        }
    }
}

/// A reset or broken pipe before the remote sent anything means the same as a clean close: over
/// TCP, a v1-only node that still has our unread key in its buffer answers with a reset.
fn early_close(e: std::io::Error, handshake: &V2Handshake) -> V2HandshakeError {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    match e.kind() {
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => handshake.closed(),
        _ => V2HandshakeError::Io(e),
    }
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
    drive(reader, writer, V2Handshake::initiator(network, opts)?, BytesMut::new()).await
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
    drive(reader, writer, V2Handshake::responder(network, opts)?, buf).await
}

/// Writes what the state machine has to say, reads, feeds it, until a session comes out.
async fn drive<R, W>(
    reader: &mut R,
    writer: &mut W,
    mut handshake: V2Handshake,
    first: BytesMut,
) -> Result<V2Session, V2HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut input = first;
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        // Our bytes go out before we wait: each side's key first, then its packets.
        flush_output(writer, &mut handshake).await?;
        let session = if input.is_empty() {
            let n = reader.read(&mut chunk).await.map_err(|e| early_close(e, &handshake))?;
            if n == 0 {
                return Err(handshake.closed());
            }
            handshake.receive(chunk.get(..n).unwrap_or_default())?
        } else {
            handshake.receive(&input.split())?
        };
        if let Some(session) = session {
            // A responder that got the initiator's key and version packet in one read still has its
            // own packets to send.
            flush_output(writer, &mut handshake).await?;
            return Ok(session);
        }
    }
}

/// Writes what the state machine has queued, if anything.
async fn flush_output<W: AsyncWrite + Unpin>(
    writer: &mut W,
    handshake: &mut V2Handshake,
) -> Result<(), V2HandshakeError> {
    let out = handshake.take_output();
    if !out.is_empty() {
        writer.write_all(&out).await.map_err(|e| early_close(e, handshake))?;
        writer.flush().await.map_err(|e| early_close(e, handshake))?;
    }
    Ok(())
}
