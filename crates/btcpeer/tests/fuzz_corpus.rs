//! S-1: the committed fuzz corpora and every crash regression, replayed as plain tests.
//!
//! The `harness` module below *is* the fuzz targets' logic: the cargo-fuzz crate in `fuzz/`
//! includes this file (`#[path]`) and calls the same functions, so a replayed input runs exactly
//! what the fuzzer ran. No fuzzing tools are needed here.
//!
//! Inputs are read from `fuzz/corpus/frame_v1`, `fuzz/corpus/payload` and
//! `fuzz/regressions/<target>/` at the project root. A checkout without `fuzz/` prints a note and
//! passes.

use std::path::{Path, PathBuf};

/// The fuzz targets' logic, one function per target. Each panics on a violated invariant (a
/// round-trip failure, a decoder disagreeing with another, a hang, a panic in a peer task).
pub mod harness {
    use std::cell::Cell;
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Once, OnceLock};
    use std::time::Duration;

    use bip324::{
        CipherSession, FillBytes, GarbageResult, Handshake, Initialized, OutboundCipher, PacketType, ReceivedKey, Role,
        SentVersion, VersionResult,
    };
    use btcpeer::bitcoin::p2p::ServiceFlags;
    use btcpeer::bitcoin::secp256k1::Secp256k1;
    use btcpeer::network::Network;
    use btcpeer::peer::{DisconnectReason, Handler, NonceRegistry, Peer, PeerConfig, V2Policy};
    use btcpeer::transport::stream::{FrameReader, FrameWriter, v2_pair};
    use btcpeer::transport::v1::{V1Codec, V1Error};
    use btcpeer::transport::v2::{self, V2Decoder, V2Error};
    use btcpeer::transport::v2_handshake::{self, V2HandshakeError, V2Options};
    use btcpeer::wire::frame::{self, FrameHeader, HEADER_LEN, RawFrame};
    use btcpeer::wire::{Command, FrameError, Message, SendTxRcncl, VersionMessage, VersionTail, limits};
    use bytes::{Bytes, BytesMut};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio_util::codec::Decoder;

    /// The 36 commands btcpeer decodes, in the order of the `payload` and `peer` targets' selector
    /// byte; selectors 36 to 39 are unknown commands ([`UNKNOWN`]), the rest wrap around.
    /// (`Command::KNOWN`'s order: the committed corpus depends on it, so a change to that order
    /// shows up in `s1_selectors_cover_every_known_command`.)
    pub const COMMANDS: [Command; 36] = Command::KNOWN;

    /// Unknown commands for selectors 36 to 39: the shared vectors' `feature`, the empty name
    /// (Core accepts it), a full 12-byte name, and a near miss of a known one.
    pub const UNKNOWN: [&str; 4] = ["feature", "", "abcdefghijkl", "getaddrx"];

    /// How many selector values there are before they wrap around.
    pub const SELECTORS: u8 = 40;

    /// The command a selector byte stands for.
    pub fn command_for(selector: u8) -> Command {
        let i = usize::from(selector % SELECTORS);
        match COMMANDS.get(i) {
            Some(c) => *c,
            None => Command::new(UNKNOWN.get(i - COMMANDS.len()).copied().unwrap_or("feature")).expect("valid name"),
        }
    }

    /// The selector byte for a command name (for writing seeds).
    pub fn selector_for(name: &str) -> Option<u8> {
        let known = COMMANDS.iter().position(|c| c.as_str() == name);
        let unknown = || UNKNOWN.iter().position(|&u| u == name).map(|i| i + COMMANDS.len());
        known.or_else(unknown).and_then(|i| u8::try_from(i).ok())
    }

    /// A small PRNG for chunk sizes, seeded from the input so a replay repeats the run.
    struct Rng(u64);

    impl Rng {
        fn from_input(data: &[u8]) -> Rng {
            // FNV-1a, then never zero (xorshift's fixed point).
            let h =
                data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
            Rng(h | 1)
        }

        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// A chunk size from 1 to `max`.
        fn chunk(&mut self, max: u64) -> usize {
            usize::try_from(1 + self.next() % max).unwrap_or(1)
        }
    }

    /// Splits a little-endian `u16` off the front (missing bytes read as zero).
    fn take_u16(data: &[u8]) -> (u16, &[u8]) {
        match data {
            [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), rest),
            [a] => (u16::from(*a), &[]),
            [] => (0, &[]),
        }
    }

    /// Splits a `(selector, u16 length, bytes)` record off the front; the length is cut to what is
    /// there.
    fn take_record(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = data.split_first()?;
        let (len, rest) = take_u16(rest);
        let (body, rest) = rest.split_at(usize::from(len).min(rest.len()));
        Some((tag, body, rest))
    }

    /// A read buffer may hold what arrived plus a bounded reservation ahead of it, never the size a
    /// header or length prefix merely announced (S-2: no allocation of the claimed size).
    fn assert_bounded(buf: &BytesMut, fed: usize, what: &str) {
        let bound = 4 * (fed + 256 * 1024);
        assert!(buf.capacity() <= bound, "{what}: read buffer grew to {} bytes after {fed} bytes", buf.capacity());
    }

    // ---------------------------------------------------------------------------------------------
    // frame_v1

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

    fn check_v1_stream(data: &[u8], network: &Network) {
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
                    match codec.decode(&mut buf) {
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
    fn fix_checksums(data: &[u8], network: &Network) -> Vec<u8> {
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
        let second = Message::decode(command, encoded.clone()).unwrap_or_else(|e| {
            panic!("{command}: the re-encoding of a decoded message does not decode: {e}\n{first:?}")
        });
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

    // ---------------------------------------------------------------------------------------------
    // v2_packet

    /// A fixed "random" source, so that keys (and what a corpus input means) are the same in every
    /// process.
    struct Fixed(u8);

    impl FillBytes for Fixed {
        fn fill_bytes(&mut self, dest: &mut [u8; 32]) {
            *dest = [self.0; 32];
        }
    }

    fn regtest_magic() -> [u8; 4] {
        Network::REGTEST.magic().to_bytes()
    }

    /// Completes a handshake state machine from the remote's terminator and packets.
    fn finish(hs: Handshake<SentVersion>, from_remote: &[u8]) -> CipherSession {
        let (mut hs, consumed) = match hs.receive_garbage(from_remote).expect("terminator") {
            GarbageResult::FoundGarbage { handshake, consumed_bytes } => (handshake, consumed_bytes),
            GarbageResult::NeedMoreData(_) => panic!("no garbage terminator in our own handshake"),
        };
        let rest = &from_remote[consumed..];
        let len = hs.decrypt_packet_len([rest[0], rest[1], rest[2]]).expect("length");
        let mut packet = rest[3..3 + len].to_vec();
        match hs.receive_version(&mut packet).expect("version packet") {
            VersionResult::Complete { cipher } => cipher,
            VersionResult::Decoy(_) => panic!("no decoys were sent"),
        }
    }

    /// A BIP324 session between two fixed keys, computed in memory once per process: the `bip324`
    /// crate's initiator and responder, and our responder with the same keys (built from the
    /// crate's key exchange, so the two implementations share every key).
    pub struct Ciphers {
        /// The crate's initiator: encrypts for `inbound`, decrypts `outbound`'s packets.
        pub crate_initiator: CipherSession,
        /// The crate's responder: encrypts exactly as `outbound` does.
        pub crate_responder: CipherSession,
        /// Our responder's decryption of the crate initiator's packets.
        pub inbound: btcpeer::transport::v2_cipher::InboundCipher,
        /// Our responder's encryption.
        pub outbound: btcpeer::transport::v2_cipher::OutboundCipher,
    }

    /// The process's cipher pair.
    pub fn ciphers() -> &'static Ciphers {
        static CIPHERS: OnceLock<Ciphers> = OnceLock::new();
        CIPHERS.get_or_init(|| {
            use btcpeer::bitcoin::secp256k1::{SecretKey, ellswift::ElligatorSwift};
            let curve = Secp256k1::signing_only();
            let magic = regtest_magic();
            let i = Handshake::<Initialized>::new_with_rng(magic, Role::Initiator, &mut Fixed(1), &curve).expect("key");
            let r = Handshake::<Initialized>::new_with_rng(magic, Role::Responder, &mut Fixed(2), &curve).expect("key");
            let (mut ikey, mut rkey) = ([0u8; 64], [0u8; 64]);
            let i = i.send_key(None, &mut ikey).expect("send key");
            let r = r.send_key(None, &mut rkey).expect("send key");
            let i = i.receive_key(rkey).expect("receive key");
            let r = r.receive_key(ikey).expect("receive key");
            let mut iver = vec![0u8; Handshake::<ReceivedKey<'_>>::send_version_len(None)];
            let mut rver = iver.clone();
            let i = i.send_version(&mut iver, None).expect("send version");
            let r = r.send_version(&mut rver, None).expect("send version");
            let crate_initiator = finish(i, &rver);
            let crate_responder = finish(r, &iver);
            // Ours, as the responder with the crate responder's secret ([2; 32]) and encoding.
            let keys = v2_handshake::session_keys(
                SecretKey::from_slice(&[2; 32]).expect("a valid key"),
                &ElligatorSwift::from_array(rkey),
                &ElligatorSwift::from_array(ikey),
                false,
                magic,
            );
            let (mut inbound, mut outbound) = keys.ciphers(false);
            // Both terminators and the version packets, byte for byte as the crate made them.
            assert_eq!(&iver[..16], &keys.initiator_terminator, "initiator's terminator");
            assert_eq!(&rver[..16], &keys.responder_terminator, "responder's terminator");
            let mut ours = BytesMut::new();
            outbound.encrypt_into(0, &[], &mut ours, |_| {});
            assert_eq!(&ours[..], &rver[16..], "our version packet is the crate's");
            let mut packet = iver[16..].to_vec();
            let len = inbound.decrypt_length([packet[0], packet[1], packet[2]]);
            assert_eq!(len, 0);
            inbound.decrypt(&mut packet[3..], &[]).expect("the crate's version packet authenticates");
            Ciphers { crate_initiator, crate_responder, inbound, outbound }
        })
    }

    /// One packet by the `bip324` crate's cipher.
    fn crate_packet(out: &mut OutboundCipher, contents: &[u8], decoy: bool) -> Vec<u8> {
        out.encrypt_to_vec(contents, if decoy { PacketType::Decoy } else { PacketType::Genuine }, None)
    }

    /// One packet by ours.
    fn our_packet(out: &mut btcpeer::transport::v2_cipher::OutboundCipher, contents: &[u8], decoy: bool) -> Vec<u8> {
        let mut buf = BytesMut::new();
        out.encrypt_into(if decoy { 0x80 } else { 0 }, &[], &mut buf, |o| o.extend_from_slice(contents));
        buf.to_vec()
    }

    /// Feeds `wire` to `decoder` in random chunks until it is used up or the decoder fails.
    fn feed_v2(decoder: &mut V2Decoder, wire: &[u8], rng: &mut Rng) -> (Vec<RawFrame>, Option<V2Error>) {
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut fed = 0;
        while fed < wire.len() {
            let upto = (fed + rng.chunk(256)).min(wire.len());
            buf.extend_from_slice(&wire[fed..upto]);
            fed = upto;
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some((frame, bytes))) => {
                        // Length, header byte, a short id or 0 and a 12-byte command, payload, tag.
                        let bare = frame.payload.len() + v2::LENGTH_BYTES + v2::OVERHEAD;
                        assert!(bytes > bare && bytes <= bare + 13, "wire size {bytes} for {}", frame.payload.len());
                        frames.push(frame);
                    }
                    Ok(None) => break,
                    Err(e) => return (frames, Some(e)),
                }
            }
            assert_bounded(&buf, fed, "V2Decoder");
        }
        (frames, None)
    }

    /// What a decoder must make of a sequence of packets, as far as it is certain.
    #[derive(Default)]
    struct Expected {
        /// Genuine packets' messages, in order.
        frames: Vec<RawFrame>,
        /// Decoys before the end.
        decoys: u64,
        /// The error the stream ends with, if it does.
        error: Option<V2Error>,
        /// Whether everything was predicted: no packet was tampered with.
        exact: bool,
    }

    /// Encrypts `(kind, length, contents)` records: kind bit 0 makes a decoy, bit 1 flips one bit of
    /// the packet at byte `kind >> 2`. Returns the wire bytes and what a decoder must make of them.
    fn encrypt_records(
        mut encrypt: impl FnMut(&[u8], bool) -> Vec<u8>,
        mut records: &[u8],
        network_max: u32,
    ) -> (Vec<u8>, Expected) {
        let mut wire = Vec::new();
        let mut exp = Expected { exact: true, ..Expected::default() };
        let mut predicting = true;
        while let Some((kind, contents, rest)) = take_record(records) {
            records = rest;
            let decoy = kind & 1 == 1;
            let mut packet = encrypt(contents, decoy);
            let tampered = kind & 2 == 2;
            if tampered {
                let i = usize::from(kind >> 2) % packet.len();
                packet[i] ^= 1;
            }
            wire.extend_from_slice(&packet);
            if !predicting {
                continue;
            }
            let max = v2::max_contents(network_max);
            if tampered {
                exp.exact = false;
                predicting = false;
            } else if contents.len() > max {
                exp.error = Some(V2Error::PacketTooLarge { length: contents.len(), max });
                predicting = false;
            } else if decoy {
                exp.decoys += 1;
            } else {
                match v2::decode_contents(Bytes::copy_from_slice(contents), network_max) {
                    Ok(f) => exp.frames.push(f),
                    Err(e) => {
                        exp.error = Some(e);
                        predicting = false;
                    }
                }
            }
        }
        (wire, exp)
    }

    fn check_expected(frames: &[RawFrame], error: &Option<V2Error>, decoys: u64, exp: &Expected, what: &str) {
        let n = exp.frames.len().min(frames.len());
        assert_eq!(&frames[..n], &exp.frames[..n], "{what}: decrypted messages differ from what was sent");
        assert!(
            frames.len() >= exp.frames.len(),
            "{what}: {} of {} messages came through",
            frames.len(),
            exp.frames.len()
        );
        if exp.exact {
            assert_eq!(frames.len(), exp.frames.len(), "{what}: more messages than were sent");
            assert_eq!(error, &exp.error, "{what}: the stream ended differently");
            assert_eq!(decoys, exp.decoys, "{what}: decoys skipped");
        }
    }

    /// `v2_packet`: byte 0's bit 0 picks the mode and bits 1–2 the network limit (4 MB, 1,000, 13
    /// or 0 bytes). Mode 0 feeds the rest to a fresh [`V2Decoder`] as arbitrary bytes; mode 1 reads
    /// it as records (see `encrypt_records`), encrypts them with the matching cipher, and checks
    /// the decoder returns exactly the messages [`v2::decode_contents`] makes of them.
    pub fn v2_packet(data: &[u8]) {
        let Some((&flags, body)) = data.split_first() else { return };
        let network_max = [4_000_000, 1_000, 13, 0][usize::from((flags >> 1) & 3)];
        let c = ciphers();
        let mut rng = Rng::from_input(data);
        let mut decoder = V2Decoder::new(c.inbound.clone(), network_max);
        if flags & 1 == 0 {
            let (frames, error) = feed_v2(&mut decoder, body, &mut rng);
            for f in frames {
                let _ = Message::decode(f.command, f.payload);
            }
            let _ = error.map(|e| e.to_string());
            return;
        }
        // The crate's initiator encrypts; our responder's decoder must make the same of it.
        let (_, mut crate_out) = c.crate_initiator.clone().into_split();
        let (wire, exp) = encrypt_records(|p, d| crate_packet(&mut crate_out, p, d), body, network_max);
        let (frames, error) = feed_v2(&mut decoder, &wire, &mut rng);
        check_expected(&frames, &error, decoder.decoys, &exp, "v2_packet");
        for f in frames {
            let _ = Message::decode(f.command, f.payload);
        }
    }

    /// `v2_cipher`: a differential test of our BIP324 ciphers against the `bip324` crate's. The
    /// input is records (see `take_record`): bit 0 of a record's tag makes a decoy, bits 1–2 repeat
    /// its contents 1, 64, 4,096 or 65,536 times (up to 4 MB, never past BIP324's 24-bit length).
    /// For every packet: our responder's encryption equals the crate responder's byte for byte and
    /// the crate initiator decrypts it; the crate initiator's packet decrypts with ours to the same
    /// header and contents. Enough records cross the 224-packet rekeys.
    pub fn v2_cipher(data: &[u8]) {
        let c = ciphers();
        let (mut crate_resp_out, mut crate_init_in, mut crate_init_out) = {
            let (_, resp_out) = c.crate_responder.clone().into_split();
            let (init_in, init_out) = c.crate_initiator.clone().into_split();
            (resp_out, init_in, init_out)
        };
        let (mut ours_out, mut ours_in) = (c.outbound.clone(), c.inbound.clone());
        let mut records = data;
        while let Some((tag, body, rest)) = take_record(records) {
            records = rest;
            let decoy = tag & 1 == 1;
            let times = [1usize, 64, 4_096, 65_536][usize::from((tag >> 1) & 3)];
            let contents = body.repeat(times.min((1 << 22) / body.len().max(1)).max(1));
            // Ours against the crate's, same keys, same packet number.
            let mine = our_packet(&mut ours_out, &contents, decoy);
            let theirs = crate_packet(&mut crate_resp_out, &contents, decoy);
            assert!(
                mine == theirs,
                "encryption differs from the bip324 crate's ({} bytes, decoy {decoy})",
                contents.len()
            );
            let len = crate_init_in.decrypt_packet_len([mine[0], mine[1], mine[2]]);
            let mut packet = mine[3..3 + len].to_vec();
            let (kind, plain) = crate_init_in.decrypt_in_place(&mut packet, None).expect("the crate accepts ours");
            assert_eq!(kind == PacketType::Decoy, decoy);
            assert!(&plain[1..] == contents.as_slice(), "the crate decrypted something else");
            // The crate's initiator, decrypted by ours.
            let mut wire = crate_packet(&mut crate_init_out, &contents, decoy);
            let len = ours_in.decrypt_length([wire[0], wire[1], wire[2]]);
            assert_eq!(len, contents.len());
            ours_in.decrypt(&mut wire[3..], &[]).expect("ours accepts the crate's");
            assert_eq!(wire[3] & 0x80 != 0, decoy);
            assert!(&wire[4..4 + len] == contents.as_slice(), "ours decrypted something else");
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Async plumbing shared by v2_handshake and peer

    thread_local! {
        /// Panics on this thread. The targets' runtimes are current-thread, so a panic in any task
        /// they spawn (which tokio would otherwise swallow) is counted here.
        static PANICS: Cell<usize> = const { Cell::new(0) };
    }

    fn count_panics() {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let _ = PANICS.try_with(|p| p.set(p.get() + 1));
                previous(info);
            }));
        });
    }

    fn panics() -> usize {
        PANICS.with(Cell::get)
    }

    /// Runs `f` on a fresh current-thread runtime with tokio's paused clock: timers fire as soon as
    /// every task waits, so hours of protocol time pass instantly and a real hang shows up as a
    /// timeout. Fails if any task panicked.
    fn run_paused<F: Future<Output = ()>>(what: &str, f: F) {
        count_panics();
        let before = panics();
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
            .block_on(f);
        assert_eq!(panics(), before, "{what}: a task panicked");
    }

    /// Reads and discards until the stream ends.
    async fn drain<R: tokio::io::AsyncRead + Unpin>(mut r: R) {
        let mut sink = [0u8; 4096];
        while matches!(r.read(&mut sink).await, Ok(n) if n > 0) {}
    }

    // ---------------------------------------------------------------------------------------------
    // v2_handshake

    /// The scripted remote's choices, read from the input.
    struct Script<'a> {
        garbage_len: usize,
        decoys: Vec<usize>,
        wrong_magic: bool,
        /// `(position in the remote's byte stream, xor)`.
        flips: Vec<(usize, u8)>,
        /// The remote stops after this many bytes.
        cut: Option<usize>,
        /// Packets sent after the handshake, as `encrypt_records` reads them.
        records: &'a [u8],
    }

    impl<'a> Script<'a> {
        fn parse(body: &'a [u8]) -> Script<'a> {
            let (g, rest) = take_u16(body);
            let (shape, rest) = rest.split_first().map_or((0, rest), |(b, r)| (*b, r));
            let mut decoys = Vec::new();
            let mut rest = rest;
            for _ in 0..(shape & 3) {
                let (len, r) = take_u16(rest);
                decoys.push(usize::from(len % 512));
                rest = r;
            }
            let mut flips = Vec::new();
            for _ in 0..((shape >> 2) & 7) {
                let (pos, r) = take_u16(rest);
                let (x, r) = r.split_first().map_or((0, r), |(b, r)| (*b, r));
                flips.push((usize::from(pos), x));
                rest = r;
            }
            let (cut, rest) = if shape & 0x20 != 0 {
                let (c, r) = take_u16(rest);
                (Some(usize::from(c)), r)
            } else {
                (None, rest)
            };
            Script {
                // Up to 4,299: beyond 4,095 the terminator is out of the responder's search range.
                garbage_len: usize::from(g) % 4300,
                decoys,
                wrong_magic: shape & 0x40 != 0,
                flips,
                cut,
                records: rest,
            }
        }
    }

    /// Writes the remote's bytes, applying the script's flips and cut; false once cut.
    struct Sender<W> {
        w: W,
        sent: usize,
        tampered: bool,
        cut: bool,
    }

    impl<W: tokio::io::AsyncWrite + Unpin> Sender<W> {
        async fn send(&mut self, script: &Script<'_>, bytes: &[u8]) -> bool {
            let mut bytes = bytes.to_vec();
            for &(pos, x) in &script.flips {
                if let Some(b) = pos.checked_sub(self.sent).and_then(|i| bytes.get_mut(i)) {
                    *b ^= x;
                    self.tampered |= x != 0;
                }
            }
            if let Some(cut) = script.cut {
                let room = cut.saturating_sub(self.sent);
                if room < bytes.len() {
                    bytes.truncate(room);
                    self.cut = true;
                }
            }
            self.sent += bytes.len();
            let ok = self.w.write_all(&bytes).await.is_ok() && self.w.flush().await.is_ok();
            ok && !self.cut
        }
    }

    /// A BIP324 peer following `script`: it sends its key and garbage, reads our key, sends its
    /// terminator, decoys and version packet, completes its side of the handshake from our bytes,
    /// then sends the script's packets. Returns the packets' expectation, and whether the remote
    /// sent everything untouched (so that our side must succeed).
    async fn scripted_remote(stream: DuplexStream, remote_role: Role, script: Script<'_>) -> (Expected, bool) {
        let (mut rd, wr) = tokio::io::split(stream);
        let mut tx = Sender { w: wr, sent: 0, tampered: false, cut: false };
        // A remote that cannot make sense of our bytes (a wrong magic) waits for a terminator that
        // never comes, as our side does for its: it gives up after a minute, as a node would.
        let inner = scripted_remote_inner(&mut rd, &mut tx, remote_role, &script);
        let outcome = tokio::time::timeout(Duration::from_secs(60), inner).await.ok().flatten();
        let _ = tx.w.shutdown().await;
        drain(rd).await;
        let clean = !tx.tampered && !tx.cut && !script.wrong_magic && script.garbage_len <= v2_handshake::MAX_GARBAGE;
        match outcome {
            Some(exp) => (exp, clean),
            None => (Expected::default(), false),
        }
    }

    async fn scripted_remote_inner<R, W>(
        rd: &mut R,
        tx: &mut Sender<W>,
        role: Role,
        script: &Script<'_>,
    ) -> Option<Expected>
    where
        R: tokio::io::AsyncRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin,
    {
        let magic = if script.wrong_magic { Network::MAINNET.magic().to_bytes() } else { regtest_magic() };
        let curve = Secp256k1::signing_only();
        let hs = Handshake::<Initialized>::new_with_rng(magic, role, &mut Fixed(3), &curve).ok()?;
        let garbage = vec![0x5a; script.garbage_len.min(v2_handshake::MAX_GARBAGE)];
        let mut first = vec![0u8; Handshake::<Initialized>::send_key_len(Some(&garbage))];
        let hs = hs.send_key(Some(&garbage), &mut first).ok()?;
        // Garbage beyond what BIP324 allows, sent without telling the state machine.
        first.resize(first.len() + script.garbage_len.saturating_sub(v2_handshake::MAX_GARBAGE), 0x5a);
        if !tx.send(script, &first).await {
            return None;
        }
        let mut ours = [0u8; 64];
        rd.read_exact(&mut ours).await.ok()?;
        let hs = hs.receive_key(ours).ok()?;
        let decoys: Vec<Vec<u8>> = script.decoys.iter().map(|&n| vec![0xd0; n]).collect();
        let decoy_refs: Vec<&[u8]> = decoys.iter().map(Vec::as_slice).collect();
        let mut second = vec![0u8; Handshake::<ReceivedKey<'_>>::send_version_len(Some(&decoy_refs))];
        let hs = hs.send_version(&mut second, Some(&decoy_refs)).ok()?;
        if !tx.send(script, &second).await {
            return None;
        }
        // Our side's garbage, terminator, decoys and version, read until the state machine is done.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let mut hs = hs;
        let (mut hs, consumed) = loop {
            match hs.receive_garbage(&buf).ok()? {
                GarbageResult::FoundGarbage { handshake, consumed_bytes } => break (handshake, consumed_bytes),
                GarbageResult::NeedMoreData(h) => hs = h,
            }
            let n = rd.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
            buf.extend_from_slice(&chunk[..n]);
        };
        let mut rest = buf.get(consumed..)?.to_vec();
        let cipher = loop {
            while rest.len() < 3 {
                let n = rd.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
                rest.extend_from_slice(&chunk[..n]);
            }
            let len = hs.decrypt_packet_len([rest[0], rest[1], rest[2]]).ok()?;
            while rest.len() < 3 + len {
                let n = rd.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
                rest.extend_from_slice(&chunk[..n]);
            }
            let mut packet = rest[3..3 + len].to_vec();
            rest.drain(..3 + len);
            match hs.receive_version(&mut packet).ok()? {
                VersionResult::Complete { cipher } => break cipher,
                VersionResult::Decoy(h) => hs = h,
            }
        };
        let (_, mut outbound) = cipher.into_split();
        let (wire, exp) =
            encrypt_records(|p, d| crate_packet(&mut outbound, p, d), script.records, Network::REGTEST.max_payload());
        tx.send(script, &wire).await;
        Some(exp)
    }

    /// `v2_handshake`: byte 0's bit 0 makes us the initiator (else the responder, which first tells
    /// v1 from v2 like an inbound peer does); bit 1 picks a scripted BIP324 remote (see [`Script`])
    /// instead of one that sends the rest of the input as raw bytes; bits 2–3 pick our decoys and
    /// bits 4–7 our garbage length. The remote then closes. Our side must end with a result (never
    /// hang or panic); against an untouched script it must succeed and then decrypt exactly the
    /// packets the remote sent after the handshake.
    pub fn v2_handshake(data: &[u8]) {
        let Some((&flags, body)) = data.split_first() else { return };
        let initiator = flags & 1 == 1;
        let scripted = flags & 2 == 2;
        let opts = V2Options {
            garbage_len: Some(usize::from(flags >> 4) * 273),
            decoys: [vec![], vec![0], vec![3, 200], vec![1000]][usize::from((flags >> 2) & 3)].clone(),
        };
        run_paused("v2_handshake", async move {
            let (ours, theirs) = tokio::io::duplex(1 << 16);
            let remote_role = if initiator { Role::Responder } else { Role::Initiator };
            let body = body.to_vec();
            let remote = tokio::spawn(async move {
                if scripted {
                    scripted_remote(theirs, remote_role, Script::parse(&body)).await
                } else {
                    let (rd, mut wr) = tokio::io::split(theirs);
                    let _ = wr.write_all(&body).await;
                    let _ = wr.shutdown().await;
                    drain(rd).await;
                    (Expected::default(), false)
                }
            });
            let ours = async move {
                let net = Network::REGTEST;
                let (mut rd, mut wr) = tokio::io::split(ours);
                let session = if initiator {
                    v2_handshake::initiate(&mut rd, &mut wr, &net, &opts).await
                } else {
                    let mut buf = BytesMut::new();
                    match v2_handshake::detect_v1(&mut rd, &net, &mut buf).await {
                        Ok(true) => return Ok(None),
                        Ok(false) => v2_handshake::respond(&mut rd, &mut wr, &net, &opts, buf).await,
                        Err(e) => Err(e),
                    }
                };
                let session = session?;
                // Everything the remote sent after its version packet, for the session's decoder.
                let mut wire = session.leftover.to_vec();
                let _ = rd.read_to_end(&mut wire).await;
                Ok::<_, V2HandshakeError>(Some((session.decoder, wire)))
            };
            let result = tokio::time::timeout(Duration::from_secs(3600), ours).await.expect("v2 handshake hung");
            let (exp, clean) = remote.await.expect("the remote script panicked");
            match result {
                Ok(Some((mut decoder, wire))) => {
                    let (frames, error) = feed_v2(&mut decoder, &wire, &mut Rng::from_input(&wire));
                    if clean {
                        check_expected(&frames, &error, decoder.decoys, &exp, "v2_handshake");
                    }
                    for f in frames {
                        let _ = Message::decode(f.command, f.payload);
                    }
                }
                Ok(None) => assert!(!clean, "a well-behaved v2 remote was taken for v1"),
                Err(e) => {
                    let _ = e.to_string();
                    assert!(!clean, "v2 handshake failed against a well-behaved remote: {e:?}");
                }
            }
        });
    }

    // ---------------------------------------------------------------------------------------------
    // peer

    /// Counts `on_disconnect` calls.
    struct Counting(Arc<AtomicUsize>);

    impl Handler for Counting {
        fn on_disconnect(&self, _peer: &Peer, _reason: &DisconnectReason) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Protocol versions the remote may claim (byte 0, bits 2–4).
    const REMOTE_VERSIONS: [u32; 8] = [70016, 70015, 70014, 70012, 70002, 70001, 60002, 31800];

    fn remote_version(version: u32) -> VersionMessage {
        VersionMessage {
            version,
            services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
            timestamp: 1_700_000_000,
            receiver: btcpeer::wire::blank_address(),
            sender: btcpeer::wire::blank_address(),
            nonce: 0x5eed,
            user_agent: "/fuzz:1.0/".into(),
            start_height: 100,
            relay: true,
            tail: VersionTail::Complete,
        }
    }

    async fn send<W: tokio::io::AsyncWrite + Unpin>(w: &mut FrameWriter<W>, m: &Message) -> bool {
        let mut payload = BytesMut::new();
        m.encode_payload(&mut payload).is_ok() && {
            w.push(m.command(), &payload.freeze());
            w.flush().await.is_ok()
        }
    }

    /// The remote of the `peer` target: a v1 or v2 transport, a valid version handshake, then the
    /// input's records as frames (selector ≥ 0xf8: the bytes go onto the stream raw), then close.
    async fn peer_remote(stream: DuplexStream, v2: bool, version: u32, features: bool, body: Vec<u8>) {
        let net = Network::REGTEST;
        let (mut rd, mut wr) = tokio::io::split(stream);
        let (mut reader, mut writer) = if v2 {
            let opts = V2Options { garbage_len: Some(0), decoys: vec![] };
            match v2_handshake::initiate(&mut rd, &mut wr, &net, &opts).await {
                Ok(session) => {
                    let (r, w, _, _) = v2_pair(rd, wr, session);
                    (r, w)
                }
                Err(_) => {
                    let _ = wr.shutdown().await;
                    return drain(rd).await;
                }
            }
        } else {
            (FrameReader::new(rd, net.clone()), FrameWriter::new(wr, net))
        };
        let mut ok = send(&mut writer, &Message::Version(remote_version(version))).await;
        if features {
            for m in
                [Message::WtxidRelay, Message::SendAddrV2, Message::SendTxRcncl(SendTxRcncl { version: 1, salt: 7 })]
            {
                ok = ok && send(&mut writer, &m).await;
            }
        }
        ok = ok && send(&mut writer, &Message::Verack).await;
        // The peer's version, features and verack.
        while ok {
            match reader.read_frame().await {
                Ok((f, _)) if f.command == Command::VERACK => break,
                Ok(_) => {}
                Err(_) => ok = false,
            }
        }
        // Whatever the peer sends from now on (pongs, rejects) is read and dropped.
        let drainer = tokio::spawn(async move { while reader.read_frame().await.is_ok() {} });
        let mut rest = &body[..];
        while let (true, Some((selector, bytes, tail))) = (ok, take_record(rest)) {
            rest = tail;
            ok = if selector >= 0xf8 {
                writer.write_raw(bytes).await.is_ok()
            } else {
                writer.push(command_for(selector), &Bytes::copy_from_slice(bytes));
                writer.flush().await.is_ok()
            };
        }
        let _ = writer.shutdown().await;
        let _ = drainer.await;
        drop(writer);
    }

    /// `peer`: an inbound [`Peer`] over an in-memory stream. Byte 0: bit 0 makes the remote speak v2,
    /// bit 1 sets the peer's policy (v1 remote: `Prefer` rather than `Never`; v2 remote: `Require`
    /// rather than `Prefer`), bits 2–4 the remote's protocol version ([`REMOTE_VERSIONS`]), bit 5
    /// sends wtxidrelay, sendaddrv2 and sendtxrcncl before verack, bit 6 offers NODE_BLOOM. The rest
    /// is records `(selector, u16 length, payload)` framed validly after the handshake. The peer must
    /// end (no hang), with a reason, calling `on_disconnect` exactly once, and no task may panic.
    pub fn peer(data: &[u8]) {
        let Some((&flags, body)) = data.split_first() else { return };
        let v2 = flags & 1 == 1;
        let policy = match (v2, flags & 2 == 2) {
            (false, false) => V2Policy::Never,
            (false, true) | (true, false) => V2Policy::Prefer,
            (true, true) => V2Policy::Require,
        };
        let version = REMOTE_VERSIONS[usize::from((flags >> 2) & 7)];
        let features = flags & 0x20 != 0;
        let services =
            if flags & 0x40 != 0 { ServiceFlags::NETWORK | ServiceFlags::BLOOM } else { ServiceFlags::NETWORK };
        let body = body.to_vec();
        run_paused("peer", async move {
            let disconnects = Arc::new(AtomicUsize::new(0));
            let config = PeerConfig::builder(Network::REGTEST)
                .user_agent("fuzz", "1.0")
                .nonce_registry(NonceRegistry::new())
                .v2(policy)
                .v2_garbage_len(0)
                .services(services)
                .build()
                .expect("valid config");
            let (a, b) = tokio::io::duplex(1 << 16);
            let peer = Peer::inbound(config, "127.0.0.1:50000", Counting(disconnects.clone()));
            peer.associate(a).expect("a fresh peer");
            let remote = tokio::spawn(peer_remote(b, v2, version, features, body));
            let reason = tokio::time::timeout(Duration::from_secs(3600), peer.wait_for_disconnect())
                .await
                .expect("the peer did not end within an hour of (simulated) time");
            tokio::time::timeout(Duration::from_secs(3600), remote)
                .await
                .expect("the remote did not see the peer close")
                .expect("the remote panicked");
            assert_ne!(reason, DisconnectReason::LocalRequest, "the peer ended without a reason of its own");
            let _ = reason.to_string();
            assert_eq!(disconnects.load(Ordering::SeqCst), 1, "on_disconnect calls");
            assert!(!peer.is_connected());
        });
    }
}

/// `fuzz/` at the project root.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Runs every file in `dir` through `target`, collecting the names of those that fail. `None` when
/// the directory is missing.
fn replay(dir: &Path, target: fn(&[u8])) -> Option<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("note: {} not readable ({e}); a checkout without fuzz/? nothing replayed", dir.display());
            return None;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.') && !n.ends_with(".md")))
        .collect();
    files.sort();
    let mut failed = Vec::new();
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if std::panic::catch_unwind(|| target(&data)).is_err() {
            failed.push(f.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{} of {} inputs in {} failed: {failed:#?}", failed.len(), files.len(), dir.display());
    println!("{}: {} inputs replayed", dir.display(), files.len());
    Some(files.len())
}

#[test]
fn p5_our_bip324_ciphers_match_the_bip324_crate_across_rekeys_sizes_and_decoys() {
    // 700 packets (three rekeys), sizes from 0 bytes to 4 MB, every tenth a decoy.
    let mut input = Vec::new();
    for n in 0..700u32 {
        let times = match (n % 350, n % 50) {
            (0, _) => 3u8, // 65,536 × the body, capped at 4 MB
            (_, 7) => 2,   // 4,096 ×
            (_, 13) => 1,  // 64 ×
            _ => 0,
        };
        let tag = (times << 1) | u8::from(n % 10 == 3);
        let body: Vec<u8> = (0..(n % 97) as u8).collect();
        input.push(tag);
        input.extend((body.len() as u16).to_le_bytes());
        input.extend(body);
    }
    harness::v2_cipher(&input);
}

#[test]
fn s1_replay_frame_corpus() {
    replay(&fuzz_dir().join("corpus/frame_v1"), harness::frame_v1);
}

#[test]
fn s1_replay_payload_corpus() {
    replay(&fuzz_dir().join("corpus/payload"), harness::payload);
}

#[test]
fn s1_replay_regressions() {
    let root = fuzz_dir().join("regressions");
    let Ok(entries) = std::fs::read_dir(&root) else {
        eprintln!("note: {} not found (a checkout without fuzz/?); nothing replayed", root.display());
        return;
    };
    let mut dirs: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let target: fn(&[u8]) = match name.as_str() {
            "frame_v1" => harness::frame_v1,
            "payload" => harness::payload,
            "v2_packet" => harness::v2_packet,
            "v2_handshake" => harness::v2_handshake,
            "peer" => harness::peer,
            other => panic!("fuzz/regressions/{other}: no fuzz target of that name"),
        };
        replay(&dir, target);
    }
}

/// The seeds' selector table agrees with the commands btcpeer knows.
#[test]
fn s1_selectors_cover_every_known_command() {
    // The selector order the committed corpus was written with.
    let order: Vec<&str> = harness::COMMANDS.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        order.join(" "),
        "version verack addr addrv2 sendaddrv2 inv getdata notfound getblocks getheaders headers block tx \
         mempool getaddr ping pong reject sendheaders feefilter filterload filteradd filterclear merkleblock \
         sendcmpct cmpctblock getblocktxn blocktxn getcfilters cfilter getcfheaders cfheaders getcfcheckpt \
         cfcheckpt wtxidrelay sendtxrcncl"
    );
    for (i, c) in harness::COMMANDS.iter().enumerate() {
        assert!(c.is_known(), "{c}");
        assert_eq!(harness::selector_for(c.as_str()), u8::try_from(i).ok());
        assert_eq!(harness::command_for(i as u8), *c);
    }
    for (i, name) in harness::UNKNOWN.iter().enumerate() {
        let c = harness::command_for((harness::COMMANDS.len() + i) as u8);
        assert!(!c.is_known() && c.as_str() == *name);
    }
}
