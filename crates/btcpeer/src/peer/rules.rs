//! The peer's own rules for each message received after the handshake (Bitcoin
//! Core's conformance rules, §12): what it answers itself (a pong), what it records (preferences,
//! relay, what the remote knows), what it ignores and counts, what ends it — then the hand-off to
//! the application. The tasks that move bytes are in `driver`; this module moves none.

use std::time::Duration;

use bytes::Bytes;

use btcpeer_core::peer::rules::{self, Rule};

use super::Peer;
use super::error::DisconnectReason;
use crate::wire::frame::RawFrame;
use crate::wire::version::REJECT_VERSION;
use crate::wire::{Command, Message, Reject, RejectCode};

/// How long a reject sent before disconnecting may take.
const REJECT_GRACE: Duration = Duration::from_secs(2);

/// Counts a frame that was ignored or dropped and enforces the configured misbehaviour limit
/// (the core's rule, [`ProtocolState::check_misbehaviour`](btcpeer_core::peer::ProtocolState::check_misbehaviour)).
pub(crate) fn misbehaved(peer: &Peer, f: impl FnOnce(&mut super::stats::Counters)) -> Result<(), DisconnectReason> {
    let limit = peer.shared.config.inner.ignored_limit;
    peer.counters(|c| {
        f(c);
        c.proto.check_misbehaviour(limit)
    })
}

/// Sends a reject (when the remote's version has them) and waits briefly for it to be written. Callers
/// box this rarely taken path, so that it does not enlarge every idle peer's task.
async fn reject_and_wait(peer: &Peer, command: Command, code: RejectCode, reason: &str) {
    if peer.negotiated_version() < REJECT_VERSION {
        return;
    }
    let reject = Reject { message: command.as_str().to_string(), code, reason: reason.to_string(), hash: None };
    if let Ok(done) = peer.queue_message(&Message::Reject(reject)) {
        let _ = tokio::time::timeout(REJECT_GRACE, done.wait()).await;
    }
}

/// Applies the peer's own rules to a message, then hands it to the application.
pub(crate) async fn dispatch(peer: &Peer, frame: RawFrame) -> Result<(), DisconnectReason> {
    let command = frame.command;
    if command == Command::BLOCK && peer.shared.config.inner.raw_blocks {
        return Box::pin(dispatch_raw_block(peer, frame.payload)).await;
    }
    rules::before_decode(command)?;
    let message = match frame.decode() {
        Ok(m) => m,
        Err(e) => return Box::pin(malformed(peer, e)).await,
    };
    // One lock for the bookkeeping of a received message, all of it the core's
    // (`ProtocolState::receive`): the remote answered (stall deadlines), what it now knows, its
    // preferences and relay, a pong's round trip, the rule for the message; and the start of our
    // own processing time.
    let cfg = &peer.shared.config.inner;
    let bloom = cfg.bloom_policy();
    let (ours, len) = (cfg.protocol_version, frame.payload.len());
    let (rule, rtt) = peer.counters(|c| {
        let now = super::now();
        let (rule, rtt) = c.proto.receive(&message, len, ours, bloom, now);
        if let (Rule::Deliver(_), Some(l)) = (&rule, c.proto.liveness.as_mut()) {
            l.handler_started(now);
        }
        (rule, rtt)
    });
    if let Some(rtt) = rtt {
        tracing::debug!(rtt_us = rtt.as_micros() as u64, "pong");
    }
    let builtin = match rule {
        Rule::Deliver(builtin) => builtin,
        Rule::Malformed(e) => return Box::pin(malformed(peer, e)).await,
        Rule::End(reason) => return Err(reason),
        // Ignored (counted by the state; the limit is enforced here), and any rule a later core
        // adds that this driver does not know.
        _ => return misbehaved(peer, |_| {}),
    };
    if let Some(nonce) = builtin.pong {
        // The pong's fate does not concern the handler; a full queue ends the peer soon anyway.
        let _ = peer.queue_message(&Message::Pong(nonce));
    }
    // An answer to an awaitable request goes to it, not to the application.
    let Some(message) = peer.offer_to_requests(message, rtt) else {
        peer.counters(|c| c.proto.liveness.as_mut().map(|l| l.handler_finished(super::now())));
        return Ok(());
    };
    // Time spent in the application is not charged to the remote (R-V4); the clock started
    // before the peer's own handling and stops when the caller regains control.
    peer.shared.sink.message(peer, message, frame.payload).await;
    peer.counters(|c| c.proto.liveness.as_mut().map(|l| l.handler_finished(super::now())));
    Ok(())
}

/// A known message whose payload does not decode ends the peer, after a reject where the remote's
/// version has them.
async fn malformed(peer: &Peer, e: crate::wire::PayloadError) -> Result<(), DisconnectReason> {
    reject_and_wait(peer, e.command, RejectCode::MALFORMED, "malformed message").await;
    Err(DisconnectReason::Payload(e))
}

/// Records a preference the remote announced, by the core's rules
/// ([`Preferences::record`](btcpeer_core::peer::rules::Preferences::record)); false for a value
/// Core ignores.
pub(crate) fn record_preference(peer: &Peer, message: &Message) -> bool {
    peer.counters(|c| c.proto.prefs.record(message))
}

/// A block handed on undecoded: its shape checked as decoding would, its header hashed for the
/// known-inventory cache.
async fn dispatch_raw_block(peer: &Peer, payload: Bytes) -> Result<(), DisconnectReason> {
    // The core's rule for an undecoded block: refused as a decoded one would be, else the same
    // bookkeeping (the remote answered, it knows the block).
    let checked = crate::wire::check_block(&payload);
    let checked = peer.counters(|c| {
        let now = super::now();
        let checked = c.proto.receive_raw_block(checked, now);
        if let (Ok(_), Some(l)) = (&checked, c.proto.liveness.as_mut()) {
            l.handler_started(now);
        }
        checked
    });
    if let Err(e) = checked {
        return Box::pin(malformed(peer, e)).await;
    }
    // A block a request waits for is decoded for it (raw delivery is for the application's own).
    let taken = peer.has_requests()
        && match Message::decode(Command::BLOCK, payload.clone()) {
            Ok(block @ Message::Block(_)) => peer.offer_to_requests(block, None).is_none(),
            _ => false,
        };
    if !taken {
        peer.shared.sink.raw_block(peer, payload).await;
    }
    peer.counters(|c| c.proto.liveness.as_mut().map(|l| l.handler_finished(super::now())));
    Ok(())
}
