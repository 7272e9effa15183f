//! Reading and writing v1 frames on the halves of an async byte stream.
//!
//! The reader keeps one buffer that grows only as bytes arrive (the codec reserves at most 256 KiB
//! ahead of them) and is released when it has emptied after a large frame, so an idle peer holds
//! little. The writer frames a batch of encoded payloads into one reused buffer and writes it with
//! one call; payloads above [`DIRECT_WRITE`] go straight from their `Bytes` without a copy.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;

use super::v1::{V1Codec, V1Error};
use crate::network::Network;
use crate::wire::frame::{FrameHeader, HEADER_LEN, RawFrame, checksum};
use crate::wire::{Command, FrameError};

/// Payloads at least this large are written from their own buffer instead of being copied.
pub const DIRECT_WRITE: usize = 64 * 1024;
/// Read buffers larger than this are released once empty.
const KEEP_READ_BUFFER: usize = 16 * 1024;
/// Bytes reserved for a read when the buffer has no room.
const READ_STEP: usize = 4 * 1024;

/// Why reading a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream ended (cleanly or inside a frame).
    #[error("stream closed")]
    Closed,
    /// A frame was refused.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads v1 frames from an async byte stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    codec: V1Codec,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames of `network` from `inner`.
    pub fn new(inner: R, network: Network) -> Self {
        FrameReader { inner, buf: BytesMut::new(), codec: V1Codec::new(network) }
    }

    /// Starts with bytes already read from the stream (for example while detecting v1 or v2).
    pub fn with_prefix(inner: R, network: Network, prefix: &[u8]) -> Self {
        FrameReader { inner, buf: BytesMut::from(prefix), codec: V1Codec::new(network) }
    }

    /// Reads the next frame, returning it and its size on the wire. Cancel-safe: a frame partly read
    /// stays in the buffer for the next call.
    pub async fn read_frame(&mut self) -> Result<(RawFrame, usize), ReadError> {
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    let wire = frame.payload.len().saturating_add(HEADER_LEN);
                    if self.buf.is_empty() && self.buf.capacity() > KEEP_READ_BUFFER {
                        self.buf = BytesMut::new();
                    }
                    return Ok((frame, wire));
                }
                Ok(None) => {}
                Err(V1Error::Frame(e)) => return Err(ReadError::Frame(e)),
                Err(V1Error::Io(e)) => return Err(ReadError::Io(e)),
                Err(V1Error::Encode(_)) => {}
            }
            if self.buf.capacity() == self.buf.len() {
                self.buf.reserve(READ_STEP);
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Err(ReadError::Closed);
            }
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

/// Writes v1 frames to an async byte stream.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    buf: BytesMut,
    network: Network,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Writes frames of `network` to `inner`.
    pub fn new(inner: W, network: Network) -> Self {
        FrameWriter { inner, buf: BytesMut::new(), network }
    }

    /// Frames `payload` (header with length and checksum, one hash pass) into the pending batch.
    /// Returns the frame's size on the wire.
    pub fn push(&mut self, command: Command, payload: &Bytes) -> usize {
        let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let header = FrameHeader { magic: self.network.magic(), command, length, checksum: checksum(payload) };
        self.buf.extend_from_slice(&header.to_bytes());
        self.buf.extend_from_slice(payload);
        payload.len().saturating_add(HEADER_LEN)
    }

    /// Whether frames wait in the batch.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Writes a frame whose payload is large: the header and the pending batch are written, then the
    /// payload straight from its own buffer.
    pub async fn write_large(&mut self, command: Command, payload: &Bytes) -> io::Result<usize> {
        let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let header = FrameHeader { magic: self.network.magic(), command, length, checksum: checksum(payload) };
        self.buf.extend_from_slice(&header.to_bytes());
        self.flush_batch().await?;
        self.inner.write_all(payload).await?;
        Ok(payload.len().saturating_add(HEADER_LEN))
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
            if self.buf.capacity() > KEEP_READ_BUFFER {
                self.buf = BytesMut::new();
            }
        }
        Ok(())
    }

    /// Writes the pending batch and flushes the stream.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.flush_batch().await?;
        self.inner.flush().await
    }

    /// Shuts the stream's write side down.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.inner.shutdown().await
    }
}
