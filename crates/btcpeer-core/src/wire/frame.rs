//! v1 framing: the 24-byte header, the checksum, and encoding a message once into a
//! reused buffer.
//!
//! A frame is `magic(4) | command(12, NUL-padded) | length(4, LE) | checksum(4) | payload`, the
//! checksum being the first four bytes of the payload's double SHA-256. The stream codec built on
//! this lives in [`crate::transport::v1`]; this module has no I/O.
//!
//! ```
//! use btcpeer_core::network::Network;
//! use btcpeer_core::wire::{frame, Message};
//!
//! let mut buf = bytes::BytesMut::new();
//! frame::encode_frame(&Message::Ping(42), &Network::REGTEST, &mut buf).unwrap();
//! assert_eq!(buf.len(), frame::HEADER_LEN + 8);
//!
//! let (raw, used) = frame::decode_frame(&buf.freeze(), &Network::REGTEST).unwrap();
//! assert_eq!(used, 32);
//! assert_eq!(raw.decode().unwrap(), Message::Ping(42));
//! ```

use bitcoin::hashes::{Hash, sha256d};
use bytes::{Bytes, BytesMut};

use super::command::{COMMAND_LEN, Command};
use super::error::{DecodeError, EncodeError, FrameError, PayloadError};
use super::limits::max_payload_len;
use super::message::Message;
use crate::network::{Magic, Network};

/// Length of a v1 frame header.
pub const HEADER_LEN: usize = 24;

/// The first four bytes of `sha256d(payload)`. rust-bitcoin's SHA-256 uses the CPU's SHA
/// extensions when present (x86-64 SHA-NI, detected at run time).
pub fn checksum(payload: &[u8]) -> [u8; 4] {
    let hash = sha256d::Hash::hash(payload).to_byte_array();
    [hash[0], hash[1], hash[2], hash[3]]
}

/// A parsed and checked v1 frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The network magic.
    pub magic: Magic,
    /// The command.
    pub command: Command,
    /// The payload length.
    pub length: u32,
    /// The payload checksum.
    pub checksum: [u8; 4],
}

impl FrameHeader {
    /// Parses a header and checks it, in Bitcoin Core's order
    /// (`V1Transport::readHeader` in `net.cpp`): the magic first, so that a peer on another network is
    /// reported as such whatever else is wrong; then the length against the network's maximum; then
    /// the command bytes; then the length against the command's own maximum. Nothing is allocated.
    ///
    /// A [`FrameError::InvalidCommand`] is [droppable](FrameError::is_droppable): the announced
    /// length has been checked against the network's maximum by then, so a reader can skip the
    /// payload ([`FrameHeader::announced_length`]) and stay in sync.
    pub fn parse(raw: &[u8; HEADER_LEN], network: &Network) -> Result<FrameHeader, FrameError> {
        let [m0, m1, m2, m3, c @ .., l0, l1, l2, l3, k0, k1, k2, k3] = *raw;
        let magic = Magic::from_bytes([m0, m1, m2, m3]);
        if magic != network.magic() {
            return Err(FrameError::WrongMagic { expected: network.magic(), found: magic });
        }
        let length = u32::from_le_bytes([l0, l1, l2, l3]);
        let max = network.max_payload();
        if length > max {
            return Err(FrameError::PayloadTooLarge { length, max });
        }
        let raw_command: [u8; COMMAND_LEN] = c;
        let command = Command::from_wire(&raw_command).ok_or(FrameError::InvalidCommand { raw: raw_command })?;
        let command_max = max_payload_len(command, max);
        if length > command_max {
            return Err(FrameError::CommandPayloadTooLarge { command, length, max: command_max });
        }
        Ok(FrameHeader { magic, command, length, checksum: [k0, k1, k2, k3] })
    }

    /// The payload length a raw header announces, unchecked (for skipping a dropped frame whose
    /// header passed the magic and length checks).
    pub fn announced_length(raw: &[u8; HEADER_LEN]) -> u32 {
        let [.., l0, l1, l2, l3, _, _, _, _] = *raw;
        u32::from_le_bytes([l0, l1, l2, l3])
    }

    /// The header's 24 bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(&self.magic.to_bytes());
        out[4..16].copy_from_slice(&self.command.to_wire());
        out[16..20].copy_from_slice(&self.length.to_le_bytes());
        out[20..].copy_from_slice(&self.checksum);
        out
    }

    /// Checks the payload against the header's checksum, hashing it once.
    pub fn verify(&self, payload: &[u8]) -> Result<(), FrameError> {
        let computed = checksum(payload);
        if computed != self.checksum {
            return Err(FrameError::BadChecksum { command: self.command, header: self.checksum, computed });
        }
        Ok(())
    }
}

