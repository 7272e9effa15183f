//! The tokio [`Peer`] is a driver of [`PeerCore`] and nothing more: one scripted remote, run
//! through the tokio `Peer` on tokio's paused clock and through a `PeerCore` driven directly,
//! gets the same frames written and sees the connection end for the same reason.
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

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use btcpeer::bitcoin::p2p::{Address, ServiceFlags};
use btcpeer::core::peer::{Event, PeerCore};
use btcpeer::network::Network;
use btcpeer::peer::{Direction, DisconnectReason, NonceRegistry, NoopHandler, Peer, PeerConfig, V2Policy};
use btcpeer::transport::framing::{Framing, TransportPolicy};
use btcpeer::transport::v2_handshake::V2Options;
use btcpeer::wire::frame::{self, HEADER_LEN};
use btcpeer::wire::{Command, Message, SendTxRcncl};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The generator seed of both runs' peers (so that the nonces of our version and pings agree).
const SEED: u64 = 0xd1ff_5eed;

/// The remote's address, as the tokio peer is told it (and puts it in our version).
const REMOTE: &str = "127.0.0.1:50000";

/// A bound on each tokio run, in simulated time.
const SIMULATED_BOUND: Duration = Duration::from_secs(24 * 3600);

/// What the remote does, in order.
#[derive(Clone, Debug)]
enum Step {
    /// Writes these bytes now.
    Send(Vec<u8>),
    /// Waits until this long after the start.
    Until(Duration),
    /// Answers the last `ping` the peer wrote so far with a `pong` carrying its nonce.
    Pong,
}

