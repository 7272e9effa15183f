//! Whom a node refuses: manual bans with an expiry ([`BanList`], Bitcoin Core's `BanMan` in
//! `src/banman.cpp`), the bounded rolling filter of discouraged addresses ([`Discouraged`], Core's
//! `m_discouraged`), and the file of block-relay-only anchors dialed first at start
//! ([`save_anchors`], [`take_anchors`], Core's `anchors.dat` in `addrdb.cpp`).
//!
//! As in Core (`banman.h`): a banned address or subnet is never connected to, in or out, and not
//! gossiped; a discouraged address (a peer that misbehaved) may still connect in but is the first
//! evicted ([`EvictionCandidate::prefer_evict`](super::eviction::EvictionCandidate::prefer_evict)),
//! is never dialed and not gossiped. Bans are few and listed; discouragement is probabilistic
//! (no false negatives for the last 50,000, a one-in-a-million false positive) and fixed in size
//! however many peers misbehave.
//!
//! Each file is framed by [`crate::persist`] (magic, version, checksum) and written atomically; a
//! truncated or corrupted one loads as [`LoadError::Corrupt`], never half.
//!
//! ```
//! use std::net::IpAddr;
//! use btcpeer_core::node::bans::{BanList, Subnet};
//!
//! let now = 1_700_000_000;
//! let mut bans = BanList::new();
//! let ip: IpAddr = "203.0.113.7".parse()?;
//! assert!(bans.ban(ip.into(), now + 86_400));
//! assert!(bans.ban("198.51.100.0/24".parse::<Subnet>()?, now + 3_600));
//! assert!(bans.is_banned(ip, now));
//! assert!(bans.is_banned("198.51.100.200".parse()?, now));
//! assert!(!bans.is_banned("198.51.101.1".parse()?, now));
//! bans.sweep(now + 7_200); // the subnet's ban has run out
//! assert_eq!(bans.len(), 1);
//! let loaded = BanList::decode(&bans.encode())?;
//! assert_eq!(loaded, bans);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod anchors;
mod discourage;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::str::FromStr;

pub use anchors::{MAX_ANCHORS, decode_anchors, encode_anchors, load_anchors, save_anchors, take_anchors};
pub use discourage::{DISCOURAGED_ELEMENTS, DISCOURAGED_FP_RATE, Discouraged};

pub use crate::persist::LoadError;
use crate::persist::{self, HEADER_LEN, Reader};

/// The most bans a [`BanList`] holds. Core keeps no bound on manual bans (only the operator adds
/// them); a bound keeps memory and the per-connection scan fixed whatever a caller does.
pub const MAX_BANS: usize = 10_000;

/// The length of a ban when none is given: a day (Core's `DEFAULT_MISBEHAVING_BANTIME`, the
/// default of `-bantime` and `setban`).
pub const DEFAULT_BAN_SECS: u64 = 24 * 3600;

/// An IP address range, `addr/prefix` (Core's `CSubNet`): IPv4 `/0`–`/32`, IPv6 `/0`–`/128`. The
/// address is kept with its host bits cleared, and an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
/// prefix 96 or more) as the IPv4 it maps, as Core reads it; a single address is `/32` or `/128`.
///
/// ```
/// use btcpeer_core::node::bans::Subnet;
///
/// let net: Subnet = "10.1.2.3/16".parse()?;
/// assert_eq!(net.to_string(), "10.1.0.0/16");
/// assert!(net.contains("10.1.200.9".parse()?));
/// assert!(Subnet::new("::1".parse()?, 129).is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    addr: IpAddr,
    prefix: u8,
}

/// What [`BanList::ban`] takes: an address or a subnet.
pub type BanTarget = Subnet;

/// `addr` with every bit past the first `prefix` cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32u32.saturating_sub(u32::from(prefix))).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128u32.saturating_sub(u32::from(prefix))).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

