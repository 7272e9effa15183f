//! The `peer` fuzz target: the runtime-free core ([`PeerCore`]) against a remote sending fuzzed
//! messages, driven directly: no runtime, no task, no stream per input. (`peer_tokio` runs the same
//! input through the whole tokio driver.)

use std::time::{Instant, SystemTime};

use btcpeer::core::peer::{CoreConfig, Event, PeerCore, rules::BloomPolicy};
use btcpeer::peer::Direction;
use btcpeer::transport::v2::V2Encoder;
use btcpeer::transport::v2_cipher::SessionKeys;

use super::peer_target::{REMOTE_VERSIONS, remote_version};
use super::*;

/// The bytes the remote sends, over v1 or an established v2 session.
enum Wire {
    V1,
    V2(Box<V2Encoder>),
}

impl Wire {
    fn frame(&mut self, command: Command, payload: &[u8], out: &mut BytesMut) {
        match self {
            Wire::V1 => {
                let _ = frame::encode_raw_frame(command, payload, &Network::REGTEST, out);
            }
            Wire::V2(encoder) => {
                encoder.encode(command, payload, out);
            }
        }
    }
}

/// Our side's decoder.
enum Reader {
    V1(V1Codec),
    V2(Box<V2Decoder>),
}

impl Reader {
    /// Feeds every whole frame in `buf` to the core; false once the transport failed.
    fn feed(&mut self, buf: &mut BytesMut, core: &mut PeerCore, now: Instant) -> bool {
        loop {
            let frame = match self {
                Reader::V1(codec) => {
                    core.handle_v1_bytes(codec, buf, now, SystemTime::UNIX_EPOCH);
                    return !core.is_ended();
                }
                Reader::V2(decoder) => match decoder.decode(buf) {
                    Ok(f) => f.map(|(f, _)| f),
                    Err(e) if e.is_droppable() => continue,
                    Err(e) => {
                        core.closed(Some(DisconnectReason::V2(e)));
                        return false;
                    }
                },
            };
            let Some(frame) = frame else { return true };
            core.handle_frame(frame, now, SystemTime::UNIX_EPOCH);
        }
    }
}

/// Both v2 sides' codecs, from fixed session keys: no curve work per input (the handshake itself
/// is the `v2_handshake` target's).
fn v2_sessions() -> Option<(V2Encoder, V2Decoder)> {
    let keys = SessionKeys::derive(&[7u8; 32], Network::REGTEST.magic().to_bytes());
    let (_, remote_out) = keys.ciphers(true);
    let (ours_in, _) = keys.ciphers(false);
    Some((V2Encoder::new(remote_out), V2Decoder::new(ours_in, Network::REGTEST.max_payload())))
}

/// `peer`: an inbound [`PeerCore`] fed the remote's bytes. Byte 0: bit 0 makes the remote speak
/// v2, bits 2–4 the remote's protocol version ([`REMOTE_VERSIONS`]), bit 5 sends wtxidrelay,
/// sendaddrv2 and sendtxrcncl before verack, bit 6 refuses bloom messages. The rest is records
/// `(selector, u16 length, payload)` framed validly after the handshake (selector ≥ 0xf8: raw
/// bytes), each followed by a second of simulated time. The core must end (the remote closes at
/// the end) with exactly one `Disconnected` event, hold no more than its bounds, and never panic.
pub fn peer(data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else { return };
    let version = REMOTE_VERSIONS[usize::from((flags >> 2) & 7)];
    let (mut wire, mut reader) = if flags & 1 == 1 {
        let Some((encoder, decoder)) = v2_sessions() else { return };
        (Wire::V2(Box::new(encoder)), Reader::V2(Box::new(decoder)))
    } else {
        (Wire::V1, Reader::V1(V1Codec::new(Network::REGTEST)))
    };
    let mut config = CoreConfig::seeded(Direction::Inbound, 1);
    config.bloom = BloomPolicy { refuse: flags & 0x40 != 0 };
    let mut now = Instant::now();
    let mut core = PeerCore::new(config, now, SystemTime::UNIX_EPOCH);
    let mut buf = BytesMut::new();
    let mut handshake = vec![Message::Version(remote_version(version))];
    if flags & 0x20 != 0 {
        handshake.extend([
            Message::WtxidRelay,
            Message::SendAddrV2,
            Message::SendTxRcncl(SendTxRcncl { version: 1, salt: 7 }),
        ]);
    }
    handshake.push(Message::Verack);
    for m in &handshake {
        let mut payload = BytesMut::new();
        m.encode_payload(&mut payload).expect("handshake messages encode");
        wire.frame(m.command(), &payload, &mut buf);
    }
    let (mut open, mut events, mut disconnects, mut sent) =
        (reader.feed(&mut buf, &mut core, now), 0usize, 0usize, 0usize);
    let mut rest = body;
    loop {
        // What the core writes is taken and counted (a remote that reads everything).
        while core.poll_transmit(now).is_some() {
            sent += 1;
        }
        while let Some(event) = core.poll_event() {
            events += 1;
            if let Event::Disconnected(reason) = event {
                disconnects += 1;
                assert_ne!(reason, DisconnectReason::LocalRequest);
                let _ = reason.to_string();
            }
        }
        assert!(
            core.state_mut().known().capacity() >= 1 && sent <= 4 * (data.len() + 64),
            "sent {sent} for {} bytes",
            data.len()
        );
        let Some((selector, bytes, tail)) = take_record(rest).filter(|_| open && !core.is_ended()) else { break };
        rest = tail;
        if selector >= 0xf8 {
            buf.extend_from_slice(bytes);
        } else {
            wire.frame(command_for(selector), bytes, &mut buf);
        }
        open = reader.feed(&mut buf, &mut core, now);
        assert_bounded(&buf, data.len(), "core peer");
        now += Duration::from_secs(1);
        core.handle_timeout(now);
    }
    // The remote closes: the core ends once, whatever state it was in.
    core.closed(None);
    core.handle_timeout(now + Duration::from_secs(7200));
    while core.poll_transmit(now).is_some() {}
    while let Some(event) = core.poll_event() {
        events += 1;
        disconnects += usize::from(matches!(event, Event::Disconnected(_)));
    }
    assert_eq!(disconnects, 1, "Disconnected events ({events} events)");
    assert!(core.is_ended() && core.poll_timeout(now).is_none());
}
