//! A [`PeerCore`] over a blocking stream, with no async runtime: `std::net::TcpStream` (or any
//! [`BlockingStream`]), v1 or BIP324 v2 framing (the core's [`Framing`]), one thread. For scripts, tools and tests that want a handshake
//! and a few requests without tokio; the `blocking` example is built on it.
//!
//! ```no_run
//! use std::net::TcpStream;
//! use std::time::Duration;
//! use btcpeer_core::blocking::BlockingPeer;
//! use btcpeer_core::network::Network;
//! use btcpeer_core::peer::{CoreConfig, Direction};
//!
//! let stream = TcpStream::connect("127.0.0.1:18444")?;
//! let mut peer = BlockingPeer::new(stream, Network::REGTEST, CoreConfig::new(Direction::Outbound));
//! let remote = peer.handshake(Duration::from_secs(10))?;
//! println!("{} answers in {:?}", remote.version.user_agent, peer.ping(Duration::from_secs(10))?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;

use crate::network::Network;
use crate::peer::{CoreConfig, DisconnectReason, Event, PeerCore, RemoteInfo};
use crate::transport::framing::{Framing, TransportPolicy};

/// A blocking byte stream whose reads can wait a bounded time.
pub trait BlockingStream: Read + Write {
    /// Makes the next reads wait at most `wait` (then fail with `WouldBlock` or `TimedOut`).
    fn set_wait(&mut self, wait: Duration) -> std::io::Result<()>;
}

impl BlockingStream for TcpStream {
    fn set_wait(&mut self, wait: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(wait.max(Duration::from_millis(1))))
    }
}

/// Why a blocking call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockingError {
    /// The connection ended.
    #[error("disconnected: {0}")]
    Disconnected(DisconnectReason),
    /// The call's deadline passed first.
    #[error("timed out")]
    TimedOut,
    /// The stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// `within` from now, saturating a year ahead.
fn after(within: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(within).or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600))).unwrap_or(now)
}

/// One peer on a blocking stream: see the [module](self).
#[derive(Debug)]
pub struct BlockingPeer<S> {
    stream: S,
    core: PeerCore,
    inbuf: BytesMut,
    outbuf: BytesMut,
    chunk: Vec<u8>,
}

impl<S: BlockingStream> BlockingPeer<S> {
    /// A peer speaking v1 for `network` on `stream`, starting now.
    pub fn new(stream: S, network: Network, config: CoreConfig) -> Self {
        let framing = Framing::v1(network, config.direction);
        Self::framed(stream, config, framing)
    }

    /// A peer for `network` on `stream` under `policy` (an outbound [`TransportPolicy::V2`] or
    /// [`TransportPolicy::Auto`] is a BIP324 initiator; an inbound `Auto` takes v1 and v2 alike),
    /// starting now. Fails only if the v2 key cannot be drawn.
    ///
    /// ```no_run
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    /// use btcpeer_core::blocking::BlockingPeer;
    /// use btcpeer_core::network::Network;
    /// use btcpeer_core::peer::{CoreConfig, Direction, Transport};
    /// use btcpeer_core::transport::framing::TransportPolicy;
    ///
    /// let stream = TcpStream::connect("127.0.0.1:18444")?;
    /// let config = CoreConfig::new(Direction::Outbound);
    /// let mut peer = BlockingPeer::with_transport(stream, Network::REGTEST, config, TransportPolicy::V2)?;
    /// assert_eq!(peer.handshake(Duration::from_secs(10))?.transport, Transport::V2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_transport(
        stream: S,
        network: Network,
        config: CoreConfig,
        policy: TransportPolicy,
    ) -> Result<Self, BlockingError> {
        let framing =
            Framing::new(network, config.direction, policy, Default::default()).map_err(BlockingError::Disconnected)?;
        Ok(Self::framed(stream, config, framing))
    }

    fn framed(stream: S, config: CoreConfig, framing: Framing) -> Self {
        BlockingPeer {
            stream,
            core: PeerCore::framed(config, framing, Instant::now(), SystemTime::now()),
            inbuf: BytesMut::new(),
            outbuf: BytesMut::new(),
            chunk: vec![0u8; 16 * 1024],
        }
    }

    /// The protocol state, for commands ([`PeerCore::send`], [`PeerCore::announce`] …).
    pub fn core(&mut self) -> &mut PeerCore {
        &mut self.core
    }

    /// Runs until the handshake completes.
    pub fn handshake(&mut self, within: Duration) -> Result<RemoteInfo, BlockingError> {
        let deadline = after(within);
        loop {
            if let Event::Handshake(remote) = self.next_event(deadline)? {
                return Ok(remote);
            }
        }
    }

    /// Sends one ping and waits for its pong; other events meanwhile are dropped.
    pub fn ping(&mut self, within: Duration) -> Result<Duration, BlockingError> {
        let deadline = after(within);
        self.core.ping(Instant::now());
        loop {
            if let Event::Pong { rtt } = self.next_event(deadline)? {
                return Ok(rtt);
            }
        }
    }

    /// Writes what the core has to send, then reads, feeds and runs timers until the next event
    /// (an ended connection is [`BlockingError::Disconnected`]) or until `deadline`.
    pub fn next_event(&mut self, deadline: Instant) -> Result<Event, BlockingError> {
        loop {
            let now = Instant::now();
            self.core.poll_transmit_bytes(now, &mut self.outbuf);
            if !self.outbuf.is_empty() {
                let written = self.stream.write_all(&self.outbuf).and_then(|()| self.stream.flush());
                self.outbuf.clear();
                if let Err(e) = written {
                    self.core.stream_closed(Some(&e));
                }
            }
            if self.core.poll_timeout(now).is_some() && !self.inbuf.is_empty() {
                // Frames left when `handle_bytes` stopped after a batch of events.
                self.core.handle_bytes(&mut self.inbuf, now, SystemTime::now());
            }
            match self.core.poll_event() {
                Some(Event::Disconnected(reason)) => return Err(BlockingError::Disconnected(reason)),
                Some(event) => return Ok(event),
                None => {}
            }
            if now >= deadline {
                return Err(BlockingError::TimedOut);
            }
            let wake = self.core.poll_timeout(now).map_or(deadline, |t| t.min(deadline));
            self.stream.set_wait(wake.saturating_duration_since(now))?;
            match self.stream.read(&mut self.chunk) {
                Ok(0) => self.core.stream_closed(None),
                Ok(n) => self.inbuf.extend_from_slice(self.chunk.get(..n).unwrap_or_default()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) => self.core.stream_closed(Some(&e)),
            }
            let now = Instant::now();
            self.core.handle_bytes(&mut self.inbuf, now, SystemTime::now());
            self.core.handle_timeout(now);
        }
    }
}
