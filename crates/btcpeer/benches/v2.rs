//! The BIP324 packet path: encrypting a ~1 MB block message into a packet and decrypting it back
//! through our codec, beside `sha256d` over the same bytes (the v1 checksum) in the same run.
//!
//! Run with `cargo bench -p btcpeer --bench v2`.

use std::hint::black_box;

use bitcoin::hashes::{Hash, sha256d};
use btcpeer::network::Network;
use btcpeer::transport::v2::{V2Decoder, V2Encoder};
use btcpeer::transport::v2_handshake::{V2Options, initiate, respond};
use btcpeer::wire::Command;
use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// A session's two directions: our encoder and the remote's decoder for it.
fn session() -> (V2Encoder, V2Decoder) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (mut ar, mut aw) = tokio::io::split(a);
        let (mut br, mut bw) = tokio::io::split(b);
        let net = Network::REGTEST;
        let opts = V2Options::default();
        let (init, resp) = tokio::join!(
            initiate(&mut ar, &mut aw, &net, &opts),
            respond(&mut br, &mut bw, &net, &opts, BytesMut::new())
        );
        (init.expect("initiator").encoder, resp.expect("responder").decoder)
    })
}

fn v2(c: &mut Criterion) {
    let payload = Bytes::from(vec![0x5au8; 1_000_000]);
    let mut g = c.benchmark_group("v2_packet_1mb");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.sample_size(40);
    g.bench_function("sha256d", |b| b.iter(|| sha256d::Hash::hash(black_box(&payload))));

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

criterion_group!(benches, v2);
criterion_main!(benches);
