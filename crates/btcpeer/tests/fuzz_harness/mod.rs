//! The fuzz targets' logic, one function per target. Each panics on a violated invariant (a
//! round-trip failure, a decoder disagreeing with another, a hang, a panic in a peer task).
//!
//! Shared by the corpus replay test (`tests/fuzz_corpus.rs`) and the cargo-fuzz crate in `fuzz/`,
//! which includes that file: a replayed input runs exactly what the fuzzer ran. One file per
//! target family: `v1_targets` (frame_v1, payload), `v2_targets` (v2_packet, v2_cipher),
//! `handshake_target` (v2_handshake), `core_target` (peer: the core, driven directly), `peer_target`
//! (peer_tokio: the whole tokio driver), `store_targets` (store_load: the node's file loaders).

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::Duration;

use bip324::{
    CipherSession, FillBytes, GarbageResult, Handshake, Initialized, OutboundCipher, PacketType, ReceivedKey, Role,
    SentVersion, VersionResult,
};
use btcpeer::bitcoin::p2p::ServiceFlags;
use btcpeer::bitcoin::secp256k1::Secp256k1;
use btcpeer::network::Network;
use btcpeer::peer::{DisconnectReason, Handler, NonceRegistry, Peer, PeerConfig, V2Policy};
use btcpeer::transport::stream::{FrameReader, FrameWriter, v2_pair};
use btcpeer::transport::v1::{V1Codec, V1Error};
use btcpeer::transport::v2::{self, V2Decoder, V2Error};
use btcpeer::transport::v2_handshake::{self, V2HandshakeError, V2Options};
use btcpeer::wire::frame::{self, FrameHeader, HEADER_LEN, RawFrame};
use btcpeer::wire::{Command, FrameError, Message, SendTxRcncl, VersionMessage, VersionTail, limits};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// The 36 commands btcpeer decodes, in the order of the `payload` and `peer` targets' selector
/// byte; selectors 36 to 39 are unknown commands ([`UNKNOWN`]), the rest wrap around.
/// (`Command::KNOWN`'s order: the committed corpus depends on it, so a change to that order
/// shows up in `s1_selectors_cover_every_known_command`.)
pub const COMMANDS: [Command; 36] = Command::KNOWN;

/// Unknown commands for selectors 36 to 39: the shared vectors' `feature`, the empty name
/// (Core accepts it), a full 12-byte name, and a near miss of a known one.
pub const UNKNOWN: [&str; 4] = ["feature", "", "abcdefghijkl", "getaddrx"];

/// How many selector values there are before they wrap around.
pub const SELECTORS: u8 = 40;

/// The command a selector byte stands for.
pub fn command_for(selector: u8) -> Command {
    let i = usize::from(selector % SELECTORS);
    match COMMANDS.get(i) {
        Some(c) => *c,
        None => Command::new(UNKNOWN.get(i - COMMANDS.len()).copied().unwrap_or("feature")).expect("valid name"),
    }
}

/// The selector byte for a command name (for writing seeds).
pub fn selector_for(name: &str) -> Option<u8> {
    let known = COMMANDS.iter().position(|c| c.as_str() == name);
    let unknown = || UNKNOWN.iter().position(|&u| u == name).map(|i| i + COMMANDS.len());
    known.or_else(unknown).and_then(|i| u8::try_from(i).ok())
}

/// A small PRNG for chunk sizes, seeded from the input so a replay repeats the run.
struct Rng(u64);

impl Rng {
    fn from_input(data: &[u8]) -> Rng {
        // FNV-1a, then never zero (xorshift's fixed point).
        let h = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        Rng(h | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A chunk size from 1 to `max`.
    fn chunk(&mut self, max: u64) -> usize {
        usize::try_from(1 + self.next() % max).unwrap_or(1)
    }
}

/// Splits a little-endian `u16` off the front (missing bytes read as zero).
fn take_u16(data: &[u8]) -> (u16, &[u8]) {
    match data {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), rest),
        [a] => (u16::from(*a), &[]),
        [] => (0, &[]),
    }
}

/// Splits a `(selector, u16 length, bytes)` record off the front; the length is cut to what is
/// there.
pub fn take_record(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (len, rest) = take_u16(rest);
    let (body, rest) = rest.split_at(usize::from(len).min(rest.len()));
    Some((tag, body, rest))
}

/// A read buffer may hold what arrived plus a bounded reservation ahead of it, never the size a
/// header or length prefix merely announced (S-2: no allocation of the claimed size).
fn assert_bounded(buf: &BytesMut, fed: usize, what: &str) {
    let bound = 4 * (fed + 256 * 1024);
    assert!(buf.capacity() <= bound, "{what}: read buffer grew to {} bytes after {fed} bytes", buf.capacity());
}

// ---------------------------------------------------------------------------------------------
// Async plumbing shared by v2_handshake and peer

thread_local! {
    /// Panics on this thread. The targets' runtimes are current-thread, so a panic in any task
    /// they spawn (which tokio would otherwise swallow) is counted here.
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = PANICS.try_with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
}

fn panics() -> usize {
    PANICS.with(Cell::get)
}

/// Runs `f` on a fresh current-thread runtime with tokio's paused clock: timers fire as soon as
/// every task waits, so hours of protocol time pass instantly and a real hang shows up as a
/// timeout. Fails if any task panicked.
fn run_paused<F: Future<Output = ()>>(what: &str, f: F) {
    count_panics();
    let before = panics();
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
        .block_on(f);
    assert_eq!(panics(), before, "{what}: a task panicked");
}

/// Reads and discards until the stream ends.
async fn drain<R: tokio::io::AsyncRead + Unpin>(mut r: R) {
    let mut sink = [0u8; 4096];
    while matches!(r.read(&mut sink).await, Ok(n) if n > 0) {}
}

mod core_target;
mod handshake_target;
mod peer_target;
mod store_targets;
mod v1_targets;
mod v2_targets;

pub use core_target::peer;
pub use handshake_target::v2_handshake;
pub use peer_target::{REMOTE_VERSIONS, peer_tokio, remote_version};
pub use store_targets::{STORE_LOADERS, store_load};
pub use v1_targets::{frame_v1, payload};
pub use v2_targets::{Ciphers, ciphers, v2_cipher, v2_packet};
// Each target's helpers, visible to the others (`use super::*` in each file).
#[allow(unused_imports)]
use {handshake_target::*, peer_target::*, v1_targets::*, v2_targets::*};

/// The input files of a corpus directory's listing, sorted by name (hidden files and notes left
/// out): what the corpus replay and the differential test both run.
#[allow(dead_code)]
pub fn corpus_files(entries: std::fs::ReadDir) -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.') && !n.ends_with(".md")))
        .collect();
    files.sort();
    files
}
