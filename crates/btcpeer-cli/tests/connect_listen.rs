//! R-C2 and R-C3: `btcpeer connect` and `btcpeer listen`, run as processes against each other (and
//! against small hand-made remotes) over 127.0.0.1. Every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use btcpeer::network::Network;
use btcpeer::wire::{Message, VersionMessage, VersionTail, blank_address, frame};
use serde_json::Value;

use common::{Listener, run, run_json, run_line};

fn index_of(events: &[Value], pred: impl Fn(&Value) -> bool) -> usize {
    events.iter().position(pred).unwrap_or_else(|| panic!("event not found in {events:#?}"))
}

#[test]
fn r_c2_connect_prints_handshake_pongs_and_stats() {
    let listener = Listener::start(&["--duration", "20"]);
    // v1, whose sizes are known: a pong is 24 + 8 bytes.
    let r = run_json(&format!("connect {} --network regtest --transport v1 --ping 3 --json", listener.addr()));

    let hs = r.of("handshake");
    assert_eq!(hs.len(), 1, "{r:?}");
    let hs = hs[0];
    assert_eq!(hs["negotiated_version"], 70016);
    assert_eq!(hs["version"], 70016);
    assert!(hs["user_agent"].as_str().is_some_and(|ua| ua.starts_with("/btcpeer:")), "{hs}");
    assert_eq!(hs["transport"], "v1");
    assert!(hs["services"].is_u64() && hs["service_names"].is_array(), "{hs}");
    assert!(hs["start_height"].is_i64() && hs["relay"].is_boolean(), "{hs}");
    assert_eq!(hs["wants_addrv2"], true);
    assert_eq!(hs["wtxid_relay"], true);

    let pongs = r.of("pong");
    assert_eq!(pongs.len(), 3, "{r:?}");
    for (i, p) in pongs.iter().enumerate() {
        assert_eq!(p["seq"], i + 1);
        assert!(p["rtt_us"].is_u64(), "{p}");
        assert!(p["nonce"].is_u64(), "{p}");
    }

    let stats = r.of("stats");
    assert_eq!(stats.len(), 1, "{r:?}");
    let s = stats[0];
    assert_eq!(s["direction"], "outbound");
    assert_eq!(s["per_command"]["ping"]["messages_sent"], 3);
    assert_eq!(s["per_command"]["pong"]["messages_received"], 3);
    assert_eq!(s["per_command"]["pong"]["bytes_received"], 3 * 32);
    assert!(s["last_ping_rtt_us"].is_u64() && s["min_ping_rtt_us"].is_u64(), "{s}");
    assert!(s["connected_at"].is_u64() && s["handshake_at"].is_u64(), "{s}");
    assert!(s["local_addr"].is_string(), "{s}");
    assert_eq!(s["outstanding_ping"], Value::Null);

    let d = r.of("disconnect");
    assert_eq!(d.len(), 1, "{r:?}");
    assert_eq!(d[0]["kind"], "local_request");
    assert!(d[0]["reason"].is_string());

    // handshake, pongs, stats, disconnect: in that order, disconnect last.
    assert!(r.position("handshake") < r.position("pong"));
    assert!(r.position("pong") < r.position("stats"));
    assert_eq!(r.position("disconnect"), r.events.len() - 1);
}

