//! Payload types that btcpeer defines itself, where rust-bitcoin's are stricter than Bitcoin Core
//! (a short `version`, a `reject` without hash, any bloom flag), missing (`sendtxrcncl`), or less
//! convenient (inventory types 3 and `0x40000003`).

use std::net::{Ipv6Addr, SocketAddr};

use bitcoin::hashes::Hash;
use bitcoin::p2p::{Address, ServiceFlags};
use bitcoin::{BlockHash, Txid, Wtxid};
use bytes::{BufMut, BytesMut};

use super::limits::{MAX_COMPACT_SIZE, MAX_REJECT_MESSAGE_LEN, MAX_USER_AGENT_LEN};
use super::read::{Reader, Result};
use super::write;

/// Which trailing fields of a `version` message were present on the wire.
///
/// Bitcoin Core reads every field after `addr_recv` only if bytes remain; a message that
/// stops early is accepted with Core's defaults for the rest. Keeping the shape lets such a message
/// encode back to the same bytes. Messages you build should use [`VersionTail::Complete`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum VersionTail {
    /// Every field, relay flag included.
    #[default]
    Complete,
    /// Ends after `start_height` (no relay flag, as before protocol 70001): relay defaults to true.
    NoRelay,
    /// Ends after `user_agent`: start height defaults to -1.
    NoStartHeight,
    /// Ends after `nonce`: the user agent defaults to empty.
    NoUserAgent,
    /// Ends after `addr_recv` (Core's 46-byte form): sender is blank and the nonce is 1.
    NoSender,
}

/// The `version` message that opens the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionMessage {
    /// The sender's protocol version.
    pub version: u32,
    /// The sender's services.
    pub services: ServiceFlags,
    /// The sender's clock, in seconds since the Unix epoch.
    pub timestamp: i64,
    /// The receiver's address as the sender sees it (`addr_recv`).
    pub receiver: Address,
    /// The sender's own address (`addr_from`); usually blank.
    pub sender: Address,
    /// A random nonce used to detect connections to ourselves.
    pub nonce: u64,
    /// The sender's BIP14 user agent (at most 256 bytes). Bytes that are not UTF-8 are received as `?`.
    pub user_agent: String,
    /// The height of the sender's best chain.
    pub start_height: i32,
    /// Whether the sender wants transactions relayed before it loads a bloom filter (BIP37).
    pub relay: bool,
    /// Which trailing fields were present; [`VersionTail::Complete`] for messages you build.
    pub tail: VersionTail,
}

pub(crate) fn read_address(r: &mut Reader<'_>, field: &'static str) -> Result<Address> {
    let services = ServiceFlags::from(r.u64(field)?);
    let ip: [u8; 16] = r.array(field)?;
    let port = r.u16_be(field)?;
    let segments = Ipv6Addr::from(ip).segments();
    Ok(Address { services, address: segments, port })
}

pub(crate) fn write_address(buf: &mut BytesMut, a: &Address) {
    buf.put_u64_le(a.services.to_u64());
    for seg in a.address {
        buf.put_u16(seg);
    }
    buf.put_u16(a.port);
}

/// A blank legacy address (all zero), as in a version message's `addr_from`.
pub fn blank_address() -> Address {
    Address { services: ServiceFlags::NONE, address: [0; 8], port: 0 }
}

/// The legacy address for a socket address (IPv4 is mapped into IPv6, as on the wire).
pub fn address_from_socket(addr: SocketAddr, services: ServiceFlags) -> Address {
    Address::new(&addr, services)
}

impl VersionMessage {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<VersionMessage> {
        let version = r.u32("version")?;
        let services = ServiceFlags::from(r.u64("services")?);
        let timestamp = r.i64("timestamp")?;
        let receiver = read_address(r, "addr_recv")?;
        let mut msg = VersionMessage {
            version,
            services,
            timestamp,
            receiver,
            sender: blank_address(),
            nonce: 1,
            user_agent: String::new(),
            start_height: -1,
            relay: true,
            tail: VersionTail::NoSender,
        };
        if r.is_empty() {
            return Ok(msg);
        }
        msg.sender = read_address(r, "addr_from")?;
        msg.nonce = r.u64("nonce")?;
        msg.tail = VersionTail::NoUserAgent;
        if r.is_empty() {
            return Ok(msg);
        }
        msg.user_agent = r.var_string("user_agent", MAX_USER_AGENT_LEN)?;
        msg.tail = VersionTail::NoStartHeight;
        if r.is_empty() {
            return Ok(msg);
        }
        msg.start_height = r.i32("start_height")?;
        msg.tail = VersionTail::NoRelay;
        if r.is_empty() {
            return Ok(msg);
        }
        msg.relay = r.u8("relay")? != 0;
        msg.tail = VersionTail::Complete;
        // Fields a later protocol version appends are ignored, as Core reads only what it knows
        // (`ProcessMessage` for `VERSION` in `net_processing.cpp`); they are not re-encoded.
        r.skip_rest();
        Ok(msg)
    }

