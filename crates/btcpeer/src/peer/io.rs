//! Frames in and out of the stream for the peer's task: each read and write counted in the
//! statistics, logged, and shown to the handler's `on_read` / `on_write`. Used by the handshake and
//! the steady-state loops alike (they do not import each other).

use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Peer;
use super::error::DisconnectReason;
use super::handler::ReadEvent;
use super::rules::misbehaved;
use crate::transport::stream::{DroppedFrame, FrameReader, FrameWriter, ReadError};
use crate::wire::frame::RawFrame;
use crate::wire::{Command, Message};

/// Maps a read failure to a disconnect reason.
fn read_failure(e: ReadError, during_handshake: bool) -> DisconnectReason {
    match e {
        ReadError::Closed => DisconnectReason::RemoteClosed { during_handshake },
        ReadError::Frame(f) => DisconnectReason::Frame(f),
        ReadError::V2(e) => DisconnectReason::V2(e),
        ReadError::Dropped { error: DroppedFrame::Frame(f), .. } => DisconnectReason::Frame(f),
        ReadError::Dropped { error: DroppedFrame::Packet(e), .. } => DisconnectReason::V2(e),
        ReadError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            DisconnectReason::RemoteClosed { during_handshake }
        }
        ReadError::Io(e) => DisconnectReason::io(&e),
    }
}

/// Reads one frame, keeping the statistics and telling the handler. Frames dropped unread (a bad
/// checksum, invalid command bytes) are counted and skipped, as Core's transports do.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    peer: &Peer,
    reader: &mut FrameReader<R>,
    during_handshake: bool,
) -> Result<(RawFrame, usize), DisconnectReason> {
    loop {
        match reader.read_frame().await {
            Ok((frame, bytes)) => {
                peer.counters(|c| {
                    c.proto.traffic.received(frame.command, bytes);
                    c.last_recv = Some(SystemTime::now());
                });
                tracing::debug!(command = %frame.command, bytes, "recv");
                tracing::trace!(payload = %HexDump(&frame.payload), "recv frame");
                if let Some(h) = peer.handler() {
                    h.on_read(peer, &ReadEvent { command: Some(frame.command), bytes, error: None, dropped: None });
                }
                return Ok((frame, bytes));
            }
            Err(ReadError::Dropped { error, bytes }) => {
                tracing::debug!(%error, bytes, "dropped");
                if let Some(h) = peer.handler() {
                    h.on_read(peer, &ReadEvent { command: None, bytes, error: None, dropped: Some(&error) });
                }
                let now = super::now();
                misbehaved(peer, |c| {
                    c.proto.traffic.dropped(bytes);
                    c.last_recv = Some(SystemTime::now());
                    // The remote is alive: a dropped frame still counts as traffic for the idle timer.
                    if let Some(l) = c.proto.liveness.as_mut() {
                        l.alive(now);
                    }
                })?;
            }
            Err(e) => {
                let reason = read_failure(e, during_handshake);
                if let Some(h) = peer.handler() {
                    h.on_read(peer, &ReadEvent { command: None, bytes: 0, error: Some(&reason), dropped: None });
                }
                return Err(reason);
            }
        }
    }
}

/// Writes several messages straight to the stream with one write (the handshake's messages go out
/// together: fewer syscalls and round trips).
pub(crate) async fn send_direct_batch<W: AsyncWrite + Unpin>(
    peer: &Peer,
    writer: &mut FrameWriter<W>,
    messages: &[Message],
) -> Result<(), DisconnectReason> {
    let mut framed = Vec::with_capacity(messages.len());
    for message in messages {
        let mut payload = BytesMut::new();
        message.encode_payload(&mut payload).map_err(DisconnectReason::Encode)?;
        let payload = payload.freeze();
        let bytes = writer.push(message.command(), &payload);
        framed.push((message.command(), payload, bytes));
    }
    writer.flush().await.map_err(|e| DisconnectReason::io(&e))?;
    for (command, payload, bytes) in framed {
        sent(peer, command, &payload, bytes);
    }
    Ok(())
}

fn sent(peer: &Peer, command: Command, payload: &Bytes, bytes: usize) {
    peer.counters(|c| {
        c.proto.traffic.sent(command, bytes);
        c.last_send = Some(SystemTime::now());
    });
    written_hooks(peer, command, payload, bytes);
}

/// Logging and the handler's `on_write` for one frame written (statistics are kept by the caller).
pub(crate) fn written_hooks(peer: &Peer, command: Command, payload: &Bytes, bytes: usize) {
    tracing::debug!(%command, bytes, "sent");
    tracing::trace!(payload = %HexDump(payload), "sent frame");
    if let Some(h) = peer.handler() {
        h.on_write(peer, command, bytes);
    }
}

/// Formats bytes as hex only when a trace event is actually recorded.
struct HexDump<'a>(&'a [u8]);

impl std::fmt::Display for HexDump<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
