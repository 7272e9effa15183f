//! Helpers shared by the peer integration tests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use btcpeer::network::Network;
use btcpeer::peer::{DisconnectReason, Handler, NonceRegistry, Peer, PeerConfig, PeerConfigBuilder, RemoteInfo};
use btcpeer::wire::{Command, Message};
use bytes::Bytes;
use tokio::sync::mpsc;

/// A bound on every wait in the tests: generous for loopback, small enough to fail fast.
pub const WAIT: Duration = Duration::from_secs(10);

/// A configuration builder for one simulated node: its own nonce registry, so two peers of one test
/// process are not taken for a self-connection.
pub fn builder() -> PeerConfigBuilder {
    PeerConfig::builder(Network::REGTEST).user_agent("test", "1.0").nonce_registry(NonceRegistry::new())
}

/// [`builder`] with timers out of the way (no idle timeout, no pings) and an immediate trickle.
pub fn quiet() -> PeerConfigBuilder {
    builder()
        .idle_timeout(Duration::ZERO)
        .ping_interval(Duration::ZERO)
        .trickle_interval(Duration::ZERO, Duration::ZERO)
}

pub fn config() -> PeerConfig {
    builder().build().expect("valid config")
}

/// What a [`Recorder`] saw.
#[derive(Debug, Clone)]
pub enum Event {
    Handshake(RemoteInfo),
    Message(Message),
    Disconnect(DisconnectReason),
    Write(Command),
}

/// A handler that forwards what it sees to a channel.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Event>,
    pub refuse: Option<String>,
    pub disconnects: Arc<Mutex<u32>>,
}

pub fn recorder() -> (Recorder, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Recorder { tx, refuse: None, disconnects: Arc::new(Mutex::new(0)) }, rx)
}

impl Handler for Recorder {
    fn on_version(&self, _peer: &Peer, _v: &btcpeer::wire::VersionMessage) -> Result<(), String> {
        match &self.refuse {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }
    fn on_handshake(&self, _peer: &Peer, remote: &RemoteInfo) {
        let _ = self.tx.send(Event::Handshake(remote.clone()));
    }
    fn on_disconnect(&self, _peer: &Peer, reason: &DisconnectReason) {
        *self.disconnects.lock().unwrap() += 1;
        let _ = self.tx.send(Event::Disconnect(reason.clone()));
    }
    fn on_write(&self, _peer: &Peer, command: Command, _bytes: usize) {
        let _ = self.tx.send(Event::Write(command));
    }
    fn on_message(&self, _peer: &Peer, message: Message, _raw: Bytes) {
        let _ = self.tx.send(Event::Message(message));
    }
}

/// Waits for the next message event matching `f`, skipping others.
pub async fn next_message<F: Fn(&Message) -> bool>(rx: &mut mpsc::UnboundedReceiver<Event>, f: F) -> Message {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Some(Event::Message(m)) if f(&m) => return m,
                Some(_) => {}
                None => panic!("handler channel closed"),
            }
        }
    })
    .await
    .expect("message in time")
}

/// Two peers connected over an in-memory stream: (outbound, inbound).
pub fn duplex_pair(out_cfg: PeerConfig, out: impl Handler, in_cfg: PeerConfig, inb: impl Handler) -> (Peer, Peer) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let o = Peer::outbound(out_cfg, "127.0.0.1:18444", out);
    let i = Peer::inbound(in_cfg, "127.0.0.1:50000", inb);
    o.associate(a).expect("fresh");
    i.associate(b).expect("fresh");
    (o, i)
}

pub async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.expect("in time")
}

/// The far end of a connection, driven by hand: sends and receives frames with no peer logic.
pub struct Remote {
    pub reader: btcpeer::transport::stream::FrameReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>,
    pub writer: btcpeer::transport::stream::FrameWriter<tokio::io::WriteHalf<tokio::io::DuplexStream>>,
}

impl Remote {
    pub async fn send(&mut self, msg: &Message) {
        let mut payload = bytes::BytesMut::new();
        msg.encode_payload(&mut payload).expect("encodes");
        self.writer.push(msg.command(), &payload.freeze());
        self.writer.flush().await.expect("remote write");
    }

