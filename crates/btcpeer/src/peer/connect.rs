//! [`Peer::connect`]: dialing, the v2 policy with its v1 redial, the handshake, under one deadline.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::config::PeerConfig;
use super::{DisconnectReason, Handler, Peer, PeerEvent, RemoteInfo, Transport, V2Policy};

/// Why [`Peer::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The address did not resolve, or the TCP connection failed.
    #[error("{addr}: {source}")]
    Dial {
        /// The address dialed.
        addr: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The SOCKS5 proxy refused or failed.
    #[cfg(feature = "socks")]
    #[error("through the proxy: {0}")]
    Proxy(#[from] crate::socks::SocksError),
    /// The configuration names a SOCKS5 proxy ([`PeerConfigBuilder::proxy`](super::PeerConfigBuilder::proxy))
    /// but this build of btcpeer has no SOCKS5 dialer (feature `socks`): nothing was dialed, rather
    /// than dial directly and reveal our address to a remote the proxy was meant to hide it from.
    #[error("a proxy ({proxy}) is configured but btcpeer was built without the `socks` feature: not dialing directly")]
    ProxyWithoutSocks {
        /// The configured proxy.
        proxy: std::net::SocketAddr,
    },
    /// The connection and handshake did not finish within the deadline (connect timeout plus
    /// handshake timeout).
    #[error("no handshake within {0:?}")]
    Timeout(Duration),
    /// The handshake failed; `hint` names the likely cause when there is one.
    #[error("handshake failed: {reason}{}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    Handshake {
        /// Why the peer ended.
        reason: DisconnectReason,
        /// The likely cause: another network, a v1-only remote.
        hint: Option<&'static str>,
    },
}

impl Peer {
    /// Dials `addr` (`HOST:PORT`; through the configured SOCKS5 proxy when there is one, `.onion`
    /// names included), runs the handshake, and returns the peer with what it learned. A proxy is
    /// used only with the `socks` feature: without it, a configuration that names one is refused
    /// ([`ConnectError::ProxyWithoutSocks`]) and nothing is dialed — never a direct dial. With
    /// [`V2Policy::Prefer`] a remote that hangs up on the v2 key is dialed again in v1. The whole
    /// call is bounded by the configuration's connect timeout plus its handshake timeout.
    ///
    /// ```no_run
    /// use btcpeer::network::Network;
    /// use btcpeer::peer::{NoopHandler, Peer, PeerConfig, V2Policy};
    ///
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = PeerConfig::builder(Network::REGTEST).v2(V2Policy::Prefer).start_height(0).build()?;
    /// let (peer, remote) = Peer::connect("127.0.0.1:18444", config, NoopHandler).await?;
    /// println!("{} at height {}", remote.version.user_agent, remote.version.start_height);
    /// println!("ping {:?}", peer.ping().await?);
    /// # Ok(()) }
    /// ```
    pub async fn connect(
        addr: &str,
        config: PeerConfig,
        handler: impl Handler,
    ) -> Result<(Peer, RemoteInfo), ConnectError> {
        let handler = std::sync::Arc::new(handler);
        let (peer, remote, ()) =
            connect_with(addr, config, |cfg| (Peer::outbound(cfg, addr, handler.clone()), ())).await?;
        Ok((peer, remote))
    }

    /// [`Peer::connect`] with [`PeerEvent`]s on a bounded channel instead of a handler.
    pub async fn connect_with_channel(
        addr: &str,
        config: PeerConfig,
        capacity: usize,
    ) -> Result<(Peer, RemoteInfo, mpsc::Receiver<PeerEvent>), ConnectError> {
        connect_with(addr, config, |cfg| Peer::with_channel(cfg, super::Direction::Outbound, addr, capacity)).await
    }
}

/// The dial, handshake and redial, with `make` building each attempt's peer.
async fn connect_with<X>(
    addr: &str,
    config: PeerConfig,
    make: impl Fn(PeerConfig) -> (Peer, X),
) -> Result<(Peer, RemoteInfo, X), ConnectError> {
    let limit = config.inner.connect_timeout.saturating_add(config.inner.handshake_timeout);
    let attempts = async {
        match attempt(addr, config.clone(), &make).await {
            Err(ConnectError::Handshake { reason: DisconnectReason::V1RetryAdvised, .. }) => {
                tracing::debug!(addr, "the remote hung up on our v2 key; dialing again in v1");
                attempt(addr, config.with_v2(V2Policy::Never), &make).await
            }
            other => other,
        }
    };
    tokio::time::timeout(limit, attempts).await.map_err(|_| ConnectError::Timeout(limit))?
}

async fn attempt<X>(
    addr: &str,
    config: PeerConfig,
    make: &impl Fn(PeerConfig) -> (Peer, X),
) -> Result<(Peer, RemoteInfo, X), ConnectError> {
    let stream = dial(addr, &config).await?;
    let local = stream.local_addr().ok();
    let _ = stream.set_nodelay(true);
    let network = config.inner.network.name().to_string();
    let (peer, extra) = make(config);
    let associated = match local {
        Some(local) => peer.associate_with_local(stream, local),
        None => peer.associate(stream),
    };
    if let Err(e) = associated {
        return Err(ConnectError::Handshake {
            reason: DisconnectReason::io(&std::io::Error::other(e.to_string())),
            hint: None,
        });
    }
    match peer.handshake().await {
        Ok(remote) => Ok((peer, remote, extra)),
        Err(reason) => {
            let stats = peer.stats();
            // A close, or a reset when it closed with our version unread.
            let closed = matches!(reason, DisconnectReason::RemoteClosed { during_handshake: true })
                || matches!(&reason, DisconnectReason::Io { kind: std::io::ErrorKind::ConnectionReset, .. });
            let hint = match &reason {
                _ if closed && stats.bytes_received == 0 && stats.transport == Transport::V1 => {
                    // Core and btcd close at once on a frame of another network's magic.
                    tracing::debug!(network, "the remote closed on our version without a byte");
                    Some("the remote closed on our version without a word: is it on this network?")
                }
                r if r.suggests_v1_only() => Some("the remote seems to speak only v1"),
                _ => None,
            };
            Err(ConnectError::Handshake { reason, hint })
        }
    }
}

/// The TCP connection: direct, or through the configured proxy.
async fn dial(addr: &str, config: &PeerConfig) -> Result<TcpStream, ConnectError> {
    let timeout = config.inner.connect_timeout;
    if let Some(proxy) = config.inner.proxy {
        // Core dials through the proxy or not at all (`ConnectNode` → `ConnectThroughProxy` when
        // `GetProxy` has one for the network); so do we.
        #[cfg(feature = "socks")]
        return Ok(crate::socks::connect_timeout(proxy, addr, None, timeout).await?);
        #[cfg(not(feature = "socks"))]
        return Err(ConnectError::ProxyWithoutSocks { proxy });
    }
    let dial_error = |source| ConnectError::Dial { addr: addr.to_string(), source };
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(dial_error(e)),
        Err(_) => Err(dial_error(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no connection within {timeout:?}"),
        ))),
    }
}
