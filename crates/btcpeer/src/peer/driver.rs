//! The tasks that drive a peer: the reading task (handshake, then read and dispatch) and the writing
//! task (drain the queue). The rules for each message received are in `rules`; the tasks are thin.

use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tracing::Instrument;

use super::error::{DisconnectReason, Violation};
use super::io::{read_frame, written_hooks};
use super::panic::{CatchPanic, panic_message};
use super::queue::Outgoing;
use super::rules::dispatch;
use super::{Direction, HandshakeState, Peer, Transport, V2Policy, handshake};
use crate::transport::stream::{DIRECT_WRITE, FrameReader, FrameWriter};
use crate::transport::v2_handshake;
use crate::wire::frame::HEADER_LEN;
use crate::wire::version::ping_has_nonce;
use crate::wire::{Command, Message};
use btcpeer_core::transport::framing::v2_failure;

/// Bytes the writer takes from the queue for one write.
const WRITE_BATCH: usize = 256 * 1024;

pub(crate) fn spawn<S>(peer: Peer, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let span = peer.shared.span.clone();
    tokio::spawn(guarded(peer, stream).instrument(span));
}

/// The peer's task: [`run`], with a panic anywhere in it (a handler method included) ending the
/// peer in a defined state instead of leaving it hung. Its stream is dropped with the task's state,
/// and the peer finishes ending with the panic as its reason.
async fn guarded<S>(peer: Peer, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let guard = peer.clone();
    let task = std::pin::pin!(run(peer, stream));
    if let Err(panic) = CatchPanic(task).await {
        let message = panic_message(&*panic);
        tracing::warn!(panic = %message, "the peer's task panicked");
        guard.stop(DisconnectReason::HandlerPanicked(message));
        guard.finalize();
    }
}

/// Sets up the transport the configuration asks for and returns the framed halves.
async fn establish<R, W>(
    peer: &Peer,
    mut rd: R,
    mut wr: W,
) -> Result<(FrameReader<R>, FrameWriter<W>), DisconnectReason>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let cfg = &peer.shared.config.inner;
    let net = cfg.network.clone();
    let policy = cfg.v2;
    let session = match (peer.direction(), policy) {
        (_, V2Policy::Never) => return Ok((FrameReader::new(rd, net.clone()), FrameWriter::new(wr, net))),
        (Direction::Outbound, _) => v2_handshake::initiate(&mut rd, &mut wr, &net, &cfg.v2_options).await,
        (Direction::Inbound, _) => {
            let mut buf = BytesMut::new();
            match v2_handshake::detect_v1(&mut rd, &net, &mut buf).await {
                Ok(true) if policy == V2Policy::Require => {
                    return Err(DisconnectReason::Protocol(Violation::V1NotAllowed));
                }
                // A v1 initiator: its first 16 bytes go to the v1 reader, nothing is lost.
                Ok(true) => return Ok((FrameReader::with_prefix(rd, net.clone(), buf), FrameWriter::new(wr, net))),
                Ok(false) => v2_handshake::respond(&mut rd, &mut wr, &net, &cfg.v2_options, buf).await,
                Err(e) => Err(e),
            }
        }
    };
    match session {
        Ok(session) => {
            let (reader, writer, sent, received) = crate::transport::stream::v2_pair(rd, wr, session);
            peer.counters(|c| {
                c.transport = Transport::V2;
                c.proto.traffic.handshake_bytes(sent, received);
            });
            tracing::debug!(sent, received, "v2 transport established");
            Ok((reader, writer))
        }
        // The core's mapping: one home for why a v2 handshake failure ends the peer.
        Err(e) => Err(v2_failure(e, peer.direction(), cfg.transport_policy())),
    }
}