    /// Writes raw bytes (a hand-made or deliberately broken frame).
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let w = self.writer.get_mut();
        w.write_all(bytes).await.expect("remote raw write");
        w.flush().await.expect("remote flush");
    }

    /// The next message, or `None` once the peer closed the stream.
    pub async fn recv(&mut self) -> Option<Message> {
        match tokio::time::timeout(WAIT, self.reader.read_frame()).await.expect("remote read in time") {
            Ok((frame, _)) => Some(frame.decode().expect("peer sends valid payloads")),
            Err(_) => None,
        }
    }

    /// Reads until the peer closes, returning every message.
    pub async fn drain(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(m) = self.recv().await {
            out.push(m);
        }
        out
    }

    /// Performs the remote's half of a handshake with an outbound peer (which speaks first).
    pub async fn accept_handshake(&mut self, version: u32) -> btcpeer::wire::VersionMessage {
        let Some(Message::Version(theirs)) = self.recv().await else { panic!("peer did not send version first") };
        self.send(&Message::Version(raw_version(version, 42))).await;
        self.send(&Message::Verack).await;
        loop {
            match self.recv().await {
                Some(Message::Verack) => return theirs,
                Some(_) => {}
                None => panic!("peer closed during handshake"),
            }
        }
    }
}

use tokio::io::AsyncWriteExt;

/// An outbound peer under test, connected to a [`Remote`] driven by the test.
pub fn outbound_to_remote(cfg: PeerConfig, handler: impl Handler) -> (Peer, Remote) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let peer = Peer::outbound(cfg, "127.0.0.1:18444", handler);
    peer.associate(a).expect("fresh");
    (peer, remote(b))
}

/// An inbound peer under test, connected to a [`Remote`] driven by the test.
pub fn inbound_from_remote(cfg: PeerConfig, handler: impl Handler) -> (Peer, Remote) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let peer = Peer::inbound(cfg, "127.0.0.1:50000", handler);
    peer.associate(a).expect("fresh");
    (peer, remote(b))
}

pub fn remote(stream: tokio::io::DuplexStream) -> Remote {
    use btcpeer::transport::stream::{FrameReader, FrameWriter};
    let (r, w) = tokio::io::split(stream);
    Remote { reader: FrameReader::new(r, Network::REGTEST), writer: FrameWriter::new(w, Network::REGTEST) }
}

/// A version message as a remote would send it.
pub fn raw_version(version: u32, nonce: u64) -> btcpeer::wire::VersionMessage {
    use btcpeer::bitcoin::p2p::ServiceFlags;
    btcpeer::wire::VersionMessage {
        version,
        services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        timestamp: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64,
        receiver: btcpeer::wire::blank_address(),
        sender: btcpeer::wire::blank_address(),
        nonce,
        user_agent: "/remote:1.0/".into(),
        start_height: 100,
        relay: true,
        tail: btcpeer::wire::VersionTail::Complete,
    }
}

/// A bound for tests under tokio's paused clock, where simulated minutes pass instantly.
pub async fn within_simulated<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f).await.expect("in simulated time")
}

impl Remote {
    /// Like [`Remote::accept_handshake`], sending `features` (wtxidrelay, sendaddrv2 …) before verack.
    pub async fn accept_handshake_with(&mut self, version: u32, features: &[Message]) {
        let Some(Message::Version(_)) = self.recv().await else { panic!("peer did not send version first") };
        self.send(&Message::Version(raw_version(version, 42))).await;
        for f in features {
            self.send(f).await;
        }
        self.send(&Message::Verack).await;
        loop {
            match self.recv().await {
                Some(Message::Verack) => return,
                Some(_) => {}
                None => panic!("peer closed during handshake"),
            }
        }
    }
}

impl Remote {
    /// The next message without a bound of its own, for paused-clock tests that bound the whole wait
    /// with [`within_simulated`].
    pub async fn recv_untimed(&mut self) -> Option<Message> {
        match self.reader.read_frame().await {
            Ok((frame, _)) => Some(frame.decode().expect("peer sends valid payloads")),
            Err(_) => None,
        }
    }
}

/// Messages of every kind, for tests that send them all.
pub mod samples {
    use btcpeer::bitcoin::bip152::{BlockTransactions, BlockTransactionsRequest, HeaderAndShortIds};
    use btcpeer::bitcoin::block::{Header, Version};
    use btcpeer::bitcoin::hashes::Hash;
    use btcpeer::bitcoin::p2p::address::{AddrV2, AddrV2Message};
    use btcpeer::bitcoin::p2p::message_blockdata::{GetBlocksMessage, GetHeadersMessage};
    use btcpeer::bitcoin::p2p::message_compact_blocks::SendCmpct;
    use btcpeer::bitcoin::p2p::message_filter::{
        CFCheckpt, CFHeaders, CFilter, GetCFCheckpt, GetCFHeaders, GetCFilters,
    };
    use btcpeer::bitcoin::p2p::{Address, ServiceFlags};
    use btcpeer::bitcoin::{
        Amount, Block, BlockHash, CompactTarget, FilterHash, FilterHeader, MerkleBlock, OutPoint, ScriptBuf, Sequence,
        Transaction, TxIn, TxMerkleNode, TxOut, Txid, Witness, absolute, transaction,
    };
    use btcpeer::wire::{Command, FilterAdd, FilterLoad, Inventory, Message, Reject, RejectCode};
    use bytes::Bytes;

