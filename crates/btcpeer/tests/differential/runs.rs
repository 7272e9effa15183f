//! The differential test's two runs of a script: the core driven directly, and the tokio peer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use btcpeer::bitcoin::p2p::{Address, ServiceFlags};
use btcpeer::core::peer::{Event, PeerCore};
use btcpeer::network::Network;
use btcpeer::peer::{Direction, DisconnectReason, NoopHandler, Peer, V2Policy};
use btcpeer::transport::framing::{Framing, TransportPolicy};
use btcpeer::transport::v2_handshake::V2Options;
use btcpeer::wire::Message;
use btcpeer::wire::frame::{self, HEADER_LEN};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::scripts::{REMOTE, Script, Step, frame_of, peer_config, policy};

/// A bound on each tokio run, in simulated time.
pub(crate) const SIMULATED_BOUND: Duration = Duration::from_secs(24 * 3600);

/// What one run saw: the bytes the peer wrote and when, why it ended and when.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) written: Vec<u8>,
    /// (bytes written so far, the time since the start) after each write.
    pub(crate) marks: Vec<(usize, Duration)>,
    pub(crate) reason: Option<DisconnectReason>,
    pub(crate) ended_at: Option<Duration>,
}

/// The nonce of the last `ping` in `written` (v1 frames), if any.
pub(crate) fn last_ping(written: &[u8]) -> Option<u64> {
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
pub(crate) struct Written {
    pub(crate) magic_ok: bool,
    pub(crate) command: String,
    /// The payload (a version's timestamp zeroed).
    pub(crate) payload: Vec<u8>,
    pub(crate) checksum_ok: bool,
    /// When its last byte was written, after the start (zero without `marks`).
    pub(crate) at: Duration,
}

/// `bytes` as v1 frames, each at the first of `marks` that covers its last byte, and whatever
/// trails the last whole one.
pub(crate) fn frames(bytes: &[u8], marks: &[(usize, Duration)]) -> (Vec<Written>, Vec<u8>) {
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
pub(crate) struct Direct {
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
    pub(crate) fn new(script: &Script) -> Direct {
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

    pub(crate) fn run(script: &Script) -> Outcome {
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

pub(crate) fn ceil_ms(d: Duration) -> Duration {
    let ms = d.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(ms).expect("a sane duration"))
}

// ---------------------------------------------------------------------------------------------
// (b) the tokio Peer

/// `script` against a tokio [`Peer`] on a fresh current-thread runtime with a paused clock.
pub(crate) fn run_tokio(script: &Script) -> Outcome {
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
