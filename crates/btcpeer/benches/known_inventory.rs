//! The known-inventory cache (R-S4): inserting a received 1,000-entry `inv` into a full cache of
//! 1,000, and looking entries up, beside `sha256d` over the same 36,000 bytes as a baseline.
//!
//! Run with `cargo bench -p btcpeer --bench known_inventory`.

use std::hint::black_box;

use bitcoin::Txid;
use bitcoin::hashes::{Hash, sha256d};
use btcpeer::peer::KnownInventory;
use btcpeer::wire::Inventory;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn inv(seed: u32, n: u32) -> Vec<Inventory> {
    (0..n)
        .map(|i| {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&(seed.wrapping_mul(1_000_003) ^ i).to_le_bytes());
            h[28..].copy_from_slice(&i.to_be_bytes());
            Inventory::Tx(Txid::from_byte_array(h))
        })
        .collect()
}

fn known(c: &mut Criterion) {
    let mut g = c.benchmark_group("known_inventory");
    g.throughput(Throughput::Elements(1_000));
    let batch: Vec<Vec<Inventory>> = (0..64).map(|s| inv(s, 1_000)).collect();
    let wire = vec![0u8; 36_000];
    g.bench_function("sha256d_36kb_baseline", |b| b.iter(|| sha256d::Hash::hash(black_box(&wire))));
    let mut cache = KnownInventory::new(1_000);
    let mut round = 0usize;
    g.bench_function("insert_1000_into_full_cache", |b| {
        b.iter(|| {
            round = round.wrapping_add(1);
            for item in &batch[round % batch.len()] {
                cache.insert(item);
            }
        })
    });
    let mut deferred = KnownInventory::new(1_000);
    g.bench_function("extend_1000_received", |b| {
        b.iter(|| {
            round = round.wrapping_add(1);
            deferred.extend(&batch[round % batch.len()]);
        })
    });
    g.bench_function("contains_1000", |b| {
        b.iter(|| batch[round % batch.len()].iter().filter(|i| cache.contains(i)).count())
    });
    g.finish();
}

criterion_group!(benches, known);
criterion_main!(benches);
