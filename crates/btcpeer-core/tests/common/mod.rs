//! What the NodeCore tests share: addresses, messages, settings with a fixed key, a book, and the
//! steps of admitting a connection and collecting actions. Each test file uses a part of it.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use btcpeer_core::addrbook::{AddrBook, Endpoint};
use btcpeer_core::bitcoin::p2p::ServiceFlags;
use btcpeer_core::bitcoin::p2p::address::{AddrV2, AddrV2Message};
use btcpeer_core::node::{Action, Admission, ConnId, Hello, NodeCore, NodeSettings};

/// The wall clock of every test, in Unix seconds.
pub const UNIX: u64 = 1_700_000_000;

/// The services of a full node.
pub fn full() -> ServiceFlags {
    ServiceFlags::NETWORK | ServiceFlags::WITNESS
}

/// The remote's `version` as NodeCore reads it.
pub fn hello() -> Hello {
    Hello::new(full(), 70016, true, false, "/test/".into())
}

/// Address `i`, each in its own /16 (for i < 2,560).
pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([20 + (i / 256) as u8, (i % 256) as u8, 1, 1], 8333))
}

/// A socket address as an `addrv2` address.
pub fn v2(a: SocketAddr) -> AddrV2 {
    match a.ip() {
        IpAddr::V4(v4) => AddrV2::Ipv4(v4),
        IpAddr::V6(v6) => AddrV2::Ipv6(v6),
    }
}

/// An `addrv2` entry for `a` stamped `time`.
pub fn msg(a: SocketAddr, time: u64) -> AddrV2Message {
    AddrV2Message { time: time as u32, services: full(), addr: v2(a), port: a.port() }
}

/// The book's name for `a`.
pub fn endpoint(a: SocketAddr) -> Endpoint {
    Endpoint::new(v2(a), a.port())
}

/// Core's defaults with a fixed key and seed (reproducible placement).
pub fn settings() -> NodeSettings {
    NodeSettings::default().fixed([7; 32], 42)
}

/// A book holding `addrs`, each heard of from a source of its own.
pub fn book_with(addrs: impl IntoIterator<Item = SocketAddr>) -> AddrBook {
    let mut book = AddrBook::new([3; 32], 5);
    for (k, a) in addrs.into_iter().enumerate() {
        let source = Endpoint::new(AddrV2::Ipv4([90, (k % 200) as u8, (k / 200) as u8, 1].into()), 8333);
        book.add(&[msg(a, UNIX)], &source, UNIX);
    }
    book
}

/// Every action waiting.
pub fn actions(n: &mut NodeCore) -> Vec<Action> {
    std::iter::from_fn(|| n.poll_action()).collect()
}

/// Admit an inbound connection from `remote`, which must be accepted.
pub fn accept(n: &mut NodeCore, remote: SocketAddr, now: Instant) -> ConnId {
    match n.inbound(remote, now, UNIX) {
        Admission::Accept(id) => id,
        other => panic!("{other:?}"),
    }
}
