//! The peer: lifecycle, handshake, receiving, the send queue and statistics.
//!
//! A [`Peer`] is a cheap, cloneable, `Send + Sync` handle. The application owns dialing and
//! listening; it creates a peer with [`Peer::outbound`] or [`Peer::inbound`] and hands it a connected
//! stream (any `AsyncRead + AsyncWrite`), either at once or later with [`Peer::associate`]. The peer
//! then runs on one tokio task, which performs the handshake, then reads and dispatches messages to
//! the application's [`Handler`] and drains the outbound queue, both in that one task. The protocol
//! itself — the handshake, Core's rules for each message, the byte-bounded queue, the deadlines,
//! the statistics — is the core's `btcpeer::core::peer::PeerCore`, one per peer under the
//! peer's one lock (what the simulator, the blocking driver and the fuzzers run too): the task
//! only moves bytes and time to it and its events to the application. When the
//! peer ends, for whatever [`DisconnectReason`], the task stops, the stream is closed, every queued
//! message's [`Completion`] resolves, the handler's `on_disconnect` runs once, and only then does
//! [`Peer::wait_for_disconnect`] return.
//!
//! A peer lives until it is disconnected — by [`Peer::disconnect`], by the remote, by one of its
//! deadlines — or until the application drops its last handle to it, which ends it with
//! [`DisconnectReason::LocalDropped`]: connected or not, its `on_disconnect` runs once and
//! the messages queued on it resolve as dropped. The peer's own tasks and the `&Peer` given to its
//! handler do not keep it alive (nor do clones of that `&Peer`); to remember peers without keeping
//! them, store a [`WeakPeer`] ([`Peer::downgrade`]).
//!
//! ```no_run
//! use btcpeer::network::Network;
//! use btcpeer::peer::{Handler, Peer, PeerConfig};
//! use btcpeer::wire::{Inventory, Message};
//!
//! struct Printer;
//! impl Handler for Printer {
//!     fn on_inv(&self, peer: &Peer, inv: Vec<Inventory>) {
//!         println!("peer {} announced {} items", peer.id(), inv.len());
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = PeerConfig::builder(Network::MAINNET).user_agent("example", "0.1").build()?;
//! let stream = tokio::net::TcpStream::connect("127.0.0.1:8333").await?;
//! stream.set_nodelay(true)?; // see `Peer::associate`
//! let peer = Peer::outbound(config, "127.0.0.1:8333", Printer);
//! peer.associate(stream).expect("a fresh peer");
//! let remote = peer.handshake().await?;
//! println!("connected to {}", remote.version.user_agent);
//! peer.queue_message(&Message::GetAddr)?.await;
//! let reason = peer.wait_for_disconnect().await;
//! println!("disconnected: {reason}");
//! # Ok(()) }
//! ```

mod addr;
mod ask;
mod builder;
mod config;
mod connect;
mod context;
mod core_config;
mod driver;
mod error;
mod extras;
mod handler;
mod life;
mod nonce;
mod owner;
mod panic;
mod push;
mod queue;
mod request;
mod stats;
mod user_agent;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;

use bitcoin::p2p::message_compact_blocks::SendCmpct;
use btcpeer_core::peer::PeerCore;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, mpsc};

pub use addr::PeerAddr;
pub use ask::{BroadcastOutcome, RequestError, Requests, TxRef};
pub use btcpeer_core::peer::{CommandStats, CommandTable, Direction, KnownInventory, RemoteInfo, Transport};
pub use builder::PeerConfigBuilder;
pub use config::{PeerConfig, V2Policy};
pub use connect::ConnectError;
pub use context::NodeContext;
pub use error::{AssociateError, ConfigError, DisconnectReason, QueueError, SendOutcome, Violation};
pub use handler::{Handler, NoopHandler, PeerEvent, ReadEvent};
pub use nonce::{NonceEntry, NonceRegistry, RandomError};
pub use owner::WeakPeer;
pub use push::{AnnounceError, PushError};
pub use queue::Completion;
pub use stats::PeerStats;

/// The driver's clock as the core's `Instant`: tokio's time (paused in tests), so the core's
/// deadlines follow tokio's timers.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

use handler::Sink;
use owner::Owner;
use queue::ProgressCell;

use crate::wire::{Command, Message};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HandshakeState {
    Pending,
    /// The details are the core's (`PeerCore::remote`), kept once.
    Done,
    /// The peer ended first, for its `reason`.
    Failed,
}

#[derive(Debug, PartialEq, Eq)]
enum Assoc {
    Waiting,
    Running,
    Ended,
}

