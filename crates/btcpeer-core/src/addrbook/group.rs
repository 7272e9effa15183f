//! Network groups and routability, as Bitcoin Core's `NetGroupManager::GetGroup` and
//! `CNetAddr::IsRoutable` (`netgroup.cpp`, `netaddress.cpp`) define them without an asmap: IPv4
//! by /16, IPv6 by /32 (Hurricane Electric's 2001:470::/32 by /36), the IPv4 inside 6to4,
//! Teredo and IPv4-mapped addresses by that IPv4's /16, and Tor v3, I2P and CJDNS as groups of
//! their own keyed by their first 4 bits.

use std::net::{Ipv4Addr, Ipv6Addr};

use bitcoin::p2p::address::AddrV2;

/// Core's network ids, the first byte of a group (`enum Network` in `netaddress.h`).
const NET_IPV4: u8 = 1;
const NET_IPV6: u8 = 2;
const NET_ONION: u8 = 3;
const NET_I2P: u8 = 4;
const NET_CJDNS: u8 = 5;
/// Addresses that are not routable share one group.
const NET_UNROUTABLE: u8 = 0;

/// The IPv4 address an IPv6 address carries: IPv4-mapped, 6to4 (2002::/16) or Teredo
/// (2001:0::/32, whose IPv4 is stored inverted).
fn embedded_ipv4(ip: &Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    match (o[0], o[1], o[2], o[3]) {
        (0x20, 0x02, _, _) => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        (0x20, 0x01, 0x00, 0x00) => Some(Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15])),
        _ => None,
    }
}

/// Whether an IPv4 address can be reached on the internet (Core's `IsRoutable`: not RFC1918,
/// RFC2544, RFC3927, RFC6598, RFC5737, loopback, unspecified, multicast or reserved).
fn routable_v4(ip: &Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || o[0] == 0
        || o[0] >= 240
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        || (o[0] == 198 && (o[1] & 0xfe) == 18))
}

/// Whether an IPv6 address can be reached on the internet (not loopback, unspecified, unique-local,
/// link-local, documentation (2001:db8::/32), ORCHID or multicast; an embedded IPv4 must be).
fn routable_v6(ip: &Ipv6Addr) -> bool {
    if let Some(v4) = embedded_ipv4(ip) {
        return routable_v4(&v4);
    }
    let s = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0010))
}

/// Whether `addr` is reachable on the internet. Tor, I2P and CJDNS addresses are.
pub fn is_routable(addr: &AddrV2) -> bool {
    match addr {
        AddrV2::Ipv4(ip) => routable_v4(ip),
        AddrV2::Ipv6(ip) => routable_v6(ip),
        AddrV2::TorV3(_) | AddrV2::I2p(_) | AddrV2::Cjdns(_) => true,
        _ => false,
    }
}

/// The network group of `addr`: addresses in one group are likely under one operator's control,
/// so the book spreads them over few buckets and the node keeps one outbound connection per group.
pub fn group(addr: &AddrV2) -> Vec<u8> {
    let v4 = |ip: &Ipv4Addr| {
        let o = ip.octets();
        vec![NET_IPV4, o[0], o[1]]
    };
    match addr {
        AddrV2::Ipv4(ip) if routable_v4(ip) => v4(ip),
        AddrV2::Ipv6(ip) if routable_v6(ip) => match embedded_ipv4(ip) {
            Some(inner) => v4(&inner),
            None => {
                let o = ip.octets();
                // Hurricane Electric hands out /36s from one /32.
                if o[..4] == [0x20, 0x01, 0x04, 0x70] {
                    vec![NET_IPV6, o[0], o[1], o[2], o[3], o[4] & 0xf0]
                } else {
                    vec![NET_IPV6, o[0], o[1], o[2], o[3]]
                }
            }
        },
        AddrV2::TorV3(key) => vec![NET_ONION, key[0] & 0xf0],
        AddrV2::I2p(hash) => vec![NET_I2P, hash[0] & 0xf0],
        AddrV2::Cjdns(ip) => vec![NET_CJDNS, ip.octets()[1] & 0xf0],
        _ => vec![NET_UNROUTABLE],
    }
}

