//! The message enum, and the dispatch from command to payload decoder and encoder.

use bitcoin::bip152::{BlockTransactions, BlockTransactionsRequest, HeaderAndShortIds, PrefilledTransaction, ShortId};
use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::p2p::address::{AddrV2, AddrV2Message};
use bitcoin::p2p::message_blockdata::{GetBlocksMessage, GetHeadersMessage};
use bitcoin::p2p::message_compact_blocks::SendCmpct;
use bitcoin::p2p::message_filter::{CFCheckpt, CFHeaders, CFilter, GetCFCheckpt, GetCFHeaders, GetCFilters};
use bitcoin::p2p::{Address, ServiceFlags};
use bitcoin::{Block, BlockHash, FilterHash, FilterHeader, MerkleBlock, Transaction};
use bytes::{BufMut, Bytes, BytesMut};

use super::command::Command;
use super::error::{EncodeError, PayloadError, PayloadErrorKind};
use super::limits::*;
use super::payload::{
    FilterAdd, FilterLoad, Inventory, Reject, SendTxRcncl, VersionMessage, read_address, write_address,
};
use super::read::{MIN_TX_LEN, Reader, Result};
use super::write;

/// A peer-to-peer message: every message Bitcoin Core speaks, or an unknown one kept with its
/// raw payload.
///
/// Consensus structures are rust-bitcoin's types. Decode a payload with
/// [`Message::decode`], encode one with [`Message::encode_payload`]; the frame around it is
/// [`crate::wire::frame`]'s business.
///
/// ```
/// use btcpeer_core::wire::{Command, Message};
///
/// let mut buf = bytes::BytesMut::new();
/// Message::Ping(7).encode_payload(&mut buf).unwrap();
/// assert_eq!(&buf[..], &7u64.to_le_bytes());
/// assert_eq!(Message::decode(Command::PING, buf.freeze()).unwrap(), Message::Ping(7));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// `version`: opens the handshake.
    Version(VersionMessage),
    /// `verack`: acknowledges the remote's version.
    Verack,
    /// `addr`: legacy addresses with their last-seen time.
    Addr(Vec<(u32, Address)>),
    /// `addrv2`: BIP155 addresses. Entries of unknown networks are kept as [`AddrV2::Unknown`] so the
    /// message round-trips; the peer skips them.
    AddrV2(Vec<AddrV2Message>),
    /// `sendaddrv2`: asks for `addrv2` instead of `addr` (BIP155).
    SendAddrV2,
    /// `inv`: announces inventory.
    Inv(Vec<Inventory>),
    /// `getdata`: requests inventory.
    GetData(Vec<Inventory>),
    /// `notfound`: requested inventory that is not available.
    NotFound(Vec<Inventory>),
    /// `getblocks`: asks for an `inv` of the blocks after the locator.
    GetBlocks(GetBlocksMessage),
    /// `getheaders`: asks for the headers after the locator.
    GetHeaders(GetHeadersMessage),
    /// `headers`: up to 2,000 block headers.
    Headers(Vec<Header>),
    /// `block`: a whole block.
    Block(Block),
    /// `tx`: a transaction.
    Tx(Transaction),
    /// `mempool`: asks for an `inv` of the remote's mempool (BIP35).
    MemPool,
    /// `getaddr`: asks for addresses.
    GetAddr,
    /// `ping` with its nonce (BIP31). A pre-BIP31 empty ping decodes with nonce 0.
    Ping(u64),
    /// `pong`: answers a ping with its nonce.
    Pong(u64),
    /// `reject` (BIP61).
    Reject(Reject),
    /// `sendheaders`: announce blocks with `headers` (BIP130).
    SendHeaders,
    /// `feefilter`: minimum fee rate in satoshis per 1,000 virtual bytes (BIP133).
    FeeFilter(i64),
    /// `filterload` (BIP37).
    FilterLoad(FilterLoad),
    /// `filteradd` (BIP37).
    FilterAdd(FilterAdd),
    /// `filterclear` (BIP37).
    FilterClear,
    /// `merkleblock` (BIP37).
    MerkleBlock(MerkleBlock),
    /// `sendcmpct` (BIP152).
    SendCmpct(SendCmpct),
    /// `cmpctblock` (BIP152).
    CmpctBlock(HeaderAndShortIds),
    /// `getblocktxn` (BIP152); the indexes are absolute (decoded from the differential encoding).
    GetBlockTxn(BlockTransactionsRequest),
    /// `blocktxn` (BIP152).
    BlockTxn(BlockTransactions),
    /// `getcfilters` (BIP157).
    GetCFilters(GetCFilters),
    /// `cfilter` (BIP157).
    CFilter(CFilter),
    /// `getcfheaders` (BIP157).
    GetCFHeaders(GetCFHeaders),
    /// `cfheaders` (BIP157).
    CFHeaders(CFHeaders),
    /// `getcfcheckpt` (BIP157).
    GetCFCheckpt(GetCFCheckpt),
    /// `cfcheckpt` (BIP157).
    CFCheckpt(CFCheckpt),
    /// `wtxidrelay`: announce transactions by wtxid (BIP339).
    WtxidRelay,
    /// `sendtxrcncl` (BIP330).
    SendTxRcncl(SendTxRcncl),
    /// Any other command, with its payload as received; the application can send these too.
    Unknown {
        /// The command.
        command: Command,
        /// The raw payload.
        payload: Bytes,
    },
}

