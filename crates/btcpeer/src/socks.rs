//! Dialing through a SOCKS5 proxy such as Tor, `.onion` names included.
//!
//! A small, dependency-free SOCKS5 client ([RFC 1928]) over tokio, with the username/password
//! authentication of [RFC 1929] (Tor uses distinct credentials to put connections on distinct
//! circuits: *stream isolation*). Only the `CONNECT` command is implemented.
//!
//! **Names are never resolved locally.** A target given as an IPv4 or IPv6 literal
//! (`"203.0.113.5:8333"`, `"[2001:db8::1]:8333"`) is sent to the proxy as an address; anything else
//! (a DNS name, a Tor v3 `.onion` name) is sent as a name, for the proxy to resolve. Resolving it
//! here would tell the local resolver — and whoever watches it — where we are connecting.
//!
//! The client treats the proxy as untrusted: every reply is read with an exact, bounded length
//! (the largest is a 255-byte name), nothing is allocated from what the proxy says, and a malformed
//! or truncated reply is a typed [`SocksError`], never a panic.
//!
//! ## Use with a peer
//!
//! Dial with [`connect`] (or [`connect_timeout`]), then create the peer with the *name* it was
//! dialed by and a configuration that knows the proxy ([`PeerConfigBuilder::proxy`]), and give it
//! the stream with [`Peer::associate`]. Our version message then does not carry the remote's
//! address: for a name (or an address equal to the proxy's) it is blanked, so neither the
//! onion name nor the proxy's address leaks to the remote.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use std::time::Duration;
//!
//! use btcpeer::network::Network;
//! use btcpeer::peer::{NoopHandler, Peer, PeerConfig};
//! use btcpeer::socks::{self, SocksAuth};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let proxy: SocketAddr = "127.0.0.1:9050".parse()?;
//! let target = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuv.onion:8333";
//!
//! // Distinct credentials: Tor builds a separate circuit for this connection.
//! let auth = SocksAuth::new("btcpeer-1", "x")?;
//! let stream = socks::connect_timeout(proxy, target, Some(&auth), Duration::from_secs(60)).await?;
//!
//! let config = PeerConfig::builder(Network::MAINNET).proxy(proxy).build()?;
//! let peer = Peer::outbound(config, target, NoopHandler);
//! peer.associate(stream)?;
//! let remote = peer.handshake().await?;
//! println!("{target} runs {}", remote.version.user_agent);
//! # Ok(())
//! # }
//! ```
//!
//! [RFC 1928]: https://www.rfc-editor.org/rfc/rfc1928
//! [RFC 1929]: https://www.rfc-editor.org/rfc/rfc1929
//! [`PeerConfigBuilder::proxy`]: crate::peer::PeerConfigBuilder::proxy
//! [`Peer::associate`]: crate::peer::Peer::associate

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The SOCKS protocol version.
const VERSION: u8 = 0x05;
/// The username/password sub-negotiation's version (RFC 1929).
const AUTH_VERSION: u8 = 0x01;
/// Authentication methods.
const METHOD_NONE: u8 = 0x00;
const METHOD_USER_PASS: u8 = 0x02;
const METHOD_NO_ACCEPTABLE: u8 = 0xff;
/// The `CONNECT` command.
const CMD_CONNECT: u8 = 0x01;
/// Address types.
const ATYP_IPV4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_IPV6: u8 = 0x04;
/// The longest name, username or password the protocol can carry (a one-byte length).
const MAX_FIELD: usize = 255;
/// The longest bound address and port in a connect reply: a 255-byte name and two bytes.
const MAX_BOUND: usize = MAX_FIELD + 2;

/// Username and password for the proxy (RFC 1929). Tor uses them for stream isolation: connections
/// with different credentials go over different circuits.
///
/// Each field must be 1 to 255 bytes ([`SocksAuth::new`] checks it; [`connect`] checks it again
/// for values built directly). The `Debug` output hides the password.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SocksAuth {
    /// The username, 1 to 255 bytes.
    pub username: String,
    /// The password, 1 to 255 bytes.
    pub password: String,
}

