//! R-L10: what keeps a peer alive. The application's handles do; the peer's own tasks and the
//! `&Peer` its handler is given do not; a `WeakPeer` does not either.

mod common;

use std::future::IntoFuture;
use std::sync::{Arc, Mutex};

use btcpeer::peer::{DisconnectReason, Handler, NoopHandler, Peer, RemoteInfo, SendOutcome, WeakPeer};
use btcpeer::wire::Message;
use common::*;

#[tokio::test]
async fn r_l10_dropping_the_last_handle_ends_a_running_peer_with_local_dropped() {
    let (h, mut rx) = recorder();
    let disconnects = h.disconnects.clone();
    let (peer, mut remote) = outbound_to_remote(config(), h);
    remote.accept_handshake(70016).await;
    within(peer.handshake()).await.expect("handshake");
    let closed = peer.closed();
    let weak = peer.downgrade();
    drop(peer);
    assert_eq!(within(closed).await, DisconnectReason::LocalDropped);
    // The stream is closed: the remote reads to its end.
    within(remote.drain()).await;
    let reason = within(async {
        loop {
            if let Some(Event::Disconnect(r)) = rx.recv().await {
                return r;
            }
        }
    })
    .await;
    assert_eq!(reason, DisconnectReason::LocalDropped);
    assert_eq!(*disconnects.lock().unwrap(), 1, "on_disconnect once");
    assert!(weak.upgrade().is_none(), "no handle is left to upgrade to");
}

#[tokio::test]
async fn r_l10_a_never_associated_peer_dropped_calls_on_disconnect_once_and_drops_its_queue() {
    let (h, mut rx) = recorder();
    let disconnects = h.disconnects.clone();
    let peer = Peer::outbound(config(), "127.0.0.1:18444", h);
    let queued = peer.queue_message(&Message::GetAddr).expect("queued before association");
    drop(peer);
    assert_eq!(within(queued.into_future()).await, SendOutcome::Dropped(DisconnectReason::LocalDropped));
    assert!(matches!(rx.try_recv(), Ok(Event::Disconnect(DisconnectReason::LocalDropped))));
    assert_eq!(*disconnects.lock().unwrap(), 1);
}

#[tokio::test]
async fn r_l10_a_never_associated_peer_disconnected_then_dropped_calls_on_disconnect_once() {
    let (h, _rx) = recorder();
    let disconnects = h.disconnects.clone();
    let peer = Peer::outbound(config(), "127.0.0.1:18444", h);
    peer.disconnect();
    assert_eq!(peer.disconnect_reason(), Some(DisconnectReason::LocalRequest));
    drop(peer);
    assert_eq!(*disconnects.lock().unwrap(), 1, "the first reason stands; on_disconnect once");
}

#[tokio::test]
async fn r_l10_a_clone_keeps_the_peer_alive_until_it_too_is_dropped() {
    let (peer, mut remote) = outbound_to_remote(config(), NoopHandler);
    remote.accept_handshake(70016).await;
    within(peer.handshake()).await.expect("handshake");
    let kept = peer.clone();
    let weak = peer.downgrade();
    assert_eq!(weak.id(), peer.id());
    drop(peer);
    // Still running: it answers a ping.
    remote.send(&Message::Ping(7)).await;
    assert!(matches!(remote.recv().await, Some(Message::Pong(7))));
    assert!(kept.is_connected());
    let upgraded = weak.upgrade().expect("a handle lives");
    assert_eq!(upgraded.id(), kept.id());
    drop(kept);
    assert!(upgraded.is_connected(), "the upgraded handle is one more");
    let closed = upgraded.closed();
    drop(upgraded);
    assert_eq!(within(closed).await, DisconnectReason::LocalDropped);
}

/// A handler that stores what it is given: the `&Peer` (cloned) and a `WeakPeer`.
#[derive(Default)]
struct Hoarder {
    peers: Mutex<Vec<Peer>>,
    weak: Mutex<Option<WeakPeer>>,
    ended: Mutex<Option<DisconnectReason>>,
}

impl Handler for Hoarder {
    fn on_handshake(&self, peer: &Peer, _remote: &RemoteInfo) {
        self.peers.lock().unwrap().push(peer.clone());
        *self.weak.lock().unwrap() = Some(peer.downgrade());
    }
    fn on_disconnect(&self, _peer: &Peer, reason: &DisconnectReason) {
        *self.ended.lock().unwrap() = Some(reason.clone());
    }
}

#[tokio::test]
async fn r_l10_a_handler_storing_its_peer_does_not_keep_it_alive() {
    let hoarder = Arc::new(Hoarder::default());
    let (peer, mut remote) = outbound_to_remote(config(), hoarder.clone());
    remote.accept_handshake(70016).await;
    within(peer.handshake()).await.expect("handshake");
    let weak = hoarder.weak.lock().unwrap().clone().expect("stored on handshake");
    // The weak reference the handler made upgrades to a real handle while the application holds one.
    assert_eq!(weak.upgrade().map(|p| p.id()), Some(peer.id()));
    let closed = peer.closed();
    drop(peer);
    assert_eq!(within(closed).await, DisconnectReason::LocalDropped);
    assert_eq!(*hoarder.ended.lock().unwrap(), Some(DisconnectReason::LocalDropped));
    assert!(weak.upgrade().is_none());
    // The stored `&Peer` clone still answers questions about the ended peer.
    let stored = hoarder.peers.lock().unwrap()[0].clone();
    assert!(!stored.is_connected());
    assert_eq!(stored.disconnect_reason(), Some(DisconnectReason::LocalDropped));
}

#[tokio::test]
async fn r_l10_local_dropped_has_a_kind_and_a_message() {
    let r = DisconnectReason::LocalDropped;
    assert_eq!(r.kind(), "local_dropped");
    assert!(r.to_string().contains("dropped"));
}

#[test]
fn r_l10_handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync + Clone + 'static>() {}
    send_sync::<Peer>();
    send_sync::<WeakPeer>();
}
