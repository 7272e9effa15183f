//! The peer's own rules for each message received after the handshake (R-R3 … R-R6 and Bitcoin
//! Core's conformance rules, §12): what it answers itself (a pong), what it records (preferences,
//! relay, what the remote knows), what it ignores and counts, what ends it — then the hand-off to
//! the application. The tasks that move bytes are in `driver`; this module moves none.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::Peer;
use super::error::{DisconnectReason, Violation};
use super::stats::Counters;
use crate::wire::frame::RawFrame;
use crate::wire::version::{NO_BLOOM_VERSION, REJECT_VERSION, is_defined, ping_has_nonce};
use crate::wire::{Command, Message, Reject, RejectCode};

/// How long a reject sent before disconnecting may take.
const REJECT_GRACE: Duration = Duration::from_secs(2);

/// Counts a frame that was ignored or dropped and enforces the configured misbehaviour limit
/// (default none, as Core, which only logs such frames).
pub(crate) fn misbehaved(peer: &Peer, f: impl FnOnce(&mut super::stats::Counters)) -> Result<(), DisconnectReason> {
    let count = peer.counters(|c| {
        f(c);
        c.misbehaviour()
    });
    match peer.shared.config.inner.ignored_limit {
        Some(limit) if count > limit => Err(DisconnectReason::Protocol(Violation::TooManyIgnored { count })),
        _ => Ok(()),
    }
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

/// Applies the peer's own rules to a message, then hands it to the application (R-R3 … R-R6).
pub(crate) async fn dispatch(peer: &Peer, frame: RawFrame) -> Result<(), DisconnectReason> {
    let command = frame.command;
    if command == Command::BLOCK && peer.shared.config.inner.raw_blocks {
        return Box::pin(dispatch_raw_block(peer, frame.payload)).await;
    }
    // Feature negotiation after verack ends the peer at every negotiated version (Core's
    // `ProcessMessage`: "wtxidrelay received after verack", "sendaddrv2 received after verack"),
    // so this comes before the version gate, which would ignore them at an old version.
    if command == Command::WTXIDRELAY || command == Command::SENDADDRV2 {
        return Err(DisconnectReason::Protocol(Violation::FeatureAfterVerack(command)));
    }
    let message = match frame.decode() {
        Ok(m) => m,
        Err(e) => return Box::pin(malformed(peer, e)).await,
    };
    // One lock for the bookkeeping of a received message: the remote answered (stall deadlines),
    // the negotiated version, what the remote now knows, and the start of our own processing time.
    let our_version = peer.shared.config.inner.protocol_version;
    let (defined, negotiated) = peer.counters(|c| {
        let now = Instant::now();
        let negotiated = c.remote.as_ref().map_or(our_version, |r| r.negotiated_version);
        let defined = is_defined(command, negotiated);
        if let Some(l) = c.liveness.as_mut() {
            l.received(command, now);
            if defined {
                l.handler_started(now);
            }
        }
        if defined {
            learn_inventory(c, &message);
        }
        (defined, negotiated)
    });
    if !defined {
        return misbehaved(peer, Counters::ignored);
    }
    let result = handle(peer, command, negotiated, message, frame.payload).await;
    peer.counters(|c| c.liveness.as_mut().map(|l| l.handler_finished(Instant::now())));
    result
}

/// A known message whose payload does not decode ends the peer, after a reject where the remote's
/// version has them (R-R6).
async fn malformed(peer: &Peer, e: crate::wire::PayloadError) -> Result<(), DisconnectReason> {
    reject_and_wait(peer, e.command, RejectCode::MALFORMED, "malformed message").await;
    Err(DisconnectReason::Payload(e))
}

/// The most a fee rate may be: Core's `MAX_MONEY` (21 million bitcoin in satoshis), the bound of
/// its `MoneyRange`.
const MAX_MONEY: i64 = 21_000_000 * 100_000_000;
/// The only compact-block version Core supports (`CMPCTBLOCKS_VERSION`, with witnesses).
const CMPCTBLOCKS_VERSION: u64 = 2;

/// Records a preference the remote announced (`sendheaders`, `sendcmpct`, `feefilter`). Returns
/// false for a value Core ignores: a `sendcmpct` of another version than 2, a `feefilter` outside
/// `MoneyRange` (`ProcessMessage` for `SENDCMPCT` and `FEEFILTER` in `net_processing.cpp`).
pub(crate) fn record_preference(peer: &Peer, message: &Message) -> bool {
    match message {
        Message::SendHeaders => peer.counters(|c| c.wants_headers = true),
        Message::SendCmpct(s) if s.version == CMPCTBLOCKS_VERSION => peer.counters(|c| c.compact_blocks = Some(*s)),
        Message::FeeFilter(rate) if (0..=MAX_MONEY).contains(rate) => peer.counters(|c| c.fee_filter = Some(*rate)),
        _ => return false,
    }
    true
}

/// The peer's own handling of a message, then the application's (R-R3 … R-R6).
async fn handle(
    peer: &Peer,
    command: Command,
    negotiated: u32,
    message: Message,
    payload: Bytes,
) -> Result<(), DisconnectReason> {
    let cfg = &peer.shared.config.inner;
    match &message {
        // A second version or verack is ignored, as Core ("redundant version message", "ignoring
        // redundant verack message"); btcd disconnects.
        Message::Version(_) | Message::Verack => return misbehaved(peer, Counters::ignored),
        // We do not reconcile: Core with reconciliation off ignores `sendtxrcncl` at any time.
        Message::SendTxRcncl(_) => return misbehaved(peer, Counters::ignored),
        Message::Ping(_) if ping_has_nonce(negotiated) && payload.is_empty() => {
            // A ping without its nonce is malformed once BIP31 applies (Core reads the nonce and
            // fails), so it gets no pong.
            let kind = crate::wire::PayloadErrorKind::Truncated { needed: 8, available: 0 };
            return Box::pin(malformed(peer, crate::wire::PayloadError { command, field: "nonce", kind })).await;
        }
        Message::Ping(nonce) if ping_has_nonce(negotiated) => {
            // The pong's fate does not concern the handler; a full queue ends the peer soon anyway.
            let _ = peer.queue_message(&Message::Pong(*nonce));
        }
        Message::Pong(nonce) => {
            let now = Instant::now();
            let rtt = peer.counters(|c| {
                let rtt = c.pong(*nonce, now);
                if let (Some(_), Some(l)) = (rtt, c.liveness.as_mut()) {
                    l.pong();
                }
                rtt
            });
            if let Some(rtt) = rtt {
                tracing::debug!(rtt_us = rtt.as_micros() as u64, "pong");
            }
        }
        Message::SendHeaders | Message::SendCmpct(_) | Message::FeeFilter(_) if !record_preference(peer, &message) => {
            return misbehaved(peer, Counters::ignored);
        }
        Message::FilterLoad(_) | Message::FilterAdd(_) | Message::FilterClear | Message::MemPool
            if cfg.enforce_bloom && !cfg.services.has(bitcoin::p2p::ServiceFlags::BLOOM) =>
        {
            if negotiated >= NO_BLOOM_VERSION {
                return Err(DisconnectReason::Protocol(Violation::BloomNotOffered(command)));
            }
            return misbehaved(peer, Counters::ignored);
        }
        // Loading or clearing a filter turns transaction relay on, whatever the version's relay
        // flag said (BIP37; Core's `ProcessMessage` for `FILTERLOAD` and `FILTERCLEAR` both set
        // `m_relay_txs`).
        Message::FilterLoad(_) | Message::FilterClear => peer.counters(|c| c.relay = true),
        Message::Unknown { .. } => {
            peer.counters(|c| c.unknown_received = c.unknown_received.saturating_add(1));
        }
        _ => {}
    }
    // Time spent here and in the application is not charged to the remote (R-V4); the clock
    // started before the peer's own handling and stops when the caller regains control.
    peer.shared.sink.message(peer, message, payload).await;
    Ok(())
}

/// A block handed on undecoded: only its header is hashed, for the known-inventory cache.
async fn dispatch_raw_block(peer: &Peer, payload: Bytes) -> Result<(), DisconnectReason> {
    use bitcoin::hashes::{Hash, sha256d};
    let now = Instant::now();
    let hash = payload.get(..80).map(|h| bitcoin::BlockHash::from_raw_hash(sha256d::Hash::hash(h)));
    peer.counters(|c| {
        if let Some(l) = c.liveness.as_mut() {
            l.received(Command::BLOCK, now);
            l.handler_started(now);
        }
        if let Some(h) = hash {
            c.known.insert(&crate::wire::Inventory::Block(h));
        }
    });
    peer.shared.sink.raw_block(peer, payload).await;
    peer.counters(|c| c.liveness.as_mut().map(|l| l.handler_finished(Instant::now())));
    Ok(())
}

/// What the remote announced or sent, it knows (R-S4).
fn learn_inventory(c: &mut super::stats::Counters, message: &Message) {
    use crate::wire::Inventory;
    match message {
        Message::Inv(items) => c.known.extend(items),
        Message::Tx(tx) => {
            c.known.insert(&Inventory::Tx(tx.compute_txid()));
            c.known.insert(&Inventory::WTx(tx.compute_wtxid()));
        }
        Message::Block(block) => c.known.insert(&Inventory::Block(block.block_hash())),
        _ => {}
    }
}
