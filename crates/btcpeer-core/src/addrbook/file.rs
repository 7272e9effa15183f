//! The book's file: versioned, checksummed, written atomically (a temporary file, fsync, rename),
//! read with a typed error for every way it can be wrong. A bad file is never half-loaded.
//!
//! Layout: `BTCPBOOK`, a version byte (1), the 32-byte key, an entry count (u32 LE, at most
//! 81,920), the entries, then the SHA256d of everything before it. An entry: its address (BIP155
//! network id, length, bytes), port (u16 BE), services (u64), time, last try and last success
//! (u64 each), failed attempts (u32), its source's address, whether it is in tried, and its v2
//! support (a byte each). Positions are not stored: they follow from the key.

use std::path::Path;

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2;

use super::{AddrBook, AddrInfo, EMPTY, Endpoint, MAX_ENTRIES, V2Support};
use crate::persist::{self, HEADER_LEN, LoadError, Reader};

const MAGIC: &[u8; 8] = b"BTCPBOOK";
const VERSION: u8 = 1;

/// An address's BIP155 encoding: network id, length, bytes.
pub(super) fn addr_bytes(addr: &AddrV2) -> Vec<u8> {
    let (id, bytes): (u8, Vec<u8>) = match addr {
        AddrV2::Ipv4(ip) => (1, ip.octets().to_vec()),
        AddrV2::Ipv6(ip) => (2, ip.octets().to_vec()),
        AddrV2::TorV3(k) => (4, k.to_vec()),
        AddrV2::I2p(h) => (5, h.to_vec()),
        AddrV2::Cjdns(ip) => (6, ip.octets().to_vec()),
        _ => (0, Vec::new()),
    };
    let mut out = vec![id, bytes.len() as u8];
    out.extend_from_slice(&bytes);
    out
}

/// Reads an address in its BIP155 encoding.
fn read_addr(c: &mut Reader<'_>, what: &str) -> Result<AddrV2, String> {
    let at = c.pos();
    let id = c.u8(what)?;
    let len = usize::from(c.u8(what)?);
    let b = c.take(len, what)?;
    let bad = || format!("bad {what} at byte {at} (network {id}, {len} bytes)");
    Ok(match (id, len) {
        (1, 4) => AddrV2::Ipv4(<[u8; 4]>::try_from(b).map_err(|_| bad())?.into()),
        (2, 16) => AddrV2::Ipv6(<[u8; 16]>::try_from(b).map_err(|_| bad())?.into()),
        (4, 32) => AddrV2::TorV3(<[u8; 32]>::try_from(b).map_err(|_| bad())?),
        (5, 32) => AddrV2::I2p(<[u8; 32]>::try_from(b).map_err(|_| bad())?),
        (6, 16) => AddrV2::Cjdns(<[u8; 16]>::try_from(b).map_err(|_| bad())?.into()),
        _ => return Err(bad()),
    })
}

