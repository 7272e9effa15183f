//! The version handshake on a stream: the core's state machine
//! ([`VersionHandshake`]), fed by the peer's reader, writing through its writer.
//!
//! The outbound side sends its version first; the inbound side waits for the remote's and answers.
//! Messages before the remote's version are ignored and counted, as Bitcoin Core does. The remote's
//! version is validated in this order: its nonce must not be one of ours in flight
//! (self-connection); then it is recorded; then the application may refuse it; then the minimum
//! version and the required services are checked. Before verack each side sends the feature
//! messages the negotiated version allows (`wtxidrelay`, `sendaddrv2`, and `sendtxrcncl` when
//! configured and both sides relay transactions); while waiting for the remote's verack, the
//! feature messages, `sendheaders` and `sendcmpct` are honoured in any order, unknown messages are
//! tolerated, and anything else (a second version included) is ignored and counted, as Core does.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::SystemTime;

use bitcoin::p2p::{Address, ServiceFlags};
use tokio::io::{AsyncRead, AsyncWrite};

use btcpeer_core::peer::{HandshakeStep, VersionHandshake};

use super::error::DisconnectReason;
use super::io::{read_frame, send_direct_batch};
use super::rules::misbehaved;
use super::{Peer, PeerAddr, RemoteInfo, Transport};
use crate::transport::stream::{FrameReader, FrameWriter};
use crate::wire::{Message, VersionMessage, blank_address};

/// The remote's address as we put it in our version: blanked when it is the proxy's, or a
/// name (an onion or DNS name reached through a proxy), keeping only the port.
fn receiver_address(peer: &Peer) -> Address {
    let proxy = peer.shared.config.inner.proxy;
    let blank_ip =
        |port: u16| Address::new(&SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port), ServiceFlags::NONE);
    match &peer.shared.addr {
        PeerAddr::Socket(a) if proxy.is_some_and(|p| p.ip() == a.ip()) => blank_address(),
        PeerAddr::Socket(a) => Address::new(a, ServiceFlags::NONE),
        PeerAddr::Host(h) => {
            let port = h.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(0);
            blank_ip(port)
        }
    }
}

/// Our version message: the core's, with our advertised address and the remote's.
pub(crate) fn our_version(peer: &Peer, nonce: u64) -> VersionMessage {
    let cfg = &peer.shared.config.inner;
    let start_height = match &cfg.start_height {
        Some(height) => (height.0)(),
        None => peer.handler().map_or(0, |h| h.start_height()),
    };
    let mut version =
        cfg.handshake_rules().version(cfg.services, nonce, &cfg.user_agent, start_height, SystemTime::now());
    if let Some(addr) = cfg.advertised_address {
        version.sender = Address::new(&addr, cfg.services);
    }
    version.receiver = receiver_address(peer);
    version
}

/// Writes, in one write, whatever the handshake has queued (the handshake's messages go out
/// together: fewer syscalls and round trips).
async fn flush<W: AsyncWrite + Unpin>(
    peer: &Peer,
    writer: &mut FrameWriter<W>,
    handshake: &mut VersionHandshake,
) -> Result<(), DisconnectReason> {
    let batch: Vec<Message> = std::iter::from_fn(|| handshake.poll_transmit()).collect();
    if batch.is_empty() {
        return Ok(());
    }
    send_direct_batch(peer, writer, &batch).await
}

/// Runs the handshake on the stream's two halves: the core's [`VersionHandshake`] fed with the
/// frames read, with this peer's own checks where it stops for them (self-connection against the
/// node's nonce registry, then the application's `on_version`). `nonce` is ours, registered for
/// self-connection detection for as long as the handshake runs.
pub(crate) async fn run<R, W>(
    peer: &Peer,
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    nonce: u64,
) -> Result<RemoteInfo, DisconnectReason>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let cfg = peer.shared.config.inner.clone();
    let transport = if reader.is_v2() { Transport::V2 } else { Transport::V1 };
    let mut handshake =
        VersionHandshake::new(peer.direction(), cfg.handshake_rules(), our_version(peer, nonce), transport);
    flush(peer, writer, &mut handshake).await?;
    loop {
        let (frame, _) = read_frame(peer, reader, true).await?;
        match handshake.handle_frame(&frame, SystemTime::now())? {
            HandshakeStep::Ignored => misbehaved(peer, |c| c.proto.ignored())?,
            HandshakeStep::Unknown => {
                peer.counters(|c| c.proto.unknown_received = c.proto.unknown_received.saturating_add(1))
            }
            HandshakeStep::Preference(message) if !super::rules::record_preference(peer, &message) => {
                misbehaved(peer, |c| c.proto.ignored())?;
            }
            HandshakeStep::Version => {
                let Some(info) = handshake.remote().cloned() else { continue };
                if !cfg.allow_self_connection && cfg.node.nonce_registry().check_and_mark(info.version.nonce) {
                    return Err(DisconnectReason::SelfConnection);
                }
                peer.counters(|c| {
                    c.last_block_height = info.version.start_height;
                    c.proto.version_received(&info);
                });
                let decided = match peer.handler().map(|h| h.on_version(peer, &info.version)) {
                    Some(Err(why)) => Err(handshake.refuse(why)),
                    _ => handshake.accept(),
                };
                // A refusal's reject goes out too; the peer ends either way, so its fate changes nothing.
                let sent = flush(peer, writer, &mut handshake).await;
                decided?;
                sent?;
            }
            HandshakeStep::Done(info) => {
                peer.counters(|c| {
                    c.handshake_at = Some(SystemTime::now());
                    c.proto.remote = Some(info.clone());
                });
                return Ok(info);
            }
            _ => {}
        }
    }
}
