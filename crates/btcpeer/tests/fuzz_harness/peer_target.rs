//! The `peer_tokio` fuzz target: a whole tokio-driven peer against a remote sending fuzzed messages
//! (the same input format as `peer`, which drives the core directly).

use super::*;

/// Counts `on_disconnect` calls.
pub(super) struct Counting(Arc<AtomicUsize>);

impl Handler for Counting {
    fn on_disconnect(&self, _peer: &Peer, _reason: &DisconnectReason) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Protocol versions the remote may claim (byte 0, bits 2–4).
pub const REMOTE_VERSIONS: [u32; 8] = [70016, 70015, 70014, 70012, 70002, 70001, 60002, 31800];

pub fn remote_version(version: u32) -> VersionMessage {
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

pub(super) async fn send<W: tokio::io::AsyncWrite + Unpin>(w: &mut FrameWriter<W>, m: &Message) -> bool {
    let mut payload = BytesMut::new();
    m.encode_payload(&mut payload).is_ok() && {
        w.push(m.command(), &payload.freeze());
        w.flush().await.is_ok()
    }
}

/// The remote of the `peer` target: a v1 or v2 transport, a valid version handshake, then the
/// input's records as frames (selector ≥ 0xf8: the bytes go onto the stream raw), then close.
pub(super) async fn peer_remote(stream: DuplexStream, v2: bool, version: u32, features: bool, body: Vec<u8>) {
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
        for m in [Message::WtxidRelay, Message::SendAddrV2, Message::SendTxRcncl(SendTxRcncl { version: 1, salt: 7 })] {
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

/// `peer_tokio`: an inbound [`Peer`] over an in-memory stream. Byte 0: bit 0 makes the remote speak v2,
/// bit 1 sets the peer's policy (v1 remote: `Prefer` rather than `Never`; v2 remote: `Require`
/// rather than `Prefer`), bits 2–4 the remote's protocol version ([`REMOTE_VERSIONS`]), bit 5
/// sends wtxidrelay, sendaddrv2 and sendtxrcncl before verack, bit 6 offers NODE_BLOOM. The rest
/// is records `(selector, u16 length, payload)` framed validly after the handshake. The peer must
/// end (no hang), with a reason, calling `on_disconnect` exactly once, and no task may panic.
pub fn peer_tokio(data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else { return };
    let v2 = flags & 1 == 1;
    let policy = match (v2, flags & 2 == 2) {
        (false, false) => V2Policy::Never,
        (false, true) | (true, false) => V2Policy::Prefer,
        (true, true) => V2Policy::Require,
    };
    let version = REMOTE_VERSIONS[usize::from((flags >> 2) & 7)];
    let features = flags & 0x20 != 0;
    let services = if flags & 0x40 != 0 { ServiceFlags::NETWORK | ServiceFlags::BLOOM } else { ServiceFlags::NETWORK };
    let body = body.to_vec();
    run_paused("peer_tokio", async move {
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
