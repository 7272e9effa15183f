//! Whether the remote has sent a single byte: what tells a connection that never speaks
//! (slow-loris) from one in the middle of its handshake, before any frame is complete.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Peer, Shared};

/// The peer's stream, noting the first byte read (a local flag after that: one branch a read).
pub(crate) struct Heard<S> {
    inner: S,
    seen: bool,
    shared: Arc<Shared>,
}

impl<S> Heard<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Heard { inner, seen: false, shared }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Heard<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.seen && buf.filled().len() > before {
            self.seen = true;
            self.shared.heard.store(true, Ordering::Release);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Heard<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Peer {
    /// Whether the remote has sent anything at all (a byte of a frame, of a BIP324 key): false
    /// for a connection that never speaks. A node evicts those first when it needs room.
    ///
    /// ```
    /// use btcpeer::network::Network;
    /// use btcpeer::peer::{NoopHandler, Peer, PeerConfig};
    ///
    /// let config = PeerConfig::builder(Network::REGTEST).build().unwrap();
    /// let peer = Peer::outbound(config, "127.0.0.1:18444", NoopHandler);
    /// assert!(!peer.heard_from());
    /// ```
    pub fn heard_from(&self) -> bool {
        self.shared.heard.load(Ordering::Acquire)
    }
}