/// One remote: the peer's configuration (a `peer` fuzz input's flags byte, and a misbehaviour
/// limit) and what the remote does. The remote closes after its last step.
#[derive(Clone, Debug)]
struct Script {
    name: String,
    flags: u8,
    ignored_limit: Option<u64>,
    steps: Vec<Step>,
    /// What a hand-written script is for: the kind of the reason it ends with, and commands the
    /// peer must have written (checked on both runs, so that a script proves what it says).
    expect: Option<(&'static str, &'static [&'static str])>,
}

/// What one run saw: the bytes the peer wrote and when, why it ended and when.
#[derive(Debug)]
struct Outcome {
    written: Vec<u8>,
    /// (bytes written so far, the time since the start) after each write.
    marks: Vec<(usize, Duration)>,
    reason: Option<DisconnectReason>,
    ended_at: Option<Duration>,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// `message` as a v1 frame on regtest.
fn frame_of(message: &Message) -> Vec<u8> {
    let mut payload = BytesMut::new();
    message.encode_payload(&mut payload).expect("the remote's messages encode");
    raw_frame(message.command(), &payload)
}

/// A v1 frame of `command` around `payload` (any bytes).
fn raw_frame(command: Command, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    let _ = frame::encode_raw_frame(command, payload, &Network::REGTEST, &mut out);
    out.to_vec()
}

/// The remote's side of the handshake, as the fuzz targets send it: its version (the protocol
/// version of flag bits 2–4), wtxidrelay, sendaddrv2 and sendtxrcncl with bit 5, verack.
fn handshake(flags: u8) -> Vec<u8> {
    let version = harness::REMOTE_VERSIONS[usize::from((flags >> 2) & 7)];
    let mut out = frame_of(&Message::Version(harness::remote_version(version)));
    if flags & 0x20 != 0 {
        for m in [Message::WtxidRelay, Message::SendAddrV2, Message::SendTxRcncl(SendTxRcncl { version: 1, salt: 7 })] {
            out.extend(frame_of(&m));
        }
    }
    out.extend(frame_of(&Message::Verack));
    out
}

/// A `peer` fuzz input as a script (see the module's docs); `None` for the empty input.
fn from_fuzz_input(name: String, data: &[u8]) -> Option<Script> {
    let (&flags, body) = data.split_first()?;
    let mut steps = vec![Step::Send(handshake(flags & !1))];
    let mut at = secs(0.5);
    let mut rest = body;
    while let Some((selector, bytes, tail)) = harness::take_record(rest) {
        rest = tail;
        steps.push(Step::Until(at));
        steps.push(Step::Send(if selector >= 0xf8 {
            bytes.to_vec()
        } else {
            raw_frame(harness::command_for(selector), bytes)
        }));
        at += Duration::from_secs(1);
    }
    steps.push(Step::Until(at));
    Some(Script { name, flags: flags & !1, ignored_limit: None, steps, expect: None })
}

/// The peer's configuration for `script`: `peer_tokio`'s, seeded.
fn peer_config(script: &Script) -> PeerConfig {
    let services =
        if script.flags & 0x40 != 0 { ServiceFlags::NETWORK | ServiceFlags::BLOOM } else { ServiceFlags::NETWORK };
    let mut builder = PeerConfig::builder(Network::REGTEST)
        .user_agent("fuzz", "1.0")
        .nonce_registry(NonceRegistry::new())
        .v2(policy(script))
        .v2_garbage_len(0)
        .services(services)
        .seed(SEED);
    if let Some(limit) = script.ignored_limit {
        builder = builder.ignored_message_limit(limit);
    }
    builder.build().expect("a valid configuration")
}

/// Flag bit 1: `Prefer` (a v1 remote is told from a v2 one by its first bytes) or `Never`.
fn policy(script: &Script) -> V2Policy {
    if script.flags & 2 != 0 { V2Policy::Prefer } else { V2Policy::Never }
}

/// The nonce of the last `ping` in `written` (v1 frames), if any.
fn last_ping(written: &[u8]) -> Option<u64> {
    frames(written, &[])
        .0
        .iter()
        .rev()
        .find(|f| f.command == "ping")
        .and_then(|f| f.payload.get(..8))
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// One v1 frame written, as compared.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Written {
    magic_ok: bool,
    command: String,
    /// The payload (a version's timestamp zeroed).
    payload: Vec<u8>,
    checksum_ok: bool,
    /// When its last byte was written, after the start (zero without `marks`).
    at: Duration,
}

/// `bytes` as v1 frames, each at the first of `marks` that covers its last byte, and whatever
/// trails the last whole one.
fn frames(bytes: &[u8], marks: &[(usize, Duration)]) -> (Vec<Written>, Vec<u8>) {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= HEADER_LEN {
        let len = u32::from_le_bytes(rest[16..20].try_into().expect("4 bytes")) as usize;
        let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + len) else { break };
        let command = String::from_utf8_lossy(&rest[4..16]).trim_end_matches('\0').to_string();
        let mut payload = payload.to_vec();
        let checksum_ok = frame::checksum(&payload) == rest[20..24];
        if command == "version" && payload.len() >= 20 {
            payload[12..20].fill(0);
        }
        rest = &rest[HEADER_LEN + len..];
        let end = bytes.len() - rest.len();
        let at = marks.iter().find(|(n, _)| *n >= end).map_or(Duration::ZERO, |(_, at)| *at);
        let magic_ok = bytes[end - len - HEADER_LEN..][..4] == Network::REGTEST.magic().to_bytes();
        out.push(Written { magic_ok, command, payload, checksum_ok, at });
    }
    (out, rest.to_vec())
}

// ---------------------------------------------------------------------------------------------
// (a) the core, driven directly

/// A [`PeerCore`] driven as the tokio driver drives it, with the script's time.
struct Direct {
    core: PeerCore,
    t0: Instant,
    now: Instant,
    wall: SystemTime,
    input: BytesMut,
    written: BytesMut,
    marks: Vec<(usize, Duration)>,
    reason: Option<DisconnectReason>,
    ended_at: Option<Duration>,
}

impl Direct {
    /// `driver::new_core` for an inbound peer from `REMOTE` under `script`'s configuration.
    fn new(script: &Script) -> Direct {
        let config = peer_config(script);
        let mut core_config = config.core_config(Direction::Inbound);
        core_config.version_decision = true;
        core_config.report_reads = true;
        let remote: SocketAddr = REMOTE.parse().expect("an address");
        core_config.receiver = Some(Address::new(&remote, ServiceFlags::NONE));
        core_config.sender = None;
        let transport = match policy(script) {
            V2Policy::Never => TransportPolicy::V1,
            _ => TransportPolicy::Auto,
        };
        let options = V2Options { garbage_len: Some(0), decoys: vec![] };
        let framing = Framing::new(Network::REGTEST, Direction::Inbound, transport, options).expect("a framing");
        let (t0, wall) = (Instant::now(), SystemTime::now());
        let core = PeerCore::framed(core_config, framing, t0, wall);
        let (input, written) = (BytesMut::new(), BytesMut::new());
        Direct { core, t0, now: t0, wall, input, written, marks: Vec::new(), reason: None, ended_at: None }
    }

    fn run(script: &Script) -> Outcome {
        let mut d = Direct::new(script);
        d.write();
        for step in &script.steps {
            if d.core.is_ended() {
                break;
            }
            match step {
                Step::Send(bytes) => d.read(bytes),
                Step::Until(at) => d.advance(d.t0 + *at),
                Step::Pong => {
                    if let Some(nonce) = last_ping(&d.written) {
                        d.read(&frame_of(&Message::Pong(nonce)));
                    }
                }
            }
        }
        if !d.core.is_ended() {
            d.core.stream_closed(None);
            d.write();
        }
        Outcome { written: d.written.to_vec(), marks: d.marks, reason: d.reason, ended_at: d.ended_at }
    }

    /// The reader's pass: bytes in, events out (the remote's version accepted, as the driver's
    /// `decide` does with a fresh nonce registry and `NoopHandler`), then the writer's pass. The
    /// core stops early with events waiting, or at the version: it is called again, as the driver
    /// does, until it asks for no more.
    fn read(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
        for _ in 0..100_000 {
            let mut more = self.core.handle_bytes(&mut self.input, self.now, self.wall);
            while self.core.poll_read().is_some() {}
            more |= self.events();
            self.write();
            if !more || self.core.is_ended() {
                return;
            }
        }
        panic!("the core kept asking to be called again");
    }

    /// Takes the events; true when the remote's version was decided (bytes may wait).
    fn events(&mut self) -> bool {
        let mut decided = false;
        while let Some(event) = self.core.poll_event() {
            match event {
                Event::Version(_) => {
                    self.core.decide_version(Ok(()), self.now, self.wall);
                    decided = true;
                }
                Event::Disconnected(reason) => {
                    assert!(self.reason.is_none(), "a second Disconnected event: {reason:?}");
                    self.reason = Some(reason);
                    self.ended_at = Some(self.now - self.t0);
                }
                _ => {}
            }
        }
        decided
    }

    /// The writer's pass: a timeout due now runs, then everything is written.
    fn write(&mut self) {
        if self.core.poll_timeout(self.now).is_some_and(|at| at <= self.now) {
            self.core.handle_timeout(self.now);
        }
        if self.core.poll_transmit_bytes(self.now, &mut self.written) > 0 {
            self.marks.push((self.written.len(), self.now - self.t0));
        }
        self.events();
    }

    /// Time passes until `target`: each timeout inside it runs at its instant, rounded up to a
    /// whole millisecond after the start (tokio's timer tick).
    fn advance(&mut self, target: Instant) {
        for _ in 0..100_000 {
            let due =
                self.core.poll_timeout(self.now).map(|at| self.t0 + ceil_ms(at.saturating_duration_since(self.t0)));
            match due {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    self.core.handle_timeout(self.now);
                    self.write();
                }
                _ => {
                    self.now = self.now.max(target);
                    return;
                }
            }
        }
        panic!("the core's timeout does not move on (at {:?})", self.now - self.t0);
    }
}

fn ceil_ms(d: Duration) -> Duration {
    let ms = d.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(ms).expect("a sane duration"))
}

