//! R-C4: `btcpeer decode` prints each frame's fields, re-encodes them, reports bad frames as typed
//! `error` events and carries on.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const VERACK: &str = "fabfb5da76657261636b000000000000000000005df6e0e2";
const PING: &str = "fabfb5da70696e6700000000000000000800000075f05e6e0123456789abcdef";

fn btcpeer(args: &[&str], stdin: &str) -> (i32, Vec<Value>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_btcpeer"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("writes");
    let out = child.wait_with_output().expect("finishes");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let events = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    (out.status.code().unwrap_or(-1), events, text)
}

#[test]
fn r_c4_decode_prints_fields_and_reencodes() {
    let ping = {
        // Build a valid ping frame with the library so the checksum is right.
        let mut buf = bytes::BytesMut::new();
        btcpeer::wire::frame::encode_frame(
            &btcpeer::wire::Message::Ping(0x0123_4567_89ab_cdef),
            &btcpeer::network::Network::REGTEST,
            &mut buf,
        )
        .expect("encodes");
        buf.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let (code, events, _) = btcpeer(&["decode", "--network", "regtest", "--json", "--reencode", VERACK, &ping], "");
    assert_eq!(code, 0);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event"], "message");
    assert_eq!(events[0]["command"], "verack");
    assert_eq!(events[0]["payload_size"], 0);
    assert_eq!(events[0]["checksum_ok"], true);
    assert_eq!(events[0]["reencoded_hex"], VERACK);
    assert_eq!(events[1]["fields"]["nonce"], 0x0123_4567_89ab_cdef_u64);
    assert_eq!(events[1]["reencoded_hex"], ping.as_str());
}

#[test]
fn r_c4_bad_frames_print_a_typed_error_and_decoding_carries_on() {
    // A ping with a wrong checksum, then invalid hex, then a good verack (read from stdin).
    let input = format!("{PING}\nzz\n{VERACK}\n");
    let (code, events, _) = btcpeer(&["decode", "--network", "regtest", "--json", "-"], &input);
    assert_eq!(code, 1, "a bad frame makes the run a failure");
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["event"], "error");
    assert_eq!(events[0]["kind"], "bad_checksum");
    assert_eq!(events[0]["checksum_ok"], false);
    assert_eq!(events[1]["kind"], "invalid_hex");
    assert_eq!(events[2]["command"], "verack");
}

#[test]
fn r_c4_wrong_network_and_human_output() {
    let (code, events, _) = btcpeer(&["decode", "--json", VERACK], "");
    assert_eq!(code, 1);
    assert_eq!(events[0]["kind"], "wrong_magic");
    let (code, _, text) = btcpeer(&["decode", "--network", "regtest", VERACK], "");
    assert_eq!(code, 0);
    assert!(text.starts_with("#0 verack (0 payload bytes, checksum ok)"), "{text}");
}

#[test]
fn r_c4_usage_errors_exit_2() {
    let (code, _, _) = btcpeer(&["decode", "--network", "nonsense", VERACK], "");
    assert_eq!(code, 2);
    let (code, _, _) = btcpeer(&["decode", "--no-such-flag"], "");
    assert_eq!(code, 2);
}
