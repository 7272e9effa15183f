//! Discouraged addresses in a rolling bloom filter: Core's `BanMan::m_discouraged`, a
//! `CRollingBloomFilter(50000, 0.000001)` (`src/common/bloom.cpp`), with Core's MurmurHash3.

use std::net::IpAddr;
use std::path::Path;

use crate::persist::{self, HEADER_LEN, LoadError, Reader};

/// How many recent addresses the filter is sure to hold (Core's `m_discouraged{50000, ...}`).
pub const DISCOURAGED_ELEMENTS: u32 = 50_000;
/// The filter's false-positive rate (Core's `m_discouraged{..., 0.000001}`).
pub const DISCOURAGED_FP_RATE: f64 = 0.000_001;

/// Core's `MurmurHash3` (`hash.cpp`): MurmurHash3 x86_32 of `data` with `seed`.
pub(crate) fn murmur3(seed: u32, data: &[u8]) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mix = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let k = u32::from_le_bytes([
            block.first().copied().unwrap_or(0),
            block.get(1).copied().unwrap_or(0),
            block.get(2).copied().unwrap_or(0),
            block.get(3).copied().unwrap_or(0),
        ]);
        h ^= mix(k);
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail.iter().rev().fold(0u32, |k, b| (k << 8) | u32::from(*b));
        h ^= mix(k);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// Core's `CRollingBloomFilter`: between two and three generations of `elements / 2` entries,
/// each position two bits naming the generation that set it (0: unset); starting a new generation
/// wipes the positions of the one it replaces. Its size is fixed at construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RollingBloom {
    entries_per_generation: u32,
    entries_this_generation: u32,
    generation: u32,
    hash_funcs: u32,
    tweak: u32,
    /// Position `p` is bit `p & 63` of words `(p >> 6) * 2` and `(p >> 6) * 2 + 1`.
    data: Vec<u64>,
}

impl RollingBloom {
    /// The parameters for `elements` entries at false-positive rate `fp_rate`, as Core's
    /// constructor computes them: (hash functions, entries per generation, words of data).
    pub(crate) fn params(elements: u32, fp_rate: f64) -> (u32, u32, usize) {
        let log_fp = fp_rate.ln();
        // log(fp) / log(0.5) hash functions, within 1..=50.
        let hash_funcs = ((log_fp / 0.5f64.ln()).round() as i64).clamp(1, 50) as u32;
        let per_generation = elements.saturating_add(1) / 2;
        let max_elements = f64::from(per_generation) * 3.0;
        let filter_bits =
            (-f64::from(hash_funcs) * max_elements / (1.0 - (log_fp / f64::from(hash_funcs)).exp()).ln()).ceil() as u64;
        let words = (filter_bits.saturating_add(63) / 64).saturating_mul(2);
        (hash_funcs, per_generation, usize::try_from(words).unwrap_or(0))
    }

    pub(crate) fn new(elements: u32, fp_rate: f64, tweak: u32) -> Self {
        let (hash_funcs, entries_per_generation, words) = Self::params(elements, fp_rate);
        RollingBloom {
            entries_per_generation,
            entries_this_generation: 0,
            generation: 1,
            hash_funcs,
            tweak,
            data: vec![0; words.max(2)],
        }
    }

    /// The `n`th hash of `key`, and the two words and the bit it selects.
    fn position(&self, n: u32, key: &[u8]) -> (usize, u32) {
        let h = murmur3(n.wrapping_mul(0xFBA4_C795).wrapping_add(self.tweak), key);
        let bit = h & 0x3f;
        // Core's FastRange32: the upper bits of h scaled to the number of words.
        let pos = (u64::from(h).saturating_mul(self.data.len() as u64) >> 32) as usize;
        (pos & !1, bit)
    }