/// A message encoded once, with its v1 checksum computed once, ready to be queued to many peers
/// (`btcpeer`'s `Peer::queue_prepared`): a relaying node encodes a block or
/// an announcement once instead of once per peer. Cheap to clone (the payload is shared).
///
/// ```
/// use btcpeer_core::wire::{frame::Prepared, Message};
///
/// let ping = Prepared::new(&Message::Ping(5)).unwrap();
/// assert_eq!(ping.payload().len(), 8);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    command: Command,
    payload: Bytes,
    checksum: [u8; 4],
}

impl Prepared {
    /// Encodes `message` once.
    pub fn new(message: &Message) -> Result<Prepared, EncodeError> {
        let mut payload = BytesMut::new();
        message.encode_payload(&mut payload)?;
        Ok(Prepared::raw(message.command(), payload.freeze()))
    }

    /// Wraps an already-encoded payload.
    pub fn raw(command: Command, payload: Bytes) -> Prepared {
        let checksum = checksum(&payload);
        Prepared { command, payload, checksum }
    }

    /// The command.
    pub fn command(&self) -> Command {
        self.command
    }

    /// The encoded payload.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The payload's v1 checksum.
    pub fn checksum(&self) -> [u8; 4] {
        self.checksum
    }
}

/// A frame whose header and checksum were checked, with its payload not yet decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFrame {
    /// The command.
    pub command: Command,
    /// The payload, shared with the receive buffer (no copy).
    pub payload: Bytes,
}

impl RawFrame {
    /// A message as a frame (its payload encoded): what a transport would hand over after reading
    /// it. For in-memory links (tests, the simulator) and drivers that work in messages.
    pub fn from_message(message: &Message) -> Result<RawFrame, crate::wire::EncodeError> {
        let mut payload = BytesMut::new();
        message.encode_payload(&mut payload)?;
        Ok(RawFrame { command: message.command(), payload: payload.freeze() })
    }

    /// Decodes the payload into a [`Message`].
    pub fn decode(&self) -> Result<Message, PayloadError> {
        Message::decode(self.command, self.payload.clone())
    }
}

/// Decodes the frame at the start of `input`, returning it and the number of bytes it took. The
/// payload is a slice of `input` (no copy).
pub fn decode_frame(input: &Bytes, network: &Network) -> Result<(RawFrame, usize), FrameError> {
    let Some(header) = input.get(..HEADER_LEN) else {
        return Err(FrameError::Truncated { needed: HEADER_LEN, available: input.len() });
    };
    let mut raw = [0u8; HEADER_LEN];
    raw.copy_from_slice(header);
    let header = FrameHeader::parse(&raw, network)?;
    let end = HEADER_LEN.saturating_add(header.length as usize);
    let Some(payload) = input.get(HEADER_LEN..end) else {
        return Err(FrameError::Truncated { needed: end, available: input.len() });
    };
    header.verify(payload)?;
    Ok((RawFrame { command: header.command, payload: input.slice(HEADER_LEN..end) }, end))
}

/// Decodes the frame at the start of `input` all the way to a [`Message`].
pub fn decode_message(input: &Bytes, network: &Network) -> Result<(Message, usize), DecodeError> {
    let (raw, used) = decode_frame(input, network)?;
    Ok((raw.decode()?, used))
}

/// Appends `message` as a complete frame to `buf`: the payload is serialised once, straight after a
/// placeholder header, then hashed once, and the length and checksum are patched in.
/// Returns the frame's length. On error `buf` is left as it was.
pub fn encode_frame(message: &Message, network: &Network, buf: &mut BytesMut) -> Result<usize, EncodeError> {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; HEADER_LEN]);
    if let Err(e) = message.encode_payload(buf) {
        buf.truncate(start);
        return Err(e);
    }
    finish_frame(buf, start, message.command(), network)
}

/// Appends a frame carrying an already-encoded payload (copied once into `buf`).
pub fn encode_raw_frame(
    command: Command,
    payload: &[u8],
    network: &Network,
    buf: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let start = buf.len();
    buf.reserve(HEADER_LEN.saturating_add(payload.len()));
    buf.extend_from_slice(&[0u8; HEADER_LEN]);
    buf.extend_from_slice(payload);
    finish_frame(buf, start, command, network)
}

fn finish_frame(buf: &mut BytesMut, start: usize, command: Command, network: &Network) -> Result<usize, EncodeError> {
    // `start` is where this function's caller put the header placeholder, so both halves exist.
    let split = start.saturating_add(HEADER_LEN).min(buf.len());
    let (head, payload) = buf.split_at_mut(split);
    let length = payload.len();
    let max = max_payload_len(command, network.max_payload());
    let header = u32::try_from(length).ok().filter(|&l| l <= max).map(|length32| FrameHeader {
        magic: network.magic(),
        command,
        length: length32,
        checksum: checksum(payload),
    });
    match (header, head.get_mut(start..)) {
        (Some(header), Some(slot)) => {
            slot.copy_from_slice(&header.to_bytes());
            Ok(HEADER_LEN.saturating_add(length))
        }
        _ => {
            buf.truncate(start);
            Err(EncodeError::PayloadTooLarge { command, length, max })
        }
    }
}
