//! Peer figures over 127.0.0.1 (the full `btcpeer bench` comes with the performance work):
//! a handshake (TCP connect included), one ping round trip, and queueing plus writing 1,000 small
//! messages; beside `sha256d` over 1 MB in the same run as the baseline.
//!
//! Run with `cargo bench -p btcpeer --bench peer`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::{Hash, sha256d};
use btcpeer::network::Network;
use btcpeer::peer::{Handler, NonceRegistry, NoopHandler, Peer, PeerConfig};
use btcpeer::wire::{Inventory, Message};
mod loopback;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::net::TcpListener;
use tokio::sync::Notify;

fn config() -> PeerConfig {
    PeerConfig::builder(Network::REGTEST).nonce_registry(NonceRegistry::new()).build().expect("valid")
}

struct PongNotify(Arc<Notify>);
impl Handler for PongNotify {
    fn on_pong(&self, _: &Peer, _: u64) {
        self.0.notify_one();
    }
}

struct Count(Arc<Notify>, std::sync::atomic::AtomicU64, u64);
impl Handler for Count {
    fn on_inv(&self, _: &Peer, _: Vec<Inventory>) {
        let n = self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if n % self.2 == 0 {
            self.0.notify_one();
        }
    }
}

async fn pair(listener: &TcpListener, out: impl Handler, inb: impl Handler) -> (Peer, Peer) {
    loopback::pair(listener, (config(), out), (config(), inb)).await
}

fn peer_figures(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let mut g = c.benchmark_group("peer_loopback");
    g.measurement_time(Duration::from_secs(5));

    let data = vec![0x5au8; 1_000_000];
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("sha256d_1mb", |b| b.iter(|| sha256d::Hash::hash(black_box(&data))));

    g.throughput(Throughput::Elements(1));
    g.bench_function("handshake", |b| {
        b.to_async(&rt).iter(|| async {
            let (o, i) = pair(&listener, NoopHandler, NoopHandler).await;
            o.disconnect();
            i.disconnect();
            o.wait_for_disconnect().await;
            i.wait_for_disconnect().await;
        })
    });

    let pong = Arc::new(Notify::new());
    let (o, i) = rt.block_on(pair(&listener, PongNotify(pong.clone()), NoopHandler));
    g.bench_function("ping_round_trip", |b| {
        b.to_async(&rt).iter(|| async {
            let _ = o.queue_message(&Message::Ping(7)).expect("queued");
            pong.notified().await;
        })
    });
    o.disconnect();
    i.disconnect();

    let got = Arc::new(Notify::new());
    let batch = 1_000u64;
    let (o, i) =
        rt.block_on(pair(&listener, NoopHandler, Count(got.clone(), std::sync::atomic::AtomicU64::new(0), batch)));
    let inv = Message::Inv(vec![Inventory::Block(bitcoin::BlockHash::all_zeros())]);
    g.throughput(Throughput::Elements(batch));
    g.bench_function("inv1_x1000_one_way", |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..batch {
                let _ = o.send(&inv).await.expect("queued");
            }
            got.notified().await;
        })
    });
    o.disconnect();
    i.disconnect();
    g.finish();
}

criterion_group!(benches, peer_figures);
criterion_main!(benches);