fn read_inventory(r: &mut Reader<'_>) -> Result<Vec<Inventory>> {
    let count = r.count("count", MAX_INV_ENTRIES, 36)?;
    // The count is backed by the bytes present: take all entries at once and walk them in 36-byte
    // steps (type, then hash), without a bounds check per field.
    let entries = r.take("inventory", (count as u64).saturating_mul(36))?;
    Ok(entries
        .chunks_exact(36)
        .map(|entry| {
            let (inv_type, hash) = entry.split_at(4);
            let inv_type = u32::from_le_bytes(inv_type.try_into().unwrap_or([0; 4]));
            Inventory::from_parts(inv_type, hash.try_into().unwrap_or([0; 32]))
        })
        .collect())
}

fn block_hash(r: &mut Reader<'_>, field: &'static str) -> Result<BlockHash> {
    Ok(BlockHash::from_byte_array(r.array(field)?))
}

fn read_locator(r: &mut Reader<'_>) -> Result<(u32, Vec<BlockHash>, BlockHash)> {
    let version = r.u32("version")?;
    let count = r.count("locator", MAX_LOCATOR_HASHES, 32)?;
    let mut hashes = Vec::with_capacity(count);
    for _ in 0..count {
        hashes.push(block_hash(r, "locator")?);
    }
    Ok((version, hashes, block_hash(r, "stop_hash")?))
}

/// The required address length for a BIP155 network id, `None` for unknown ids.
fn addrv2_len(network_id: u8) -> Option<u64> {
    match network_id {
        1 => Some(4),
        2 => Some(16),
        3 => Some(10),
        4 | 5 => Some(32),
        6 => Some(16),
        _ => None,
    }
}