/// Everything about a connection that changes, under the peer's one lock: the protocol engine
/// (the core: handshake, rules, queue, deadlines, statistics) and what only this driver keeps.
struct ConnState {
    assoc: Assoc,
    /// The connection's protocol, all of it (`btcpeer_core::peer::PeerCore`).
    core: PeerCore,
    /// The awaitable requests in flight.
    requests: request::InFlight,
    /// The application's own values.
    extensions: extras::Extensions,
    local_addr: Option<SocketAddr>,
    connected_at: Option<SystemTime>,
    handshake_at: Option<SystemTime>,
    last_block_height: i32,
    last_send: Option<SystemTime>,
    last_recv: Option<SystemTime>,
    /// The remote sent a byte ([`Peer::heard_from`]).
    heard: bool,
    /// The handshake's outcome.
    handshake: HandshakeState,
    /// The end has begun (`finalize` runs once).
    finalizing: bool,
    /// The peer finished ending (for its `reason`).
    done: bool,
}

impl ConnState {
    /// Why the peer ended (the core keeps the first reason), or `LocalRequest` before it has.
    fn reason(&self) -> DisconnectReason {
        self.core.end_reason().cloned().unwrap_or(DisconnectReason::LocalRequest)
    }
}

pub(crate) struct Shared {
    id: u64,
    direction: Direction,
    addr: PeerAddr,
    config: PeerConfig,
    sink: Sink,
    state: Mutex<ConnState>,
    /// Wakes the driver's writer: something was queued, a deadline moved, or the peer ends.
    wake: Notify,
    /// What became of queued messages, shared with every completion.
    progress: Arc<ProgressCell>,
    /// The peer is stopping: its task's loops end.
    stopping: AtomicBool,
    /// Wakes whoever waits for the handshake, the end or the task's stop: one `Notify` for all
    /// (not a channel: an idle peer holds it, and a channel costs a few hundred bytes more); each
    /// waiter looks again at what it waits for. (Room in the queue is the progress cell's.)
    changed: Notify,
    span: tracing::Span,
    /// The application's handles' share: weak, so the state never keeps the peer alive.
    owner: Weak<Owner>,
}

