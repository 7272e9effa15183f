//! R-S5 with R-V4 in use: a client syncs several thousand headers from a btcpeer-based peer that
//! serves a chain in batches of 2,000, with getheaders' stall deadline armed throughout.

mod common;

use std::sync::Arc;

use btcpeer::bitcoin::hashes::Hash;
use btcpeer::bitcoin::{BlockHash, Network as BitcoinNetwork};
use btcpeer::peer::{Direction, Peer, PeerEvent};
use btcpeer::testing::{ChainServer, SyntheticChain};
use btcpeer::wire::Message;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_s5_headers_sync_from_a_btcpeer_chain_server_in_batches_of_2000() {
    let chain = Arc::new(SyntheticChain::new(BitcoinNetwork::Regtest, 5_000));
    let (a, b) = tokio::io::duplex(1 << 20);
    let server = Peer::inbound(config(), "127.0.0.1:50000", ChainServer::new(chain.clone()));
    server.associate(b).unwrap();
    let (client, mut events) = Peer::with_channel(config(), Direction::Outbound, "127.0.0.1:18444", 16);
    client.associate(a).unwrap();
    let info = within(client.handshake()).await.unwrap();
    assert_eq!(info.version.start_height, 4_999, "the server reports its tip height");

    let mut tip = chain.hash(0);
    let mut batches = Vec::new();
    loop {
        let _ = client.push_getheaders(vec![tip], BlockHash::all_zeros()).unwrap().expect("not a duplicate");
        let headers = loop {
            match within(events.recv()).await.expect("open") {
                PeerEvent::Message { message: Message::Headers(h), .. } => break h,
                PeerEvent::Disconnected(r) => panic!("disconnected: {r}"),
                _ => {}
            }
        };
        for h in &headers {
            assert_eq!(h.prev_blockhash, tip, "each header connects to the previous one");
            assert!(h.validate_pow(h.target()).is_ok(), "valid regtest proof of work");
            tip = h.block_hash();
        }
        batches.push(headers.len());
        if headers.len() < 2_000 {
            break;
        }
    }
    assert_eq!(batches, vec![2_000, 2_000, 999]);
    assert_eq!(tip, chain.tip());
    assert_eq!(client.stats().pending_requests, 0, "every getheaders was answered");
    client.disconnect();
    within(server.wait_for_disconnect()).await;
}