async fn run<S>(peer: Peer, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let shared = peer.shared.clone();
    let cfg = shared.config.inner.clone();
    let (rd, wr) = tokio::io::split(super::heard::Heard::new(stream, shared.clone()));

    let nonce = match cfg.node.nonce_registry().register() {
        Ok(entry) => entry,
        Err(e) => {
            let e = std::io::Error::other(e.to_string());
            peer.stop(DisconnectReason::io(&e));
            peer.finalize();
            return;
        }
    };
    // One deadline for the transport handshake and the version handshake together (R-L2). Boxed:
    // its state is large and only needed once, so it does not stay in every idle peer's task.
    let handshake = Box::pin(async {
        let (mut reader, mut writer) = establish(&peer, rd, wr).await?;
        // From here on the 24-bit packet limit applies only if the transport is v2.
        peer.shared.queue.set_v2(writer.is_v2());
        let info = handshake::run(&peer, &mut reader, &mut writer, nonce.nonce()).await?;
        Ok::<_, DisconnectReason>((reader, writer, info))
    });
    let outcome = tokio::select! {
        biased;
        () = shared.cancel.cancelled() => None,
        r = tokio::time::timeout(cfg.handshake_timeout, handshake) => {
            Some(match r {
                Ok(result) => result,
                Err(_) => Err(DisconnectReason::HandshakeTimeout),
            })
        }
    };
    let (mut reader, writer, info) = match outcome {
        Some(Ok(established)) => established,
        Some(Err(reason)) => {
            // A remote that hangs up on our version because it is us: report it as such.
            let reason = match reason {
                DisconnectReason::RemoteClosed { .. } if nonce.was_self_connection() => {
                    DisconnectReason::SelfConnection
                }
                other => other,
            };
            drop(nonce);
            peer.stop(reason);
            peer.finalize();
            return;
        }
        None => {
            drop(nonce);
            peer.finalize();
            return;
        }
    };
    drop(nonce);
    tracing::debug!(
        version = info.version.version,
        negotiated = info.negotiated_version,
        user_agent = %info.version.user_agent,
        "handshake complete"
    );
    let now = super::now();
    // The deadlines start; announcements queued before the handshake go out at the first tick.
    // The details move into the protocol state, their one home: the task does not keep a copy for
    // the peer's lifetime.
    let witness = info.version.services.has(bitcoin::p2p::ServiceFlags::WITNESS);
    peer.counters(|c| c.proto.handshake_complete(info, cfg.timeouts, now));
    shared.strip_witness.store(!witness, std::sync::atomic::Ordering::Relaxed);
    shared.life.send_modify(|l| l.handshake = HandshakeState::Done);
    // Reading and writing run in this one task: a pong queued while reading wakes the writer without
    // a trip to another thread, and an idle peer costs one task. Whichever loop ends first stops the
    // other through the cancellation token; the handshake event is delivered as the reader's first
    // step, so whatever the application queues on seeing it (or queued before) flows at once.
    let reading = async {
        if let Some(info) = peer.remote() {
            shared.sink.handshake(&peer, &info).await;
        }
        read_loop(&peer, &mut reader).await;
        shared.cancel.cancel();
    };
    let writing = async {
        write_loop(peer.clone(), writer).await;
        shared.cancel.cancel();
    };
    tokio::join!(reading, writing);
    drop(reader);
    peer.finalize();
}

async fn read_loop<R: AsyncRead + Unpin>(peer: &Peer, reader: &mut FrameReader<ReadHalf<R>>)
where
    ReadHalf<R>: AsyncRead + Unpin,
{
    let cancel = peer.shared.cancel.clone();
    loop {
        let frame = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            r = read_frame(peer, reader, false) => r,
        };
        let result = match frame {
            // Delivery may wait on the application (a full channel); a disconnect still ends it.
            Ok((frame, _)) => tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                r = dispatch(peer, frame) => r,
            },
            Err(reason) => Err(reason),
        };
        if let Err(reason) = result {
            peer.stop(reason);
            return;
        }
    }
}

/// Checks the liveness deadlines and does what is due: a ping, a trickle flush.
fn run_timers(peer: &Peer, now: Instant) -> Result<(), DisconnectReason> {
    let due = peer.counters(|c| {
        let outstanding = c.proto.ping_outstanding.is_some();
        c.proto.liveness.as_mut().map(|l| l.check(now, outstanding))
    });
    let Some(due) = due.transpose()? else { return Ok(()) };
    if due.ping && ping_has_nonce(peer.negotiated_version()) {
        let nonce = getrandom::u64().unwrap_or(1);
        let _ = peer.queue_message(&Message::Ping(nonce));
    }
    if due.trickle {
        peer.flush_trickle();
    }
    Ok(())
}

