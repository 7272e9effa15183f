//! The v1 (plaintext) frame codec: bytes in, frames out, and messages to bytes.
//!
//! Decoding checks each header as soon as its 24 bytes are in, before reserving room for the
//! payload. A frame with a bad checksum or invalid command bytes is consumed and reported as
//! [`V1Error::Dropped`], after which decoding can go on (Core keeps such a connection); any other
//! error is final. Room for a payload grows with the bytes that actually arrive (first 256 KiB,
//! then at most doubling what has been received), so a frame that announces 4 MB and sends nothing
//! costs 256 KiB; a dropped frame's payload is discarded as it arrives. The checksum is computed
//! once, and the payload is split off the read buffer as `Bytes` (no copy). Encoding writes the
//! header placeholder and payload straight into the codec's write buffer and patches the header.
//!
//! ```
//! use btcpeer_core::network::Network;
//! use btcpeer_core::transport::v1::V1Codec;
//! use btcpeer_core::wire::Message;
//!
//! let mut codec = V1Codec::new(Network::REGTEST);
//! let mut buf = bytes::BytesMut::new();
//! codec.encode_message(&Message::Verack, &mut buf).unwrap();
//! codec.encode_message(&Message::Ping(9), &mut buf).unwrap();
//! let first = codec.decode_frame(&mut buf).unwrap().unwrap();
//! let second = codec.decode_frame(&mut buf).unwrap().unwrap();
//! assert_eq!(first.decode().unwrap(), Message::Verack);
//! assert_eq!(second.decode().unwrap(), Message::Ping(9));
//! assert!(codec.decode_frame(&mut buf).unwrap().is_none());
//! ```

use std::io;

use bytes::{Buf, BytesMut};

use crate::network::Network;
use crate::wire::frame::{self, FrameHeader, HEADER_LEN, RawFrame};
use crate::wire::{EncodeError, FrameError, Message};

/// An error from the v1 codec.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum V1Error {
    /// A frame was refused.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame was dropped, as Bitcoin Core drops it (a bad checksum or invalid command bytes: see
    /// [`FrameError::is_droppable`]). Its bytes were consumed, so the codec is in sync and decoding
    /// may go on; a reader that keeps the connection counts it and calls `decode` again.
    #[error("frame dropped: {error}")]
    Dropped {
        /// Why the frame was dropped.
        error: FrameError,
        /// Bytes the frame took on the wire.
        bytes: usize,
    },
    /// A message could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// Encodes and decodes v1 frames for one network.
#[derive(Debug, Clone)]
pub struct V1Codec {
    network: Network,
    header: Option<FrameHeader>,
    /// A frame with invalid command bytes being skipped: payload bytes still to discard.
    skip: Option<Skip>,
}

#[derive(Debug, Clone)]
struct Skip {
    remaining: usize,
    error: FrameError,
    bytes: usize,
}

impl V1Codec {
    /// A codec for frames of `network`.
    pub fn new(network: Network) -> Self {
        V1Codec { network, header: None, skip: None }
    }

    /// The network whose frames this codec reads and writes.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Takes the next frame from the front of `src`: `Ok(None)` until a whole frame is in (room for
    /// it grows with what arrives), [`V1Error::Dropped`] for a frame skipped as Core skips it
    /// (decoding may go on), any other error final.
    pub fn decode_frame(&mut self, src: &mut BytesMut) -> Result<Option<RawFrame>, V1Error> {
        if let Some(skip) = self.skip.as_mut() {
            // Discarded as it arrives: a dropped frame is never buffered whole.
            let n = skip.remaining.min(src.len());
            src.advance(n);
            skip.remaining = skip.remaining.saturating_sub(n);
            if skip.remaining > 0 {
                return Ok(None);
            }
            return match self.skip.take() {
                Some(Skip { error, bytes, .. }) => Err(V1Error::Dropped { error, bytes }),
                None => Ok(None),
            };
        }
        let header = match self.header {
            Some(h) => h,
            None => {
                let Some(raw) = src.get(..HEADER_LEN).and_then(|s| <&[u8; HEADER_LEN]>::try_from(s).ok()) else {
                    return Ok(None);
                };
                let h = match FrameHeader::parse(raw, &self.network) {
                    Ok(h) => h,
                    Err(error) if error.is_droppable() => {
                        // The magic and the length passed: skip the payload and stay in sync.
                        let remaining = FrameHeader::announced_length(raw) as usize;
                        src.advance(HEADER_LEN);
                        self.skip = Some(Skip { remaining, error, bytes: HEADER_LEN.saturating_add(remaining) });
                        return self.decode_frame(src);
                    }
                    Err(error) => return Err(error.into()),
                };
                src.advance(HEADER_LEN);
                self.header = Some(h);
                h
            }
        };
        let len = header.length as usize;
        let Some(payload) = src.get(..len) else {
            // Room grows with what has arrived (at least a step, at most doubling), so a large frame
            // is copied few times while a remote still cannot make us hold much more than it sent.
            super::reserve_towards(src, len);
            return Ok(None);
        };
        self.header = None;
        if let Err(error) = header.verify(payload) {
            src.advance(len);
            return Err(V1Error::Dropped { error, bytes: HEADER_LEN.saturating_add(len) });
        }
        let payload = src.split_to(len).freeze();
        Ok(Some(RawFrame { command: header.command, payload }))
    }

    /// Appends `message` as one frame to `dst`. On an error nothing is appended.
    pub fn encode_message(&mut self, message: &Message, dst: &mut BytesMut) -> Result<(), V1Error> {
        frame::encode_frame(message, &self.network, dst)?;
        Ok(())
    }

    /// Appends an already encoded payload as one frame to `dst`.
    pub fn encode_raw(&mut self, raw: &RawFrame, dst: &mut BytesMut) -> Result<(), V1Error> {
        frame::encode_raw_frame(raw.command, &raw.payload, &self.network, dst)?;
        Ok(())
    }
}
