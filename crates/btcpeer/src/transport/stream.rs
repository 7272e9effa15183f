//! Reading and writing v1 frames on the halves of an async byte stream.
//!
//! The reader keeps one buffer that grows only as bytes arrive (the codec reserves at most 256 KiB
//! ahead of them) and is released once it is empty and the socket drained; an idle reader waits on a
//! small buffer on its stack, so idle peers hold no read buffer at all. The writer frames a batch of encoded payloads into one reused buffer and writes it with
//! one call; payloads above [`DIRECT_WRITE`] go straight from their `Bytes` without a copy.

// Some helpers serve only the tests and fuzz targets (feature `internals`).
#![cfg_attr(not(feature = "internals"), allow(dead_code))]

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::v1::{V1Codec, V1Error};
use super::v2::{V2Decoder, V2Encoder, V2Error};
use super::v2_handshake::V2Session;
use crate::network::Network;
use crate::wire::frame::{FrameHeader, HEADER_LEN, RawFrame, checksum};
use crate::wire::{Command, FrameError};

/// Payloads at least this large are written from their own buffer instead of being copied.
pub const DIRECT_WRITE: usize = 64 * 1024;
/// Write buffers larger than this are released once written (an idle peer keeps little).
const KEEP_WRITE_BUFFER: usize = 4 * 1024;
/// Bytes reserved for a read when the buffer has no room.
const READ_STEP: usize = 16 * 1024;
/// Bytes an idle reader waits with, on its stack.
const IDLE_READ: usize = 256;

