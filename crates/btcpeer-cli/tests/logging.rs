//! R-O2 through the CLI: `-v` logs a line per message on stderr, `-vv` (or `RUST_LOG`) adds hex
//! dumps, nothing is logged by default, and `--json` stdout stays pure JSON. Also
//! `btcpeer completions`. Every wait is bounded; the listener is on 127.0.0.1.

mod common;

use common::{Listener, btcpeer, run, run_command};

#[test]
fn r_o2_verbose_logs_each_message_on_stderr_and_never_on_stdout() {
    let listener = Listener::start(&["--duration", "20"]);
    let base = ["connect", &listener.addr(), "--network", "regtest", "--transport", "v1", "--ping", "1", "--json"];

    let quiet = run(&base);
    assert_eq!(quiet.code, 0, "{quiet:?}");
    assert!(quiet.stderr.is_empty(), "nothing logged by default: {quiet:?}");

    let mut args = base.to_vec();
    args.push("-v");
    let r = run(&args);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.events.len(), r.stdout.len(), "stdout is only JSON: {r:?}");
    for needle in ["sent command=version", "recv command=verack", "sent command=ping", "recv command=pong"] {
        assert!(r.stderr.contains(needle), "{needle:?} not logged: {r:?}");
    }
    assert!(!r.stderr.contains("recv frame"), "no hex dumps at -v: {r:?}");

    let mut args = base.to_vec();
    args.push("-vv");
    let r = run(&args);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("recv frame") && r.stderr.contains("payload="), "hex dumps at -vv: {r:?}");

    let mut cmd = btcpeer();
    cmd.args(base).env("RUST_LOG", "btcpeer=debug").env("NO_COLOR", "1");
    let r = run_command(cmd, "btcpeer connect with RUST_LOG");
    assert!(r.stderr.contains("recv command=pong"), "RUST_LOG honoured: {r:?}");
    assert!(!r.stderr.contains('\u{1b}'), "no colour codes off a terminal: {r:?}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [("bash", "_btcpeer()"), ("zsh", "#compdef btcpeer"), ("fish", "complete -c btcpeer")] {
        let r = run(&["completions", shell]);
        assert_eq!(r.code, 0, "{shell}: {r:?}");
        let script = r.stdout.join("\n");
        assert!(script.contains(marker), "{shell}: {}", &script[..script.len().min(200)]);
        assert!(script.contains("connect") && script.contains("decode"), "{shell}: subcommands listed");
    }
    assert_eq!(run(&["completions", "tcsh"]).code, 2);
}