// ---------------------------------------------------------------------------------------------
// (b) the tokio Peer

/// `script` against a tokio [`Peer`] on a fresh current-thread runtime with a paused clock.
fn run_tokio(script: &Script) -> Outcome {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("a runtime");
    runtime.block_on(async {
        let t0 = tokio::time::Instant::now();
        let peer = Peer::inbound(peer_config(script), REMOTE, NoopHandler);
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        peer.associate(ours).expect("a fresh peer");
        let (mut rd, mut wr) = tokio::io::split(theirs);
        let written = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let written = written.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut marks = Vec::new();
                while let Ok(n @ 1..) = rd.read(&mut buf).await {
                    let mut written = written.lock().expect("not poisoned");
                    written.extend_from_slice(&buf[..n]);
                    marks.push((written.len(), t0.elapsed()));
                }
                marks
            })
        };
        let ended = {
            let peer = peer.clone();
            tokio::spawn(async move {
                let reason = peer.wait_for_disconnect().await;
                (reason, t0.elapsed())
            })
        };
        let remote = async {
            for step in &script.steps {
                let sent = match step {
                    Step::Send(bytes) => wr.write_all(bytes).await.is_ok(),
                    Step::Until(at) => {
                        tokio::time::sleep_until(t0 + *at).await;
                        true
                    }
                    Step::Pong => {
                        let nonce = last_ping(&written.lock().expect("not poisoned"));
                        match nonce {
                            Some(nonce) => wr.write_all(&frame_of(&Message::Pong(nonce))).await.is_ok(),
                            None => true,
                        }
                    }
                };
                if !sent {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        };
        tokio::time::timeout(SIMULATED_BOUND, remote).await.expect("the remote's script ran");
        let (reason, ended_at) = tokio::time::timeout(SIMULATED_BOUND, ended)
            .await
            .expect("the peer ended after the remote closed")
            .expect("the waiter did not panic");
        let marks = tokio::time::timeout(SIMULATED_BOUND, reader)
            .await
            .expect("the peer closed the stream")
            .expect("the reader did not panic");
        let written = written.lock().expect("not poisoned").clone();
        Outcome { written, marks, reason: Some(reason), ended_at: Some(ended_at) }
    })
}

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