/// Why reading a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream ended (cleanly or inside a frame).
    #[error("stream closed")]
    Closed,
    /// A frame was refused.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A v2 packet was refused.
    #[error(transparent)]
    V2(#[from] V2Error),
    /// A frame or packet was dropped unread, as Bitcoin Core drops it; the stream is still in sync
    /// and reading can go on.
    #[error("{error}")]
    Dropped {
        /// Why it was dropped.
        error: DroppedFrame,
        /// Bytes it took on the wire.
        bytes: usize,
    },
    /// The stream failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Why a frame or packet was dropped without ending the connection (Core's `reject_message` in
/// `V1Transport::GetReceivedMessage` and `V2Transport::GetReceivedMessage`, `net.cpp`).
/// A frame dropped unread, as Core drops it (the core's type).
pub use btcpeer_core::transport::framing::Dropped as DroppedFrame;

#[derive(Debug)]
enum ReadCodec {
    V1(V1Codec),
    V2(Box<V2Decoder>),
}

/// Reads frames (v1) or packets (v2) from an async byte stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    codec: ReadCodec,
    /// Whether the last read returned less than it had room for (the socket was drained).
    caught_up: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames of `network` from `inner`.
    pub fn new(inner: R, network: Network) -> Self {
        FrameReader { inner, buf: BytesMut::new(), codec: ReadCodec::V1(V1Codec::new(network)), caught_up: true }
    }

    /// Reads v1 frames, starting with bytes already read from the stream (while telling v1 from v2).
    pub fn with_prefix(inner: R, network: Network, prefix: BytesMut) -> Self {
        FrameReader { inner, buf: prefix, codec: ReadCodec::V1(V1Codec::new(network)), caught_up: true }
    }

    /// Reads v2 packets of an established session, starting with the bytes read past its handshake.
    pub fn v2(inner: R, decoder: V2Decoder, leftover: BytesMut) -> Self {
        FrameReader { inner, buf: leftover, codec: ReadCodec::V2(Box::new(decoder)), caught_up: true }
    }

    /// Whether this reader decrypts v2 packets.
    pub fn is_v2(&self) -> bool {
        matches!(self.codec, ReadCodec::V2(_))
    }

    /// The stream, for a handshake that runs before framing starts.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Takes the bytes read but not yet consumed (to hand them to another codec).
    pub fn take_buffered(&mut self) -> BytesMut {
        std::mem::take(&mut self.buf)
    }

    /// Reads the next frame, returning it and its size on the wire. Cancel-safe: a frame partly read
    /// stays in the buffer for the next call. After [`ReadError::Dropped`] the reader is in sync and
    /// may be called again; after any other error the stream is finished.
    pub async fn read_frame(&mut self) -> Result<(RawFrame, usize), ReadError> {
        loop {
            let decoded = match &mut self.codec {
                ReadCodec::V1(codec) => match codec.decode_frame(&mut self.buf) {
                    Ok(frame) => frame.map(|f| {
                        let wire = f.payload.len().saturating_add(HEADER_LEN);
                        (f, wire)
                    }),
                    Err(V1Error::Dropped { error, bytes }) => {
                        return Err(ReadError::Dropped { error: DroppedFrame::Frame(error), bytes });
                    }
                    Err(V1Error::Frame(e)) => return Err(ReadError::Frame(e)),
                    Err(V1Error::Io(e)) => return Err(ReadError::Io(e)),
                    // Decoding never encodes; any error a later codec adds ends the stream.
                    Err(e) => return Err(ReadError::Io(std::io::Error::other(e.to_string()))),
                },
                ReadCodec::V2(decoder) => match decoder.decode(&mut self.buf) {
                    Ok(decoded) => decoded,
                    Err(e) if e.is_droppable() => {
                        let bytes = decoder.last_packet_len();
                        return Err(ReadError::Dropped { error: DroppedFrame::Packet(e), bytes });
                    }
                    Err(e) => return Err(e.into()),
                },
            };
            if let Some((frame, wire)) = decoded {
                if self.buf.is_empty() && self.caught_up {
                    // Nothing pending and the last read drained the socket: release the buffer
                    // (payloads handed on keep their share alive only as long as they are held),
                    // and the v2 cipher's key object.
                    self.buf = BytesMut::new();
                    if let ReadCodec::V2(decoder) = &mut self.codec {
                        decoder.release();
                    }
                }
                return Ok((frame, wire));
            }
            if self.buf.is_empty() && self.buf.capacity() == 0 {
                // Idle: wait for bytes with a small buffer on the task's stack, so that thousands of
                // idle peers hold no read buffer at all; the heap buffer appears when data does.
                let mut first = [0u8; IDLE_READ];
                let n = self.inner.read(&mut first).await?;
                if n == 0 {
                    return Err(ReadError::Closed);
                }
                self.buf.extend_from_slice(first.get(..n).unwrap_or_default());
                self.caught_up = n < IDLE_READ;
                if !self.caught_up {
                    self.buf.reserve(READ_STEP);
                }
                continue;
            }
            if self.buf.capacity() == self.buf.len() {
                self.buf.reserve(READ_STEP);
            }
            let spare = self.buf.capacity().saturating_sub(self.buf.len());
            let n = self.inner.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(ReadError::Closed);
            }
            self.caught_up = n < spare;
        }
    }

    /// Bytes read but not yet consumed as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The reader's buffer capacity (for memory accounting).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Gives back the stream.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

#[derive(Debug)]
enum WriteCodec {
    V1(Network),
    V2(Box<V2Encoder>),
}

