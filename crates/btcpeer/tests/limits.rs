//! R-W3, R-W4, R-W6, R-W8: every limit and malformed shape gets a typed error (never a panic), in the
//! documented order, before anything is allocated from a count read off the wire.

use btcpeer::network::{Magic, Network};
use btcpeer::transport::v1::{V1Codec, V1Error};
use btcpeer::wire::{
    Command, EncodeError, FrameError, Inventory, Message, PayloadError, PayloadErrorKind, frame, limits,
};
use bytes::{BufMut, Bytes, BytesMut};

const NET: Network = Network::REGTEST;

fn header(magic: [u8; 4], command: &[u8], len: u32, checksum: [u8; 4]) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[..4].copy_from_slice(&magic);
    h[4..4 + command.len()].copy_from_slice(command);
    h[16..20].copy_from_slice(&len.to_le_bytes());
    h[20..].copy_from_slice(&checksum);
    h
}

fn regtest() -> [u8; 4] {
    NET.magic().to_bytes()
}

fn parse(h: [u8; 24]) -> Result<frame::FrameHeader, FrameError> {
    frame::FrameHeader::parse(&h, &NET)
}

fn payload_err(command: Command, payload: Vec<u8>) -> PayloadError {
    match Message::decode(command, Bytes::from(payload)) {
        Ok(m) => panic!("{command} payload accepted as {m:?}"),
        Err(e) => e,
    }
}

fn compact(n: u64) -> Vec<u8> {
    let mut b = BytesMut::new();
    match n {
        0..=0xfc => b.put_u8(n as u8),
        0xfd..=0xffff => {
            b.put_u8(0xfd);
            b.put_u16_le(n as u16)
        }
        _ => {
            b.put_u8(0xfe);
            b.put_u32_le(n as u32)
        }
    }
    b.to_vec()
}

// ---- R-W3: the frame header ----

#[test]
fn r_w3_wrong_magic_is_rejected() {
    let err = parse(header(Network::MAINNET.magic().to_bytes(), b"ping", 8, [0; 4])).unwrap_err();
    assert_eq!(err, FrameError::WrongMagic { expected: NET.magic(), found: Magic::BITCOIN });
}

#[test]
fn r_w3_bad_checksum_is_rejected() {
    let mut f = header(regtest(), b"ping", 8, [1, 2, 3, 4]).to_vec();
    f.extend(7u64.to_le_bytes());
    let err = frame::decode_frame(&Bytes::from(f), &NET).unwrap_err();
    assert!(matches!(err, FrameError::BadChecksum { command: Command::PING, header: [1, 2, 3, 4], .. }));
}

#[test]
fn r_w3_length_over_network_maximum_is_rejected() {
    for len in [4_000_001, u32::MAX] {
        let err = parse(header(regtest(), b"block", len, [0; 4])).unwrap_err();
        assert_eq!(err, FrameError::PayloadTooLarge { length: len, max: 4_000_000 });
    }
    assert!(parse(header(regtest(), b"block", 4_000_000, [0; 4])).is_ok(), "the maximum itself is allowed");
}

#[test]
fn r_w3_checks_run_in_the_specified_order() {
    // Oversized and wrong magic and bad command: the magic is checked first (Core's `readHeader`),
    // so a peer on another network is reported as such.
    let h = header([0xde, 0xad, 0xbe, 0xef], b"\x01bad", 5_000_000, [0; 4]);
    assert!(matches!(parse(h), Err(FrameError::WrongMagic { .. })));
    // Oversized and bad command: the length next.
    let h = header(regtest(), b"\x01bad", 5_000_000, [0; 4]);
    assert!(matches!(parse(h), Err(FrameError::PayloadTooLarge { .. })));
    // Bad command: then the command (before its own maximum could be looked up).
    let h = header(regtest(), b"\x01bad", 10, [0; 4]);
    assert!(matches!(parse(h), Err(FrameError::InvalidCommand { .. })));
    // Finally the command's own maximum.
    let h = header(regtest(), b"verack", 1, [0; 4]);
    assert!(matches!(parse(h), Err(FrameError::CommandPayloadTooLarge { length: 1, max: 0, .. })));
}