impl SocksAuth {
    /// Credentials, checked: each of `username` and `password` must be 1 to 255 bytes.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Result<SocksAuth, SocksError> {
        let auth = SocksAuth { username: username.into(), password: password.into() };
        auth.check()?;
        Ok(auth)
    }

    fn check(&self) -> Result<(), SocksError> {
        for (field, name) in [(&self.username, "username"), (&self.password, "password")] {
            if field.is_empty() || field.len() > MAX_FIELD {
                return Err(SocksError::BadCredentials(name));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for SocksAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocksAuth").field("username", &self.username).field("password", &"<hidden>").finish()
    }
}

/// Why dialing through the proxy failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocksError {
    /// Connecting to the proxy, or reading from or writing to it, failed.
    #[error("SOCKS5 proxy I/O error: {0}")]
    Io(#[from] io::Error),
    /// The target is not `host:port` with a numeric port and a host of 1 to 255 bytes.
    #[error("bad SOCKS5 target: {0}")]
    BadTarget(&'static str),
    /// The username or password (named here) is empty or longer than 255 bytes.
    #[error("bad SOCKS5 credentials: the {0} must be 1 to 255 bytes")]
    BadCredentials(&'static str),
    /// The proxy did not speak SOCKS5: a wrong version byte, an unknown address type, a reply cut
    /// short, an authentication method we did not offer …
    #[error("SOCKS5 protocol violation by the proxy: {0}")]
    ProxyProtocol(&'static str),
    /// The proxy accepts none of the authentication methods we offered (none without credentials,
    /// username/password with them).
    #[error("the SOCKS5 proxy accepts none of our authentication methods")]
    NoAcceptableAuth,
    /// The proxy rejected the username and password.
    #[error("the SOCKS5 proxy rejected the username and password")]
    AuthFailed,
    /// The proxy could not or would not connect to the target.
    #[error("the SOCKS5 proxy refused the connection: {reason} (code {code})")]
    Refused {
        /// The reply code (RFC 1928 section 6; 0xf0 … 0xf7 are Tor's onion-service codes).
        code: u8,
        /// The code's meaning.
        reason: &'static str,
    },
    /// [`connect_timeout`]'s deadline passed.
    #[error("timed out dialing through the SOCKS5 proxy")]
    Timeout,
}

/// The meaning of a SOCKS5 reply code (RFC 1928, plus Tor's extended onion-service errors).
fn reply_reason(code: u8) -> &'static str {
    match code {
        0x00 => "succeeded",
        0x01 => "general SOCKS server failure",
        0x02 => "connection not allowed by ruleset",
        0x03 => "network unreachable",
        0x04 => "host unreachable",
        0x05 => "connection refused",
        0x06 => "TTL expired",
        0x07 => "command not supported",
        0x08 => "address type not supported",
        0xf0 => "onion service descriptor can not be found",
        0xf1 => "onion service descriptor is invalid",
        0xf2 => "onion service introduction failed",
        0xf3 => "onion service rendezvous failed",
        0xf4 => "onion service missing client authorization",
        0xf5 => "onion service wrong client authorization",
        0xf6 => "onion service invalid address",
        0xf7 => "onion service introduction timed out",
        _ => "unassigned reply code",
    }
}

/// The target as the `CONNECT` request carries it.
enum Target<'a> {
    Ip(SocketAddr),
    Name(&'a str, u16),
}

fn parse_target(target: &str) -> Result<Target<'_>, SocksError> {
    if let Ok(addr) = target.parse::<SocketAddr>() {
        return Ok(Target::Ip(addr));
    }
    let (host, port) = target.rsplit_once(':').ok_or(SocksError::BadTarget("no port"))?;
    let bad_port = SocksError::BadTarget("the port is not a number from 0 to 65535");
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_port); // `u16::from_str` would take "+80"
    }
    let port = port.parse::<u16>().map_err(|_| bad_port)?;
    if host.starts_with('[') || host.contains(':') || host.parse::<IpAddr>().is_ok() {
        // "[::1" + garbage, a bare IPv6 address without brackets, "[name]", an IP literal that
        // did not parse with its port: not something to send to the proxy as a name.
        return Err(SocksError::BadTarget("not an IP literal nor a host name"));
    }
    if host.is_empty() {
        return Err(SocksError::BadTarget("empty host name"));
    }
    if host.len() > MAX_FIELD {
        return Err(SocksError::BadTarget("host name longer than 255 bytes"));
    }
    Ok(Target::Name(host, port))
}

