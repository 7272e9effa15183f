//! [`Framing`]: one connection's bytes ⇄ frames, in v1 or BIP324 v2, without I/O — the one
//! implementation of what a driver does between the socket and the protocol: telling a v1
//! initiator from a v2 one (Core's `V2Transport::ProcessReceivedMaybeV1Bytes`), the v2 handshake,
//! skipping decoy packets, dropping and counting what Core drops (a bad v1 checksum, a v2 packet
//! naming no message type), and the reason each failure ends the connection with.
//!
//! Feed it what was read with [`Framing::poll_input`] until it gives nothing; write what
//! [`Framing::take_output`] and [`Framing::encode`] append. [`PeerCore`](crate::peer::PeerCore)
//! drives one when built with [`PeerCore::framed`](crate::peer::PeerCore::framed).

use bytes::BytesMut;

use super::v1::{V1Codec, V1Error};
use super::v2::{V2Decoder, V2Encoder, V2Error};
use super::v2_handshake::{V2Handshake, V2HandshakeError, V2Options, detect_v1};
use crate::network::Network;
use crate::peer::{Direction, DisconnectReason, Transport, Violation};
use crate::wire::frame::{FrameHeader, HEADER_LEN, RawFrame, checksum};
use crate::wire::{Command, FrameError};

/// Which transports a connection may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportPolicy {
    /// v1 only.
    #[default]
    V1,
    /// Outbound: BIP324 v2, and a remote that closes without a byte ends the connection with
    /// [`DisconnectReason::V1RetryAdvised`] (dial again in v1). Inbound: v1 and v2 initiators
    /// alike, told apart by their first 16 bytes.
    Auto,
    /// v2 only: a v1 remote is refused.
    V2,
}

/// What [`Framing::poll_input`] took from the bytes read.
#[derive(Debug)]
#[non_exhaustive]
pub enum Framed {
    /// A frame, and the bytes it took on the wire.
    Frame {
        /// The frame.
        frame: RawFrame,
        /// Its size on the wire (header or packet overhead included).
        wire: usize,
    },
    /// A frame dropped unread, as Core drops it; the stream is still in sync.
    Dropped {
        /// Why.
        error: Dropped,
        /// Its size on the wire.
        wire: usize,
    },
    /// The transport is settled: v1 detected, or the v2 handshake done (its bytes in
    /// [`Framing::handshake_bytes`]).
    Established(Transport),
}

/// Why a frame was dropped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Dropped {
    /// A v1 frame (bad checksum, invalid command bytes).
    #[error(transparent)]
    Frame(FrameError),
    /// A v2 packet (empty, invalid long-form command).
    #[error(transparent)]
    Packet(V2Error),
}

enum State {
    /// Inbound, v2 allowed: waiting for the bytes that tell v1 from v2.
    Detect,
    V1(V1Codec),
    V2Handshake(Box<V2Handshake>),
    V2(Box<(V2Decoder, V2Encoder)>),
    /// Failed: nothing more is read.
    Over,
}

/// The v1 header of `payload` under `command` (its checksum computed unless `known`).
fn v1_header(codec: &V1Codec, command: Command, payload: &[u8], known: Option<[u8; 4]>) -> FrameHeader {
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let checksum = known.unwrap_or_else(|| checksum(payload));
    FrameHeader { magic: codec.network().magic(), command, length, checksum }
}

/// What a [`Framing`] needs only until its transport is settled.
struct Setup {
    opts: V2Options,
    out: BytesMut,
}

/// One connection's framing: see the [module](self).
pub struct Framing {
    network: Network,
    direction: Direction,
    policy: TransportPolicy,
    state: State,
    /// What only the transport's own handshake needs (boxed, and gone once it is settled and its
    /// bytes written): the v2 options and the handshake's bytes to write.
    setup: Option<Box<Setup>>,
    /// Bytes the v2 handshake wrote and read.
    handshake: (usize, usize),
}

impl std::fmt::Debug for Framing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Detect => "detect",
            State::V1(_) => "v1",
            State::V2Handshake(_) => "v2 handshake",
            State::V2(_) => "v2",
            State::Over => "over",
        };
        f.debug_struct("Framing").field("direction", &self.direction).field("state", &state).finish_non_exhaustive()
    }
}

