//! `btcpeer scan` against btcpeer-served regtest chains on 127.0.0.1: payments and spends printed
//! as JSON lines, a lying peer and a peer of another network dropped with a line while the honest
//! one finishes, exit 1 when no honest peer is left, a second run resuming from --data-dir.

mod common;

use std::sync::Arc;

use btcpeer::bitcoin::{Address, Amount, OutPoint, ScriptBuf, Txid};
use btcpeer::network::Network;
use btcpeer::testing::{ChainBuilder, ChainServer, Misbehaviour, SyntheticChain};
use common::{run_json, run_line, serve_chains};

fn watched() -> ScriptBuf {
    let mut bytes = vec![0x00, 0x14];
    bytes.extend([7u8; 20]);
    ScriptBuf::from_bytes(bytes)
}

struct Wallet {
    chain: Arc<SyntheticChain>,
    paid: Vec<OutPoint>,
    spend: Txid,
}

fn wallet() -> Wallet {
    let mut b = ChainBuilder::new(btcpeer::bitcoin::Network::Regtest);
    b.mine(30);
    let a = b.pay(&watched(), Amount::from_sat(11_000));
    b.mine(1_200);
    let c = b.pay(&watched(), Amount::from_sat(22_000));
    let spend = b.spend(a, &ScriptBuf::from_bytes(vec![0x51]));
    b.mine(20);
    Wallet { chain: Arc::new(b.build()), paid: vec![a, c], spend }
}

fn address() -> String {
    Address::from_script(&watched(), btcpeer::bitcoin::Network::Regtest).expect("p2wpkh").to_string()
}

#[test]
fn scan_json_prints_payments_spends_and_drops_a_liar_and_a_peer_of_another_network() {
    let w = wallet();
    let addrs = serve_chains(vec![
        (Network::REGTEST, ChainServer::new(w.chain.clone())),
        (Network::REGTEST, ChainServer::misbehaving(w.chain.clone(), Misbehaviour::WrongFilterHeaders)),
        (Network::TESTNET4, ChainServer::new(w.chain.clone())),
    ]);
    let r = run_json(&format!(
        "scan --network regtest --connect {} {} {} --watch {} --json --timeout 5 --transport v1",
        addrs[0],
        addrs[1],
        addrs[2],
        address()
    ));
    let txs = r.of("tx");
    assert_eq!(txs.len(), 3, "{r:?}");
    let (a, c) = (w.paid[0], w.paid[1]);
    assert_eq!(txs[0]["kind"], "received");
    assert_eq!(txs[0]["txid"], a.txid.to_string());
    assert_eq!(txs[0]["vout"], 0);
    assert_eq!(txs[0]["value"], 11_000);
    assert_eq!(txs[0]["height"], 31);
    assert_eq!(txs[0]["block"], w.chain.hash(31).to_string());
    assert_eq!(txs[1]["kind"], "received");
    assert_eq!(txs[1]["txid"], c.txid.to_string());
    assert_eq!(txs[2]["kind"], "spent");
    assert_eq!(txs[2]["txid"], a.txid.to_string(), "the output spent");
    assert_eq!(txs[2]["spending_txid"], w.spend.to_string());
    assert_eq!(txs[2]["value"], 11_000);
    let dropped = r.of("peer_dropped");
    assert_eq!(dropped.len(), 2, "{r:?}");
    let reason_of =
        |addr: &str| dropped.iter().find(|d| d["addr"] == addr).map(|d| d["reason"].as_str().unwrap_or("").to_string());
    assert!(reason_of(&addrs[1]).is_some_and(|r| r.contains("contradicted by block")), "{r:?}");
    assert!(reason_of(&addrs[2]).is_some(), "{r:?}");
    let synced = r.events.last().expect("events");
    assert_eq!(synced["event"], "synced");
    assert_eq!(synced["height"], w.chain.len() - 1);
    assert_eq!(synced["tip"], w.chain.tip().to_string());
    assert_eq!((synced["received"].as_u64(), synced["spent"].as_u64()), (Some(2), Some(1)));
    assert_eq!(synced["unspent_value"], 22_000);
}

#[test]
fn scan_exits_1_with_the_reasons_when_no_honest_peer_is_left() {
    let w = wallet();
    let addrs =
        serve_chains(vec![(Network::REGTEST, ChainServer::misbehaving(w.chain.clone(), Misbehaviour::WrongFilters))]);
    let r = run_line(&format!(
        "scan --network regtest --connect {} --watch {} --json --timeout 2",
        addrs[0],
        watched().to_hex_string()
    ));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no honest peer left") && r.stderr.contains("does not match its filter header"), "{r:?}");
    assert_eq!(r.of("peer_dropped").len(), 1, "{r:?}");
    assert!(r.of("synced").is_empty());
}