/// Writes frames (v1) or packets (v2) to an async byte stream.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    buf: BytesMut,
    codec: WriteCodec,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Writes frames of `network` to `inner`.
    pub fn new(inner: W, network: Network) -> Self {
        FrameWriter { inner, buf: BytesMut::new(), codec: WriteCodec::V1(network) }
    }

    /// Writes v2 packets of an established session.
    pub fn v2(inner: W, encoder: V2Encoder) -> Self {
        FrameWriter { inner, buf: BytesMut::new(), codec: WriteCodec::V2(Box::new(encoder)) }
    }

    /// Whether this writer encrypts v2 packets.
    pub fn is_v2(&self) -> bool {
        matches!(self.codec, WriteCodec::V2(_))
    }

    /// Frames `payload` into the pending batch: a v1 header (length and checksum, one hash pass), or
    /// a v2 packet (encrypted). Returns its size on the wire.
    pub fn push(&mut self, command: Command, payload: &Bytes) -> usize {
        self.push_checked(command, payload, None)
    }

    /// Like [`FrameWriter::push`], with the payload's v1 checksum if it is already known.
    pub fn push_checked(&mut self, command: Command, payload: &Bytes, known: Option<[u8; 4]>) -> usize {
        match &mut self.codec {
            WriteCodec::V1(network) => {
                let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
                let checksum = known.unwrap_or_else(|| checksum(payload));
                let header = FrameHeader { magic: network.magic(), command, length, checksum };
                self.buf.extend_from_slice(&header.to_bytes());
                self.buf.extend_from_slice(payload);
                payload.len().saturating_add(HEADER_LEN)
            }
            WriteCodec::V2(encoder) => encoder.encode(command, payload, &mut self.buf),
        }
    }

    /// The size on the wire of a message with this command and payload length.
    pub fn wire_len(&self, command: Command, payload_len: usize) -> usize {
        match &self.codec {
            WriteCodec::V1(_) => payload_len.saturating_add(HEADER_LEN),
            WriteCodec::V2(_) => {
                let id = if super::v2::short_id(command).is_some() { 1 } else { 1 + crate::wire::COMMAND_LEN };
                payload_len.saturating_add(id).saturating_add(super::v2::LENGTH_BYTES + super::v2::OVERHEAD)
            }
        }
    }

    /// Adds a v2 decoy packet of `len` bytes, which the remote skips; `None` on a v1 stream.
    pub fn push_decoy(&mut self, len: usize) -> Option<usize> {
        match &mut self.codec {
            WriteCodec::V1(_) => None,
            WriteCodec::V2(encoder) => Some(encoder.encode_decoy(len, &mut self.buf)),
        }
    }

    /// Takes the pending batch without writing it (tests that tamper with bytes use this).
    pub fn take_pending(&mut self) -> BytesMut {
        std::mem::take(&mut self.buf)
    }

    /// Whether frames wait in the batch.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Writes a frame whose payload is large. In v1 the header and the pending batch are written,
    /// then the payload straight from its own buffer; a v2 packet is produced by encryption anyway,
    /// so it goes through the batch.
    pub async fn write_large(
        &mut self,
        command: Command,
        payload: &Bytes,
        known: Option<[u8; 4]>,
    ) -> io::Result<usize> {
        let WriteCodec::V1(network) = &self.codec else {
            let wire = self.push(command, payload);
            self.flush_batch().await?;
            return Ok(wire);
        };
        let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let checksum = known.unwrap_or_else(|| checksum(payload));
        let header = FrameHeader { magic: network.magic(), command, length, checksum };
        self.buf.extend_from_slice(&header.to_bytes());
        self.flush_batch().await?;
        self.inner.write_all(payload).await?;
        Ok(payload.len().saturating_add(HEADER_LEN))
    }

    /// Writes raw bytes now (handshake traffic that is not framed).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush_batch().await?;
        self.inner.write_all(bytes).await?;
        self.inner.flush().await
    }

    /// The stream, for writing bytes that are not frames (tests of hostile input do this).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Writes the pending batch (without flushing the stream).
    pub async fn flush_batch(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.inner.write_all(&self.buf).await?;
            self.buf.clear();
            if self.buf.capacity() > KEEP_WRITE_BUFFER {
                self.buf = BytesMut::new();
            }
        }
        Ok(())
    }

    /// Writes the pending batch and flushes the stream.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.flush_batch().await?;
        // Between batches a v2 writer holds no key object (an idle peer's memory).
        if let WriteCodec::V2(encoder) = &mut self.codec {
            encoder.release();
        }
        self.inner.flush().await
    }

    /// Shuts the stream's write side down.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.inner.shutdown().await
    }
}

/// Builds a v2 reader and writer from an established session.
pub fn v2_pair<R, W>(reader: R, writer: W, session: V2Session) -> (FrameReader<R>, FrameWriter<W>, usize, usize)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let V2Session { decoder, encoder, leftover, bytes_sent, bytes_received } = session;
    (FrameReader::v2(reader, decoder, leftover), FrameWriter::v2(writer, encoder), bytes_sent, bytes_received)
}
