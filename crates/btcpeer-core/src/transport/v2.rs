//! BIP324 (v2) packet framing over the ciphers of [`crate::transport::v2_cipher`].
//!
//! A packet is a 3-byte encrypted length, then the encrypted header byte and contents, then a
//! 16-byte tag. The length is decrypted and checked against the largest message the network allows
//! *before* any room is reserved for the packet; room then grows in steps as bytes arrive, as in v1.
//! Packets are decrypted in place in the read buffer and the payload is handed on as `Bytes`
//! without a copy; they are encrypted in place in the write buffer, the payload copied into it once.
//! Decoy packets are skipped. Contents start with a BIP324 short message id, or 0 followed by the
//! 12-byte command. Rekeying every 224 packets happens inside the ciphers.
//!
//! The handshake is in [`crate::transport::v2_handshake`].

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::v2_cipher::{InboundCipher, OutboundCipher};

use crate::wire::frame::RawFrame;
use crate::wire::limits::max_payload_len;
use crate::wire::{COMMAND_LEN, Command};

/// Bytes of the encrypted length prefix.
pub const LENGTH_BYTES: usize = super::v2_cipher::LENGTH_LEN;
/// Bytes of the header byte plus the authentication tag.
pub const OVERHEAD: usize = 1 + super::v2_cipher::TAG_LEN;

/// BIP324's short message ids: index = id (0 is the long form).
const SHORT_IDS: [Option<Command>; 29] = [
    None,
    Some(Command::ADDR),
    Some(Command::BLOCK),
    Some(Command::BLOCKTXN),
    Some(Command::CMPCTBLOCK),
    Some(Command::FEEFILTER),
    Some(Command::FILTERADD),
    Some(Command::FILTERCLEAR),
    Some(Command::FILTERLOAD),
    Some(Command::GETBLOCKS),
    Some(Command::GETBLOCKTXN),
    Some(Command::GETDATA),
    Some(Command::GETHEADERS),
    Some(Command::HEADERS),
    Some(Command::INV),
    Some(Command::MEMPOOL),
    Some(Command::MERKLEBLOCK),
    Some(Command::NOTFOUND),
    Some(Command::PING),
    Some(Command::PONG),
    Some(Command::SENDCMPCT),
    Some(Command::TX),
    Some(Command::GETCFILTERS),
    Some(Command::CFILTER),
    Some(Command::GETCFHEADERS),
    Some(Command::CFHEADERS),
    Some(Command::GETCFCHECKPT),
    Some(Command::CFCHECKPT),
    Some(Command::ADDRV2),
];

/// The short id of each command of [`Command::KNOWN`], in its order (0: none, the long form is
/// used): one lookup per packet instead of a search. Computed at compile time.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const SHORT_ID_OF_KNOWN: [u8; Command::KNOWN.len()] = {
    let mut out = [0u8; Command::KNOWN.len()];
    let mut k = 0;
    while k < Command::KNOWN.len() {
        let mut id = 1;
        while id < SHORT_IDS.len() {
            if let Some(c) = SHORT_IDS[id] {
                if c.const_eq(&Command::KNOWN[k]) {
                    out[k] = id as u8;
                }
            }
            id += 1;
        }
        k += 1;
    }
    out
};

/// The short id BIP324 assigns to `command`, if any.
///
/// ```
/// use btcpeer_core::transport::v2::{command_for_short_id, short_id};
/// use btcpeer_core::wire::Command;
///
/// assert_eq!(short_id(Command::INV), Some(14));
/// assert_eq!(short_id(Command::VERSION), None);
/// assert_eq!(command_for_short_id(28), Some(Command::ADDRV2));
/// ```
pub fn short_id(command: Command) -> Option<u8> {
    command.known_index().and_then(|i| SHORT_ID_OF_KNOWN.get(i).copied()).filter(|&id| id != 0)
}

/// The command for a short id, if BIP324 assigns one.
pub fn command_for_short_id(id: u8) -> Option<Command> {
    SHORT_IDS.get(usize::from(id)).copied().flatten()
}

/// Why a v2 packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum V2Error {
    /// The packet failed authentication: tampered with, or the stream is out of sync.
    #[error("packet authentication failed")]
    Authentication,
    /// The announced contents are longer than the largest message the network allows.
    #[error("packet announces {length} bytes of contents; at most {max} allowed")]
    PacketTooLarge {
        /// Contents length announced.
        length: usize,
        /// The maximum.
        max: usize,
    },
    /// A genuine packet with no contents (not even a message id).
    #[error("empty packet")]
    EmptyPacket,
    /// A long-form command that is not printable ASCII padded with NULs.
    #[error("invalid command bytes in a long-form message")]
    InvalidCommand,
    /// A payload above its command's own maximum.
    #[error("{command} payload of {length} bytes; at most {max} allowed")]
    CommandPayloadTooLarge {
        /// The command.
        command: Command,
        /// The payload length.
        length: usize,
        /// The maximum.
        max: u32,
    },
    /// The handshake failed (see the message).
    #[error("v2 handshake failed: {0}")]
    Handshake(&'static str),
}

