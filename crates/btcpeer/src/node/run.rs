//! The node's tasks: accepting, the policy loop (dials, actions, periodic saves) and one task per
//! dial; and its files.

use std::sync::Arc;
use std::time::Duration;

use btcpeer_core::addrbook::V2Support;
use btcpeer_core::node::bans::save_anchors;
use btcpeer_core::node::{Action, Admission, ConnKind, Dial, NodeReason};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::conn::{ConnHandler, ConnState};
use super::{NodeError, NodeEvent, NodeShared, clock};
use crate::peer::{ConnectError, Peer, V2Policy};
use crate::wire::Message;

/// Core's `DUMP_PEERS_INTERVAL`: the book is written every 15 minutes (`net.cpp`).
const SAVE_EVERY: Duration = Duration::from_secs(15 * 60);
/// Dials started in one round at most (the rest wait for the next).
const DIALS_PER_ROUND: usize = 16;
/// How long shutdown waits for the peers to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accepts until the node stops; each connection is admitted, admitted after an eviction, or
/// refused by the policy before a byte is read.
pub(super) async fn accept_loop(shared: Arc<NodeShared>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            a = listener.accept() => a,
        };
        let (stream, from) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: wait a moment rather than spin.
                tracing::warn!(%e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (now, unix) = clock();
        // Our end of the connection: `getaddr` answers are cached per local address and port.
        let local = stream.local_addr().ok();
        let heard: Vec<_> = shared
            .all_conns()
            .into_iter()
            .filter(|c| c.kind == ConnKind::Inbound && !c.established.load(std::sync::atomic::Ordering::Acquire))
            .filter(|c| c.heard())
            .map(|c| c.id)
            .collect();
        let admission = match shared.core.lock() {
            Ok(mut core) => {
                for id in heard {
                    core.heard(id);
                }
                match local {
                    Some(local) => core.inbound_on(from, local, now, unix),
                    None => core.inbound(from, now, unix),
                }
            }
            Err(_) => break,
        };
        let (id, evicted) = match admission {
            Admission::Accept(id) => (id, None),
            Admission::AcceptEvicting { id, evict } => {
                tracing::debug!(%from, evict, "inbound full: evicting");
                let conn = shared.conn(evict);
                if let Some(conn) = &conn {
                    conn.end(NodeReason::Evicted);
                }
                (id, conn.map(|c| (evict, c.addr)))
            }
            Admission::Refuse(refusal) => {
                tracing::debug!(%from, ?refusal, "inbound refused");
                drop(stream);
                shared.emit(NodeEvent::Refused { addr: from, refusal });
                continue;
            }
            _ => continue,
        };
        let conn = ConnState::new(id, from, ConnKind::Inbound, shared.config.v2_policy());
        // A duplicate of the socket to peek at until the handshake: an honest initiator sends its
        // version or key at once, and is known for it even before its task has run.
        let stream = match with_probe(stream) {
            Ok((stream, probe)) => {
                conn.set_probe(probe);
                stream
            }
            Err(e) => {
                tracing::debug!(%from, %e, "the socket could not be duplicated");
                if let Ok(mut core) = shared.core.lock() {
                    core.closed(id, false, now, unix);
                }
                continue;
            }
        };
        if let Ok(mut conns) = shared.conns.lock() {
            conns.insert(id, conn.clone());
        }
        let handler =
            ConnHandler { node: Arc::downgrade(&shared), conn: conn.clone(), app: shared.peer_handler.clone() };
        let peer = Peer::inbound(shared.config.clone(), from, handler);
        conn.set_peer(peer.clone());
        shared.emit(NodeEvent::Accepted { id, addr: from, peer: peer.id(), evicted });
        let _ = stream.set_nodelay(true);
        if peer.associate(stream).is_err() {
            conn.release();
            let (now, unix) = clock();
            if let Ok(mut core) = shared.core.lock() {
                core.closed(id, false, now, unix);
            }
            shared.forget(id);
        }
        shared.wake.notify_one();
    }
}

/// `stream` and a duplicate of its socket for peeking.
fn with_probe(stream: tokio::net::TcpStream) -> std::io::Result<(tokio::net::TcpStream, std::net::TcpStream)> {
    let std = stream.into_std()?;
    let probe = std.try_clone()?;
    Ok((tokio::net::TcpStream::from_std(std)?, probe))
}

