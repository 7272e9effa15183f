//! What several subcommands share: interrupt handling, nonces, proxy parsing, and the node's words
//! for refusals and recovered files. A subcommand's module imports from here, never from another
//! subcommand's.

use std::net::SocketAddr;

use btcpeer::node::{Node, Refusal};

/// A random ping nonce.
pub(crate) fn nonce() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        // No OS randomness: the clock is unique enough to match a pong to its ping.
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    })
}

/// Resolves once Ctrl-C is pressed or SIGTERM arrives (never, if neither can be watched).
pub(crate) fn interrupted() -> impl std::future::Future<Output = ()> {
    // SIGTERM too (what `kill` and service managers send): a node then shuts down cleanly and
    // saves its book, bans and anchors. Watched from this call on, not from the first poll.
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let term = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {}
            () = term => {}
        }
    }
}

/// Parses `--socks5 ADDR`: the proxy's IP address and port.
pub(crate) fn parse_proxy(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| format!("{s:?} is not IP:PORT (e.g. 127.0.0.1:9050 for Tor)"))
}

/// Says on stderr which files were corrupt at start and where they were kept.
pub(crate) fn report_recovered(subcommand: &str, node: &Node) {
    for r in node.recovered_files() {
        let (path, kept) = (r.path.display(), r.kept_as.display());
        eprintln!("btcpeer {subcommand}: {path}: {}; kept as {kept} and starting without it", r.problem);
    }
}

/// Why an inbound connection was refused, in words.
pub(crate) fn refusal_text(r: Refusal) -> &'static str {
    match r {
        Refusal::Banned => "banned",
        Refusal::Discouraged => "discouraged, and the inbound table is nearly full",
        _ => "the inbound table is full and no peer may be evicted",
    }
}
