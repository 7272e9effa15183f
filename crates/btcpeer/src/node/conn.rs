//! One connection of a node: the state the node keeps for it, and the [`Handler`] that feeds its
//! peer's events into the policy ([`NodeCore`](btcpeer_core::node::NodeCore)).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use btcpeer_core::addrbook::{Endpoint, V2Support};
use btcpeer_core::node::{ConnId, ConnKind, Hello, NodeCore, NodeReason};
use bytes::Bytes;

use super::event::NodeEvent;
use super::{NodeShared, clock};
use crate::peer::{DisconnectReason, Handler, Peer, ReadEvent, RemoteInfo, Transport, V2Policy, WeakPeer};
use crate::wire::{Command, Message, VersionMessage};

/// What the node keeps for one connection.
pub(super) struct ConnState {
    pub(super) id: ConnId,
    pub(super) addr: SocketAddr,
    pub(super) kind: ConnKind,
    /// The v2 policy it was dialed with (inbound: the node's).
    pub(super) policy: V2Policy,
    /// The application's share of the peer (the dial's or the accept's handle).
    owned: Mutex<Option<Peer>>,
    /// The peer as its handler saw it at the handshake (before the dial returns its handle).
    weak: OnceLock<WeakPeer>,
    /// Why the node ended it, if it did.
    pub(super) by_node: Mutex<Option<NodeReason>>,
    pub(super) established: AtomicBool,
    /// An inbound connection's socket, duplicated, to see whether the remote has sent a byte
    /// before the peer's task has read it (dropped at the handshake and at the end).
    probe: Mutex<Option<std::net::TcpStream>>,
    heard: AtomicBool,
    /// When an `inv` was last written to it (what a `getdata` may ask for: Core's
    /// `FindTxForGetData` serves transactions older than the last announcement).
    pub(super) last_inv_sent: Mutex<Option<std::time::Instant>>,
}

impl ConnState {
    pub(super) fn new(id: ConnId, addr: SocketAddr, kind: ConnKind, policy: V2Policy) -> Arc<ConnState> {
        Arc::new(ConnState {
            id,
            addr,
            kind,
            policy,
            owned: Mutex::new(None),
            weak: OnceLock::new(),
            by_node: Mutex::new(None),
            established: AtomicBool::new(false),
            probe: Mutex::new(None),
            heard: AtomicBool::new(false),
            last_inv_sent: Mutex::new(None),
        })
    }

    pub(super) fn set_probe(&self, probe: std::net::TcpStream) {
        if let Ok(mut p) = self.probe.lock() {
            *p = Some(probe);
        }
    }

    /// Whether the remote has sent a byte: peeked on the socket (without taking it), or seen by
    /// the peer. Once true, stays true.
    pub(super) fn heard(&self) -> bool {
        if self.heard.load(Ordering::Acquire) {
            return true;
        }
        let peeked = self.probe.lock().ok().is_some_and(|p| {
            p.as_ref().is_some_and(|s| {
                let mut byte = [0u8; 1];
                matches!(s.peek(&mut byte), Ok(n) if n > 0)
            })
        });
        let heard = peeked || self.peer().is_some_and(|p| p.heard_from());
        if heard {
            self.heard.store(true, Ordering::Release);
            self.drop_probe();
        }
        heard
    }

    fn drop_probe(&self) {
        if let Ok(mut p) = self.probe.lock() {
            p.take();
        }
    }

    /// Lets go of the peer and the probe once the connection has ended (the peer's handler holds
    /// this state: keeping the peer here would keep both alive).
    pub(super) fn release(&self) {
        self.drop_probe();
        if let Ok(mut owned) = self.owned.lock() {
            owned.take();
        }
    }

    pub(super) fn set_peer(&self, peer: Peer) {
        if let Ok(mut owned) = self.owned.lock() {
            *owned = Some(peer);
        }
    }

