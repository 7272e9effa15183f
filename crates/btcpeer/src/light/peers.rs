//! The light client's peers: candidates dialed a few at a time (distinct network groups first),
//! those connected, and those dropped with their reason.

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2;
use tokio::sync::mpsc;

use super::LightEvent;
use crate::core::addrbook::{AddrBook, group};
use crate::peer::{DisconnectReason, Handler, Peer, PeerConfig, RemoteInfo, Transport};
use crate::wire::Inventory;

/// The network group of `addr` (Core's `NetGroupManager::GetGroup`), or the host name itself.
fn group_of(addr: &str) -> Vec<u8> {
    match addr.parse::<SocketAddr>().map(|s| s.ip()) {
        Ok(IpAddr::V4(ip)) => group(&AddrV2::Ipv4(ip)),
        Ok(IpAddr::V6(ip)) => group(&AddrV2::Ipv6(ip)),
        Err(_) => addr.as_bytes().to_vec(),
    }
}

/// `addrs` with one per network group first, then the rest, each part in the given order.
pub(crate) fn spread(addrs: Vec<String>) -> VecDeque<String> {
    let mut seen = HashSet::new();
    let (first, rest): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|a| seen.insert(group_of(a)));
    first.into_iter().chain(rest).collect()
}

/// The book's addresses that serve compact filters, tried ones first.
pub(crate) fn from_book(book: &AddrBook) -> Vec<String> {
    let mut entries: Vec<_> = book.entries().filter(|e| e.services.has(ServiceFlags::COMPACT_FILTERS)).collect();
    entries.sort_by_key(|e| (!e.in_tried, std::cmp::Reverse(e.last_success)));
    entries.into_iter().map(|e| e.peer.to_string()).collect()
}

/// Wakes the sync when a peer announces a block or goes away, and notes each peer's tip.
#[derive(Debug, Clone)]
pub(crate) struct Wake {
    pub wake: mpsc::Sender<()>,
    /// The last block each peer (by id) announced or sent a header of: its tip, as far as we know.
    pub tips: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u64, bitcoin::BlockHash>>>,
}

impl Wake {
    /// The last block `peer` announced or sent the header of.
    pub(crate) fn tip_of(&self, peer: &Peer) -> Option<bitcoin::BlockHash> {
        self.tips.lock().ok().and_then(|t| t.get(&peer.id()).copied())
    }

    /// Records `hash` as `peer`'s tip.
    pub(crate) fn set_tip(&self, peer: &Peer, hash: bitcoin::BlockHash) {
        if let Ok(mut t) = self.tips.lock() {
            t.insert(peer.id(), hash);
        }
    }
}

impl Handler for Wake {
    fn on_inv(&self, peer: &Peer, inv: Vec<Inventory>) {
        let last = inv.iter().rev().find_map(|i| match i {
            Inventory::Block(h) | Inventory::WitnessBlock(h) => Some(*h),
            _ => None,
        });
        if let Some(hash) = last {
            self.set_tip(peer, hash);
            let _ = self.wake.try_send(());
        }
    }

    fn on_headers(&self, peer: &Peer, headers: Vec<bitcoin::block::Header>) {
        if let Some(last) = headers.last() {
            self.set_tip(peer, last.block_hash());
        }
        let _ = self.wake.try_send(());
    }

    fn on_disconnect(&self, _peer: &Peer, _reason: &DisconnectReason) {
        let _ = self.wake.try_send(());
    }
}

/// A connected peer.
#[derive(Debug, Clone)]
pub(crate) struct LightPeer {
    pub peer: Peer,
    pub addr: String,
}

/// The peers.
#[derive(Debug)]
pub(crate) struct PeerSet {
    candidates: VecDeque<String>,
    pub live: Vec<LightPeer>,
    pub reasons: Vec<String>,
    config: PeerConfig,
    pub wake: Wake,
    target: usize,
    next: usize,
}

/// The short reason a remote gives for failing to connect.
fn connect_reason(e: &crate::peer::ConnectError) -> String {
    e.to_string()
}

impl PeerSet {
    pub(crate) fn new(candidates: Vec<String>, config: PeerConfig, wake: Wake, target: usize) -> Self {
        PeerSet { candidates: spread(candidates), live: Vec::new(), reasons: Vec::new(), config, wake, target, next: 0 }
    }