/// The reason a v2 handshake failure ends the connection with.
///
/// ```
/// use btcpeer_core::peer::{Direction, DisconnectReason};
/// use btcpeer_core::transport::framing::{TransportPolicy, v2_failure};
/// use btcpeer_core::transport::v2_handshake::V2HandshakeError;
///
/// let r = v2_failure(V2HandshakeError::ClosedBeforeAnyByte, Direction::Outbound, TransportPolicy::Auto);
/// assert_eq!(r, DisconnectReason::V1RetryAdvised);
/// let r = v2_failure(V2HandshakeError::ClosedBeforeAnyByte, Direction::Outbound, TransportPolicy::V2);
/// assert_eq!(r, DisconnectReason::V2Unanswered);
/// ```
pub fn v2_failure(e: V2HandshakeError, direction: Direction, policy: TransportPolicy) -> DisconnectReason {
    let outbound = direction == Direction::Outbound;
    match e {
        V2HandshakeError::ClosedBeforeAnyByte | V2HandshakeError::RemoteSpeaksV1
            if policy == TransportPolicy::Auto && outbound =>
        {
            DisconnectReason::V1RetryAdvised
        }
        V2HandshakeError::RemoteSpeaksV1 => DisconnectReason::Protocol(Violation::V1NotAllowed),
        // With v2 required no retry is advised, but the likely cause is named.
        V2HandshakeError::ClosedBeforeAnyByte if outbound => DisconnectReason::V2Unanswered,
        V2HandshakeError::ClosedBeforeAnyByte | V2HandshakeError::Closed => {
            DisconnectReason::RemoteClosed { during_handshake: true }
        }
        V2HandshakeError::Packet(e) => DisconnectReason::V2(e),
        V2HandshakeError::Io(e) => DisconnectReason::io(&e),
    }
}

impl Framing {
    /// The framing of a connection in `direction` on `network` under `policy`. An outbound v2
    /// connection has its key ready to write ([`take_output`](Framing::take_output)).
    pub fn new(
        network: Network,
        direction: Direction,
        policy: TransportPolicy,
        opts: V2Options,
    ) -> Result<Framing, DisconnectReason> {
        let state = match (policy, direction) {
            (TransportPolicy::V1, _) => return Ok(Framing::v1(network, direction)),
            (_, Direction::Inbound) => State::Detect,
            (_, Direction::Outbound) => State::V2Handshake(Box::new(
                V2Handshake::initiator(&network, &opts).map_err(|e| v2_failure(e, direction, policy))?,
            )),
        };
        let setup = Some(Box::new(Setup { opts, out: BytesMut::new() }));
        Ok(Framing { network, direction, policy, state, setup, handshake: (0, 0) })
    }

    /// Plain v1 framing (which, drawing no key, cannot fail).
    pub fn v1(network: Network, direction: Direction) -> Framing {
        let state = State::V1(V1Codec::new(network.clone()));
        Framing { network, direction, policy: TransportPolicy::V1, state, setup: None, handshake: (0, 0) }
    }

    /// The transport, once settled.
    pub fn transport(&self) -> Option<Transport> {
        match self.state {
            State::V1(_) => Some(Transport::V1),
            State::V2(_) => Some(Transport::V2),
            _ => None,
        }
    }

    /// Whether messages can be encoded (the transport is settled).
    pub fn is_ready(&self) -> bool {
        self.transport().is_some()
    }

    /// Bytes the v2 handshake wrote and read (zero for v1).
    pub fn handshake_bytes(&self) -> (usize, usize) {
        self.handshake
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Takes what `buf` (bytes read, oldest first) holds next: `Ok(None)` when more bytes are
    /// needed; an error ends the connection.
    pub fn poll_input(&mut self, buf: &mut BytesMut) -> Result<Option<Framed>, DisconnectReason> {
        loop {
            match &mut self.state {
                State::Over => return Ok(None),
                State::Detect => match detect_v1(buf, &self.network) {
                    None => return Ok(None),
                    Some(true) if self.policy == TransportPolicy::V2 => {
                        self.state = State::Over;
                        return Err(DisconnectReason::Protocol(Violation::V1NotAllowed));
                    }
                    // A v1 initiator: its first 16 bytes go to the v1 codec, nothing is lost.
                    Some(true) => {
                        self.state = State::V1(V1Codec::new(self.network.clone()));
                        return Ok(Some(Framed::Established(Transport::V1)));
                    }
                    Some(false) => match V2Handshake::responder(&self.network, &self.setup_opts()) {
                        Ok(h) => self.state = State::V2Handshake(Box::new(h)),
                        Err(e) => return Err(self.fail(e)),
                    },
                },
                State::V2Handshake(h) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let received = h.receive(&buf.split());
                    let bytes = h.take_output();
                    self.setup().out.extend_from_slice(&bytes);
                    match received {
                        Ok(None) => return Ok(None),
                        Ok(Some(session)) => {
                            self.handshake = (session.bytes_sent, session.bytes_received);
                            // Bytes past the remote's version packet are its first messages.
                            *buf = session.leftover;
                            self.state = State::V2(Box::new((session.decoder, session.encoder)));
                            return Ok(Some(Framed::Established(Transport::V2)));
                        }
                        Err(e) => return Err(self.fail(e)),
                    }
                }
                State::V1(codec) => {
                    return match codec.decode_frame(buf) {
                        Ok(Some(frame)) => {
                            let wire = frame.payload.len().saturating_add(HEADER_LEN);
                            Ok(Some(Framed::Frame { frame, wire }))
                        }
                        Ok(None) => Ok(None),
                        // Core keeps a connection whose frame had a bad checksum; so do we.
                        Err(V1Error::Dropped { error, bytes }) => {
                            Ok(Some(Framed::Dropped { error: Dropped::Frame(error), wire: bytes }))
                        }
                        Err(V1Error::Frame(e)) => {
                            self.state = State::Over;
                            Err(DisconnectReason::Frame(e))
                        }
                        Err(e) => {
                            self.state = State::Over;
                            Err(DisconnectReason::io(&std::io::Error::other(e.to_string())))
                        }
                    };
                }
                State::V2(codec) => {
                    let decoder = &mut codec.0;
                    return match decoder.decode(buf) {
                        Ok(Some((frame, wire))) => Ok(Some(Framed::Frame { frame, wire })),
                        Ok(None) => Ok(None),
                        Err(e) if e.is_droppable() => {
                            let wire = decoder.last_packet_len();
                            Ok(Some(Framed::Dropped { error: Dropped::Packet(e), wire }))
                        }
                        Err(e) => {
                            self.state = State::Over;
                            Err(DisconnectReason::V2(e))
                        }
                    };
                }
            }
        }
    }