    pub(crate) fn insert(&mut self, key: &[u8]) {
        if self.entries_this_generation >= self.entries_per_generation {
            self.entries_this_generation = 0;
            self.generation = if self.generation >= 3 { 1 } else { self.generation.saturating_add(1) };
            let mask1 = 0u64.wrapping_sub(u64::from(self.generation & 1));
            let mask2 = 0u64.wrapping_sub(u64::from(self.generation >> 1));
            // Wipe the entries that carry this generation's number.
            for pair in self.data.chunks_exact_mut(2) {
                if let [p1, p2] = pair {
                    let keep = (*p1 ^ mask1) | (*p2 ^ mask2);
                    *p1 &= keep;
                    *p2 &= keep;
                }
            }
        }
        self.entries_this_generation = self.entries_this_generation.saturating_add(1);
        let (g1, g2) = (u64::from(self.generation & 1), u64::from(self.generation >> 1));
        for n in 0..self.hash_funcs {
            let (pos, bit) = self.position(n, key);
            if let Some([w1, w2]) = self.data.get_mut(pos..pos.saturating_add(2)) {
                *w1 = (*w1 & !(1u64 << bit)) | (g1 << bit);
                *w2 = (*w2 & !(1u64 << bit)) | (g2 << bit);
            }
        }
    }

    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        (0..self.hash_funcs).all(|n| {
            let (pos, bit) = self.position(n, key);
            match self.data.get(pos..pos.saturating_add(2)) {
                Some([w1, w2]) => ((w1 | w2) >> bit) & 1 == 1,
                _ => false,
            }
        })
    }

    /// Empties the filter and gives it a new tweak (Core's `reset`).
    pub(crate) fn reset(&mut self, tweak: u32) {
        self.tweak = tweak;
        self.entries_this_generation = 0;
        self.generation = 1;
        self.data.fill(0);
    }
}

const MAGIC: &[u8; 8] = b"BTCPDISC";
const VERSION: u8 = 1;

/// Addresses of peers that misbehaved (Core's `BanMan::Discourage` / `IsDiscouraged`): a rolling
/// bloom filter of 50,000 entries at a one-in-a-million false-positive rate, as Core's
/// `m_discouraged`. The last 50,000 addresses discouraged are always found (more, up to 75,000,
/// usually are); older ones fade out. Its memory is fixed (about 527 KiB) however many are added;
/// addresses can't be listed or removed one by one.
///
/// ```
/// use btcpeer_core::node::bans::Discouraged;
///
/// let mut d = Discouraged::new(7);
/// d.discourage("203.0.113.9".parse()?);
/// assert!(d.is_discouraged("203.0.113.9".parse()?));
/// assert!(d.is_discouraged("::ffff:203.0.113.9".parse()?)); // the same IPv4
/// assert!(!d.is_discouraged("203.0.113.10".parse()?));
/// let back = Discouraged::decode(&d.encode())?;
/// assert!(back.is_discouraged("203.0.113.9".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discouraged {
    filter: RollingBloom,
    /// Draws the filter's tweaks (Core takes a random one at each reset).
    rng: u64,
}

