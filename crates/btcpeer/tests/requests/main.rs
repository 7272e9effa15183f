//! R-A: awaitable requests against btcpeer-based servers on in-memory streams: answers, `notfound`,
//! timeouts, a disconnect while waiting, cancellation, many at once, BIP157 against the testing
//! chain server, `getaddr`, and the three outcomes of a broadcast.

/// BIP157: filters, filter headers, checkpoints.
mod bip157;
#[path = "../common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use btcpeer::bitcoin::hashes::Hash;
use btcpeer::bitcoin::p2p::ServiceFlags;
use btcpeer::bitcoin::p2p::address::{AddrV2, AddrV2Message};
use btcpeer::bitcoin::{BlockHash, Network as BitcoinNetwork, Transaction, Txid};
use btcpeer::peer::{BroadcastOutcome, DisconnectReason, Handler, NoopHandler, Peer, RequestError};
use btcpeer::testing::{ChainServer, SyntheticChain};
use btcpeer::wire::{Inventory, Message, Reject, RejectCode};
use common::{Event, duplex_pair, quiet, recorder, samples, within};

fn chain(len: usize) -> Arc<SyntheticChain> {
    Arc::new(SyntheticChain::new(BitcoinNetwork::Regtest, len))
}

/// A client (with a recorder as its handler) and a server running `server`.
async fn pair(
    server: impl Handler,
    services: ServiceFlags,
) -> (Peer, Peer, tokio::sync::mpsc::UnboundedReceiver<Event>) {
    let (rec, rx) = recorder();
    let server_cfg = quiet().services(services).build().unwrap();
    let (client, server) = duplex_pair(quiet().build().unwrap(), rec, server_cfg, server);
    within(client.handshake()).await.unwrap();
    (client, server, rx)
}

#[tokio::test]
async fn r_a_ping_gives_its_round_trip_even_many_at_once() {
    let (client, _server, _rx) = pair(NoopHandler, ServiceFlags::NETWORK).await;
    let rtt = within(client.ping()).await.unwrap();
    assert!(rtt < Duration::from_secs(5));
    let all = within(concurrently(&client, 0..20, |p, _| async move { p.ping().await })).await;
    assert!(all.iter().all(Result::is_ok), "{all:?}");
}

/// Runs `f` on a clone of `peer` for each input, all at once (spawned), and gathers the results
/// in order.
async fn concurrently<I, T, F, Fut>(peer: &Peer, inputs: impl IntoIterator<Item = I>, f: F) -> Vec<T>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(Peer, I) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let handles: Vec<_> = inputs.into_iter().map(|i| tokio::spawn(f(peer.clone(), i))).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("the request task ran"));
    }
    out
}

