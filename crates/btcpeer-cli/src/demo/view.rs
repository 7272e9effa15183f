//! How the demo shows itself: readable numbers, the live table, event lines and the summary.

use super::*;

/// `1234567` → `1,234,567`.
pub(super) fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len().saturating_add(digits.len() / 3));
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len().saturating_sub(i)) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes with a binary unit: `812 B`, `4.3 KiB`, `1.2 MiB`.
pub(super) fn bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if n < 1024 {
        format!("{n} B")
    } else if f < KIB * KIB {
        format!("{:.1} KiB", f / KIB)
    } else {
        format!("{:.1} MiB", f / (KIB * KIB))
    }
}

/// A round trip: `98 µs`, `1.24 ms`, `-`.
pub(super) fn rtt_text(us: Option<u64>) -> String {
    match us {
        None => "-".to_string(),
        Some(us) if us < 1_000 => format!("{us} µs"),
        Some(us) => format!("{:.2} ms", us as f64 / 1_000.0),
    }
}

/// `text` cut to `width` characters, with an ellipsis when cut.
pub(super) fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

pub(super) use crate::report::text;

pub(super) fn count(v: &Value) -> String {
    v.as_u64().map_or_else(|| text(v), group)
}

/// `n` and `word`, with an `s` unless `n` is 1: `1 transaction`, `3 transactions`.
pub(super) fn plural(v: &Value, word: &str) -> String {
    let n = count(v);
    if n == "1" { format!("1 {word}") } else { format!("{n} {word}s") }
}

/// One event as a readable line; `None` for events the table shows better.
pub(super) fn human(e: &Value) -> Option<String> {
    let peer = text(&e["peer"]);
    let line = match e["event"].as_str().unwrap_or("") {
        "start" => format!(
            "node listening on {} ({}), a chain of {} blocks; {} outbound peers, transport {}",
            text(&e["listen"]),
            text(&e["network"]),
            count(&e["blocks"]),
            text(&e["peers"]),
            text(&e["transport"]),
        ),
        "handshake" if e["direction"] == "inbound" => {
            format!("[node] handshake with peer {peer} in {}: {}", text(&e["transport"]), text(&e["user_agent"]),)
        }
        "handshake" => format!(
            "[peer {peer}] handshake in {}: {} version {}, height {}",
            text(&e["transport"]),
            text(&e["user_agent"]),
            text(&e["version"]),
            count(&e["start_height"]),
        ),
        "pong" => format!("[peer {peer}] pong {}: {}", text(&e["seq"]), rtt_text(e["rtt_us"].as_u64())),
        "announce" => format!("[peer {peer}] announced {}", plural(&e["count"], "transaction")),
        "relay" => format!(
            "[node] relayed {} from peer {peer} ({} not repeated: already known)",
            plural(&e["relayed"], "announcement"),
            text(&e["suppressed"]),
        ),
        "inv" => format!("[peer {peer}] inv: {} relayed by the node", plural(&e["count"], "announcement")),
        "addr" => {
            let networks: Vec<String> =
                e["networks"].as_array().map(|a| a.iter().map(text).collect()).unwrap_or_default();
            let addresses = plural(&e["count"], "address").replace("addresss", "addresses");
            format!("[peer {peer}] {}: {addresses} ({})", text(&e["command"]), networks.join(", "))
        }
        "headers" => format!(
            "[peer {peer}] headers: {} in {}, tip {}",
            count(&e["count"]),
            plural(&e["batches"], "batch").replace("batchs", "batches"),
            fit(&text(&e["tip"]), 20),
        ),
        "block" => format!(
            "[peer {peer}] block {} {}: {} tx, {}, merkle root ok",
            count(&e["height"]),
            fit(&text(&e["hash"]), 20),
            text(&e["txs"]),
            e["size"].as_u64().map_or_else(|| "-".to_string(), bytes),
        ),
        _ => return None,
    };
    Some(line)
}

