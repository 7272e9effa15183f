//! The differential test's scripts: what the remote does, from a `peer` fuzz input or written
//! here, and the peer's configuration for each.

use std::path::{Path, PathBuf};
use std::time::Duration;

use btcpeer::bitcoin::p2p::ServiceFlags;
use btcpeer::network::Network;
use btcpeer::peer::{NonceRegistry, PeerConfig, V2Policy};
use btcpeer::wire::frame;
use btcpeer::wire::{Command, Message, SendTxRcncl};
use bytes::BytesMut;

use crate::harness;

/// The generator seed of both runs' peers (so that the nonces of our version and pings agree).
pub(crate) const SEED: u64 = 0xd1ff_5eed;

/// The remote's address, as the tokio peer is told it (and puts it in our version).
pub(crate) const REMOTE: &str = "127.0.0.1:50000";

/// What the remote does, in order.
#[derive(Clone, Debug)]
pub(crate) enum Step {
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
pub(crate) struct Script {
    pub(crate) name: String,
    pub(crate) flags: u8,
    pub(crate) ignored_limit: Option<u64>,
    pub(crate) steps: Vec<Step>,
    /// What a hand-written script is for: the kind of the reason it ends with, and commands the
    /// peer must have written (checked on both runs, so that a script proves what it says).
    pub(crate) expect: Option<(&'static str, &'static [&'static str])>,
}

pub(crate) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// `message` as a v1 frame on regtest.
pub(crate) fn frame_of(message: &Message) -> Vec<u8> {
    let mut payload = BytesMut::new();
    message.encode_payload(&mut payload).expect("the remote's messages encode");
    raw_frame(message.command(), &payload)
}

/// A v1 frame of `command` around `payload` (any bytes).
pub(crate) fn raw_frame(command: Command, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    let _ = frame::encode_raw_frame(command, payload, &Network::REGTEST, &mut out);
    out.to_vec()
}

/// The remote's side of the handshake, as the fuzz targets send it: its version (the protocol
/// version of flag bits 2–4), wtxidrelay, sendaddrv2 and sendtxrcncl with bit 5, verack.
pub(crate) fn handshake(flags: u8) -> Vec<u8> {
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
pub(crate) fn from_fuzz_input(name: String, data: &[u8]) -> Option<Script> {
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
pub(crate) fn peer_config(script: &Script) -> PeerConfig {
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
pub(crate) fn policy(script: &Script) -> V2Policy {
    if script.flags & 2 != 0 { V2Policy::Prefer } else { V2Policy::Never }
}

/// The scripts written here: what the corpus reaches only by chance. Each says how it must end
/// and what the peer must have written.
pub(crate) fn handwritten() -> Vec<Script> {
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
pub(crate) fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/peer")
}

/// The corpus inputs as scripts, sorted by name; the names of inputs not run (with why).
pub(crate) fn corpus() -> (Vec<Script>, Vec<String>) {
    let dir = corpus_dir();
    let files =
        crate::harness::corpus_files(std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())));
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
