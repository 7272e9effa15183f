//! Persistence of the header chain and the filter-header chain: two append-only files in a
//! data directory, one fixed-size checksummed record per block.
//!
//! - `headers.dat`: `BTCPHDRS` | version 1 | the network's genesis hash | checksum, then per
//!   block its 80-byte header and the first 4 bytes of SHA256d(height ‖ header).
//! - `filter_headers.dat`: `BTCPFHDR` | version 1 | genesis hash | checksum, then per height
//!   its 32-byte filter header and the first 4 bytes of SHA256d(height ‖ filter header).
//!
//! The store keeps chains that start at genesis ([`HeaderChain::new`]); a chain started from a
//! checkpoint is not saved (its first outcome is refused as out of order).
//!
//! A reorg truncates a file to the fork and appends. After a crash, a torn tail (a partial
//! last record, or a last record whose checksum fails) is dropped; a bad record before the
//! last means corruption: the file is kept aside as `FILE.corrupt` and the good records before
//! it are kept, never a corrupt chain. Headers are checked again as they are loaded.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bitcoin::bip158::FilterHeader;
use bitcoin::block::Header;
use bitcoin::consensus::encode;
use bitcoin::hashes::{Hash, sha256d};

use super::filters::{FilterHeaderChain, FilterHeadersOutcome};
use super::headers::{HeaderChain, HeadersOutcome, MAX_HEADERS};
use super::params::ChainParams;

const HEADERS_MAGIC: &[u8; 8] = b"BTCPHDRS";
const FILTERS_MAGIC: &[u8; 8] = b"BTCPFHDR";
const VERSION: u8 = 1;
/// magic, version, genesis hash, 4-byte checksum.
const PREFIX_LEN: u64 = 8 + 1 + 32 + 4;
const HEADER_RECORD: u64 = 80 + 4;
const FILTER_RECORD: u64 = 32 + 4;

/// The headers file's name in the data directory.
pub const HEADERS_FILE: &str = "headers.dat";
/// The filter headers file's name in the data directory.
pub const FILTER_HEADERS_FILE: &str = "filter_headers.dat";

/// Why the store failed.
///
/// ```
/// use btcpeer_core::chain::{ChainParams, ChainStore, StoreError};
/// let dir = std::env::temp_dir().join(format!("btcpeer-store-err-{}", std::process::id()));
/// ChainStore::open(&dir, ChainParams::new(bitcoin::Network::Regtest))?;
/// let err = ChainStore::open(&dir, ChainParams::new(bitcoin::Network::Signet)).unwrap_err();
/// assert!(matches!(err, StoreError::OtherChain { .. }));
/// # let _ = std::fs::remove_dir_all(&dir);
/// # Ok::<(), StoreError>(())
/// ```
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
    /// A record read back does not match its checksum (the file changed under the store).
    #[error("{path}: {problem}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// What is to be written does not follow what the file holds (a bug of the caller: an
    /// outcome applied twice or skipped).
    #[error("{0}")]
    OutOfOrder(String),
}

/// What [`ChainStore::open`] found.
///
/// ```
/// use btcpeer_core::chain::{ChainParams, ChainStore};
/// let dir = std::env::temp_dir().join(format!("btcpeer-store-loaded-{}", std::process::id()));
/// let (_store, loaded) = ChainStore::open(&dir, ChainParams::new(bitcoin::Network::Regtest))?;
/// println!("resuming at height {}; repairs: {:?}", loaded.headers.height(), loaded.repairs);
/// # let _ = std::fs::remove_dir_all(&dir);
/// # Ok::<(), btcpeer_core::chain::StoreError>(())
/// ```
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
/// After a reorg, [`apply_headers`](Self::apply_headers) also drops the filter headers above
/// the fork from the file; drop them from the [`FilterHeaderChain`] too
/// ([`FilterHeaderChain::truncate`]).
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
    headers: File,
    filters: File,
    /// Header records in the file (heights 1 ..= this).
    header_records: u64,
    /// Filter header records in the file (heights 0 .. this).
    filter_records: u64,
}

