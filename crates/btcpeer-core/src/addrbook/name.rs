//! An address book endpoint as text and back: `1.2.3.4:8333`, `[2001:db8::1]:8333`, Tor v3's
//! `….onion:8333` (base32 of the key, a SHA3-256 checksum and the version, as Core's
//! `CNetAddr::ToStringAddr` / `OnionToString` in `netaddress.cpp`), I2P's `….b32.i2p:0` and CJDNS
//! as the IPv6 it is.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use bitcoin::p2p::address::AddrV2;
use sha3::{Digest, Sha3_256};

use super::Endpoint;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const TORV3_VERSION: u8 = 3;

/// The base32 character of the low five bits of `v`.
fn symbol(v: u32) -> char {
    char::from(ALPHABET.get((v & 31) as usize).copied().unwrap_or(b'a'))
}

/// RFC 4648 base32, lower case, without padding (Core's `EncodeBase32(…, false)`): five bits at a
/// time, the last group padded with zero bits.
fn base32(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().saturating_mul(8).div_ceil(5));
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8 | u32::from(b)) & 0xfff;
        bits = bits.wrapping_add(8);
        while bits >= 5 {
            bits = bits.wrapping_sub(5);
            out.push(symbol(acc >> bits));
        }
    }
    if bits > 0 {
        out.push(symbol(acc << 5u32.wrapping_sub(bits)));
    }
    out
}

/// The inverse of [`base32`]; `None` on a character outside the alphabet or non-zero padding bits.
fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len().saturating_mul(5) / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c.to_ascii_lowercase())? as u32;
        acc = (acc << 5 | v) & 0xfff;
        bits = bits.wrapping_add(5);
        if bits >= 8 {
            bits = bits.wrapping_sub(8);
            out.push((acc >> bits) as u8);
        }
    }
    let padding = acc & 1u32.checked_shl(bits).unwrap_or(0).wrapping_sub(1);
    (padding == 0).then_some(out)
}

/// Tor v3's two checksum bytes (`torv3::Checksum` in `netaddress.cpp`).
fn onion_checksum(key: &[u8; 32]) -> [u8; 2] {
    let mut h = Sha3_256::new();
    h.update(b".onion checksum");
    h.update(key);
    h.update([TORV3_VERSION]);
    let d = h.finalize();
    let mut sum = [0u8; 2];
    sum.copy_from_slice(d.get(..2).unwrap_or(&[0, 0]));
    sum
}

/// The host part of `addr`: an IP, a `.onion` or a `.b32.i2p` name (`None` for Tor v2 and
/// unknown networks, which the book does not keep).
pub(super) fn host(addr: &AddrV2) -> Option<String> {
    Some(match addr {
        AddrV2::Ipv4(ip) => ip.to_string(),
        AddrV2::Ipv6(ip) | AddrV2::Cjdns(ip) => format!("[{ip}]"),
        AddrV2::TorV3(key) => {
            let mut raw = key.to_vec();
            raw.extend_from_slice(&onion_checksum(key));
            raw.push(TORV3_VERSION);
            format!("{}.onion", base32(&raw))
        }
        AddrV2::I2p(hash) => format!("{}.b32.i2p", base32(hash)),
        _ => return None,
    })
}

impl fmt::Display for Endpoint {
    /// `HOST:PORT` as it can be dialed (through a proxy for `.onion` and `.b32.i2p`).
    ///
    /// ```
    /// use btcpeer_core::addrbook::Endpoint;
    /// let p: Endpoint = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:8333".parse().unwrap();
    /// assert_eq!(p.to_string(), "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:8333");
    /// assert_eq!("[::1]:18444".parse::<Endpoint>().unwrap().to_string(), "[::1]:18444");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match host(&self.addr) {
            Some(h) => write!(f, "{h}:{}", self.port),
            None => write!(f, "{:?}:{}", self.addr, self.port),
        }
    }
}

/// Why text is not an endpoint (an address and port).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not IP:PORT, [IPv6]:PORT, NAME.onion:PORT or NAME.b32.i2p:PORT: {problem}")]
pub struct ParseEndpointError {
    text: String,
    problem: &'static str,
}