#[test]
fn r_w3_invalid_command_bytes_are_rejected() {
    for cmd in [&b"ver\0sion"[..], b"ping\x7f", b"\xffping", b"in v\0\0\x01"] {
        let err = parse(header(regtest(), cmd, 0, [0; 4])).unwrap_err();
        assert!(matches!(err, FrameError::InvalidCommand { .. }), "{cmd:?}: {err}");
    }
}

#[test]
fn r_w3_each_per_command_maximum_is_enforced_from_the_header() {
    // Blocks, transactions and the like are bounded by the network only; every other command has a
    // maximum of its own.
    // `version` (later versions append fields) and `reject` (long reasons) are too, as in Core.
    const NETWORK_BOUNDED: [&str; 10] = [
        "block",
        "tx",
        "merkleblock",
        "cmpctblock",
        "blocktxn",
        "getblocktxn",
        "cfilter",
        "cfcheckpt",
        "version",
        "reject",
    ];
    for cmd in Command::KNOWN.iter().copied().filter(|c| !NETWORK_BOUNDED.contains(&c.as_str())) {
        let name = cmd.as_str();
        let max = limits::max_payload_len(cmd, NET.max_payload());
        assert!(max < NET.max_payload(), "{name} has a maximum of its own");
        assert!(parse(header(regtest(), name.as_bytes(), max, [0; 4])).is_ok(), "{name} at its maximum");
        let err = parse(header(regtest(), name.as_bytes(), max + 1, [0; 4])).unwrap_err();
        assert_eq!(err, FrameError::CommandPayloadTooLarge { command: cmd, length: max + 1, max }, "{name}");
    }
    // Commands bounded only by the network: blocks, transactions, unknown commands.
    for name in NETWORK_BOUNDED.iter().chain(&["xyz"]) {
        assert!(parse(header(regtest(), name.as_bytes(), 4_000_000, [0; 4])).is_ok(), "{name}");
    }
}

#[test]
fn r_w3_custom_network_maximum_applies() {
    let bch = Network::custom("bch", Magic::from_bytes([0xe3, 0xe1, 0xf3, 0xe8]), 8333).with_max_payload(32_000_000);
    let h = header([0xe3, 0xe1, 0xf3, 0xe8], b"block", 31_000_000, [0; 4]);
    assert!(frame::FrameHeader::parse(&h, &bch).is_ok(), "a 31 MB block on a 32 MB network");
    let h = header(regtest(), b"block", 31_000_000, [0; 4]);
    assert!(matches!(parse(h), Err(FrameError::PayloadTooLarge { .. })), "but not on regtest");
}

#[test]
fn r_w3_truncated_header_and_payload() {
    let mut buf = BytesMut::new();
    frame::encode_frame(&Message::Ping(5), &NET, &mut buf).unwrap();
    let whole = buf.freeze();
    // Slice decoding: a typed Truncated error.
    let err = frame::decode_frame(&whole.slice(..10), &NET).unwrap_err();
    assert_eq!(err, FrameError::Truncated { needed: 24, available: 10 });
    let err = frame::decode_frame(&whole.slice(..30), &NET).unwrap_err();
    assert_eq!(err, FrameError::Truncated { needed: 32, available: 30 });
    // Stream decoding: waits for more (no error, nothing emitted), then completes.
    let mut codec = V1Codec::new(NET);
    let mut rx = BytesMut::from(&whole[..10]);
    assert!(codec.decode_frame(&mut rx).unwrap().is_none());
    rx.extend_from_slice(&whole[10..30]);
    assert!(codec.decode_frame(&mut rx).unwrap().is_none());
    rx.extend_from_slice(&whole[30..]);
    assert_eq!(codec.decode_frame(&mut rx).unwrap().unwrap().decode().unwrap(), Message::Ping(5));
    // At the end of the stream with a partial frame, nothing is emitted: the header is taken and
    // the six payload bytes wait (the stream reader then reports the connection ended mid-frame).
    let mut rx = BytesMut::from(&whole[..30]);
    let mut codec = V1Codec::new(NET);
    assert!(codec.decode_frame(&mut rx).unwrap().is_none());
    assert_eq!(rx.len(), 6);
}

