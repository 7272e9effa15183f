//! Why a peer disconnected: [`DisconnectReason`] and the protocol [`Violation`]s.

use std::fmt;
use std::sync::Arc;

use crate::transport::v2::V2Error;
use crate::wire::{Command, FrameError, PayloadError};

/// Why a peer disconnected. Every disconnect has one; it is in the stats snapshot, given to
/// the handler's `on_disconnect`, and carried by every message dropped with the peer.
///
/// One enum for every layer; each variant says which produces it. *Core*: the protocol engine
/// ([`PeerCore`](super::PeerCore), its [`ProtocolState`](super::ProtocolState) and handshake),
/// whatever drives it. *Framing*: the core's [`Framing`](crate::transport::framing::Framing) (or a
/// driver's own reading of frames). *Driver*: only a driver that owns a socket, a task or an
/// application handle produces it (`btcpeer`'s tokio `Peer`, the blocking driver).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The application called `disconnect`. *Core* ([`PeerCore::disconnect`](super::PeerCore::disconnect)) or *driver*.
    LocalRequest,
    /// The application dropped its last handle to the peer. *Driver* (`btcpeer`'s `Peer`).
    LocalDropped,
    /// The remote closed the connection. *Framing* or *driver*, as the stream ends.
    RemoteClosed {
        /// Whether the handshake was still in progress.
        during_handshake: bool,
    },
    /// The handshake did not complete within the negotiation deadline. *Core* (and the tokio
    /// driver's own deadline, which covers the v2 handshake too).
    HandshakeTimeout,
    /// Nothing was received for the idle timeout. *Core* (its liveness clock).
    IdleTimeout,
    /// A ping went unanswered for the pong timeout. *Core*.
    PongTimeout,
    /// A request got no answer within its stall deadline. *Core*.
    StallTimeout {
        /// The request that went unanswered.
        request: Command,
    },
    /// Queued bytes made no progress on the socket within the write deadline. *Driver* only: the
    /// core never writes.
    WriteTimeout,
    /// The remote's version carried a nonce of one of our own handshakes in flight: we connected to
    /// ourselves. *Core* (its own nonce) or *driver* (a node-wide nonce registry).
    SelfConnection,
    /// The remote's protocol version is below the configured minimum. *Core*.
    ObsoleteVersion {
        /// The version the remote advertised.
        version: u32,
        /// The configured minimum.
        minimum: u32,
    },
    /// The remote lacks services the configuration requires. *Core*.
    MissingServices {
        /// Services the remote advertised.
        advertised: bitcoin::p2p::ServiceFlags,
        /// Services required.
        required: bitcoin::p2p::ServiceFlags,
    },
    /// The application's version hook refused the remote. *Core* (`VersionHandshake::refuse`),
    /// asked by a driver.
    Refused(String),
    /// The remote broke the protocol. *Core*, or *framing* for v1 where v2 is required.
    Protocol(Violation),
    /// A frame was refused (wrong magic, oversized …). *Framing*.
    Frame(FrameError),
    /// A payload was malformed. *Core*.
    Payload(PayloadError),
    /// A v2 (BIP324) packet or handshake failed: a tampered or oversized packet, no garbage
    /// terminator … *Framing*.
    V2(V2Error),
    /// An outbound v2 attempt met a remote that closed without sending a byte (or answered in v1):
    /// it probably speaks only v1, so dialing again in v1 is advised. *Framing*.
    V1RetryAdvised,
    /// An outbound v2 attempt that had to be v2 (no v1 retry allowed) met a remote that closed
    /// without sending a byte: it probably speaks only v1. *Framing*.
    V2Unanswered,
    /// A handler method (or anything else in the peer's task) panicked; the text is the panic's
    /// message. The peer ended as for any other reason: its stream closed, every queued message
    /// dropped, waits released. *Driver* only (`btcpeer`'s task).
    HandlerPanicked(String),
    /// One of our own messages could not be encoded (a bug in what the application built, not
    /// the remote's doing). *Driver* (it encodes what it writes).
    Encode(crate::wire::EncodeError),
    /// The connection failed. *Driver* or *framing* (an I/O error it is told of).
    Io {
        /// The error's kind.
        kind: std::io::ErrorKind,
        /// The error's text.
        message: Arc<str>,
    },
}

