//! R-T3, R-T4: the BIP324 v2 transport: handshake in both roles, every message kind through
//! encrypted packets, decoys, rekeying, garbage of 0 and 4,095 bytes, tampered and oversized
//! packets, and choosing between v1 and v2.

mod common;

use std::sync::{Arc, Mutex};

use btcpeer::network::Network;
use btcpeer::peer::{DisconnectReason, Handler, NoopHandler, Peer, PeerConfig, Transport, V2Policy, Violation};
use btcpeer::transport::stream::{FrameReader, FrameWriter, v2_pair};
use btcpeer::transport::v2::V2Error;
use btcpeer::transport::v2_handshake::{self, V2Options};
use btcpeer::wire::{Command, Message};
use bytes::{Bytes, BytesMut};
use common::samples::one_of_each;
use common::*;

fn v2(policy: V2Policy) -> PeerConfig {
    builder().v2(policy).services(btcpeer::bitcoin::p2p::ServiceFlags::BLOOM).build().unwrap()
}

/// Collects every message after the handshake.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Message>>>);

impl Handler for Collect {
    fn on_message(&self, _: &Peer, message: Message, _: Bytes) {
        self.0.lock().unwrap().push(message);
    }
}

async fn wait_for(c: &Collect, n: usize) -> Vec<Message> {
    within(async {
        loop {
            if c.0.lock().unwrap().len() >= n {
                return c.0.lock().unwrap().clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    })
    .await
}

#[tokio::test]
async fn r_t3_a_v2_pair_handshakes_and_carries_every_message_kind() {
    let got = Collect::default();
    let (o, i) = duplex_pair(v2(V2Policy::Require), NoopHandler, v2(V2Policy::Prefer), got.clone());
    let ro = within(o.handshake()).await.expect("outbound v2 handshake");
    let ri = within(i.handshake()).await.expect("inbound v2 handshake");
    assert_eq!((ro.transport, ri.transport), (Transport::V2, Transport::V2));
    assert!(ro.version.services.has(btcpeer::bitcoin::p2p::ServiceFlags::P2P_V2), "v2 peers advertise NODE_P2P_V2");
    let messages = one_of_each();
    let mut last = None;
    for m in &messages {
        last = Some(o.queue_message(m).unwrap());
    }
    within(last.unwrap().wait()).await;
    let received = wait_for(&got, messages.len()).await;
    // Compared by encoding: a merkle block's flag bits come back padded to whole bytes.
    let encode = |m: &Message| {
        let mut b = BytesMut::new();
        m.encode_payload(&mut b).unwrap();
        (m.command(), b)
    };
    assert_eq!(
        received.iter().map(encode).collect::<Vec<_>>(),
        messages.iter().map(encode).collect::<Vec<_>>(),
        "every kind, short ids and long forms alike, arrives intact and in order"
    );
    let (so, si) = (o.stats(), i.stats());
    assert_eq!((so.transport, si.transport), (Transport::V2, Transport::V2));
    assert_eq!(so.bytes_sent, si.bytes_received, "bytes on the wire, handshake included, both directions");
    assert_eq!(si.bytes_sent, so.bytes_received);
    assert_eq!(so.per_command["ping"].bytes_sent, 3 + 1 + 1 + 8 + 16, "a ping packet: length, header, id, nonce, tag");
    o.disconnect();
    within(i.wait_for_disconnect()).await;
}

#[tokio::test]
async fn r_t3_more_than_224_messages_each_way_survive_rekeying() {
    let (h1, mut rx1) = recorder();
    let (h2, mut rx2) = recorder();
    let (o, i) = duplex_pair(v2(V2Policy::Prefer), h1, v2(V2Policy::Prefer), h2);
    within(o.handshake()).await.unwrap();
    within(i.handshake()).await.unwrap();
    for n in 0..600u64 {
        let _ = o.queue_message(&Message::Ping(n)).unwrap();
        let _ = i.queue_message(&Message::Ping(10_000 + n)).unwrap();
    }
    for n in 0..600u64 {
        assert_eq!(next_message(&mut rx2, |m| matches!(m, Message::Ping(_))).await, Message::Ping(n));
        assert_eq!(next_message(&mut rx1, |m| matches!(m, Message::Ping(_))).await, Message::Ping(10_000 + n));
    }
    // The pongs went back through the rekeyed ciphers too.
    assert!(o.is_connected() && i.is_connected());
    o.disconnect();
}

#[tokio::test]
async fn r_t3_garbage_of_0_and_4095_bytes_and_handshake_decoys() {
    for (garbage_out, garbage_in) in [(0, 0), (4_095, 4_095), (0, 4_095), (4_095, 0)] {
        let out =
            builder().v2(V2Policy::Require).v2_garbage_len(garbage_out).v2_decoys(vec![0, 10, 5_000]).build().unwrap();
        let inb = builder().v2(V2Policy::Require).v2_garbage_len(garbage_in).v2_decoys(vec![1]).build().unwrap();
        let (o, i) = duplex_pair(out, NoopHandler, inb, NoopHandler);
        let info = within(o.handshake()).await.unwrap_or_else(|e| panic!("{garbage_out}/{garbage_in}: {e}"));
        assert_eq!(info.transport, Transport::V2);
        within(i.handshake()).await.unwrap();
        let done = o.queue_message(&Message::Ping(1)).unwrap();
        assert_eq!(within(done.wait()).await, btcpeer::peer::SendOutcome::Sent);
        o.disconnect();
        within(i.wait_for_disconnect()).await;
    }
}

/// An inbound v2 peer under test and a hand-driven v2 initiator.
async fn v2_remote(
    cfg: PeerConfig,
    handler: impl Handler,
) -> (
    Peer,
    FrameReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>,
    FrameWriter<tokio::io::WriteHalf<tokio::io::DuplexStream>>,
) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let peer = Peer::inbound(cfg, "127.0.0.1:50000", handler);
    peer.associate(a).unwrap();
    let (mut r, mut w) = tokio::io::split(b);
    let session =
        within(v2_handshake::initiate(&mut r, &mut w, &Network::REGTEST, &V2Options::default())).await.unwrap();
    let (mut reader, mut writer, _, _) = v2_pair(r, w, session);
    let send = |w: &mut FrameWriter<_>, m: &Message| {
        let mut p = BytesMut::new();
        m.encode_payload(&mut p).unwrap();
        w.push(m.command(), &p.freeze());
    };
    send(&mut writer, &Message::Version(raw_version(70016, 77)));
    send(&mut writer, &Message::Verack);
    writer.flush().await.unwrap();
    loop {
        let (frame, _) = within(reader.read_frame()).await.unwrap();
        if frame.command == Command::VERACK {
            break;
        }
    }
    within(peer.handshake()).await.unwrap();
    (peer, reader, writer)
}

fn push(w: &mut FrameWriter<tokio::io::WriteHalf<tokio::io::DuplexStream>>, m: &Message) {
    let mut p = BytesMut::new();
    m.encode_payload(&mut p).unwrap();
    w.push(m.command(), &p.freeze());
}

#[tokio::test]
async fn r_t3_decoy_packets_between_messages_are_skipped() {
    let got = Collect::default();
    let (peer, _reader, mut writer) = v2_remote(v2(V2Policy::Prefer), got.clone()).await;
    for n in 0..20u64 {
        writer.push_decoy(usize::try_from(n).unwrap() * 100).expect("a v2 stream");
        push(&mut writer, &Message::Ping(n));
    }
    writer.flush().await.unwrap();
    let received = wait_for(&got, 20).await;
    assert_eq!(received, (0..20).map(Message::Ping).collect::<Vec<_>>());
    peer.disconnect();
}

#[tokio::test]
async fn r_t3_a_message_without_a_short_id_goes_in_the_long_form() {
    let got = Collect::default();
    let (peer, _reader, mut writer) = v2_remote(v2(V2Policy::Prefer), got.clone()).await;
    let unknown = Message::Unknown { command: Command::new("xversion").unwrap(), payload: Bytes::from_static(b"abc") };
    push(&mut writer, &Message::SendHeaders);
    push(&mut writer, &Message::GetAddr);
    push(&mut writer, &unknown);
    writer.flush().await.unwrap();
    assert_eq!(wait_for(&got, 3).await, vec![Message::SendHeaders, Message::GetAddr, unknown]);
    assert!(peer.wants_headers());
    peer.disconnect();
}

#[tokio::test]
async fn r_t3_a_tampered_packet_ends_the_peer_with_an_authentication_failure() {
    let (peer, _reader, mut writer) = v2_remote(v2(V2Policy::Prefer), NoopHandler).await;
    push(&mut writer, &Message::Ping(1));
    // Take the encrypted bytes out of the batch, flip one, and send them.
    let mut raw = take_batch(&mut writer);
    let last = raw.len() - 5;
    raw[last] ^= 0x01;
    writer.get_mut().write_all(&raw).await.unwrap();
    assert_eq!(within(peer.wait_for_disconnect()).await, DisconnectReason::V2(V2Error::Authentication));
}

/// The pending batch of a writer, taken without sending it.
fn take_batch(writer: &mut FrameWriter<tokio::io::WriteHalf<tokio::io::DuplexStream>>) -> BytesMut {
    writer.take_pending()
}

use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn r_t3_an_oversized_packet_length_is_refused_before_allocating() {
    let (peer, _reader, mut writer) = v2_remote(v2(V2Policy::Prefer), NoopHandler).await;
    // A genuine packet of 5 MB (long form: 1 + 12 + 5,000,000 bytes of contents), of which only the
    // first 100 bytes are sent: the length alone is refused.
    push(
        &mut writer,
        &Message::Unknown { command: Command::new("big").unwrap(), payload: Bytes::from(vec![0u8; 5_000_000]) },
    );
    let raw = take_batch(&mut writer);
    writer.get_mut().write_all(&raw[..100]).await.unwrap();
    let reason = within(peer.wait_for_disconnect()).await;
    assert!(
        matches!(reason, DisconnectReason::V2(V2Error::PacketTooLarge { length: 5_000_013, max: 4_000_013 })),
        "{reason:?}"
    );
}

#[tokio::test]
async fn r_t4_a_v1_initiator_to_a_v2_preferring_responder_carries_on_in_v1() {
    let (h, mut rx) = recorder();
    let (o, i) = duplex_pair(builder().build().unwrap(), NoopHandler, v2(V2Policy::Prefer), h);
    let ro = within(o.handshake()).await.expect("v1 initiator accepted");
    within(i.handshake()).await.unwrap();
    assert_eq!((ro.transport, i.stats().transport), (Transport::V1, Transport::V1));
    let _ = o.queue_message(&Message::Ping(5)).unwrap();
    assert_eq!(next_message(&mut rx, |m| matches!(m, Message::Ping(_))).await, Message::Ping(5));
    // The 16 bytes used to detect v1 were not lost: the version frame was counted whole.
    assert_eq!(i.stats().bytes_received, o.stats().bytes_sent);
    o.disconnect();
}

#[tokio::test]
async fn r_t4_a_v1_only_responder_makes_a_v2_preferring_initiator_advise_a_v1_retry() {
    let (o, i) = duplex_pair(v2(V2Policy::Prefer), NoopHandler, builder().build().unwrap(), NoopHandler);
    assert_eq!(within(o.wait_for_disconnect()).await, DisconnectReason::V1RetryAdvised);
    // The v1 responder saw a key where it expected a frame header and hung up without a word.
    assert!(matches!(within(i.wait_for_disconnect()).await, DisconnectReason::Frame(_)));
    // With `Require`, no retry is advised, but the likely cause is named, as a typed reason.
    let (o, _i) = duplex_pair(v2(V2Policy::Require), NoopHandler, builder().build().unwrap(), NoopHandler);
    let reason = within(o.wait_for_disconnect()).await;
    assert_eq!(reason, DisconnectReason::V2Unanswered);
    assert!(reason.suggests_v1_only() && DisconnectReason::V1RetryAdvised.suggests_v1_only());
    assert!(reason.to_string().contains("only v1"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_t4_over_tcp_a_reset_from_a_v1_only_node_also_advises_a_v1_retry() {
    // Over TCP a v1-only node that refuses our key while bytes are still unread answers with a
    // reset, not a clean close: the advice must be the same.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, from) = listener.accept().await.unwrap();
        let peer = Peer::inbound(builder().build().unwrap(), from, NoopHandler);
        peer.associate(stream).unwrap();
        peer.wait_for_disconnect().await
    });
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Garbage large enough that the v1 node closes with unread bytes.
    let cfg = builder().v2(V2Policy::Prefer).v2_garbage_len(4_095).build().unwrap();
    let peer = Peer::outbound(cfg, addr, NoopHandler);
    peer.associate(stream).unwrap();
    assert_eq!(within(peer.wait_for_disconnect()).await, DisconnectReason::V1RetryAdvised);
    assert!(matches!(within(server).await.unwrap(), DisconnectReason::Frame(_)));
}

#[tokio::test]
async fn r_t4_a_peer_that_requires_v2_refuses_a_v1_initiator() {
    let (o, i) = duplex_pair(builder().build().unwrap(), NoopHandler, v2(V2Policy::Require), NoopHandler);
    assert_eq!(within(i.wait_for_disconnect()).await, DisconnectReason::Protocol(Violation::V1NotAllowed));
    assert!(matches!(within(o.wait_for_disconnect()).await, DisconnectReason::RemoteClosed { .. }));
}

#[tokio::test]
async fn r_t3_v2_vectors_contents_match_cores_framework() {
    // The plaintext contents Core's framework puts in v2 packets (short id or long form + payload).
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/core-messages.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        assert!(std::env::var_os("CI").is_none(), "CI must have the vectors");
        return;
    };
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for v in doc["vectors"].as_array().unwrap() {
        let command = Command::new(v["command"].as_str().unwrap()).unwrap();
        if !command.is_known() {
            continue; // BIP434's `feature` has a framework-only id
        }
        let payload =
            btcpeer::bitcoin::hex::FromHex::from_hex(v["payload_hex"].as_str().unwrap()).map(|p: Vec<u8>| p).unwrap();
        let mut contents = Vec::new();
        btcpeer::transport::v2::encode_contents(command, &payload, &mut contents);
        let expected: Vec<u8> =
            btcpeer::bitcoin::hex::FromHex::from_hex(v["v2_contents_hex"].as_str().unwrap()).unwrap();
        assert_eq!(contents, expected, "{}", v["name"]);
        let frame = btcpeer::transport::v2::decode_contents(Bytes::from(expected), 4_000_000).unwrap();
        assert_eq!((frame.command, &frame.payload[..]), (command, &payload[..]));
        checked += 1;
    }
    assert_eq!(checked, 39);
}
