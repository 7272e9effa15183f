//! The anchors file: the block-relay-only peers connected at shutdown, dialed first at the next
//! start (Core's `DumpAnchors` / `ReadAnchors` in `addrdb.cpp`, `anchors.dat`).

use std::net::SocketAddr;
use std::path::Path;

use super::{read_ip, write_ip};
use crate::persist::{self, HEADER_LEN, LoadError, Reader};

/// The most anchors kept (Core's `MAX_BLOCK_RELAY_ONLY_ANCHORS`, `net.h`).
pub const MAX_ANCHORS: usize = 2;

const MAGIC: &[u8; 8] = b"BTCPANCH";
const VERSION: u8 = 1;

/// The anchors as file bytes: `BTCPANCH`, version 1, a count (a byte), each anchor as its family
/// (4 or 6), address (4 or 16 bytes) and port (u16 BE), and the SHA256d of everything before.
/// Only the first [`MAX_ANCHORS`] are written; an IPv6 scope or flow label is not kept.
///
/// ```
/// use btcpeer_core::node::bans::{decode_anchors, encode_anchors};
///
/// let anchors = ["198.51.100.1:8333".parse()?, "[2001:db8::1]:8333".parse()?];
/// assert_eq!(decode_anchors(&encode_anchors(&anchors))?, anchors);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_anchors(anchors: &[SocketAddr]) -> Vec<u8> {
    let kept = anchors.get(..MAX_ANCHORS.min(anchors.len())).unwrap_or_default();
    let mut body = vec![kept.len() as u8];
    for a in kept {
        write_ip(&mut body, a.ip());
        body.extend_from_slice(&a.port().to_be_bytes());
    }
    persist::seal(MAGIC, VERSION, &body)
}

/// The anchors from file bytes made by [`encode_anchors`]; of more than [`MAX_ANCHORS`], the
/// first are kept (as Core's `CConnman::Start` trims what `ReadAnchors` gives). `Err` says what
/// is wrong and at which byte.
pub fn decode_anchors(data: &[u8]) -> Result<Vec<SocketAddr>, String> {
    let body = persist::unseal(MAGIC, VERSION, data)?;
    let mut r = Reader::new(body, HEADER_LEN);
    let count = r.u8("the count")?;
    let mut anchors = Vec::with_capacity(MAX_ANCHORS);
    for _ in 0..count {
        let ip = read_ip(&mut r, "an anchor")?;
        let port = r.u16_be("a port")?;
        if anchors.len() < MAX_ANCHORS {
            anchors.push(SocketAddr::new(ip, port));
        }
    }
    r.finish("the last anchor")?;
    Ok(anchors)
}

/// Writes the anchors (the first [`MAX_ANCHORS`]) to `path` atomically (Core's `DumpAnchors`,
/// at shutdown).
pub fn save_anchors(path: &Path, anchors: &[SocketAddr]) -> std::io::Result<()> {
    persist::write_atomic(path, &encode_anchors(anchors))
}

/// Reads the anchors written by [`save_anchors`], leaving the file in place. Core deletes
/// `anchors.dat` once read (`ReadAnchors`), so that after an unclean shutdown the node does not
/// peer with the same anchors again (which an attacker holding them could exploit): a caller
/// should delete the file once read, or use [`take_anchors`], which does.
pub fn load_anchors(path: &Path) -> Result<Vec<SocketAddr>, LoadError> {
    persist::load_with(path, decode_anchors)
}

/// Reads the anchors and deletes the file, as Core's `ReadAnchors` does, even when it is
/// corrupt. No file is no anchors (`Ok` of none); a corrupt one is `Err(LoadError::Corrupt)`,
/// already removed; a file that can't be removed is `Err(LoadError::Io)`.
pub fn take_anchors(path: &Path) -> Result<Vec<SocketAddr>, LoadError> {
    let loaded = match load_anchors(path) {
        Err(LoadError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other,
    };
    if let Err(source) = std::fs::remove_file(path) {
        if source.kind() != std::io::ErrorKind::NotFound {
            return Err(LoadError::Io { path: path.to_path_buf(), source });
        }
    }
    loaded
}