    /// The handshake's state, made again if it was let go (it is only let go once settled).
    fn setup(&mut self) -> &mut Setup {
        self.setup.get_or_insert_with(|| Box::new(Setup { opts: V2Options::default(), out: BytesMut::new() }))
    }

    /// The v2 options (the defaults once let go).
    fn setup_opts(&self) -> V2Options {
        self.setup.as_ref().map(|s| s.opts.clone()).unwrap_or_default()
    }

    fn fail(&mut self, e: V2HandshakeError) -> DisconnectReason {
        self.state = State::Over;
        v2_failure(e, self.direction, self.policy)
    }

    /// Appends the bytes to write that are not messages (the v2 handshake's key, garbage, decoys
    /// and version packet).
    pub fn take_output(&mut self, out: &mut BytesMut) {
        if let State::V2Handshake(h) = &mut self.state {
            let bytes = h.take_output();
            if !bytes.is_empty() {
                self.setup().out.extend_from_slice(&bytes);
            }
        }
        if let Some(setup) = self.setup.as_mut() {
            if !setup.out.is_empty() {
                out.extend_from_slice(&setup.out.split());
                // An idle connection keeps no handshake buffer.
                setup.out = BytesMut::new();
            }
        }
        if self.is_ready() {
            // Settled and written: the handshake's leftovers go.
            self.setup = None;
        }
    }

    /// Appends one message (`payload` under `command`, with its v1 `checksum` if already known) and
    /// returns its size on the wire; `None` before the transport is settled (nothing appended).
    pub fn encode(
        &mut self,
        command: Command,
        payload: &[u8],
        known: Option<[u8; 4]>,
        out: &mut BytesMut,
    ) -> Option<usize> {
        match &mut self.state {
            State::V1(codec) => {
                out.extend_from_slice(&v1_header(codec, command, payload, known).to_bytes());
                out.extend_from_slice(payload);
                Some(payload.len().saturating_add(HEADER_LEN))
            }
            State::V2(codec) => Some(codec.1.encode(command, payload, out)),
            _ => None,
        }
    }

    /// Whether bytes that are not messages wait to be written (the v2 handshake's).
    pub fn has_output(&self) -> bool {
        self.setup.as_ref().is_some_and(|s| !s.out.is_empty())
            || matches!(&self.state, State::V2Handshake(h) if h.has_output())
    }

    /// Appends only the v1 header of a message (its payload to be written after it, without a
    /// copy) and returns the message's size on the wire; `None` unless the transport is v1.
    pub fn encode_v1_header(
        &mut self,
        command: Command,
        payload: &[u8],
        known: Option<[u8; 4]>,
        out: &mut BytesMut,
    ) -> Option<usize> {
        let State::V1(codec) = &self.state else { return None };
        out.extend_from_slice(&v1_header(codec, command, payload, known).to_bytes());
        Some(payload.len().saturating_add(HEADER_LEN))
    }

    /// Nothing is being read: let go of what can be rebuilt (the v2 decoder's cipher state).
    pub fn release_reader(&mut self) {
        if let State::V2(codec) = &mut self.state {
            codec.0.release();
        }
    }

    /// Nothing is being written: let go of what can be rebuilt (the v2 encoder's cipher state).
    pub fn release_writer(&mut self) {
        if let State::V2(codec) = &mut self.state {
            codec.1.release();
        }
    }

    /// Why the connection ended when the stream closed now (`io` the error, if one ended it):
    /// during a v2 handshake a close or reset before any byte names the likely cause (a v1-only
    /// remote: [`DisconnectReason::V1RetryAdvised`] or [`DisconnectReason::V2Unanswered`]).
    pub fn closed(&self, io: Option<&std::io::Error>, established: bool) -> DisconnectReason {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
        // Over TCP, a v1-only node that still has our unread key in its buffer answers with a reset.
        let closing =
            io.is_none_or(|e| matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof));
        match (&self.state, io) {
            (State::V2Handshake(h), _) if closing => v2_failure(h.closed(), self.direction, self.policy),
            (_, Some(e)) if e.kind() != UnexpectedEof => DisconnectReason::io(e),
            _ => DisconnectReason::RemoteClosed { during_handshake: !established },
        }
    }
}