impl Subnet {
    /// The subnet `addr/prefix`, or `None` if `prefix` is longer than the address (32 for IPv4,
    /// 128 for IPv6).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Subnet> {
        let (addr, prefix) = match addr {
            IpAddr::V6(a) if prefix >= 96 && a.to_ipv4_mapped().is_some() => {
                (IpAddr::V4(a.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)), prefix.saturating_sub(96))
            }
            a => (a, prefix),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then(|| Subnet { addr: mask(addr, prefix), prefix })
    }

    /// The first address of the range (its network address).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether the range is a single address.
    pub fn is_single(&self) -> bool {
        self.prefix == if self.addr.is_ipv4() { 32 } else { 128 }
    }

    /// Whether `ip` is in the range (Core's `CSubNet::Match`): of the same family (an
    /// IPv4-mapped IPv6 address counts as its IPv4) and equal in the first `prefix` bits.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

impl From<IpAddr> for Subnet {
    fn from(ip: IpAddr) -> Self {
        let ip = ip.to_canonical();
        Subnet { addr: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } }
    }
}

impl From<Ipv4Addr> for Subnet {
    fn from(ip: Ipv4Addr) -> Self {
        IpAddr::V4(ip).into()
    }
}

impl From<Ipv6Addr> for Subnet {
    fn from(ip: Ipv6Addr) -> Self {
        IpAddr::V6(ip).into()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() { write!(f, "{}", self.addr) } else { write!(f, "{}/{}", self.addr, self.prefix) }
    }
}

/// Why a string is not a subnet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubnetParseError {
    /// The address part is not an IP address.
    #[error("{0:?} is not an IP address")]
    Addr(String),
    /// The prefix is not a number or is longer than the address.
    #[error("{0:?} is not a prefix length for this address")]
    Prefix(String),
}

impl FromStr for Subnet {
    type Err = SubnetParseError;

    /// `a.b.c.d`, `a.b.c.d/n`, an IPv6 address, or one with `/n`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = addr.trim().parse().map_err(|_| SubnetParseError::Addr(addr.to_string()))?;
        match prefix {
            None => Ok(ip.into()),
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .and_then(|n| Subnet::new(ip, n))
                .ok_or_else(|| SubnetParseError::Prefix(p.to_string())),
        }
    }
}

const BANS_MAGIC: &[u8; 8] = b"BTCPBANS";
const BANS_VERSION: u8 = 1;

/// Manual bans: addresses and subnets, each until a Unix time (Core's `BanMan` banmap,
/// `src/banman.cpp`). At most [`MAX_BANS`]; time is passed in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BanList {
    bans: BTreeMap<Subnet, u64>,
}

impl BanList {
    /// An empty list.
    pub fn new() -> Self {
        BanList::default()
    }

    /// Bans `target` until the Unix time `until` (Core's `BanMan::Ban`: a ban only ever grows
    /// longer; a shorter one leaves the longer in place). `false` if nothing changed: the target
    /// was already banned as long, or the list is full ([`MAX_BANS`]) and every ban in it lasts at
    /// least as long (otherwise the ban ending first makes room).
    pub fn ban(&mut self, target: Subnet, until: u64) -> bool {
        if let Some(existing) = self.bans.get_mut(&target) {
            if *existing >= until {
                return false;
            }
            *existing = until;
            return true;
        }
        if self.bans.len() >= MAX_BANS {
            let first_to_end = self.bans.iter().min_by_key(|(_, until)| **until).map(|(s, u)| (*s, *u));
            match first_to_end {
                Some((subnet, ends)) if ends < until => {
                    self.bans.remove(&subnet);
                }
                _ => return false,
            }
        }
        self.bans.insert(target, until);
        true
    }

    /// Lifts the ban on exactly `target` (Core's `BanMan::Unban`); a subnet containing it stays.
    /// `false` if it was not banned.
    pub fn unban(&mut self, target: Subnet) -> bool {
        self.bans.remove(&target).is_some()
    }

