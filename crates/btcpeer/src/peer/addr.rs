//! [`PeerAddr`]: where a peer is, as an IP and port or a name reached through a proxy.

use std::fmt;
use std::net::SocketAddr;

/// The remote's address: a socket address, or a host name (a DNS or `.onion` name reached through
/// a proxy).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    /// An IP address and port.
    Socket(SocketAddr),
    /// A host name and port, as given.
    Host(String),
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Socket(a) => write!(f, "{a}"),
            PeerAddr::Host(h) => f.write_str(h),
        }
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(a: SocketAddr) -> Self {
        PeerAddr::Socket(a)
    }
}

impl From<&str> for PeerAddr {
    fn from(s: &str) -> Self {
        s.parse().map(PeerAddr::Socket).unwrap_or_else(|_| PeerAddr::Host(s.to_string()))
    }
}

impl From<String> for PeerAddr {
    fn from(s: String) -> Self {
        PeerAddr::from(s.as_str())
    }
}