#[test]
fn scan_resumes_from_its_data_dir_and_scans_from_a_height() {
    let w = wallet();
    let server = ChainServer::new(w.chain.clone());
    let addrs = serve_chains(vec![(Network::REGTEST, server.clone())]);
    let dir = std::env::temp_dir().join(format!("btcpeer-scan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let line = format!(
        "scan --network regtest --connect {} --watch {} --json --data-dir {}",
        addrs[0],
        watched().to_hex_string(),
        dir.display()
    );
    let first = run_json(&line);
    assert_eq!(first.of("tx").len(), 3);
    let before = server.requests();
    // From height 100: the first payment is below it, so its spend is not seen as one either.
    let second = run_json(&format!("{line} --from 100"));
    let after = server.requests();
    assert_eq!(second.of("tx").len(), 1, "{second:?}");
    assert_eq!(second.of("tx")[0]["txid"], w.paid[1].txid.to_string());
    assert_eq!(second.events.last().map(|e| e["height"].clone()), Some((w.chain.len() - 1).into()));
    // Headers and filter headers came from the data directory: one getheaders (nothing new), no
    // getcfheaders at all.
    assert_eq!(after.headers - before.headers, 1);
    assert_eq!(after.cfheaders, before.cfheaders);
    assert!(after.cfilters > before.cfilters);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scan_refuses_a_watch_that_is_neither_an_address_nor_a_script() {
    let r = run_line("scan --network regtest --connect 127.0.0.1:1 --watch nonsense");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("neither an address nor a script"), "{r:?}");
    let r = run_line("scan --network regtest --connect 127.0.0.1:1 --watch bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4");
    assert_eq!(r.code, 2, "a mainnet address on regtest: {r:?}");
}

#[test]
fn scan_follow_reports_a_reorg_and_the_payments_of_the_new_branch() {
    use std::time::{Duration, Instant};
    let w = wallet();
    let server = ChainServer::new(w.chain.clone());
    let addrs = serve_chains(vec![(Network::REGTEST, server.clone())]);
    let mut child = common::btcpeer()
        .args(["scan", "--network", "regtest", "--connect", &addrs[0], "--watch", &address(), "--json", "--follow"])
        .spawn()
        .expect("starts");
    let lines = common::lines_of(child.stdout.take().expect("stdout"));
    let mut events: Vec<serde_json::Value> = Vec::new();
    let wait_for = |name: &str, events: &mut Vec<serde_json::Value>| {
        let deadline = Instant::now() + common::DEADLINE;
        while Instant::now() < deadline {
            let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) else { continue };
            let e: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
            let done = e["event"] == name;
            events.push(e);
            if done {
                return;
            }
        }
        panic!("no {name} event: {events:?}");
    };
    wait_for("synced", &mut events);
    assert_eq!(events.iter().filter(|e| e["event"] == "tx").count(), 3);

    // A heavier fork from below the second payment: it pays again, and has no spend.
    let fork_at = 1_000;
    let mut fork = ChainBuilder::fork(&w.chain, fork_at, 3);
    let again = fork.pay(&watched(), Amount::from_sat(33_000));
    fork.mine(300);
    let fork = Arc::new(fork.build());
    server.reorg(fork.clone());
    events.clear();
    wait_for("synced", &mut events);
    let _ = child.kill();
    let _ = child.wait();
    let reorg = events.iter().find(|e| e["event"] == "reorg").expect("a reorg event");
    assert_eq!(reorg["fork_height"], fork_at);
    assert_eq!(reorg["new_tip"], fork.tip().to_string());
    assert_eq!(reorg["disconnected"], w.chain.len() - 1 - fork_at);
    let txs: Vec<_> = events.iter().filter(|e| e["event"] == "tx").collect();
    assert_eq!(txs.len(), 1, "{events:?}");
    assert_eq!(txs[0]["txid"], again.txid.to_string());
    let blocks = events.iter().filter(|e| e["event"] == "block").count();
    assert_eq!(blocks, fork.len() - 1 - fork_at);
    let synced = events.last().expect("synced");
    assert_eq!(synced["tip"], fork.tip().to_string());
    // The first payment is unspent again (its spend was in the blocks taken away), the second gone.
    assert_eq!((synced["received"].as_u64(), synced["spent"].as_u64()), (Some(2), Some(0)), "{synced}");
    assert_eq!(synced["unspent_value"], 11_000 + 33_000);
}

#[test]
fn scan_prints_readable_lines_and_a_summary_without_json() {
    let w = wallet();
    let addrs = serve_chains(vec![(Network::REGTEST, ChainServer::new(w.chain.clone()))]);
    let r = run_line(&format!("scan --network regtest --connect {} --watch {}", addrs[0], address()));
    assert_eq!(r.code, 0, "{r:?}");
    let (a, c) = (w.paid[0], w.paid[1]);
    let out = r.stdout.join("\n");
    assert!(out.contains(&format!("received  {}:0 11000 sat at height 31", a.txid)), "{out}");
    assert!(out.contains(&format!("received  {}:0 22000 sat", c.txid)), "{out}");
    assert!(out.contains(&format!("spent     {}:0 11000 sat at height", a.txid)), "{out}");
    let last = r.stdout.last().expect("a summary");
    assert!(last.starts_with(&format!("synced to height {}", w.chain.len() - 1)), "{last}");
    assert!(last.contains("2 outputs received, 1 spent, 22000 sat unspent"), "{last}");
    assert!(r.stderr.is_empty(), "no progress bar off a terminal: {r:?}");
}