    pub fn header() -> Header {
        Header {
            version: Version::TWO,
            prev_blockhash: BlockHash::all_zeros(),
            merkle_root: TxMerkleNode::all_zeros(),
            time: 1_700_000_000,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            nonce: 1,
        }
    }

    pub fn tx() -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint { txid: Txid::all_zeros(), vout: 0 },
                script_sig: ScriptBuf::from_bytes(vec![1, 2, 3]),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut { value: Amount::from_sat(5_000), script_pubkey: ScriptBuf::new() }],
        }
    }

    /// One message of every kind a handler method exists for.
    pub fn one_of_each() -> Vec<Message> {
        let hash = BlockHash::all_zeros();
        let addr = Address { services: ServiceFlags::NETWORK, address: [0, 0, 0, 0, 0, 0xffff, 0x0a00, 1], port: 8333 };
        vec![
            Message::Addr(vec![(1_700_000_000, addr)]),
            Message::AddrV2(vec![AddrV2Message {
                time: 1,
                services: ServiceFlags::NETWORK,
                addr: AddrV2::Ipv4("10.0.0.1".parse().unwrap()),
                port: 8333,
            }]),
            Message::Inv(vec![Inventory::Block(hash)]),
            Message::GetData(vec![Inventory::Tx(Txid::all_zeros())]),
            Message::NotFound(vec![Inventory::Tx(Txid::all_zeros())]),
            Message::GetBlocks(GetBlocksMessage::new(vec![hash], hash)),
            Message::GetHeaders(GetHeadersMessage::new(vec![hash], hash)),
            Message::Headers(vec![header()]),
            Message::Block(Block { header: header(), txdata: vec![tx()] }),
            Message::Tx(tx()),
            Message::MemPool,
            Message::GetAddr,
            Message::Ping(11),
            Message::Pong(12),
            Message::Reject(Reject {
                message: "tx".into(),
                code: RejectCode::INVALID,
                reason: "bad".into(),
                hash: None,
            }),
            Message::SendHeaders,
            Message::FeeFilter(1_000),
            Message::FilterLoad(FilterLoad { filter: vec![0; 8], hash_funcs: 3, tweak: 4, flags: 1 }),
            Message::FilterAdd(FilterAdd { data: vec![9; 20] }),
            Message::FilterClear,
            Message::MerkleBlock(MerkleBlock::from_header_txids_with_predicate(
                &header(),
                &[Txid::all_zeros()],
                |_| true,
            )),
            Message::SendCmpct(SendCmpct { send_compact: true, version: 2 }),
            Message::CmpctBlock(HeaderAndShortIds {
                header: header(),
                nonce: 5,
                short_ids: vec![],
                prefilled_txs: vec![],
            }),
            Message::GetBlockTxn(BlockTransactionsRequest { block_hash: hash, indexes: vec![1, 2] }),
            Message::BlockTxn(BlockTransactions { block_hash: hash, transactions: vec![tx()] }),
            Message::GetCFilters(GetCFilters { filter_type: 0, start_height: 1, stop_hash: hash }),
            Message::CFilter(CFilter { filter_type: 0, block_hash: hash, filter: vec![1, 2] }),
            Message::GetCFHeaders(GetCFHeaders { filter_type: 0, start_height: 1, stop_hash: hash }),
            Message::CFHeaders(CFHeaders {
                filter_type: 0,
                stop_hash: hash,
                previous_filter_header: FilterHeader::all_zeros(),
                filter_hashes: vec![FilterHash::all_zeros()],
            }),
            Message::GetCFCheckpt(GetCFCheckpt { filter_type: 0, stop_hash: hash }),
            Message::CFCheckpt(CFCheckpt {
                filter_type: 0,
                stop_hash: hash,
                filter_headers: vec![FilterHeader::all_zeros()],
            }),
            Message::Unknown { command: Command::new("xversion").unwrap(), payload: Bytes::from_static(b"hi") },
        ]
    }
}

impl Remote {
    /// Performs the remote's half of a handshake with an inbound peer: the remote speaks first.
    pub async fn initiate_handshake(&mut self, version: u32) {
        self.send(&Message::Version(raw_version(version, 4242))).await;
        loop {
            match self.recv_untimed().await {
                Some(Message::Version(_)) => break,
                Some(_) => {}
                None => panic!("peer closed during handshake"),
            }
        }
        self.send(&Message::Verack).await;
        loop {
            match self.recv_untimed().await {
                Some(Message::Verack) => return,
                Some(_) => {}
                None => panic!("peer closed during handshake"),
            }
        }
    }
}
