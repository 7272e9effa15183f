//! A crawler: breadth-first over the network from seeds, a handshake with each address learnt
//! (`get_addr` teaches more), with bounded concurrency and a deadline per node. What it learns goes
//! into an [`AddrBook`]: successes as `good`, failures as attempts, gossip with its source.
//!
//! ```no_run
//! use btcpeer::crawl::Crawler;
//! use btcpeer::core::addrbook::AddrBook;
//! use btcpeer::network::Network;
//! use btcpeer::peer::PeerConfig;
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let config = PeerConfig::builder(Network::MAINNET).build()?;
//! let mut book = AddrBook::new([7; 32], 1);
//! let seeds = ["203.0.113.5:8333".parse()?];
//! let summary = Crawler::new(config).concurrency(64).run(&seeds, &mut book, |node| println!("{node:?}")).await;
//! println!("{} reachable of {} tried", summary.reachable, summary.tried);
//! # Ok(()) }
//! ```

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::{AddrV2, AddrV2Message};
use btcpeer_core::addrbook::{AddrBook, Peer as BookPeer, is_routable};
use tokio::task::JoinSet;

use crate::peer::{ConnectError, DisconnectReason, NoopHandler, Peer, PeerConfig, Transport};

/// What a reachable node said about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeInfo {
    /// Its protocol version.
    pub version: u32,
    /// Its services.
    pub services: ServiceFlags,
    /// Its user agent.
    pub user_agent: String,
    /// Its best height.
    pub start_height: i32,
    /// Its relay flag.
    pub relay: bool,
    /// The transport used.
    pub transport: Transport,
    /// One ping's round trip.
    pub rtt: Option<Duration>,
    /// Addresses it gave.
    pub addresses: usize,
}

/// Why a node could not be crawled.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrawlFailure {
    /// The connection was refused or failed.
    Unreachable(String),
    /// No handshake within the deadline.
    Timeout,
    /// The handshake failed (a wrong network, a refusal …).
    Handshake(DisconnectReason),
}

/// One node's result.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeReport {
    /// The address crawled.
    pub addr: SocketAddr,
    /// What it said, or why it failed.
    pub result: Result<NodeInfo, CrawlFailure>,
}

/// The crawl's totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CrawlSummary {
    /// Addresses tried.
    pub tried: usize,
    /// Nodes that completed a handshake.
    pub reachable: usize,
    /// Addresses that failed.
    pub failed: usize,
    /// Distinct addresses learnt (seeds included).
    pub discovered: usize,
}

/// A crawl's settings: see the [module](self).
#[derive(Clone, Debug)]
pub struct Crawler {
    config: PeerConfig,
    concurrency: usize,
    max_nodes: usize,
    timeout: Duration,
    allow_local: bool,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn book_peer(addr: SocketAddr) -> BookPeer {
    let a = match addr.ip() {
        IpAddr::V4(ip) => AddrV2::Ipv4(ip),
        IpAddr::V6(ip) => AddrV2::Ipv6(ip),
    };
    BookPeer::new(a, addr.port())
}

impl Crawler {
    /// A crawler dialing with `config`: 64 at once, 10 s per node, at most 100,000 nodes, local
    /// addresses skipped.
    pub fn new(config: PeerConfig) -> Self {
        Crawler { config, concurrency: 64, max_nodes: 100_000, timeout: Duration::from_secs(10), allow_local: false }
    }

    /// Connections at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Nodes tried at most.
    pub fn max_nodes(mut self, n: usize) -> Self {
        self.max_nodes = n;
        self
    }

    /// The deadline of one node (dial, handshake, ping, addresses).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Crawls loopback and private addresses learnt from gossip too (test networks).
    pub fn allow_local(mut self, allow: bool) -> Self {
        self.allow_local = allow;
        self
    }

    /// Crawls from `seeds`; `on_node` sees each result as it comes, each address once.
    pub async fn run(
        &self,
        seeds: &[SocketAddr],
        book: &mut AddrBook,
        mut on_node: impl FnMut(&NodeReport),
    ) -> CrawlSummary {
        let mut summary = CrawlSummary::default();
        let mut seen: HashSet<SocketAddr> = HashSet::new();
        let mut queue: VecDeque<SocketAddr> = VecDeque::new();
        for s in seeds {
            if seen.insert(*s) {
                queue.push_back(*s);
            }
        }
        let mut tasks = JoinSet::new();
        loop {
            while tasks.len() < self.concurrency && summary.tried < self.max_nodes {
                let Some(addr) = queue.pop_front() else { break };
                summary.tried = summary.tried.saturating_add(1);
                book.attempt(&book_peer(addr), unix_now());
                let (config, timeout) = (self.config.clone(), self.timeout);
                tasks.spawn(crawl_one(addr, config, timeout));
            }
            let Some(done) = tasks.join_next().await else { break };
            let Ok((report, learnt)) = done else { continue };
            let now = unix_now();
            let source = book_peer(report.addr);
            match &report.result {
                Ok(info) => {
                    summary.reachable = summary.reachable.saturating_add(1);
                    book.good(&source, now);
                    book.connected(&source, info.services, Some(info.transport == Transport::V2), now);
                }
                Err(_) => summary.failed = summary.failed.saturating_add(1),
            }
            book.add(&learnt, &source, now);
            for a in &learnt {
                let ip = match &a.addr {
                    AddrV2::Ipv4(ip) => IpAddr::V4(*ip),
                    AddrV2::Ipv6(ip) => IpAddr::V6(*ip),
                    _ => continue,
                };
                if !self.allow_local && !is_routable(&a.addr) {
                    continue;
                }
                let addr = SocketAddr::new(ip, a.port);
                if seen.insert(addr) {
                    queue.push_back(addr);
                }
            }
            on_node(&report);
        }
        summary.discovered = seen.len();
        summary
    }
}

/// One node: dial, handshake, a ping, its addresses, all within `timeout`.
async fn crawl_one(addr: SocketAddr, config: PeerConfig, timeout: Duration) -> (NodeReport, Vec<AddrV2Message>) {
    let work = async {
        let (peer, remote) = match Peer::connect(&addr.to_string(), config, NoopHandler).await {
            Ok(c) => c,
            Err(ConnectError::Handshake { reason, .. }) => return Err(CrawlFailure::Handshake(reason)),
            Err(ConnectError::Timeout(_)) => return Err(CrawlFailure::Timeout),
            Err(e) => return Err(CrawlFailure::Unreachable(e.to_string())),
        };
        let rtt = peer.requests().timeout(timeout).ping().await.ok();
        let addrs = peer
            .requests()
            .timeout(timeout)
            .addr_quiet(Duration::from_millis(300))
            .get_addr()
            .await
            .unwrap_or_default();
        peer.disconnect();
        let info = NodeInfo {
            version: remote.version.version,
            services: remote.version.services,
            user_agent: remote.version.user_agent.clone(),
            start_height: remote.version.start_height,
            relay: remote.version.relay,
            transport: remote.transport,
            rtt,
            addresses: addrs.len(),
        };
        Ok((info, addrs))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok((info, addrs))) => (NodeReport { addr, result: Ok(info) }, addrs),
        Ok(Err(f)) => (NodeReport { addr, result: Err(f) }, Vec::new()),
        Err(_) => (NodeReport { addr, result: Err(CrawlFailure::Timeout) }, Vec::new()),
    }
}