impl AddrBook {
    /// The book as file bytes: `BTCPBOOK`, a version byte (1), the 32-byte key, an entry count
    /// (u32 LE, at most 81,920), the entries, then the SHA256d of everything before it. An entry
    /// is its address (BIP155 network id, length, bytes), port (u16 BE), services (u64), time, last
    /// try and last success (u64 each), failed attempts (u32), its source's address, whether it is
    /// in tried, and its v2 support. Positions are not stored: they follow from the key.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len().saturating_mul(80).saturating_add(64));
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        let mut ids: Vec<&u32> = self.entries.keys().collect();
        ids.sort();
        for e in ids.into_iter().filter_map(|id| self.entries.get(id)) {
            out.extend_from_slice(&addr_bytes(&e.peer.addr));
            out.extend_from_slice(&e.peer.port.to_be_bytes());
            out.extend_from_slice(&e.services.to_u64().to_le_bytes());
            for t in [e.time, e.last_try, e.last_success] {
                out.extend_from_slice(&t.to_le_bytes());
            }
            out.extend_from_slice(&e.attempts.to_le_bytes());
            out.extend_from_slice(&addr_bytes(&e.source));
            out.push(u8::from(e.in_tried));
            out.push(match e.v2 {
                V2Support::Unknown => 0,
                V2Support::Yes => 1,
                V2Support::Failed => 2,
            });
        }
        persist::seal(MAGIC, VERSION, &out)
    }

    /// A book from file bytes; `seed` seeds its generator. `Err` says what is wrong and where.
    pub fn decode(data: &[u8], seed: u64) -> Result<AddrBook, String> {
        let body = persist::unseal(MAGIC, VERSION, data)?;
        let mut c = Reader::new(body, HEADER_LEN);
        let key = c.array::<32>("the key")?;
        let count = u32::from_le_bytes(c.array::<4>("the count")?) as usize;
        if count > MAX_ENTRIES {
            return Err(format!("{count} entries, more than a book holds ({MAX_ENTRIES})"));
        }
        let mut book = AddrBook::new(key, seed);
        book.allow_local = true;
        for _ in 0..count {
            let addr = read_addr(&mut c, "an address")?;
            let port = u16::from_be_bytes(c.array::<2>("a port")?);
            let services = ServiceFlags::from(u64::from_le_bytes(c.array::<8>("services")?));
            let time = u64::from_le_bytes(c.array::<8>("a time")?);
            let last_try = u64::from_le_bytes(c.array::<8>("a time")?);
            let last_success = u64::from_le_bytes(c.array::<8>("a time")?);
            let attempts = u32::from_le_bytes(c.array::<4>("attempts")?);
            let source = read_addr(&mut c, "a source")?;
            let in_tried = c.u8("the table")? == 1;
            let v2 = match c.u8("v2 support")? {
                1 => V2Support::Yes,
                2 => V2Support::Failed,
                _ => V2Support::Unknown,
            };
            let peer = Endpoint::new(addr, port);
            if book.index.contains_key(&peer) {
                return Err(format!("a duplicate entry near byte {}", c.pos()));
            }
            let info = AddrInfo {
                peer,
                services,
                time,
                last_try,
                last_success,
                attempts,
                source,
                in_tried: false,
                v2,
                ref_count: 0,
            };
            book.place(info, in_tried);
        }
        c.finish("the last entry")?;
        book.allow_local = false;
        Ok(book)
    }

    /// Puts a loaded entry back where its key puts it (a taken slot: into new, or left out).
    fn place(&mut self, info: AddrInfo, tried: bool) {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let (peer, source) = (info.peer.clone(), info.source.clone());
        self.index.insert(peer.clone(), id);
        self.entries.insert(id, info);
        let tried_slot = self.slot(false, self.tried_bucket(&peer), &peer);
        if tried && self.tried_table.get(tried_slot) == Some(&EMPTY) {
            if let Some(e) = self.entries.get_mut(&id) {
                e.in_tried = true;
            }
            self.set_slot(true, tried_slot, id);
            self.tried_count = self.tried_count.saturating_add(1);
            return;
        }
        let slot = self.slot(true, self.new_bucket(&peer, &source), &peer);
        if self.new_table.get(slot) == Some(&EMPTY) {
            self.set_slot(false, slot, id);
            if let Some(e) = self.entries.get_mut(&id) {
                e.ref_count = 1;
            }
            self.new_count = self.new_count.saturating_add(1);
        } else {
            self.entries.remove(&id);
            self.index.remove(&peer);
        }
    }

    /// Writes the book to `path` atomically ([`persist::write_atomic`]): a temporary file beside
    /// it, fsync, rename. A crash leaves the old file or the new one, never half of either.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        persist::write_atomic(path, &self.encode())
    }

    /// Reads a book written by [`save`](AddrBook::save).
    pub fn load(path: &Path, seed: u64) -> Result<AddrBook, LoadError> {
        persist::load_with(path, |data| AddrBook::decode(data, seed))
    }
}
