//! `frame_v1`: see `btcpeer_fuzz::frame_v1` (the harness in crates/btcpeer/tests/fuzz_harness/).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| btcpeer_fuzz::frame_v1(data));