#[test]
fn r_c3_listen_accepts_and_reports() {
    let mut listener = Listener::start(&["--duration", "20"]);
    let r = run(&["connect", &listener.addr(), "--network", "regtest", "--transport", "v1", "--ping", "2", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let local = r.of("stats")[0]["local_addr"].as_str().expect("local_addr").to_string();

    let accept = listener.wait_for("accept", |e| e["event"] == "accept" && e["addr"] == local.as_str());
    let id = accept["peer"].as_u64().expect("a peer id");
    let mine = |event: &'static str| move |e: &Value| e["event"] == event && e["peer"] == id;
    let hs = listener.wait_for("handshake", mine("handshake"));
    assert!(hs["user_agent"].as_str().is_some_and(|ua| ua.starts_with("/btcpeer:")), "{hs}");
    assert_eq!(hs["negotiated_version"], 70016);
    let ping = listener.wait_for("recv ping", |e| e["event"] == "recv" && e["peer"] == id && e["command"] == "ping");
    assert_eq!(ping["size"], 32);
    let stats = listener.wait_for("stats", mine("stats"));
    assert_eq!(stats["direction"], "inbound");
    assert_eq!(stats["per_command"]["pong"]["messages_sent"], 2);
    let d = listener.wait_for("disconnect", mine("disconnect"));
    assert_eq!(d["kind"], "remote_closed");

    let events = &listener.events;
    let at = |event: &str| index_of(events, |e| e["event"] == event && e["peer"] == id);
    assert!(at("accept") < at("recv"), "{events:#?}");
    assert!(at("recv") < at("handshake"), "the version is received before the handshake completes");
    assert!(at("handshake") < index_of(events, |e| e["event"] == "recv" && e["command"] == "ping"));
    assert!(at("handshake") < at("stats") && at("stats") < at("disconnect"), "{events:#?}");
}

#[test]
fn r_c2_connect_human_output_is_one_line_per_event() {
    let listener = Listener::start(&["--duration", "20"]);
    let r = run(&["connect", &listener.addr(), "--network", "regtest", "--transport", "v1", "--ping", "2"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.events.is_empty(), "no JSON without --json: {r:?}");
    let hs: Vec<&String> = r.stdout.iter().filter(|l| l.starts_with("handshake: /btcpeer:")).collect();
    assert_eq!(hs.len(), 1, "{r:?}");
    assert!(hs[0].contains("version 70016 (negotiated 70016)"), "{r:?}");
    assert!(hs[0].contains("transport v1"), "{r:?}");
    let pongs: Vec<&String> = r.stdout.iter().filter(|l| l.starts_with("pong: ")).collect();
    assert_eq!(pongs.len(), 2, "{r:?}");
    for p in pongs {
        let ms = p.trim_start_matches("pong: ").trim_end_matches(" ms");
        assert!(ms.parse::<f64>().is_ok(), "{p}");
    }
    let stats = r.stdout.iter().position(|l| l.starts_with("stats: ")).expect("a stats line");
    assert!(r.stdout[stats + 1].starts_with("  sent "), "{r:?}");
    assert_eq!(r.stdout.last().map(String::as_str), Some("disconnect: disconnect requested locally (local_request)"));
}

#[test]
fn r_c2_connect_listen_reports_every_message_received() {
    let listener = Listener::start(&["--duration", "20"]);
    let r = run(&[
        "connect",
        &listener.addr(),
        "--network",
        "regtest",
        "--transport",
        "v1",
        "--listen",
        "1",
        "--ping",
        "1",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.elapsed >= Duration::from_secs(1), "stayed connected for --listen 1: {r:?}");
    let recv = r.of("recv");
    let size_of = |command: &str| {
        recv.iter().find(|e| e["command"] == command).map(|e| e["size"].clone()).unwrap_or_else(|| panic!("{r:?}"))
    };
    assert!(size_of("version").as_u64().is_some_and(|s| s > 24 + 80), "{r:?}");
    assert_eq!(size_of("verack"), 24);
    assert_eq!(size_of("pong"), 32);
    // Bytes on the wire add up to what the statistics counted.
    let total: u64 = recv.iter().filter_map(|e| e["size"].as_u64()).sum();
    assert_eq!(r.of("stats")[0]["bytes_received"], total);
    assert!(r.position("recv") < r.position("handshake"), "handshake frames are reported too");
}

#[test]
fn r_c2_connection_refused_exits_1() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("binds");
        l.local_addr().expect("addr").port()
    };
    let r = run(&["connect", &format!("127.0.0.1:{port}"), "--network", "regtest", "--json", "--timeout", "10"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "one line on stderr: {r:?}");
    assert!(r.stderr.starts_with("btcpeer connect: cannot connect to"), "{r:?}");
    assert!(!r.stderr.contains("panicked"), "{r:?}");
}

#[test]
fn r_c2_usage_errors_exit_2() {
    let cases: &[&[&str]] = &[
        &["connect"],
        &["connect", "127.0.0.1:1", "--transport", "v9"],
        &["connect", "127.0.0.1:1", "--socks5", "localhost"],
        &["connect", "127.0.0.1:1", "--socks5", "127.0.0.1"],
        &["connect", "127.0.0.1:1", "--network", "nonsense"],
        &["connect", "127.0.0.1:1", "--magic", "xyz"],
        &["connect", "127.0.0.1:1", "--timeout", "0"],
        &["connect", "127.0.0.1:1", "--timeout", "soon"],
        &["connect", "127.0.0.1:1", "--ping", "-1"],
        &["connect", "127.0.0.1:1", "--user-agent-comment", "a/b"],
        &["connect", "127.0.0.1:port"],
        &["connect", "example.org", "--magic", "e3e1f3e8"],
        &["listen"],
        &["listen", "127.0.0.1:0", "--max-peers", "0"],
        &["listen", "127.0.0.1:0", "--transport", "v3"],
        &["listen", "127.0.0.1:0", "--duration", "-3"],
    ];
    for args in cases {
        let r = run(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(!r.stderr.is_empty() && !r.stderr.contains("panicked"), "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
    }
    // Usage errors are one line, ours and clap's alike, and point at the subcommand's help.
    for args in cases {
        let r = run(args);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {r:?}");
        assert!(r.stderr.starts_with("btcpeer "), "{args:?}: {r:?}");
    }
    let r = run(&["connect", "127.0.0.1:1", "--user-agent-comment", "a/b"]);
    assert!(r.stderr.starts_with("btcpeer connect: user agent comment"), "{r:?}");
    let r = run(&["connect"]);
    assert!(r.stderr.contains("<HOST:PORT>") && r.stderr.contains("btcpeer connect --help"), "{r:?}");
}

#[test]
fn r_c2_silent_remote_times_out_exits_3() {
    // Accepts and says nothing: the handshake cannot complete.
    let silent = TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = silent.local_addr().expect("addr").to_string();
    let holder = thread::spawn(move || {
        let conn = silent.accept().map(|(s, _)| s);
        thread::sleep(Duration::from_secs(5));
        drop(conn);
    });
    let r = run(&["connect", &addr, "--network", "regtest", "--json", "--timeout", "1"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.elapsed < Duration::from_secs(15), "the 1 s timeout, not the default 30 s, bounded the wait: {r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.stderr.contains("timed out"), "{r:?}");
    assert_eq!(r.of("disconnect")[0]["kind"], "handshake_timeout", "{r:?}");
    assert!(r.of("handshake").is_empty());
    let _ = holder.join();
}

/// Reads one v1 frame: its command and payload.
fn read_frame(s: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut header = [0u8; 24];
    s.read_exact(&mut header)?;
    let command = String::from_utf8_lossy(&header[4..16]).trim_end_matches('\0').to_string();
    let len = u32::from_le_bytes([header[16], header[17], header[18], header[19]]) as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload)?;
    Ok((command, payload))
}

fn write_message(s: &mut TcpStream, message: &Message) {
    let mut buf = bytes::BytesMut::new();
    frame::encode_frame(message, &Network::REGTEST, &mut buf).expect("encodes");
    s.write_all(&buf).expect("writes");
}

#[test]
fn r_c2_unanswered_ping_times_out_exits_3() {
    // A remote that completes the handshake, then never answers a ping.
    let mute = TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = mute.local_addr().expect("addr").to_string();
    let remote = thread::spawn(move || {
        let (mut s, _) = mute.accept().expect("accepts");
        s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let (command, _) = read_frame(&mut s).expect("a version");
        assert_eq!(command, "version");
        let version = VersionMessage {
            version: 70016,
            services: btcpeer::wire::types::ServiceFlags::NETWORK,
            timestamp: 1_700_000_000,
            receiver: blank_address(),
            sender: blank_address(),
            nonce: 42,
            user_agent: "/mute:1.0/".to_string(),
            start_height: 7,
            relay: true,
            tail: VersionTail::Complete,
        };
        write_message(&mut s, &Message::Version(version));
        write_message(&mut s, &Message::Verack);
        // Read (and ignore) everything until the client hangs up.
        while read_frame(&mut s).is_ok() {}
    });
    let r = run_line(&format!("connect {addr} --network regtest --transport v1 --ping 1 --timeout 1 --json"));
    assert_eq!(r.code, 3, "{r:?}");
    let hs = r.of("handshake");
    assert_eq!(hs.len(), 1, "{r:?}");
    assert_eq!(hs[0]["user_agent"], "/mute:1.0/");
    assert_eq!(hs[0]["service_names"], serde_json::json!(["NETWORK"]));
    assert_eq!(hs[0]["start_height"], 7);
    assert_eq!(hs[0]["wants_addrv2"], false);
    assert!(r.of("pong").is_empty(), "{r:?}");
    assert!(r.stderr.contains("no pong"), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.of("stats")[0]["outstanding_ping"]["nonce"].is_u64(), "{r:?}");
    assert_eq!(r.of("disconnect").len(), 1, "{r:?}");
    remote.join().expect("the remote ran");
}

#[test]
fn r_c3_listen_evicts_a_silent_connection_refuses_when_nobody_may_go_and_ends_after_duration() {
    let mut listener = Listener::start(&["--max-peers", "1", "--duration", "8"]);
    // A connection that never says a word holds the only slot...
    let mut first = TcpStream::connect(listener.addr()).expect("connects");
    let first_addr = first.local_addr().expect("addr").to_string();
    let accept = listener.wait_for("accept", |e| e["event"] == "accept");
    assert_eq!(accept["addr"], first_addr.as_str());
    let silent = accept["peer"].clone();

    // ...until an honest peer comes: the silent one is evicted for it, and its handshake completes.
    let stream = TcpStream::connect(listener.addr()).expect("connects");
    let honest_addr = stream.local_addr().expect("addr").to_string();
    let mut honest = btcpeer::core::blocking::BlockingPeer::new(
        stream,
        Network::REGTEST,
        btcpeer::core::peer::CoreConfig::new(btcpeer::peer::Direction::Outbound),
    );
    honest.handshake(Duration::from_secs(5)).expect("the honest peer is served");
    let accept = listener.wait_for("accept", |e| e["event"] == "accept" && e["addr"] == honest_addr.as_str());
    assert_eq!(accept["evicted"], first_addr.as_str());
    let id = accept["peer"].clone();
    first.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut buf = [0u8; 1];
    assert!(matches!(first.read(&mut buf), Ok(0) | Err(_)), "the silent connection is closed");
    let gone = listener.wait_for("disconnect", |e| e["event"] == "disconnect" && e["peer"] == silent);
    assert_eq!(gone["kind"], "local_request");

    // With the slot held by a finished handshake, nobody may be evicted: a third is refused.
    let mut third = TcpStream::connect(listener.addr()).expect("connects");
    let third_addr = third.local_addr().expect("addr").to_string();
    let refused = listener.wait_for("refused", |e| e["event"] == "refused");
    assert_eq!(refused["addr"], third_addr.as_str());
    third.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    assert!(matches!(third.read(&mut buf), Ok(0) | Err(_)), "the extra connection is closed");

    // The duration ends: the remaining peer is disconnected and reported, and the listener exits 0.
    assert_eq!(listener.wait_exit(), 0);
    let events = listener.events.clone();
    let stats = index_of(&events, |e| e["event"] == "stats" && e["peer"] == id);
    let disconnect = index_of(&events, |e| e["event"] == "disconnect" && e["peer"] == id);
    assert!(stats < disconnect);
    assert_eq!(events[disconnect]["kind"], "local_request");
    assert_eq!(events[stats]["disconnect_kind"], "local_request");
    drop(honest);
}
