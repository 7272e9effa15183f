//! `btcpeer::light` against btcpeer-served chains over loopback: payments and spends found, a reorg
//! reported, lying and withholding peers dropped while the honest ones finish the sync, a restart
//! resuming from the data directory. Every wait is bounded.

use std::sync::Arc;
use std::time::Duration;

use btcpeer::bitcoin::{Amount, BlockHash, OutPoint, ScriptBuf, Txid};
use btcpeer::light::{LightClient, LightClientBuilder, LightEvent, LightHandle, TxKind};
use btcpeer::network::Network;
use btcpeer::testing::{ChainBuilder, ChainServer, Misbehaviour, SyntheticChain, serve};

const WAIT: Duration = Duration::from_secs(60);

fn script(tag: u8) -> ScriptBuf {
    let mut bytes = vec![0x00, 0x14];
    bytes.extend([tag; 20]);
    ScriptBuf::from_bytes(bytes)
}

/// A chain of about `len` blocks: payments to `watched` at three heights (one of them spent later),
/// a payment to another script, empty blocks around.
struct Wallet {
    chain: Arc<SyntheticChain>,
    paid: Vec<OutPoint>,
    spend: Txid,
}

fn wallet_chain(len: usize) -> Wallet {
    let watched = script(1);
    let mut b = ChainBuilder::new(bitcoin::Network::Regtest);
    b.mine(40);
    let a = b.pay(&watched, Amount::from_sat(10_000));
    b.mine(30);
    b.pay(&script(2), Amount::from_sat(5_000));
    let c = b.pay(&watched, Amount::from_sat(20_000));
    b.mine(100);
    let spend = b.spend(a, &script(3));
    b.mine(len.saturating_sub(b.height() + 2));
    let d = b.pay(&watched, Amount::from_sat(30_000));
    Wallet { chain: Arc::new(b.build()), paid: vec![a, c, d], spend }
}

async fn serve_all(servers: &[ChainServer]) -> Vec<String> {
    let mut addrs = Vec::new();
    for s in servers {
        let (addr, _task) = serve("127.0.0.1:0", Network::REGTEST, s.clone()).await.expect("binds");
        addrs.push(addr.to_string());
    }
    addrs
}

fn client(addrs: &[String]) -> LightClientBuilder {
    LightClient::builder(Network::REGTEST)
        .peers(addrs.to_vec())
        .watch([script(1)])
        .request_timeout(Duration::from_secs(2))
}

/// Events until (and with) the first `Synced` or `Stopped`.
async fn until_synced(handle: &mut LightHandle) -> Vec<LightEvent> {
    let mut events = Vec::new();
    let done = tokio::time::timeout(WAIT, async {
        while let Some(e) = handle.next_event().await {
            let last = matches!(e, LightEvent::Synced { .. } | LightEvent::Stopped(_));
            events.push(e);
            if last {
                break;
            }
        }
    })
    .await;
    assert!(done.is_ok(), "no sync within {WAIT:?}: {events:#?}");
    events
}

