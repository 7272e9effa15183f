//! `store_load`: see `btcpeer_fuzz::store_load` (the harness in crates/btcpeer/tests/fuzz_harness/).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| btcpeer_fuzz::store_load(data));
