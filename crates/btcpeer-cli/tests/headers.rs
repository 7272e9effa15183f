//! R-C2 `btcpeer connect --headers`: the binary syncs the headers of a synthetic regtest chain from an
//! in-process btcpeer peer serving it (batches of 2,000), and refuses headers that do not connect.
//! Every wait is bounded. The chain server speaks v1 only (the library's default policy), so
//! `connect` runs with `--transport v1` (with `auto` it would first try v2 and use up a connection).

mod common;

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread;

use btcpeer::bitcoin::Network as BitcoinNetwork;
use btcpeer::network::Network;
use btcpeer::peer::{Handler, NonceRegistry, NoopHandler, Peer, PeerConfig};
use btcpeer::testing::{ChainServer, SyntheticChain};
use btcpeer::wire::Message;
use btcpeer::wire::types::GetHeadersMessage;
use common::{DEADLINE, run, run_json};

/// A regtest peer on 127.0.0.1 that serves `connections` connections, one after another, each with a
/// clone of `handler`; returns `127.0.0.1:PORT` and the thread (which ends once they are all done).
fn serve(handler: impl Handler + Clone, connections: usize) -> (String, thread::JoinHandle<()>) {
    serve_on(Network::REGTEST, handler, connections)
}

/// Like [`serve`], on `network`.
fn serve_on(network: Network, handler: impl Handler + Clone, connections: usize) -> (String, thread::JoinHandle<()>) {
    let (port_tx, port_rx) = std_mpsc::channel();
    let server = thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
            port_tx.send(listener.local_addr().expect("addr").port()).expect("the test waits for the port");
            for _ in 0..connections {
                let (stream, from) = tokio::time::timeout(DEADLINE, listener.accept())
                    .await
                    .expect("a connection in time")
                    .expect("accepts");
                let config =
                    PeerConfig::builder(network.clone()).nonce_registry(NonceRegistry::new()).build().expect("config");
                let peer = Peer::inbound(config, from, handler.clone());
                peer.associate(stream).map_err(|e| e.to_string()).expect("associates");
                // The client hangs up when it is done.
                let _ = tokio::time::timeout(DEADLINE, peer.wait_for_disconnect()).await;
                peer.disconnect();
            }
        });
    });
    let port = port_rx.recv_timeout(DEADLINE).expect("the server's port");
    (format!("127.0.0.1:{port}"), server)
}

