//! The protocol's limits and each command's largest possible payload.
//!
//! Counts are checked as soon as they are read, before anything is allocated for them; a frame
//! header announcing more than its command's maximum is refused before its payload is read.

use super::command::Command;

/// Entries in an `inv`, `getdata` or `notfound` (Core's `MAX_INV_SZ`).
pub const MAX_INV_ENTRIES: u64 = 50_000;
/// Entries in an `addr` or `addrv2` (Core's `MAX_ADDR_TO_SEND`).
pub const MAX_ADDR_ENTRIES: u64 = 1_000;
/// Headers in a `headers` message (Core's `MAX_HEADERS_RESULTS`).
pub const MAX_HEADERS: u64 = 2_000;
/// Hashes in a block locator (Core's `MAX_LOCATOR_SZ`).
pub const MAX_LOCATOR_HASHES: u64 = 101;
/// Bytes of a version message's user agent (Core's `MAX_SUBVERSION_LENGTH`).
pub const MAX_USER_AGENT_LEN: u64 = 256;
/// Bytes of a BIP37 filter (`MAX_BLOOM_FILTER_SIZE`).
pub const MAX_FILTERLOAD_BYTES: u64 = 36_000;
/// Hash functions of a BIP37 filter (`MAX_HASH_FUNCS`).
pub const MAX_BLOOM_HASH_FUNCS: u32 = 50;
/// Bytes of a `filteradd` element (`MAX_SCRIPT_ELEMENT_SIZE`).
pub const MAX_FILTERADD_BYTES: u64 = 520;
/// Bytes of one addrv2 address (BIP155).
pub const MAX_ADDRV2_ADDR_LEN: u64 = 512;
/// Bytes of the rejected command in a `reject` (a command name).
pub const MAX_REJECT_MESSAGE_LEN: u64 = 12;
/// Bytes of a `reject` reason that Core's old code kept for display (`MAX_REJECT_MESSAGE_LENGTH`).
/// A reject is informational: a longer reason (btcd sends 186 bytes and more for a double spend)
/// is accepted up to the frame's limit, never a reason to disconnect.
pub const MAX_REJECT_REASON_LEN: u64 = 111;
/// Filter hashes in a `cfheaders` (BIP157's `MAX_GETCFHEADERS_SIZE`).
pub const MAX_CFHEADERS: u64 = 2_000;
/// The largest CompactSize accepted for a length or count (Core's `MAX_SIZE`).
pub const MAX_COMPACT_SIZE: u64 = 0x0200_0000;

/// CompactSize bytes for a value of at most `n`.
const fn compact_len(n: u64) -> u64 {
    if n < 0xfd {
        1
    } else if n <= 0xffff {
        3
    } else if n <= 0xffff_ffff {
        5
    } else {
        9
    }
}

const NET_ADDR_LEN: u64 = 26;
const HASH: u64 = 32;
const INV_MAX: u64 = compact_len(MAX_INV_ENTRIES) + MAX_INV_ENTRIES * 36;
const ADDR_MAX: u64 = compact_len(MAX_ADDR_ENTRIES) + MAX_ADDR_ENTRIES * (4 + NET_ADDR_LEN);
// time, services (CompactSize), network id, address length, address, port.
const ADDRV2_ENTRY_MAX: u64 = 4 + 9 + 1 + compact_len(MAX_ADDRV2_ADDR_LEN) + MAX_ADDRV2_ADDR_LEN + 2;
const ADDRV2_MAX: u64 = compact_len(MAX_ADDR_ENTRIES) + MAX_ADDR_ENTRIES * ADDRV2_ENTRY_MAX;
const LOCATOR_MAX: u64 = 4 + compact_len(MAX_LOCATOR_HASHES) + MAX_LOCATOR_HASHES * HASH + HASH;
// Each header is followed by a transaction count, which Core reads and ignores.
const HEADERS_MAX: u64 = compact_len(MAX_HEADERS) + MAX_HEADERS * (80 + 9);
const FILTERLOAD_MAX: u64 = compact_len(MAX_FILTERLOAD_BYTES) + MAX_FILTERLOAD_BYTES + 4 + 4 + 1;
const FILTERADD_MAX: u64 = compact_len(MAX_FILTERADD_BYTES) + MAX_FILTERADD_BYTES;
const CFHEADERS_MAX: u64 = 1 + HASH + HASH + compact_len(MAX_CFHEADERS) + MAX_CFHEADERS * HASH;

/// The largest payload a frame with this command can carry on a network whose maximum is
/// `network_max`. Commands with no bound of their own (blocks, transactions, unknown commands) get
/// `network_max`; so do `version`, whose later protocol versions may append fields (Core reads what
/// it knows and ignores the rest), and `reject`, whose reason may be as long as the frame allows.
///
/// ```
/// use btcpeer_core::wire::{limits, Command};
///
/// assert_eq!(limits::max_payload_len(Command::PING, 4_000_000), 8);
/// assert_eq!(limits::max_payload_len(Command::INV, 4_000_000), 1_800_003);
/// assert_eq!(limits::max_payload_len(Command::BLOCK, 32_000_000), 32_000_000);
/// ```
pub fn max_payload_len(command: Command, network_max: u32) -> u32 {
    let own: u64 = match command.as_str() {
        "verack" | "sendaddrv2" | "getaddr" | "mempool" | "sendheaders" | "wtxidrelay" | "filterclear" => 0,
        "addr" => ADDR_MAX,
        "addrv2" => ADDRV2_MAX,
        "inv" | "getdata" | "notfound" => INV_MAX,
        "getblocks" | "getheaders" => LOCATOR_MAX,
        "headers" => HEADERS_MAX,
        "ping" | "pong" | "feefilter" => 8,
        "filterload" => FILTERLOAD_MAX,
        "filteradd" => FILTERADD_MAX,
        "sendcmpct" => 9,
        "getcfilters" | "getcfheaders" => 1 + 4 + HASH,
        "getcfcheckpt" => 1 + HASH,
        "cfheaders" => CFHEADERS_MAX,
        "sendtxrcncl" => 12,
        _ => u64::from(network_max),
    };
    // `own` never exceeds u32 for the table above; the min keeps it within the network's limit.
    u32::try_from(own.min(u64::from(network_max))).unwrap_or(network_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_w4_per_command_maxima_follow_the_count_limits() {
        let m = |c: Command| max_payload_len(c, 4_000_000);
        assert_eq!(m(Command::VERSION), 4_000_000, "later versions may append fields");
        assert_eq!(m(Command::VERACK), 0);
        assert_eq!(m(Command::ADDR), 30_003);
        assert_eq!(m(Command::ADDRV2), 3 + 1_000 * 531);
        assert_eq!(m(Command::GETHEADERS), 4 + 1 + 101 * 32 + 32);
        assert_eq!(m(Command::HEADERS), 3 + 2_000 * 89);
        assert_eq!(m(Command::FILTERLOAD), 3 + 36_000 + 9);
        assert_eq!(m(Command::FILTERADD), 3 + 520);
        assert_eq!(m(Command::REJECT), 4_000_000, "a reject's reason may be long");
        assert_eq!(m(Command::BLOCK), 4_000_000);
        assert_eq!(max_payload_len(Command::INV, 1_000), 1_000, "the network maximum caps every command");
    }
}
