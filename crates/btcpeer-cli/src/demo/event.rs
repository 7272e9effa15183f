//! The demo's typed events (`DemoEvent`): their JSON form (`--json`) and their readable lines, the
//! summary's included.

use super::*;

/// The events of `btcpeer demo` (see the module docs and `EVENTS.md`).
#[derive(Serialize, Debug)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum DemoEvent {
    /// First, once.
    Start {
        listen: String,
        network: &'static str,
        peers: usize,
        transport: &'static str,
        blocks: usize,
    },
    /// A handshake completed, seen from one side.
    Handshake(DemoHandshake),
    /// An outbound peer got the pong to its ping.
    Pong {
        peer: u64,
        seq: u64,
        rtt_us: u64,
    },
    /// An outbound peer queued transaction announcements.
    Announce {
        peer: u64,
        count: u64,
    },
    /// The node received an `inv` and relayed it.
    Relay {
        peer: u64,
        count: usize,
        relayed: u64,
        suppressed: u64,
    },
    /// An outbound peer received an `inv` relayed by the node.
    Inv {
        peer: u64,
        count: u64,
    },
    /// An outbound peer received addresses.
    Addr {
        peer: u64,
        count: u64,
        command: &'static str,
        networks: Vec<&'static str>,
    },
    /// An outbound peer has every header (no rate: the pace between steps would make it meaningless).
    Headers(HeadersDone),
    /// An outbound peer received and checked its block.
    Block {
        peer: u64,
        hash: String,
        height: usize,
        txs: usize,
        size: usize,
        merkle_root_ok: bool,
    },
    Stats(Box<Stats>),
    Summary(Summary),
}

/// The demo's `handshake` event: `connect`'s, and the side it was seen from.
#[derive(Serialize, Debug)]
pub(crate) struct DemoHandshake {
    pub(super) direction: &'static str,
    #[serde(flatten)]
    pub(super) handshake: Handshake,
}

impl DemoEvent {
    /// The handshake event, with the side it was seen from.
    pub(super) fn handshake(peer: &Peer, remote: &RemoteInfo) -> DemoEvent {
        DemoEvent::Handshake(DemoHandshake {
            direction: peer.direction().as_str(),
            handshake: Handshake::new(peer, remote),
        })
    }

    /// Whether the event is shown as a line of its own (the statistics are in the table, and the
    /// summary is printed at the end).
    pub(super) fn is_line(&self) -> bool {
        !matches!(self, DemoEvent::Stats(_) | DemoEvent::Summary(_))
    }
}

/// `n` and `one` or `many`: `1 transaction`, `3 transactions`, `2,499 headers`.
fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{} {many}", group(n)) }
}

/// A height, grouped unless negative.
fn height(h: i64) -> String {
    u64::try_from(h).map_or_else(|_| h.to_string(), group)
}

impl fmt::Display for DemoEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemoEvent::Start { listen, network, peers, transport, blocks } => write!(
                f,
                "node listening on {listen} ({network}), a chain of {} blocks; {peers} outbound peers, transport \
                 {transport}",
                group(*blocks as u64),
            ),
            DemoEvent::Handshake(DemoHandshake { direction: "inbound", handshake: h }) => {
                write!(f, "[node] handshake with peer {} in {}: {}", h.peer, h.transport, h.user_agent)
            }
            DemoEvent::Handshake(DemoHandshake { handshake: h, .. }) => write!(
                f,
                "[peer {}] handshake in {}: {} version {}, height {}",
                h.peer,
                h.transport,
                h.user_agent,
                h.version,
                height(i64::from(h.start_height)),
            ),
            DemoEvent::Pong { peer, seq, rtt_us } => write!(f, "[peer {peer}] pong {seq}: {}", rtt_text(Some(*rtt_us))),
            DemoEvent::Announce { peer, count } => {
                write!(f, "[peer {peer}] announced {}", plural(*count, "transaction", "transactions"))
            }
            DemoEvent::Relay { peer, relayed, suppressed, .. } => write!(
                f,
                "[node] relayed {} from peer {peer} ({suppressed} not repeated: already known)",
                plural(*relayed, "announcement", "announcements"),
            ),
            DemoEvent::Inv { peer, count } => {
                write!(f, "[peer {peer}] inv: {} relayed by the node", plural(*count, "announcement", "announcements"))
            }
            DemoEvent::Addr { peer, count, command, networks } => write!(
                f,
                "[peer {peer}] {command}: {} ({})",
                plural(*count, "address", "addresses"),
                networks.join(", ")
            ),
            DemoEvent::Headers(HeadersDone { peer, synced: s }) => write!(
                f,
                "[peer {peer}] headers: {} in {}, tip {}",
                group(s.count),
                plural(s.batches, "batch", "batches"),
                fit(&s.tip.to_string(), 20),
            ),
            DemoEvent::Block { peer, hash, height: h, txs, size, .. } => write!(
                f,
                "[peer {peer}] block {} {}: {txs} tx, {}, merkle root ok",
                group(*h as u64),
                fit(hash, 20),
                bytes(*size as u64),
            ),
            DemoEvent::Stats(s) => s.fmt(f),
            DemoEvent::Summary(s) => s.fmt(f),
        }
    }
}

/// The `summary` event, last: the demo's counts (`Tally`), how long it took and how it ended.
#[derive(Serialize, Debug)]
pub(crate) struct Summary {
    pub(super) peers: usize,
    #[serde(flatten)]
    pub(super) tally: Arc<Tally>,
    pub(super) elapsed_ms: u64,
    pub(super) ok: bool,
    pub(super) failure: Option<String>,
}

impl Summary {
    pub(super) fn new(shared: &DemoShared, peers: usize, elapsed: Duration, failure: Option<&str>) -> Summary {
        Summary {
            peers,
            tally: shared.tally.clone(),
            elapsed_ms: millis(elapsed),
            ok: failure.is_none(),
            failure: failure.map(str::to_string),
        }
    }
}

/// The summary as readable lines, after an empty one.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.tally;
        let n = |counter: &AtomicU64| group(Tally::get(counter));
        let rtt = |counter: &AtomicU64| rtt_text(Some(Tally::get(counter)).filter(|&us| us != 0));
        writeln!(f, "\nsummary")?;
        writeln!(
            f,
            "  handshakes   {} (v1 {}, v2 {})",
            group(self.peers as u64),
            n(&t.handshakes_v1),
            n(&t.handshakes_v2)
        )?;
        writeln!(
            f,
            "  relay        {} announced, {} relayed through the node, {} not echoed (already known)",
            n(&t.announced),
            n(&t.inv_received),
            n(&t.suppressed),
        )?;
        writeln!(
            f,
            "  pings        {} pongs, round trip {} … {}",
            n(&t.pings),
            rtt(&t.min_rtt_us),
            rtt(&t.max_rtt_us)
        )?;
        writeln!(f, "  addresses    {} received", n(&t.addrs))?;
        writeln!(f, "  headers      {} received", n(&t.headers))?;
        writeln!(f, "  blocks       {} received, merkle roots checked", n(&t.blocks))?;
        let elapsed = self.elapsed_ms as f64 / 1_000.0;
        match &self.failure {
            None => write!(f, "  result       ok in {elapsed:.1} s"),
            Some(why) => write!(f, "  result       FAILED after {elapsed:.1} s: {why}"),
        }
    }
}
