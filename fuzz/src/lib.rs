//! The fuzz targets' logic.
//!
//! It lives in the btcpeer test that replays the committed corpus and the crash regressions
//! (`crates/btcpeer/tests/fuzz_corpus.rs`, module `harness` in `tests/fuzz_harness/`), so that a replayed input runs exactly
//! what the fuzzer ran. This crate only includes that file; its `#[test]` functions compile away.

#[path = "../../crates/btcpeer/tests/fuzz_corpus.rs"]
#[allow(dead_code, unused_imports)]
mod replay;

pub use replay::harness::*;
