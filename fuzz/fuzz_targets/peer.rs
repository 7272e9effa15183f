//! `peer`: see `btcpeer_fuzz::peer` (the harness in crates/btcpeer/tests/fuzz_harness/).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| btcpeer_fuzz::peer(data));