impl FromStr for Endpoint {
    type Err = ParseEndpointError;

    /// Parses what [`Display`](fmt::Display) writes; an IPv6 in fc00::/8 is CJDNS only when built
    /// with [`Endpoint::new`] (text cannot tell).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |problem| ParseEndpointError { text: text.to_string(), problem };
        if let Ok(sa) = text.parse::<SocketAddr>() {
            return Ok(Endpoint::from(sa));
        }
        let (name, port) = text.rsplit_once(':').ok_or_else(|| fail("no port"))?;
        let port: u16 = port.parse().map_err(|_| fail("a bad port"))?;
        let lower = name.to_ascii_lowercase();
        if let Some(b) = lower.strip_suffix(".onion") {
            let raw = unbase32(b).filter(|r| r.len() == 35).ok_or_else(|| fail("not a Tor v3 name"))?;
            let mut key = [0u8; 32];
            key.copy_from_slice(raw.get(..32).ok_or_else(|| fail("short"))?);
            if raw.get(34) != Some(&TORV3_VERSION) || raw.get(32..34) != Some(&onion_checksum(&key)[..]) {
                return Err(fail("a bad Tor v3 checksum or version"));
            }
            return Ok(Endpoint::new(AddrV2::TorV3(key), port));
        }
        if let Some(b) = lower.strip_suffix(".b32.i2p") {
            let raw = unbase32(b).filter(|r| r.len() == 32 && b.len() == 52).ok_or_else(|| fail("not an I2P name"))?;
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&raw);
            return Ok(Endpoint::new(AddrV2::I2p(hash), port));
        }
        Err(fail("not an address"))
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(sa: SocketAddr) -> Self {
        let addr = match sa.ip() {
            IpAddr::V4(ip) => AddrV2::Ipv4(ip),
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(v4) => AddrV2::Ipv4(v4),
                None => AddrV2::Ipv6(ip),
            },
        };
        Endpoint::new(addr, sa.port())
    }
}

impl From<&SocketAddr> for Endpoint {
    fn from(sa: &SocketAddr) -> Self {
        Endpoint::from(*sa)
    }
}

impl Endpoint {
    /// The socket address, for IPv4, IPv6 and CJDNS (`None` for names reached through a proxy).
    ///
    /// ```
    /// use btcpeer_core::addrbook::Endpoint;
    /// let p: Endpoint = "127.0.0.1:18444".parse().unwrap();
    /// assert_eq!(p.socket_addr(), Some("127.0.0.1:18444".parse().unwrap()));
    /// ```
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match &self.addr {
            AddrV2::Ipv4(ip) => Some(SocketAddr::new(IpAddr::V4(*ip), self.port)),
            AddrV2::Ipv6(ip) | AddrV2::Cjdns(ip) => Some(SocketAddr::new(IpAddr::V6(*ip), self.port)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_n_names_round_trip_as_core_writes_them() {
        // A Tor v3 address from Core's netbase tests.
        let onion = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:8333";
        let p: Endpoint = onion.parse().unwrap();
        assert!(matches!(p.addr, AddrV2::TorV3(_)));
        assert_eq!(p.to_string(), onion);
        // One character changed breaks the checksum.
        assert!("pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryc.onion:8333".parse::<Endpoint>().is_err());
        let i2p = "ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq.b32.i2p:0";
        let p: Endpoint = i2p.parse().unwrap();
        assert!(matches!(p.addr, AddrV2::I2p(_)));
        assert_eq!(p.to_string(), i2p);
        for ip in ["8.8.8.8:8333", "[2001:db8::1]:8333"] {
            assert_eq!(ip.parse::<Endpoint>().unwrap().to_string(), ip);
        }
        assert!("8.8.8.8".parse::<Endpoint>().is_err());
        assert!("x.onion:1".parse::<Endpoint>().is_err());
    }

    #[test]
    fn base32_round_trips() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(unbase32(&base32(&data)).unwrap(), data);
        }
    }
}
