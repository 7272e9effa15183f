//! The `v2_handshake` fuzz target: our BIP324 handshake against a scripted remote built on the `bip324` crate.

use super::*;

/// The scripted remote's choices, read from the input.
pub(super) struct Script<'a> {
    pub(super) garbage_len: usize,
    pub(super) decoys: Vec<usize>,
    pub(super) wrong_magic: bool,
    /// `(position in the remote's byte stream, xor)`.
    pub(super) flips: Vec<(usize, u8)>,
    /// The remote stops after this many bytes.
    pub(super) cut: Option<usize>,
    /// Packets sent after the handshake, as `encrypt_records` reads them.
    pub(super) records: &'a [u8],
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
pub(super) struct Sender<W> {
    pub(super) w: W,
    pub(super) sent: usize,
    pub(super) tampered: bool,
    pub(super) cut: bool,
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
pub(super) async fn scripted_remote(stream: DuplexStream, remote_role: Role, script: Script<'_>) -> (Expected, bool) {
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

pub(super) async fn scripted_remote_inner<R, W>(
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
