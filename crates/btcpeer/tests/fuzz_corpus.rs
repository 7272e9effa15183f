//! S-1: the committed fuzz corpora and every crash regression, replayed as plain tests.
//!
//! The `harness` module (`tests/fuzz_harness/`) *is* the fuzz targets' logic: the cargo-fuzz crate in `fuzz/`
//! includes this file (`#[path]`) and calls the same functions, so a replayed input runs exactly
//! what the fuzzer ran. No fuzzing tools are needed here.
//!
//! Inputs are read from `fuzz/corpus/frame_v1`, `fuzz/corpus/payload`, `fuzz/corpus/peer` and
//! `fuzz/regressions/<target>/` at the project root. A checkout without `fuzz/` prints a note and
//! passes.

use std::path::{Path, PathBuf};

/// The fuzz targets' logic, one function per target (`tests/fuzz_harness/`).
#[path = "fuzz_harness/mod.rs"]
pub mod harness;

/// `fuzz/` at the project root.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Runs every file in `dir` through `target`, collecting the names of those that fail. `None` when
/// the directory is missing.
fn replay(dir: &Path, target: fn(&[u8])) -> Option<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("note: {} not readable ({e}); a checkout without fuzz/? nothing replayed", dir.display());
            return None;
        }
    };
    let files = harness::corpus_files(entries);
    let mut failed = Vec::new();
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if std::panic::catch_unwind(|| target(&data)).is_err() {
            failed.push(f.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{} of {} inputs in {} failed: {failed:#?}", failed.len(), files.len(), dir.display());
    println!("{}: {} inputs replayed", dir.display(), files.len());
    Some(files.len())
}

#[test]
fn p5_our_bip324_ciphers_match_the_bip324_crate_across_rekeys_sizes_and_decoys() {
    // 700 packets (three rekeys), sizes from 0 bytes to 4 MB, every tenth a decoy.
    let mut input = Vec::new();
    for n in 0..700u32 {
        let times = match (n % 350, n % 50) {
            (0, _) => 3u8, // 65,536 × the body, capped at 4 MB
            (_, 7) => 2,   // 4,096 ×
            (_, 13) => 1,  // 64 ×
            _ => 0,
        };
        let tag = (times << 1) | u8::from(n % 10 == 3);
        let body: Vec<u8> = (0..(n % 97) as u8).collect();
        input.push(tag);
        input.extend((body.len() as u16).to_le_bytes());
        input.extend(body);
    }
    harness::v2_cipher(&input);
}

#[test]
fn s1_replay_frame_corpus() {
    replay(&fuzz_dir().join("corpus/frame_v1"), harness::frame_v1);
}

#[test]
fn s1_replay_payload_corpus() {
    replay(&fuzz_dir().join("corpus/payload"), harness::payload);
}

#[test]
fn s1_replay_peer_corpus_through_the_core() {
    // The same inputs the tokio driver's `peer_tokio` target reads, fed to the core directly.
    replay(&fuzz_dir().join("corpus/peer"), harness::peer);
}

#[test]
fn r_n_replay_store_corpus() {
    replay(&fuzz_dir().join("corpus/store_load"), harness::store_load);
}

#[test]
fn s1_replay_regressions() {
    let root = fuzz_dir().join("regressions");
    let Ok(entries) = std::fs::read_dir(&root) else {
        eprintln!("note: {} not found (a checkout without fuzz/?); nothing replayed", root.display());
        return;
    };
    let mut dirs: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let target: fn(&[u8]) = match name.as_str() {
            "frame_v1" => harness::frame_v1,
            "payload" => harness::payload,
            "v2_packet" => harness::v2_packet,
            "v2_handshake" => harness::v2_handshake,
            "peer" => harness::peer,
            "peer_tokio" => harness::peer_tokio,
            "store_load" => harness::store_load,
            other => panic!("fuzz/regressions/{other}: no fuzz target of that name"),
        };
        replay(&dir, target);
    }
}

/// The seeds' selector table agrees with the commands btcpeer knows.
#[test]
fn s1_selectors_cover_every_known_command() {
    // The selector order the committed corpus was written with.
    let order: Vec<&str> = harness::COMMANDS.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        order.join(" "),
        "version verack addr addrv2 sendaddrv2 inv getdata notfound getblocks getheaders headers block tx \
         mempool getaddr ping pong reject sendheaders feefilter filterload filteradd filterclear merkleblock \
         sendcmpct cmpctblock getblocktxn blocktxn getcfilters cfilter getcfheaders cfheaders getcfcheckpt \
         cfcheckpt wtxidrelay sendtxrcncl"
    );
    for (i, c) in harness::COMMANDS.iter().enumerate() {
        assert!(c.is_known(), "{c}");
        assert_eq!(harness::selector_for(c.as_str()), u8::try_from(i).ok());
        assert_eq!(harness::command_for(i as u8), *c);
    }
    for (i, name) in harness::UNKNOWN.iter().enumerate() {
        let c = harness::command_for((harness::COMMANDS.len() + i) as u8);
        assert!(!c.is_known() && c.as_str() == *name);
    }
}
