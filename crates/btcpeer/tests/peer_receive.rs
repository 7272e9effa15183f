//! R-R1 … R-R6, R-O1, R-O2: delivering messages to the application, the peer's own handling of
//! some of them, bad input, the statistics snapshot and logging.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use btcpeer::bitcoin::bip152::{BlockTransactions, BlockTransactionsRequest, HeaderAndShortIds};
use btcpeer::bitcoin::block::Header;
use btcpeer::bitcoin::p2p::address::AddrV2Message;
use btcpeer::bitcoin::p2p::message_blockdata::{GetBlocksMessage, GetHeadersMessage};
use btcpeer::bitcoin::p2p::message_compact_blocks::SendCmpct;
use btcpeer::bitcoin::p2p::message_filter::{CFCheckpt, CFHeaders, CFilter, GetCFCheckpt, GetCFHeaders, GetCFilters};
use btcpeer::bitcoin::p2p::{Address, ServiceFlags};
use btcpeer::bitcoin::{Block, MerkleBlock, Transaction};
use btcpeer::peer::{
    Direction, DisconnectReason, Handler, NoopHandler, Peer, PeerEvent, ReadEvent, SendOutcome, Transport, Violation,
};
use btcpeer::wire::{Command, FilterAdd, FilterLoad, FrameError, Inventory, Message, Reject, VersionMessage, frame};
use bytes::Bytes;
use common::samples::one_of_each;
use common::*;

type Log<T> = Arc<Mutex<Vec<T>>>;

/// Records the name of every handler method called.
#[derive(Clone, Default)]
struct Methods {
    seen: Log<&'static str>,
    reads: Log<(Option<Command>, usize)>,
    writes: Log<(Command, usize)>,
}

impl Methods {
    fn hit(&self, name: &'static str) {
        self.seen.lock().unwrap().push(name);
    }
}

impl Handler for Methods {
    fn on_read(&self, _: &Peer, e: &ReadEvent<'_>) {
        self.reads.lock().unwrap().push((e.command, e.bytes));
    }
    fn on_write(&self, _: &Peer, command: Command, bytes: usize) {
        self.writes.lock().unwrap().push((command, bytes));
    }
    fn start_height(&self) -> i32 {
        100
    }
    fn on_addr(&self, _: &Peer, _: Vec<(u32, Address)>) {
        self.hit("addr")
    }
    fn on_addrv2(&self, _: &Peer, _: Vec<AddrV2Message>) {
        self.hit("addrv2")
    }
    fn on_inv(&self, _: &Peer, _: Vec<Inventory>) {
        self.hit("inv")
    }
    fn on_getdata(&self, _: &Peer, _: Vec<Inventory>) {
        self.hit("getdata")
    }
    fn on_notfound(&self, _: &Peer, _: Vec<Inventory>) {
        self.hit("notfound")
    }
    fn on_getblocks(&self, _: &Peer, _: GetBlocksMessage) {
        self.hit("getblocks")
    }
    fn on_getheaders(&self, _: &Peer, _: GetHeadersMessage) {
        self.hit("getheaders")
    }
    fn on_headers(&self, _: &Peer, _: Vec<Header>) {
        self.hit("headers")
    }
    fn on_block(&self, _: &Peer, block: Block, raw: Bytes) {
        // The raw payload is the block's exact encoding.
        assert_eq!(raw, Bytes::from(btcpeer::bitcoin::consensus::serialize(&block)));
        self.hit("block")
    }
    fn on_tx(&self, _: &Peer, _: Transaction) {
        self.hit("tx")
    }
    fn on_mempool(&self, _: &Peer) {
        self.hit("mempool")
    }
    fn on_getaddr(&self, _: &Peer) {
        self.hit("getaddr")
    }
    fn on_ping(&self, _: &Peer, _: u64) {
        self.hit("ping")
    }
    fn on_pong(&self, _: &Peer, _: u64) {
        self.hit("pong")
    }
    fn on_reject(&self, _: &Peer, _: Reject) {
        self.hit("reject")
    }
    fn on_sendheaders(&self, _: &Peer) {
        self.hit("sendheaders")
    }
    fn on_feefilter(&self, _: &Peer, _: i64) {
        self.hit("feefilter")
    }
    fn on_filterload(&self, _: &Peer, _: FilterLoad) {
        self.hit("filterload")
    }
    fn on_filteradd(&self, _: &Peer, _: FilterAdd) {
        self.hit("filteradd")
    }
    fn on_filterclear(&self, _: &Peer) {
        self.hit("filterclear")
    }
    fn on_merkleblock(&self, _: &Peer, _: MerkleBlock) {
        self.hit("merkleblock")
    }
    fn on_sendcmpct(&self, _: &Peer, _: SendCmpct) {
        self.hit("sendcmpct")
    }
    fn on_cmpctblock(&self, _: &Peer, _: HeaderAndShortIds) {
        self.hit("cmpctblock")
    }
    fn on_getblocktxn(&self, _: &Peer, _: BlockTransactionsRequest) {
        self.hit("getblocktxn")
    }
    fn on_blocktxn(&self, _: &Peer, _: BlockTransactions) {
        self.hit("blocktxn")
    }
    fn on_getcfilters(&self, _: &Peer, _: GetCFilters) {
        self.hit("getcfilters")
    }
    fn on_cfilter(&self, _: &Peer, _: CFilter) {
        self.hit("cfilter")
    }
    fn on_getcfheaders(&self, _: &Peer, _: GetCFHeaders) {
        self.hit("getcfheaders")
    }
    fn on_cfheaders(&self, _: &Peer, _: CFHeaders) {
        self.hit("cfheaders")
    }
    fn on_getcfcheckpt(&self, _: &Peer, _: GetCFCheckpt) {
        self.hit("getcfcheckpt")
    }
    fn on_cfcheckpt(&self, _: &Peer, _: CFCheckpt) {
        self.hit("cfcheckpt")
    }
    fn on_unknown(&self, _: &Peer, command: Command, payload: Bytes) {
        assert_eq!((command.as_str(), &payload[..]), ("xversion", &b"hi"[..]));
        self.hit("unknown")
    }
}

