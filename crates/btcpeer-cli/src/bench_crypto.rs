//! `btcpeer bench`'s figures that need no socket: the single-core `sha256d` baseline (what a v1
//! frame costs: its checksum), the BIP324 packet AEAD on the same megabyte (what a v2 packet costs),
//! and one v2 handshake, both sides in memory, beside its floor: the curve work alone
//! (ElligatorSwift key and encoding, then ECDH, on each side).

use std::hint::black_box;
use std::time::{Duration, Instant};

use btcpeer::bitcoin::hashes::{Hash, sha256d};
use btcpeer::network::Network;
use btcpeer::transport::v2_cipher::{LengthCipher, PacketCipher};
use btcpeer::transport::v2_handshake::{V2Options, ephemeral_key, initiate, respond, session_keys};
use bytes::BytesMut;
use serde::Serialize;

/// One v2 handshake in memory beside its curve work, in microseconds.
#[derive(Serialize, Debug, Clone, Copy)]
pub struct HandshakeFigures {
    /// The curve work alone, both sides.
    pub floor_us: f64,
    /// The whole handshake, both sides.
    pub handshake_us: f64,
    /// `handshake_us` over `floor_us`.
    pub over_floor: f64,
}

/// How long each rate is measured.
const MEASURE: Duration = Duration::from_millis(700);

/// Runs `f` repeatedly for [`MEASURE`] (after a short warm-up); returns the calls per second.
fn per_second(mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let start = Instant::now();
    let mut rounds = 0u32;
    while start.elapsed() < MEASURE {
        f();
        rounds += 1;
    }
    f64::from(rounds) / start.elapsed().as_secs_f64()
}

/// MB/s of `sha256d` over 1 MB on one core.
pub fn sha256d_mbps() -> f64 {
    let data = vec![0x5au8; 1_000_000];
    per_second(|| {
        black_box(sha256d::Hash::hash(black_box(&data)));
    })
}

/// MB/s of the v2 packet AEAD alone (FSChaCha20Poly1305 sealing 1 MB in place, and the length
/// cipher's three bytes), the cost a v2 packet has where a v1 frame has its checksum, and its ratio
/// to `sha256d` over the same megabyte. The two are measured in alternating slices of 100 ms, so
/// that both see the same clock speed and neighbours on a shared machine.
pub fn aead_figures() -> (f64, f64) {
    let mut packet = PacketCipher::new([0x42; 32]);
    let mut length = LengthCipher::new([0x43; 32]);
    // One megabyte for both, so that they meet the same caches.
    let mut data = vec![0x5au8; 1_000_000];
    let slice = Duration::from_millis(100);
    let (mut aead_n, mut aead_t, mut sha_n, mut sha_t) = (0u32, Duration::ZERO, 0u32, Duration::ZERO);
    for _ in 0..7 {
        let start = Instant::now();
        while start.elapsed() < slice {
            let mut prefix = [0x40, 0x42, 0x0f];
            length.crypt(&mut prefix);
            black_box(packet.encrypt(&[], black_box(&mut data)));
            aead_n += 1;
        }
        aead_t += start.elapsed();
        let start = Instant::now();
        while start.elapsed() < slice {
            black_box(sha256d::Hash::hash(black_box(&data)));
            sha_n += 1;
        }
        sha_t += start.elapsed();
    }
    let aead_mbps = f64::from(aead_n) / aead_t.as_secs_f64();
    let sha_mbps = f64::from(sha_n) / sha_t.as_secs_f64();
    (aead_mbps, aead_mbps / sha_mbps)
}

/// One v2 handshake in memory (both sides, default options: random garbage, no decoys) and its
/// curve-work floor, in microseconds, and the ratio of the two.
pub async fn handshake_figures() -> Result<HandshakeFigures, String> {
    let magic = Network::REGTEST.magic().to_bytes();
    ephemeral_key().map_err(|e| e.to_string())?;
    let floor_per_sec = per_second(|| {
        // The OS random source works (checked above).
        if let (Ok((a, a_pub)), Ok((b, b_pub))) = (ephemeral_key(), ephemeral_key()) {
            black_box(session_keys(a, &a_pub, &b_pub, true, magic));
            black_box(session_keys(b, &b_pub, &a_pub, false, magic));
        }
    });
    let net = Network::REGTEST;
    let opts = V2Options::default();
    let mut rounds = 0u32;
    let start = Instant::now();
    while start.elapsed() < MEASURE || rounds < 3 {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (mut ar, mut aw) = tokio::io::split(a);
        let (mut br, mut bw) = tokio::io::split(b);
        let (i, r) = tokio::join!(
            initiate(&mut ar, &mut aw, &net, &opts),
            respond(&mut br, &mut bw, &net, &opts, BytesMut::new())
        );
        i.map_err(|e| e.to_string())?;
        r.map_err(|e| e.to_string())?;
        rounds += 1;
    }
    let handshake_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    let floor_us = 1e6 / floor_per_sec;
    Ok(HandshakeFigures {
        floor_us: (floor_us * 10.0).round() / 10.0,
        handshake_us: (handshake_us * 10.0).round() / 10.0,
        over_floor: (handshake_us / floor_us * 100.0).round() / 100.0,
    })
}
