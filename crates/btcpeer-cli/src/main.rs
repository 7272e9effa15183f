//! The `btcpeer` command.
//!
//! Exit codes: 0 success, 1 failure (a frame that did not decode, a refused handshake …), 2 usage
//! error, 3 timeout. Errors are one line on stderr. With `--json`, every line on stdout is one JSON
//! object with an `"event"` key.

mod decode;
mod fields;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: usage error.
pub const EXIT_USAGE: u8 = 2;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Some(Command::Decode(args)) => decode::run(args),
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            EXIT_USAGE
        }
    };
    ExitCode::from(code)
}