/// A one-byte length for `s`, which the callers have checked to be at most 255 bytes.
fn len_byte(s: &str) -> Result<u8, SocksError> {
    u8::try_from(s.len()).map_err(|_| SocksError::BadTarget("field longer than 255 bytes"))
}

/// Reads exactly `buf.len()` bytes; the proxy closing the connection first is a protocol error.
async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), SocksError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(SocksError::ProxyProtocol("the proxy closed the connection in the middle of a reply"))
        }
        Err(e) => Err(SocksError::Io(e)),
    }
}

/// Connects to `target` (`"host:port"`) through the SOCKS5 proxy at `proxy`, with optional
/// username/password authentication, and returns the stream, ready for the target's protocol.
///
/// An IPv4 or IPv6 literal (`"[::1]:8333"`) is sent as an address; any other host — a DNS or
/// `.onion` name of up to 255 bytes — is sent as a name for the proxy to resolve, never resolved
/// locally. With `auth`, both "no authentication" and username/password are offered and the proxy's
/// choice is followed, as Bitcoin Core does (Tor picks username/password, which isolates streams);
/// without it, only "no authentication" is offered.
///
/// This has no deadline of its own: see [`connect_timeout`].
pub async fn connect(proxy: SocketAddr, target: &str, auth: Option<&SocksAuth>) -> Result<TcpStream, SocksError> {
    // Everything that can be checked locally is, before any connection is made.
    let target = parse_target(target)?;
    if let Some(auth) = auth {
        auth.check()?;
    }
    let mut stream = TcpStream::connect(proxy).await?;

    // Greeting: with credentials, offer both "no authentication" and username/password and follow
    // the proxy's choice, as Bitcoin Core does; without, only "no authentication".
    let offered: &[u8] =
        if auth.is_some() { &[VERSION, 2, METHOD_NONE, METHOD_USER_PASS] } else { &[VERSION, 1, METHOD_NONE] };
    stream.write_all(offered).await?;
    let mut reply = [0u8; 2];
    read_exact(&mut stream, &mut reply).await?;
    let use_credentials = match reply {
        [VERSION, METHOD_NO_ACCEPTABLE] => return Err(SocksError::NoAcceptableAuth),
        [VERSION, METHOD_NONE] => false,
        [VERSION, METHOD_USER_PASS] if auth.is_some() => true,
        [VERSION, _] => {
            return Err(SocksError::ProxyProtocol("the proxy chose an authentication method we did not offer"));
        }
        _ => return Err(SocksError::ProxyProtocol("not a SOCKS5 reply to the greeting")),
    };

    // Username/password sub-negotiation (RFC 1929).
    if let Some(auth) = auth.filter(|_| use_credentials) {
        let mut request =
            Vec::with_capacity(3usize.saturating_add(auth.username.len()).saturating_add(auth.password.len()));
        request.push(AUTH_VERSION);
        request.push(len_byte(&auth.username)?);
        request.extend_from_slice(auth.username.as_bytes());
        request.push(len_byte(&auth.password)?);
        request.extend_from_slice(auth.password.as_bytes());
        stream.write_all(&request).await?;
        let mut reply = [0u8; 2];
        read_exact(&mut stream, &mut reply).await?;
        match reply {
            [AUTH_VERSION, 0x00] => {}
            [AUTH_VERSION, _] => return Err(SocksError::AuthFailed),
            _ => return Err(SocksError::ProxyProtocol("not a username/password authentication reply")),
        }
    }

    // CONNECT request: version, command, reserved, address, port.
    let mut request = Vec::with_capacity(7usize.saturating_add(MAX_FIELD));
    request.extend_from_slice(&[VERSION, CMD_CONNECT, 0x00]);
    let port = match target {
        Target::Ip(SocketAddr::V4(a)) => {
            request.push(ATYP_IPV4);
            request.extend_from_slice(&a.ip().octets());
            a.port()
        }
        Target::Ip(SocketAddr::V6(a)) => {
            request.push(ATYP_IPV6);
            request.extend_from_slice(&a.ip().octets());
            a.port()
        }
        Target::Name(host, port) => {
            request.push(ATYP_DOMAIN);
            request.push(len_byte(host)?);
            request.extend_from_slice(host.as_bytes());
            port
        }
    };
    request.extend_from_slice(&port.to_be_bytes());
    stream.write_all(&request).await?;

    // Reply: version, code, reserved, bound address type, then the bound address and port, which
    // are read (to leave the stream at the target's first byte) and discarded.
    let mut head = [0u8; 4];
    read_exact(&mut stream, &mut head).await?;
    let [version, code, reserved, atyp] = head;
    if version != VERSION {
        return Err(SocksError::ProxyProtocol("not a SOCKS5 reply to the connect request"));
    }
    if code != 0x00 {
        return Err(SocksError::Refused { code, reason: reply_reason(code) });
    }
    if reserved != 0x00 {
        return Err(SocksError::ProxyProtocol("non-zero reserved byte in the connect reply"));
    }
    let address_len = match atyp {
        ATYP_IPV4 => 4,
        ATYP_IPV6 => 16,
        ATYP_DOMAIN => {
            let mut len = [0u8; 1];
            read_exact(&mut stream, &mut len).await?;
            let [len] = len;
            usize::from(len)
        }
        _ => return Err(SocksError::ProxyProtocol("unknown address type in the connect reply")),
    };
    // At most 255 + 2 bytes, on the stack.
    let mut bound = [0u8; MAX_BOUND];
    let bound =
        bound.get_mut(..address_len.saturating_add(2)).ok_or(SocksError::ProxyProtocol("bound address too long"))?;
    read_exact(&mut stream, bound).await?;
    Ok(stream)
}