#[test]
fn r_c2_connect_headers_fetches_the_whole_chain() {
    let chain = Arc::new(SyntheticChain::new(BitcoinNetwork::Regtest, 5_000));
    let tip = chain.tip().to_string();
    let (addr, server) = serve(ChainServer::new(chain.clone()), 3);

    // JSON.
    let r = run_json(&format!("connect {addr} --network regtest --transport v1 --headers --json --timeout 20"));
    let h = r.of("headers");
    assert_eq!(h.len(), 1, "{r:?}");
    let h = h[0];
    assert_eq!(h["count"], 4_999, "{h}");
    assert_eq!(h["tip"], tip.as_str(), "{h}");
    assert_eq!(h["batches"], 3, "{h}");
    assert!(h["elapsed_ms"].is_u64(), "{h}");
    assert!(h["headers_per_sec"].as_u64().is_some_and(|r| r > 0), "{h}");
    println!("headers event: {h}");
    assert_eq!(r.of("handshake")[0]["start_height"], 4_999);
    let stats = r.of("stats")[0];
    assert_eq!(stats["per_command"]["getheaders"]["messages_sent"], 3, "{stats}");
    assert_eq!(stats["per_command"]["headers"]["messages_received"], 3, "{stats}");
    // handshake, headers, stats, disconnect.
    assert!(r.position("handshake") < r.position("headers"));
    assert!(r.position("headers") < r.position("stats"));
    assert_eq!(r.position("disconnect"), r.events.len() - 1);

    // Human output, with pings after the headers.
    let r = run(&[
        "connect",
        &addr,
        "--network",
        "regtest",
        "--transport",
        "v1",
        "--headers",
        "--ping",
        "2",
        "--timeout",
        "20",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.events.is_empty(), "no JSON without --json: {r:?}");
    let line = r.stdout.iter().position(|l| l.starts_with("headers: ")).unwrap_or_else(|| panic!("{r:?}"));
    let prefix = format!("headers: 4999 in 3 batches, tip {tip}, ");
    assert!(r.stdout[line].starts_with(&prefix), "{r:?}");
    let rate = r.stdout[line].trim_start_matches(&prefix).trim_end_matches(" headers/s");
    assert!(rate.parse::<u64>().is_ok(), "{r:?}");
    println!("human line: {}", r.stdout[line]);
    let handshake = r.stdout.iter().position(|l| l.starts_with("handshake: ")).expect("a handshake line");
    let first_pong = r.stdout.iter().position(|l| l.starts_with("pong: ")).expect("a pong line");
    assert!(handshake < line && line < first_pong, "handshake, headers, pings: {r:?}");

    // With --listen: the headers messages are reported as received, then the listening period.
    let r =
        run(&["connect", &addr, "--network", "regtest", "--transport", "v1", "--headers", "--listen", "0.2", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.of("headers")[0]["count"], 4_999, "{r:?}");
    assert_eq!(r.of("recv").iter().filter(|e| e["command"] == "headers").count(), 3, "{r:?}");

    server.join().expect("the server ran");
}

/// Serves `chain`, with one header of the second batch left out: that batch does not connect.
#[derive(Clone)]
struct Gap(Arc<SyntheticChain>);

impl Handler for Gap {
    fn start_height(&self) -> i32 {
        i32::try_from(self.0.len() - 1).expect("small")
    }

    fn on_getheaders(&self, peer: &Peer, msg: GetHeadersMessage) {
        let mut headers = self.0.headers_after(&msg.locator_hashes, msg.stop_hash, 2_000);
        if self.0.height_of(&msg.locator_hashes[0]) == Some(2_000) {
            headers.remove(500);
        }
        let _ = peer.queue_message(&Message::Headers(headers));
    }
}

#[test]
fn r_c2_connect_headers_refuses_a_chain_that_does_not_connect() {
    // A chain on another network's genesis block: the first header does not connect to regtest's.
    let testnet = Arc::new(SyntheticChain::new(BitcoinNetwork::Testnet, 10));
    let (addr, server) = serve(ChainServer::new(testnet.clone()), 1);
    let r =
        run(&["connect", &addr, "--network", "regtest", "--transport", "v1", "--headers", "--json", "--timeout", "20"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "one line on stderr: {r:?}");
    assert!(r.stderr.starts_with("btcpeer connect: headers batch 1 does not connect: header 1 of 9"), "{r:?}");
    assert!(r.stderr.contains(&testnet.hash(0).to_string()), "names the parent it got: {r:?}");
    assert!(r.of("headers").is_empty(), "{r:?}");
    assert_eq!(r.of("stats").len(), 1, "{r:?}");
    assert_eq!(r.of("disconnect")[0]["kind"], "local_request", "{r:?}");
    server.join().expect("the server ran");

    // A gap in the middle of the second batch.
    let chain = Arc::new(SyntheticChain::new(BitcoinNetwork::Regtest, 5_000));
    let (addr, server) = serve(Gap(chain), 1);
    let r = run(&["connect", &addr, "--network", "regtest", "--transport", "v1", "--headers", "--timeout", "20"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(
        r.stderr.starts_with("btcpeer connect: headers batch 2 does not connect: header 501 of 1999 (height 2501)"),
        "{r:?}"
    );
    assert!(!r.stdout.iter().any(|l| l.starts_with("headers:")), "{r:?}");
    server.join().expect("the server ran");
}

#[test]
fn r_c2_connect_headers_times_out_when_the_remote_does_not_answer_exits_3() {
    // Completes the handshake and ignores getheaders.
    let (addr, server) = serve(NoopHandler, 1);
    let r =
        run(&["connect", &addr, "--network", "regtest", "--transport", "v1", "--headers", "--json", "--timeout", "1"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.stderr.contains("no headers in answer to getheaders 1 within 1s"), "{r:?}");
    assert_eq!(r.of("handshake").len(), 1, "{r:?}");
    assert!(r.of("headers").is_empty(), "{r:?}");
    server.join().expect("the server ran");
}

#[test]
fn r_c2_connect_headers_syncs_where_the_genesis_block_is_unknown_simnet_and_a_custom_magic() {
    // A chain server on simnet and on a custom magic (its chain starts at regtest's genesis block,
    // which btcpeer does not assume for either network): the remote's genesis is learnt from the
    // first header's parent, and every header must connect after it.
    let custom = Network::custom("custom", btcpeer::network::Magic::from_bytes([0x0b, 0xad, 0xca, 0xfe]), 19_999);
    for (network, args) in [(Network::SIMNET, &["--network", "simnet"][..]), (custom, &["--magic", "0badcafe"][..])] {
        let chain = Arc::new(SyntheticChain::new(BitcoinNetwork::Regtest, 4_500));
        let (addr, server) = serve_on(network, ChainServer::new(chain.clone()), 1);
        let mut cmd = vec!["connect", addr.as_str()];
        cmd.extend_from_slice(args);
        cmd.extend_from_slice(&["--transport", "v1", "--headers", "--json", "--timeout", "20"]);
        let r = run(&cmd);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        let h = r.of("headers");
        assert_eq!(h.len(), 1, "{args:?}: {r:?}");
        assert_eq!(h[0]["count"], 4_499, "every header after the remote's genesis: {r:?}");
        assert_eq!(h[0]["tip"], chain.tip().to_string(), "{r:?}");
        assert_eq!(h[0]["batches"], 3, "{r:?}");

        server.join().expect("the server ran");

        // A gap is still refused.
        let (addr, server) = serve_on(network_of(args), Gap(chain), 1);
        let mut cmd = vec!["connect", addr.as_str()];
        cmd.extend_from_slice(args);
        cmd.extend_from_slice(&["--transport", "v1", "--headers", "--timeout", "20"]);
        let r = run(&cmd);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(r.stderr.contains("headers batch 2 does not connect"), "{r:?}");
        server.join().expect("the server ran");
    }
}

fn network_of(args: &[&str]) -> Network {
    if args.contains(&"simnet") {
        Network::SIMNET
    } else {
        Network::custom("custom", btcpeer::network::Magic::from_bytes([0x0b, 0xad, 0xca, 0xfe]), 19_999)
    }
}
