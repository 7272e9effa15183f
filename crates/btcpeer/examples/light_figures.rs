//! Figures for `btcpeer::light`: syncing a 10,000-block regtest chain served over 127.0.0.1 (three
//! peers), each stage beside a baseline measured in the same run over the same link (raw
//! `get_headers` / `get_cfheaders` / `get_cfilters_of` / `get_block` from one peer, and the machine's
//! sha256d rate on 80-byte headers).
//!
//! ```sh
//! cargo run --release -p btcpeer --example light_figures [-- BLOCKS]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use btcpeer::bitcoin::hashes::{Hash, sha256d};
use btcpeer::bitcoin::{Amount, BlockHash, ScriptBuf};
use btcpeer::light::{LightClient, LightEvent, Stage};
use btcpeer::network::Network;
use btcpeer::peer::{NoopHandler, Peer, PeerConfig};
use btcpeer::testing::{ChainBuilder, ChainServer, serve};

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let blocks: usize = std::env::args().nth(1).map_or(Ok(10_000), |a| a.parse())?;
    let watched = ScriptBuf::from_hex("00140101010101010101010101010101010101010101")?;
    let mut b = ChainBuilder::new(btcpeer::bitcoin::Network::Regtest);
    let mut matched = 0usize;
    while b.height() + 1 < blocks {
        b.mine(9.min(blocks - b.height() - 1));
        if b.height() + 1 < blocks {
            b.pay(&watched, Amount::from_sat(1_000));
            matched += 1;
        }
    }
    let chain = Arc::new(b.build());
    let tip = chain.len() - 1;
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let (addr, _task) = serve("127.0.0.1:0", Network::REGTEST, ChainServer::new(chain.clone())).await?;
        addrs.push(addr.to_string());
    }
    println!("chain: {} blocks, {matched} paying the watched script; 3 peers on 127.0.0.1", chain.len());

    // Baseline: sha256d of 80-byte headers.
    let header = btcpeer::bitcoin::consensus::serialize(&chain.block(1).header);
    let started = Instant::now();
    let mut acc = 0u8;
    for i in 0..200_000u32 {
        let mut h = header.clone();
        h[76..80].copy_from_slice(&i.to_le_bytes());
        acc ^= sha256d::Hash::hash(&h).to_byte_array()[0];
    }
    let sha = rate(200_000, started.elapsed());
    println!("baseline sha256d (80 bytes): {sha:.0}/s (x{acc})");

    // Baseline: the header chain's checks alone (btcpeer_core::chain), in batches of 2,000.
    let all: Vec<_> = (1..=tip).map(|h| chain.block(h).header).collect();
    let mut hc = btcpeer::core::chain::HeaderChain::new(btcpeer::core::chain::ChainParams::new(
        btcpeer::bitcoin::Network::Regtest,
    ));
    let started = Instant::now();
    for batch in all.chunks(2_000) {
        hc.connect_headers(batch, 2_000_000_000)?;
    }
    println!("baseline HeaderChain::connect_headers: {:.0}/s", rate(tip, started.elapsed()));

    // Baselines over the link: one peer, raw requests, in order.
    let config = PeerConfig::builder(Network::REGTEST).build()?;
    let (peer, _) = Peer::connect(&addrs[0], config, NoopHandler).await?;
    let started = Instant::now();
    let mut locator = vec![chain.hash(0)];
    let mut got = 0;
    loop {
        let h = peer.get_headers(&locator, BlockHash::all_zeros()).await?;
        let Some(last) = h.last() else { break };
        got += h.len();
        locator = vec![last.block_hash()];
        if h.len() < 2_000 {
            break;
        }
    }
    let raw_headers = rate(got, started.elapsed());
    let started = Instant::now();
    let mut start = 0;
    while start <= tip {
        let stop = (start + 1_999).min(tip);
        peer.get_cfheaders(0, start as u32, chain.hash(stop)).await?;
        start = stop + 1;
    }
    let raw_fh = rate(tip + 1, started.elapsed());
    let started = Instant::now();
    let mut start = 0;
    while start <= tip {
        let stop = (start + 999).min(tip);
        let blocks: Vec<BlockHash> = (start..=stop).map(|h| chain.hash(h)).collect();
        peer.get_cfilters_of(0, start as u32, &blocks).await?;
        start = stop + 1;
    }
    let raw_filters = rate(tip + 1, started.elapsed());
    let started = Instant::now();
    for h in (10..=tip).step_by(10) {
        peer.get_block(chain.hash(h)).await?;
    }
    let raw_blocks = rate(tip / 10, started.elapsed());
    peer.disconnect();

    // The light client, twice: watching a script never paid (no block to fetch), then the paid one.
    let idle = sync(&addrs, ScriptBuf::from_hex("00140202020202020202020202020202020202020202")?).await?;
    let paid = sync(&addrs, watched).await?;
    let headers_s = rate(tip, paid.headers);
    let fh_s = rate(tip + 1, paid.filter_headers);
    let filters_s = rate(tip + 1, idle.scan);
    let blocks_s = rate(matched, paid.scan.saturating_sub(idle.scan));
    println!(
        "light sync: {} payments found in {:.0} ms (3 peers, {:.1} ms of it connecting)",
        paid.found,
        paid.total.as_secs_f64() * 1e3,
        paid.connect.as_secs_f64() * 1e3
    );
    println!("  headers        {headers_s:>10.0}/s   raw get_headers   {raw_headers:>10.0}/s");
    println!("  filter headers {fh_s:>10.0}/s   raw get_cfheaders {raw_fh:>10.0}/s   (cross-checked)");
    println!("  filters        {filters_s:>10.0}/s   raw get_cfilters_of {raw_filters:>10.0}/s");
    println!(
        "  blocks         {blocks_s:>10.0}/s   raw get_block     {raw_blocks:>10.0}/s   (matched blocks: scan time over the idle scan's)"
    );
    Ok(())
}

/// How long each stage of one light sync took.
struct Sync {
    headers: Duration,
    filter_headers: Duration,
    connect: Duration,
    scan: Duration,
    total: Duration,
    found: usize,
}

async fn sync(addrs: &[String], watched: ScriptBuf) -> Result<Sync, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let builder = LightClient::builder(Network::REGTEST).peers(addrs.to_vec()).watch([watched]).event_capacity(1);
    let mut client = builder.build()?.start()?;
    let (mut connected, mut headers_done, mut fh_done, mut found) = (started, started, started, 0usize);
    while let Some(event) = client.next_event().await {
        match event {
            // The headers stage starts once the peers are connected (v2 handshakes first).
            LightEvent::PeerConnected { .. } => connected = Instant::now(),
            LightEvent::Progress { stage: Stage::Headers, .. } => headers_done = Instant::now(),
            LightEvent::Progress { stage: Stage::FilterHeaders, .. } => fh_done = Instant::now(),
            LightEvent::Tx(_) => found += 1,
            LightEvent::Synced { .. } => break,
            LightEvent::Stopped(e) => return Err(e.into()),
            _ => {}
        }
    }
    let end = Instant::now();
    Ok(Sync {
        headers: headers_done - connected,
        filter_headers: fh_done - headers_done,
        connect: connected - started,
        scan: end - fh_done,
        total: end - started,
        found,
    })
}