/// [`connect`] with a deadline for the whole exchange: connecting to the proxy, authenticating,
/// and the proxy reaching the target. Past it, [`SocksError::Timeout`].
pub async fn connect_timeout(
    proxy: SocketAddr,
    target: &str,
    auth: Option<&SocksAuth>,
    timeout: Duration,
) -> Result<TcpStream, SocksError> {
    tokio::time::timeout(timeout, connect(proxy, target, auth)).await.map_err(|_| SocksError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_classified_without_resolving() {
        assert!(matches!(parse_target("127.0.0.1:8333"), Ok(Target::Ip(SocketAddr::V4(_)))));
        assert!(matches!(parse_target("[::1]:8333"), Ok(Target::Ip(SocketAddr::V6(_)))));
        assert!(matches!(parse_target("localhost:8333"), Ok(Target::Name("localhost", 8333))));
        assert!(matches!(parse_target("x.onion:0"), Ok(Target::Name("x.onion", 0))));
        for bad in [
            "localhost",
            "host:",
            "host:port",
            "host:65536",
            ":8333",
            "::1:8333",
            "[::1]",
            "[::1:8333",
            "1.2.3.4",
            "host:+80",
            "1.2.3.4:+80",
        ] {
            assert!(matches!(parse_target(bad), Err(SocksError::BadTarget(_))), "{bad}");
        }
        let long = format!("{}:1", "a".repeat(256));
        assert!(matches!(parse_target(&long), Err(SocksError::BadTarget(_))));
        let max = format!("{}:1", "a".repeat(255));
        assert!(matches!(parse_target(&max), Ok(Target::Name(_, 1))));
    }

    #[test]
    fn credentials_are_checked_and_the_password_hidden() {
        assert!(SocksAuth::new("u", "p").is_ok());
        assert!(matches!(SocksAuth::new("", "p"), Err(SocksError::BadCredentials("username"))));
        assert!(matches!(SocksAuth::new("u", "p".repeat(256)), Err(SocksError::BadCredentials("password"))));
        assert!(!format!("{:?}", SocksAuth::new("u", "secret").unwrap()).contains("secret"));
    }

    #[test]
    fn every_reply_code_has_a_reason() {
        assert_eq!(reply_reason(5), "connection refused");
        assert_eq!(reply_reason(8), "address type not supported");
        assert_eq!(reply_reason(0x42), "unassigned reply code");
    }
}