/// A rule of the protocol the remote broke.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// A feature-negotiation message (`wtxidrelay`, `sendaddrv2`) after verack, at any negotiated
    /// version, as Core. (A message before `version`, a second `version` or `verack`, and
    /// `sendtxrcncl` are ignored and counted instead, as Core does.)
    FeatureAfterVerack(Command),
    /// A bloom-filter message while we do not offer `NODE_BLOOM`, at a version that forbids it (BIP111).
    BloomNotOffered(Command),
    /// A v1 connection to a peer that requires v2.
    V1NotAllowed,
    /// More frames ignored or dropped than the configured limit allows
    /// (the driver's `ignored_message_limit`).
    TooManyIgnored {
        /// Frames ignored or dropped so far.
        count: u64,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::FeatureAfterVerack(c) => write!(f, "{c} after verack"),
            Violation::BloomNotOffered(c) => write!(f, "{c} sent to a peer without NODE_BLOOM"),
            Violation::V1NotAllowed => f.write_str("v1 connection where v2 is required"),
            Violation::TooManyIgnored { count } => write!(f, "{count} messages ignored or dropped, above the limit"),
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::LocalRequest => f.write_str("disconnect requested locally"),
            DisconnectReason::LocalDropped => f.write_str("every handle to the peer was dropped"),
            DisconnectReason::RemoteClosed { during_handshake: true } => {
                f.write_str("remote closed the connection during the handshake")
            }
            DisconnectReason::RemoteClosed { during_handshake: false } => f.write_str("remote closed the connection"),
            DisconnectReason::HandshakeTimeout => f.write_str("handshake timed out"),
            DisconnectReason::IdleTimeout => f.write_str("idle timeout: nothing received"),
            DisconnectReason::PongTimeout => f.write_str("pong timeout: ping unanswered"),
            DisconnectReason::StallTimeout { request } => write!(f, "stalled: no answer to {request}"),
            DisconnectReason::WriteTimeout => f.write_str("write timeout: remote is not reading"),
            DisconnectReason::SelfConnection => f.write_str("connected to ourselves"),
            DisconnectReason::ObsoleteVersion { version, minimum } => {
                write!(f, "remote version {version} is below the minimum {minimum}")
            }
            DisconnectReason::MissingServices { advertised, required } => {
                write!(f, "remote services {:#x} lack required {:#x}", advertised.to_u64(), required.to_u64())
            }
            DisconnectReason::Refused(why) => write!(f, "refused by the application: {why}"),
            DisconnectReason::Protocol(v) => write!(f, "protocol violation: {v}"),
            DisconnectReason::Frame(e) => write!(f, "bad frame: {e}"),
            DisconnectReason::Payload(e) => write!(f, "malformed message: {e}"),
            DisconnectReason::V2(e) => write!(f, "v2 transport: {e}"),
            DisconnectReason::V1RetryAdvised => {
                f.write_str("remote closed without answering the v2 handshake; retry in v1 advised")
            }
            DisconnectReason::V2Unanswered => {
                f.write_str("remote closed without answering our v2 key (it may speak only v1)")
            }
            DisconnectReason::HandlerPanicked(message) => write!(f, "handler panicked: {message}"),
            DisconnectReason::Encode(e) => write!(f, "our message could not be encoded: {e}"),
            DisconnectReason::Io { message, .. } => write!(f, "i/o error: {message}"),
        }
    }
}

impl std::error::Error for DisconnectReason {
    /// The frame, payload, transport or encoding error behind the reason, if there is one.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DisconnectReason::Frame(e) => Some(e),
            DisconnectReason::Payload(e) => Some(e),
            DisconnectReason::V2(e) => Some(e),
            DisconnectReason::Encode(e) => Some(e),
            _ => None,
        }
    }
}

impl DisconnectReason {
    /// A short stable name for the reason, for logs and JSON (`remote_closed`, `pong_timeout` …).
    pub fn kind(&self) -> &'static str {
        match self {
            DisconnectReason::LocalRequest => "local_request",
            DisconnectReason::LocalDropped => "local_dropped",
            DisconnectReason::RemoteClosed { .. } => "remote_closed",
            DisconnectReason::HandshakeTimeout => "handshake_timeout",
            DisconnectReason::IdleTimeout => "idle_timeout",
            DisconnectReason::PongTimeout => "pong_timeout",
            DisconnectReason::StallTimeout { .. } => "stall_timeout",
            DisconnectReason::WriteTimeout => "write_timeout",
            DisconnectReason::SelfConnection => "self_connection",
            DisconnectReason::ObsoleteVersion { .. } => "obsolete_version",
            DisconnectReason::MissingServices { .. } => "missing_services",
            DisconnectReason::Refused(_) => "refused",
            DisconnectReason::Protocol(_) => "protocol_violation",
            DisconnectReason::Frame(_) => "bad_frame",
            DisconnectReason::Payload(_) => "malformed_message",
            DisconnectReason::V2(_) => "v2_transport",
            DisconnectReason::V1RetryAdvised => "v1_retry_advised",
            DisconnectReason::V2Unanswered => "v2_unanswered",
            DisconnectReason::HandlerPanicked(_) => "handler_panicked",
            DisconnectReason::Encode(_) => "encode_error",
            DisconnectReason::Io { .. } => "io_error",
        }
    }

    /// Whether the reason is a timeout of any kind (the CLI exits with code 3 for these).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            DisconnectReason::HandshakeTimeout
                | DisconnectReason::IdleTimeout
                | DisconnectReason::PongTimeout
                | DisconnectReason::StallTimeout { .. }
                | DisconnectReason::WriteTimeout
        )
    }

    /// Whether the remote probably speaks only v1: it hung up on our v2 key without a byte
    /// ([`DisconnectReason::V1RetryAdvised`] when a v1 retry is allowed,
    /// [`DisconnectReason::V2Unanswered`] when v2 was required). What a tool tells its user.
    pub fn suggests_v1_only(&self) -> bool {
        matches!(self, DisconnectReason::V1RetryAdvised | DisconnectReason::V2Unanswered)
    }

    /// The reason for a failed read or write.
    pub fn io(e: &std::io::Error) -> DisconnectReason {
        DisconnectReason::Io { kind: e.kind(), message: Arc::from(e.to_string()) }
    }
}