/// The checksum of a record: the first 4 bytes of SHA256d(height ‖ body).
fn record_sum(height: u64, body: &[u8]) -> [u8; 4] {
    let mut engine = sha256d::Hash::engine();
    bitcoin::hashes::HashEngine::input(&mut engine, &height.to_le_bytes());
    bitcoin::hashes::HashEngine::input(&mut engine, body);
    let h = sha256d::Hash::from_engine(engine).to_byte_array();
    [h[0], h[1], h[2], h[3]]
}

fn prefix(magic: &[u8; 8], genesis: &[u8; 32]) -> Vec<u8> {
    let mut p = Vec::with_capacity(PREFIX_LEN as usize);
    p.extend_from_slice(magic);
    p.push(VERSION);
    p.extend_from_slice(genesis);
    let sum = sha256d::Hash::hash(&p).to_byte_array();
    p.extend_from_slice(&sum[..4]);
    p
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// What a scan of one file kept and repaired.
struct Scan {
    /// Keep this many bytes of the file (the rest is a torn tail, corruption, or refused).
    keep_len: u64,
    /// The file is corrupt: keep a copy aside before truncating.
    corrupt: bool,
    repair: Option<String>,
}

/// What the consumer of a batch of records did with it.
struct Taken {
    /// Records accepted, from the first.
    accepted: usize,
    /// The next record was refused as invalid (corruption), not merely not wanted.
    invalid: bool,
}

/// Records read and handed over at once (bounded memory while loading).
const SCAN_BATCH: usize = MAX_HEADERS;

/// Reads a chain file: its prefix, then fixed-size records, each checksummed, handing the
/// bodies of good records to `take` in batches of at most [`SCAN_BATCH`]. `first_height` is the
/// height of record 0. Memory is one batch, whatever the file's size.
fn scan(
    path: &Path,
    magic: &[u8; 8],
    genesis: &[u8; 32],
    record: u64,
    first_height: u64,
    mut take: impl FnMut(&[&[u8]]) -> Taken,
) -> Result<Scan, StoreError> {
    let name = path.display();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Scan { keep_len: 0, corrupt: false, repair: None });
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut reader = std::io::BufReader::new(file);
    if len < PREFIX_LEN {
        // Torn while it was being created: start it afresh.
        let repair = (len > 0).then(|| format!("{name}: {len} bytes, shorter than its header: started afresh"));
        return Ok(Scan { keep_len: 0, corrupt: false, repair });
    }
    let mut head = [0u8; PREFIX_LEN as usize];
    reader.read_exact(&mut head).map_err(io_err(path))?;
    if head.as_slice() != prefix(magic, genesis).as_slice() {
        let (m, g) = (head.get(..8), head.get(9..41));
        let sum_ok =
            head.get(41..45) == Some(&sha256d::Hash::hash(head.get(..41).unwrap_or_default()).to_byte_array()[..4]);
        let other = |problem: &str| Err(StoreError::OtherChain { path: path.to_path_buf(), problem: problem.into() });
        if sum_ok && m != Some(magic.as_slice()) {
            return other("not a btcpeer chain file of this kind");
        }
        if sum_ok && g != Some(genesis.as_slice()) {
            return other("the file is for another network (another genesis block)");
        }
        if sum_ok {
            return other("another version of the file");
        }
        return Ok(Scan {
            keep_len: 0,
            corrupt: true,
            repair: Some(format!("{name}: its header is corrupt: kept aside as .corrupt, started afresh")),
        });
    }
    let full = len.saturating_sub(PREFIX_LEN).checked_div(record).unwrap_or(0);
    let tail = len.saturating_sub(PREFIX_LEN).checked_rem(record).unwrap_or(0);
    let mut repair = (tail != 0).then(|| format!("{name}: a torn last record ({tail} bytes) dropped"));
    let mut corrupt = false;
    let rec = usize::try_from(record).unwrap_or(usize::MAX);
    let mut buf = vec![0u8; rec.saturating_mul(SCAN_BATCH)];
    let mut kept = 0u64;
    'outer: while kept < full {
        let n = usize::try_from(full.saturating_sub(kept)).unwrap_or(SCAN_BATCH).min(SCAN_BATCH);
        let chunk = buf.get_mut(..n.saturating_mul(rec)).unwrap_or_default();
        reader.read_exact(chunk).map_err(io_err(path))?;
        let mut bodies: Vec<&[u8]> = Vec::with_capacity(n);
        let mut bad_at = None;
        for (i, r) in chunk.chunks_exact(rec).enumerate() {
            let (body, sum) = r.split_at(rec.saturating_sub(4));
            let height = first_height.saturating_add(kept).saturating_add(i as u64);
            if record_sum(height, body) != sum {
                bad_at = Some((i, height));
                break;
            }
            bodies.push(body);
        }
        let taken = take(&bodies);
        kept = kept.saturating_add(taken.accepted as u64);
        if taken.accepted < bodies.len() {
            if taken.invalid {
                corrupt = true;
                repair = Some(format!(
                    "{name}: the record at height {} fails the chain's checks: the file is kept aside as .corrupt and the {kept} records before it kept",
                    first_height.saturating_add(kept)
                ));
            }
            break 'outer;
        }
        if let Some((_, height)) = bad_at {
            if kept.saturating_add(1) == full {
                repair = Some(format!("{name}: the last record (height {height}) is torn: dropped"));
            } else {
                corrupt = true;
                repair = Some(format!(
                    "{name}: record at height {height} is corrupt: the file is kept aside as .corrupt and the {kept} records before it kept"
                ));
            }
            break 'outer;
        }
    }
    let keep_len = PREFIX_LEN.saturating_add(kept.saturating_mul(record));
    Ok(Scan { keep_len, corrupt, repair })
}