fn read_addrv2(r: &mut Reader<'_>) -> Result<AddrV2Message> {
    let time = r.u32("addrs.time")?;
    let services = ServiceFlags::from(r.compact_value("addrs.services")?);
    let network_id = r.u8("addrs.network_id")?;
    let bytes = r.var_bytes("addrs.addr", MAX_ADDRV2_ADDR_LEN)?;
    if let Some(expected) = addrv2_len(network_id) {
        if bytes.len() as u64 != expected {
            let kind = PayloadErrorKind::AddressLength { network_id, len: bytes.len() as u64, expected };
            return Err(r.error("addrs.addr", kind));
        }
    }
    let arr16 = |b: &[u8]| <[u8; 16]>::try_from(b).unwrap_or_default();
    let arr32 = |b: &[u8]| <[u8; 32]>::try_from(b).unwrap_or_default();
    let addr = match network_id {
        1 => AddrV2::Ipv4(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default())),
        2 => AddrV2::Ipv6(std::net::Ipv6Addr::from(arr16(bytes))),
        3 => AddrV2::TorV2(<[u8; 10]>::try_from(bytes).unwrap_or_default()),
        4 => AddrV2::TorV3(arr32(bytes)),
        5 => AddrV2::I2p(arr32(bytes)),
        6 => AddrV2::Cjdns(std::net::Ipv6Addr::from(arr16(bytes))),
        id => AddrV2::Unknown(id, bytes.to_vec()),
    };
    let port = r.u16_be("addrs.port")?;
    Ok(AddrV2Message { time, services, addr, port })
}

fn write_addrv2(buf: &mut BytesMut, a: &AddrV2Message) {
    buf.put_u32_le(a.time);
    write::compact_size(buf, a.services.to_u64());
    let (id, bytes): (u8, Vec<u8>) = match &a.addr {
        AddrV2::Ipv4(ip) => (1, ip.octets().to_vec()),
        AddrV2::Ipv6(ip) => (2, ip.octets().to_vec()),
        AddrV2::TorV2(b) => (3, b.to_vec()),
        AddrV2::TorV3(b) => (4, b.to_vec()),
        AddrV2::I2p(b) => (5, b.to_vec()),
        AddrV2::Cjdns(ip) => (6, ip.octets().to_vec()),
        AddrV2::Unknown(id, b) => (*id, b.clone()),
    };
    buf.put_u8(id);
    write::var_bytes(buf, &bytes);
    buf.put_u16(a.port);
}

/// Walks a merkleblock's shape so that rust-bitcoin's decoder (which allocates eight booleans per
/// flag byte before reading them) only sees counts backed by real bytes.
fn merkleblock_len(bytes: &[u8]) -> Result<u64> {
    let mut s = Reader::new(Command::MERKLEBLOCK, bytes);
    s.take("header", 80)?;
    s.u32("total_transactions")?;
    let hashes = s.compact_size("hashes")?;
    s.backed("hashes", hashes, 32)?;
    s.take("hashes", hashes.saturating_mul(32))?;
    let flags = s.compact_size("flags")?;
    s.take("flags", flags)?;
    Ok(s.position() as u64)
}

fn read_cmpctblock(r: &mut Reader<'_>) -> Result<HeaderAndShortIds> {
    let header: Header = r.consensus("header", 80)?;
    let nonce = r.u64("nonce")?;
    let count = r.count("short_ids", MAX_COMPACT_SIZE, 6)?;
    let mut short_ids = Vec::with_capacity(count);
    for _ in 0..count {
        short_ids.push(ShortId::from(r.array::<6>("short_ids")?));
    }
    let count = r.count("prefilled_txs", MAX_COMPACT_SIZE, 1 + MIN_TX_LEN)?;
    let mut prefilled_txs = Vec::with_capacity(count);
    for _ in 0..count {
        let idx = r.compact_size("prefilled_txs.index")?;
        let idx = u16::try_from(idx)
            .map_err(|_| r.error("prefilled_txs.index", PayloadErrorKind::Invalid("index above 65535")))?;
        let tx = r.transaction("prefilled_txs.tx")?;
        prefilled_txs.push(PrefilledTransaction { idx, tx });
    }
    Ok(HeaderAndShortIds { header, nonce, short_ids, prefilled_txs })
}