/// The kind of network an address is on, for [`AddrBook::select`](super::AddrBook::select).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NetKind {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
    /// Tor v3.
    Onion,
    /// I2P.
    I2p,
    /// CJDNS.
    Cjdns,
}

impl NetKind {
    /// The network `addr` is on (`None` for kinds the book does not keep).
    pub fn of(addr: &AddrV2) -> Option<NetKind> {
        Some(match addr {
            AddrV2::Ipv4(_) => NetKind::Ipv4,
            AddrV2::Ipv6(ip) if embedded_ipv4(ip).is_some() => NetKind::Ipv4,
            AddrV2::Ipv6(_) => NetKind::Ipv6,
            AddrV2::TorV3(_) => NetKind::Onion,
            AddrV2::I2p(_) => NetKind::I2p,
            AddrV2::Cjdns(_) => NetKind::Cjdns,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> AddrV2 {
        AddrV2::Ipv4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn r_n_groups_follow_cores_netgroup_rules() {
        assert_eq!(group(&v4(1, 2, 3, 4)), group(&v4(1, 2, 200, 9)), "one /16");
        assert_ne!(group(&v4(1, 2, 3, 4)), group(&v4(1, 3, 3, 4)));
        let mapped = AddrV2::Ipv6(Ipv4Addr::new(1, 2, 3, 4).to_ipv6_mapped());
        assert_eq!(group(&mapped), group(&v4(1, 2, 9, 9)), "IPv4-mapped is its IPv4");
        let six_to_four = AddrV2::Ipv6("2002:0102:0304::1".parse().unwrap());
        assert_eq!(group(&six_to_four), group(&v4(1, 2, 0, 0)), "6to4 carries 1.2.3.4");
        let teredo = AddrV2::Ipv6("2001:0:4136:e378:8000:63bf:fefd:fcfb".parse().unwrap());
        assert_eq!(group(&teredo), group(&v4(1, 2, 3, 4)), "Teredo stores 1.2.3.4 inverted");
        let a = AddrV2::Ipv6("2a01:4f8:1:2::1".parse().unwrap());
        let b = AddrV2::Ipv6("2a01:4f8:ffff::1".parse().unwrap());
        assert_eq!(group(&a), group(&b), "one /32");
        let he1 = AddrV2::Ipv6("2001:470:1000::1".parse().unwrap());
        let he2 = AddrV2::Ipv6("2001:470:2000::1".parse().unwrap());
        assert_ne!(group(&he1), group(&he2), "Hurricane Electric by /36");
        assert_ne!(group(&AddrV2::TorV3([0x10; 32])), group(&AddrV2::TorV3([0x20; 32])));
        assert_eq!(group(&AddrV2::TorV3([0x10; 32])), group(&AddrV2::TorV3([0x1f; 32])));
    }

    #[test]
    fn r_n_private_and_loopback_addresses_are_not_routable() {
        for a in [
            v4(10, 0, 0, 1),
            v4(127, 0, 0, 1),
            v4(192, 168, 1, 1),
            v4(172, 16, 0, 1),
            v4(100, 64, 0, 1),
            v4(0, 1, 2, 3),
        ] {
            assert!(!is_routable(&a), "{a:?}");
            assert_eq!(group(&a), vec![NET_UNROUTABLE]);
        }
        assert!(!is_routable(&AddrV2::Ipv6(Ipv6Addr::LOCALHOST)));
        assert!(!is_routable(&AddrV2::Ipv6("fd00::1".parse().unwrap())));
        assert!(is_routable(&v4(8, 8, 8, 8)));
        assert!(is_routable(&AddrV2::TorV3([1; 32])));
    }
}