/// How the demo shows itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// `--json`: one event per line.
    Json,
    /// Not a terminal: one plain line per event, the table once at the end.
    Plain,
    /// A terminal: the table redrawn in place, the latest events under it.
    Live,
}

/// The view: prints events and draws the table.
pub(super) struct View {
    pub(super) mode: Mode,
    pub(super) shared: Arc<Shared>,
    pub(super) title: String,
    pub(super) started: Instant,
    pub(super) log: VecDeque<String>,
    pub(super) drawn: usize,
}

impl View {
    pub(super) fn print(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        // A closed stdout (a reader that went away) is not worth dying for.
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    pub(super) fn event(&mut self, e: &Value) {
        match self.mode {
            Mode::Json => self.print(&e.to_string()),
            Mode::Plain => {
                if let Some(line) = human(e) {
                    self.print(&line);
                }
            }
            Mode::Live => {
                if let Some(line) = human(e) {
                    if self.log.len() >= LOG_LINES {
                        self.log.pop_front();
                    }
                    self.log.push_back(line);
                }
            }
        }
    }

    /// The table's lines: a title, a header, a row per peer (each outbound peer followed by the
    /// node's side of the same connection), and a line of totals.
    pub(super) fn table(&self) -> Vec<String> {
        let rows = lock(&self.shared.rows).clone();
        let served = lock(&self.shared.served).clone();
        let stats: Vec<_> = rows.iter().map(|(p, role)| (p.stats(), role.clone(), p.handshake_complete())).collect();
        // Pair each outbound peer with the node's inbound peer whose remote is its local address.
        let mut order: Vec<usize> = Vec::with_capacity(stats.len());
        for (i, (s, role, _)) in stats.iter().enumerate() {
            if !matches!(role, Role::Client(_)) {
                continue;
            }
            order.push(i);
            if let Some(local) = s.local_addr {
                if let Some(mate) = stats
                    .iter()
                    .position(|(t, r, _)| matches!(r, Role::Node) && t.addr == btcpeer::peer::PeerAddr::Socket(local))
                {
                    order.push(mate);
                }
            }
        }
        for i in 0..stats.len() {
            if !order.contains(&i) {
                order.push(i);
            }
        }

        let mut lines = Vec::with_capacity(order.len().saturating_add(4));
        lines.push(format!("btcpeer demo · {} · {:.1} s", self.title, self.started.elapsed().as_secs_f64()));
        lines.push(format!(
            "{:>4}  {:<4} {:<2} {:>7}  {:<UA_WIDTH$} {:>8}  {:>9} {:>5}  {:>9} {:>5}  {}",
            "peer", "dir", "tr", "version", "user agent", "rtt", "sent", "msgs", "received", "msgs", "step"
        ));
        for i in order {
            let Some((s, role, shook)) = stats.get(i) else { continue };
            let (dir, step) = match role {
                Role::Client(progress) => ("out", lock(&progress.step).clone()),
                Role::Node => {
                    let sv = served.get(&s.id).copied().unwrap_or_default();
                    let state = if s.disconnect_reason.is_some() { "closed" } else { "node" };
                    ("in", format!("{state}: {} hdrs, {} blk, {} inv", sv.headers, sv.blocks, sv.relayed))
                }
            };
            let (tr, version, ua) = if *shook {
                (s.transport.as_str(), s.version.to_string(), fit(&s.user_agent, UA_WIDTH))
            } else {
                ("-", "-".to_string(), "-".to_string())
            };
            lines.push(format!(
                "{:>4}  {:<4} {:<2} {:>7}  {:<UA_WIDTH$} {:>8}  {:>9} {:>5}  {:>9} {:>5}  {}",
                s.id,
                dir,
                tr,
                version,
                ua,
                rtt_text(s.last_ping_rtt.map(micros)),
                bytes(s.bytes_sent),
                group(s.messages_sent),
                bytes(s.bytes_received),
                group(s.messages_received),
                step,
            ));
        }
        let t = &self.shared.tally;
        lines.push(format!(
            "relayed {} · pongs {} · addresses {} · headers {} · blocks {}",
            group(Tally::get(&t.inv_received)),
            group(Tally::get(&t.pings)),
            group(Tally::get(&t.addrs)),
            group(Tally::get(&t.headers)),
            group(Tally::get(&t.blocks)),
        ));
        lines
    }

    /// Redraws the live view in place.
    pub(super) fn redraw(&mut self) {
        if self.mode != Mode::Live {
            return;
        }
        let mut lines = self.table();
        if !self.log.is_empty() {
            lines.push(String::new());
            lines.extend(self.log.iter().cloned());
        }
        let mut frame = String::new();
        if self.drawn > 0 {
            // To the first column of the first line drawn last time.
            let _ = write!(frame, "\x1b[{}F", self.drawn);
        } else {
            // Lines longer than the terminal are cut, not wrapped, so that the redraw stays in place.
            frame.push_str("\x1b[?7l");
        }
        for line in &lines {
            let _ = writeln!(frame, "\x1b[2K{line}");
        }
        // Whatever the last frame had below this one.
        frame.push_str("\x1b[J");
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(frame.as_bytes());
        let _ = out.flush();
        self.drawn = lines.len();
    }

    /// The last drawing: the live view one final time (line wrapping back on), or the table.
    pub(super) fn finish(&mut self) {
        match self.mode {
            Mode::Json => {}
            Mode::Plain => {
                self.print("");
                for line in self.table() {
                    self.print(&line);
                }
            }
            Mode::Live => {
                self.redraw();
                // Line wrapping back on.
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(b"\x1b[?7h");
                let _ = out.flush();
            }
        }
    }
}

/// The summary's numbers.
pub(super) fn summary(shared: &Shared, peers: usize, elapsed: Duration, failure: Option<&str>) -> Value {
    let t = &shared.tally;
    let min = Tally::get(&t.min_rtt_us);
    json!({
        "event": "summary",
        "peers": peers,
        "handshakes_v1": Tally::get(&t.handshakes_v1),
        "handshakes_v2": Tally::get(&t.handshakes_v2),
        "announced": Tally::get(&t.announced),
        "inv_relayed": Tally::get(&t.inv_received),
        "inv_suppressed": Tally::get(&t.suppressed),
        "pings": Tally::get(&t.pings),
        "min_rtt_us": if min == 0 { Value::Null } else { json!(min) },
        "max_rtt_us": if Tally::get(&t.pings) == 0 { Value::Null } else { json!(Tally::get(&t.max_rtt_us)) },
        "addrs": Tally::get(&t.addrs),
        "headers": Tally::get(&t.headers),
        "blocks": Tally::get(&t.blocks),
        "elapsed_ms": u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        "ok": failure.is_none(),
        "failure": failure,
    })
}

/// The summary as readable lines.
pub(super) fn summary_lines(s: &Value) -> Vec<String> {
    let n = |k: &str| count(&s[k]);
    let rtt = |k: &str| rtt_text(s[k].as_u64());
    vec![
        String::new(),
        "summary".to_string(),
        format!("  handshakes   {} (v1 {}, v2 {})", n("peers"), n("handshakes_v1"), n("handshakes_v2")),
        format!(
            "  relay        {} announced, {} relayed through the node, {} not echoed (already known)",
            n("announced"),
            n("inv_relayed"),
            n("inv_suppressed"),
        ),
        format!("  pings        {} pongs, round trip {} … {}", n("pings"), rtt("min_rtt_us"), rtt("max_rtt_us")),
        format!("  addresses    {} received", n("addrs")),
        format!("  headers      {} received", n("headers")),
        format!("  blocks       {} received, merkle roots checked", n("blocks")),
        {
            let elapsed = s["elapsed_ms"].as_u64().unwrap_or(0) as f64 / 1_000.0;
            if s["ok"] == true {
                format!("  result       ok in {elapsed:.1} s")
            } else {
                format!("  result       FAILED after {elapsed:.1} s: {}", text(&s["failure"]))
            }
        },
    ]
}
