//! C-1, C-2: `btcpeer listen` is lenient where Bitcoin Core is, shown to a raw-socket client over
//! 127.0.0.1: early, duplicate and ignorable messages and droppable frames leave the connection up
//! and are counted in the `stats` event; a wrong magic still ends it. Every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use btcpeer::bitcoin::p2p::message_compact_blocks::SendCmpct;
use btcpeer::network::Network;
use btcpeer::wire::{
    Command, Message, Reject, RejectCode, SendTxRcncl, VersionMessage, VersionTail, blank_address, frame,
};
use serde_json::Value;

use common::Listener;

fn frame_of(message: &Message) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    frame::encode_frame(message, &Network::REGTEST, &mut buf).expect("encodes");
    buf.to_vec()
}

fn raw(command: Command, payload: &[u8]) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    frame::encode_raw_frame(command, payload, &Network::REGTEST, &mut buf).expect("encodes");
    buf.to_vec()
}

/// Reads one v1 frame: its command and payload.
fn read_frame(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut header = [0u8; 24];
    s.read_exact(&mut header).expect("a frame header from the listener");
    let command = String::from_utf8_lossy(&header[4..16]).trim_end_matches('\0').to_string();
    let len = u32::from_le_bytes([header[16], header[17], header[18], header[19]]) as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).expect("a frame payload");
    (command, payload)
}

fn version() -> VersionMessage {
    VersionMessage {
        version: 70016,
        services: btcpeer::bitcoin::p2p::ServiceFlags::NETWORK,
        timestamp: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64,
        receiver: blank_address(),
        sender: blank_address(),
        nonce: 0x1234_5678,
        user_agent: "/raw:1.0/".into(),
        start_height: 0,
        relay: true,
        tail: VersionTail::Complete,
    }
}

/// Reads until the listener's verack.
fn until_verack(s: &mut TcpStream) {
    loop {
        if read_frame(s).0 == "verack" {
            return;
        }
    }
}

/// Sends a ping and reads until its pong: the connection is still up.
fn answers_ping(s: &mut TcpStream, nonce: u64) {
    s.write_all(&frame_of(&Message::Ping(nonce))).unwrap();
    loop {
        let (command, payload) = read_frame(s);
        if command == "pong" && payload == nonce.to_le_bytes() {
            return;
        }
    }
}

#[test]
fn c1_listen_shows_each_leniency_to_a_raw_socket_client() {
    let mut listener = Listener::start(&["--duration", "30", "--transport", "v1"]);
    let mut s = TcpStream::connect(listener.addr()).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();

    // A message before the version: ignored.
    s.write_all(&frame_of(&Message::Ping(1))).unwrap();
    // A version with bytes after the relay flag: accepted.
    let mut payload = bytes::BytesMut::new();
    Message::Version(version()).encode_payload(&mut payload).unwrap();
    payload.extend_from_slice(&[0xca, 0xfe, 0x00, 0x01]);
    s.write_all(&raw(Command::VERSION, &payload)).unwrap();
    // sendheaders and sendcmpct before verack: honoured.
    s.write_all(&frame_of(&Message::SendHeaders)).unwrap();
    s.write_all(&frame_of(&Message::SendCmpct(SendCmpct { send_compact: false, version: 2 }))).unwrap();
    // A second version during the handshake: ignored.
    s.write_all(&frame_of(&Message::Version(version()))).unwrap();
    s.write_all(&frame_of(&Message::Verack)).unwrap();
    until_verack(&mut s);

    // After the handshake: a bad checksum and invalid command bytes are dropped ...
    let mut bad_checksum = frame_of(&Message::Ping(2));
    bad_checksum[20] ^= 0xff;
    s.write_all(&bad_checksum).unwrap();
    let mut bad_command = frame_of(&Message::Ping(3));
    bad_command[4..16].copy_from_slice(b"p\x01ng\0\0\0\0\0\0\0\0");
    s.write_all(&bad_command).unwrap();
    // ... a second version and verack, sendtxrcncl, a fee filter outside the money range and a
    // sendcmpct of version 1 are ignored; a reject with a long reason is delivered.
    s.write_all(&frame_of(&Message::Version(version()))).unwrap();
    s.write_all(&frame_of(&Message::Verack)).unwrap();
    s.write_all(&frame_of(&Message::SendTxRcncl(SendTxRcncl { version: 1, salt: 7 }))).unwrap();
    s.write_all(&frame_of(&Message::FeeFilter(-5))).unwrap();
    s.write_all(&frame_of(&Message::SendCmpct(SendCmpct { send_compact: true, version: 1 }))).unwrap();
    let reason = "txn-mempool-conflict: ".to_string() + &"x".repeat(200);
    let reject =
        Message::Reject(Reject { message: "tx".into(), code: RejectCode::DUPLICATE, reason, hash: Some([1; 32]) });
    s.write_all(&frame_of(&reject)).unwrap();
    answers_ping(&mut s, 99);
    drop(s);

    let id = listener.wait_for("accept", |e| e["event"] == "accept")["peer"].as_u64().unwrap();
    let mine = |event: &'static str| move |e: &Value| e["event"] == event && e["peer"] == id;
    let stats = listener.wait_for("stats", mine("stats"));
    let disconnect = listener.wait_for("disconnect", mine("disconnect"));
    assert_eq!(disconnect["kind"], "remote_closed", "nothing was fatal: {disconnect}");
    // The early ping, the second version (twice), the second verack, sendtxrcncl, the fee filter
    // and the sendcmpct of version 1.
    assert_eq!(stats["ignored_received"], 7, "{stats}");
    assert_eq!(stats["dropped_frames"], 2, "{stats}");
    assert_eq!(stats["per_command_other"]["messages_received"], 2, "{stats}");
    assert_eq!(stats["per_command_other"]["bytes_received"], 64, "{stats}");
    assert_eq!(stats["wants_headers"], true, "sendheaders before verack: {stats}");
    assert!(stats["fee_filter"].is_null(), "{stats}");
    let dropped: Vec<&Value> = listener.events.iter().filter(|e| e["event"] == "dropped").collect();
    assert_eq!(dropped.len(), 2, "{:#?}", listener.events);
    assert!(dropped[0]["reason"].as_str().unwrap().contains("checksum"), "{}", dropped[0]);
    let got_reject =
        listener.events.iter().any(|e| e["event"] == "recv" && e["peer"] == id && e["command"] == "reject");
    assert!(got_reject, "the reject was received");

    // A wrong magic still ends the peer, reported as such even with an absurd length.
    let mut s = TcpStream::connect(listener.addr()).expect("connects");
    let mut wrong = frame_of(&Message::Version(version()));
    wrong[..4].copy_from_slice(&Network::MAINNET.magic().to_bytes());
    wrong[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    s.write_all(&wrong).unwrap();
    let accept = listener.wait_for("second accept", |e| e["event"] == "accept" && e["peer"] != id);
    let second = accept["peer"].as_u64().unwrap();
    let d = listener.wait_for("disconnect", |e| e["event"] == "disconnect" && e["peer"] == second);
    assert_eq!(d["kind"], "bad_frame", "{d}");
    assert!(d["reason"].as_str().unwrap().contains("magic"), "{d}");
}