/// The policy loop: starts the dials the policy wants, carries out its actions, saves the book
/// now and then, and at the end shuts everything down.
pub(super) async fn policy_loop(shared: Arc<NodeShared>, mut stop: watch::Receiver<bool>) -> Result<(), NodeError> {
    let after = |t: tokio::time::Instant, d: Duration| t.checked_add(d).unwrap_or(t);
    let mut next_save = after(tokio::time::Instant::now(), SAVE_EVERY);
    while !*stop.borrow() {
        let (now, unix) = clock();
        let (dials, actions, next) = match shared.core.lock() {
            Ok(mut core) => {
                let mut dials = Vec::new();
                while dials.len() < DIALS_PER_ROUND {
                    let Some(d) = core.poll_dial(now, unix) else { break };
                    dials.push(d);
                }
                // Address messages whose timers fired (Core's `MaybeSendAddr`).
                core.poll_addr_relay(now, unix);
                let actions: Vec<Action> = std::iter::from_fn(|| core.poll_action()).collect();
                (dials, actions, core.poll_timeout())
            }
            Err(_) => break,
        };
        let more = dials.len() == DIALS_PER_ROUND;
        for dial in dials {
            tokio::spawn(dial_task(shared.clone(), dial));
        }
        for action in actions {
            execute(&shared, action);
        }
        let tnow = tokio::time::Instant::now();
        if tnow >= next_save {
            next_save = after(tnow, SAVE_EVERY);
            if let Err(e) = save_book(&shared) {
                tracing::warn!(%e, "the address book could not be saved");
            }
        }
        // Wake for the policy's next deadline (never in a busy loop), a minute at most, or
        // whenever something happens.
        let floor = after(tnow, if more { Duration::ZERO } else { Duration::from_millis(20) });
        let ceiling = after(tnow, Duration::from_secs(60));
        let deadline =
            next.map(tokio::time::Instant::from_std).unwrap_or(ceiling).max(floor).min(ceiling).min(next_save);
        tokio::select! {
            _ = stop.changed() => {}
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
    finish(&shared).await
}

/// Shutdown: the anchors first (while the block-relay-only peers are still connected), then every
/// connection ended, then the files.
async fn finish(shared: &Arc<NodeShared>) -> Result<(), NodeError> {
    let anchors = shared.core.lock().map(|c| c.anchors()).unwrap_or_default();
    let conns = shared.all_conns();
    for conn in &conns {
        conn.end(NodeReason::Shutdown);
    }
    let ended = async {
        for conn in &conns {
            if let Some(peer) = conn.peer() {
                peer.wait_for_disconnect().await;
            }
        }
    };
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, ended).await;
    if let Some(path) = &shared.files.anchors {
        save_anchors(path, &anchors).map_err(|source| NodeError::Save { path: path.clone(), source })?;
    }
    save_book(shared)?;
    save_bans(shared)
}

/// One dial: the peer's configuration from the connection's kind and what the book knows of its
/// v2 support, a deadline, and the outcome reported to the policy.
async fn dial_task(shared: Arc<NodeShared>, dial: Dial) {
    let base = if dial.kind == ConnKind::BlockRelay { &shared.blocks_only } else { &shared.config };
    // A remembered v2 failure goes straight to v1; otherwise the configured policy.
    let policy = match (dial.v2, base.v2_policy()) {
        (V2Support::Failed, V2Policy::Prefer) => V2Policy::Never,
        (_, p) => p,
    };
    let config = base.with_v2(policy);
    let conn = ConnState::new(dial.id, dial.addr, dial.kind, policy);
    if let Ok(mut conns) = shared.conns.lock() {
        conns.insert(dial.id, conn.clone());
    }
    let handler = ConnHandler { node: Arc::downgrade(&shared), conn: conn.clone(), app: shared.peer_handler.clone() };
    let target = dial.addr.to_string();
    let outcome = tokio::time::timeout(shared.dial_timeout, Peer::connect(&target, config, handler)).await;
    let error = match outcome {
        Ok(Ok((peer, _))) => {
            let ended_early = conn.by_node.lock().map(|r| r.is_some()).unwrap_or(false);
            conn.set_peer(peer.clone());
            if ended_early {
                // Ended (a feeler done, a ban) before the dial returned its handle.
                peer.disconnect();
            }
            None
        }
        Ok(Err(e)) => {
            let v2_failed = matches!(&e, ConnectError::Handshake { reason, .. } if reason.suggests_v1_only());
            Some((e.to_string(), v2_failed))
        }
        Err(_) => Some((format!("no handshake within {:?}", shared.dial_timeout), false)),
    };
    if let Some((error, v2_failed)) = error {
        tracing::debug!(addr = %dial.addr, kind = ?dial.kind, %error, "dial failed");
        let (now, unix) = clock();
        if let Ok(mut core) = shared.core.lock() {
            core.dial_failed(dial.id, v2_failed, now, unix);
        }
        shared.forget(dial.id);
        shared.emit(NodeEvent::DialFailed { addr: dial.addr, kind: dial.kind, error });
    }
    shared.wake.notify_one();
}

/// Carries out one of the policy's actions.
fn execute(shared: &NodeShared, action: Action) {
    match action {
        Action::GetAddr { to } => {
            if let Some(peer) = shared.conn(to).and_then(|c| c.peer()) {
                let _ = peer.queue_message(&Message::GetAddr);
            }
        }
        Action::Addr { to, addrs } => {
            if let Some(peer) = shared.conn(to).and_then(|c| c.peer()) {
                let _ = peer.push_addr(&addrs);
            }
        }
        Action::Disconnect { id, reason } => {
            if let Some(conn) = shared.conn(id) {
                conn.end(reason);
            }
        }
        _ => {}
    }
}

pub(super) fn save_book(shared: &NodeShared) -> Result<(), NodeError> {
    let Some(path) = &shared.files.book else { return Ok(()) };
    let bytes = shared.core.lock().map(|c| c.book().encode()).unwrap_or_default();
    btcpeer_core::persist::write_atomic(path, &bytes).map_err(|source| NodeError::Save { path: path.clone(), source })
}

pub(super) fn save_bans(shared: &NodeShared) -> Result<(), NodeError> {
    let Some(path) = &shared.files.bans else { return Ok(()) };
    let (bans, discouraged) =
        shared.core.lock().map(|c| (c.bans().encode(), c.discouraged().encode())).unwrap_or_default();
    btcpeer_core::persist::write_atomic(path, &bans)
        .map_err(|source| NodeError::Save { path: path.clone(), source })?;
    if let Some(path) = shared.files.discouraged() {
        btcpeer_core::persist::write_atomic(&path, &discouraged)
            .map_err(|source| NodeError::Save { path: path.clone(), source })?;
    }
    Ok(())
}