#[test]
fn r_w3_codec_does_not_reserve_an_announced_length() {
    // A block frame announcing 4,000,000 bytes and sending none: the codec reserves one step, not 4 MB.
    let mut codec = V1Codec::new(NET);
    let mut rx = BytesMut::from(&header(regtest(), b"block", 4_000_000, [0; 4])[..]);
    assert!(codec.decode_frame(&mut rx).unwrap().is_none());
    assert!(rx.capacity() <= 256 * 1024 + 64, "capacity {} after the header", rx.capacity());
    // An oversized announcement errors without reserving anything.
    let mut codec = V1Codec::new(NET);
    let mut rx = BytesMut::from(&header(regtest(), b"block", u32::MAX, [0; 4])[..]);
    let cap = rx.capacity();
    assert!(matches!(codec.decode_frame(&mut rx), Err(V1Error::Frame(FrameError::PayloadTooLarge { .. }))));
    assert_eq!(rx.capacity(), cap);
}

// ---- R-W6: encode once into a reused buffer ----

#[test]
fn r_w6_frames_are_appended_to_a_reused_buffer() {
    let mut buf = BytesMut::with_capacity(4096);
    let ptr = buf.as_ptr();
    let a = frame::encode_frame(&Message::Ping(1), &NET, &mut buf).unwrap();
    let b = frame::encode_frame(&Message::Inv(vec![Inventory::Error([3; 32])]), &NET, &mut buf).unwrap();
    assert_eq!(buf.len(), a + b);
    assert_eq!(buf.as_ptr(), ptr, "no reallocation: encoded in place");
    let bytes = buf.freeze();
    let (first, used) = frame::decode_message(&bytes, &NET).unwrap();
    let (second, _) = frame::decode_message(&bytes.slice(used..), &NET).unwrap();
    assert_eq!(first, Message::Ping(1));
    assert!(matches!(second, Message::Inv(_)));
}

#[test]
fn r_w6_encoding_over_a_command_maximum_is_refused_and_leaves_the_buffer_as_it_was() {
    let mut buf = BytesMut::new();
    frame::encode_frame(&Message::Verack, &NET, &mut buf).unwrap();
    let before = buf.clone();
    let inv = Message::Inv(vec![Inventory::Error([0; 32]); 50_001]);
    let err = frame::encode_frame(&inv, &NET, &mut buf).unwrap_err();
    assert!(matches!(err, EncodeError::PayloadTooLarge { command: Command::INV, .. }));
    assert_eq!(buf, before);
    let bad = Message::GetBlockTxn(bitcoin::bip152::BlockTransactionsRequest {
        block_hash: bitcoin::hashes::Hash::all_zeros(),
        indexes: vec![5, 3],
    });
    assert!(matches!(frame::encode_frame(&bad, &NET, &mut buf), Err(EncodeError::Invalid { .. })));
    assert_eq!(buf, before);
}

// ---- R-W4: limits inside payloads, checked before allocation ----

fn assert_too_many(err: &PayloadError, count: u64, max: u64) {
    assert!(
        matches!(err.kind, PayloadErrorKind::TooMany { count: c, max: m } if c == count && m == max),
        "{err} (expected TooMany {count}/{max})"
    );
}

#[test]
fn r_w4_inv_over_50000_entries_is_rejected() {
    for cmd in [Command::INV, Command::GETDATA, Command::NOTFOUND] {
        // Only the count is sent: the limit is checked before any entry is read or allocated.
        let err = payload_err(cmd, compact(50_001));
        assert_eq!((err.command, err.field), (cmd, "count"));
        assert_too_many(&err, 50_001, 50_000);
    }
    let mut ok = compact(50_000);
    ok.extend(std::iter::repeat_n(0u8, 50_000 * 36));
    let Message::Inv(items) = Message::decode(Command::INV, Bytes::from(ok)).unwrap() else { panic!() };
    assert_eq!(items.len(), 50_000);
}