    /// Dials candidates until `target` peers are connected or none is left; reports each.
    pub(crate) async fn fill(&mut self, events: &mpsc::Sender<LightEvent>) {
        self.live.retain(|p| p.peer.is_connected());
        while self.live.len() < self.target && !self.candidates.is_empty() {
            let want = self.target.saturating_sub(self.live.len());
            let mut dials = tokio::task::JoinSet::new();
            for _ in 0..want {
                let Some(addr) = self.candidates.pop_front() else { break };
                let config = self.config.clone();
                let wake = self.wake.clone();
                dials.spawn(async move {
                    let r = Peer::connect(&addr, config, wake).await;
                    (addr, r)
                });
            }
            while let Some(done) = dials.join_next().await {
                let Ok((addr, result)) = done else { continue };
                match result {
                    Ok((peer, remote)) => self.admit(peer, remote, addr, events).await,
                    Err(e) => self.report(addr, connect_reason(&e), events).await,
                }
            }
        }
    }

    async fn admit(&mut self, peer: Peer, remote: RemoteInfo, addr: String, events: &mpsc::Sender<LightEvent>) {
        if !remote.version.services.has(ServiceFlags::COMPACT_FILTERS) {
            peer.disconnect();
            return self.report(addr, "does not serve compact filters (no NODE_COMPACT_FILTERS)".into(), events).await;
        }
        let v2 = peer.stats().transport == Transport::V2;
        let _ = events
            .send(LightEvent::PeerConnected { addr: addr.clone(), user_agent: remote.version.user_agent.clone(), v2 })
            .await;
        self.live.push(LightPeer { peer, addr });
    }

    async fn report(&mut self, addr: String, reason: String, events: &mpsc::Sender<LightEvent>) {
        self.reasons.push(format!("{addr}: {reason}"));
        let _ = events.send(LightEvent::PeerDropped { addr, reason }).await;
    }

    /// Drops the peer at `addr` for `reason` (it is not dialed again).
    pub(crate) async fn drop_peer(&mut self, addr: &str, reason: String, events: &mpsc::Sender<LightEvent>) {
        let Some(i) = self.live.iter().position(|p| p.addr == addr) else { return };
        let p = self.live.remove(i);
        p.peer.disconnect();
        self.report(p.addr, reason, events).await;
    }

    /// Drops peers whose connection ended.
    pub(crate) async fn reap(&mut self, events: &mpsc::Sender<LightEvent>) {
        let gone: Vec<LightPeer> = self.live.iter().filter(|p| !p.peer.is_connected()).cloned().collect();
        for p in gone {
            let reason = p.peer.disconnect_reason().map_or_else(|| "disconnected".to_string(), |r| r.to_string());
            self.live.retain(|l| l.addr != p.addr);
            self.report(p.addr, format!("disconnected: {reason}"), events).await;
        }
    }

    /// The next peer in turn.
    pub(crate) fn pick(&mut self) -> Option<LightPeer> {
        if self.live.is_empty() {
            return None;
        }
        self.next = self.next.wrapping_add(1);
        self.live.get(self.next.checked_rem(self.live.len()).unwrap_or(0)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_of_distinct_network_groups_are_dialed_first() {
        let addrs = ["1.2.3.4:8333", "1.2.9.9:8333", "5.6.7.8:8333", "1.2.5.5:8333", "9.9.9.9:8333"];
        let order: Vec<String> = spread(addrs.iter().map(|a| a.to_string()).collect()).into();
        // 1.2.x.x is one /16 group: its second and third addresses wait for the other groups.
        assert_eq!(order, ["1.2.3.4:8333", "5.6.7.8:8333", "9.9.9.9:8333", "1.2.9.9:8333", "1.2.5.5:8333"]);
    }

    #[test]
    fn the_book_gives_only_addresses_that_serve_filters() {
        use bitcoin::p2p::address::AddrV2Message;
        let mut book = AddrBook::new([1; 32], 7);
        let source = crate::core::addrbook::Endpoint::new(AddrV2::Ipv4([8, 8, 8, 8].into()), 8333);
        let entry = |ip: [u8; 4], services: ServiceFlags| AddrV2Message {
            time: 1_700_000_000,
            services,
            addr: AddrV2::Ipv4(ip.into()),
            port: 8333,
        };
        let filters = ServiceFlags::NETWORK | ServiceFlags::COMPACT_FILTERS;
        book.add(&[entry([11, 1, 1, 1], filters), entry([12, 1, 1, 1], ServiceFlags::NETWORK)], &source, 1_700_000_000);
        assert_eq!(from_book(&book), vec!["11.1.1.1:8333".to_string()]);
    }
}
