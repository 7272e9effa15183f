//! `v2_packet`: see `btcpeer_fuzz::v2_packet` (the harness in crates/btcpeer/tests/fuzz_harness/).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| btcpeer_fuzz::v2_packet(data));
