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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2Message;
use btcpeer_core::addrbook::{AddrBook, Endpoint, NetKind, V2Support, is_routable};
use tokio::task::JoinSet;

use crate::peer::{ConnectError, DisconnectReason, NoopHandler, Peer, PeerConfig, Transport, V2Policy};
use crate::wire::FrameError;

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
    /// The handshake failed (a refusal, an obsolete version, missing services …).
    Handshake(DisconnectReason),
    /// The node is on another network: its frames carry another magic, or it closed on our version
    /// without a byte, as Core and btcd do on a foreign magic.
    WrongNetwork(DisconnectReason),
}

/// One node's result.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeReport {
    /// The address crawled (an IP, or a `.onion` / `.b32.i2p` name dialed through the proxy).
    pub addr: Endpoint,
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
    /// Distinct addresses queued to be crawled (seeds included; at most `max_nodes`).
    pub discovered: usize,
    /// Addresses learnt that were not crawled: local ones (without `allow_local`), names without a
    /// proxy, kinds nobody can dial, or past `max_nodes`.
    pub skipped: usize,
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

    /// Crawls from `seeds` (socket addresses, or book peers such as `.onion` names); `on_node`
    /// sees each result as it comes, each address once.
    pub async fn run<S: Into<Endpoint>>(
        &self,
        seeds: impl IntoIterator<Item = S>,
        book: &mut AddrBook,
        mut on_node: impl FnMut(&NodeReport),
    ) -> CrawlSummary {
        self.run_with_progress(seeds, book, |node, _| on_node(node)).await
    }

    /// [`run`](Crawler::run), with the totals so far beside each result (for a progress display).
    ///
    /// Memory is bounded whatever the network gossips: at most `max_nodes` addresses are ever
    /// queued or remembered as seen, each node's answer is at most 1,000 addresses, and what is
    /// learnt beyond that goes only into the (bounded) book.
    pub async fn run_with_progress<S: Into<Endpoint>>(
        &self,
        seeds: impl IntoIterator<Item = S>,
        book: &mut AddrBook,
        mut on_node: impl FnMut(&NodeReport, &CrawlSummary),
    ) -> CrawlSummary {
        let mut summary = CrawlSummary::default();
        let mut seen: HashSet<Endpoint> = HashSet::new();
        let mut queue: VecDeque<Endpoint> = VecDeque::new();
        for s in seeds {
            let s = s.into();
            if seen.len() < self.max_nodes && seen.insert(s.clone()) {
                queue.push_back(s);
            }
        }
        summary.discovered = seen.len();
        // The seeds go into the book as their own source, as Core's fixed seeds do.
        let now = unix_now();
        for s in &queue {
            let entry =
                AddrV2Message { time: now as u32, services: ServiceFlags::NONE, addr: s.addr.clone(), port: s.port };
            book.add(&[entry], s, now);
        }
        let mut tasks = JoinSet::new();
        loop {
            while tasks.len() < self.concurrency && summary.tried < self.max_nodes {
                let Some(peer) = queue.pop_front() else { break };
                summary.tried = summary.tried.saturating_add(1);
                let config = self.dial_config(book, &peer);
                book.attempt(&peer, unix_now());
                tasks.spawn(crawl_one(peer, config, self.timeout));
            }
            let Some(done) = tasks.join_next().await else { break };
            let Ok((report, learnt)) = done else { continue };
            let now = unix_now();
            let source = report.addr.clone();
            match &report.result {
                Ok(info) => {
                    summary.reachable = summary.reachable.saturating_add(1);
                    book.good(&source, now);
                    // A v1 connection under a policy that tried v2 first means v2 failed here.
                    let v2 = match info.transport {
                        Transport::V2 => Some(true),
                        _ if self.config.v2_policy() != V2Policy::Never => Some(false),
                        _ => None,
                    };
                    book.connected(&source, info.services, v2, now);
                }
                Err(_) => summary.failed = summary.failed.saturating_add(1),
            }
            book.add(&learnt, &source, now);
            for a in &learnt {
                let endpoint = Endpoint::new(a.addr.clone(), a.port);
                if !self.dialable(&endpoint) || seen.len() >= self.max_nodes {
                    if !seen.contains(&endpoint) {
                        summary.skipped = summary.skipped.saturating_add(1);
                    }
                    continue;
                }
                if seen.insert(endpoint.clone()) {
                    queue.push_back(endpoint);
                }
            }
            summary.discovered = seen.len();
            on_node(&report, &summary);
        }
        summary
    }

    /// Whether `endpoint` can be dialed: an IP (routable, or local when allowed), or a Tor v3 / I2P
    /// name with a proxy to reach it through.
    fn dialable(&self, endpoint: &Endpoint) -> bool {
        match NetKind::of(&endpoint.addr) {
            Some(NetKind::Onion | NetKind::I2p) => self.config.proxy().is_some(),
            Some(_) => self.allow_local || is_routable(&endpoint.addr),
            None => false,
        }
    }

    /// The configuration to dial `endpoint` with. Under [`V2Policy::Prefer`] (the CLI's `auto`), v2
    /// first, except where the book remembers a failed v2 attempt: straight to v1 then, with no
    /// wasted reconnect. `Never` and `Require` are the caller's and kept.
    fn dial_config(&self, book: &AddrBook, endpoint: &Endpoint) -> PeerConfig {
        let known = book.info(endpoint).map(|i| i.v2).unwrap_or_default();
        match (known, self.config.v2_policy()) {
            (V2Support::Failed, V2Policy::Prefer) => self.config.with_v2(V2Policy::Never),
            _ => self.config.clone(),
        }
    }
}

/// One node: dial, handshake, a ping, its addresses, all within `timeout`.
async fn crawl_one(addr: Endpoint, config: PeerConfig, timeout: Duration) -> (NodeReport, Vec<AddrV2Message>) {
    let target = addr.to_string();
    let work = async {
        let (peer, remote) = match Peer::connect(&target, config, NoopHandler).await {
            Ok(c) => c,
            Err(ConnectError::Handshake { reason, hint }) => {
                let foreign = matches!(reason, DisconnectReason::Frame(FrameError::WrongMagic { .. }))
                    || hint.is_some_and(|h| h.contains("on this network"));
                return Err(if foreign { CrawlFailure::WrongNetwork(reason) } else { CrawlFailure::Handshake(reason) });
            }
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
