//! Awaitable requests over 127.0.0.1 beside the same exchanges done by hand (queue the request, wait
//! for the answer in a handler) in the same run: `ping()` against a raw ping, `get_block()` of a
//! 1 MB block against a raw `getdata`, and 50 `get_block`s in flight at once.
//!
//! Run with `cargo bench -p btcpeer --bench requests`.

use std::sync::Arc;
use std::time::Duration;

use btcpeer::bitcoin::Block;
use btcpeer::network::Network;
use btcpeer::peer::{Handler, NonceRegistry, Peer, PeerConfig};
use btcpeer::testing::{ChainServer, SyntheticChain, big_block};
use btcpeer::wire::{Inventory, Message};
mod loopback;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::net::TcpListener;
use tokio::sync::Notify;

fn config(services: btcpeer::bitcoin::p2p::ServiceFlags) -> PeerConfig {
    PeerConfig::builder(Network::REGTEST)
        .services(services)
        .nonce_registry(NonceRegistry::new())
        .build()
        .expect("valid")
}

/// Wakes the bench when a pong or a block arrives (the by-hand baseline).
struct Wake(Arc<Notify>);
impl Handler for Wake {
    fn on_pong(&self, _: &Peer, _: u64) {
        self.0.notify_one();
    }
    fn on_block(&self, _: &Peer, _: Block, _: bytes::Bytes) {
        self.0.notify_one();
    }
}

/// Serves one big block for every `getdata` (and the synthetic chain's small ones).
#[derive(Clone)]
struct BigServer(Arc<Block>, ChainServer);
impl Handler for BigServer {
    fn on_getdata(&self, peer: &Peer, items: Vec<Inventory>) {
        if items.iter().any(|i| matches!(i, Inventory::WitnessBlock(h) if *h == self.0.block_hash())) {
            let _ = peer.queue_message(&Message::Block((*self.0).clone()));
        } else {
            self.1.on_getdata(peer, items);
        }
    }
}

async fn pair(listener: &TcpListener, out: impl Handler, inb: impl Handler) -> (Peer, Peer) {
    use btcpeer::bitcoin::p2p::ServiceFlags;
    let witness = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    loopback::pair(listener, (config(witness), out), (config(witness), inb)).await
}

fn requests(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let chain = Arc::new(SyntheticChain::new(btcpeer::bitcoin::Network::Regtest, 60));
    let big = Arc::new(big_block(1_000_000));
    let server = BigServer(big.clone(), ChainServer::new(chain.clone()));
    let woken = Arc::new(Notify::new());
    let (client, _server) = rt.block_on(pair(&listener, Wake(woken.clone()), server));
    let mut g = c.benchmark_group("requests_loopback");
    g.measurement_time(Duration::from_secs(5));

    g.bench_function("ping_by_hand", |b| {
        b.to_async(&rt).iter(|| async {
            let _ = client.queue_message(&Message::Ping(7)).expect("queued");
            woken.notified().await;
        });
    });
    g.bench_function("ping_request", |b| b.to_async(&rt).iter(|| async { client.ping().await.expect("pong") }));

    let big_hash = big.block_hash();
    g.bench_function("block_1mb_by_hand", |b| {
        b.to_async(&rt).iter(|| async {
            let _ = client.queue_message(&Message::GetData(vec![Inventory::WitnessBlock(big_hash)])).expect("queued");
            woken.notified().await;
        });
    });
    g.bench_function("block_1mb_request", |b| {
        b.to_async(&rt).iter(|| async { client.get_block(big_hash).await.expect("block") });
    });

    let hashes: Vec<_> = (1..51).map(|h| chain.hash(h)).collect();
    g.bench_function("get_block_50_in_flight", |b| {
        b.to_async(&rt).iter(|| async {
            let handles: Vec<_> = hashes
                .iter()
                .map(|h| {
                    let (peer, h) = (client.clone(), *h);
                    tokio::spawn(async move { peer.get_block(h).await })
                })
                .collect();
            for h in handles {
                h.await.expect("ran").expect("block");
            }
        });
    });
    g.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);
