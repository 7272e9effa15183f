//! An outbound peer's handler: reports, counts, and passes answers on to its script; the made-up addresses and transactions.

use super::*;

/// What an outbound peer's handler passes on to its script.
pub(super) enum Heard {
    Pong { nonce: u64, rtt: Option<Duration>, at: Instant },
    Headers(Vec<Header>),
    Block(Block, usize),
}

/// The handler of an outbound peer: reports, counts, and passes answers on to its script.
pub(super) struct Client {
    pub(super) shared: Arc<DemoShared>,
    pub(super) progress: Arc<Progress>,
    pub(super) heard: mpsc::UnboundedSender<Heard>,
}

impl Client {
    pub(super) fn addresses(&self, peer: &Peer, command: &'static str, networks: Vec<&'static str>) {
        let count = networks.len() as u64;
        self.progress.addr_entries.fetch_add(count, Ordering::Relaxed);
        Tally::add(&self.shared.tally.addrs, count);
        let mut unique = networks;
        unique.sort_unstable();
        unique.dedup();
        self.shared.emit(DemoEvent::Addr { peer: peer.id(), count, command, networks: unique });
    }
}

impl Handler for Client {
    fn on_handshake(&self, peer: &Peer, remote: &RemoteInfo) {
        match remote.transport {
            Transport::V2 => Tally::add(&self.shared.tally.handshakes_v2, 1),
            _ => Tally::add(&self.shared.tally.handshakes_v1, 1),
        }
        self.shared.emit(DemoEvent::handshake(peer, remote));
    }

    fn on_pong(&self, peer: &Peer, nonce: u64) {
        let at = Instant::now();
        // The peer clears its outstanding ping only when this pong answered it.
        let stats = peer.stats();
        let rtt = if stats.outstanding_ping.is_none() { stats.last_ping_rtt } else { None };
        let _ = self.heard.send(Heard::Pong { nonce, rtt, at });
    }

    fn on_headers(&self, _peer: &Peer, headers: Vec<Header>) {
        let _ = self.heard.send(Heard::Headers(headers));
    }

    fn on_block(&self, _peer: &Peer, block: Block, raw: Bytes) {
        let _ = self.heard.send(Heard::Block(block, raw.len()));
    }

    fn on_inv(&self, peer: &Peer, inv: Vec<Inventory>) {
        let count = inv.len() as u64;
        self.progress.inv_items.fetch_add(count, Ordering::Relaxed);
        Tally::add(&self.shared.tally.inv_received, count);
        self.shared.emit(DemoEvent::Inv { peer: peer.id(), count });
    }

    fn on_addrv2(&self, peer: &Peer, addrs: Vec<AddrV2Message>) {
        let networks = addrs.iter().map(|a| addrv2_network(&a.addr)).collect();
        self.addresses(peer, "addrv2", networks);
    }

    fn on_addr(&self, peer: &Peer, addrs: Vec<(u32, Address)>) {
        let networks = addrs
            .iter()
            .map(|(_, a)| if std::net::Ipv6Addr::from(a.address).to_ipv4_mapped().is_some() { "ipv4" } else { "ipv6" })
            .collect();
        self.addresses(peer, "addr", networks);
    }
}

/// The made-up addresses the node pushes: documentation ranges and a made-up Tor v3 key.
pub(super) fn made_up_addresses() -> Vec<AddrV2Message> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let time = u32::try_from(now).unwrap_or(u32::MAX);
    let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    let onion = sha256d::Hash::hash(b"btcpeer demo onion").to_byte_array();
    vec![
        AddrV2Message { time, services, addr: AddrV2::Ipv4(std::net::Ipv4Addr::new(203, 0, 113, 7)), port: 18444 },
        AddrV2Message {
            time,
            services,
            addr: AddrV2::Ipv6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
            port: 18444,
        },
        AddrV2Message { time, services, addr: AddrV2::TorV3(onion), port: 18444 },
    ]
}

/// A made-up transaction's txid and wtxid, unique per peer, number and run.
pub(super) fn made_up_tx(salt: u64, index: usize, k: u64) -> (Txid, Wtxid) {
    let seed = format!("btcpeer demo {salt} {index} {k}");
    let txid = Txid::from_raw_hash(sha256d::Hash::hash(seed.as_bytes()));
    let wtxid = Wtxid::from_raw_hash(sha256d::Hash::hash(format!("{seed} w").as_bytes()));
    (txid, wtxid)
}
