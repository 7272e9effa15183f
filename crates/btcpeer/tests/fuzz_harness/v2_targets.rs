//! The `v2_packet` and `v2_cipher` fuzz targets: the BIP324 packet decoder and our ciphers against the `bip324` crate.

use super::*;

/// A fixed "random" source, so that keys (and what a corpus input means) are the same in every
/// process.
pub(super) struct Fixed(pub(super) u8);

impl FillBytes for Fixed {
    fn fill_bytes(&mut self, dest: &mut [u8; 32]) {
        *dest = [self.0; 32];
    }
}

pub(super) fn regtest_magic() -> [u8; 4] {
    Network::REGTEST.magic().to_bytes()
}

/// Completes a handshake state machine from the remote's terminator and packets.
pub(super) fn finish(hs: Handshake<SentVersion>, from_remote: &[u8]) -> CipherSession {
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
pub(super) fn crate_packet(out: &mut OutboundCipher, contents: &[u8], decoy: bool) -> Vec<u8> {
    out.encrypt_to_vec(contents, if decoy { PacketType::Decoy } else { PacketType::Genuine }, None)
}

/// One packet by ours.
pub(super) fn our_packet(
    out: &mut btcpeer::transport::v2_cipher::OutboundCipher,
    contents: &[u8],
    decoy: bool,
) -> Vec<u8> {
    let mut buf = BytesMut::new();
    out.encrypt_into(if decoy { 0x80 } else { 0 }, &[], &mut buf, |o| o.extend_from_slice(contents));
    buf.to_vec()
}

/// Feeds `wire` to `decoder` in random chunks until it is used up or the decoder fails.
pub(super) fn feed_v2(decoder: &mut V2Decoder, wire: &[u8], rng: &mut Rng) -> (Vec<RawFrame>, Option<V2Error>) {
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
pub(super) struct Expected {
    /// Genuine packets' messages, in order.
    pub(super) frames: Vec<RawFrame>,
    /// Decoys before the end.
    pub(super) decoys: u64,
    /// The error the stream ends with, if it does.
    pub(super) error: Option<V2Error>,
    /// Whether everything was predicted: no packet was tampered with.
    pub(super) exact: bool,
}

/// Encrypts `(kind, length, contents)` records: kind bit 0 makes a decoy, bit 1 flips one bit of
/// the packet at byte `kind >> 2`. Returns the wire bytes and what a decoder must make of them.
pub(super) fn encrypt_records(
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

pub(super) fn check_expected(frames: &[RawFrame], error: &Option<V2Error>, decoys: u64, exp: &Expected, what: &str) {
    let n = exp.frames.len().min(frames.len());
    assert_eq!(&frames[..n], &exp.frames[..n], "{what}: decrypted messages differ from what was sent");
    assert!(frames.len() >= exp.frames.len(), "{what}: {} of {} messages came through", frames.len(), exp.frames.len());
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
        assert!(mine == theirs, "encryption differs from the bip324 crate's ({} bytes, decoy {decoy})", contents.len());
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