/// The scripts written here: what the corpus reaches only by chance. Each says how it must end
/// and what the peer must have written.
fn handwritten() -> Vec<Script> {
    let hs = |flags: u8| Step::Send(handshake(flags));
    let at = |s: f64| Step::Until(secs(s));
    let send = |m: Message| Step::Send(frame_of(&m));
    let raw = |command: &str, payload: &[u8]| Step::Send(raw_frame(Command::new(command).expect("a name"), payload));
    let version = |v: u32| frame_of(&Message::Version(harness::remote_version(v)));
    let bad_checksum = || {
        let mut f = raw_frame(Command::PING, &7u64.to_le_bytes());
        f[20] ^= 0xff;
        Step::Send(f)
    };
    let script = |name: &str, steps: Vec<Step>, kind: &'static str, commands: &'static [&'static str]| Script {
        name: name.into(),
        flags: 0x20,
        ignored_limit: None,
        steps,
        expect: Some((kind, commands)),
    };
    let pong_timeout = {
        // The remote talks every 100 s (so it is never idle) but never answers our ping.
        let mut steps = vec![hs(0x20)];
        for i in 0..15u32 {
            steps.push(at(50.5 + 100.0 * f64::from(i)));
            steps.push(send(Message::Ping(u64::from(i))));
        }
        steps.push(at(1500.5));
        steps
    };
    vec![
        // The remote pings and is answered; our ping (2 min after the handshake) is answered;
        // the next one is not; the remote closes before any deadline.
        script(
            "pings and pongs",
            vec![
                hs(0x20),
                at(0.5),
                send(Message::Ping(7)),
                at(121.5),
                Step::Pong,
                at(200.5),
                send(Message::Ping(8)),
                at(250.5),
            ],
            "remote_closed",
            &["pong", "ping"],
        ),
        // A pong that answers nothing, then the right one.
        script(
            "a wrong pong, then the right one",
            vec![hs(0x20), at(121.5), send(Message::Pong(1)), at(122.5), Step::Pong, at(130.5)],
            "remote_closed",
            &["ping"],
        ),
        script("idle timeout (5 min)", vec![hs(0x20), at(400.5)], "idle_timeout", &["ping"]),
        script("pong timeout (20 min)", pong_timeout, "pong_timeout", &["ping", "pong"]),
        script("handshake timeout, silent", vec![at(40.5)], "handshake_timeout", &[]),
        script(
            "handshake timeout after version",
            vec![Step::Send(version(70016)), at(40.5)],
            "handshake_timeout",
            &["version", "verack"],
        ),
        // A malformed inv (a count and nothing after it): a reject, then the end.
        script(
            "a malformed inv and its reject",
            vec![hs(0x20), at(0.5), raw("inv", &[0x05]), at(1.5)],
            "malformed_message",
            &["reject"],
        ),
        // The same from a remote of a version without reject (60002): no reject.
        Script {
            flags: 0,
            ..script(
                "a malformed inv at 60002",
                vec![hs(6 << 2), at(0.5), raw("inv", &[0x05]), at(1.5)],
                "malformed_message",
                &[],
            )
        },
        // Bad checksums are dropped (Core's leniency) and the connection goes on.
        script(
            "bad checksums",
            vec![hs(0x20), at(0.5), bad_checksum(), at(1.5), bad_checksum(), send(Message::Ping(3)), at(2.5)],
            "remote_closed",
            &["pong"],
        ),
        script(
            "a bad magic",
            vec![hs(0x20), at(0.5), Step::Send([0xde, 0xad, 0xbe, 0xef].repeat(8)), at(1.5)],
            "bad_frame",
            &[],
        ),
        // Unknown commands are ignored.
        script(
            "unknown commands",
            vec![
                hs(0x20),
                at(0.5),
                raw("feature", b"x"),
                raw("", &[]),
                raw("abcdefghijkl", &[1, 2]),
                raw("getaddrx", &[]),
                send(Message::Ping(9)),
                at(1.5),
            ],
            "remote_closed",
            &["pong"],
        ),
        // A message before the handshake completes, version and verack again after it (ignored).
        script(
            "early and repeated handshake messages",
            vec![send(Message::Ping(1)), hs(0x20), at(0.5), hs(0), send(Message::Ping(2)), at(1.5)],
            "remote_closed",
            &["pong"],
        ),
        // The misbehaviour limit: two bad checksums, a second verack and a third bad checksum
        // (four ignored or dropped frames) against a limit of 3.
        Script {
            ignored_limit: Some(3),
            ..script(
                "the misbehaviour limit",
                vec![
                    hs(0x20),
                    at(0.5),
                    bad_checksum(),
                    at(1.5),
                    bad_checksum(),
                    at(2.5),
                    send(Message::Verack),
                    at(3.5),
                    bad_checksum(),
                    at(4.5),
                ],
                "protocol_violation",
                &[],
            )
        },
        // Bloom messages: refused without NODE_BLOOM, taken with it (flag bit 6).
        script(
            "filterclear refused",
            vec![hs(0x20), at(0.5), raw("filterclear", &[]), at(1.5)],
            "protocol_violation",
            &[],
        ),
        Script {
            flags: 0x60,
            ..script(
                "filterclear with NODE_BLOOM",
                vec![hs(0x20), at(0.5), raw("filterclear", &[]), send(Message::Ping(5)), at(1.5)],
                "remote_closed",
                &["pong"],
            )
        },
        // The v2 policy Prefer: a v1 initiator is told from a v2 one by its first bytes.
        Script {
            flags: 0x22,
            ..script(
                "a v1 remote under Prefer",
                vec![hs(0x20), at(0.5), send(Message::Ping(6)), at(1.5)],
                "remote_closed",
                &["pong"],
            )
        },
        // Early closes: mid-version, after version, right after the handshake, mid-frame after it.
        script("close mid-version", vec![Step::Send(version(70016)[..40].to_vec()), at(0.5)], "remote_closed", &[]),
        script(
            "close after version",
            vec![Step::Send(version(70016)), at(0.5)],
            "remote_closed",
            &["version", "verack"],
        ),
        script("close right after the handshake", vec![hs(0x20), at(0.5)], "remote_closed", &["verack"]),
        script(
            "close mid-frame",
            vec![hs(0x20), at(0.5), Step::Send(frame_of(&Message::Ping(4))[..30].to_vec()), at(1.5)],
            "remote_closed",
            &["verack"],
        ),
        // A remote older than the lowest version we accept (31800).
        script(
            "a remote too old",
            vec![Step::Send(version(31799)), Step::Send(frame_of(&Message::Verack)), at(0.5)],
            "obsolete_version",
            &[],
        ),
    ]
}

/// `fuzz/corpus/peer` at the project root.
fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/peer")
}

/// The corpus inputs as scripts, sorted by name; the names of inputs not run (with why).
fn corpus() -> (Vec<Script>, Vec<String>) {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.') && !n.ends_with(".md")))
        .collect();
    files.sort();
    let (mut scripts, mut skipped) = (Vec::new(), Vec::new());
    for f in files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        match from_fuzz_input(format!("corpus/peer/{name}"), &data) {
            Some(script) => scripts.push(script),
            None => skipped.push(format!("{name} (empty: the targets skip it)")),
        }
    }
    (scripts, skipped)
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