#[tokio::test]
async fn r_r1_every_handler_method_is_reached_in_wire_order() {
    let inbound = Methods::default();
    let (o, i) = duplex_pair(
        config(),
        NoopHandler,
        builder().services(ServiceFlags::NETWORK | ServiceFlags::BLOOM).build().unwrap(),
        inbound.clone(),
    );
    within(o.handshake()).await.unwrap();
    let messages = one_of_each();
    let mut last = None;
    for m in &messages {
        last = Some(o.queue_message(m).unwrap());
    }
    assert_eq!(within(last.unwrap().wait()).await, SendOutcome::Sent);
    let expected: Vec<&str> = messages
        .iter()
        .map(|m| match m.command().as_str() {
            "xversion" => "unknown",
            other => Box::leak(other.to_string().into_boxed_str()) as &str,
        })
        .collect();
    within(async {
        while inbound.seen.lock().unwrap().len() < expected.len() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(*inbound.seen.lock().unwrap(), expected, "one call per message, in wire order");
    // on_read saw every frame, handshake included, with its wire size.
    let stats = i.stats();
    let reads = inbound.reads.lock().unwrap().clone();
    assert_eq!(reads.len() as u64, stats.messages_received);
    assert_eq!(reads.iter().map(|r| r.1 as u64).sum::<u64>(), stats.bytes_received);
    assert_eq!(reads[0].0, Some(Command::VERSION));
    let writes = inbound.writes.lock().unwrap().clone();
    assert_eq!(writes.iter().map(|w| w.1 as u64).sum::<u64>(), i.stats().bytes_sent);
    assert!(writes.iter().any(|w| w.0 == Command::PONG), "the automatic pong went out");
    assert_eq!(stats.unknown_received, 1);
    o.disconnect();
    within(i.wait_for_disconnect()).await;
}

#[tokio::test]
async fn r_r3_ping_gets_a_pong_and_pong_sets_the_round_trip() {
    let (h, mut rx) = recorder();
    let (o, i) = duplex_pair(config(), h, config(), NoopHandler);
    within(o.handshake()).await.unwrap();
    for n in [1u64, 2, 3] {
        let _ = o.queue_message(&Message::Ping(n)).unwrap();
        assert_eq!(next_message(&mut rx, |m| matches!(m, Message::Pong(_))).await, Message::Pong(n));
    }
    let s = o.stats();
    let (last, min) = (s.last_ping_rtt.expect("rtt"), s.min_ping_rtt.expect("min rtt"));
    assert!(min <= last);
    assert_eq!(s.outstanding_ping, None);
    // A pong that matches nothing changes nothing.
    let _ = i.queue_message(&Message::Pong(999)).unwrap();
    next_message(&mut rx, |m| *m == Message::Pong(999)).await;
    assert_eq!(o.stats().last_ping_rtt, Some(last));
    o.disconnect();
}

#[tokio::test]
async fn r_r3_preferences_are_recorded() {
    let (o, i) = duplex_pair(config(), NoopHandler, config(), NoopHandler);
    within(o.handshake()).await.unwrap();
    within(i.handshake()).await.unwrap();
    let _ = o.queue_message(&Message::SendHeaders).unwrap();
    let _ = o.queue_message(&Message::SendCmpct(SendCmpct { send_compact: true, version: 2 })).unwrap();
    let last = o.queue_message(&Message::FeeFilter(2_500)).unwrap();
    within(last.wait()).await;
    within(async {
        while i.fee_filter().is_none() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(i.wants_headers());
    assert_eq!(i.compact_blocks(), Some(SendCmpct { send_compact: true, version: 2 }));
    assert_eq!(i.fee_filter_sat_per_kvb(), Some(2_500));
    assert_eq!(i.fee_filter(), Some(btcpeer::bitcoin::FeeRate::from_sat_per_kwu(625)));
    let s = i.stats();
    assert!(s.wants_headers && s.fee_filter == Some(2_500) && s.compact_blocks.is_some());
    o.disconnect();
}

async fn after_handshake_send(msg: Message) -> (DisconnectReason, Vec<Message>) {
    let (h, mut rx) = recorder();
    let (o, i) = duplex_pair(config(), h, config(), NoopHandler);
    within(o.handshake()).await.unwrap();
    let _ = o.queue_message(&msg).unwrap();
    let reason = within(i.wait_for_disconnect()).await;
    within(o.wait_for_disconnect()).await;
    let mut got = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let Event::Message(m) = ev {
            got.push(m);
        }
    }
    (reason, got)
}

#[tokio::test]
async fn c1_duplicate_version_or_verack_after_the_handshake_is_ignored_and_counted() {
    for msg in [Message::Version(raw_version(70016, 5)), Message::Verack] {
        let (h, mut rx) = recorder();
        let (o, i) = duplex_pair(config(), h, config(), NoopHandler);
        within(o.handshake()).await.unwrap();
        within(i.handshake()).await.unwrap();
        let _ = o.queue_message(&msg).unwrap();
        let _ = o.queue_message(&Message::Ping(77)).unwrap();
        within(async {
            while o.stats().per_command.of(Command::PONG).messages_received == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(i.is_connected(), "{msg:?} ended the peer");
        assert_eq!(i.stats().ignored_received, 1, "{msg:?} counted as ignored");
        while let Ok(ev) = rx.try_recv() {
            assert!(!matches!(ev, Event::Message(Message::Reject(_))), "no reject for an ignored {msg:?}");
        }
        o.disconnect();
    }
}

#[tokio::test]
async fn c2_wtxidrelay_and_sendaddrv2_after_verack_disconnect_at_every_version() {
    for version in [70016, 70015, 70002] {
        for msg in [Message::WtxidRelay, Message::SendAddrV2] {
            let (peer, mut remote) = outbound_to_remote(config(), NoopHandler);
            remote.accept_handshake(version).await;
            within(peer.handshake()).await.unwrap();
            let command = msg.command();
            remote.send(&msg).await;
            let reason = within(peer.wait_for_disconnect()).await;
            assert_eq!(
                reason,
                DisconnectReason::Protocol(Violation::FeatureAfterVerack(command)),
                "{command} at {version}"
            );
        }
    }
}

#[tokio::test]
async fn r_r4_bloom_messages_without_node_bloom() {
    // At 70011 and later: disconnect.
    for msg in
        [Message::FilterLoad(FilterLoad { filter: vec![0], hash_funcs: 1, tweak: 0, flags: 0 }), Message::MemPool]
    {
        let command = msg.command();
        let (reason, _) = after_handshake_send(msg).await;
        assert_eq!(reason, DisconnectReason::Protocol(Violation::BloomNotOffered(command)));
    }
    // Below 70011: ignored, not passed to the handler, and the peer stays.
    let (h, mut rx) = recorder();
    let (peer, mut remote) = outbound_to_remote(config(), h);
    remote.accept_handshake(70010).await;
    within(peer.handshake()).await.unwrap();
    remote.send(&Message::FilterClear).await;
    remote.send(&Message::Ping(3)).await;
    assert_eq!(remote.recv().await, Some(Message::Pong(3)));
    assert!(peer.is_connected());
    assert_eq!(peer.stats().ignored_received, 1);
    peer.disconnect();
    within(peer.wait_for_disconnect()).await;
    while let Ok(ev) = rx.try_recv() {
        assert!(!matches!(ev, Event::Message(Message::FilterClear)), "filterclear reached the handler");
    }
    // Not enforced when configured so.
    let (o, i) = duplex_pair(config(), NoopHandler, builder().enforce_bloom(false).build().unwrap(), NoopHandler);
    within(o.handshake()).await.unwrap();
    within(o.queue_message(&Message::FilterClear).unwrap().wait()).await;
    let _ = o.queue_message(&Message::Ping(1)).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(i.is_connected());
    o.disconnect();
}

#[tokio::test]
async fn r_r5_messages_the_negotiated_version_does_not_define_are_not_passed_on() {
    let (h, mut rx) = recorder();
    let (peer, mut remote) = outbound_to_remote(config(), h);
    remote.accept_handshake(70011).await;
    within(peer.handshake()).await.unwrap();
    remote.send(&Message::SendHeaders).await; // 70012
    remote.send(&Message::FeeFilter(1)).await; // 70013
    remote.send(&Message::SendCmpct(SendCmpct { send_compact: false, version: 1 })).await; // 70014
    remote.send(&Message::Ping(8)).await;
    assert_eq!(remote.recv().await, Some(Message::Pong(8)));
    let ping = next_message(&mut rx, |_| true).await;
    assert_eq!(ping, Message::Ping(8), "the three undefined messages never reached the handler");
    assert!(!peer.wants_headers());
    assert_eq!(peer.fee_filter(), None);
    assert_eq!(peer.stats().ignored_received, 3);
    peer.disconnect();
}

async fn hostile_frame(bytes: Vec<u8>) -> (DisconnectReason, Vec<Message>) {
    let (peer, mut remote) = outbound_to_remote(config(), NoopHandler);
    remote.accept_handshake(70016).await;
    within(peer.handshake()).await.unwrap();
    remote.send_bytes(&bytes).await;
    let reason = within(peer.wait_for_disconnect()).await;
    (reason, remote.drain().await)
}

fn frame_bytes(msg: &Message) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    frame::encode_frame(msg, &btcpeer::network::Network::REGTEST, &mut buf).unwrap();
    buf.to_vec()
}

#[tokio::test]
async fn r_r6_bad_frames_end_the_peer_with_a_typed_reason() {
    let mut wrong_magic = frame_bytes(&Message::Ping(1));
    wrong_magic[..4].copy_from_slice(&[0xf9, 0xbe, 0xb4, 0xd9]);
    let (reason, _) = hostile_frame(wrong_magic).await;
    assert!(matches!(reason, DisconnectReason::Frame(FrameError::WrongMagic { .. })), "{reason:?}");

    // A bad checksum is not among them: that frame is dropped and counted (C-1, see conformance.rs).

    let mut oversized = frame_bytes(&Message::Ping(1));
    oversized[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    let (reason, _) = hostile_frame(oversized).await;
    assert!(matches!(reason, DisconnectReason::Frame(FrameError::PayloadTooLarge { .. })), "{reason:?}");

    // A sound frame whose payload is malformed: reject, then disconnect.
    let mut malformed = frame_bytes(&Message::Inv(vec![]));
    let payload = [2u8, 0, 0, 0, 0];
    malformed.truncate(24);
    malformed[16..20].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    malformed[20..24].copy_from_slice(&frame::checksum(&payload));
    malformed.extend(payload);
    let (reason, sent) = hostile_frame(malformed).await;
    assert!(matches!(&reason, DisconnectReason::Payload(e) if e.command == Command::INV), "{reason:?}");
    assert!(sent.iter().any(|m| matches!(m, Message::Reject(r) if r.message == "inv")), "{sent:?}");
}

#[tokio::test]
async fn r_r6_unknown_commands_are_counted_never_fatal() {
    let (h, mut rx) = recorder();
    let (peer, mut remote) = outbound_to_remote(config(), h);
    remote.accept_handshake(70016).await;
    within(peer.handshake()).await.unwrap();
    for i in 0..100u8 {
        remote
            .send(&Message::Unknown { command: Command::new("whatever").unwrap(), payload: Bytes::from(vec![i]) })
            .await;
    }
    remote.send(&Message::Ping(4)).await;
    assert_eq!(remote.recv().await, Some(Message::Pong(4)));
    next_message(&mut rx, |m| *m == Message::Ping(4)).await;
    assert_eq!(peer.stats().unknown_received, 100);
    assert!(peer.is_connected());
    peer.disconnect();
}

#[tokio::test]
async fn r_r2_the_channel_adapter_delivers_events_with_backpressure() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let (peer, mut events) = Peer::with_channel(config(), Direction::Outbound, "127.0.0.1:18444", 4);
    peer.associate(a).unwrap();
    let mut remote = remote(b);
    remote.accept_handshake(70016).await;
    let Some(PeerEvent::Handshake(info)) = within(events.recv()).await else { panic!("handshake event") };
    assert_eq!(info.negotiated_version, 70016);
    // The application does not read: the peer stops reading once the channel is full.
    for n in 0..20 {
        remote.send(&Message::Ping(n)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let received = peer.stats().messages_received;
    assert!(received < 2 + 3 + 10, "reading paused while the channel is full ({received})");
    // Disconnecting still works, and the final event is always delivered.
    peer.disconnect();
    within(peer.wait_for_disconnect()).await;
    let mut messages = 0;
    loop {
        match within(events.recv()).await {
            Some(PeerEvent::Message { .. }) => messages += 1,
            Some(PeerEvent::Disconnected(reason)) => {
                assert_eq!(reason, DisconnectReason::LocalRequest);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(messages <= 4, "only what fit in the channel was delivered ({messages})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_o1_a_loopback_tcp_pair_reports_every_snapshot_field_on_both_sides() {
    struct Height(i32);
    impl Handler for Height {
        fn start_height(&self) -> i32 {
            self.0
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let cfg_out = builder().protocol_version(70002).build().unwrap();
    let cfg_in = builder().services(ServiceFlags::NETWORK | ServiceFlags::WITNESS).build().unwrap();
    let accept = tokio::spawn(async move { listener.accept().await.unwrap() });
    let stream = tokio::net::TcpStream::connect(server).await.unwrap();
    let client = stream.local_addr().unwrap();
    let o = Peer::outbound(cfg_out.clone(), server, Height(7));
    o.associate_with_local(stream, client).unwrap();
    let (in_stream, from) = accept.await.unwrap();
    let i = Peer::inbound(cfg_in.clone(), from, Height(9));
    i.associate_with_local(in_stream, server).unwrap();
    within(o.handshake()).await.unwrap();
    within(i.handshake()).await.unwrap();
    // Let the last verack be counted on both sides.
    within(async {
        while o.stats().messages_received < 2 || i.stats().messages_received < 2 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;

    let (so, si) = (o.stats(), i.stats());
    let ua = cfg_out.user_agent();
    // version: 4+8+8+26+26+8 + CompactSize + user agent + 4 + 1, plus the header; then a verack.
    let version_frame = 24 + 80 + 1 + ua.len() as u64 + 5;
    let expected = version_frame + 24;
    for (s, mine, theirs, dir) in
        [(&so, &cfg_out, &cfg_in, Direction::Outbound), (&si, &cfg_in, &cfg_out, Direction::Inbound)]
    {
        assert_eq!(s.direction, dir);
        assert_eq!(s.transport, Transport::V1);
        assert_eq!(s.user_agent, theirs.user_agent());
        assert_eq!(s.services, theirs.services(), "{dir:?}: the remote's services");
        assert_eq!(s.version, theirs.protocol_version(), "{dir:?}: the remote's advertised version");
        assert_eq!(s.negotiated_version, 70002);
        assert!((-1..=1).contains(&s.time_offset), "time offset {}", s.time_offset);
        assert_eq!(s.bytes_sent, expected, "{dir:?} bytes sent: version and verack, no feature messages at 70002");
        assert_eq!(s.bytes_received, expected);
        assert_eq!((s.messages_sent, s.messages_received), (2, 2));
        assert_eq!(s.per_command["version"].bytes_sent, version_frame);
        assert_eq!(s.per_command["verack"].messages_received, 1);
        assert!(s.connected_at.is_some() && s.handshake_at.is_some() && s.last_send.is_some() && s.last_recv.is_some());
        assert_eq!((s.last_ping_rtt, s.min_ping_rtt, s.outstanding_ping), (None, None, None));
        assert!(!s.wants_headers && !s.wants_addrv2 && !s.wtxid_relay);
        assert_eq!((s.queued_messages, s.queued_bytes), (0, 0));
        assert_eq!(s.disconnect_reason, None);
        let _ = mine;
    }
    assert_ne!(so.id, si.id);
    assert!(so.id > 0 && si.id > 0);
    assert_eq!((so.start_height, so.last_block_height), (9, 9));
    assert_eq!((si.start_height, si.last_block_height), (7, 7));
    assert_eq!(so.addr.to_string(), server.to_string());
    assert_eq!(so.local_addr, Some(client));
    assert_eq!(si.addr.to_string(), client.to_string());
    assert_eq!(si.local_addr, Some(server));

    o.disconnect();
    within(i.wait_for_disconnect()).await;
    within(o.wait_for_disconnect()).await;
    assert_eq!(o.stats().disconnect_reason, Some(DisconnectReason::LocalRequest));
    assert_eq!(i.stats().disconnect_reason, Some(DisconnectReason::RemoteClosed { during_handshake: false }));
}

#[tokio::test]
async fn r_o1_last_block_height_only_rises() {
    let (peer, mut remote) = outbound_to_remote(config(), NoopHandler);
    remote.accept_handshake(70016).await; // the remote reports height 100
    within(peer.handshake()).await.unwrap();
    assert_eq!(peer.last_block_height(), 100);
    peer.update_last_block_height(99);
    assert_eq!(peer.last_block_height(), 100);
    peer.update_last_block_height(101);
    assert_eq!(peer.last_block_height(), 101);
    assert_eq!(peer.stats().last_block_height, 101);
    assert_eq!(peer.stats().start_height, 100);
    peer.disconnect();
}

#[allow(dead_code)]
fn _uses(_: VersionMessage) {}

#[tokio::test]
async fn r_r1_a_malformed_raw_block_is_refused_as_a_decoded_one_would_be() {
    #[derive(Clone, Default)]
    struct Raw(Log<Bytes>);
    impl Handler for Raw {
        fn on_raw_block(&self, _: &Peer, raw: Bytes) {
            self.0.lock().unwrap().push(raw);
        }
    }
    let got = Raw::default();
    let (peer, mut remote) = outbound_to_remote(builder().raw_blocks(true).build().unwrap(), got.clone());
    remote.accept_handshake(70016).await;
    within(peer.handshake()).await.unwrap();
    let block = one_of_each().into_iter().find(|m| m.command() == Command::BLOCK).unwrap();
    let Message::Block(b) = &block else { unreachable!() };
    let whole = btcpeer::bitcoin::consensus::serialize(b);
    // One byte short: the last transaction's lock time is cut.
    remote.writer.push(Command::BLOCK, &Bytes::copy_from_slice(&whole[..whole.len() - 1]));
    remote.writer.flush().await.unwrap();
    let reason = within(peer.wait_for_disconnect()).await;
    assert!(matches!(&reason, DisconnectReason::Payload(e) if e.command == Command::BLOCK), "{reason:?}");
    let sent = remote.drain().await;
    assert!(sent.iter().any(|m| matches!(m, Message::Reject(r) if r.message == "block")), "{sent:?}");
    assert!(got.0.lock().unwrap().is_empty(), "a malformed block is not handed on");
}

#[tokio::test]
async fn r_r1_raw_blocks_are_handed_on_undecoded_when_asked() {
    #[derive(Clone, Default)]
    struct Raw(Log<Bytes>, Log<&'static str>);
    impl Handler for Raw {
        fn on_raw_block(&self, _: &Peer, raw: Bytes) {
            self.0.lock().unwrap().push(raw);
        }
        fn on_block(&self, _: &Peer, _: Block, _: Bytes) {
            self.1.lock().unwrap().push("decoded");
        }
    }
    let got = Raw::default();
    let (o, i) = duplex_pair(config(), NoopHandler, builder().raw_blocks(true).build().unwrap(), got.clone());
    within(o.handshake()).await.unwrap();
    let block = common::samples::one_of_each().into_iter().find(|m| m.command() == Command::BLOCK).unwrap();
    let Message::Block(b) = &block else { unreachable!() };
    let expected = Bytes::from(btcpeer::bitcoin::consensus::serialize(b));
    within(o.queue_message(&block).unwrap().wait()).await;
    within(async {
        while got.0.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert_eq!(*got.0.lock().unwrap(), vec![expected]);
    assert!(got.1.lock().unwrap().is_empty(), "not decoded");
    assert!(i.has_known_inventory(&Inventory::Block(b.block_hash())), "the header was hashed for known inventory");
    o.disconnect();
}
