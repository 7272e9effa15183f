//! The plumbing every file of btcpeer's shares: the framing (magic, version, body, checksum), the
//! atomic write, and the typed error a load gives back.
//!
//! Every file is `magic (8 bytes) | version (1 byte) | body | SHA256d(everything before)`, as
//! Bitcoin Core's `SerializeFileDB` / `DeserializeFileDB` (`addrdb.cpp`) frame `peers.dat` and
//! `anchors.dat` with the network magic and a SHA256d trailer. A file is written to a temporary
//! file beside it, synced, renamed over the old one, and the directory synced (Core's
//! `SerializeFileDB`: a temporary file, `FileCommit`, `RenameOver`), so a crash leaves either the
//! old file or the new one.
//!
//! ```
//! use btcpeer_core::persist::{seal, unseal};
//!
//! let file = seal(b"EXAMPLE!", 1, b"hello");
//! assert_eq!(unseal(b"EXAMPLE!", 1, &file), Ok(&b"hello"[..]));
//! assert!(unseal(b"EXAMPLE!", 2, &file).unwrap_err().contains("version"));
//! assert!(unseal(b"EXAMPLE!", 1, &file[..file.len() - 1]).unwrap_err().contains("checksum"));
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bitcoin::hashes::{Hash, sha256d};

/// The checksum trailer's length (a SHA256d).
pub const CHECKSUM_LEN: usize = 32;
/// The header's length: the magic and the version byte.
pub const HEADER_LEN: usize = 9;

/// Why a file could not be read.
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
    /// The file is not of the kind expected, is of another version, is truncated or corrupted.
    #[error("{path}: {problem}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, at which byte.
        problem: String,
    },
}

/// A file's bytes: `magic`, `version`, `body`, then the SHA256d of all of that.
pub fn seal(magic: &[u8; 8], version: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len().saturating_add(HEADER_LEN + CHECKSUM_LEN));
    out.extend_from_slice(magic);
    out.push(version);
    out.extend_from_slice(body);
    let sum = sha256d::Hash::hash(&out).to_byte_array();
    out.extend_from_slice(&sum);
    out
}

/// The body of a file made by [`seal`], once its magic, version and checksum are checked. `Err`
/// says what is wrong and at which byte: too short (`truncated`), another kind of file (`bad
/// magic`), another version, or a checksum mismatch (truncated or corrupted).
pub fn unseal<'a>(magic: &[u8; 8], version: u8, data: &'a [u8]) -> Result<&'a [u8], String> {
    if data.len() < HEADER_LEN + CHECKSUM_LEN {
        return Err(format!(
            "truncated: {} bytes, shorter than a header and checksum ({} bytes)",
            data.len(),
            HEADER_LEN + CHECKSUM_LEN
        ));
    }
    let (sealed, sum) = data.split_at(data.len().saturating_sub(CHECKSUM_LEN));
    let (header, body) = sealed.split_at(HEADER_LEN);
    let (found_magic, found_version) = header.split_at(8);
    if found_magic != magic {
        return Err(format!(
            "bad magic at byte 0: {:?}, expected {:?}",
            String::from_utf8_lossy(found_magic),
            String::from_utf8_lossy(magic)
        ));
    }
    let found_version = found_version.first().copied().unwrap_or_default();
    if found_version != version {
        return Err(format!("version {found_version} at byte 8, this build reads version {version}"));
    }
    if sha256d::Hash::hash(sealed).to_byte_array() != sum {
        return Err(format!("checksum mismatch at byte {} (truncated or corrupted)", sealed.len()));
    }
    Ok(body)
}

/// Temporary names are unique within the process: two saves never share one.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically: a temporary file beside it (`<name>.<pid>.<n>.tmp`),
/// fsync, rename over `path`, fsync of the directory. A crash leaves the old file or the new one,
/// never half of either; on an error the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "file".into());
    name.push(format!(".{}.{}.tmp", std::process::id(), TMP_COUNTER.fetch_add(1, Ordering::Relaxed)));
    let tmp = path.with_file_name(name);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename itself reaches the disk with the directory.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Reads `path` and decodes it with `decode`, naming the file in the error.
pub(crate) fn load_with<T>(path: &Path, decode: impl FnOnce(&[u8]) -> Result<T, String>) -> Result<T, LoadError> {
    let data = std::fs::read(path).map_err(|source| LoadError::Io { path: path.to_path_buf(), source })?;
    decode(&data).map_err(|problem| LoadError::Corrupt { path: path.to_path_buf(), problem })
}

/// Reads bytes front to back, each failure naming what was being read and where.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    at: usize,
    /// Added to positions in errors (the header before the body).
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader of a body that starts at byte `base` of its file.
    pub(crate) fn new(data: &'a [u8], base: usize) -> Self {
        Reader { data, at: 0, base }
    }
    /// The position in the file.
    pub(crate) fn pos(&self) -> usize {
        self.base.saturating_add(self.at)
    }
    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.at)
    }
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.data.len());
        let Some(end) = end else {
            return Err(format!("truncated at byte {} (reading {what})", self.pos()));
        };
        let s = self.data.get(self.at..end).unwrap_or_default();
        self.at = end;
        Ok(s)
    }
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?.first().copied().unwrap_or(0))
    }
    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    pub(crate) fn u16_be(&mut self, what: &str) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }
    pub(crate) fn u32_le(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64_le(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    /// `Err` unless every byte was read.
    pub(crate) fn finish(&self, what: &str) -> Result<(), String> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(format!("{n} bytes after {what}, at byte {}", self.pos())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("btcpeer-persist-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary_one() {
        let d = dir("replace");
        let path = d.join("x.dat");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new contents").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new contents");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        // Into a directory that does not exist: an error, and nothing written.
        assert!(write_atomic(&d.join("missing").join("x.dat"), b"x").is_err());
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn unseal_names_each_problem_and_where() {
        let file = seal(b"ABCDEFGH", 3, b"body");
        assert_eq!(file.len(), HEADER_LEN + 4 + CHECKSUM_LEN);
        assert_eq!(unseal(b"ABCDEFGH", 3, &file), Ok(&b"body"[..]));
        assert!(unseal(b"ABCDEFGX", 3, &file).unwrap_err().starts_with("bad magic at byte 0"));
        assert!(unseal(b"ABCDEFGH", 4, &file).unwrap_err().starts_with("version 3 at byte 8"));
        let mut flipped = file.clone();
        flipped[10] ^= 0x80;
        assert_eq!(
            unseal(b"ABCDEFGH", 3, &flipped).unwrap_err(),
            "checksum mismatch at byte 13 (truncated or corrupted)"
        );
        assert!(unseal(b"ABCDEFGH", 3, &file[..40]).unwrap_err().starts_with("truncated: 40 bytes"));
        // An empty body is fine.
        assert_eq!(unseal(b"ABCDEFGH", 3, &seal(b"ABCDEFGH", 3, b"")), Ok(&b""[..]));
    }

    #[test]
    fn the_reader_names_what_it_was_reading_and_the_byte() {
        let mut r = Reader::new(&[1, 2, 3], 9);
        assert_eq!(r.u8("a"), Ok(1));
        assert_eq!(r.u32_le("a count"), Err("truncated at byte 10 (reading a count)".to_string()));
        assert_eq!(r.u16_be("a port"), Ok(0x0203));
        assert_eq!(r.finish("the end"), Ok(()));
    }
}