    /// The peer, if it is still there.
    pub(super) fn peer(&self) -> Option<Peer> {
        let owned = self.owned.lock().ok().and_then(|o| o.clone());
        owned.or_else(|| self.weak.get().and_then(WeakPeer::upgrade))
    }

    /// Ends the connection for `reason` (the first reason given is kept).
    pub(super) fn end(&self, reason: NodeReason) {
        if let Ok(mut r) = self.by_node.lock() {
            r.get_or_insert(reason);
        }
        if let Some(peer) = self.peer() {
            peer.disconnect();
        }
    }

    fn node_reason(&self) -> Option<NodeReason> {
        self.by_node.lock().ok().and_then(|r| *r)
    }
}

/// Whether `reason` discourages the remote's address: only what Core scores with `Misbehaving`
/// ([`btcpeer_core::node::discourages`]), not our own policy, not what Core only disconnects,
/// not a payload that merely failed to decode.
pub(super) fn is_misbehaviour(reason: &DisconnectReason) -> bool {
    btcpeer_core::node::discourages(reason)
}

/// The handler of every peer of a node: the policy learns each event, the application hears it
/// (as a [`NodeEvent`], and through its own per-peer [`Handler`] when it gave one).
pub(super) struct ConnHandler {
    pub(super) node: Weak<NodeShared>,
    pub(super) conn: Arc<ConnState>,
    pub(super) app: Option<Arc<dyn Handler>>,
}

impl Handler for ConnHandler {
    fn on_version(&self, peer: &Peer, version: &VersionMessage) -> Result<(), String> {
        if let Some(node) = self.node.upgrade() {
            if let Ok(mut core) = node.core.lock() {
                core.version_received(self.conn.id);
            }
        }
        self.app.as_ref().map_or(Ok(()), |a| a.on_version(peer, version))
    }

    fn on_read(&self, peer: &Peer, event: &ReadEvent<'_>) {
        if let Some(a) = &self.app {
            a.on_read(peer, event);
        }
    }

    fn on_write(&self, peer: &Peer, command: Command, bytes: usize) {
        if command == Command::INV {
            if let Ok(mut at) = self.conn.last_inv_sent.lock() {
                *at = Some(clock().0);
            }
        }
        if let Some(a) = &self.app {
            a.on_write(peer, command, bytes);
        }
    }

    fn start_height(&self) -> i32 {
        self.app.as_ref().map_or(0, |a| a.start_height())
    }

    fn on_handshake(&self, peer: &Peer, remote: &RemoteInfo) {
        if let Some(a) = &self.app {
            a.on_handshake(peer, remote);
        }
        let Some(node) = self.node.upgrade() else { return };
        let _ = self.conn.weak.set(peer.downgrade());
        self.conn.established.store(true, Ordering::Release);
        self.conn.drop_probe();
        let (now, unix) = clock();
        if let Ok(mut core) = node.core.lock() {
            core.established(self.conn.id, &Hello::from(remote), now, unix);
            // A v1 handshake after trying v2 first: the book remembers, the next dial is v1.
            if self.conn.kind.is_outbound() && self.conn.policy == V2Policy::Prefer && remote.transport == Transport::V1
            {
                core.book_mut().set_v2(&Endpoint::from(self.conn.addr), V2Support::Failed);
            }
        }
        node.wake.notify_one();
        // A first ping at once, as Core's `MaybeSendPing` does for a new peer: eviction protects
        // the fastest peers, so every peer should have a round trip to be judged by.
        if self.conn.kind != ConnKind::Feeler {
            let (peer, weak, id) = (peer.clone(), self.node.clone(), self.conn.id);
            tokio::spawn(async move {
                if let Ok(rtt) = peer.ping().await {
                    if let Some(node) = weak.upgrade() {
                        if let Ok(mut core) = node.core.lock() {
                            core.ping_sample(id, rtt);
                        }
                    }
                }
            });
        }
        node.emit(NodeEvent::Connected {
            id: self.conn.id,
            addr: self.conn.addr,
            kind: self.conn.kind,
            remote: Box::new(remote.clone()),
        });
    }