    pub(crate) fn write(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.version);
        buf.put_u64_le(self.services.to_u64());
        buf.put_i64_le(self.timestamp);
        write_address(buf, &self.receiver);
        if self.tail == VersionTail::NoSender {
            return;
        }
        write_address(buf, &self.sender);
        buf.put_u64_le(self.nonce);
        if self.tail == VersionTail::NoUserAgent {
            return;
        }
        write::var_bytes(buf, self.user_agent.as_bytes());
        if self.tail == VersionTail::NoStartHeight {
            return;
        }
        buf.put_i32_le(self.start_height);
        if self.tail == VersionTail::NoRelay {
            return;
        }
        buf.put_u8(u8::from(self.relay));
    }
}

/// A BIP61 reject code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RejectCode(pub u8);

impl RejectCode {
    /// The message could not be decoded.
    pub const MALFORMED: RejectCode = RejectCode(0x01);
    /// The message was invalid.
    pub const INVALID: RejectCode = RejectCode(0x10);
    /// The sender's version is too old.
    pub const OBSOLETE: RejectCode = RejectCode(0x11);
    /// A duplicate (a second `version`, a known transaction).
    pub const DUPLICATE: RejectCode = RejectCode(0x12);
    /// Not standard.
    pub const NONSTANDARD: RejectCode = RejectCode(0x40);
    /// Dust output.
    pub const DUST: RejectCode = RejectCode(0x41);
    /// Fee too low.
    pub const INSUFFICIENT_FEE: RejectCode = RejectCode(0x42);
    /// Conflicts with a checkpoint.
    pub const CHECKPOINT: RejectCode = RejectCode(0x43);

    /// The code's name, if it is one BIP61 defines.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x01 => "malformed",
            0x10 => "invalid",
            0x11 => "obsolete",
            0x12 => "duplicate",
            0x40 => "nonstandard",
            0x41 => "dust",
            0x42 => "insufficientfee",
            0x43 => "checkpoint",
            _ => return None,
        })
    }
}

/// A BIP61 `reject` message. The hash is optional on the wire: Bitcoin Core and btcd only add it
/// for rejected transactions and blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// The command of the rejected message (at most 12 bytes).
    pub message: String,
    /// Why it was rejected.
    pub code: RejectCode,
    /// A human-readable reason (Core kept 111 bytes for display; longer ones are accepted).
    pub reason: String,
    /// The rejected transaction or block, when there is one.
    pub hash: Option<[u8; 32]>,
}

impl Reject {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Reject> {
        let message = r.var_string("message", MAX_REJECT_MESSAGE_LEN)?;
        let code = RejectCode(r.u8("code")?);
        // Informational: any length the frame allows (btcd's reasons run past Core's old 111).
        let reason = r.var_string("reason", MAX_COMPACT_SIZE)?;
        let hash = if r.is_empty() { None } else { Some(r.array("hash")?) };
        Ok(Reject { message, code, reason, hash })
    }

    pub(crate) fn write(&self, buf: &mut BytesMut) {
        write::var_bytes(buf, self.message.as_bytes());
        buf.put_u8(self.code.0);
        write::var_bytes(buf, self.reason.as_bytes());
        if let Some(hash) = self.hash {
            buf.extend_from_slice(&hash);
        }
    }
}

/// A BIP37 `filterload` message. The flags byte is kept as sent (Core accepts any value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterLoad {
    /// The filter's bit field (at most 36,000 bytes).
    pub filter: Vec<u8>,
    /// Number of hash functions (at most 50).
    pub hash_funcs: u32,
    /// Random tweak for the hash functions.
    pub tweak: u32,
    /// Update behaviour: 0 none, 1 all, 2 pay-to-pubkey only.
    pub flags: u8,
}

/// A BIP37 `filteradd` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterAdd {
    /// The element to add (at most 520 bytes).
    pub data: Vec<u8>,
}

/// A BIP330 `sendtxrcncl` message (transaction reconciliation, Erlay).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SendTxRcncl {
    /// The reconciliation protocol version.
    pub version: u32,
    /// The sender's salt.
    pub salt: u64,
}

