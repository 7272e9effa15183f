//! Issue 23 item 7: one address flooding version-sending connections against
//! `btcpeer listen --max-peers 8` cannot evict honest peers from other loopback addresses while
//! they handshake (on regtest each loopback address is a network group of its own, and among
//! unfinished handshakes the largest group goes first, as Core's eviction weighs groups). Over
//! 127.0.0.0/8 only; every wait is bounded.

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use btcpeer::network::Network;
use btcpeer::wire::{Message, VersionMessage, VersionTail, blank_address, frame};

use common::Listener;

/// A connection from `ip` (any port) to `to`.
fn connect_from(ip: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((ip, 0)))?;
        let stream = tokio::time::timeout(Duration::from_secs(5), socket.connect(to))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    })
}

fn version_frame() -> Vec<u8> {
    let version = VersionMessage {
        version: 70016,
        services: btcpeer::wire::types::ServiceFlags::NETWORK,
        timestamp: 1_700_000_000,
        receiver: blank_address(),
        sender: blank_address(),
        nonce: 7,
        user_agent: "/flood:1.0/".to_string(),
        start_height: 0,
        relay: true,
        tail: VersionTail::Complete,
    };
    let mut buf = bytes::BytesMut::new();
    frame::encode_frame(&Message::Version(version), &Network::REGTEST, &mut buf).expect("encodes");
    buf.to_vec()
}

#[test]
fn a_one_address_version_flood_cannot_evict_honest_peers_from_other_loopback_addresses() {
    let mut listener = Listener::start(&["--max-peers", "8", "--duration", "40", "--transport", "v1"]);
    let target: SocketAddr = listener.addr().parse().expect("an address");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    // Three threads from 127.0.0.1 connect and send a version as fast as they can, keeping
    // their latest connections open; at most 4,000 connections and 25 s in all.
    let started = Instant::now();
    let floods: Vec<_> = (0..3)
        .map(|_| {
            let (stop, sent) = (stop.clone(), sent.clone());
            thread::spawn(move || {
                let version = version_frame();
                let mut open = std::collections::VecDeque::new();
                while !stop.load(Ordering::Relaxed)
                    && sent.load(Ordering::Relaxed) < 4_000
                    && started.elapsed() < Duration::from_secs(25)
                {
                    let Ok(mut s) = connect_from(Ipv4Addr::LOCALHOST, target) else { continue };
                    if s.write_all(&version).is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    open.push_back(s);
                    if open.len() > 40 {
                        open.pop_front();
                    }
                }
            })
        })
        .collect();
    // Let the flood fill the table.
    while sent.load(Ordering::Relaxed) < 50 && started.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(5));
    }
    // Honest peers from 127.0.0.2 … 127.0.0.6 handshake one after another during the flood.
    let mut honest = Vec::new();
    for k in 2..7u8 {
        let stream = connect_from(Ipv4Addr::new(127, 0, 0, k), target).expect("the honest peer connects");
        let addr = stream.local_addr().expect("addr").to_string();
        let mut peer = btcpeer::core::blocking::BlockingPeer::new(
            stream,
            Network::REGTEST,
            btcpeer::core::peer::CoreConfig::new(btcpeer::peer::Direction::Outbound),
        );
        peer.handshake(Duration::from_secs(10)).unwrap_or_else(|e| panic!("honest peer {addr} not served: {e:?}"));
        // The listener saw the handshake through (it sent verack and got ours).
        listener.wait_for("the honest handshake", |e| e["event"] == "handshake" && e["addr"] == addr.as_str());
        honest.push((addr, peer));
    }
    let flooded = sent.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for f in floods {
        f.join().expect("a flood thread");
    }
    assert!(flooded >= 100, "the flood ran: {flooded} connections");
    // No honest peer was evicted, during the flood or after its handshake.
    let evicted: Vec<String> =
        listener.events.iter().filter_map(|e| e["evicted"].as_str().map(str::to_string)).collect();
    assert!(!evicted.is_empty(), "the table was full: flood connections were evicted");
    for (addr, _) in &honest {
        assert!(!evicted.contains(addr), "honest {addr} evicted; evictions: {}", evicted.len());
    }
    eprintln!("{flooded} flood connections, {} evictions, {} honest peers served", evicted.len(), honest.len());
}
