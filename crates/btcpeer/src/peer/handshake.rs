//! The version handshake (R-L2 … R-L4).
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
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::p2p::{Address, ServiceFlags};
use tokio::io::{AsyncRead, AsyncWrite};

use super::driver::{read_frame, send_direct, send_direct_batch};
use super::error::DisconnectReason;
use super::rules::misbehaved;
use super::stats::Counters;
use super::{Direction, Peer, PeerAddr, RemoteInfo, Transport};
use crate::transport::stream::{FrameReader, FrameWriter};
use crate::wire::version::{ADDRV2_VERSION, REJECT_VERSION, WTXID_RELAY_VERSION, is_defined, version_has_relay};
use crate::wire::{Command, Message, Reject, RejectCode, VersionMessage, VersionTail, blank_address};

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The remote's address as we put it in our version: blanked when it is the proxy's (R-T5), or a
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

/// Our version message (R-L4).
pub(crate) fn our_version(peer: &Peer, nonce: u64) -> VersionMessage {
    let cfg = &peer.shared.config.inner;
    let mut sender = blank_address();
    sender.services = cfg.services;
    if let Some(addr) = cfg.advertised_address {
        sender = Address::new(&addr, cfg.services);
    }
    VersionMessage {
        version: cfg.protocol_version,
        services: cfg.services,
        timestamp: unix_now(),
        receiver: receiver_address(peer),
        sender,
        nonce,
        user_agent: cfg.user_agent.clone(),
        start_height: peer.handler().map_or(0, |h| h.start_height()),
        relay: cfg.relay,
        tail: if version_has_relay(cfg.protocol_version) { VersionTail::Complete } else { VersionTail::NoRelay },
    }
}

async fn refuse<W: AsyncWrite + Unpin>(
    peer: &Peer,
    writer: &mut FrameWriter<W>,
    negotiated: u32,
    code: RejectCode,
    reason: String,
) {
    if negotiated >= REJECT_VERSION {
        let reject = Reject { message: "version".into(), code, reason, hash: None };
        // The peer ends either way; a failed reject changes nothing.
        let _ = send_direct(peer, writer, &Message::Reject(reject)).await;
    }
}

/// Runs the handshake on the stream's two halves. `nonce` is ours, registered for self-connection
/// detection for as long as the handshake runs.
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
    if peer.direction() == Direction::Outbound {
        send_direct(peer, writer, &Message::Version(our_version(peer, nonce))).await?;
    }

    // Anything before the remote's version is ignored and counted, as Core does ("non-version
    // message before version handshake", `ProcessMessage` in `net_processing.cpp`); the handshake
    // deadline bounds how long a remote may go on so.
    let version = loop {
        let (frame, _) = read_frame(peer, reader, true).await?;
        if frame.command == Command::VERSION {
            if let Message::Version(version) = frame.decode().map_err(DisconnectReason::Payload)? {
                break version;
            }
        }
        misbehaved(peer, Counters::ignored)?;
    };

    if !cfg.allow_self_connection && cfg.node.nonce_registry().check_and_mark(version.nonce) {
        return Err(DisconnectReason::SelfConnection);
    }

    let negotiated = cfg.protocol_version.min(version.version);
    let mut info = RemoteInfo {
        time_offset: version.timestamp.saturating_sub(unix_now()),
        relay: version.relay,
        version,
        negotiated_version: negotiated,
        wants_addrv2: false,
        wtxid_relay: false,
        txrcncl: None,
        transport: if reader.is_v2() { Transport::V2 } else { Transport::V1 },
    };
    peer.counters(|c| {
        c.last_block_height = info.version.start_height;
        c.relay = info.version.relay;
        c.remote = Some(info.clone());
    });

    if let Some(Err(why)) = peer.handler().map(|h| h.on_version(peer, &info.version)) {
        refuse(peer, writer, negotiated, RejectCode::NONSTANDARD, why.clone()).await;
        return Err(DisconnectReason::Refused(why));
    }
    if info.version.version < cfg.min_protocol_version {
        let reason = format!("protocol version must be {} or greater", cfg.min_protocol_version);
        refuse(peer, writer, negotiated, RejectCode::OBSOLETE, reason).await;
        return Err(DisconnectReason::ObsoleteVersion {
            version: info.version.version,
            minimum: cfg.min_protocol_version,
        });
    }
    let services = info.version.services;
    if !services.has(cfg.required_services) {
        refuse(peer, writer, negotiated, RejectCode::NONSTANDARD, "missing required services".into()).await;
        return Err(DisconnectReason::MissingServices {
            advertised: services.to_u64(),
            required: cfg.required_services.to_u64(),
        });
    }

    // Our version (inbound), the feature messages and verack go out in one write.
    let mut batch = Vec::with_capacity(5);
    if peer.direction() == Direction::Inbound {
        batch.push(Message::Version(our_version(peer, nonce)));
    }
    let we_send_wtxid = cfg.wtxid_relay && negotiated >= WTXID_RELAY_VERSION;
    if we_send_wtxid {
        batch.push(Message::WtxidRelay);
    }
    if cfg.addrv2 && negotiated >= ADDRV2_VERSION {
        batch.push(Message::SendAddrV2);
    }
    // BIP330: only where transactions may be relayed both ways (Core's `ProcessMessage` for
    // `VERSION` sends it only when it relays and the remote's relay flag is set).
    let reconcile = we_send_wtxid && cfg.relay && info.version.relay;
    if let Some((version, salt)) = cfg.txrcncl.filter(|_| reconcile) {
        batch.push(Message::SendTxRcncl(crate::wire::SendTxRcncl { version, salt }));
    }
    batch.push(Message::Verack);
    send_direct_batch(peer, writer, &batch).await?;

    // Until the remote's verack: the feature messages are honoured in any order, as are
    // `sendheaders` and `sendcmpct`, which Core handles before its "prior to verack" check; a
    // second version and every other known message are ignored and counted; unknown messages
    // (future feature negotiation) are tolerated.
    loop {
        let (frame, _) = read_frame(peer, reader, true).await?;
        let command = frame.command;
        match command.as_str() {
            "verack" => break,
            "wtxidrelay" => info.wtxid_relay = negotiated >= WTXID_RELAY_VERSION && we_send_wtxid,
            "sendaddrv2" => info.wants_addrv2 = negotiated >= ADDRV2_VERSION,
            "sendtxrcncl" => {
                // We do not reconcile (Core with reconciliation off ignores it); it is recorded for
                // the application's information only.
                if let Ok(Message::SendTxRcncl(m)) = frame.decode() {
                    info.txrcncl = Some(m);
                }
            }
            "sendheaders" | "sendcmpct" if is_defined(command, negotiated) => {
                let message = frame.decode().map_err(DisconnectReason::Payload)?;
                if !super::rules::record_preference(peer, &message) {
                    misbehaved(peer, Counters::ignored)?;
                }
            }
            _ if command.is_known() => misbehaved(peer, Counters::ignored)?,
            _ => peer.counters(|c| c.unknown_received = c.unknown_received.saturating_add(1)),
        }
    }
    peer.counters(|c| {
        c.handshake_at = Some(SystemTime::now());
        c.remote = Some(info.clone());
    });
    Ok(info)
}
