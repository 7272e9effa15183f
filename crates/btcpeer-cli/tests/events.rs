//! Every JSON event a subcommand prints is documented in `crates/btcpeer-cli/EVENTS.md`, under that
//! subcommand. Each subcommand runs once over 127.0.0.1 with small settings; every wait is bounded.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Listener, run, run_line};

/// The events EVENTS.md lists, by subcommand (`connect`, `listen` …).
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/EVENTS.md")).expect("EVENTS.md");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        if let Some(sub) = line.strip_prefix("## `btcpeer ").and_then(|s| s.strip_suffix('`')) {
            section = sub.to_string();
        } else if let Some(event) = line.strip_prefix("### `").and_then(|s| s.strip_suffix('`')) {
            out.entry(section.clone()).or_default().insert(event.to_string());
        }
    }
    out
}

fn names(r: &common::Run) -> BTreeSet<String> {
    r.events.iter().filter_map(|e| e["event"].as_str().map(str::to_string)).collect()
}

#[test]
fn every_event_each_subcommand_prints_is_documented() {
    let docs = documented();
    let check = |sub: &str, seen: BTreeSet<String>| {
        let listed = docs.get(sub).unwrap_or_else(|| panic!("EVENTS.md has no section for btcpeer {sub}"));
        assert!(!seen.is_empty(), "{sub} printed no events");
        let missing: Vec<&String> = seen.difference(listed).collect();
        assert!(missing.is_empty(), "btcpeer {sub} prints events EVENTS.md does not list: {missing:?}");
    };

    let mut listener = Listener::start(&["--duration", "20"]);
    let r =
        run_line(&format!("connect {} --network regtest --transport v1 --ping 1 --listen 0.2 --json", listener.addr()));
    assert_eq!(r.code, 0, "{r:?}");
    check("connect", names(&r));
    listener.wait_for("disconnect", |e| e["event"] == "disconnect");
    check("listen", listener.events.iter().filter_map(|e| e["event"].as_str().map(str::to_string)).collect());

    let r = run(&["demo", "--peers", "2", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    check("demo", names(&r));

    let r =
        run(&["decode", "--network", "regtest", "--json", "fabfb5da76657261636b000000000000000000005df6e0e2", "00"]);
    check("decode", names(&r));

    let r = run_line(
        "bench --json --handshakes 2 --pings 2 --pipelined 2 --inv1 2 --inv1000 2 --blocks 2 \
         --block-size 100000 --peers 4 --hold 0",
    );
    assert_eq!(r.code, 0, "{r:?}");
    check("bench", names(&r));
}
