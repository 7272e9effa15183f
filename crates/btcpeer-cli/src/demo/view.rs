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

pub(super) use crate::text::{bytes, fit, rtt_text};

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

/// The view: prints events and draws the table. On a terminal the table, with the latest events
/// under it, is one multi-line `indicatif` message redrawn in place ten times a second (`indicatif`
/// also counts the lines a redraw must go back over); its lines are cut to the terminal's width so
/// that none wraps. No colour is used, so there is nothing for `NO_COLOR` to turn off; when stdout
/// is not a terminal nothing is redrawn and only plain lines are printed.
pub(super) struct View {
    pub(super) mode: Mode,
    pub(super) shared: Arc<DemoShared>,
    pub(super) title: String,
    pub(super) started: Instant,
    pub(super) log: VecDeque<String>,
    /// The live view (`Mode::Live` only).
    pub(super) live: Option<ProgressBar>,
}

impl View {
    pub(super) fn new(mode: Mode, shared: Arc<DemoShared>, title: String, started: Instant) -> View {
        let live = (mode == Mode::Live).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout_with_hz(10));
            // A fixed, valid template; the default would also show the message.
            bar.set_style(ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
            bar
        });
        View { mode, shared, title, started, log: VecDeque::new(), live }
    }

    pub(super) fn print(&self, text: &str) {
        print_line(text);
    }

    pub(super) fn event(&mut self, e: &DemoEvent) {
        match self.mode {
            Mode::Json => self.print(&json_line(e)),
            Mode::Plain if e.is_line() => self.print(&e.to_string()),
            Mode::Live if e.is_line() => {
                if self.log.len() >= LOG_LINES {
                    self.log.pop_front();
                }
                self.log.push_back(e.to_string());
            }
            Mode::Plain | Mode::Live => {}
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
        let Some(live) = &self.live else { return };
        let mut lines = self.table();
        if !self.log.is_empty() {
            lines.push(String::new());
            lines.extend(self.log.iter().cloned());
        }
        let width = usize::from(console::Term::stdout().size().1).max(1);
        let frame: Vec<String> = lines.iter().map(|l| fit(l, width)).collect();
        live.set_message(frame.join("\n"));
    }

    /// The last drawing: the live view one final time, left on the screen, or the table.
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
                if let Some(live) = self.live.take() {
                    live.finish();
                }
            }
        }
    }
}
