//! R-C2 and R-C3 against an implementation nobody here wrote: Debian's python3-bitcoinlib, driven by
//! `scripts/interop/bitcoinlib_peer.py` (which decodes with bitcoinlib what btcpeer sends, checks it
//! re-encodes byte for byte, and encodes with bitcoinlib what it sends).
//!
//! bitcoinlib is installed for `/usr/bin/python3` (`apt-get install python3-bitcoinlib`). Without it
//! these tests print a note and pass, except under CI (`CI` set), where they fail.

mod common;

use std::process::Command;

use common::{Listener, run_command};

const PYTHON: &str = "/usr/bin/python3";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/interop/bitcoinlib_peer.py");

/// Whether bitcoinlib can be used; panics under CI when it cannot.
fn bitcoinlib_available() -> bool {
    let ok = Command::new(PYTHON).args(["-c", "import bitcoin.messages"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        let note = format!(
            "{PYTHON} cannot import bitcoin.messages (install Debian's python3-bitcoinlib); \
             the bitcoinlib interoperability test is skipped"
        );
        assert!(std::env::var_os("CI").is_none(), "under CI: {note}");
        eprintln!("note: {note}");
    }
    ok
}

fn script(args: &[&str]) -> Command {
    let mut cmd = Command::new(PYTHON);
    cmd.arg(SCRIPT).args(args);
    cmd
}

#[test]
fn r_c3_interop_bitcoinlib_client_talks_to_btcpeer_listen() {
    if !bitcoinlib_available() {
        return;
    }
    let mut listener = Listener::start(&["--duration", "30"]);
    let r = run_command(script(&["client", &listener.addr()]), "bitcoinlib_peer.py client");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.last().map(String::as_str), Some("interop client: ok"), "{r:?}");

    // btcpeer's side of the same conversation.
    let hs = listener.wait_for("handshake with bitcoinlib", |e| {
        e["event"] == "handshake" && e["user_agent"].as_str().is_some_and(|ua| ua.starts_with("/bitcoinlib-interop:"))
    });
    let id = hs["peer"].clone();
    assert_eq!(hs["version"], 70016);
    assert_eq!(hs["negotiated_version"], 70016);
    assert_eq!(hs["service_names"], serde_json::json!(["NETWORK"]));
    assert_eq!(hs["wants_addrv2"], false, "bitcoinlib does not send sendaddrv2");
    listener.wait_for("recv ping", |e| e["event"] == "recv" && e["peer"] == id && e["command"] == "ping");
    let d = listener.wait_for("disconnect", |e| e["event"] == "disconnect" && e["peer"] == id);
    assert_eq!(d["kind"], "remote_closed");
}

#[test]
fn r_c2_interop_btcpeer_connect_talks_to_bitcoinlib_server() {
    if !bitcoinlib_available() {
        return;
    }
    // The script runs `btcpeer connect --transport v1 … --ping 2 --json` against itself and checks
    // its events.
    let r = run_command(script(&["server", env!("CARGO_BIN_EXE_btcpeer")]), "bitcoinlib_peer.py server");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.last().map(String::as_str), Some("interop server: ok"), "{r:?}");
    assert_eq!(r.stdout.iter().filter(|l| l.starts_with("interop server: answered ping")).count(), 2, "{r:?}");
}
