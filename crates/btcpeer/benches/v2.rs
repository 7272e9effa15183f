//! The BIP324 packet path: encrypting a ~1 MB block message into a packet and decrypting it back
//! through our codec, beside `sha256d` over the same bytes (the v1 checksum) in the same run.
//!
//! The AEAD alone (FSChaCha20Poly1305 sealing 1 MB in place) is measured beside them: P-5 wants it
//! at 1.5 × the sha256d rate or more.
//!
//! Also: one whole BIP324 handshake (both sides, in memory, so no TCP) beside its floor, the curve
//! work of both sides alone (ElligatorSwift keys and ECDH), measured in the same run.
//!
//! Run with `cargo bench -p btcpeer --bench v2`.

use std::hint::black_box;

use bitcoin::hashes::{Hash, sha256d};
use btcpeer::network::Network;
use btcpeer::transport::v2::{V2Decoder, V2Encoder};
use btcpeer::transport::v2_handshake::{V2Options, V2Session, ephemeral_key, initiate, respond, session_keys};
use btcpeer::wire::Command;
use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// Both ends of one v2 handshake over an in-memory pipe: the initiator's session, then the
/// responder's.
async fn handshake_pair() -> (V2Session, V2Session) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let net = Network::REGTEST;
    let opts = V2Options::default();
    let (init, resp) =
        tokio::join!(initiate(&mut ar, &mut aw, &net, &opts), respond(&mut br, &mut bw, &net, &opts, BytesMut::new()));
    (init.expect("initiator"), resp.expect("responder"))
}

/// A session's two directions: our encoder and the remote's decoder for it.
fn session() -> (V2Encoder, V2Decoder) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (init, resp) = rt.block_on(handshake_pair());
    (init.encoder, resp.decoder)
}

fn v2(c: &mut Criterion) {
    let payload = Bytes::from(vec![0x5au8; 1_000_000]);
    let mut g = c.benchmark_group("v2_packet_1mb");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.sample_size(40);
    g.bench_function("sha256d", |b| b.iter(|| sha256d::Hash::hash(black_box(&payload))));
    let mut aead = btcpeer::transport::v2_cipher::PacketCipher::new([0x42; 32]);
    let mut text = payload.to_vec();
    g.bench_function("aead_seal_in_place", |b| b.iter(|| aead.encrypt(&[], black_box(&mut text))));

    let (mut encoder, _) = session();
    let mut out = BytesMut::with_capacity(1_100_000);
    g.bench_function("encrypt", |b| {
        b.iter(|| {
            out.clear();
            encoder.encode(Command::BLOCK, black_box(&payload), &mut out)
        })
    });

    // Decrypting needs packets from the matching encoder, made in order; each is decrypted once.
    let (mut encoder, mut decoder) = session();
    g.bench_function("decrypt", |b| {
        b.iter_batched(
            || {
                let mut packet = BytesMut::new();
                encoder.encode(Command::BLOCK, &payload, &mut packet);
                packet
            },
            |mut packet| decoder.decode(&mut packet).expect("authentic").expect("complete"),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// Both ends of a v2 handshake in memory: key generation, ElligatorSwift encoding and ECDH on each
/// side, the key derivation and the version packets. This is what bounds `btcpeer bench`'s v2
/// handshakes per second.
fn v2_handshake(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let inv = vec![0x5au8; 36_003];
    let mut g = c.benchmark_group("v2_handshake");
    g.sample_size(30);
    g.bench_function("sha256d_36kb", |b| b.iter(|| sha256d::Hash::hash(black_box(&inv))));
    let magic = Network::REGTEST.magic().to_bytes();
    g.bench_function("curve_work_floor", |b| {
        b.iter(|| {
            let (a, a_pub) = ephemeral_key().expect("OS random source");
            let (b2, b_pub) = ephemeral_key().expect("OS random source");
            black_box(session_keys(a, &a_pub, &b_pub, true, magic));
            black_box(session_keys(b2, &b_pub, &a_pub, false, magic))
        })
    });
    g.bench_function("both_sides", |b| b.iter(|| black_box(rt.block_on(handshake_pair()))));
    g.finish();
}

criterion_group!(benches, v2, v2_handshake);
criterion_main!(benches);