    fn on_message(&self, peer: &Peer, message: Message, raw: Bytes) {
        let Some(node) = self.node.upgrade() else {
            if let Some(a) = &self.app {
                a.on_message(peer, message, raw);
            }
            return;
        };
        // The policy's lock (and the clock) only for the messages the policy reads: most traffic
        // (inventory, headers, pings) goes by without touching the node's shared state.
        // A block-relay-only peer's `inv` too: one naming a transaction ends it (Core's
        // `RejectIncomingTxs`).
        let tx_inv = self.conn.kind == ConnKind::BlockRelay && matches!(message, Message::Inv(_));
        if NodeCore::handles(&message) || tx_inv {
            let (now, unix) = clock();
            if let Ok(mut core) = node.core.lock() {
                core.received(self.conn.id, &message, now, unix);
            }
            if matches!(message, Message::Addr(_) | Message::AddrV2(_) | Message::GetAddr) {
                node.wake.notify_one();
            }
        } else if matches!(message, Message::Pong(_)) {
            let rtt = peer.stats().last_ping_rtt;
            if let (Some(rtt), Ok(mut core)) = (rtt, node.core.lock()) {
                core.ping_sample(self.conn.id, rtt);
            }
        }
        match &self.app {
            Some(a) => {
                if node.wants_messages() {
                    let event = NodeEvent::Message {
                        id: self.conn.id,
                        addr: self.conn.addr,
                        message: Box::new(message.clone()),
                    };
                    node.emit(event);
                }
                a.on_message(peer, message, raw);
            }
            None if node.wants_messages() => {
                node.emit(NodeEvent::Message { id: self.conn.id, addr: self.conn.addr, message: Box::new(message) });
            }
            None => {}
        }
    }

    fn on_disconnect(&self, peer: &Peer, reason: &DisconnectReason) {
        self.conn.release();
        if let Some(a) = &self.app {
            a.on_disconnect(peer, reason);
        }
        let Some(node) = self.node.upgrade() else { return };
        let established = self.conn.established.load(Ordering::Acquire);
        // A dial that never finished its handshake is reported by the dial (its backoff);
        // everything else ends here.
        if established || !self.conn.kind.is_outbound() {
            let (now, unix) = clock();
            let misbehaved = is_misbehaviour(reason) && self.conn.node_reason().is_none();
            if let Ok(mut core) = node.core.lock() {
                core.closed(self.conn.id, misbehaved, now, unix);
            }
            node.forget(self.conn.id);
            node.wake.notify_one();
        }
        if established || !self.conn.kind.is_outbound() {
            node.emit(NodeEvent::Disconnected {
                id: self.conn.id,
                addr: self.conn.addr,
                kind: self.conn.kind,
                reason: reason.clone(),
                by_node: self.conn.node_reason(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::Violation;
    use crate::wire::Command;

    #[test]
    fn a_node_discourages_only_where_cores_misbehaving_does() {
        for v in [
            Violation::V1NotAllowed,
            Violation::TooManyIgnored { count: 100 },
            Violation::FeatureAfterVerack(Command::SENDADDRV2),
            Violation::BloomNotOffered(Command::FILTERADD),
        ] {
            assert!(!is_misbehaviour(&DisconnectReason::Protocol(v.clone())), "{v}");
        }
        let garbage = Message::decode(Command::PING, Bytes::from_static(&[1])).unwrap_err();
        assert!(!is_misbehaviour(&DisconnectReason::Payload(garbage)), "a payload that failed to decode");
        let oversized = Message::decode(Command::INV, Bytes::from_static(&[0xfd, 0x51, 0xc3])).unwrap_err();
        assert!(is_misbehaviour(&DisconnectReason::Payload(oversized)), "Core: inv message size");
    }
}