/// Opens `path` for writing, with the prefix and `keep_len` bytes (a copy set aside first when
/// `corrupt`).
fn reopen(path: &Path, magic: &[u8; 8], genesis: &[u8; 32], keep_len: u64, corrupt: bool) -> Result<File, StoreError> {
    if corrupt {
        let mut aside = path.as_os_str().to_os_string();
        aside.push(".corrupt");
        std::fs::copy(path, PathBuf::from(aside)).map_err(io_err(path))?;
    }
    let mut f =
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io_err(path))?;
    if keep_len < PREFIX_LEN {
        f.set_len(0).map_err(io_err(path))?;
        f.write_all(&prefix(magic, genesis)).map_err(io_err(path))?;
    } else {
        f.set_len(keep_len).map_err(io_err(path))?;
    }
    f.sync_all().map_err(io_err(path))?;
    Ok(f)
}

impl ChainStore {
    /// Opens (creating the directory and files if needed) the chain files of `dir` for
    /// `params`' network, loads and checks them: a torn tail is dropped, a corrupt record ends
    /// the chain there (the file is first copied aside as `FILE.corrupt`), and every header is
    /// checked again as [`HeaderChain::connect_headers`] checks it (a header that fails ends the
    /// chain there, the same way). Filter headers above the header chain are dropped. What was
    /// repaired is in [`Loaded::repairs`].
    ///
    /// Errors: [`StoreError::Io`]; [`StoreError::OtherChain`] for a file of another network or
    /// kind (left untouched).
    ///
    /// ```
    /// use btcpeer_core::chain::{ChainParams, ChainStore};
    /// let dir = std::env::temp_dir().join(format!("btcpeer-store-{}-{}", std::process::id(), line!()));
    /// let (mut store, loaded) = ChainStore::open(&dir, ChainParams::new(bitcoin::Network::Regtest))?;
    /// let (mut headers, mut filters) = (loaded.headers, loaded.filter_headers);
    /// assert!(loaded.repairs.is_empty());
    /// assert_eq!((headers.height(), filters.height()), (0, None));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: &Path, params: ChainParams) -> Result<(ChainStore, Loaded), StoreError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let genesis = params.genesis_hash().to_byte_array();
        let hpath = dir.join(HEADERS_FILE);
        let fpath = dir.join(FILTER_HEADERS_FILE);
        let mut repairs = Vec::new();

