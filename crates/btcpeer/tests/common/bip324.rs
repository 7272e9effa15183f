//! A small reference implementation of BIP324's key derivation and packet encryption, for tests
//! that must send packets the `bip324` crate cannot make (header bytes other than 0x00 and 0x80)
//! and for checking the official packet-encoding vectors. Built on rust-bitcoin's scalar
//! ChaCha20-Poly1305 and libsecp256k1's ElligatorSwift, following the BIP's reference code.

use btcpeer::bitcoin::hashes::{Hash, HashEngine, Hmac, HmacEngine, sha256};
use btcpeer::bitcoin::secp256k1::SecretKey;
use btcpeer::bitcoin::secp256k1::ellswift::{ElligatorSwift, ElligatorSwiftParty};
use chacha20_poly1305::chacha20::ChaCha20;
use chacha20_poly1305::{ChaCha20Poly1305, Key, Nonce};

/// Messages per key: after this many, both ciphers rekey (BIP324's `REKEY_INTERVAL`).
pub const REKEY_INTERVAL: u64 = 224;

/// Every key BIP324 derives from the shared secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    pub session_id: [u8; 32],
    pub initiator_l: [u8; 32],
    pub initiator_p: [u8; 32],
    pub responder_l: [u8; 32],
    pub responder_p: [u8; 32],
    pub initiator_terminator: [u8; 16],
    pub responder_terminator: [u8; 16],
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut engine = HmacEngine::<sha256::Hash>::new(key);
    for p in parts {
        engine.input(p);
    }
    Hmac::<sha256::Hash>::from_engine(engine).to_byte_array()
}

impl Keys {
    /// HKDF-SHA256 (RFC 5869) of the ECDH secret with the network magic in the salt, as BIP324.
    pub fn derive(shared_secret: &[u8; 32], magic: [u8; 4]) -> Keys {
        let mut salt = b"bitcoin_v2_shared_secret".to_vec();
        salt.extend(magic);
        let prk = hmac(&salt, &[shared_secret]);
        // Every output is one 32-byte block: T(1) = HMAC(PRK, info || 0x01).
        let expand = |info: &str| hmac(&prk, &[info.as_bytes(), &[1]]);
        let garbage = expand("garbage_terminators");
        Keys {
            session_id: expand("session_id"),
            initiator_l: expand("initiator_L"),
            initiator_p: expand("initiator_P"),
            responder_l: expand("responder_L"),
            responder_p: expand("responder_P"),
            initiator_terminator: garbage[..16].try_into().unwrap(),
            responder_terminator: garbage[16..].try_into().unwrap(),
        }
    }

    /// The keys of a session: `ours` is our secret key, `initiator` says which side we are.
    pub fn from_ecdh(
        ours: SecretKey,
        ellswift_ours: [u8; 64],
        ellswift_theirs: [u8; 64],
        initiator: bool,
        magic: [u8; 4],
    ) -> Keys {
        let (a, b, party) = if initiator {
            (ellswift_ours, ellswift_theirs, ElligatorSwiftParty::A)
        } else {
            (ellswift_theirs, ellswift_ours, ElligatorSwiftParty::B)
        };
        let secret = ElligatorSwift::shared_secret(
            ElligatorSwift::from_array(a),
            ElligatorSwift::from_array(b),
            ours,
            party,
            None,
        );
        Keys::derive(secret.as_secret_bytes(), magic)
    }
}

/// FSChaCha20: the length cipher, a ChaCha20 keystream rekeyed every 224 chunks.
pub struct LengthCipher {
    key: [u8; 32],
    block: u32,
    chunks: u64,
    keystream: Vec<u8>,
}

impl LengthCipher {
    pub fn new(key: [u8; 32]) -> Self {
        LengthCipher { key, block: 0, chunks: 0, keystream: Vec::new() }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        while self.keystream.len() < n {
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&(self.chunks / REKEY_INTERVAL).to_le_bytes());
            let chacha = ChaCha20::new_from_block(Key::new(self.key), Nonce::new(nonce), self.block);
            self.keystream.extend(chacha.get_keystream(self.block));
            self.block += 1;
        }
        self.keystream.drain(..n).collect()
    }

    pub fn crypt(&mut self, chunk: &mut [u8]) {
        let ks = self.take(chunk.len());
        for (b, k) in chunk.iter_mut().zip(ks) {
            *b ^= k;
        }
        if (self.chunks + 1) % REKEY_INTERVAL == 0 {
            self.key = self.take(32).try_into().unwrap();
            self.block = 0;
            self.keystream.clear();
        }
        self.chunks += 1;
    }
}

/// FSChaCha20Poly1305: the packet AEAD, with BIP324's nonce layout and a rekey every 224 packets.
pub struct PacketCipher {
    key: [u8; 32],
    packets: u64,
}

impl PacketCipher {
    pub fn new(key: [u8; 32]) -> Self {
        PacketCipher { key, packets: 0 }
    }

    /// Encrypts `text` in place and returns the tag.
    pub fn encrypt(&mut self, aad: &[u8], text: &mut [u8]) -> [u8; 16] {
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&((self.packets % REKEY_INTERVAL) as u32).to_le_bytes());
        nonce[4..].copy_from_slice(&(self.packets / REKEY_INTERVAL).to_le_bytes());
        let tag = ChaCha20Poly1305::new(Key::new(self.key), Nonce::new(nonce)).encrypt(text, Some(aad));
        if (self.packets + 1) % REKEY_INTERVAL == 0 {
            let mut rekey_nonce = [0xffu8; 12];
            rekey_nonce[4..].copy_from_slice(&nonce[4..]);
            let mut key = [0u8; 32];
            ChaCha20Poly1305::new(Key::new(self.key), Nonce::new(rekey_nonce)).encrypt(&mut key, None);
            self.key = key;
        }
        self.packets += 1;
        tag
    }
}

/// One direction of a session: encrypts whole packets.
pub struct PacketSender {
    length: LengthCipher,
    packet: PacketCipher,
}

impl PacketSender {
    pub fn new(length_key: [u8; 32], packet_key: [u8; 32]) -> Self {
        PacketSender { length: LengthCipher::new(length_key), packet: PacketCipher::new(packet_key) }
    }

    /// A packet with any header byte: encrypted length, header and contents, tag.
    pub fn packet(&mut self, header: u8, contents: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut len = (contents.len() as u32).to_le_bytes()[..3].to_vec();
        self.length.crypt(&mut len);
        let mut body = vec![header];
        body.extend_from_slice(contents);
        let tag = self.packet.encrypt(aad, &mut body);
        let mut out = len;
        out.extend(body);
        out.extend(tag);
        out
    }
}