fn read_getblocktxn(r: &mut Reader<'_>) -> Result<BlockTransactionsRequest> {
    let block_hash = block_hash(r, "block_hash")?;
    let count = r.count("indexes", MAX_COMPACT_SIZE, 1)?;
    let mut indexes = Vec::with_capacity(count);
    let mut next: u64 = 0;
    for _ in 0..count {
        let diff = r.compact_value("indexes")?;
        let index =
            next.checked_add(diff).ok_or_else(|| r.error("indexes", PayloadErrorKind::Invalid("index overflows")))?;
        indexes.push(index);
        next = index.checked_add(1).ok_or_else(|| r.error("indexes", PayloadErrorKind::Invalid("index overflows")))?;
    }
    Ok(BlockTransactionsRequest { block_hash, indexes })
}

fn read_hashes<T: Hash<Bytes = [u8; 32]>>(r: &mut Reader<'_>, field: &'static str, max: u64) -> Result<Vec<T>> {
    let count = r.count(field, max, 32)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(T::from_byte_array(r.array(field)?));
    }
    Ok(out)
}

impl Message {
    /// The message's command.
    pub fn command(&self) -> Command {
        match self {
            Message::Version(_) => Command::VERSION,
            Message::Verack => Command::VERACK,
            Message::Addr(_) => Command::ADDR,
            Message::AddrV2(_) => Command::ADDRV2,
            Message::SendAddrV2 => Command::SENDADDRV2,
            Message::Inv(_) => Command::INV,
            Message::GetData(_) => Command::GETDATA,
            Message::NotFound(_) => Command::NOTFOUND,
            Message::GetBlocks(_) => Command::GETBLOCKS,
            Message::GetHeaders(_) => Command::GETHEADERS,
            Message::Headers(_) => Command::HEADERS,
            Message::Block(_) => Command::BLOCK,
            Message::Tx(_) => Command::TX,
            Message::MemPool => Command::MEMPOOL,
            Message::GetAddr => Command::GETADDR,
            Message::Ping(_) => Command::PING,
            Message::Pong(_) => Command::PONG,
            Message::Reject(_) => Command::REJECT,
            Message::SendHeaders => Command::SENDHEADERS,
            Message::FeeFilter(_) => Command::FEEFILTER,
            Message::FilterLoad(_) => Command::FILTERLOAD,
            Message::FilterAdd(_) => Command::FILTERADD,
            Message::FilterClear => Command::FILTERCLEAR,
            Message::MerkleBlock(_) => Command::MERKLEBLOCK,
            Message::SendCmpct(_) => Command::SENDCMPCT,
            Message::CmpctBlock(_) => Command::CMPCTBLOCK,
            Message::GetBlockTxn(_) => Command::GETBLOCKTXN,
            Message::BlockTxn(_) => Command::BLOCKTXN,
            Message::GetCFilters(_) => Command::GETCFILTERS,
            Message::CFilter(_) => Command::CFILTER,
            Message::GetCFHeaders(_) => Command::GETCFHEADERS,
            Message::CFHeaders(_) => Command::CFHEADERS,
            Message::GetCFCheckpt(_) => Command::GETCFCHECKPT,
            Message::CFCheckpt(_) => Command::CFCHECKPT,
            Message::WtxidRelay => Command::WTXIDRELAY,
            Message::SendTxRcncl(_) => Command::SENDTXRCNCL,
            Message::Unknown { command, .. } => *command,
        }
    }

