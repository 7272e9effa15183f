//! The light client's files in its data directory: `headers.dat` (80-byte headers from height 1)
//! and `filter_headers.dat` (32-byte BIP157 filter headers from height 0), appended as the chain
//! grows and cut back on a reorg.
//!
//! Crash safety: a torn tail (a record cut short by a crash) is dropped at load; a header that does
//! not check at load ends the chain there, and the file is kept aside as `headers.dat.corrupt`
//! before it is rewritten (as the node's files are); filter headers beyond the headers are dropped.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bitcoin::FilterHeader;
use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;

use super::headers::HeaderChain;

const HEADER_LEN: u64 = 80;
const FILTER_HEADER_LEN: u64 = 32;

/// What loading found.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// A torn tail or a corrupt file was dropped (kept aside, for a corrupt file).
    pub repaired: Option<String>,
}

/// The two files, open for appending.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    headers: File,
    filter_headers: File,
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

impl Store {
    /// Opens (creating) the files in `dir` and loads them into `chain`.
    pub(crate) fn open(dir: &Path, chain: &mut HeaderChain, now: u32) -> std::io::Result<(Store, Loaded)> {
        std::fs::create_dir_all(dir)?;
        let mut loaded = Loaded::default();
        let headers_path = dir.join("headers.dat");
        let mut headers = open(&headers_path)?;
        let bytes = read_all(&mut headers)?;
        let parsed: Vec<Header> = bytes.chunks_exact(80).filter_map(|c| deserialize(c).ok()).collect();
        let whole = u64::try_from(bytes.len()).unwrap_or(u64::MAX) / HEADER_LEN;
        let mut good = 0u64;
        for batch in parsed.chunks(2_000) {
            match chain.connect(batch, now) {
                Ok(_) => good = good.saturating_add(u64::try_from(batch.len()).unwrap_or(0)),
                Err(e) => {
                    // Keep what checks, set the file aside, rewrite the good part.
                    let aside = dir.join("headers.dat.corrupt");
                    std::fs::copy(&headers_path, &aside)?;
                    loaded.repaired = Some(format!("headers.dat: {e}; kept aside as {}", aside.display()));
                    let ok: Vec<Header> =
                        batch.iter().take_while(|h| chain.connect(&[**h], now).is_ok()).copied().collect();
                    good = good.saturating_add(u64::try_from(ok.len()).unwrap_or(0));
                    break;
                }
            }
        }
        if good != whole || bytes.len() as u64 % HEADER_LEN != 0 {
            if loaded.repaired.is_none() {
                loaded.repaired = Some(format!(
                    "headers.dat: a torn tail of {} bytes dropped",
                    (bytes.len() as u64).saturating_sub(good.saturating_mul(HEADER_LEN))
                ));
            }
            headers.set_len(good.saturating_mul(HEADER_LEN))?;
        }
        let fh_path = dir.join("filter_headers.dat");
        let mut filter_headers = open(&fh_path)?;
        let bytes = read_all(&mut filter_headers)?;
        let room = u64::from(chain.tip_height()).saturating_add(1);
        let count = (u64::try_from(bytes.len()).unwrap_or(u64::MAX) / FILTER_HEADER_LEN).min(room);
        let fhs: Vec<FilterHeader> = bytes
            .chunks_exact(32)
            .take(usize::try_from(count).unwrap_or(0))
            .filter_map(|c| FilterHeader::from_slice(c).ok())
            .collect();
        chain.push_filter_headers(&fhs);
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) != count.saturating_mul(FILTER_HEADER_LEN) {
            filter_headers.set_len(count.saturating_mul(FILTER_HEADER_LEN))?;
        }
        headers.seek(SeekFrom::End(0))?;
        filter_headers.seek(SeekFrom::End(0))?;
        Ok((Store { dir: dir.to_path_buf(), headers, filter_headers }, loaded))
    }

    /// Brings the files to `chain`: each is compared with the chain over a bounded tail (a reorg
    /// cuts back at most that far between two saves), cut where they differ, and appended to.
    pub(crate) fn save(&mut self, chain: &HeaderChain) -> std::io::Result<()> {
        sync_tail(&mut self.headers, HEADER_LEN, u64::from(chain.tip_height()), |i| {
            // Record i of the file is the header at height i + 1.
            let height = u32::try_from(i.saturating_add(1)).unwrap_or(u32::MAX);
            chain.headers_from(height).first().map(serialize)
        })?;
        sync_tail(&mut self.filter_headers, FILTER_HEADER_LEN, u64::from(chain.filter_headers_len()), |i| {
            chain.filter_header(u32::try_from(i).unwrap_or(u32::MAX)).map(|f| f.as_byte_array().to_vec())
        })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// How far back a save compares the files with the chain.
const TAIL: u64 = 4_032;

/// Makes `file` (records of `len` bytes) hold `count` records equal to `record(i)`, assuming the
/// records before the last [`TAIL`] already are.
fn sync_tail(file: &mut File, len: u64, count: u64, record: impl Fn(u64) -> Option<Vec<u8>>) -> std::io::Result<()> {
    let on_disk = file.seek(SeekFrom::End(0))?.checked_div(len).unwrap_or(0);
    let mut keep = on_disk.min(count);
    let start = keep.saturating_sub(TAIL);
    if keep > start {
        file.seek(SeekFrom::Start(start.saturating_mul(len)))?;
        let mut buf = vec![0u8; usize::try_from(keep.saturating_sub(start).saturating_mul(len)).unwrap_or(0)];
        file.read_exact(&mut buf)?;
        let same = buf
            .chunks_exact(usize::try_from(len).unwrap_or(1))
            .zip(start..)
            .take_while(|(bytes, i)| record(*i).is_some_and(|r| r.as_slice() == *bytes))
            .count();
        keep = start.saturating_add(u64::try_from(same).unwrap_or(0));
    }
    if keep != on_disk {
        file.set_len(keep.saturating_mul(len))?;
    }
    file.seek(SeekFrom::End(0))?;
    let mut out = Vec::new();
    for i in keep..count {
        match record(i) {
            Some(r) => out.extend_from_slice(&r),
            None => break,
        }
    }
    if !out.is_empty() {
        file.write_all(&out)?;
        file.sync_data()?;
    }
    Ok(())
}
