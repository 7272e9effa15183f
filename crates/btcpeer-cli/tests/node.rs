//! R-N `btcpeer node` over 127.0.0.1: against `btcpeer listen` (manual peers, the table, a dead
//! address backing off), and its book and bans files (written at the end, a corrupt one kept aside).

mod common;

use common::{Listener, run_line};

#[test]
fn r_n_node_connects_to_listen_shows_its_table_and_keeps_its_files() {
    let mut listener = Listener::start(&["--duration", "30"]);
    let dir = std::env::temp_dir().join(format!("btcpeer-cli-node-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let book = dir.join("node.book");
    let line = format!(
        "node --network regtest --listen 127.0.0.1:0 --connect {} 127.0.0.1:9 --json --duration 3 --book {}",
        listener.addr(),
        book.display()
    );
    let r = run_line(&line);
    assert_eq!(r.code, 0, "{r:?}");
    let connected = r.of("connected");
    assert_eq!(connected.len(), 1, "{r:?}");
    assert_eq!(connected[0]["addr"], listener.addr().as_str());
    assert_eq!(connected[0]["kind"], "manual");
    assert!(!r.of("dial_failed").is_empty(), "nothing listens on port 9: {r:?}");
    let table = r.of("table");
    let last = table.last().expect("a last table");
    let rows = last["peers"].as_array().expect("rows");
    let row = rows.iter().find(|p| p["addr"] == listener.addr().as_str()).expect("the listener's row");
    assert_eq!(row["kind"], "manual");
    assert!(row["bytes_sent"].as_u64().unwrap() > 0 && row["bytes_received"].as_u64().unwrap() > 0, "{row}");
    assert!(row["ping_us"].is_u64(), "a first ping at the handshake: {row}");
    assert_eq!(last["counts"]["manual"], 1);
    // The listener saw us: our getaddr (a manual peer relays addresses) among what it received.
    listener.wait_for("our getaddr", |e| e["event"] == "recv" && e["command"] == "getaddr");

    assert!(book.exists(), "the book is saved at the end");
    let bans = dir.join("node.book.bans");
    assert!(bans.exists(), "so are the bans");
    std::fs::write(&bans, b"garbage").unwrap();
    let r = run_line(&line);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("kept as"), "{r:?}");
    assert!(dir.join("node.book.bans.corrupt").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn r_n_node_stops_cleanly_on_sigterm_and_saves_its_files() {
    let dir = std::env::temp_dir().join(format!("btcpeer-cli-node-term-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let book = dir.join("n.book");
    let mut child = common::btcpeer()
        .args(["node", "--network", "regtest", "--listen", "127.0.0.1:0", "--json", "--book"])
        .arg(&book)
        .spawn()
        .expect("btcpeer node starts");
    let lines = common::lines_of(child.stdout.take().expect("stdout"));
    let first = lines.recv_timeout(std::time::Duration::from_secs(20)).expect("the listening line");
    assert!(first.contains("\"listening\""), "{first}");
    // The signal handler is in place once the node runs: wait for its first table.
    let table = lines.recv_timeout(std::time::Duration::from_secs(20)).expect("a table");
    assert!(table.contains("\"table\""), "{table}");
    let killed = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "a clean stop");
    for f in ["n.book", "n.book.bans", "n.book.anchors"] {
        assert!(dir.join(f).exists(), "{f} saved");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
