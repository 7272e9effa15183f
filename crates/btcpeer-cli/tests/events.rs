//! Every JSON event a subcommand prints is documented in `crates/btcpeer-cli/EVENTS.md`, under that
//! subcommand. Each subcommand runs once over 127.0.0.1 with small settings; every wait is bounded.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use common::{Listener, run, run_line};

/// The events EVENTS.md lists, by subcommand (`connect`, `listen` …), each with the keys of its
/// `Keys:` line.
fn documented() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/EVENTS.md")).expect("EVENTS.md");
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let (mut section, mut event) = (String::new(), String::new());
    for line in text.lines() {
        if let Some(sub) = line.strip_prefix("## `btcpeer ").and_then(|s| s.strip_suffix('`')) {
            section = sub.to_string();
        } else if let Some(name) = line.strip_prefix("### `").and_then(|s| s.strip_suffix('`')) {
            event = name.to_string();
            out.entry(section.clone()).or_default().entry(event.clone()).or_default();
        } else if let Some(keys) = line.strip_prefix("Keys: ") {
            let listed = out.entry(section.clone()).or_default().entry(event.clone()).or_default();
            listed.extend(keys.split('`').skip(1).step_by(2).map(str::to_string));
        }
    }
    out
}

#[test]
fn every_event_each_subcommand_prints_is_documented() {
    let docs = documented();
    let check = |sub: &str, events: &[Value]| {
        let listed = docs.get(sub).unwrap_or_else(|| panic!("EVENTS.md has no section for btcpeer {sub}"));
        assert!(!events.is_empty(), "{sub} printed no events");
        for e in events {
            let name = e["event"].as_str().unwrap_or_default();
            let keys = listed
                .get(name)
                .unwrap_or_else(|| panic!("btcpeer {sub} prints {name}, which EVENTS.md does not list"));
            let unlisted: Vec<&String> = e
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys())
                .filter(|k| *k != "event" && !keys.contains(*k))
                .collect();
            assert!(unlisted.is_empty(), "btcpeer {sub}'s {name} has keys EVENTS.md does not list: {unlisted:?}");
        }
    };

    let mut listener = Listener::start(&["--duration", "20"]);
    let r =
        run_line(&format!("connect {} --network regtest --transport v1 --ping 1 --listen 0.2 --json", listener.addr()));
    assert_eq!(r.code, 0, "{r:?}");
    check("connect", &r.events);
    listener.wait_for("disconnect", |e| e["event"] == "disconnect");
    check("listen", &listener.events);

    let r = run_line(&format!(
        "node --network regtest --listen 127.0.0.1:0 --connect {} 127.0.0.1:9 --json --duration 2",
        listener.addr()
    ));
    assert_eq!(r.code, 0, "{r:?}");
    check("node", &r.events);

    let r = run(&["demo", "--peers", "2", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    check("demo", &r.events);

    // scan: a served regtest chain with a payment, a liar beside the honest peer.
    let mut b = btcpeer::testing::ChainBuilder::new(btcpeer::bitcoin::Network::Regtest);
    b.mine(5);
    let watched = btcpeer::bitcoin::ScriptBuf::from_bytes([vec![0x00, 0x14], vec![9; 20]].concat());
    let paid = b.pay(&watched, btcpeer::bitcoin::Amount::from_sat(1_000));
    b.spend(paid, &btcpeer::bitcoin::ScriptBuf::from_bytes(vec![0x51]));
    let chain = std::sync::Arc::new(b.build());
    let addrs = common::serve_chains(vec![
        (btcpeer::network::Network::REGTEST, btcpeer::testing::ChainServer::new(chain.clone())),
        (
            btcpeer::network::Network::REGTEST,
            btcpeer::testing::ChainServer::misbehaving(chain, btcpeer::testing::Misbehaviour::WrongFilterHeaders),
        ),
    ]);
    let r = run_line(&format!(
        "scan --network regtest --connect {} {} --watch {} --json",
        addrs[0],
        addrs[1],
        watched.to_hex_string()
    ));
    assert_eq!(r.code, 0, "{r:?}");
    check("scan", &r.events);

    let r =
        run(&["decode", "--network", "regtest", "--json", "fabfb5da76657261636b000000000000000000005df6e0e2", "00"]);
    check("decode", &r.events);

    let r = run_line(
        "bench --json --handshakes 2 --pings 2 --pipelined 2 --inv1 2 --inv1000 2 --blocks 2 \
         --block-size 100000 --peers 4 --hold 0",
    );
    assert_eq!(r.code, 0, "{r:?}");
    check("bench", &r.events);
}
