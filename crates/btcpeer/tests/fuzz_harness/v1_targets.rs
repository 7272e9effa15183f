//! The `frame_v1` and `payload` fuzz targets: v1 framing and message payloads.

use super::*;

/// `frame_v1`: the input is a byte stream from a remote. [`frame::decode_frame`] walks it frame
/// by frame; [`V1Codec`] is fed the same bytes whole, one byte at a time and in random chunks,
/// and must find the same frames and stop at the same error. Every payload is decoded. The
/// stream is tried on regtest and on a network with a 200-byte limit, and again with every
/// complete frame's checksum corrected so the payload decoders are reached.
pub fn frame_v1(data: &[u8]) {
    for network in [Network::REGTEST, Network::REGTEST.with_max_payload(200)] {
        check_v1_stream(data, &network);
        let fixed = fix_checksums(data, &network);
        if fixed != data {
            check_v1_stream(&fixed, &network);
        }
    }
}

pub(super) fn check_v1_stream(data: &[u8], network: &Network) {
    let all = Bytes::copy_from_slice(data);
    let mut expected = Vec::new();
    let mut offset = 0;
    let end = loop {
        let rest = all.slice(offset..);
        match frame::decode_frame(&rest, network) {
            Ok((raw, used)) => {
                assert!((HEADER_LEN..=rest.len()).contains(&used), "decode_frame used {used} of {}", rest.len());
                assert_eq!(used, HEADER_LEN + raw.payload.len());
                expected.push(Ok(raw));
                offset += used;
            }
            // A stream reader drops such a frame once it is complete and carries on (C-1).
            Err(e) if e.is_droppable() => {
                let raw: [u8; HEADER_LEN] = rest[..HEADER_LEN].try_into().unwrap();
                let used = HEADER_LEN + FrameHeader::announced_length(&raw) as usize;
                if used > rest.len() {
                    break FrameError::Truncated { needed: used, available: rest.len() };
                }
                expected.push(Err(e));
                offset += used;
            }
            Err(e) => break e,
        }
    };
    let _ = end.to_string();
    for raw in expected.iter().flatten() {
        if let Err(e) = raw.decode() {
            assert_eq!(e.command, raw.command, "a payload error names its command");
            let _ = e.to_string();
        }
    }
    let mut rng = Rng::from_input(data);
    for pass in 0..3 {
        let mut codec = V1Codec::new(network.clone());
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut fed = 0;
        let mut error = None;
        'feed: while fed < data.len() {
            let step = match pass {
                0 => data.len(),
                1 => 1,
                _ => rng.chunk(64),
            };
            let upto = (fed + step).min(data.len());
            buf.extend_from_slice(&data[fed..upto]);
            fed = upto;
            loop {
                match codec.decode_frame(&mut buf) {
                    Ok(Some(f)) => got.push(Ok(f)),
                    Ok(None) => break,
                    Err(V1Error::Dropped { error, bytes }) => {
                        assert!(bytes >= HEADER_LEN);
                        got.push(Err(error));
                    }
                    Err(e) => {
                        error = Some(e);
                        break 'feed;
                    }
                }
            }
            assert_bounded(&buf, fed, "V1Codec");
        }
        assert_eq!(got, expected, "pass {pass}: V1Codec and decode_frame found different frames");
        match (&error, &end) {
            (None, FrameError::Truncated { .. }) => {}
            (Some(V1Error::Frame(e)), end) if e == end => {}
            (error, end) => panic!("pass {pass}: V1Codec stopped with {error:?}, decode_frame with {end:?}"),
        }
    }
}

/// The stream with the checksum of every complete frame with a valid header corrected.
pub(super) fn fix_checksums(data: &[u8], network: &Network) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut pos = 0;
    while let Some(raw) = out.get(pos..pos + HEADER_LEN).and_then(|h| <[u8; HEADER_LEN]>::try_from(h).ok()) {
        let Ok(header) = FrameHeader::parse(&raw, network) else { break };
        let start = pos + HEADER_LEN;
        let end = start + header.length as usize;
        let Some(payload) = out.get(start..end) else { break };
        let sum = frame::checksum(payload);
        out[start - 4..start].copy_from_slice(&sum);
        pos = end;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// payload

/// `payload`: the first byte selects a command ([`command_for`]), the rest is its payload. What
/// decodes must encode, decode again to the same message (merkleblock: to the same bytes, as
/// its flag bits are padded to whole bytes), and, if it arrived within its command's limit, be
/// framed again.
pub fn payload(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else { return };
    let command = command_for(selector);
    let first = match Message::decode(command, Bytes::copy_from_slice(body)) {
        Ok(m) => m,
        Err(e) => {
            assert_eq!(e.command, command, "a payload error names its command");
            let _ = e.to_string();
            return;
        }
    };
    assert_eq!(first.command(), command, "decoded under {command}, came out as {}", first.command());
    let mut encoded = BytesMut::new();
    first
        .encode_payload(&mut encoded)
        .unwrap_or_else(|e| panic!("{command}: a decoded message does not encode: {e}\n{first:?}"));
    let encoded = encoded.freeze();
    let second = Message::decode(command, encoded.clone())
        .unwrap_or_else(|e| panic!("{command}: the re-encoding of a decoded message does not decode: {e}\n{first:?}"));
    if command == Command::MERKLEBLOCK {
        let mut again = BytesMut::new();
        second.encode_payload(&mut again).expect("encodes");
        assert_eq!(encoded, again.freeze(), "merkleblock: encode(decode(encode(m))) != encode(m)");
    } else {
        assert_eq!(first, second, "{command}: decode(encode(m)) != m");
    }
    let network = Network::REGTEST;
    if body.len() <= limits::max_payload_len(command, network.max_payload()) as usize {
        let mut framed = BytesMut::new();
        frame::encode_frame(&first, &network, &mut framed)
            .unwrap_or_else(|e| panic!("{command}: accepted from a frame but cannot be framed again: {e}"));
        let (raw, used) = frame::decode_frame(&framed.freeze(), &network).expect("our own frame decodes");
        assert_eq!((raw.command, &raw.payload[..], used), (command, &encoded[..], HEADER_LEN + encoded.len()));
    }
}
