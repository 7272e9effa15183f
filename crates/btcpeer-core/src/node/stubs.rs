//! TEMPORARY stand-ins for `bans` and `eviction` until they land (removed on merge).
#![allow(missing_docs, dead_code, clippy::all)]
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct EvictionCandidate {
    pub id: u64,
    pub connected: Instant,
    pub min_ping: Option<Duration>,
    pub last_block: Option<Instant>,
    pub last_tx: Option<Instant>,
    pub relevant_services: bool,
    pub relay_txs: bool,
    pub bloom_filter: bool,
    pub keyed_net_group: u64,
    pub prefer_evict: bool,
    pub is_local: bool,
    pub network: Option<crate::addrbook::NetKind>,
    pub noban: bool,
}
impl EvictionCandidate {
    pub fn new(id: u64, connected: Instant, keyed_net_group: u64) -> Self {
        EvictionCandidate {
            id,
            connected,
            min_ping: None,
            last_block: None,
            last_tx: None,
            relevant_services: false,
            relay_txs: false,
            bloom_filter: false,
            keyed_net_group,
            prefer_evict: false,
            is_local: false,
            network: None,
            noban: false,
        }
    }
}
pub fn select_node_to_evict(c: Vec<EvictionCandidate>, _now: Instant) -> Option<u64> {
    let mut c = c;
    c.sort_by_key(|c| c.connected);
    c.last().map(|c| c.id)
}
#[derive(Debug, Default)]
pub struct BanList(HashMap<IpAddr, u64>);
impl BanList {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn ban(&mut self, ip: IpAddr, until: u64) -> bool {
        self.0.insert(ip, until).is_none()
    }
    pub fn is_banned(&self, ip: IpAddr, now: u64) -> bool {
        self.0.get(&ip).is_some_and(|u| *u > now)
    }
}
#[derive(Debug, Default)]
pub struct Discouraged(std::collections::HashSet<IpAddr>);
impl Discouraged {
    pub fn new(_seed: u64) -> Self {
        Self::default()
    }
    pub fn discourage(&mut self, ip: IpAddr) {
        self.0.insert(ip);
    }
    pub fn is_discouraged(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}
pub const MAX_ANCHORS: usize = 2;