/// The key Core inserts: the address's bytes (`CNetAddr::GetAddrBytes`), an IPv4-mapped IPv6
/// address as its IPv4.
fn key(ip: IpAddr) -> Vec<u8> {
    match ip.to_canonical() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

impl Discouraged {
    /// An empty filter whose hash tweak is drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = seed | 1;
        let tweak = crate::rng::next(&mut rng) as u32;
        Discouraged { filter: RollingBloom::new(DISCOURAGED_ELEMENTS, DISCOURAGED_FP_RATE, tweak), rng }
    }

    /// Marks `ip` as discouraged.
    pub fn discourage(&mut self, ip: IpAddr) {
        self.filter.insert(&key(ip));
    }

    /// Whether `ip` was discouraged recently (a false positive once in a million).
    pub fn is_discouraged(&self, ip: IpAddr) -> bool {
        self.filter.contains(&key(ip))
    }

    /// Forgets every address, with a new tweak.
    pub fn clear(&mut self) {
        let tweak = crate::rng::next(&mut self.rng) as u32;
        self.filter.reset(tweak);
    }

    /// The bytes the filter's table takes: fixed at construction.
    pub fn memory_bytes(&self) -> usize {
        self.filter.data.len().saturating_mul(8)
    }

    /// The filter as file bytes: `BTCPDISC`, version 1, the tweak (u32 LE), the generator's state
    /// (u64 LE), the current generation (a byte, 1 to 3) and its entry count (u32 LE), the number
    /// of data words (u32 LE), the words (u64 LE each), and the SHA256d of everything before.
    pub fn encode(&self) -> Vec<u8> {
        let f = &self.filter;
        let mut body = Vec::with_capacity(f.data.len().saturating_mul(8).saturating_add(32));
        body.extend_from_slice(&f.tweak.to_le_bytes());
        body.extend_from_slice(&self.rng.to_le_bytes());
        body.push(f.generation as u8);
        body.extend_from_slice(&f.entries_this_generation.to_le_bytes());
        body.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        for w in &f.data {
            body.extend_from_slice(&w.to_le_bytes());
        }
        persist::seal(MAGIC, VERSION, &body)
    }

    /// A filter from file bytes made by [`encode`](Discouraged::encode). `Err` says what is wrong
    /// and at which byte; the table must be exactly the size this build uses.
    pub fn decode(data: &[u8]) -> Result<Discouraged, String> {
        let body = persist::unseal(MAGIC, VERSION, data)?;
        let mut r = Reader::new(body, HEADER_LEN);
        let tweak = r.u32_le("the tweak")?;
        let rng = r.u64_le("the generator")? | 1;
        let at = r.pos();
        let generation = u32::from(r.u8("the generation")?);
        if !(1..=3).contains(&generation) {
            return Err(format!("generation {generation} at byte {at}, expected 1 to 3"));
        }
        let mut filter = RollingBloom::new(DISCOURAGED_ELEMENTS, DISCOURAGED_FP_RATE, tweak);
        let at = r.pos();
        let entries = r.u32_le("the generation's entries")?;
        if entries > filter.entries_per_generation {
            return Err(format!(
                "{entries} entries in a generation at byte {at}, more than {}",
                filter.entries_per_generation
            ));
        }
        let at = r.pos();
        let words = r.u32_le("the table's size")? as usize;
        if words != filter.data.len() {
            return Err(format!("a table of {words} words at byte {at}, expected {}", filter.data.len()));
        }
        for w in filter.data.iter_mut() {
            *w = r.u64_le("the table")?;
        }
        r.finish("the table")?;
        filter.generation = generation;
        filter.entries_this_generation = entries;
        Ok(Discouraged { filter, rng })
    }

    /// Writes the filter to `path` atomically ([`persist::write_atomic`]). Core keeps
    /// discouragement in memory only; saving it keeps a restart from forgiving everyone.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        persist::write_atomic(path, &self.encode())
    }

    /// Reads a filter written by [`save`](Discouraged::save).
    pub fn load(path: &Path) -> Result<Discouraged, LoadError> {
        persist::load_with(path, Discouraged::decode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn murmur3_matches_cores_hash_tests_vectors() {
        // Core's `src/test/hash_tests.cpp`, `murmurhash3`.
        let vectors: [(u32, u32, &str); 14] = [
            (0x0000_0000, 0x0000_0000, ""),
            (0x6a39_6f08, 0xFBA4_C795, ""),
            (0x81f1_6f39, 0xffff_ffff, ""),
            (0x514e_28b7, 0x0000_0000, "00"),
            (0xea3f_0b17, 0xFBA4_C795, "00"),
            (0xfd6c_f10d, 0x0000_0000, "ff"),
            (0x16c6_b7ab, 0x0000_0000, "0011"),
            (0x8eb5_1c3d, 0x0000_0000, "001122"),
            (0xb447_1bf8, 0x0000_0000, "00112233"),
            (0xe230_1fa8, 0x0000_0000, "0011223344"),
            (0xfc2e_4a15, 0x0000_0000, "001122334455"),
            (0xb074_502c, 0x0000_0000, "00112233445566"),
            (0x8034_d2a0, 0x0000_0000, "0011223344556677"),
            (0xb469_8def, 0x0000_0000, "001122334455667788"),
        ];
        for (expected, seed, data) in vectors {
            assert_eq!(murmur3(seed, &hex(data)), expected, "{seed:#x} {data}");
        }
    }

    #[test]
    fn the_filter_has_cores_parameters_for_50000_at_one_in_a_million() {
        // 20 hash functions, generations of 25,000, 2,156,646 positions in 67,396 words.
        assert_eq!(RollingBloom::params(DISCOURAGED_ELEMENTS, DISCOURAGED_FP_RATE), (20, 25_000, 67_396));
    }

    #[test]
    fn a_small_filter_keeps_its_last_two_generations_and_forgets_older_ones() {
        // Core's `rolling_bloom` test in spirit: a filter of 100 at 1%.
        let mut f = RollingBloom::new(100, 0.01, 0x1234);
        for i in 0u32..1_000 {
            f.insert(&i.to_le_bytes());
            // The last 100 are always there.
            for j in i.saturating_sub(99)..=i {
                assert!(f.contains(&j.to_le_bytes()), "{j} after {i}");
            }
        }
        let old = (0u32..800).filter(|i| f.contains(&i.to_le_bytes())).count();
        assert!(old < 40, "{old} of 800 old entries still found");
        f.reset(9);
        assert!((0u32..1_000).all(|i| !f.contains(&i.to_le_bytes())));
    }
}
