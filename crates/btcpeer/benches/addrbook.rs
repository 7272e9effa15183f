//! The address book's `select` (what a node's every outbound dial asks) on a small and a large
//! book, beside `sha256d` of 64 bytes as a baseline: Core's bucket-and-position draw takes about
//! the same time whatever the book's size.
//!
//! Run with `cargo bench -p btcpeer --bench addrbook`.

use std::hint::black_box;
use std::net::Ipv4Addr;

use bitcoin::hashes::{Hash, sha256d};
use btcpeer::bitcoin::p2p::ServiceFlags;
use btcpeer::bitcoin::p2p::address::{AddrV2, AddrV2Message};
use btcpeer::core::addrbook::{AddrBook, Endpoint};
use criterion::{Criterion, criterion_group, criterion_main};

const NOW: u64 = 1_700_000_000;

/// A book fed `n` routable addresses from `n / 50` sources, a tenth of them moved to tried.
fn book(n: u32) -> AddrBook {
    let mut book = AddrBook::new([9; 32], 1);
    for s in 0..(n / 50).max(1) {
        let source = Endpoint::new(AddrV2::Ipv4(Ipv4Addr::from(0x0b00_0000u32.wrapping_add(s << 8))), 8333);
        let addrs: Vec<AddrV2Message> = (0..50u32)
            .map(|i| AddrV2Message {
                time: NOW as u32,
                services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
                addr: AddrV2::Ipv4(Ipv4Addr::from(
                    0x0c00_0000u32.wrapping_add((s * 50 + i).wrapping_mul(2_654_435_761) >> 4),
                )),
                port: 8333,
            })
            .collect();
        book.add(&addrs, &source, NOW);
    }
    let tried: Vec<Endpoint> = book.entries().step_by(10).map(|e| e.peer.clone()).collect();
    for p in &tried {
        book.good(p, NOW);
    }
    book
}

fn select(c: &mut Criterion) {
    let mut g = c.benchmark_group("addrbook_select");
    let wire = [0u8; 64];
    g.bench_function("sha256d_64b_baseline", |b| b.iter(|| sha256d::Hash::hash(black_box(&wire))));
    for n in [1_000u32, 60_000] {
        let mut b = book(n);
        let name = format!("select_book_of_{}", b.len());
        g.bench_function(&name, |bench| bench.iter(|| black_box(b.select(false, None, NOW))));
    }
    g.finish();
}

criterion_group!(benches, select);
criterion_main!(benches);