fn received(events: &[LightEvent]) -> Vec<(Txid, u32, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            LightEvent::Tx(t) => match &t.kind {
                TxKind::Received { vout, value, .. } => Some((t.txid, *vout, value.to_sat())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn spent(events: &[LightEvent]) -> Vec<(Txid, OutPoint)> {
    events
        .iter()
        .filter_map(|e| match e {
            LightEvent::Tx(t) => match &t.kind {
                TxKind::Spent { outpoint, .. } => Some((t.txid, *outpoint)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn synced(events: &[LightEvent]) -> Option<(u32, BlockHash)> {
    events.iter().find_map(|e| match e {
        LightEvent::Synced { height, tip } => Some((*height, *tip)),
        _ => None,
    })
}

fn dropped(events: &[LightEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            LightEvent::PeerDropped { addr, reason } => Some((addr.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

fn assert_found_the_wallet(w: &Wallet, events: &[LightEvent]) {
    let got = received(events);
    let want: Vec<_> = w.paid.iter().map(|o| o.txid).collect();
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), want, "{events:#?}");
    assert_eq!(got.iter().map(|g| g.2).collect::<Vec<_>>(), vec![10_000, 20_000, 30_000]);
    assert_eq!(spent(events), vec![(w.spend, w.paid[0])]);
    let tip = w.chain.len() - 1;
    assert_eq!(synced(events), Some((tip as u32, w.chain.tip())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn light_client_finds_every_payment_and_spend_from_three_peers() {
    let w = wallet_chain(3_000);
    let servers: Vec<_> = (0..3).map(|_| ChainServer::new(w.chain.clone())).collect();
    let addrs = serve_all(&servers).await;
    let mut handle = client(&addrs).build().expect("builds").start().expect("starts");
    let events = until_synced(&mut handle).await;
    assert_found_the_wallet(&w, &events);
    assert!(dropped(&events).is_empty(), "{events:#?}");
    let connected = events.iter().filter(|e| matches!(e, LightEvent::PeerConnected { .. })).count();
    assert_eq!(connected, 3);
    // Only the blocks that matched were downloaded: the three payments and the spend.
    let blocks: u64 = servers.iter().map(|s| s.requests().blocks).sum();
    assert_eq!(blocks, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_checkpoints_disagree_with_the_majority_is_dropped_before_its_filter_headers_are_used() {
    let w = wallet_chain(2_500);
    let liar = ChainServer::misbehaving(w.chain.clone(), Misbehaviour::WrongFilterHeaders);
    let servers = vec![ChainServer::new(w.chain.clone()), liar, ChainServer::new(w.chain.clone())];
    let addrs = serve_all(&servers).await;
    let mut handle = client(&addrs).build().expect("builds").start().expect("starts");
    let events = until_synced(&mut handle).await;
    assert_found_the_wallet(&w, &events);
    let d = dropped(&events);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].0, addrs[1]);
    assert!(d[0].1.contains("filter checkpoint at height 1000 disagrees with the majority"), "{d:?}");
    // Its `cfcheckpt` gave it away: it was never asked for filter headers.
    assert_eq!(servers[1].requests().cfheaders, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_against_one_on_checkpoints_the_block_decides_who_lied_about_filter_headers() {
    let w = wallet_chain(2_500);
    let liar = ChainServer::misbehaving(w.chain.clone(), Misbehaviour::WrongFilterHeaders);
    let servers = vec![ChainServer::new(w.chain.clone()), liar];
    let addrs = serve_all(&servers).await;
    let mut handle = client(&addrs).target_peers(2).build().expect("builds").start().expect("starts");
    let events = until_synced(&mut handle).await;
    assert_found_the_wallet(&w, &events);
    let d = dropped(&events);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].0, addrs[1]);
    assert!(d[0].1.contains("contradicted by block 0"), "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_serving_wrong_filters_is_dropped() {
    let w = wallet_chain(1_500);
    let servers =
        vec![ChainServer::misbehaving(w.chain.clone(), Misbehaviour::WrongFilters), ChainServer::new(w.chain.clone())];
    let addrs = serve_all(&servers).await;
    // A long request timeout: the wrong filter is seen when it comes, not when the request expires.
    let started = std::time::Instant::now();
    let builder = client(&addrs).target_peers(2).request_timeout(Duration::from_secs(60));
    let mut handle = builder.build().expect("builds").start().expect("starts");
    let events = until_synced(&mut handle).await;
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert_found_the_wallet(&w, &events);
    let d = dropped(&events);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].1.contains("does not match its filter header"), "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_withholding_filters_is_dropped() {
    let w = wallet_chain(1_500);
    let servers = vec![
        ChainServer::misbehaving(w.chain.clone(), Misbehaviour::WithholdFilters),
        ChainServer::new(w.chain.clone()),
    ];
    let addrs = serve_all(&servers).await;
    let mut handle = client(&addrs).target_peers(2).build().expect("builds").start().expect("starts");
    let events = until_synced(&mut handle).await;
    assert_found_the_wallet(&w, &events);
    let d = dropped(&events);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].1.contains("withheld filters"), "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_honest_peer_left_stops_the_client_with_the_reasons() {
    let w = wallet_chain(500);
    let servers = vec![ChainServer::misbehaving(w.chain.clone(), Misbehaviour::WrongFilters)];
    let addrs = serve_all(&servers).await;
    let mut handle = client(&addrs).build().expect("builds").start().expect("starts");
    let events = until_synced(&mut handle).await;
    match events.last() {
        Some(LightEvent::Stopped(btcpeer::light::LightError::NoHonestPeer(reasons))) => {
            assert!(reasons[0].contains("does not match its filter header"), "{reasons:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_to_a_heavier_fork_is_reported_and_its_payments_found() {
    let w = wallet_chain(600);
    let server = ChainServer::new(w.chain.clone());
    let addrs = serve_all(std::slice::from_ref(&server)).await;
    let mut handle = client(&addrs).build().expect("builds").start().expect("starts");
    let events = until_synced(&mut handle).await;
    assert_eq!(received(&events).len(), 3);

    // A fork from 5 blocks below the tip that drops the last payment and pays again, longer.
    let fork_at = w.chain.len() - 6;
    let mut fork = ChainBuilder::fork(&w.chain, fork_at, 9);
    fork.mine(3);
    let again = fork.pay(&script(1), Amount::from_sat(40_000));
    fork.mine(4);
    let fork = Arc::new(fork.build());
    server.reorg(fork.clone());
    let events = until_synced(&mut handle).await;
    let disconnected: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            LightEvent::BlockDisconnected { height, .. } => Some(*height),
            _ => None,
        })
        .collect();
    assert_eq!(disconnected, ((fork_at as u32 + 1)..w.chain.len() as u32).rev().collect::<Vec<_>>());
    let reorg = events.iter().find_map(|e| match e {
        LightEvent::Reorg { fork_height, new_tip, .. } => Some((*fork_height, *new_tip)),
        _ => None,
    });
    assert_eq!(reorg, Some((fork_at as u32, fork.tip())));
    assert_eq!(received(&events).iter().map(|r| r.0).collect::<Vec<_>>(), vec![again.txid]);
    assert_eq!(synced(&events), Some((fork.len() as u32 - 1, fork.tip())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_data_directory() {
    let w = wallet_chain(4_500);
    let dir = std::env::temp_dir().join(format!("btcpeer-light-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = ChainServer::new(w.chain.clone());
    let addrs = serve_all(std::slice::from_ref(&server)).await;

    // First run: stop once some filter headers are in.
    let mut handle = client(&addrs).data_dir(&dir).build().expect("builds").start().expect("starts");
    tokio::time::timeout(WAIT, async {
        while let Some(e) = handle.next_event().await {
            if matches!(e, LightEvent::Progress { stage: btcpeer::light::Stage::FilterHeaders, .. }) {
                break;
            }
        }
    })
    .await
    .expect("filter headers in time");
    handle.shutdown();
    let first = server.requests();

    // A torn tail, as a crash mid-write leaves.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("headers.dat"))
        .expect("file")
        .write_all(&[7; 33])
        .expect("w");

    let c = client(&addrs).data_dir(&dir).build().expect("builds");
    assert_eq!(c.tip_height() as usize, w.chain.len() - 1, "the headers were kept");
    assert!(c.repaired().is_some_and(|r| r.contains("torn")), "{:?}", c.repaired());
    // The filter headers of the first run were kept (a batch of 2,000 at least).
    assert!(c.filter_header_height().is_some_and(|h| h >= 1_999), "{:?}", c.filter_header_height());
    let mut handle = c.start().expect("starts");
    let events = until_synced(&mut handle).await;
    assert_found_the_wallet(&w, &events);
    let second = server.requests();
    // The restart asked once for headers (nothing new).
    assert_eq!(second.headers - first.headers, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_on_a_shorter_branch_is_left_out_not_dropped() {
    let w = wallet_chain(700);
    let mut behind = ChainBuilder::fork(&w.chain, w.chain.len() - 20, 5);
    behind.mine(3);
    let servers = vec![ChainServer::new(w.chain.clone()), ChainServer::new(Arc::new(behind.build()))];
    let addrs = serve_all(&servers).await;
    let mut handle = client(&addrs).target_peers(2).build().expect("builds").start().expect("starts");
    let events = until_synced(&mut handle).await;
    assert_found_the_wallet(&w, &events);
    assert!(dropped(&events).is_empty(), "{:?}", dropped(&events));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_more_scripts_at_runtime_rescans_from_the_height_given() {
    let w = wallet_chain(800);
    let addrs = serve_all(&[ChainServer::new(w.chain.clone())]).await;
    let mut handle = client(&addrs).build().expect("builds").start().expect("starts");
    let events = until_synced(&mut handle).await;
    assert_eq!(received(&events).len(), 3);
    // script(2) was paid once, at height 72; a rescan from 0 finds it, from 100 does not.
    handle.watch([script(2)], 100).await;
    let events = until_synced(&mut handle).await;
    assert!(received(&events).iter().all(|r| r.2 != 5_000), "{events:#?}");
    handle.watch([script(2)], 0).await;
    let events = until_synced(&mut handle).await;
    let found: Vec<u64> = received(&events).iter().map(|r| r.2).collect();
    assert!(found.contains(&5_000), "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_sends_the_transaction_to_every_peer_and_says_what_each_did() {
    let w = wallet_chain(300);
    let servers = vec![ChainServer::new(w.chain.clone()), ChainServer::new(w.chain.clone())];
    let addrs = serve_all(&servers).await;
    let mut handle = client(&addrs).target_peers(2).build().expect("builds").start().expect("starts");
    until_synced(&mut handle).await;
    let tx = w.chain.block(w.chain.len() - 1).txdata[1].clone();
    let outcomes = tokio::time::timeout(WAIT, handle.broadcast(tx.clone())).await.expect("in time");
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(outcomes.iter().all(|(_, o)| *o == Ok(btcpeer::peer::BroadcastOutcome::Requested)), "{outcomes:?}");
    for s in &servers {
        assert_eq!(s.transactions(), vec![tx.clone()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_hiding_spends_loses_a_one_to_one_dispute_and_the_spend_is_found() {
    let w = wallet_chain(400);
    let servers =
        vec![ChainServer::misbehaving(w.chain.clone(), Misbehaviour::OmitSpends), ChainServer::new(w.chain.clone())];
    let addrs = serve_all(&servers).await;
    let mut handle = client(&addrs).target_peers(2).build().expect("builds").start().expect("starts");
    let events = until_synced(&mut handle).await;
    assert_found_the_wallet(&w, &events);
    let d = dropped(&events);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].0, addrs[0]);
    assert!(d[0].1.contains("omits elements"), "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nothing_watched_no_filter_is_fetched_until_a_watch() {
    let w = wallet_chain(300);
    let server = ChainServer::new(w.chain.clone());
    let addrs = serve_all(std::slice::from_ref(&server)).await;
    let builder = LightClient::builder(Network::REGTEST).peers(addrs.clone());
    let mut handle = builder.build().expect("builds").start().expect("starts");
    let events = until_synced(&mut handle).await;
    assert_eq!(synced(&events), Some((w.chain.len() as u32 - 1, w.chain.tip())));
    assert_eq!(server.requests().cfilters, 0);
    handle.watch([script(1)], 0).await;
    let events = until_synced(&mut handle).await;
    assert_found_the_wallet(&w, &events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_compact_filters_is_a_line_and_the_sync_goes_on() {
    use btcpeer::peer::{NonceRegistry, PeerConfig};
    let w = wallet_chain(300);
    let plain = PeerConfig::builder(Network::REGTEST).nonce_registry(NonceRegistry::new()).build().expect("config");
    let (no_filters, _task) =
        btcpeer::testing::serve_with("127.0.0.1:0", plain, ChainServer::new(w.chain.clone())).await.expect("binds");
    let mut addrs = vec![no_filters.to_string()];
    addrs.extend(serve_all(&[ChainServer::new(w.chain.clone())]).await);
    let mut handle = client(&addrs).target_peers(2).build().expect("builds").start().expect("starts");
    let events = until_synced(&mut handle).await;
    assert_found_the_wallet(&w, &events);
    let d = dropped(&events);
    assert_eq!(d, vec![(addrs[0].clone(), "does not serve compact filters (no NODE_COMPACT_FILTERS)".to_string())]);
}
