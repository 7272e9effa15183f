//! R-C1 `btcpeer demo`, and a bare `btcpeer`: a node and outbound peers on 127.0.0.1 inside one
//! process; the JSON events show every step went through. Every wait is bounded (see `common`).

mod common;

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use common::run;

/// The outbound peers' ids, from their handshake events.
fn outbound(r: &common::Run) -> Vec<u64> {
    r.of("handshake").iter().filter(|e| e["direction"] == "outbound").filter_map(|e| e["peer"].as_u64()).collect()
}

/// Checks what every demo run must show; returns the summary.
fn check_run(r: &common::Run, peers: usize) -> Value {
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.is_empty(), "{r:?}");
    assert_eq!(r.events.len(), r.stdout.len(), "every line is JSON: {r:?}");
    assert_eq!(r.position("start"), 0, "{r:?}");
    let start = r.of("start")[0];
    assert!(start["listen"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "{start}");
    assert_eq!(start["peers"], peers);
    assert_eq!(start["blocks"], 2_500);

    // Every peer handshook, on both sides of each connection.
    let ours = outbound(r);
    assert_eq!(ours.len(), peers, "{r:?}");
    assert_eq!(ours.iter().collect::<HashSet<_>>().len(), peers, "distinct peers: {r:?}");
    let inbound = r.of("handshake").iter().filter(|e| e["direction"] == "inbound").count();
    assert_eq!(inbound, peers, "the node's side: {r:?}");
    for hs in r.of("handshake") {
        assert_eq!(hs["version"], 70016, "{hs}");
        assert!(hs["user_agent"].as_str().is_some_and(|ua| ua.starts_with("/btcpeer:")), "{hs}");
    }

    let per_peer = |event: &str, key: &str| -> HashMap<u64, u64> {
        let mut m = HashMap::new();
        for e in r.of(event) {
            if let (Some(p), Some(n)) = (e["peer"].as_u64(), e[key].as_u64()) {
                *m.entry(p).or_insert(0) += n;
            }
        }
        m
    };
    let pongs = per_peer("pong", "rtt_us");
    let announced = per_peer("announce", "count");
    let inv = per_peer("inv", "count");
    let addrs = per_peer("addr", "count");
    let relayed: u64 = r.of("relay").iter().filter_map(|e| e["relayed"].as_u64()).sum();
    let suppressed: u64 = r.of("relay").iter().filter_map(|e| e["suppressed"].as_u64()).sum();
    let tips: HashSet<&str> = r.of("headers").iter().filter_map(|e| e["tip"].as_str()).collect();
    assert_eq!(tips.len(), 1, "every peer reached the same tip: {r:?}");
    for id in &ours {
        let seqs: Vec<&Value> = r.of("pong").into_iter().filter(|e| e["peer"] == *id).collect();
        assert_eq!(seqs.len(), 3, "three pongs for peer {id}: {r:?}");
        assert!(pongs.contains_key(id), "{r:?}");
        assert_eq!(announced.get(id), Some(&3), "peer {id} announced 3 transactions: {r:?}");
        let others = 3 * (peers as u64 - 1);
        assert_eq!(inv.get(id).copied().unwrap_or(0), others, "peer {id} heard every other peer's: {r:?}");
        assert_eq!(addrs.get(id), Some(&3), "peer {id} got the node's addresses: {r:?}");
        let addr = r.of("addr").into_iter().find(|e| e["peer"] == *id).expect("an addr event");
        assert_eq!(addr["command"], "addrv2");
        assert_eq!(addr["networks"], serde_json::json!(["ipv4", "ipv6", "torv3"]));
        let headers: Vec<&Value> = r.of("headers").into_iter().filter(|e| e["peer"] == *id).collect();
        assert_eq!(headers.len(), 1, "{r:?}");
        assert_eq!(headers[0]["count"], 2_499);
        assert_eq!(headers[0]["batches"], 2);
        let blocks: Vec<&Value> = r.of("block").into_iter().filter(|e| e["peer"] == *id).collect();
        assert_eq!(blocks.len(), 1, "{r:?}");
        assert_eq!(blocks[0]["merkle_root_ok"], true);
        assert!(blocks[0]["hash"].as_str().is_some_and(|h| h.len() == 64), "{r:?}");
    }
    assert_eq!(relayed, 3 * peers as u64 * (peers as u64 - 1), "{r:?}");
    assert_eq!(suppressed, 3 * peers as u64, "each announcement is not echoed to its sender: {r:?}");

    // Statistics for both sides of every connection, then the summary, last.
    let stats = r.of("stats");
    assert_eq!(stats.len(), 2 * peers, "{r:?}");
    for s in &stats {
        assert!(s["bytes_sent"].as_u64().is_some_and(|b| b > 0), "{s}");
        assert!(s["transport"] == "v1" || s["transport"] == "v2", "{s}");
    }
    assert_eq!(r.position("summary"), r.events.len() - 1, "{r:?}");
    let s = r.of("summary")[0].clone();
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["failure"], Value::Null);
    assert_eq!(s["peers"], peers);
    assert_eq!(s["handshakes_v1"].as_u64().unwrap_or(0) + s["handshakes_v2"].as_u64().unwrap_or(0), peers as u64);
    assert_eq!(s["announced"], 3 * peers);
    assert_eq!(s["inv_relayed"], 3 * peers * (peers - 1));
    assert_eq!(s["inv_suppressed"], 3 * peers);
    assert_eq!(s["pings"], 3 * peers);
    assert!(s["min_rtt_us"].as_u64().is_some_and(|m| m <= s["max_rtt_us"].as_u64().unwrap_or(0)), "{s}");
    assert_eq!(s["addrs"], 3 * peers);
    assert_eq!(s["headers"], 2_499 * peers);
    assert_eq!(s["blocks"], peers);
    s
}