    /// Whether `ip` is in a range banned at `now` (Core's `BanMan::IsBanned`: `now < until`).
    pub fn is_banned(&self, ip: IpAddr, now: u64) -> bool {
        self.bans.iter().any(|(subnet, until)| now < *until && subnet.contains(ip))
    }

    /// When the ban on exactly `target` ends, if there is one.
    pub fn banned_until(&self, target: &Subnet) -> Option<u64> {
        self.bans.get(target).copied()
    }

    /// Drops the bans that have ended (Core's `BanMan::SweepBanned`: `now > until`).
    pub fn sweep(&mut self, now: u64) {
        self.bans.retain(|_, until| now <= *until);
    }

    /// Lifts every ban (Core's `BanMan::ClearBanned`).
    pub fn clear(&mut self) {
        self.bans.clear();
    }

    /// Each ban and when it ends, in address order.
    pub fn entries(&self) -> impl Iterator<Item = (Subnet, u64)> + '_ {
        self.bans.iter().map(|(s, u)| (*s, *u))
    }

    /// How many bans there are.
    pub fn len(&self) -> usize {
        self.bans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.bans.is_empty()
    }

    /// The list as file bytes: `BTCPBANS`, version 1, a count (u32 LE, at most [`MAX_BANS`]),
    /// then each ban as its family (4 or 6), address (4 or 16 bytes), prefix and end (u64 LE), in
    /// address order, and the SHA256d of everything before.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.bans.len().saturating_mul(26).saturating_add(4));
        body.extend_from_slice(&(self.bans.len() as u32).to_le_bytes());
        for (subnet, until) in &self.bans {
            write_ip(&mut body, subnet.addr);
            body.push(subnet.prefix);
            body.extend_from_slice(&until.to_le_bytes());
        }
        persist::seal(BANS_MAGIC, BANS_VERSION, &body)
    }

    /// A list from file bytes made by [`encode`](BanList::encode). `Err` says what is wrong and
    /// at which byte; nothing is half-read.
    pub fn decode(data: &[u8]) -> Result<BanList, String> {
        let body = persist::unseal(BANS_MAGIC, BANS_VERSION, data)?;
        let mut r = Reader::new(body, HEADER_LEN);
        let count = r.u32_le("the count")?;
        if count as usize > MAX_BANS {
            return Err(format!("{count} bans, more than a list holds ({MAX_BANS})"));
        }
        let mut list = BanList::new();
        for _ in 0..count {
            let at = r.pos();
            let addr = read_ip(&mut r, "a banned address")?;
            let prefix = r.u8("a prefix")?;
            let until = r.u64_le("a ban's end")?;
            let subnet = Subnet::new(addr, prefix)
                .filter(|s| s.addr == addr && s.prefix == prefix)
                .ok_or_else(|| format!("bad subnet {addr}/{prefix} at byte {at}"))?;
            if list.bans.insert(subnet, until).is_some() {
                return Err(format!("a duplicate ban of {subnet} at byte {at}"));
            }
        }
        r.finish("the last ban")?;
        Ok(list)
    }

    /// Writes the list to `path` atomically ([`persist::write_atomic`]).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        persist::write_atomic(path, &self.encode())
    }

    /// Reads a list written by [`save`](BanList::save). Bans that have ended are kept until a
    /// [`sweep`](BanList::sweep) (Core sweeps right after loading).
    pub fn load(path: &Path) -> Result<BanList, LoadError> {
        persist::load_with(path, BanList::decode)
    }
}

/// Writes an IP address as its family (4 or 6) and its bytes.
pub(crate) fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

/// Reads an IP address written by [`write_ip`].
pub(crate) fn read_ip(r: &mut Reader<'_>, what: &str) -> Result<IpAddr, String> {
    let at = r.pos();
    Ok(match r.u8(what)? {
        4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>(what)?)),
        6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>(what)?)),
        family => return Err(format!("bad {what} at byte {at}: family {family}, expected 4 or 6")),
    })
}