/// The write deadline for `bytes`: a base, plus an allowance per 256 KiB.
fn write_deadline(peer: &Peer, bytes: usize) -> Duration {
    let cfg = &peer.shared.config.inner;
    let steps = u32::try_from(bytes / (256 * 1024)).unwrap_or(u32::MAX);
    cfg.write_timeout.saturating_add(cfg.write_timeout_per_256k.saturating_mul(steps))
}

async fn write_batch<W: AsyncWrite + Unpin>(
    peer: &Peer,
    writer: &mut FrameWriter<W>,
    batch: &[Outgoing],
) -> std::io::Result<()> {
    let negotiated = peer.negotiated_version();
    for item in batch {
        if item.command == Command::PING && ping_has_nonce(negotiated) {
            if let Some(nonce) = item.payload.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                let now = super::now();
                peer.counters(|c| c.proto.ping_sent(u64::from_le_bytes(nonce), now));
            }
        }
        if item.payload.len() >= DIRECT_WRITE {
            writer.write_large(item.command, &item.payload, item.checksum).await?;
        } else {
            writer.push_checked(item.command, &item.payload, item.checksum);
        }
    }
    writer.flush().await
}

async fn write_loop<W>(peer: Peer, mut writer: FrameWriter<WriteHalf<W>>)
where
    WriteHalf<W>: AsyncWrite + Unpin,
{
    let shared = peer.shared.clone();
    let mut batch: Vec<Outgoing> = Vec::new();
    loop {
        if shared.cancel.is_cancelled() {
            break;
        }
        let now = super::now();
        if let Err(reason) = run_timers(&peer, now) {
            peer.stop(reason);
            break;
        }
        if shared.queue.is_empty() {
            let wake = peer.counters(|c| c.proto.liveness.as_ref().and_then(|l| l.next_wakeup(now)));
            let timer = async move {
                match wake {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = shared.cancel.cancelled() => break,
                () = shared.queue.writer.notified() => continue,
                () = timer => continue,
            }
        }
        shared.queue.take_batch(WRITE_BATCH, &mut batch);
        let Some(last) = batch.last().map(|o| o.seq) else { continue };
        let bytes: usize = batch.iter().map(|o| o.payload.len().saturating_add(HEADER_LEN)).sum();
        let deadline = write_deadline(&peer, bytes);
        let result = tokio::select! {
            biased;
            () = shared.cancel.cancelled() => break,
            r = tokio::time::timeout(deadline, write_batch(&peer, &mut writer, &batch)) => r,
        };
        match result {
            Err(_) => {
                peer.stop(DisconnectReason::WriteTimeout);
                break;
            }
            Ok(Err(e)) => {
                peer.stop(DisconnectReason::io(&e));
                break;
            }
            Ok(Ok(())) => {
                let now = super::now();
                let wall = SystemTime::now();
                // One lock for the whole batch's statistics and deadlines.
                peer.counters(|c| {
                    for item in &batch {
                        c.proto.traffic.sent(item.command, writer.wire_len(item.command, item.payload.len()));
                        if let Some(l) = c.proto.liveness.as_mut() {
                            l.sent(item.command, &item.payload, now);
                        }
                    }
                    c.last_send = Some(wall);
                });
                for item in &batch {
                    written_hooks(
                        &peer,
                        item.command,
                        &item.payload,
                        writer.wire_len(item.command, item.payload.len()),
                    );
                }
                shared.queue.written(last, bytes);
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod memory_budget {
    /// P-3: an idle peer costs its task (this future), its shared state and a few small heap
    /// allocations; at 10,000 peers the whole must stay under 8 KiB each. Rarely taken paths
    /// (rejects, raw blocks, channel delivery, the handshake) are boxed so they do not count here.
    #[test]
    fn p3_an_idle_peer_task_and_state_stay_within_budget() {
        let cfg = super::super::PeerConfig::builder(crate::network::Network::REGTEST).build().unwrap();
        let peer = super::Peer::outbound(cfg, "127.0.0.1:1", super::super::NoopHandler);
        let (a, _b) = tokio::io::duplex(16);
        let task = std::mem::size_of_val(&super::guarded(peer, a));
        let shared = std::mem::size_of::<super::super::Shared>();
        assert!(task <= 3 * 1024, "the peer's task future is {task} bytes");
        assert!(shared <= 1536, "the peer's shared state is {shared} bytes");
    }
}