impl V2Error {
    /// Whether a reader drops just this packet and carries on, as Bitcoin Core does
    /// (`V2Transport::GetReceivedMessage` in `net.cpp` sets `reject_message` when the contents name
    /// no message type): an empty packet or invalid long-form command bytes. The packet was
    /// authenticated, so the stream is still in sync.
    pub fn is_droppable(&self) -> bool {
        matches!(self, V2Error::EmptyPacket | V2Error::InvalidCommand)
    }
}

/// The ignore bit of a packet's header byte (BIP324): set, the packet is a decoy whatever the
/// other bits are; the seven other bits are reserved and ignored (Core's
/// `BIP324Cipher::IGNORE_BIT` checked in `V2Transport::ProcessReceivedPacketBytes`).
pub const IGNORE_BIT: u8 = 0x80;

/// Appends a message's plaintext contents (short id or long form, then the payload) to `out`.
pub fn encode_contents(command: Command, payload: &[u8], out: &mut impl BufMut) {
    match short_id(command) {
        Some(id) => out.put_u8(id),
        None => {
            out.put_u8(0);
            out.put_slice(&command.to_wire());
        }
    }
    out.put_slice(payload);
}

/// Splits decrypted contents into command and payload (a slice of `contents`, no copy).
pub fn decode_contents(contents: Bytes, network_max: u32) -> Result<RawFrame, V2Error> {
    let (command, offset) = match contents.first() {
        None => return Err(V2Error::EmptyPacket),
        Some(0) => {
            let raw = contents
                .get(1..1 + COMMAND_LEN)
                .and_then(|s| <&[u8; COMMAND_LEN]>::try_from(s).ok())
                .ok_or(V2Error::InvalidCommand)?;
            (Command::from_wire(raw).ok_or(V2Error::InvalidCommand)?, 1 + COMMAND_LEN)
        }
        Some(&id) => {
            // An id BIP324 does not assign still arrives (as Core treats it: an unknown message),
            // under a name that says where it came from.
            let command = command_for_short_id(id)
                .or_else(|| Command::new(&format!("shortid-{id}")).ok())
                .ok_or(V2Error::InvalidCommand)?;
            (command, 1)
        }
    };
    let payload = contents.slice(offset.min(contents.len())..);
    let max = max_payload_len(command, network_max);
    if payload.len() > max as usize {
        return Err(V2Error::CommandPayloadTooLarge { command, length: payload.len(), max });
    }
    Ok(RawFrame { command, payload })
}

/// The most contents a v2 packet can carry: its length field has 24 bits.
pub const MAX_PACKET_CONTENTS: usize = (1 << 24) - 1;

/// The contents length of a packet carrying `payload_len` bytes under `command` (the message id, one
/// byte or the 13-byte long form, then the payload).
pub fn contents_len(command: Command, payload_len: usize) -> usize {
    let id = if short_id(command).is_some() { 1 } else { 1 + COMMAND_LEN };
    payload_len.saturating_add(id)
}

/// The largest packet contents for a network: a long-form header plus its largest payload.
pub fn max_contents(network_max: u32) -> usize {
    (network_max as usize).saturating_add(1 + COMMAND_LEN)
}

/// Decrypts packets from a read buffer.
pub struct V2Decoder {
    cipher: InboundCipher,
    network_max: u32,
    /// Decrypted length of the packet being read (header byte + contents + tag), once its length
    /// prefix has been taken from the buffer.
    pending: Option<usize>,
    /// Bytes the last packet took on the wire (for counting one that is dropped).
    last_wire: usize,
    /// Decoy packets skipped.
    pub decoys: u64,
}

impl std::fmt::Debug for V2Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V2Decoder").field("pending", &self.pending).field("decoys", &self.decoys).finish()
    }
}

impl V2Decoder {
    /// A decoder for packets encrypted with `cipher`, refusing contents above what `network_max`
    /// allows.
    pub fn new(cipher: InboundCipher, network_max: u32) -> Self {
        V2Decoder { cipher, network_max, pending: None, last_wire: 0, decoys: 0 }
    }