#[tokio::test]
async fn r_a_get_headers_and_blocks_from_a_chain_server() {
    let chain = chain(300);
    let (client, _server, mut rx) =
        pair(ChainServer::new(chain.clone()), ServiceFlags::NETWORK | ServiceFlags::WITNESS).await;
    let headers = within(client.get_headers(&[chain.hash(0)], BlockHash::all_zeros())).await.unwrap();
    assert_eq!(headers.len(), 299);
    assert_eq!(headers[0].prev_blockhash, chain.hash(0));
    assert_eq!(headers.last().unwrap().block_hash(), chain.tip());
    // Up to a stop hash; and nothing after the tip.
    let some = within(client.get_headers(&[chain.hash(10)], chain.hash(20))).await.unwrap();
    assert_eq!(some.len(), 10);
    assert!(within(client.get_headers(&[chain.tip()], BlockHash::all_zeros())).await.unwrap().is_empty());

    let block = within(client.get_block(chain.hash(42))).await.unwrap();
    assert_eq!(block.block_hash(), chain.hash(42));
    assert!(block.check_merkle_root());
    // Many at once: one getdata each, every answer to its own request.
    let wanted: Vec<_> = (1..60).map(|h| chain.hash(h)).collect();
    let got = within(concurrently(&client, wanted.clone(), |p, h| async move { p.get_block(h).await })).await;
    for (h, b) in wanted.iter().zip(&got) {
        assert_eq!(b.as_ref().unwrap().block_hash(), *h);
    }
    // An unknown block: the server's notfound.
    let missing = within(client.get_block(BlockHash::from_byte_array([7; 32]))).await;
    assert_eq!(missing.unwrap_err(), RequestError::NotFound);
    // Answers taken by requests never reached the handler.
    while let Ok(e) = rx.try_recv() {
        assert!(!matches!(e, Event::Message(Message::Block(_) | Message::Headers(_) | Message::NotFound(_))), "{e:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn r_a_a_silent_remote_times_out_and_a_per_call_timeout_applies() {
    let (client, _server, _rx) = pair(NoopHandler, ServiceFlags::NETWORK).await;
    let start = tokio::time::Instant::now();
    let err = client.requests().timeout(Duration::from_secs(3)).get_block(BlockHash::all_zeros()).await.unwrap_err();
    assert_eq!(err, RequestError::Timeout(Duration::from_secs(3)));
    assert!(start.elapsed() >= Duration::from_secs(3) && start.elapsed() < Duration::from_secs(4));
    // The peer is undisturbed.
    assert!(client.is_connected());
    assert!(client.ping().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn r_a_a_disconnect_while_waiting_ends_the_request_with_its_reason() {
    let (client, server, _rx) = pair(NoopHandler, ServiceFlags::NETWORK).await;
    let request = tokio::spawn({
        let client = client.clone();
        async move { client.get_block(BlockHash::all_zeros()).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.disconnect();
    let err = within(request).await.unwrap().unwrap_err();
    assert!(matches!(err, RequestError::Disconnected(DisconnectReason::RemoteClosed { .. })), "{err:?}");
    // After the end, requests fail at once.
    assert!(matches!(client.ping().await, Err(RequestError::Disconnected(_))));
}

/// Answers a `getdata` for a block only after a delay.
#[derive(Clone)]
struct Slow(Arc<SyntheticChain>);

impl Handler for Slow {
    fn on_getdata(&self, peer: &Peer, items: Vec<Inventory>) {
        let (peer, chain) = (peer.clone(), self.0.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            for item in items {
                if let Inventory::WitnessBlock(h) | Inventory::Block(h) = item {
                    let _ = peer.queue_message(&Message::Block(chain.block(chain.height_of(&h).unwrap()).clone()));
                }
            }
        });
    }
}

#[tokio::test(start_paused = true)]
async fn r_a_a_dropped_request_leaves_its_late_answer_to_the_handler() {
    let chain = chain(5);
    let (client, _server, mut rx) = pair(Slow(chain.clone()), ServiceFlags::NETWORK | ServiceFlags::WITNESS).await;
    let hash = chain.hash(3);
    // Cancelled after one second: the future is dropped.
    assert!(tokio::time::timeout(Duration::from_secs(1), client.get_block(hash)).await.is_err());
    let late = common::next_message(&mut rx, |m| matches!(m, Message::Block(_))).await;
    assert!(matches!(late, Message::Block(b) if b.block_hash() == hash));
    assert!(client.is_connected());
}

/// Answers `getaddr` with three addresses.
struct Addrs;

impl Handler for Addrs {
    fn on_getaddr(&self, peer: &Peer) {
        let entry = |n: u8| AddrV2Message {
            time: 1_700_000_000,
            services: ServiceFlags::NETWORK,
            addr: AddrV2::Ipv4(std::net::Ipv4Addr::new(10, 0, 0, n)),
            port: 8333,
        };
        let _ = peer.push_addr(&[entry(1), entry(2), entry(3)]);
    }
}

#[tokio::test(start_paused = true)]
async fn r_a_get_addr_gathers_the_answer() {
    let (client, _server, _rx) = pair(Addrs, ServiceFlags::NETWORK).await;
    let addrs = client.get_addr().await.unwrap();
    assert_eq!(addrs.len(), 3, "{addrs:?}");
    assert!(addrs.iter().all(|a| a.port == 8333));
}

/// How a broadcast server treats an announced transaction.
#[derive(Clone, Copy, PartialEq)]
enum Answering {
    Asks,
    Ignores,
    Rejects,
}

#[derive(Clone)]
struct TxServer {
    answering: Answering,
    got: Arc<Mutex<Vec<Transaction>>>,
}

impl Handler for TxServer {
    fn on_inv(&self, peer: &Peer, inv: Vec<Inventory>) {
        if self.answering != Answering::Ignores {
            let _ = peer.queue_message(&Message::GetData(inv));
        }
    }
    fn on_tx(&self, peer: &Peer, tx: Transaction) {
        if self.answering == Answering::Rejects {
            let reject = Reject {
                message: "tx".into(),
                code: RejectCode::INVALID,
                reason: "bad-txns".into(),
                hash: Some(tx.compute_txid().to_byte_array()),
            };
            let _ = peer.queue_message(&Message::Reject(reject));
        }
        self.got.lock().unwrap().push(tx);
    }
}

#[tokio::test(start_paused = true)]
async fn r_a_broadcast_reports_requested_not_requested_and_rejected() {
    let tx = samples::tx();
    for (answering, expected) in [
        (Answering::Asks, BroadcastOutcome::Requested),
        (Answering::Ignores, BroadcastOutcome::NotRequested),
        (Answering::Rejects, BroadcastOutcome::Rejected { code: RejectCode::INVALID, reason: "bad-txns".into() }),
    ] {
        let server = TxServer { answering, got: Arc::default() };
        let (client, _s, _rx) = pair(server.clone(), ServiceFlags::NETWORK | ServiceFlags::WITNESS).await;
        let outcome = client.broadcast_transaction(tx.clone()).await.unwrap();
        assert_eq!(outcome, expected);
        let got = server.got.lock().unwrap().clone();
        assert_eq!(got.len(), usize::from(answering != Answering::Ignores));
        if let Some(served) = got.first() {
            assert_eq!(served.compute_wtxid(), tx.compute_wtxid(), "served with its witness (asked by wtxid)");
        }
    }
}

/// Serves one transaction by txid.
struct OneTx(Transaction);

impl Handler for OneTx {
    fn on_getdata(&self, peer: &Peer, items: Vec<Inventory>) {
        for item in items {
            match item {
                Inventory::WitnessTx(t) | Inventory::Tx(t) if t == self.0.compute_txid() => {
                    let _ = peer.queue_message(&Message::Tx(self.0.clone()));
                }
                other => {
                    let _ = peer.queue_message(&Message::NotFound(vec![other]));
                }
            }
        }
    }
}

#[tokio::test]
async fn r_a_get_transaction_by_txid_and_notfound() {
    let tx = samples::tx();
    let (client, _s, _rx) = pair(OneTx(tx.clone()), ServiceFlags::NETWORK | ServiceFlags::WITNESS).await;
    let got = within(client.get_transaction(tx.compute_txid())).await.unwrap();
    assert_eq!(got, tx);
    let missing = within(client.get_transaction(Txid::from_byte_array([9; 32]))).await;
    assert_eq!(missing.unwrap_err(), RequestError::NotFound);
}

/// Answers a `getdata` for a filtered block with its `merkleblock` (every transaction matched).
struct Merkle(Arc<SyntheticChain>);

impl Handler for Merkle {
    fn on_getdata(&self, peer: &Peer, items: Vec<Inventory>) {
        for item in items {
            if let Inventory::FilteredBlock(h) = item {
                let block = self.0.block(self.0.height_of(&h).unwrap());
                let m = btcpeer::bitcoin::MerkleBlock::from_block_with_predicate(block, |_| true);
                let _ = peer.queue_message(&Message::MerkleBlock(m));
            }
        }
    }
}

#[tokio::test]
async fn r_a_get_merkle_block_returns_the_filtered_block() {
    let chain = chain(10);
    let (client, _s, _rx) = pair(Merkle(chain.clone()), ServiceFlags::NETWORK | ServiceFlags::BLOOM).await;
    let m = within(client.get_merkle_block(chain.hash(4))).await.unwrap();
    assert_eq!(m.header.block_hash(), chain.hash(4));
    let (mut matches, mut indexes) = (Vec::new(), Vec::new());
    m.extract_matches(&mut matches, &mut indexes).unwrap();
    assert_eq!(matches, vec![chain.block(4).txdata[0].compute_txid()]);
}

/// Item 15: a `headers` that does not start on the locator is an announcement, not the answer:
/// it reaches the handler and the request waits for its own answer. An answer that starts on the
/// locator but does not connect is refused (Core: `ProcessHeadersMessage`, "non-continuous headers
/// sequence").
#[tokio::test(start_paused = true)]
async fn r_a_get_headers_takes_only_headers_that_start_on_its_locator() {
    let chain = chain(30);
    let (rec, mut rx) = recorder();
    let (client, mut remote) = common::outbound_to_remote(quiet().build().unwrap(), rec);
    common::within_simulated(60, remote.accept_handshake(70016)).await;
    within(client.handshake()).await.unwrap();
    let request = tokio::spawn({
        let (client, locator) = (client.clone(), chain.hash(10));
        async move { client.get_headers(&[locator], BlockHash::all_zeros()).await }
    });
    let Some(Message::GetHeaders(_)) = common::within_simulated(60, remote.recv_untimed()).await else {
        panic!("getheaders sent")
    };
    // An announcement of block 25 (its parent is not in the locator) comes first.
    remote.send(&Message::Headers(vec![chain.block(25).header])).await;
    let answer: Vec<_> = (11..20).map(|h| chain.block(h).header).collect();
    remote.send(&Message::Headers(answer.clone())).await;
    let got = within(request).await.unwrap().unwrap();
    assert_eq!(got, answer);
    let announced = common::next_message(&mut rx, |m| matches!(m, Message::Headers(_))).await;
    assert!(matches!(announced, Message::Headers(h) if h == vec![chain.block(25).header]));

    // Starts on the locator, then a gap: the answer is refused with a reason.
    let request = tokio::spawn({
        let (client, locator) = (client.clone(), chain.hash(10));
        async move { client.get_headers(&[locator], BlockHash::all_zeros()).await }
    });
    let Some(Message::GetHeaders(_)) = common::within_simulated(60, remote.recv_untimed()).await else {
        panic!("getheaders sent")
    };
    let gapped = vec![chain.block(11).header, chain.block(13).header];
    remote.send(&Message::Headers(gapped)).await;
    assert!(matches!(within(request).await.unwrap(), Err(RequestError::InvalidAnswer(_))));
}

/// Item 15: a one-address `addr` (a remote announcing itself, or relaying one address, as Core
/// does unasked) is not taken as the answer to `getaddr`.
#[tokio::test(start_paused = true)]
async fn r_a_get_addr_leaves_a_single_address_announcement_to_the_handler() {
    let (rec, mut rx) = recorder();
    let (client, mut remote) = common::outbound_to_remote(quiet().build().unwrap(), rec);
    common::within_simulated(60, remote.accept_handshake(70016)).await;
    within(client.handshake()).await.unwrap();
    let request = tokio::spawn({
        let client = client.clone();
        async move { client.get_addr().await }
    });
    loop {
        match common::within_simulated(60, remote.recv_untimed()).await {
            Some(Message::GetAddr) => break,
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    let entry = |n: u8| {
        let socket = std::net::SocketAddr::from(([10, 0, 0, n], 8333));
        (1_700_000_000u32, btcpeer::bitcoin::p2p::Address::new(&socket, ServiceFlags::NETWORK))
    };
    remote.send(&Message::Addr(vec![entry(99)])).await;
    remote.send(&Message::Addr(vec![entry(1), entry(2), entry(3)])).await;
    let addrs = within(request).await.unwrap().unwrap();
    let got: Vec<_> = addrs.iter().map(|a| a.addr.clone()).collect();
    let wanted: Vec<_> = (1..=3).map(|n| AddrV2::Ipv4(std::net::Ipv4Addr::new(10, 0, 0, n))).collect();
    assert_eq!(got, wanted);
    let single = common::next_message(&mut rx, |m| matches!(m, Message::Addr(_))).await;
    assert!(matches!(single, Message::Addr(a) if a.len() == 1));
}

/// Item 16: more requests than the 1,024 that may wait at once are not failed: the rest wait for
/// a slot and all are answered.
#[tokio::test(start_paused = true)]
async fn r_a_requests_beyond_1024_in_flight_wait_for_a_slot() {
    let chain = chain(5);
    let (client, _server, _rx) = pair(Slow(chain.clone()), ServiceFlags::NETWORK | ServiceFlags::WITNESS).await;
    let hash = chain.hash(3);
    let all = common::within_simulated(
        120,
        concurrently(&client, 0..1_100, move |p, _| async move { p.get_block(hash).await.map(|b| b.block_hash()) }),
    )
    .await;
    let failed: Vec<_> = all.iter().filter(|r| r.is_err()).collect();
    assert!(failed.is_empty(), "{} of 1,100 failed: {:?}", failed.len(), failed.first());
}

/// Asks for an announced transaction twice: by wtxid, then again by txid (`MSG_TX`) at once.
#[derive(Clone, Default)]
struct AsksTwice {
    got: Arc<Mutex<Vec<Transaction>>>,
}

impl Handler for AsksTwice {
    fn on_inv(&self, peer: &Peer, inv: Vec<Inventory>) {
        let _ = peer.queue_message(&Message::GetData(inv));
        let again = Inventory::Tx(samples::tx().compute_txid());
        let _ = peer.queue_message(&Message::GetData(vec![again]));
    }
    fn on_tx(&self, _peer: &Peer, tx: Transaction) {
        self.got.lock().unwrap().push(tx);
    }
}

/// Item 17: a second `getdata` for the broadcast transaction during its reject window is served
/// (without witnesses, as `MSG_TX` asks), not swallowed.
#[tokio::test(start_paused = true)]
async fn r_a_broadcast_serves_a_second_getdata_during_the_reject_window() {
    let tx = samples::tx();
    let server = AsksTwice::default();
    let (client, _s, _rx) = pair(server.clone(), ServiceFlags::NETWORK | ServiceFlags::WITNESS).await;
    assert_eq!(client.broadcast_transaction(tx.clone()).await.unwrap(), BroadcastOutcome::Requested);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = server.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "both getdatas served");
    assert_eq!(got[0].compute_wtxid(), tx.compute_wtxid());
    assert_eq!(got[1].compute_txid(), tx.compute_txid());
    assert!(got[1].input.iter().all(|i| i.witness.is_empty()), "MSG_TX: without witnesses");
}

/// Part B (issue 22): a full outbound queue is `RequestError::Queue(QueueError::Full)`, which names
/// the limit (no separate `QueueFull`); the request leaves nothing registered.
#[tokio::test]
async fn r_a_a_full_queue_is_queue_error_full_naming_the_limit() {
    let (client, mut remote) = common::outbound_to_remote(quiet().max_queue_bytes(4_096).build().unwrap(), NoopHandler);
    within(remote.accept_handshake(70016)).await;
    within(client.handshake()).await.unwrap();
    // The remote reads no more: the stream's buffer fills, then the queue (a bounded loop).
    let filler = Message::FilterAdd(btcpeer::wire::FilterAdd { data: vec![0; 500] });
    let mut full = false;
    for _ in 0..10_000 {
        if client.queue_message(&filler).is_err() {
            full = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(full, "the queue filled");
    // To the brim (a ping's frame is 32 bytes; the getdata below is 61).
    for n in 0..200 {
        if client.queue_message(&Message::Ping(n)).is_err() {
            break;
        }
    }
    let err = client.get_block(BlockHash::all_zeros()).await.unwrap_err();
    assert!(matches!(err, RequestError::Queue(btcpeer::peer::QueueError::Full { limit: 4_096, .. })), "{err:?}");
    assert!(client.is_connected());
    drop(remote);
}

/// Item 16: callers waiting for one of the 1,024 slots learn the peer's end at once.
#[tokio::test(start_paused = true)]
async fn r_a_requests_waiting_for_a_slot_end_with_the_disconnect() {
    let (client, server, _rx) = pair(NoopHandler, ServiceFlags::NETWORK).await;
    let waiting: Vec<_> = (0..1_100u32)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { client.get_block(BlockHash::from_byte_array([(n % 251) as u8; 32])).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.disconnect();
    for w in waiting {
        let err = common::within_simulated(10, w).await.unwrap().unwrap_err();
        assert!(matches!(err, RequestError::Disconnected(_)), "{err:?}");
    }
}
