#!/usr/bin/env bash
# S-1 smoke run: builds every cargo-fuzz target in fuzz/ and runs each for a short while.
#
#   scripts/fuzz-smoke.sh [SECONDS]      # seconds per target, default 20 (or $FUZZ_SECONDS)
#
# Exits non-zero if a target crashes, panics, hangs (libFuzzer -timeout) or runs out of memory; the
# input is left in fuzz/artifacts/<target>/. If cargo-fuzz is missing and cannot be installed within
# a few minutes, or there is no C++ compiler for libFuzzer, it prints a note and exits 0: the
# committed corpus is still replayed by `cargo test` (crates/btcpeer/tests/fuzz_corpus.rs).
#
# The fuzzer's new inputs go to fuzz/target/smoke-corpus/ (ignored), so the committed corpus is left
# as it is. Works on the stable toolchain: without a nightly compiler (or RUSTC_BOOTSTRAP=1) the
# targets are built without AddressSanitizer (`-s none`); set FUZZ_SANITIZER=address to insist.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-${FUZZ_SECONDS:-20}}"
case "$secs" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
targets=(frame_v1 payload v2_packet v2_handshake v2_cipher peer peer_tokio store_load)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "note: cargo-fuzz not found; trying 'cargo install cargo-fuzz --locked' (at most 5 minutes)"
  if ! timeout 300 cargo install cargo-fuzz --locked >/dev/null 2>&1 || ! cargo fuzz --version >/dev/null 2>&1; then
    echo "note: cargo-fuzz unavailable; skipping the fuzz smoke run (the corpus replay runs in cargo test)"
    exit 0
  fi
fi
if ! command -v c++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
  echo "note: no C++ compiler to build libFuzzer; skipping the fuzz smoke run"
  exit 0
fi

# AddressSanitizer needs -Zsanitizer: a nightly compiler, or RUSTC_BOOTSTRAP=1 on stable.
sanitizer="${FUZZ_SANITIZER:-}"
if [ -z "$sanitizer" ]; then
  if rustc --version | grep -q nightly || [ -n "${RUSTC_BOOTSTRAP:-}" ]; then
    sanitizer=address
  else
    sanitizer=none
  fi
fi

echo "fuzz smoke: ${#targets[@]} targets, ${secs}s each, sanitizer ${sanitizer}"
cargo fuzz build -s "$sanitizer"

failed=()
for t in "${targets[@]}"; do
  work="fuzz/target/smoke-corpus/$t"
  # peer_tokio reads the peer target's inputs: its seeds are that corpus.
  seeds="fuzz/corpus/${t%_tokio}"
  mkdir -p "$work" "$seeds"
  log="fuzz/target/smoke-$t.log"
  if cargo fuzz run -s "$sanitizer" "$t" "$work" "$seeds" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    stats=$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "$log" | awk '{print $2}' | paste -sd/ -)
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
    echo "ok    $t: runs/exec-per-s ${stats:-?}, ${cov:-no coverage line}"
  else
    echo "FAIL  $t (log: $log; input in fuzz/artifacts/$t/)"
    grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' -A2 "$log" | head -20 || true
    failed+=("$t")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz smoke failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz smoke passed"