    /// Takes the next genuine packet from `src`, skipping decoys. Returns the message and the bytes
    /// it took on the wire, or `None` until more bytes arrive.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<(RawFrame, usize)>, V2Error> {
        loop {
            let len = match self.pending {
                Some(len) => len,
                None => {
                    let Some(prefix) = src.get(..LENGTH_BYTES).and_then(|s| <[u8; 3]>::try_from(s).ok()) else {
                        return Ok(None);
                    };
                    // The length cipher advances with every call: exactly once per packet.
                    let contents = self.cipher.decrypt_length(prefix);
                    let max = max_contents(self.network_max);
                    if contents > max {
                        return Err(V2Error::PacketTooLarge { length: contents, max });
                    }
                    src.advance(LENGTH_BYTES);
                    let len = contents.saturating_add(OVERHEAD);
                    self.pending = Some(len);
                    len
                }
            };
            if src.len() < len {
                // As in v1: room grows with what has arrived, at most doubling.
                super::reserve_towards(src, len);
                return Ok(None);
            }
            self.pending = None;
            let mut packet = src.split_to(len);
            if self.cipher.decrypt(&mut packet, &[]).is_err() {
                return Err(V2Error::Authentication);
            }
            let wire = len.saturating_add(LENGTH_BYTES);
            self.last_wire = wire;
            // Any header with the ignore bit set is a decoy, whatever its reserved bits (BIP324).
            if packet.first().is_none_or(|h| h & IGNORE_BIT != 0) {
                self.decoys = self.decoys.saturating_add(1);
                continue;
            }
            // Plaintext: header byte, contents, then the (now meaningless) tag bytes.
            packet.truncate(len.saturating_sub(16));
            let contents = packet.freeze().slice(1..);
            return decode_contents(contents, self.network_max).map(|frame| Some((frame, wire)));
        }
    }

    /// Drops the cipher state an idle connection need not hold (rebuilt on the next packet).
    pub fn release(&mut self) {
        self.cipher.release();
    }

    /// Bytes the last packet took on the wire: after a [droppable](V2Error::is_droppable) error,
    /// the size of the packet dropped.
    pub fn last_packet_len(&self) -> usize {
        self.last_wire
    }
}

/// Encrypts messages into a write buffer.
pub struct V2Encoder {
    cipher: OutboundCipher,
}

impl std::fmt::Debug for V2Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V2Encoder").finish_non_exhaustive()
    }
}

impl V2Encoder {
    /// An encoder for `cipher`.
    pub fn new(cipher: OutboundCipher) -> Self {
        V2Encoder { cipher }
    }

    /// Appends one encrypted packet carrying a message; returns its size on the wire. The payload
    /// is copied once, into `out`, and encrypted there.
    pub fn encode(&mut self, command: Command, payload: &[u8], out: &mut BytesMut) -> usize {
        self.cipher.encrypt_into(0, &[], out, |o| encode_contents(command, payload, o))
    }

    /// Drops the cipher state an idle connection need not hold (rebuilt on the next packet).
    pub fn release(&mut self) {
        self.cipher.release();
    }

    /// Appends a decoy packet of `len` content bytes, which the remote skips.
    pub fn encode_decoy(&mut self, len: usize, out: &mut BytesMut) -> usize {
        self.cipher.encrypt_into(IGNORE_BIT, &[], out, |o| o.put_bytes(0, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_t3_short_id_table_round_trips() {
        for id in 1..=28u8 {
            let cmd = command_for_short_id(id).expect("assigned");
            assert_eq!(short_id(cmd), Some(id));
        }
        assert_eq!(command_for_short_id(0), None);
        assert_eq!(command_for_short_id(29), None);
        for cmd in [Command::VERSION, Command::VERACK, Command::GETADDR, Command::SENDHEADERS, Command::WTXIDRELAY] {
            assert_eq!(short_id(cmd), None, "{cmd} uses the long form");
        }
    }

    #[test]
    fn r_t3_contents_decode_short_long_and_malformed() {
        let f = decode_contents(Bytes::from_static(&[18, 1, 2, 3, 4, 5, 6, 7, 8]), 4_000_000).unwrap();
        assert_eq!((f.command, &f.payload[..]), (Command::PING, &[1, 2, 3, 4, 5, 6, 7, 8][..]));
        let mut long = vec![0u8];
        long.extend(Command::VERACK.to_wire());
        let f = decode_contents(Bytes::from(long), 4_000_000).unwrap();
        assert_eq!((f.command, f.payload.len()), (Command::VERACK, 0));
        assert_eq!(decode_contents(Bytes::new(), 4_000_000).unwrap_err(), V2Error::EmptyPacket);
        assert_eq!(decode_contents(Bytes::from_static(&[0, b'v']), 4_000_000).unwrap_err(), V2Error::InvalidCommand);
        let f = decode_contents(Bytes::from_static(&[99, 1]), 4_000_000).unwrap();
        assert_eq!(f.command.as_str(), "shortid-99");
        let err = decode_contents(Bytes::from_static(&[18, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 4_000_000).unwrap_err();
        assert!(matches!(err, V2Error::CommandPayloadTooLarge { length: 9, max: 8, .. }));
    }
}