/// A connection to one remote peer. Cheap to clone; every method is safe from any task.
///
/// The handles the application holds keep the peer alive: when the last is dropped the peer ends
/// with [`DisconnectReason::LocalDropped`]. The `&Peer` a [`Handler`] is given, and its clones, do
/// not (a handler that stores them cannot keep its own peer alive); see [`WeakPeer`].
#[derive(Clone)]
pub struct Peer {
    shared: Arc<Shared>,
    /// `None` for the peer's own view of itself (its tasks, its handler's `&Peer`). Never read:
    /// it is held for its drop.
    #[allow(dead_code)]
    owner: Option<Arc<Owner>>,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Peer({} {} {})", self.shared.id, self.shared.addr, self.shared.direction.as_str())
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.shared.addr, self.shared.direction.as_str())
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Peer {
    fn create(config: PeerConfig, direction: Direction, addr: PeerAddr, sink: Sink) -> Peer {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!("peer", id, addr = %addr, dir = %direction.as_str());
        let core = core_config::new_core(&config, direction, &addr);
        let owner = Arc::new_cyclic(|owner| Owner {
            shared: Arc::new(Shared {
                id,
                direction,
                addr,
                config,
                sink,
                state: Mutex::new(ConnState {
                    assoc: Assoc::Waiting,
                    core,
                    requests: request::InFlight::default(),
                    extensions: extras::Extensions::default(),
                    local_addr: None,
                    connected_at: None,
                    handshake_at: None,
                    last_block_height: 0,
                    last_send: None,
                    last_recv: None,
                    heard: false,
                    handshake: HandshakeState::Pending,
                    finalizing: false,
                    done: false,
                }),
                wake: Notify::new(),
                progress: Arc::new(ProgressCell::default()),
                stopping: AtomicBool::new(false),
                changed: Notify::new(),
                span,
                owner: owner.clone(),
            }),
        });
        Peer { shared: owner.shared.clone(), owner: Some(owner) }
    }

    /// The peer's view of itself: its state without a share of the application's ownership.
    pub(crate) fn view(shared: Arc<Shared>) -> Peer {
        Peer { shared, owner: None }
    }

    /// A reference to this peer that does not keep it alive; see [`WeakPeer`].
    pub fn downgrade(&self) -> WeakPeer {
        WeakPeer { shared: Arc::downgrade(&self.shared), id: self.shared.id }
    }

    /// An outbound peer to `remote` (a socket address, or a host or `.onion` name when the stream
    /// comes through a proxy), not yet connected: give it its stream with [`Peer::associate`].
    pub fn outbound(config: PeerConfig, remote: impl Into<PeerAddr>, handler: impl Handler) -> Peer {
        Peer::create(config, Direction::Outbound, remote.into(), Sink::Handler(Arc::new(handler)))
    }

    /// An inbound peer from `remote`, not yet connected: give it its stream with
    /// [`Peer::associate`].
    ///
    /// One handler for every peer of a node is an `Arc` of it (an `Arc<H>` is a handler):
    ///
    /// ```
    /// use std::sync::Arc;
    /// use btcpeer::network::Network;
    /// use btcpeer::peer::{Handler, Peer, PeerConfig};
    ///
    /// struct Node;
    /// impl Handler for Node {}
    ///
    /// let config = PeerConfig::builder(Network::REGTEST).build().unwrap();
    /// let node = Arc::new(Node);
    /// let a = Peer::inbound(config.clone(), "127.0.0.1:40001", node.clone());
    /// let b = Peer::inbound(config, "127.0.0.1:40002", node.clone());
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn inbound(config: PeerConfig, remote: impl Into<PeerAddr>, handler: impl Handler) -> Peer {
        Peer::create(config, Direction::Inbound, remote.into(), Sink::Handler(Arc::new(handler)))
    }

    /// A peer that delivers [`PeerEvent`]s on a bounded channel instead of calling a handler
    ///. When the channel is full the peer stops reading until there is room.
    pub fn with_channel(
        config: PeerConfig,
        direction: Direction,
        remote: impl Into<PeerAddr>,
        capacity: usize,
    ) -> (Peer, mpsc::Receiver<PeerEvent>) {
        let (sink, rx) = Sink::channel(capacity);
        (Peer::create(config, direction, remote.into(), sink), rx)
    }

    /// Gives the peer its connected stream and starts it (on the current tokio runtime).
    ///
    /// Associating a second stream is a no-op that hands the stream back; associating after a
    /// disconnect closes the new stream.
    ///
    /// **Set `TCP_NODELAY` on a TCP stream first** (`stream.set_nodelay(true)`, as
    /// [`Peer::connect`] does). The peer writes each small message (a ping, a pong, an inv) as soon
    /// as it is queued; with Nagle's algorithm on, the kernel holds such a write back until the
    /// previous one is acknowledged, and the remote delays that ACK (up to 40 ms on Linux): a user
    /// measured 42 ms pings against btcd on loopback that way, instead of well under a millisecond.
    ///
    /// ```no_run
    /// # async fn f(peer: btcpeer::peer::Peer) -> Result<(), Box<dyn std::error::Error>> {
    /// let stream = tokio::net::TcpStream::connect("127.0.0.1:8333").await?;
    /// stream.set_nodelay(true)?;
    /// peer.associate(stream).map_err(|e| e.to_string())?;
    /// # Ok(()) }
    /// ```
    pub fn associate<S>(&self, stream: S) -> Result<(), AssociateError<S>>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        self.associate_inner(stream, None)
    }

    /// Like [`Peer::associate`], recording our side's address for the statistics.
    pub fn associate_with_local<S>(&self, stream: S, local: SocketAddr) -> Result<(), AssociateError<S>>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        self.associate_inner(stream, Some(local))
    }

    fn associate_inner<S>(&self, stream: S, local: Option<SocketAddr>) -> Result<(), AssociateError<S>>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        {
            let mut st = self.lock();
            match st.assoc {
                Assoc::Running => return Err(AssociateError::AlreadyAssociated(stream)),
                Assoc::Ended => {
                    let reason = st.reason();
                    drop(st);
                    drop(stream);
                    return Err(AssociateError::Disconnected(reason));
                }
                Assoc::Waiting => {
                    st.assoc = Assoc::Running;
                    st.connected_at = Some(SystemTime::now());
                    st.local_addr = local;
                }
            }
        }
        driver::spawn(Peer::view(self.shared.clone()), stream);
        Ok(())
    }

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
        self.lock().heard
    }

    /// The peer's id: unique in the process, counting from 1.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The remote's address.
    pub fn addr(&self) -> &PeerAddr {
        &self.shared.addr
    }

    /// Inbound or outbound.
    pub fn direction(&self) -> Direction {
        self.shared.direction
    }

    /// The configuration.
    pub fn config(&self) -> &PeerConfig {
        &self.shared.config
    }

    /// Whether a stream is associated and the peer has not ended.
    pub fn is_connected(&self) -> bool {
        self.lock().assoc == Assoc::Running && !self.is_stopping()
    }

    /// The remote's version details, once the handshake has completed.
    pub fn remote(&self) -> Option<RemoteInfo> {
        if !self.handshake_complete() {
            return None;
        }
        self.lock().core.remote().cloned()
    }

    /// Whether the handshake has completed.
    pub fn handshake_complete(&self) -> bool {
        matches!(&self.lock().handshake, HandshakeState::Done)
    }

    /// The negotiated protocol version (our own before the handshake).
    pub fn negotiated_version(&self) -> u32 {
        self.lock().core.remote().map_or(self.shared.config.inner.protocol_version, |r| r.negotiated_version)
    }

    /// Whether the remote asked for block announcements by `headers` (BIP130).
    pub fn wants_headers(&self) -> bool {
        self.lock().core.preferences().wants_headers
    }

    /// Whether the remote asked for `addrv2` (BIP155).
    pub fn wants_addrv2(&self) -> bool {
        self.lock().core.remote().is_some_and(|r| r.wants_addrv2)
    }

    /// Whether transactions are announced by wtxid with this remote (BIP339).
    pub fn wtxid_relay(&self) -> bool {
        self.lock().core.remote().is_some_and(|r| r.wtxid_relay)
    }

    /// The remote's compact-block preference (BIP152).
    pub fn compact_blocks(&self) -> Option<SendCmpct> {
        self.lock().core.preferences().compact_blocks
    }

    /// The remote's fee filter (BIP133) as a fee rate, rounded down to a whole sat/kwu: do not
    /// announce transactions paying less.
    pub fn fee_filter(&self) -> Option<bitcoin::FeeRate> {
        // sat/kvB to sat/kwu (a vbyte is four weight units), rounded down.
        self.fee_filter_sat_per_kvb().map(|r| bitcoin::FeeRate::from_sat_per_kwu(u64::try_from(r / 4).unwrap_or(0)))
    }

    /// The remote's `feefilter` exactly as sent, in satoshis per 1,000 virtual bytes.
    pub fn fee_filter_sat_per_kvb(&self) -> Option<i64> {
        self.lock().core.preferences().fee_filter
    }

    /// The remote's latest known height.
    pub fn last_block_height(&self) -> i32 {
        self.lock().last_block_height
    }

    /// Raises the remote's latest known height; a lower height is ignored.
    pub fn update_last_block_height(&self, height: i32) {
        let mut st = self.lock();
        if height > st.last_block_height {
            st.last_block_height = height;
        }
    }

    /// Queues `message` without waiting. The returned [`Completion`] resolves once the bytes
    /// were written, or with the reason they never will be. Messages are written in the order they
    /// were queued; before the handshake completes they wait for it. Blocks and transactions go to
    /// a remote that does not signal `NODE_WITNESS` without their witnesses (as btcd and Core
    /// serialize them for such a peer).
    pub fn queue_message(&self, message: &Message) -> Result<Completion, QueueError> {
        self.queue_with(|core| core.queue_message(message))
    }

    /// Queues `message`, waiting while the outbound queue is full.
    pub async fn send(&self, message: &Message) -> Result<Completion, QueueError> {
        self.wait_for_room(|| self.queue_message(message)).await
    }

    /// Queues an already-encoded payload under `command` (for messages btcpeer does not know, or
    /// payloads encoded once and sent to many peers).
    pub fn queue_raw(&self, command: Command, payload: Bytes) -> Result<Completion, QueueError> {
        self.queue_with(|core| core.queue_raw(command, payload, None))
    }

    /// Queues a message encoded once for many peers ([`Prepared`](crate::wire::frame::Prepared)):
    /// no encoding, and on v1 no checksum, is done per peer.
    pub fn queue_prepared(&self, message: &crate::wire::frame::Prepared) -> Result<Completion, QueueError> {
        self.queue_with(|core| core.queue_raw(message.command(), message.payload().clone(), Some(message.checksum())))
    }

    /// Like [`Peer::queue_prepared`], waiting while the outbound queue is full.
    pub async fn send_prepared(&self, message: &crate::wire::frame::Prepared) -> Result<Completion, QueueError> {
        self.wait_for_room(|| self.queue_prepared(message)).await
    }

    /// Queues through the core (one lock), then wakes the writer: the completion follows the
    /// core's progress.
    pub(crate) fn queue_with(
        &self,
        push: impl FnOnce(&mut PeerCore) -> Result<u64, QueueError>,
    ) -> Result<Completion, QueueError> {
        let seq = push(&mut self.lock().core)?;
        self.shared.wake.notify_one();
        Ok(Completion::new(seq, self.shared.progress.clone()))
    }

    /// Tries `push` until it finds room (or fails for another reason).
    async fn wait_for_room(&self, push: impl Fn() -> Result<Completion, QueueError>) -> Result<Completion, QueueError> {
        loop {
            let notified = self.shared.progress.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            match push() {
                Err(QueueError::Full { .. }) => notified.await,
                other => return other,
            }
        }
    }

    /// A consistent copy of the peer's statistics.
    pub fn stats(&self) -> PeerStats {
        let mut st = self.lock();
        let reason = if st.done { Some(st.reason()) } else { None };
        stats::snapshot(self, &mut st, reason)
    }

    fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the core under the peer's lock.
    pub(crate) fn with_core<T>(&self, f: impl FnOnce(&mut PeerCore) -> T) -> T {
        f(&mut self.lock().core)
    }

    pub(crate) fn handler(&self) -> Option<&dyn Handler> {
        self.shared.sink.handler()
    }
}