        let mut headers = HeaderChain::new(params);
        // Room for every saved header at once (a 930,000-header chain grows by doubling otherwise).
        if let Ok(meta) = std::fs::metadata(&hpath) {
            let records = meta.len().saturating_sub(PREFIX_LEN).checked_div(HEADER_RECORD).unwrap_or(0);
            headers.reserve(usize::try_from(records).unwrap_or(0));
        }
        let hs = scan(&hpath, HEADERS_MAGIC, &genesis, HEADER_RECORD, 1, |bodies| {
            let parsed: Vec<Header> = bodies.iter().map_while(|b| encode::deserialize::<Header>(b).ok()).collect();
            let mut accepted = 0usize;
            if headers.connect_headers(&parsed, u64::MAX).is_ok() {
                accepted = parsed.len();
            } else {
                // Find the first header that fails.
                for h in &parsed {
                    if headers.connect_headers(std::slice::from_ref(h), u64::MAX).is_err() {
                        break;
                    }
                    accepted = accepted.saturating_add(1);
                }
            }
            Taken { accepted, invalid: accepted < bodies.len() }
        })?;
        repairs.extend(hs.repair);
        let hfile = reopen(&hpath, HEADERS_MAGIC, &genesis, hs.keep_len, hs.corrupt)?;

        // Filter headers: at most one per block of the header chain.
        let mut filters = FilterHeaderChain::new();
        let room = u64::from(headers.height()).saturating_add(1);
        if let Ok(meta) = std::fs::metadata(&fpath) {
            let records = meta.len().saturating_sub(PREFIX_LEN).checked_div(FILTER_RECORD).unwrap_or(0).min(room);
            filters.reserve(usize::try_from(records).unwrap_or(0));
        }
        let mut trimmed = false;
        let fs = scan(&fpath, FILTERS_MAGIC, &genesis, FILTER_RECORD, 0, |bodies| {
            let mut accepted = 0usize;
            for body in bodies {
                if u64::from(filters.next_height()) >= room {
                    trimmed = true;
                    break;
                }
                let mut a = [0u8; 32];
                a.copy_from_slice(body.get(..32).unwrap_or(&[0; 32]));
                filters.push_trusted(FilterHeader::from_byte_array(a));
                accepted = accepted.saturating_add(1);
            }
            Taken { accepted, invalid: false }
        })?;
        if trimmed {
            repairs.push(format!("{}: filter headers above the header chain dropped", fpath.display()));
        }
        repairs.extend(fs.repair);
        let ffile = reopen(&fpath, FILTERS_MAGIC, &genesis, fs.keep_len, fs.corrupt)?;

