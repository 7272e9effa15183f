//! Writes the seed corpora from the shared Core vectors:
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds [-- path/to/core-messages.json]
//! ```
//!
//! The default path is `../shared/vectors/core-messages.json` beside the project root. Seeds are
//! named `seed-<vector>` in `fuzz/corpus/<target>/`; running again overwrites them and leaves
//! everything else in the corpus alone. Input formats are documented on each target's function in
//! `btcpeer_fuzz` (crates/btcpeer/tests/fuzz_harness/).

use std::path::{Path, PathBuf};

use btcpeer::wire::Command;
use btcpeer_fuzz::selector_for;
use serde_json::Value;

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// A `(selector or kind, u16 length, bytes)` record as the targets read them.
fn record(tag: u8, bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).expect("vector fits a record");
    let mut out = vec![tag];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

struct Writer {
    root: PathBuf,
    count: usize,
}

impl Writer {
    fn put(&mut self, target: &str, name: &str, data: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        std::fs::write(dir.join(format!("seed-{name}")), data).expect("write seed");
        self.count += 1;
    }
}

fn main() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let vectors =
        std::env::args().nth(1).map_or_else(|| fuzz.join("../../shared/vectors/core-messages.json"), PathBuf::from);
    let text = std::fs::read_to_string(&vectors).unwrap_or_else(|e| panic!("{}: {e}", vectors.display()));
    let json: Value = serde_json::from_str(&text).expect("vectors are JSON");
    let list = json["vectors"].as_array().expect("a vectors array");
    let mut w = Writer { root: fuzz.join("corpus"), count: 0 };

    let mut stream = Vec::new();
    let mut v2_records = Vec::new();
    let mut peer_records = Vec::new();
    for v in list {
        let name = v["name"].as_str().expect("name");
        let command = v["command"].as_str().expect("command");
        let frame = unhex(v["frame_hex"].as_str().expect("frame_hex"));
        let payload = unhex(v["payload_hex"].as_str().expect("payload_hex"));
        let contents = unhex(v["v2_contents_hex"].as_str().expect("v2_contents_hex"));
        let selector = selector_for(command).unwrap_or_else(|| panic!("{name}: no selector for {command}"));
        assert_eq!(btcpeer_fuzz::command_for(selector), Command::new(command).expect("valid"));

        w.put("frame_v1", name, &frame);
        stream.extend_from_slice(&frame);

        let mut p = vec![selector];
        p.extend_from_slice(&payload);
        w.put("payload", name, &p);

        // v2_packet, records mode, 4 MB limit: the vector's BIP324 contents as one genuine packet.
        let r = record(0, &contents);
        let mut packet = vec![0x01];
        packet.extend_from_slice(&r);
        w.put("v2_packet", name, &packet);
        v2_records.extend_from_slice(&r);

        // peer: v1, protocol 70016, the vector as the one message after the handshake.
        let r = record(selector, &payload);
        let mut peer = vec![0x00];
        peer.extend_from_slice(&r);
        w.put("peer", name, &peer);
        // Versions, verack and the feature messages end the peer at once; keep them out of the
        // long stream so that it reaches every other handler.
        if !matches!(command, "version" | "verack" | "wtxidrelay" | "sendaddrv2" | "sendtxrcncl") {
            peer_records.extend_from_slice(&r);
        }
    }
    w.put("frame_v1", "all", &stream);

    let mut all = vec![0x01];
    all.extend_from_slice(&v2_records);
    w.put("v2_packet", "all", &all);
    // A decoy, a genuine ping, a tampered packet; then the same on a 13-byte limit.
    let mut mixed = vec![0x01];
    mixed.extend(record(1, &[0u8; 20]));
    mixed.extend(record(0, &[18, 1, 2, 3, 4, 5, 6, 7, 8]));
    mixed.extend(record(2 | (5 << 2), &[19, 1, 2, 3, 4, 5, 6, 7, 8]));
    w.put("v2_packet", "decoy-ping-tampered", &mixed);
    mixed[0] = 0x01 | (2 << 1);
    w.put("v2_packet", "small-limit", &mixed);
    w.put("v2_packet", "raw", &[0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03]);

    // v2_handshake, scripted remote, both roles: 16 bytes of garbage, no decoys, flips or cut,
    // then a ping and a pong after the handshake.
    let mut script = 16u16.to_le_bytes().to_vec();
    script.push(0);
    script.extend(record(0, &[18, 1, 2, 3, 4, 5, 6, 7, 8]));
    script.extend(record(0, &[19, 1, 2, 3, 4, 5, 6, 7, 8]));
    for (flags, name) in [(0x02u8, "responder-clean"), (0x03, "initiator-clean"), (0x17, "initiator-decoys")] {
        let mut s = vec![flags];
        s.extend_from_slice(&script);
        w.put("v2_handshake", name, &s);
    }
    // Decoys from the remote (shape bits 0-1), one flip at byte 70 (bits 2-4), a cut (bit 5).
    let mut s = vec![0x02];
    s.extend(100u16.to_le_bytes());
    s.push(2 | (1 << 2) | 0x20);
    s.extend(10u16.to_le_bytes());
    s.extend(300u16.to_le_bytes());
    s.extend(70u16.to_le_bytes());
    s.push(0x40);
    s.extend(5000u16.to_le_bytes());
    w.put("v2_handshake", "responder-decoys-flip-cut", &s);
    // Raw remotes: a v1 version prefix, then a would-be key cut short.
    let mut v1 = vec![0x00];
    v1.extend_from_slice(&stream[..40]);
    w.put("v2_handshake", "raw-v1-prefix", &v1);
    let mut key = vec![0x01];
    key.extend([0x42u8; 80]);
    w.put("v2_handshake", "raw-initiator-key", &key);

    // peer: every message after the handshake (NODE_BLOOM offered, so that bloom messages are
    // accepted), on v1 and v2, with and without feature messages, at an old protocol version, and
    // with a garbage record.
    for (flags, name) in
        [(0x40u8, "all-v1"), (0x41, "all-v2"), (0x62, "all-v1-prefer-features"), (0x50, "all-v1-70002")]
    {
        let mut p = vec![flags];
        p.extend_from_slice(&peer_records);
        w.put("peer", name, &p);
    }
    let mut garbage = vec![0x00];
    garbage.extend(record(15, &7u64.to_le_bytes()));
    garbage.extend(record(0xff, b"not a frame at all, just bytes"));
    w.put("peer", "ping-then-garbage", &garbage);

    store_seeds(&mut w);
    println!("wrote {} seeds under {}", w.count, w.root.display());
}

