//! P-1: v1 frame handling of a ~1 MB block, next to `sha256d` over the same payload in the same run.
//!
//! Run with `cargo bench -p btcpeer --bench frame`. The ratios that matter are
//! `sha256d / frame_decode` and `sha256d / frame_encode_raw` (frame handling excluding block
//! parsing; target ≥ 0.9). Parsing into rust-bitcoin types and serialising from them are reported
//! separately (`block_parse`, `frame_encode_block`). `scripts/p1-ratios.py` prints the ratios from
//! criterion's output.

use std::hint::black_box;

use bitcoin::hashes::{Hash, sha256d};
use btcpeer::network::Network;
use btcpeer::transport::v1::V1Codec;
use btcpeer::wire::{Command, Message, frame};
use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn p1(c: &mut Criterion) {
    let net = Network::MAINNET;
    let block = btcpeer::testing::big_block(930_000);
    let msg = Message::Block(block.clone());
    let mut buf = BytesMut::new();
    frame::encode_frame(&msg, &net, &mut buf).expect("encodes");
    let frame_bytes: Bytes = buf.freeze();
    let payload = frame_bytes.slice(frame::HEADER_LEN..);
    eprintln!("block frame: {} bytes, payload {} bytes", frame_bytes.len(), payload.len());

    let mut g = c.benchmark_group("p1_block_frame");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.sample_size(60);

    g.bench_function("sha256d", |b| b.iter(|| sha256d::Hash::hash(black_box(&payload))));

    g.bench_function("frame_decode", |b| {
        b.iter(|| frame::decode_frame(black_box(&frame_bytes), &net).expect("valid frame"))
    });

    let mut codec = V1Codec::new(net.clone());
    g.bench_function("frame_decode_codec", |b| {
        b.iter_batched(
            || BytesMut::from(&frame_bytes[..]),
            |mut rx| codec.decode_frame(&mut rx).expect("valid").expect("complete"),
            BatchSize::LargeInput,
        )
    });

    let mut out = BytesMut::with_capacity(frame_bytes.len());
    g.bench_function("frame_encode_raw", |b| {
        b.iter(|| {
            out.clear();
            frame::encode_raw_frame(Command::BLOCK, black_box(&payload), &net, &mut out).expect("encodes")
        })
    });

    g.bench_function("frame_encode_block", |b| {
        b.iter(|| {
            out.clear();
            frame::encode_frame(black_box(&msg), &net, &mut out).expect("encodes")
        })
    });

    g.bench_function("block_parse", |b| {
        b.iter(|| Message::decode(Command::BLOCK, black_box(payload.clone())).expect("valid block"))
    });
    g.finish();
}

criterion_group!(benches, p1);
criterion_main!(benches);
