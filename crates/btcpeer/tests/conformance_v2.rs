//! §12 Core conformance, item 6 (C-2): BIP324's ignore bit, tested with a responder written out by
//! hand on the library's ciphers, and the official BIP324 packet-encoding vectors run through those
//! ciphers. The other items are in `conformance.rs`.

mod common;

use btcpeer::network::{Magic, Network};
use btcpeer::peer::{Peer, V2Policy};
use btcpeer::wire::{Command, Message};
use bytes::BytesMut;
use common::*;

mod v2_remote {
    use super::*;
    use btcpeer::bitcoin::secp256k1::{Secp256k1, SecretKey, ellswift::ElligatorSwift};
    use btcpeer::transport::v2_cipher::OutboundCipher;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The responder's side of a BIP324 handshake, written out by hand with the library's
    /// ciphers so that it can send packets of any header byte: `early` are (header, contents)
    /// packets sent between the garbage terminator and the version packet. Returns the peer under
    /// test (an outbound v2 peer), the cipher for steady state, and the stream's write half.
    pub async fn connect(
        handler: impl btcpeer::peer::Handler,
        early: &[(u8, Vec<u8>)],
    ) -> (Peer, OutboundCipher, tokio::io::WriteHalf<tokio::io::DuplexStream>) {
        let cfg = quiet().v2(V2Policy::Require).build().unwrap();
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let peer = Peer::outbound(cfg, "127.0.0.1:18444", handler);
        peer.associate(ours).unwrap();
        let (mut rd, mut wr) = tokio::io::split(theirs);
        let mut initiator_key = [0u8; 64];
        rd.read_exact(&mut initiator_key).await.unwrap();
        // Whatever else the peer sends is read and dropped.
        tokio::spawn(async move {
            let mut sink = vec![0u8; 1 << 16];
            while rd.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        });
        let sk = SecretKey::from_slice(&[0x42; 32]).unwrap();
        let ellswift = ElligatorSwift::from_seckey(&Secp256k1::new(), sk, None);
        let magic = Network::REGTEST.magic().to_bytes();
        let keys = btcpeer::transport::v2_handshake::session_keys(
            sk,
            &ellswift,
            &ElligatorSwift::from_array(initiator_key),
            false,
            magic,
        );
        let (_, mut send) = keys.ciphers(false);
        let garbage = b"some garbage".to_vec();
        let mut out = BytesMut::from(&ellswift.to_array()[..]);
        out.extend_from_slice(&garbage);
        out.extend_from_slice(&keys.responder_terminator);
        // The first packet after the garbage authenticates it.
        let mut aad = garbage.clone();
        for (header, contents) in early {
            send.encrypt_into(*header, &aad, &mut out, |o| o.extend_from_slice(contents));
            aad.clear();
        }
        send.encrypt_into(0, &aad, &mut out, |_| {});
        for msg in [Message::Version(raw_version(70016, 9)), Message::Verack] {
            send.encrypt_into(0, &[], &mut out, |o| o.extend_from_slice(&contents(&msg)));
        }
        wr.write_all(&out).await.unwrap();
        within_simulated(60, peer.handshake()).await.expect("v2 handshake with the hand-made responder");
        (peer, send, wr)
    }

    /// A message's packet contents: its BIP324 message id, then its payload.
    pub fn contents(msg: &Message) -> Vec<u8> {
        let mut payload = BytesMut::new();
        msg.encode_payload(&mut payload).unwrap();
        let mut out = Vec::new();
        btcpeer::transport::v2::encode_contents(msg.command(), &payload, &mut out);
        out
    }

    /// One packet with any header byte.
    pub fn packet(send: &mut OutboundCipher, header: u8, contents: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        send.encrypt_into(header, &[], &mut out, |o| o.extend_from_slice(contents));
        out
    }
}

