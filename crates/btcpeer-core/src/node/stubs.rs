//! TEMPORARY stand-ins for `bans` until they land (removed on merge).
#![allow(missing_docs, dead_code, clippy::all)]
use std::collections::HashMap;
use std::net::IpAddr;

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
