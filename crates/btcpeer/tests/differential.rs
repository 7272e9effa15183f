//! The tokio [`Peer`] is a driver of [`PeerCore`] and nothing more: one scripted remote, run
//! through the tokio `Peer` on tokio's paused clock and through a `PeerCore` driven directly,
//! gets the same frames written at the same (simulated) instants, and sees the connection end for
//! the same reason at the same instant.
//!
//! The scripts are every input of the committed `peer` fuzz corpus (`fuzz/corpus/peer`, the
//! format of the `peer` and `peer_tokio` targets, `tests/fuzz_harness/`) and a few written here
//! (pings and pongs, each timeout, a malformed message and its reject, bad checksums, unknown
//! commands, the misbehaviour limit, early closes). A corpus input becomes: the remote's
//! handshake (its version, the features of flag bit 5, verack) at the start, then each record as
//! one write, the first half a second later and each next one a second after the previous, then
//! the close a second after the last. The half-second offset keeps every write off the instants
//! the peer's own timers fire (whole seconds after the handshake), where the order of two things
//! happening at one instant would be the runtime's choice, not the peer's. For the same reason the
//! remote closes at an instant of its own (every script ends with a wait, which `compare`
//! checks): bytes and the close arriving together are an ordering the two runs model differently.
//! The tokio reader takes the bytes and the end of the stream in one pass, before its writer runs,
//! so the answer to those last bytes (a `pong`, our side of the handshake) is dropped with the
//! connection, as Core drops what it had queued for a socket that closed; the direct run here
//! writes after each read. The reason is the same either way.
//!
//! Only v1 can be compared byte for byte: a v2 responder draws its ephemeral key from the OS.
//! Corpus inputs with the v2 flag (bit 0) run as v1 (the bit cleared); flag bit 1 still picks
//! the peer's policy (`Prefer`, which tells a v1 initiator from a v2 one, rather than `Never`),
//! bit 6 offers `NODE_BLOOM`, as in `peer_tokio`. The empty input (no flags byte, which the
//! targets skip) is the only one not run. Our `version` carries the wall clock's time: its
//! timestamp is zeroed before comparing.
//!
//! The two runs: (a) `PeerCore::framed` with `PeerConfig::core_config(Inbound)` plus what the
//! driver adds (`driver::new_core`: the version decision, reads reported, the remote's address in
//! our version), fed the same chunks at the same instants, `handle_timeout` run at each
//! `poll_timeout` instant inside a step (rounded up to tokio's millisecond timer tick), output
//! taken with `poll_transmit_bytes`; (b) `Peer::inbound` with `PeerConfig::builder(..).seed(..)`
//! on a `tokio::io::duplex` stream, on a fresh current-thread runtime with a paused clock per
//! script (what `#[tokio::test(start_paused = true)]` builds), the remote writing at
//! `sleep_until` instants, reading everything, closing at the end.

#[path = "fuzz_harness/mod.rs"]
#[allow(dead_code, unused_imports)]
mod harness;
#[path = "differential/runs.rs"]
mod runs;
#[path = "differential/scripts.rs"]
mod scripts;

use std::time::Duration;

use btcpeer::peer::DisconnectReason;

use runs::{Direct, Written, frames, run_tokio};
use scripts::{Script, Step, corpus, handwritten};

// ---------------------------------------------------------------------------------------------
// The comparison

/// What the two runs of one script showed.
struct Compared {
    /// How they differ, if they do.
    difference: Option<String>,
    /// Frames the peer wrote (the tokio run).
    frames: usize,
    /// The kind of the tokio run's reason.
    reason: &'static str,
}

/// Runs `script` both ways.
fn compare(script: &Script) -> Compared {
    assert!(
        matches!(script.steps.last(), Some(Step::Until(_))),
        "{}: the remote closes at an instant of its own (see the module's docs)",
        script.name
    );
    let direct = Direct::run(script);
    let tokio = run_tokio(script);
    let (a, a_rest) = frames(&direct.written, &direct.marks);
    let (b, b_rest) = frames(&tokio.written, &tokio.marks);
    let mut why = Vec::new();
    if a != b {
        let i = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
        let name = |f: Option<&Written>| f.map_or_else(|| "nothing".to_string(), |f| format!("{f:?}"));
        why.push(format!(
            "frame {i} differs: core wrote {}, tokio wrote {} (core {} frames: {:?}; tokio {} frames: {:?})",
            name(a.get(i)),
            name(b.get(i)),
            a.len(),
            a.iter().map(|f| (f.command.as_str(), f.at)).collect::<Vec<_>>(),
            b.len(),
            b.iter().map(|f| (f.command.as_str(), f.at)).collect::<Vec<_>>(),
        ));
    }
    if a_rest != b_rest {
        why.push(format!("trailing bytes differ: core {a_rest:?}, tokio {b_rest:?}"));
    }
    if direct.reason != tokio.reason {
        why.push(format!("reasons differ: core {:?}, tokio {:?}", direct.reason, tokio.reason));
    }
    if direct.ended_at != tokio.ended_at {
        why.push(format!("ends at different times: core {:?}, tokio {:?}", direct.ended_at, tokio.ended_at));
    }
    if let Some((kind, commands)) = script.expect {
        for (side, reason, written) in [("core", &direct.reason, &a), ("tokio", &tokio.reason, &b)] {
            if reason.as_ref().map(DisconnectReason::kind) != Some(kind) {
                why.push(format!("{side} ended with {reason:?}, not {kind}"));
            }
            for c in commands {
                if !written.iter().any(|f| f.command == *c) {
                    why.push(format!("{side} wrote no {c}"));
                }
            }
        }
    }
    Compared {
        difference: (!why.is_empty()).then(|| format!("{}: {}", script.name, why.join("; "))),
        frames: b.len(),
        reason: tokio.reason.as_ref().map_or("none", DisconnectReason::kind),
    }
}

/// Runs every script on a thread of its own, bounded in real time (a peer that spins without
/// waiting would stop tokio's paused clock from ever reaching a timeout): the differences, and a
/// summary (frames compared, how the runs ended).
fn compare_all(scripts: Vec<Script>) -> (Vec<String>, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut differences, mut frames) = (Vec::new(), 0);
        let mut reasons = std::collections::BTreeMap::<&str, usize>::new();
        for script in &scripts {
            let compared = compare(script);
            differences.extend(compared.difference);
            frames += compared.frames;
            *reasons.entry(compared.reason).or_default() += 1;
        }
        let _ =
            tx.send((differences, format!("{} scripts, {frames} frames written, ended: {reasons:?}", scripts.len())));
    });
    rx.recv_timeout(Duration::from_secs(300)).expect("every script ran within five minutes (or one panicked)")
}

#[test]
fn the_tokio_peer_writes_what_the_core_writes_and_ends_for_the_same_reason_over_the_fuzz_corpus() {
    let (scripts, skipped) = corpus();
    let count = scripts.len();
    assert!(count >= 250, "the committed corpus has {count} inputs");
    let (differences, summary) = compare_all(scripts);
    println!("corpus: {summary}; not run: {skipped:?}");
    assert!(differences.is_empty(), "{} of {count} inputs differ:\n{}", differences.len(), differences.join("\n"));
}

#[test]
fn the_tokio_peer_writes_what_the_core_writes_and_ends_for_the_same_reason_on_pings_timeouts_and_bad_input() {
    let scripts = handwritten();
    let count = scripts.len();
    let (differences, summary) = compare_all(scripts);
    println!("hand-written: {summary}");
    assert!(differences.is_empty(), "{} of {count} scripts differ:\n{}", differences.len(), differences.join("\n"));
}
