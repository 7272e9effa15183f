//! `peer`: see `btcpeer_fuzz::peer` (the harness in crates/btcpeer/tests/fuzz_harness/): the
//! runtime-free core driven directly, no runtime per input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| btcpeer_fuzz::peer(data));
