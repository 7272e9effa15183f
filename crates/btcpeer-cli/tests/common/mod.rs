//! Helpers shared by the process-level tests: run `btcpeer` (or any command) with a bounded wait,
//! and drive a `btcpeer listen` process event by event.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The longest any step of a test may take.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// `btcpeer` with its output piped.
pub fn btcpeer() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_btcpeer"));
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Reads a pipe line by line on a thread.
pub fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A finished process.
pub struct Run {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// The lines on stdout.
    pub stdout: Vec<String>,
    /// Everything on stderr.
    pub stderr: String,
    /// The lines on stdout that are JSON.
    pub events: Vec<Value>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Run {
    /// The events named `event`.
    pub fn of(&self, event: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == event).collect()
    }

    /// The index of the first event named `event`.
    pub fn position(&self, event: &str) -> usize {
        self.events.iter().position(|e| e["event"] == event).unwrap_or_else(|| panic!("no {event} event: {self:?}"))
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\nstdout:\n{}\nstderr:\n{}", self.code, self.stdout.join("\n"), self.stderr)
    }
}

/// Runs `btcpeer ARGS` to completion, killing it after [`DEADLINE`].
pub fn run(args: &[&str]) -> Run {
    let mut cmd = btcpeer();
    cmd.args(args);
    run_command(cmd, &format!("btcpeer {args:?}"))
}

/// [`run_line`], asserting a clean JSON run: exit 0, nothing on stderr (no progress line when stderr is
/// not a terminal), every stdout line an event.
#[allow(dead_code)]
pub fn run_json(line: &str) -> Run {
    let r = run_line(line);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.is_empty(), "{r:?}");
    assert_eq!(r.events.len(), r.stdout.len(), "every line is JSON: {r:?}");
    r
}

/// [`run`] with the arguments written as one line, split at whitespace.
pub fn run_line(line: &str) -> Run {
    run(&line.split_whitespace().collect::<Vec<_>>())
}

/// Runs a command to completion, killing it after [`DEADLINE`].
pub fn run_command(mut cmd: Command, what: &str) -> Run {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what} does not start: {e}"));
    let out = lines_of(child.stdout.take().expect("stdout"));
    let err = lines_of(child.stderr.take().expect("stderr"));
    let code = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break status.code().unwrap_or(-1);
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    let stdout: Vec<String> = out.iter().collect();
    let stderr = err.iter().collect::<Vec<_>>().join("\n");
    let events = stdout.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    Run { code, stdout, stderr, events, elapsed }
}

/// A running `btcpeer listen 127.0.0.1:0 --network regtest --json …`, killed when dropped.
pub struct Listener {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every event read so far.
    pub events: Vec<Value>,
    /// The port it listens on.
    pub port: u16,
}

impl Listener {
    /// Starts a listener and reads its `listening` event.
    pub fn start(extra: &[&str]) -> Listener {
        let mut args = vec!["listen", "127.0.0.1:0", "--network", "regtest", "--json"];
        args.extend_from_slice(extra);
        let mut child = btcpeer().args(&args).spawn().expect("btcpeer listen starts");
        let lines = lines_of(child.stdout.take().expect("stdout"));
        let mut listener = Listener { child, lines, events: Vec::new(), port: 0 };
        let first = listener.wait_for("the listening event", |e| e["event"] == "listening");
        let addr = first["addr"].as_str().expect("addr").to_string();
        listener.port = addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("a port");
        listener
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits for an event matching `pred` (looking at those already seen first).
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(e) = self.events.iter().find(|e| pred(e)) {
            return e.clone();
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let event: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("listener printed a line that is not JSON ({e}): {line}"));
                    self.events.push(event.clone());
                    if pred(&event) {
                        return event;
                    }
                }
                Err(_) => panic!("listener: no {what} within {DEADLINE:?}; events: {:#?}", self.events),
            }
        }
    }

    /// Waits for the listener to exit on its own; returns its exit code.
    pub fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("waits") {
                // Collect what it printed last.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    if let Ok(event) = serde_json::from_str(&line) {
                        self.events.push(event);
                    }
                }
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "listener did not exit within {DEADLINE:?}");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chain servers (`btcpeer::testing`) on 127.0.0.1, one per handler, run on a thread of their own
/// until the process ends; their `HOST:PORT`s.
pub fn serve_chains(servers: Vec<(btcpeer::network::Network, btcpeer::testing::ChainServer)>) -> Vec<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        runtime.block_on(async move {
            let mut addrs = Vec::new();
            for (network, server) in servers {
                let (addr, _task) = btcpeer::testing::serve("127.0.0.1:0", network, server).await.expect("binds");
                addrs.push(addr.to_string());
            }
            tx.send(addrs).expect("the test waits");
            std::future::pending::<()>().await;
        });
    });
    rx.recv_timeout(DEADLINE).expect("the servers' addresses")
}