#[test]
fn r_w4_addr_over_1000_entries_is_rejected() {
    assert_too_many(&payload_err(Command::ADDR, compact(1_001)), 1_001, 1_000);
    assert_too_many(&payload_err(Command::ADDRV2, compact(1_001)), 1_001, 1_000);
}

#[test]
fn r_w4_headers_over_2000_is_rejected() {
    assert_too_many(&payload_err(Command::HEADERS, compact(2_001)), 2_001, 2_000);
}

#[test]
fn r_w4_locator_over_101_hashes_is_rejected() {
    for cmd in [Command::GETBLOCKS, Command::GETHEADERS] {
        let mut p = 70016u32.to_le_bytes().to_vec();
        p.extend(compact(102));
        let err = payload_err(cmd, p);
        assert_eq!(err.field, "locator");
        assert_too_many(&err, 102, 101);
    }
}

#[test]
fn r_w4_user_agent_over_256_bytes_is_rejected() {
    let mut p = vec![0u8; 80];
    p.extend(compact(257));
    p.extend([b'a'; 257]);
    p.extend([0; 5]);
    let err = payload_err(Command::VERSION, p);
    assert_eq!(err.field, "user_agent");
    assert!(matches!(err.kind, PayloadErrorKind::TooLong { len: 257, max: 256 }));
}

#[test]
fn r_w4_filterload_over_36000_bytes_or_50_hash_functions_is_rejected() {
    let err = payload_err(Command::FILTERLOAD, compact(36_001));
    assert!(matches!(err.kind, PayloadErrorKind::TooLong { len: 36_001, max: 36_000 }));
    let mut p = compact(1);
    p.push(0xff);
    p.extend(51u32.to_le_bytes());
    p.extend([0; 5]);
    let err = payload_err(Command::FILTERLOAD, p);
    assert_eq!(err.field, "hash_funcs");
    assert_too_many(&err, 51, 50);
}

#[test]
fn r_w4_filteradd_over_520_bytes_is_rejected() {
    let mut p = compact(521);
    p.extend([0; 521]);
    let err = payload_err(Command::FILTERADD, p);
    assert!(matches!(err.kind, PayloadErrorKind::TooLong { len: 521, max: 520 }));
}

#[test]
fn r_w4_addrv2_address_over_512_bytes_or_of_the_wrong_size_is_rejected() {
    let entry = |id: u8, len: u64| {
        let mut p = compact(1);
        p.extend([0, 0, 0, 0, 0, id]);
        p.extend(compact(len));
        p.extend(std::iter::repeat_n(0u8, len as usize));
        p.extend([0, 0]);
        p
    };
    let err = payload_err(Command::ADDRV2, entry(99, 513));
    assert!(matches!(err.kind, PayloadErrorKind::TooLong { len: 513, max: 512 }));
    assert!(Message::decode(Command::ADDRV2, Bytes::from(entry(99, 512))).is_ok(), "unknown id, 512 bytes");
    for (id, bad_len, expected) in [(1u8, 5u64, 4u64), (2, 4, 16), (3, 16, 10), (4, 16, 32), (5, 31, 32), (6, 4, 16)] {
        let err = payload_err(Command::ADDRV2, entry(id, bad_len));
        assert!(
            matches!(err.kind, PayloadErrorKind::AddressLength { network_id, len, expected: e }
                if network_id == id && len == bad_len && e == expected),
            "{err}"
        );
    }
}

#[test]
fn r_w4_cfheaders_over_2000_hashes_is_rejected() {
    let mut p = vec![0u8; 65];
    p.extend(compact(2_001));
    assert_too_many(&payload_err(Command::CFHEADERS, p), 2_001, 2_000);
}

