//! The `btcpeer` command.
//!
//! Exit codes: 0 success, 1 failure (a frame that did not decode, a refused handshake …), 2 usage
//! error, 3 timeout. Errors are one line on stderr. With `--json`, every line on stdout is one JSON
//! object with an `"event"` key.

mod connect;
mod decode;
mod fields;
mod listen;
mod report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: usage error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: timeout (connecting, the handshake, a headers answer, a pong).
pub const EXIT_TIMEOUT: u8 = 3;

#[derive(Parser)]
#[command(name = "btcpeer", version, about = "A Bitcoin peer-to-peer toolkit: decode frames, talk to peers")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Decode v1 frames given as hex (arguments, or hex lines on stdin with `-` or no argument).
    #[command(after_help = "Examples:\n  btcpeer decode f9beb4d970696e67000000000000000008000000...\n  \
                            btcpeer decode --network regtest --json --reencode - < frames.txt\n\n\
                            Exit codes: 0 every frame decoded, 1 some frame did not, 2 usage error.")]
    Decode(decode::DecodeArgs),
    /// Connect to a peer, perform the handshake, fetch its headers, ping it, listen to it, print its
    /// statistics.
    #[command(after_help = "Examples:\n  btcpeer connect 127.0.0.1:18444 --network regtest --ping 3\n  \
                            btcpeer connect 127.0.0.1:18444 --network regtest --headers\n  \
                            btcpeer connect seed.example.org:8333 --listen 60 --json\n\n\
                            Events (--json): handshake, headers (count, tip, batches, elapsed_ms, \
                            headers_per_sec; with --headers), pong (with --ping), recv (with --listen), \
                            stats, disconnect.\n\n\
                            Exit codes: 0 success, 1 failure (refused, disconnected early, headers that do not \
                            connect), 2 usage error, 3 timeout (connect, handshake, headers, pong; see --timeout).")]
    Connect(connect::ConnectArgs),
    /// Accept inbound peers, answer their pings and report every message they send.
    #[command(after_help = "Examples:\n  btcpeer listen 127.0.0.1:18444 --network regtest\n  \
                            btcpeer listen 127.0.0.1:0 --json --duration 60   (the `listening` event names the port)\n\n\
                            Exit codes: 0 when --duration ends or on Ctrl-C, 1 the address cannot be bound, \
                            2 usage error.")]
    Listen(listen::ListenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Some(Command::Decode(args)) => decode::run(args),
        Some(Command::Connect(args)) => connect::run(args),
        Some(Command::Listen(args)) => listen::run(args),
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            EXIT_USAGE
        }
    };
    ExitCode::from(code)
}
