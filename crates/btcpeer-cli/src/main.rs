//! The `btcpeer` command.
//!
//! Exit codes: 0 success, 1 failure (a frame that did not decode, a refused handshake …), 2 usage
//! error, 3 timeout. Errors are one line on stderr. With `--json`, every line on stdout is one JSON
//! object with an `"event"` key. Without a subcommand, `btcpeer` runs `btcpeer demo`.

mod bench;
mod bench_crypto;
mod bench_report;
mod bench_scale;
mod common;
mod connect;
mod crawl;
mod decode;
mod demo;
mod events;
mod fields;
mod headers;
mod listen;
mod node;
mod report;
mod scan;
mod text;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: usage error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: timeout (connecting, the handshake, a headers answer, a pong).
pub const EXIT_TIMEOUT: u8 = 3;

#[derive(Parser)]
#[command(
    name = "btcpeer",
    version,
    about = "A Bitcoin peer-to-peer toolkit: a demo network, talk to peers, listen for them, decode frames",
    long_about = "A Bitcoin peer-to-peer toolkit: a demo network, talk to peers, listen for them, decode frames.\n\n\
                  Without a subcommand, btcpeer runs `btcpeer demo` (the options below are the demo's).",
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  btcpeer                                   run the demo: peers on 127.0.0.1, v1 and v2, live view\n  \
                  btcpeer demo --peers 8 --json\n  \
                  btcpeer connect 127.0.0.1:18444 --network regtest --ping 3\n  \
                  btcpeer listen 127.0.0.1:18444 --network regtest\n  \
                  btcpeer scan --network signet --connect a.example:38333 --watch tb1q…\n  \
                  btcpeer decode --network regtest fabfb5da76657261636b000000000000000000005df6e0e2\n\n\
                  Exit codes: 0 success, 1 failure, 2 usage error, 3 timeout."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Log the library's events on stderr: -v one line per message sent and received, -vv also a
    /// hex dump of every frame. `RUST_LOG` (e.g. `btcpeer=debug`) overrides. Never mixed into the
    /// `--json` lines on stdout.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// The demo's options, for a bare `btcpeer`.
    #[command(flatten)]
    demo: demo::DemoArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run a small Bitcoin network on 127.0.0.1 in this process, v1 and v2 peers, with a live view.
    ///
    /// A node serves a 2,500-block regtest chain; outbound peers (half v1, half v2 by default)
    /// handshake, ping, announce transactions the node relays to the others, receive addresses, fetch
    /// every header and a block. A table of the peers is redrawn in place on a terminal; plain lines
    /// otherwise; JSON events with --json. No network beyond 127.0.0.1 is used.
    #[command(after_help = "Examples:\n  btcpeer demo\n  \
                            btcpeer demo --peers 8 --transport v2\n  \
                            btcpeer demo --duration 30          (keep the peers and the view alive for 30 s)\n  \
                            btcpeer demo --json | jq -c 'select(.event == \"summary\")'\n\n\
                            Events (--json): start, handshake, pong, announce, relay, inv, addr, headers, block, \
                            stats, summary.\n\n\
                            Exit codes: 0 every step succeeded, 1 a step failed (one line on stderr says which), \
                            2 usage error, 3 a step timed out (see --timeout).")]
    Demo(demo::DemoArgs),
    /// Connect to a peer, perform the handshake, fetch its headers, ping it, listen to it, print its
    /// statistics.
    #[command(after_help = "Examples:\n  btcpeer connect 127.0.0.1:18444 --network regtest --ping 3\n  \
                            btcpeer connect 127.0.0.1:18444 --network regtest --headers\n  \
                            btcpeer connect seed.example.org:8333 --listen 60 --json\n  \
                            btcpeer connect 127.0.0.1:18444 --network regtest --transport v2\n  \
                            btcpeer connect <56 characters>.onion:8333 --socks5 127.0.0.1:9050   (through Tor)\n\n\
                            Events (--json): retry (auto transport, dialing again in v1), handshake, headers \
                            (count, tip, batches, elapsed_ms, headers_per_sec; with --headers), pong (with --ping), \
                            recv and dropped (with --listen), stats, disconnect.\n\n\
                            Exit codes: 0 success, 1 failure (refused, disconnected early, headers that do not \
                            connect), 2 usage error, 3 timeout (connect, handshake, headers, pong; see --timeout).")]
    Connect(connect::ConnectArgs),
    /// Accept inbound peers, answer their pings and report every message they send.
    #[command(after_help = "Examples:\n  btcpeer listen 127.0.0.1:18444 --network regtest\n  \
                            btcpeer listen 127.0.0.1:0 --json --duration 60   (the `listening` event names the port)\n  \
                            btcpeer listen 127.0.0.1:18444 --network regtest --transport v2   (refuse v1 initiators)\n\n\
                            Events (--json): listening, accept, refused, recv, dropped, handshake, stats, disconnect.\n\n\
                            Exit codes: 0 when --duration ends or on Ctrl-C, 1 the address cannot be bound, \
                            2 usage error.")]
    Listen(listen::ListenArgs),
    /// Crawl the network from seeds: a handshake with every address learnt, a line per node, a
    /// summary at the end.
    #[command(after_help = "Examples:\n  btcpeer crawl seed.example.org --network signet\n  \
                            btcpeer crawl 127.0.0.1:18444 --network regtest --json --book peers.book\n\n\
                            Exit codes: 0 done, 1 failure (the book cannot be saved), 2 usage error.")]
    Crawl(crawl::CrawlArgs),
    /// Run a small relay node: listen, dial from the address book (or only --connect peers),
    /// relay addresses and transactions, show the peers in a live table.
    #[command(
        after_help = "Examples:\n  btcpeer node --network regtest --listen 127.0.0.1:18444 --connect 127.0.0.1:18445\n  \
                            btcpeer node --network signet --seed seed.signet.example --book signet.book\n  \
                            btcpeer node --network regtest --listen 127.0.0.1:0 --json --duration 60\n\n\
                            Events (--json): listening, accept, refused, connected, dial_failed, disconnected, table.\n\n\
                            Exit codes: 0 when --duration ends or on Ctrl-C, 1 failure (cannot bind, cannot save), \
                            2 usage error."
    )]
    Node(node::NodeArgs),
    /// Watch addresses or scripts with a BIP157/158 light client: sync from peers serving compact
    /// filters, print every payment to and spend from them, then a summary.
    ///
    /// Headers and filter headers are synced from genesis (kept in --data-dir, so a second run
    /// resumes); filter headers are cross-checked between the peers, and a peer that lies (the
    /// block itself contradicts its filter headers, a filter that does not match its header, a block
    /// that is not the one asked for), withholds filters, is on another network or has no filters is
    /// dropped with a line, and the scan goes on with the others.
    #[command(after_help = "Examples:\n  btcpeer scan --network regtest --connect 127.0.0.1:18444 --watch bcrt1q…\n  \
                            btcpeer scan --network signet --connect a.example:38333 b.example:38333 c.example:38333 \
                            --watch tb1q… --data-dir ~/.btcpeer/signet --follow\n  \
                            btcpeer scan --network regtest --connect 127.0.0.1:18444 --watch 0014… --from 100 --json\n\n\
                            Events (--json): peer_connected, peer_dropped, tx (kind received or spent), reorg, \
                            block (with --follow), synced (last).\n\n\
                            Exit codes: 0 synced (with --follow: on Ctrl-C), 1 no honest peer left (the reasons on \
                            stderr) or the data directory cannot be used, 2 usage error.")]
    Scan(scan::ScanArgs),
    /// Decode v1 frames given as hex (arguments, or hex lines on stdin with `-` or no argument).
    #[command(after_help = "Examples:\n  btcpeer decode f9beb4d970696e67000000000000000008000000...\n  \
                            btcpeer decode --network regtest --json --reencode - < frames.txt\n\n\
                            Events (--json): message, error.\n\n\
                            Exit codes: 0 every frame decoded, 1 some frame did not, 2 usage error.")]
    Decode(decode::DecodeArgs),
    /// Measure peers over 127.0.0.1, v1 and v2: handshakes, pings, inv and block throughput, memory
    /// per idle peer; beside the machine's single-core SHA-256 rate.
    #[command(after_help = "Examples:\n  btcpeer bench\n  btcpeer bench --json --transport v1 --peers 10000\n  \
                            btcpeer bench --handshakes 50 --pings 500 --peers 0\n\n\
                            Output (--json): one object with every figure, each also as a ratio to the sha256d \
                            baseline and to btcd's reference figures.\n\n\
                            Exit codes: 0 done, 1 failure, 2 usage error, 3 a measurement timed out.")]
    Bench(bench::BenchArgs),
    /// Print a shell completion script: `btcpeer completions bash > /etc/bash_completion.d/btcpeer`.
    #[command(
        after_help = "Examples:\n  btcpeer completions bash > ~/.local/share/bash-completion/completions/btcpeer\n  \
                            btcpeer completions zsh > ~/.zfunc/_btcpeer\n  \
                            btcpeer completions fish > ~/.config/fish/completions/btcpeer.fish\n\n\
                            Exit codes: 0 printed, 2 usage error."
    )]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// Whether colour may be used on stderr: a terminal, and `NO_COLOR` unset (<https://no-color.org>).
