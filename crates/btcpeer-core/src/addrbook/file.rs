//! The book's file: versioned, checksummed, written atomically (a temporary file, fsync, rename),
//! read with a typed error for every way it can be wrong. A bad file is never half-loaded.
//!
//! Layout: `BTCPBOOK`, a version byte (1), the 32-byte key, an entry count (u32 LE, at most
//! 81,920), the entries, then the SHA256d of everything before it. An entry: its address (BIP155
//! network id, length, bytes), port (u16 BE), services (u64), time, last try and last success
//! (u64 each), failed attempts (u32), its source's address, whether it is in tried, and its v2
//! support (a byte each). Positions are not stored: they follow from the key.

use std::io::Write;
use std::path::{Path, PathBuf};

use bitcoin::hashes::{Hash, sha256d};
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2;

use super::{AddrBook, AddrInfo, EMPTY, MAX_ENTRIES, Peer, V2Support};

const MAGIC: &[u8; 8] = b"BTCPBOOK";
const VERSION: u8 = 1;

/// Why a book file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a book, is of another version, is truncated or corrupted.
    #[error("{path}: {problem}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, at which byte.
        problem: String,
    },
}

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

/// Reads bytes front to back, each failure naming where it happened.
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.data.len());
        let Some(end) = end else {
            return Err(format!("truncated at byte {} (reading {what})", self.at));
        };
        let s = self.data.get(self.at..end).unwrap_or_default();
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?.first().copied().unwrap_or(0))
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    fn addr(&mut self, what: &str) -> Result<AddrV2, String> {
        let at = self.at;
        let id = self.u8(what)?;
        let len = usize::from(self.u8(what)?);
        let b = self.take(len, what)?;
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
}

impl AddrBook {
    /// The book as file bytes: `BTCPBOOK`, a version byte (1), the 32-byte key, an entry count
    /// (u32 LE, at most 81,920), the entries, then the SHA256d of everything before it. An entry
    /// is its address (BIP155 network id, length, bytes), port (u16 BE), services (u64), time, last
    /// try and last success (u64 each), failed attempts (u32), its source's address, whether it is
    /// in tried, and its v2 support. Positions are not stored: they follow from the key.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len().saturating_mul(80).saturating_add(64));
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
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
        let sum = sha256d::Hash::hash(&out).to_byte_array();
        out.extend_from_slice(&sum);
        out
    }

    /// A book from file bytes; `seed` seeds its generator. `Err` says what is wrong and where.
    pub fn decode(data: &[u8], seed: u64) -> Result<AddrBook, String> {
        let Some(body_len) = data.len().checked_sub(32) else {
            return Err(format!("truncated: {} bytes, too short for a book", data.len()));
        };
        let (body, sum) = data.split_at(body_len);
        let mut c = Cursor { data: body, at: 0 };
        if c.take(8, "the magic")? != MAGIC {
            return Err("not a btcpeer address book (bad magic)".into());
        }
        let version = c.u8("the version")?;
        if version != VERSION {
            return Err(format!("version {version}, this build reads version {VERSION}"));
        }
        if sha256d::Hash::hash(body).to_byte_array() != sum {
            return Err("checksum mismatch (truncated or corrupted)".into());
        }
        let key = c.array::<32>("the key")?;
        let count = u32::from_le_bytes(c.array::<4>("the count")?) as usize;
        if count > MAX_ENTRIES {
            return Err(format!("{count} entries, more than a book holds ({MAX_ENTRIES})"));
        }
        let mut book = AddrBook::new(key, seed);
        book.allow_local = true;
        for _ in 0..count {
            let addr = c.addr("an address")?;
            let port = u16::from_be_bytes(c.array::<2>("a port")?);
            let services = ServiceFlags::from(u64::from_le_bytes(c.array::<8>("services")?));
            let time = u64::from_le_bytes(c.array::<8>("a time")?);
            let last_try = u64::from_le_bytes(c.array::<8>("a time")?);
            let last_success = u64::from_le_bytes(c.array::<8>("a time")?);
            let attempts = u32::from_le_bytes(c.array::<4>("attempts")?);
            let source = c.addr("a source")?;
            let in_tried = c.u8("the table")? == 1;
            let v2 = match c.u8("v2 support")? {
                1 => V2Support::Yes,
                2 => V2Support::Failed,
                _ => V2Support::Unknown,
            };
            let peer = Peer::new(addr, port);
            if book.index.contains_key(&peer) {
                return Err(format!("a duplicate entry near byte {}", c.at));
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
        if c.at != body.len() {
            return Err(format!("{} bytes after the last entry", body.len().saturating_sub(c.at)));
        }
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
            if let Some(s) = self.tried_table.get_mut(tried_slot) {
                *s = id;
            }
            if let Some(e) = self.entries.get_mut(&id) {
                e.in_tried = true;
            }
            self.tried_count = self.tried_count.saturating_add(1);
            return;
        }
        let slot = self.slot(true, self.new_bucket(&peer, &source), &peer);
        if self.new_table.get(slot) == Some(&EMPTY) {
            if let Some(s) = self.new_table.get_mut(slot) {
                *s = id;
            }
            if let Some(e) = self.entries.get_mut(&id) {
                e.ref_count = 1;
            }
            self.new_count = self.new_count.saturating_add(1);
        } else {
            self.entries.remove(&id);
            self.index.remove(&peer);
        }
    }

    /// Writes the book to `path` atomically: a temporary file beside it, fsync, rename. A crash
    /// leaves the old file or the new one, never half of either.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&self.encode())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename itself reaches the disk with the directory.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// Reads a book written by [`save`](AddrBook::save).
    pub fn load(path: &Path, seed: u64) -> Result<AddrBook, LoadError> {
        let data = std::fs::read(path).map_err(|source| LoadError::Io { path: path.to_path_buf(), source })?;
        AddrBook::decode(&data, seed).map_err(|problem| LoadError::Corrupt { path: path.to_path_buf(), problem })
    }
}