    /// Decodes a payload received under `command`.
    ///
    /// Limits are enforced as each count is read, before anything is allocated for it;
    /// bytes left over after the last field are an error; unknown commands become
    /// [`Message::Unknown`] holding `payload` without a copy. Never panics, whatever the input.
    pub fn decode(command: Command, payload: Bytes) -> std::result::Result<Message, PayloadError> {
        let mut r = Reader::new(command, &payload);
        let r = &mut r;
        let msg = match command.as_str() {
            "version" => Message::Version(VersionMessage::read(r)?),
            "verack" => Message::Verack,
            "sendaddrv2" => Message::SendAddrV2,
            "mempool" => Message::MemPool,
            "getaddr" => Message::GetAddr,
            "sendheaders" => Message::SendHeaders,
            "filterclear" => Message::FilterClear,
            "wtxidrelay" => Message::WtxidRelay,
            "addr" => {
                let count = r.count("count", MAX_ADDR_ENTRIES, 30)?;
                let mut addrs = Vec::with_capacity(count);
                for _ in 0..count {
                    let time = r.u32("addrs.time")?;
                    addrs.push((time, read_address(r, "addrs.addr")?));
                }
                Message::Addr(addrs)
            }
            "addrv2" => {
                let count = r.count("count", MAX_ADDR_ENTRIES, 9)?;
                let mut addrs = Vec::with_capacity(count);
                for _ in 0..count {
                    addrs.push(read_addrv2(r)?);
                }
                Message::AddrV2(addrs)
            }
            "inv" => Message::Inv(read_inventory(r)?),
            "getdata" => Message::GetData(read_inventory(r)?),
            "notfound" => Message::NotFound(read_inventory(r)?),
            "getblocks" => {
                let (version, locator_hashes, stop_hash) = read_locator(r)?;
                Message::GetBlocks(GetBlocksMessage { version, locator_hashes, stop_hash })
            }
            "getheaders" => {
                let (version, locator_hashes, stop_hash) = read_locator(r)?;
                Message::GetHeaders(GetHeadersMessage { version, locator_hashes, stop_hash })
            }
            "headers" => {
                let count = r.count("count", MAX_HEADERS, 81)?;
                let mut headers = Vec::with_capacity(count);
                for _ in 0..count {
                    headers.push(r.consensus::<Header>("headers", 80)?);
                    // Bitcoin Core reads each header's transaction count and ignores it.
                    r.compact_value("headers.tx_count")?;
                }
                Message::Headers(headers)
            }
            "block" => {
                let header = r.consensus("header", 80)?;
                Message::Block(Block { header, txdata: r.transactions("txdata")? })
            }
            "tx" => Message::Tx(r.transaction("tx")?),
            "ping" if r.is_empty() => Message::Ping(0),
            "ping" => Message::Ping(r.u64("nonce")?),
            "pong" => Message::Pong(r.u64("nonce")?),
            "reject" => Message::Reject(Reject::read(r)?),
            "feefilter" => Message::FeeFilter(r.i64("feerate")?),
            "filterload" => {
                let filter = r.var_bytes("filter", MAX_FILTERLOAD_BYTES)?.to_vec();
                let hash_funcs = r.u32("hash_funcs")?;
                if hash_funcs > MAX_BLOOM_HASH_FUNCS {
                    let kind = PayloadErrorKind::TooMany {
                        count: u64::from(hash_funcs),
                        max: u64::from(MAX_BLOOM_HASH_FUNCS),
                    };
                    return Err(r.error("hash_funcs", kind));
                }
                let tweak = r.u32("tweak")?;
                let flags = r.u8("flags")?;
                Message::FilterLoad(FilterLoad { filter, hash_funcs, tweak, flags })
            }
            "filteradd" => Message::FilterAdd(FilterAdd { data: r.var_bytes("data", MAX_FILTERADD_BYTES)?.to_vec() }),
            "merkleblock" => {
                let len = merkleblock_len(&payload)?;
                Message::MerkleBlock(r.consensus("merkleblock", len)?)
            }
            "sendcmpct" => {
                let send_compact = r.u8("announce")? != 0;
                Message::SendCmpct(SendCmpct { send_compact, version: r.u64("version")? })
            }
            "cmpctblock" => Message::CmpctBlock(read_cmpctblock(r)?),
            "getblocktxn" => Message::GetBlockTxn(read_getblocktxn(r)?),
            "blocktxn" => {
                let block_hash = block_hash(r, "block_hash")?;
                Message::BlockTxn(BlockTransactions { block_hash, transactions: r.transactions("transactions")? })
            }
            "getcfilters" => Message::GetCFilters(GetCFilters {
                filter_type: r.u8("filter_type")?,
                start_height: r.u32("start_height")?,
                stop_hash: block_hash(r, "stop_hash")?,
            }),
            "getcfheaders" => Message::GetCFHeaders(GetCFHeaders {
                filter_type: r.u8("filter_type")?,
                start_height: r.u32("start_height")?,
                stop_hash: block_hash(r, "stop_hash")?,
            }),
            "getcfcheckpt" => Message::GetCFCheckpt(GetCFCheckpt {
                filter_type: r.u8("filter_type")?,
                stop_hash: block_hash(r, "stop_hash")?,
            }),
            "cfilter" => Message::CFilter(CFilter {
                filter_type: r.u8("filter_type")?,
                block_hash: block_hash(r, "block_hash")?,
                filter: r.var_bytes("filter", MAX_COMPACT_SIZE)?.to_vec(),
            }),
            "cfheaders" => Message::CFHeaders(CFHeaders {
                filter_type: r.u8("filter_type")?,
                stop_hash: block_hash(r, "stop_hash")?,
                previous_filter_header: FilterHeader::from_byte_array(r.array("previous_filter_header")?),
                filter_hashes: read_hashes::<FilterHash>(r, "filter_hashes", MAX_CFHEADERS)?,
            }),
            "cfcheckpt" => Message::CFCheckpt(CFCheckpt {
                filter_type: r.u8("filter_type")?,
                stop_hash: block_hash(r, "stop_hash")?,
                filter_headers: read_hashes::<FilterHeader>(r, "filter_headers", MAX_COMPACT_SIZE)?,
            }),
            "sendtxrcncl" => Message::SendTxRcncl(SendTxRcncl { version: r.u32("version")?, salt: r.u64("salt")? }),
            _ => return Ok(Message::Unknown { command, payload }),
        };
        r.finish()?;
        Ok(msg)
    }