#[test]
fn r_w4_a_reject_command_over_12_bytes_is_rejected() {
    let mut p = compact(13);
    p.extend([b'x'; 13]);
    assert!(matches!(payload_err(Command::REJECT, p).kind, PayloadErrorKind::TooLong { len: 13, max: 12 }));
}

#[test]
fn c1_a_reject_reason_longer_than_111_bytes_is_accepted() {
    // btcd's double-spend rejects carry reasons of 186 bytes and more: informational, accepted.
    for len in [112usize, 186, 5_000] {
        let mut p = compact(2);
        p.extend(b"tx\x12");
        p.extend(compact(len as u64));
        p.extend(std::iter::repeat_n(b'r', len));
        p.extend([7u8; 32]);
        let Ok(Message::Reject(r)) = Message::decode(Command::REJECT, Bytes::from(p)) else { panic!("refused {len}") };
        assert_eq!((r.reason.len(), r.hash), (len, Some([7; 32])));
    }
}

#[test]
fn r_w4_leftover_bytes_are_rejected() {
    let cases: Vec<Message> = vec![
        Message::Verack,
        Message::Ping(1),
        Message::FeeFilter(1000),
        Message::Inv(vec![Inventory::Error([1; 32])]),
        Message::Headers(vec![]),
        Message::SendTxRcncl(btcpeer::wire::SendTxRcncl { version: 1, salt: 2 }),
    ];
    for msg in cases {
        let mut buf = BytesMut::new();
        msg.encode_payload(&mut buf).unwrap();
        buf.put_u8(0xaa);
        let err = payload_err(msg.command(), buf.to_vec());
        assert!(matches!(err.kind, PayloadErrorKind::TrailingBytes { count: 1 }), "{}: {err}", msg.command());
    }
}

#[test]
fn c1_a_version_with_bytes_after_the_relay_flag_is_accepted() {
    // A complete version message (relay flag 1) followed by fields a later version might add.
    let mut p = vec![0u8; 80];
    p.extend([0, 0, 0, 0, 0, 1, 0xaa, 0xbb, 0xcc]);
    let Ok(Message::Version(v)) = Message::decode(Command::VERSION, Bytes::from(p)) else { panic!("refused") };
    assert!(v.relay);
    assert_eq!(v.tail, btcpeer::wire::VersionTail::Complete);
    // Its frame is not refused for its size either: like Core, only the network limit applies.
    assert!(parse(header(regtest(), b"version", 4_000, [0; 4])).is_ok());
}

#[test]
fn r_w4_non_minimal_compact_size_is_rejected() {
    let err = payload_err(Command::INV, vec![0xfd, 0x01, 0x00]);
    assert!(matches!(err.kind, PayloadErrorKind::NonMinimalCompactSize));
    let err = payload_err(Command::FILTERADD, vec![0xfe, 0x05, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5]);
    assert!(matches!(err.kind, PayloadErrorKind::NonMinimalCompactSize));
}

#[test]
fn r_w4_truncated_payloads_are_rejected() {
    let mut p = compact(2);
    p.extend([0u8; 36]);
    let err = payload_err(Command::INV, p);
    assert!(matches!(err.kind, PayloadErrorKind::Truncated { needed: 72, available: 36 }));
    assert!(matches!(payload_err(Command::PONG, vec![1, 2, 3]).kind, PayloadErrorKind::Truncated { .. }));
    assert!(matches!(payload_err(Command::TX, vec![1, 0, 0, 0, 1]).kind, PayloadErrorKind::Truncated { .. }));
    assert!(matches!(payload_err(Command::VERSION, vec![0; 45]).kind, PayloadErrorKind::Truncated { .. }));
}

#[test]
fn r_w8_errors_name_the_command_and_field() {
    let err = payload_err(Command::GETHEADERS, vec![0, 0, 0, 0, 1]);
    assert_eq!(err.command, Command::GETHEADERS);
    assert_eq!(err.field, "locator");
    let text = err.to_string();
    assert!(text.contains("getheaders") && text.contains("locator"), "{text}");
}
