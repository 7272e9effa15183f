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