/// An inventory entry of `inv`, `getdata` and `notfound`: a type and a hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Inventory {
    /// Type 0, `MSG_ERROR`.
    Error([u8; 32]),
    /// Type 1, a transaction by txid.
    Tx(Txid),
    /// Type 2, a block.
    Block(BlockHash),
    /// Type 3, a block answered with a `merkleblock` (BIP37).
    FilteredBlock(BlockHash),
    /// Type 4, a block answered with a `cmpctblock` (BIP152).
    CompactBlock(BlockHash),
    /// Type 5, a transaction by wtxid (BIP339).
    WTx(Wtxid),
    /// Type `0x40000001`, a transaction with witness (BIP144).
    WitnessTx(Txid),
    /// Type `0x40000002`, a block with witness (BIP144).
    WitnessBlock(BlockHash),
    /// Type `0x40000003`, a filtered block with witness.
    FilteredWitnessBlock(BlockHash),
    /// Any other type, kept as sent.
    Unknown {
        /// The type number.
        inv_type: u32,
        /// The hash.
        hash: [u8; 32],
    },
}

impl Inventory {
    /// Builds an entry from its wire type and hash.
    pub fn from_parts(inv_type: u32, hash: [u8; 32]) -> Inventory {
        match inv_type {
            0 => Inventory::Error(hash),
            1 => Inventory::Tx(Txid::from_byte_array(hash)),
            2 => Inventory::Block(BlockHash::from_byte_array(hash)),
            3 => Inventory::FilteredBlock(BlockHash::from_byte_array(hash)),
            4 => Inventory::CompactBlock(BlockHash::from_byte_array(hash)),
            5 => Inventory::WTx(Wtxid::from_byte_array(hash)),
            0x4000_0001 => Inventory::WitnessTx(Txid::from_byte_array(hash)),
            0x4000_0002 => Inventory::WitnessBlock(BlockHash::from_byte_array(hash)),
            0x4000_0003 => Inventory::FilteredWitnessBlock(BlockHash::from_byte_array(hash)),
            inv_type => Inventory::Unknown { inv_type, hash },
        }
    }

    /// The wire type number.
    pub fn inv_type(&self) -> u32 {
        match self {
            Inventory::Error(_) => 0,
            Inventory::Tx(_) => 1,
            Inventory::Block(_) => 2,
            Inventory::FilteredBlock(_) => 3,
            Inventory::CompactBlock(_) => 4,
            Inventory::WTx(_) => 5,
            Inventory::WitnessTx(_) => 0x4000_0001,
            Inventory::WitnessBlock(_) => 0x4000_0002,
            Inventory::FilteredWitnessBlock(_) => 0x4000_0003,
            Inventory::Unknown { inv_type, .. } => *inv_type,
        }
    }

    /// The hash in wire (internal) byte order.
    pub fn hash_bytes(&self) -> [u8; 32] {
        match self {
            Inventory::Error(h) | Inventory::Unknown { hash: h, .. } => *h,
            Inventory::Tx(h) | Inventory::WitnessTx(h) => h.to_byte_array(),
            Inventory::WTx(h) => h.to_byte_array(),
            Inventory::Block(h)
            | Inventory::FilteredBlock(h)
            | Inventory::CompactBlock(h)
            | Inventory::WitnessBlock(h)
            | Inventory::FilteredWitnessBlock(h) => h.to_byte_array(),
        }
    }

    /// A short name for the type (`tx`, `block`, `wtx`, `witness_tx`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Inventory::Error(_) => "error",
            Inventory::Tx(_) => "tx",
            Inventory::Block(_) => "block",
            Inventory::FilteredBlock(_) => "filtered_block",
            Inventory::CompactBlock(_) => "compact_block",
            Inventory::WTx(_) => "wtx",
            Inventory::WitnessTx(_) => "witness_tx",
            Inventory::WitnessBlock(_) => "witness_block",
            Inventory::FilteredWitnessBlock(_) => "filtered_witness_block",
            Inventory::Unknown { .. } => "unknown",
        }
    }

    /// Whether the entry names a transaction (by txid, wtxid or with witness).
    pub fn is_transaction(&self) -> bool {
        matches!(self, Inventory::Tx(_) | Inventory::WTx(_) | Inventory::WitnessTx(_))
    }

    /// Whether this announces or requests a block of any kind.
    pub fn is_block(&self) -> bool {
        matches!(
            self,
            Inventory::Block(_)
                | Inventory::FilteredBlock(_)
                | Inventory::CompactBlock(_)
                | Inventory::WitnessBlock(_)
                | Inventory::FilteredWitnessBlock(_)
        )
    }

    /// Whether this announces or requests a transaction of any kind.
    pub fn is_tx(&self) -> bool {
        matches!(self, Inventory::Tx(_) | Inventory::WTx(_) | Inventory::WitnessTx(_))
    }
}