#[test]
fn r_c1_demo_json_reports_every_step() {
    let r = run(&["demo", "--json"]);
    let s = check_run(&r, 4);
    // Auto: both transports, half and half.
    assert_eq!((s["handshakes_v1"].as_u64(), s["handshakes_v2"].as_u64()), (Some(2), Some(2)), "{s}");
    let transports: HashSet<&str> = r
        .of("handshake")
        .iter()
        .filter(|e| e["direction"] == "outbound")
        .filter_map(|e| e["transport"].as_str())
        .collect();
    assert_eq!(transports, HashSet::from(["v1", "v2"]), "{r:?}");
    assert!(r.elapsed.as_secs() < 30, "the default demo is quick: {r:?}");
}

/// The demo with one transport only: every handshake and every peer's stats on it.
fn demo_on_one_transport(transport: &str, peers: usize) {
    let r = run(&["demo", "--json", "--transport", transport, "--peers", &peers.to_string()]);
    let s = check_run(&r, peers);
    let n = peers as u64;
    let expected = if transport == "v1" { (Some(n), Some(0)) } else { (Some(0), Some(n)) };
    assert_eq!((s["handshakes_v1"].as_u64(), s["handshakes_v2"].as_u64()), expected, "{s}");
    assert!(r.of("handshake").iter().all(|e| e["transport"] == transport), "{r:?}");
    assert!(r.of("stats").iter().all(|e| e["transport"] == transport), "{r:?}");
}

#[test]
fn r_c1_demo_v1_only() {
    demo_on_one_transport("v1", 3);
}

#[test]
fn r_c1_demo_v2_only() {
    demo_on_one_transport("v2", 2);
}

#[test]
fn r_c1_demo_with_one_peer_has_nothing_to_relay_and_succeeds() {
    let r = run(&["demo", "--json", "--peers", "1"]);
    let s = check_run(&r, 1);
    assert_eq!(s["handshakes_v2"], 1, "auto with one peer speaks v2: {s}");
}

#[test]
fn r_c1_bare_btcpeer_runs_the_demo() {
    let r = run(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.is_empty(), "{r:?}");
    assert!(r.events.is_empty(), "readable text, not JSON: {r:?}");
    // Not a terminal: plain progress lines, the table once, the summary.
    assert!(r.stdout[0].starts_with("node listening on 127.0.0.1:"), "{r:?}");
    assert!(!r.stdout.iter().any(|l| l.contains('\x1b')), "no terminal control codes in a pipe: {r:?}");
    assert!(r.stdout.iter().any(|l| l.contains("] handshake in v2")), "{r:?}");
    assert!(r.stdout.iter().any(|l| l.contains("] handshake in v1")), "{r:?}");
    assert!(r.stdout.iter().any(|l| l.contains("] pong 3: ")), "{r:?}");
    assert!(r.stdout.iter().any(|l| l.contains("merkle root ok")), "{r:?}");
    let header = r.stdout.iter().position(|l| l.starts_with("peer  dir")).expect("the table's header");
    let rows: Vec<&String> = r.stdout[header + 1..].iter().take_while(|l| !l.starts_with("relayed ")).collect();
    assert_eq!(rows.len(), 8, "four outbound peers and the node's four: {r:?}");
    assert_eq!(rows.iter().filter(|l| l.contains(" out ") && l.ends_with("done ✓")).count(), 4, "{r:?}");
    assert!(rows.iter().all(|l| l.contains(" KiB ")), "{r:?}");
    assert!(r.stdout.iter().any(|l| l == "summary"), "{r:?}");
    assert!(r.stdout.iter().any(|l| l.starts_with("  handshakes   4 (v1 2, v2 2)")), "{r:?}");
    assert!(r.stdout.last().is_some_and(|l| l.starts_with("  result       ok in ")), "{r:?}");
}

#[test]
fn r_c1_demo_duration_keeps_the_peers_alive() {
    // The steps take about two seconds (more when the machine is busy); the rest is lingering.
    let r = run(&["demo", "--json", "--peers", "2", "--duration", "6"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.elapsed.as_secs_f64() >= 6.0, "{r:?}");
    let s = r.of("summary")[0];
    assert_eq!(s["ok"], true, "{s}");
    assert!(s["pings"].as_u64().is_some_and(|p| p > 6), "pings go on while lingering: {s}");
}

#[test]
fn r_c1_demo_usage_errors_exit_2() {
    let cases: &[&[&str]] = &[
        &["demo", "--peers", "0"],
        &["demo", "--peers", "33"],
        &["demo", "--transport", "v9"],
        &["demo", "--duration", "-1"],
        &["demo", "--timeout", "0"],
        &["demo", "extra"],
        &["--peers", "2", "decode"],
    ];
    for args in cases {
        let r = run(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "one line: {args:?}: {r:?}");
        assert!(!r.stderr.contains("panicked"), "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
    }
}

#[test]
fn r_c_every_help_has_examples_and_exit_codes() {
    for args in
        [&["--help"][..], &["demo", "--help"], &["connect", "--help"], &["listen", "--help"], &["decode", "--help"]]
    {
        let r = run(args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        let text = r.stdout.join("\n");
        assert!(text.contains("Examples:"), "{args:?}: {text}");
        assert!(text.contains("Exit codes: 0"), "{args:?}: {text}");
        assert!(text.contains("2 usage error"), "{args:?}: {text}");
    }
    let r = run(&["--version"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout[0].starts_with("btcpeer "), "{r:?}");
}
