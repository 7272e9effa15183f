//! The crate's one small generator (xorshift64*), for choices that must be reproducible from a
//! seed: ping nonces, trickle delays, the simulator, the address book. Not for keys.

/// The next value of the generator whose state is `state` (never zero: seeds are or-ed with 1).
pub(crate) fn next(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}