        let store = ChainStore {
            dir: dir.to_path_buf(),
            headers: hfile,
            filters: ffile,
            header_records: u64::from(headers.height()),
            filter_records: u64::from(filters.next_height()),
        };
        Ok((store, Loaded { headers, filter_headers: filters, repairs }))
    }

    /// The data directory.
    ///
    /// ```
    /// # use btcpeer_core::chain::{ChainParams, ChainStore};
    /// # let dir = std::env::temp_dir().join(format!("btcpeer-store-dir-{}", std::process::id()));
    /// let (store, _) = ChainStore::open(&dir, ChainParams::new(bitcoin::Network::Regtest))?;
    /// assert!(store.dir().join("headers.dat").exists());
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// # Ok::<(), btcpeer_core::chain::StoreError>(())
    /// ```
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes what [`HeaderChain::connect_headers`] did: on a reorg, truncates the headers
    /// file to the fork (and the filter headers file too), then appends the connected
    /// headers and syncs.
    ///
    /// Errors: [`StoreError::Io`]; [`StoreError::OutOfOrder`] when the connected headers do
    /// not start right after what the file holds.
    ///
    /// ```
    /// use btcpeer_core::chain::{ChainParams, ChainStore};
    /// let dir = std::env::temp_dir().join(format!("btcpeer-store-{}-{}", std::process::id(), line!()));
    /// let (mut store, loaded) = ChainStore::open(&dir, ChainParams::new(bitcoin::Network::Regtest))?;
    /// let (mut headers, mut filters) = (loaded.headers, loaded.filter_headers);
    /// let outcome = headers.connect_headers(&[], 1_700_000_000)?; // headers from a peer
    /// store.apply_headers(&outcome)?;
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn apply_headers(&mut self, outcome: &HeadersOutcome) -> Result<(), StoreError> {
        let hpath = self.dir.join(HEADERS_FILE);
        if let Some(fork) = outcome.fork_height().filter(|_| outcome.is_reorg()) {
            let fork = u64::from(fork);
            if fork < self.header_records {
                self.headers
                    .set_len(PREFIX_LEN.saturating_add(fork.saturating_mul(HEADER_RECORD)))
                    .map_err(io_err(&hpath))?;
                self.header_records = fork;
            }
            self.truncate_filter_headers(u32::try_from(fork).ok())?;
        }
        let Some(first) = outcome.connected.first() else {
            return self.headers.sync_data().map_err(io_err(&hpath));
        };
        if u64::from(first.height) != self.header_records.saturating_add(1) {
            return Err(StoreError::OutOfOrder(format!(
                "headers from height {} but the file ends at {}",
                first.height, self.header_records
            )));
        }
        let mut buf = Vec::with_capacity(outcome.connected.len().saturating_mul(HEADER_RECORD as usize));
        for c in &outcome.connected {
            let body = encode::serialize(&c.header);
            buf.extend_from_slice(&body);
            buf.extend_from_slice(&record_sum(u64::from(c.height), &body));
        }
        self.headers.seek(SeekFrom::End(0)).map_err(io_err(&hpath))?;
        self.headers.write_all(&buf).map_err(io_err(&hpath))?;
        self.headers.sync_data().map_err(io_err(&hpath))?;
        self.header_records = self.header_records.saturating_add(outcome.connected.len() as u64);
        Ok(())
    }

    /// Reads the saved header at `height` (the chain in memory keeps only hash, time and bits
    /// of each block): `None` for height 0 (the genesis header is in the
    /// [params](ChainParams::genesis)) or above what the file holds.
    ///
    /// Errors: [`StoreError::Io`]; [`StoreError::Corrupt`] when the record's checksum fails
    /// (the file changed under the store).
    ///
    /// ```
    /// use btcpeer_core::chain::{ChainParams, ChainStore};
    /// let dir = std::env::temp_dir().join(format!("btcpeer-store-read-{}", std::process::id()));
    /// let (mut store, _) = ChainStore::open(&dir, ChainParams::new(bitcoin::Network::Regtest))?;
    /// assert_eq!(store.read_header(1)?, None);
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// # Ok::<(), btcpeer_core::chain::StoreError>(())
    /// ```
    pub fn read_header(&mut self, height: u32) -> Result<Option<Header>, StoreError> {
        let hpath = self.dir.join(HEADERS_FILE);
        let h = u64::from(height);
        if h == 0 || h > self.header_records {
            return Ok(None);
        }
        let at = PREFIX_LEN.saturating_add(h.saturating_sub(1).saturating_mul(HEADER_RECORD));
        let mut rec = [0u8; HEADER_RECORD as usize];
        self.headers.seek(SeekFrom::Start(at)).map_err(io_err(&hpath))?;
        self.headers.read_exact(&mut rec).map_err(io_err(&hpath))?;
        let (body, sum) = rec.split_at(80);
        if record_sum(h, body) != sum {
            return Err(StoreError::OutOfOrder(format!(
                "{}: the record at height {height} is corrupt",
                hpath.display()
            )));
        }
        encode::deserialize(body).map(Some).map_err(|e| StoreError::OutOfOrder(e.to_string()))
    }

    /// Appends what [`FilterHeaderChain::connect_cfheaders`] connected, and syncs the file.
    ///
    /// Errors: [`StoreError::Io`]; [`StoreError::OutOfOrder`] when they do not start right
    /// after what the file holds.
    ///
    /// ```
    /// use btcpeer_core::chain::{ChainParams, ChainStore};
    /// let dir = std::env::temp_dir().join(format!("btcpeer-store-{}-{}", std::process::id(), line!()));
    /// let (mut store, loaded) = ChainStore::open(&dir, ChainParams::new(bitcoin::Network::Regtest))?;
    /// let (mut headers, mut filters) = (loaded.headers, loaded.filter_headers);
    /// use bitcoin::{bip158::{FilterHash, FilterHeader}, hashes::Hash, p2p::message_filter::CFHeaders};
    /// let msg = CFHeaders { filter_type: 0, stop_hash: headers.tip(),
    ///     previous_filter_header: FilterHeader::all_zeros(), filter_hashes: vec![FilterHash::all_zeros()] };
    /// let outcome = filters.connect_cfheaders(&msg, &headers)?;
    /// store.apply_filter_headers(&outcome)?;
    /// drop(store);
    /// let (_, again) = ChainStore::open(&dir, ChainParams::new(bitcoin::Network::Regtest))?;
    /// assert_eq!(again.filter_headers.height(), Some(0));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn apply_filter_headers(&mut self, outcome: &FilterHeadersOutcome) -> Result<(), StoreError> {
        let fpath = self.dir.join(FILTER_HEADERS_FILE);
        let Some(first) = outcome.connected.first() else { return Ok(()) };
        if u64::from(first.0) != self.filter_records {
            return Err(StoreError::OutOfOrder(format!(
                "filter headers from height {} but the file holds {}",
                first.0, self.filter_records
            )));
        }
        let mut buf = Vec::with_capacity(outcome.connected.len().saturating_mul(FILTER_RECORD as usize));
        for (height, fh) in &outcome.connected {
            buf.extend_from_slice(fh.as_byte_array());
            buf.extend_from_slice(&record_sum(u64::from(*height), fh.as_byte_array()));
        }
        self.filters.seek(SeekFrom::End(0)).map_err(io_err(&fpath))?;
        self.filters.write_all(&buf).map_err(io_err(&fpath))?;
        self.filters.sync_data().map_err(io_err(&fpath))?;
        self.filter_records = self.filter_records.saturating_add(outcome.connected.len() as u64);
        Ok(())
    }

    /// Drops the filter headers above `height` (`None`: all), as
    /// [`FilterHeaderChain::truncate`] did.
    ///
    /// Errors: [`StoreError::Io`].
    ///
    /// ```
    /// use btcpeer_core::chain::{ChainParams, ChainStore};
    /// let dir = std::env::temp_dir().join(format!("btcpeer-store-{}-{}", std::process::id(), line!()));
    /// let (mut store, loaded) = ChainStore::open(&dir, ChainParams::new(bitcoin::Network::Regtest))?;
    /// let (mut headers, mut filters) = (loaded.headers, loaded.filter_headers);
    /// filters.truncate(None);
    /// store.truncate_filter_headers(None)?;
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn truncate_filter_headers(&mut self, height: Option<u32>) -> Result<(), StoreError> {
        let fpath = self.dir.join(FILTER_HEADERS_FILE);
        let keep = height.map_or(0, |h| u64::from(h).saturating_add(1));
        if keep < self.filter_records {
            self.filters
                .set_len(PREFIX_LEN.saturating_add(keep.saturating_mul(FILTER_RECORD)))
                .map_err(io_err(&fpath))?;
            self.filters.sync_data().map_err(io_err(&fpath))?;
            self.filter_records = keep;
        }
        Ok(())
    }
}