    /// Appends the payload's encoding to `buf`. Fails only for values the protocol cannot carry
    /// (`getblocktxn` indexes that do not increase); size limits are checked by the frame encoder.
    pub fn encode_payload(&self, buf: &mut BytesMut) -> std::result::Result<(), EncodeError> {
        match self {
            Message::Version(v) => v.write(buf),
            Message::Verack
            | Message::SendAddrV2
            | Message::MemPool
            | Message::GetAddr
            | Message::SendHeaders
            | Message::FilterClear
            | Message::WtxidRelay => {}
            Message::Addr(addrs) => {
                write::compact_size(buf, addrs.len() as u64);
                for (time, addr) in addrs {
                    buf.put_u32_le(*time);
                    write_address(buf, addr);
                }
            }
            Message::AddrV2(addrs) => {
                write::compact_size(buf, addrs.len() as u64);
                for a in addrs {
                    write_addrv2(buf, a);
                }
            }
            Message::Inv(items) | Message::GetData(items) | Message::NotFound(items) => {
                write::compact_size(buf, items.len() as u64);
                for item in items {
                    buf.put_u32_le(item.inv_type());
                    buf.extend_from_slice(&item.hash_bytes());
                }
            }
            Message::GetBlocks(m) => write_locator(buf, m.version, &m.locator_hashes, &m.stop_hash),
            Message::GetHeaders(m) => write_locator(buf, m.version, &m.locator_hashes, &m.stop_hash),
            Message::Headers(headers) => {
                write::compact_size(buf, headers.len() as u64);
                for h in headers {
                    write::consensus(buf, h);
                    buf.put_u8(0);
                }
            }
            Message::Block(b) => write::consensus(buf, b),
            Message::Tx(tx) => write::consensus(buf, tx),
            Message::Ping(n) | Message::Pong(n) => buf.put_u64_le(*n),
            Message::Reject(r) => r.write(buf),
            Message::FeeFilter(rate) => buf.put_i64_le(*rate),
            Message::FilterLoad(f) => {
                write::var_bytes(buf, &f.filter);
                buf.put_u32_le(f.hash_funcs);
                buf.put_u32_le(f.tweak);
                buf.put_u8(f.flags);
            }
            Message::FilterAdd(f) => write::var_bytes(buf, &f.data),
            Message::MerkleBlock(m) => write::consensus(buf, m),
            Message::SendCmpct(s) => {
                buf.put_u8(u8::from(s.send_compact));
                buf.put_u64_le(s.version);
            }
            Message::CmpctBlock(c) => {
                write::consensus(buf, &c.header);
                buf.put_u64_le(c.nonce);
                write::compact_size(buf, c.short_ids.len() as u64);
                for id in &c.short_ids {
                    write::consensus(buf, id);
                }
                write::compact_size(buf, c.prefilled_txs.len() as u64);
                for p in &c.prefilled_txs {
                    write::compact_size(buf, u64::from(p.idx));
                    write::consensus(buf, &p.tx);
                }
            }
            Message::GetBlockTxn(req) => {
                buf.extend_from_slice(&req.block_hash.to_byte_array());
                write::compact_size(buf, req.indexes.len() as u64);
                let mut next: u64 = 0;
                for &index in &req.indexes {
                    let diff = index.checked_sub(next).ok_or(EncodeError::Invalid {
                        command: Command::GETBLOCKTXN,
                        field: "indexes",
                        reason: "indexes must be strictly increasing",
                    })?;
                    write::compact_size(buf, diff);
                    next = index.saturating_add(1);
                }
            }
            Message::BlockTxn(b) => {
                buf.extend_from_slice(&b.block_hash.to_byte_array());
                write::compact_size(buf, b.transactions.len() as u64);
                for tx in &b.transactions {
                    write::consensus(buf, tx);
                }
            }
            Message::GetCFilters(m) => {
                buf.put_u8(m.filter_type);
                buf.put_u32_le(m.start_height);
                buf.extend_from_slice(&m.stop_hash.to_byte_array());
            }
            Message::GetCFHeaders(m) => {
                buf.put_u8(m.filter_type);
                buf.put_u32_le(m.start_height);
                buf.extend_from_slice(&m.stop_hash.to_byte_array());
            }
            Message::GetCFCheckpt(m) => {
                buf.put_u8(m.filter_type);
                buf.extend_from_slice(&m.stop_hash.to_byte_array());
            }
            Message::CFilter(m) => {
                buf.put_u8(m.filter_type);
                buf.extend_from_slice(&m.block_hash.to_byte_array());
                write::var_bytes(buf, &m.filter);
            }
            Message::CFHeaders(m) => {
                buf.put_u8(m.filter_type);
                buf.extend_from_slice(&m.stop_hash.to_byte_array());
                buf.extend_from_slice(&m.previous_filter_header.to_byte_array());
                write::compact_size(buf, m.filter_hashes.len() as u64);
                for h in &m.filter_hashes {
                    buf.extend_from_slice(&h.to_byte_array());
                }
            }
            Message::CFCheckpt(m) => {
                buf.put_u8(m.filter_type);
                buf.extend_from_slice(&m.stop_hash.to_byte_array());
                write::compact_size(buf, m.filter_headers.len() as u64);
                for h in &m.filter_headers {
                    buf.extend_from_slice(&h.to_byte_array());
                }
            }
            Message::SendTxRcncl(m) => {
                buf.put_u32_le(m.version);
                buf.put_u64_le(m.salt);
            }
            Message::Unknown { payload, .. } => buf.extend_from_slice(payload),
        }
        Ok(())
    }
}

fn write_locator(buf: &mut BytesMut, version: u32, hashes: &[BlockHash], stop: &BlockHash) {
    buf.put_u32_le(version);
    write::compact_size(buf, hashes.len() as u64);
    for h in hashes {
        buf.extend_from_slice(&h.to_byte_array());
    }
    buf.extend_from_slice(&stop.to_byte_array());
}
