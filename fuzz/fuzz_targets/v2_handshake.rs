//! `v2_handshake`: see `btcpeer_fuzz::v2_handshake` (the harness in crates/btcpeer/tests/fuzz_harness/).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| btcpeer_fuzz::v2_handshake(data));