#[tokio::test(start_paused = true)]
async fn c_item6_a_packet_with_the_ignore_bit_set_is_a_decoy_whatever_the_reserved_bits() {
    use tokio::io::AsyncWriteExt;
    let (h, mut rx) = recorder();
    // Before the version packet: decoys whose headers are 0x80 with reserved bits set too.
    let early = vec![(0x81u8, b"decoy one".to_vec()), (0xc0, vec![]), (0xff, vec![1; 300])];
    let (peer, mut send, mut wr) = v2_remote::connect(h, &early).await;
    assert_eq!(peer.stats().dropped_frames, 0, "the real version packet was taken as the version");
    // In steady state: more such decoys, then a genuine ping whose header has a reserved bit set.
    let mut out = v2_remote::packet(&mut send, 0xc0, b"junk that is no message");
    out.extend(v2_remote::packet(&mut send, 0x81, &v2_remote::contents(&Message::Ping(1))));
    out.extend(v2_remote::packet(&mut send, 0x01, &v2_remote::contents(&Message::Ping(2))));
    wr.write_all(&out).await.unwrap();
    let got = within_simulated(60, async {
        loop {
            if let Some(Event::Message(m)) = rx.recv().await {
                return m;
            }
        }
    })
    .await;
    assert_eq!(got, Message::Ping(2), "decoys skipped; reserved header bits ignored");
    let s = peer.stats();
    assert_eq!((s.unknown_received, s.dropped_frames), (0, 0));
    assert_eq!(s.per_command.of(Command::PING).messages_received, 1);
    assert!(peer.is_connected());
    peer.disconnect();
}

#[test]
fn c_item6_p5_our_ciphers_pass_bip324s_packet_encoding_vectors() {
    use btcpeer::bitcoin::hex::FromHex;
    use btcpeer::bitcoin::secp256k1::{SecretKey, ellswift::ElligatorSwift};
    let path =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/bip324-packet-encoding.csv");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "CI must have {}: {e}", path.display());
            eprintln!("note: {} not found; the BIP324 vectors were not checked", path.display());
            return;
        }
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let hex = |s: &str| Vec::<u8>::from_hex(s).unwrap();
    let arr32 = |s: &str| <[u8; 32]>::try_from(hex(s)).unwrap();
    let mut rows = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let initiating = f[col("in_initiating")] == "1";
        let sk = SecretKey::from_slice(&hex(f[col("in_priv_ours")])).unwrap();
        let ours = ElligatorSwift::from_array(hex(f[col("in_ellswift_ours")]).try_into().unwrap());
        let theirs = ElligatorSwift::from_array(hex(f[col("in_ellswift_theirs")]).try_into().unwrap());
        let keys =
            btcpeer::transport::v2_handshake::session_keys(sk, &ours, &theirs, initiating, Magic::BITCOIN.to_bytes());
        assert_eq!(keys.initiator_length, arr32(f[col("mid_initiator_l")]));
        assert_eq!(keys.initiator_packet, arr32(f[col("mid_initiator_p")]));
        assert_eq!(keys.responder_length, arr32(f[col("mid_responder_l")]));
        assert_eq!(keys.responder_packet, arr32(f[col("mid_responder_p")]));
        assert_eq!(keys.session_id, arr32(f[col("out_session_id")]));
        let (send_terminator, recv_terminator) = if initiating {
            (keys.initiator_terminator, keys.responder_terminator)
        } else {
            (keys.responder_terminator, keys.initiator_terminator)
        };
        assert_eq!(send_terminator.to_vec(), hex(f[col("mid_send_garbage_terminator")]));
        assert_eq!(recv_terminator.to_vec(), hex(f[col("mid_recv_garbage_terminator")]));
        let (_, mut sender) = keys.ciphers(initiating);
        for _ in 0..f[col("in_idx")].parse::<u32>().unwrap() {
            sender.encrypt_into(0, &[], &mut BytesMut::new(), |_| {});
        }
        let contents = hex(f[col("in_contents")]).repeat(f[col("in_multiply")].parse().unwrap());
        let header = if f[col("in_ignore")] == "1" { 0x80 } else { 0 };
        let mut packet = BytesMut::new();
        sender.encrypt_into(header, &hex(f[col("in_aad")]), &mut packet, |o| o.extend_from_slice(&contents));
        let (full, tail) = (f[col("out_ciphertext")], f[col("out_ciphertext_endswith")]);
        if !full.is_empty() {
            assert_eq!(packet.to_vec(), hex(full), "row {rows}");
        } else {
            assert!(packet.ends_with(&hex(tail)), "row {rows}");
        }
        rows += 1;
    }
    assert_eq!(rows, text.lines().filter(|l| !l.is_empty()).count() - 1, "every row checked");
    assert!(rows > 0);
}
