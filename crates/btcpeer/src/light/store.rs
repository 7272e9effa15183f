//! The light client's files in its data directory: `headers.dat` (80-byte headers from height 1)
//! and `filter_hashes.dat` (the 32-byte BIP157 filter hashes from height 0, from which the filter
//! headers are chained again at load), appended as the chains grow and cut back on a reorg.
//!
//! A stopgap until `btcpeer_core::chain::ChainStore` has its bodies. Crash safety: a torn tail (a
//! record cut short by a crash) is dropped at load; headers that do not check end the chain there
//! and the file is kept aside as `headers.dat.corrupt` before it is cut (as the node's files are);
//! filter hashes beyond the headers are dropped.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bitcoin::FilterHash;
use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;

use super::headers::ChainState;
use crate::core::chain::HeadersOutcome;

const HEADER_LEN: u64 = 80;
const HASH_LEN: u64 = 32;
/// Headers connected per call at load (the chain's `MAX_HEADERS`).
const LOAD_BATCH: usize = 2_000;

/// The two files, open for appending.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    headers: File,
    hashes: File,
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
}

fn read_all(file: &mut File) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn len_of(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

impl Store {
    /// Opens (creating) the files in `dir` and loads them into `chain`; what was repaired.
    pub(crate) fn open(dir: &Path, chain: &mut ChainState, now: u32) -> std::io::Result<(Store, Option<String>)> {
        std::fs::create_dir_all(dir)?;
        let mut repaired = None;
        let headers_path = dir.join("headers.dat");
        let mut headers = open(&headers_path)?;
        let bytes = read_all(&mut headers)?;
        let parsed: Vec<Header> = bytes.chunks_exact(80).map_while(|c| deserialize(c).ok()).collect();
        let mut good = 0u64;
        for batch in parsed.chunks(LOAD_BATCH) {
            match chain.connect(batch, now) {
                Ok(_) => good = good.saturating_add(u64::try_from(batch.len()).unwrap_or(0)),
                Err(e) => {
                    let aside = dir.join("headers.dat.corrupt");
                    std::fs::copy(&headers_path, &aside)?;
                    repaired = Some(format!("headers.dat: {e}; kept aside as {}", aside.display()));
                    // Keep the headers of the batch that do check.
                    for h in batch {
                        if chain.connect(std::slice::from_ref(h), now).is_err() {
                            break;
                        }
                        good = good.saturating_add(1);
                    }
                    break;
                }
            }
        }
        if good.saturating_mul(HEADER_LEN) != len_of(&bytes) {
            if repaired.is_none() {
                let torn = len_of(&bytes).saturating_sub(good.saturating_mul(HEADER_LEN));
                repaired = Some(format!("headers.dat: a torn tail of {torn} bytes dropped"));
            }
            headers.set_len(good.saturating_mul(HEADER_LEN))?;
        }

        let mut hashes = open(&dir.join("filter_hashes.dat"))?;
        let bytes = read_all(&mut hashes)?;
        let room = usize::try_from(chain.tip_height()).unwrap_or(usize::MAX).saturating_add(1);
        let loaded: Vec<FilterHash> =
            bytes.chunks_exact(32).take(room).filter_map(|c| FilterHash::from_slice(c).ok()).collect();
        let mut kept = 0u32;
        for batch in loaded.chunks(2_000) {
            let count = u32::try_from(batch.len()).unwrap_or(0);
            let Some(stop) = chain.hash(kept.saturating_add(count).saturating_sub(1)) else { break };
            if chain.connect_filter_hashes(kept, stop, batch).is_err() {
                break;
            }
            kept = kept.saturating_add(count);
        }
        if u64::from(kept).saturating_mul(HASH_LEN) != len_of(&bytes) {
            hashes.set_len(u64::from(kept).saturating_mul(HASH_LEN))?;
        }
        headers.seek(SeekFrom::End(0))?;
        hashes.seek(SeekFrom::End(0))?;
        Ok((Store { dir: dir.to_path_buf(), headers, hashes }, repaired))
    }

    /// Writes what `outcome` changed: cut back to the fork on a reorg, then the new headers;
    /// filter hashes above the fork are cut too.
    pub(crate) fn apply_headers(&mut self, outcome: &HeadersOutcome) -> std::io::Result<()> {
        if let (true, Some(fork)) = (outcome.is_reorg(), outcome.fork_height()) {
            // Record i is the header at height i + 1: keep `fork` records.
            self.headers.set_len(u64::from(fork).saturating_mul(HEADER_LEN))?;
            let hashes = self.hashes.seek(SeekFrom::End(0))? / HASH_LEN;
            self.hashes.set_len(hashes.min(u64::from(fork).saturating_add(1)).saturating_mul(HASH_LEN))?;
            self.hashes.seek(SeekFrom::End(0))?;
        }
        self.headers.seek(SeekFrom::End(0))?;
        let mut out = Vec::with_capacity(outcome.connected.len().saturating_mul(80));
        for c in &outcome.connected {
            out.extend_from_slice(&serialize(&c.header));
        }
        if !out.is_empty() {
            self.headers.write_all(&out)?;
            self.headers.sync_data()?;
        }
        Ok(())
    }

    /// Appends filter hashes from height `start` (the file is cut to `start` first).
    pub(crate) fn append_filter_hashes(&mut self, start: u32, hashes: &[FilterHash]) -> std::io::Result<()> {
        let on_disk = self.hashes.seek(SeekFrom::End(0))?;
        self.hashes.set_len(on_disk.min(u64::from(start).saturating_mul(HASH_LEN)))?;
        self.hashes.seek(SeekFrom::End(0))?;
        let mut out = Vec::with_capacity(hashes.len().saturating_mul(32));
        for h in hashes {
            out.extend_from_slice(h.as_byte_array());
        }
        self.hashes.write_all(&out)?;
        self.hashes.sync_data()
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}