/// `store_load`: each loader's selector byte, then a valid file (an empty one and a small one).
fn store_seeds(w: &mut Writer) {
    use btcpeer::bitcoin::p2p::ServiceFlags;
    use btcpeer::bitcoin::p2p::address::{AddrV2, AddrV2Message};
    use btcpeer::core::addrbook::{AddrBook, Endpoint};

    let now = 1_700_000_000;
    let empty = AddrBook::new([7; 32], 1);
    let mut book = AddrBook::new([7; 32], 1);
    let source = Endpoint::new(AddrV2::Ipv4([9, 9, 9, 9].into()), 8333);
    let addrs: Vec<AddrV2Message> = (0..20u8)
        .map(|i| AddrV2Message {
            time: now as u32,
            services: ServiceFlags::NETWORK,
            addr: AddrV2::Ipv4([8, i, 1, 1].into()),
            port: 8333,
        })
        .chain([AddrV2Message {
            time: now as u32,
            services: ServiceFlags::NONE,
            addr: AddrV2::TorV3([3; 32]),
            port: 8333,
        }])
        .collect();
    book.add(&addrs, &source, now);
    book.good(&Endpoint::new(AddrV2::Ipv4([8, 1, 1, 1].into()), 8333), now);
    for (name, b) in [("addrbook-empty", &empty), ("addrbook-small", &book)] {
        let mut data = vec![0u8];
        data.extend_from_slice(&b.encode());
        w.put("store_load", name, &data);
    }
    // The discouragement filter's file is 539 KB, past what the fuzzer feeds: no seed for it.
    use btcpeer::core::node::bans::{BanList, encode_anchors};
    let mut list = BanList::new();
    list.ban("10.0.0.0/8".parse().expect("a subnet"), now + 3600);
    list.ban(std::net::IpAddr::from([1, 2, 3, 4]).into(), now + 60);
    let anchors = encode_anchors(&[
        "1.2.3.4:8333".parse().expect("an address"),
        "[2001:db8::1]:8333".parse().expect("an address"),
    ]);
    for (name, selector, file) in [("bans", 1u8, list.encode()), ("anchors", 3, anchors)] {
        let mut data = vec![selector];
        data.extend_from_slice(&file);
        w.put("store_load", name, &data);
    }
}
