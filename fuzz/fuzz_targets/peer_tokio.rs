//! `peer_tokio`: see `btcpeer_fuzz::peer_tokio` (the harness in crates/btcpeer/tests/fuzz_harness/):
//! the `peer` target's inputs through the whole tokio driver.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| btcpeer_fuzz::peer_tokio(data));