pub fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs a `tracing` subscriber writing to stderr when asked: `RUST_LOG`, else `-v` (debug: a
/// line per message, R-O2) or `-vv` (trace: hex dumps of frames). Without either nothing is logged.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::new(spec),
        _ => match verbose {
            0 => return,
            1 => EnvFilter::new("btcpeer=debug"),
            _ => EnvFilter::new("btcpeer=trace"),
        },
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .try_init();
}

/// Prints a clap error as one line (help and version as they are); returns the exit code.
fn parse_error(e: &clap::Error) -> u8 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return EXIT_OK;
    }
    let rendered = e.render().to_string();
    let mut paragraphs = rendered.split("\n\n");
    let first = paragraphs.next().unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
    let message = first.strip_prefix("error: ").unwrap_or(&first);
    let tips: Vec<String> = paragraphs
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| p.starts_with("tip:"))
        .collect();
    // Which --help to point at: the subcommand's, when one was named.
    let sub = std::env::args()
        .nth(1)
        .filter(|a| Cli::command().get_subcommands().any(|s| s.get_name() == a))
        .map(|a| format!(" {a}"))
        .unwrap_or_default();
    let tip = if tips.is_empty() { String::new() } else { format!(" ({})", tips.join("; ")) };
    eprintln!("btcpeer{sub}: {message}{tip}; see 'btcpeer{sub} --help'");
    EXIT_USAGE
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(parse_error(&e)),
    };
    init_logging(cli.verbose);
    let code = match cli.command {
        Some(Command::Demo(args)) => demo::run(args),
        Some(Command::Connect(args)) => connect::run(args),
        Some(Command::Listen(args)) => listen::run(args),
        Some(Command::Crawl(args)) => crawl::run(args),
        Some(Command::Node(args)) => node::run(args),
        Some(Command::Scan(args)) => scan::run(args),
        Some(Command::Decode(args)) => decode::run(args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "btcpeer", &mut std::io::stdout());
            EXIT_OK
        }
        None => demo::run(cli.demo),
    };
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
