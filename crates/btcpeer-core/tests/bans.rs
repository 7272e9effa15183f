//! R-N2: manual bans (Core's `BanMan`, `src/banman.cpp`), the discouragement filter (Core's
//! `m_discouraged`, a `CRollingBloomFilter(50000, 0.000001)`), the anchors file (Core's
//! `anchors.dat`), and how each of their files survives a restart, a truncation or a flipped bit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use btcpeer_core::node::bans::{
    BanList, Discouraged, LoadError, MAX_ANCHORS, MAX_BANS, Subnet, decode_anchors, encode_anchors, load_anchors,
    save_anchors, take_anchors,
};
use btcpeer_core::persist::seal;
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
fn net(s: &str) -> Subnet {
    s.parse().unwrap()
}

/// A fresh directory of this test's own under the system's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("btcpeer-bans-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn r_n2_a_ban_holds_until_its_end_grows_only_longer_and_is_swept_after() {
    let mut bans = BanList::new();
    let a = ip("203.0.113.7");
    assert!(bans.ban(a.into(), NOW + 100));
    assert!(bans.is_banned(a, NOW));
    assert!(bans.is_banned(a, NOW + 99));
    assert!(!bans.is_banned(a, NOW + 100), "Core: banned while now < until");
    assert!(!bans.is_banned(ip("203.0.113.8"), NOW));
    // A shorter ban leaves the longer one; a longer one extends it (Core's BanMan::Ban).
    assert!(!bans.ban(a.into(), NOW + 50));
    assert!(!bans.ban(a.into(), NOW + 100));
    assert_eq!(bans.banned_until(&a.into()), Some(NOW + 100));
    assert!(bans.ban(a.into(), NOW + 200));
    assert_eq!(bans.entries().collect::<Vec<_>>(), [(Subnet::from(a), NOW + 200)]);
    // Sweep drops a ban only once now > until (Core's SweepBanned).
    bans.sweep(NOW + 200);
    assert_eq!(bans.len(), 1);
    bans.sweep(NOW + 201);
    assert!(bans.is_empty());
    // Unban lifts exactly the target.
    assert!(bans.ban(a.into(), NOW + 100));
    assert!(bans.ban(net("203.0.113.0/24"), NOW + 100));
    assert!(bans.unban(a.into()));
    assert!(!bans.unban(a.into()));
    assert!(bans.is_banned(a, NOW), "the subnet still covers it");
    assert!(bans.unban(net("203.0.113.99/24")), "the same subnet, host bits aside");
    assert!(!bans.is_banned(a, NOW));
    bans.ban(a.into(), NOW + 1);
    bans.clear();
    assert!(bans.is_empty());
}

#[test]
fn r_n2_subnets_match_as_cores_csubnet() {
    let v4 = net("10.1.2.3/16");
    assert_eq!((v4.addr(), v4.prefix()), (ip("10.1.0.0"), 16));
    assert_eq!(v4.to_string(), "10.1.0.0/16");
    assert!(v4.contains(ip("10.1.0.0")) && v4.contains(ip("10.1.255.255")));
    assert!(!v4.contains(ip("10.2.0.0")) && !v4.contains(ip("11.1.0.0")));
    // An IPv4-mapped IPv6 address is its IPv4, as Core reads it.
    assert!(v4.contains(ip("::ffff:10.1.9.9")));
    assert_eq!(Subnet::from(ip("::ffff:10.1.9.9")), Subnet::from(ip("10.1.9.9")));
    assert_eq!(net("::ffff:10.1.0.0/112"), v4);
    // /0 covers a whole family and only it.
    let all4 = net("0.0.0.0/0");
    assert!(all4.contains(ip("255.255.255.255")) && !all4.contains(ip("2001:db8::1")));
    let all6 = net("::/0");
    assert!(all6.contains(ip("2001:db8::1")) && !all6.contains(ip("1.2.3.4")));
    let v6 = net("2001:db8:abcd::/48");
    assert!(v6.contains(ip("2001:db8:abcd:ffff::1")) && !v6.contains(ip("2001:db8:abce::1")));
    let odd = net("2001:db8::/33");
    assert!(odd.contains(ip("2001:db8:7fff::1")) && !odd.contains(ip("2001:db8:8000::1")));
    // Single addresses.
    let one = Subnet::from(Ipv6Addr::LOCALHOST);
    assert!(one.is_single() && one.contains(ip("::1")) && !one.contains(ip("::2")));
    assert_eq!(one.to_string(), "::1");
    assert_eq!(net("1.2.3.4/32"), Subnet::from(Ipv4Addr::new(1, 2, 3, 4)));
    // Prefixes longer than the address, and garbage, are refused.
    assert!(Subnet::new(ip("1.2.3.4"), 33).is_none());
    assert!(Subnet::new(ip("::1"), 129).is_none());
    for bad in ["1.2.3.4/33", "::/129", "1.2.3/8", "1.2.3.4/x", "", "/8", "example.com"] {
        assert!(bad.parse::<Subnet>().is_err(), "{bad}");
    }
    // A banned subnet bans its addresses, and only at a time it covers.
    let mut bans = BanList::new();
    bans.ban(v6, NOW + 10);
    assert!(bans.is_banned(ip("2001:db8:abcd::42"), NOW));
    assert!(!bans.is_banned(ip("2001:db8:abcd::42"), NOW + 10));
    assert!(!bans.is_banned(ip("2001:db8::42"), NOW));
}

#[test]
fn r_n2_the_ban_list_is_bounded_and_keeps_the_longest_bans() {
    let mut bans = BanList::new();
    for i in 0..MAX_BANS as u32 {
        assert!(bans.ban(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)).into(), NOW + 1_000 + u64::from(i)));
    }
    assert_eq!(bans.len(), MAX_BANS);
    let newcomer = ip("192.0.2.1");
    // Every ban lasts longer than this one: refused.
    assert!(!bans.ban(newcomer.into(), NOW + 500));
    assert!(!bans.is_banned(newcomer, NOW));
    // One lasting longer than the first to end takes its place.
    assert!(bans.ban(newcomer.into(), NOW + 100_000));
    assert_eq!(bans.len(), MAX_BANS);
    assert!(bans.is_banned(newcomer, NOW));
    assert!(!bans.is_banned(ip("10.0.0.0"), NOW), "the ban ending first made room");
    assert!(bans.is_banned(ip("10.0.0.1"), NOW));
    // Extending a ban already listed needs no room.
    assert!(bans.ban(ip("10.0.0.1").into(), NOW + 200_000));
    assert_eq!(bans.len(), MAX_BANS);
    // A file can't hold more either.
    let bytes = bans.encode();
    assert_eq!(BanList::decode(&bytes).unwrap(), bans);
}

/// Distinct IPv4 addresses, spread over the space (an odd multiplier is a permutation).
fn spread(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(i.wrapping_mul(0x9E37_79B1)))
}

#[test]
fn r_n2_discouragement_stays_bounded_and_keeps_the_last_50000() {
    let mut d = Discouraged::new(42);
    let memory = d.memory_bytes();
    assert!(memory < 600 * 1024, "{memory} bytes");
    const TOTAL: u32 = 1_000_000;
    for i in 0..TOTAL {
        d.discourage(spread(i));
    }
    assert_eq!(d.memory_bytes(), memory, "the table never grows");
    assert_eq!(d.encode().len(), Discouraged::new(1).encode().len(), "nor does its file");
    // No false negatives among the last 50,000.
    let missing = (TOTAL - 50_000..TOTAL).filter(|i| !d.is_discouraged(spread(*i))).count();
    assert_eq!(missing, 0);
    // The oldest have faded out: what is still found is false positives (one in a million).
    let old = (0..200_000).filter(|i| d.is_discouraged(spread(*i))).count();
    assert!(old <= 3, "{old} of the first 200,000 still found");
    // Never discouraged: IPv6 addresses.
    let never =
        (0..200_000u128).filter(|i| d.is_discouraged(IpAddr::V6(Ipv6Addr::from((0x2001_0db8 << 96) | i)))).count();
    assert!(never <= 3, "{never} false positives in 200,000");
    // Clearing forgets all.
    d.clear();
    assert!((TOTAL - 1_000..TOTAL).all(|i| !d.is_discouraged(spread(i))));
    assert_eq!(d.memory_bytes(), memory);
}

#[test]
fn r_n2_bans_discouragement_and_anchors_survive_a_restart() {
    let dir = temp_dir("restart");
    let mut bans = BanList::new();
    bans.ban(ip("203.0.113.7").into(), NOW + 86_400);
    bans.ban(net("198.51.100.0/24"), NOW + 3_600);
    bans.ban(net("2001:db8::/32"), u64::MAX);
    bans.ban(Subnet::from(Ipv6Addr::LOCALHOST), NOW);
    let path = dir.join("bans.dat");
    bans.save(&path).unwrap();
    let loaded = BanList::load(&path).unwrap();
    assert_eq!(loaded, bans);
    assert!(loaded.is_banned(ip("2001:db8:1::1"), NOW + 1_000_000));

    let mut d = Discouraged::new(3);
    for i in 0..30_000 {
        d.discourage(spread(i)); // past one generation
    }
    let path = dir.join("discouraged.dat");
    d.save(&path).unwrap();
    let loaded = Discouraged::load(&path).unwrap();
    assert_eq!(loaded, d);
    assert!((0..30_000).all(|i| loaded.is_discouraged(spread(i))));
    assert!(!loaded.is_discouraged(ip("2001:db8::1")));

    let anchors: Vec<SocketAddr> = vec![
        "198.51.100.1:8333".parse().unwrap(),
        "[2001:db8::2]:18333".parse().unwrap(),
        "192.0.2.3:1".parse().unwrap(),
    ];
    let path = dir.join("anchors.dat");
    save_anchors(&path, &anchors).unwrap();
    assert_eq!(load_anchors(&path).unwrap(), &anchors[..MAX_ANCHORS], "at most MAX_ANCHORS kept");
    assert!(path.exists(), "load_anchors leaves the file");
    assert_eq!(take_anchors(&path).unwrap(), &anchors[..MAX_ANCHORS]);
    assert!(!path.exists(), "take_anchors deletes it, as Core's ReadAnchors");
    assert_eq!(take_anchors(&path).unwrap(), Vec::<SocketAddr>::new(), "no file, no anchors");
    assert!(matches!(load_anchors(&path), Err(LoadError::Io { .. })));
    save_anchors(&path, &[]).unwrap();
    assert!(load_anchors(&path).unwrap().is_empty());
    // A corrupt anchors file is removed too, and reported.
    std::fs::write(&path, b"garbage").unwrap();
    assert!(matches!(take_anchors(&path), Err(LoadError::Corrupt { .. })));
    assert!(!path.exists());
    // No temporary file is left behind.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes `data` to `path` and loads it with `load`, which must say it is corrupt, naming the file.
fn corrupt<T: std::fmt::Debug>(path: &Path, data: &[u8], load: &dyn Fn(&Path) -> Result<T, LoadError>) -> String {
    std::fs::write(path, data).unwrap();
    match load(path) {
        Err(LoadError::Corrupt { path: p, problem }) => {
            assert_eq!(p, path);
            problem
        }
        other => panic!("{} bytes: {other:?}", data.len()),
    }
}

/// Every truncation of `bytes` at the given lengths and every flip of a bit at the given
/// positions is a `LoadError::Corrupt`.
fn check_damage<T: std::fmt::Debug>(
    path: &Path,
    bytes: &[u8],
    lengths: impl Iterator<Item = usize>,
    positions: impl Iterator<Item = usize> + Clone,
    load: &dyn Fn(&Path) -> Result<T, LoadError>,
) {
    for len in lengths {
        let problem = corrupt(path, &bytes[..len], load);
        assert!(problem.contains("truncated") || problem.contains("checksum"), "{len}: {problem}");
    }
    for at in positions {
        for bit in 0..8 {
            let mut flipped = bytes.to_vec();
            flipped[at] ^= 1 << bit;
            let problem = corrupt(path, &flipped, load);
            assert!(
                problem.contains("magic") || problem.contains("version") || problem.contains("checksum"),
                "byte {at} bit {bit}: {problem}"
            );
        }
    }
}

#[test]
fn r_n2_a_truncated_or_flipped_ban_or_anchor_file_is_corrupt_never_half_loaded() {
    let dir = temp_dir("damage");
    let mut bans = BanList::new();
    for i in 0..12u32 {
        bans.ban(IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i)).into(), NOW + u64::from(i));
        bans.ban(
            Subnet::new(IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i) << 64)), 64).unwrap(),
            NOW,
        );
    }
    let bytes = bans.encode();
    let path = dir.join("bans.dat");
    check_damage(&path, &bytes, 0..bytes.len(), 0..bytes.len(), &BanList::load);
    assert!(corrupt(&path, b"", &BanList::load).contains("truncated"));
    assert!(
        corrupt(&path, &encode_anchors(&[]), &BanList::load).contains("magic"),
        "an anchors file is not a ban list"
    );

    let anchors: Vec<SocketAddr> = vec!["198.51.100.1:8333".parse().unwrap(), "[2001:db8::2]:18333".parse().unwrap()];
    let bytes = encode_anchors(&anchors);
    let path = dir.join("anchors.dat");
    check_damage(&path, &bytes, 0..bytes.len(), 0..bytes.len(), &load_anchors);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn r_n2_a_truncated_or_flipped_discouragement_file_is_corrupt() {
    let dir = temp_dir("damage-discouraged");
    let mut d = Discouraged::new(5);
    for i in 0..1_000 {
        d.discourage(spread(i));
    }
    let bytes = d.encode();
    let n = bytes.len();
    let path = dir.join("discouraged.dat");
    // The file is half a megabyte: every byte of the header and the trailer, a sample between.
    let sample = || (0..64).chain((64..n - 64).step_by(7_919)).chain(n - 64..n);
    check_damage(&path, &bytes, sample(), sample().step_by(3), &Discouraged::load);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn r_n2_well_framed_files_with_bad_bodies_are_refused() {
    // The checksum is right, the content is not.
    let bad_family = [1, 0, 0, 0, 9, 1, 2, 3, 4, 32, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(BanList::decode(&seal(b"BTCPBANS", 1, &bad_family)).unwrap_err().contains("family"));
    let host_bits = [1, 0, 0, 0, 4, 10, 0, 0, 1, 8, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(BanList::decode(&seal(b"BTCPBANS", 1, &host_bits)).unwrap_err().contains("bad subnet"));
    let long_prefix = [1, 0, 0, 0, 4, 10, 0, 0, 1, 33, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(BanList::decode(&seal(b"BTCPBANS", 1, &long_prefix)).unwrap_err().contains("bad subnet"));
    let mut dup = vec![2, 0, 0, 0];
    for _ in 0..2 {
        dup.extend_from_slice(&[4, 10, 0, 0, 1, 32, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
    assert!(BanList::decode(&seal(b"BTCPBANS", 1, &dup)).unwrap_err().contains("duplicate"));
    let too_many = (MAX_BANS as u32 + 1).to_le_bytes();
    assert!(BanList::decode(&seal(b"BTCPBANS", 1, &too_many)).unwrap_err().contains("more than"));
    assert!(BanList::decode(&seal(b"BTCPBANS", 1, &[0, 0, 0, 0, 7])).unwrap_err().contains("after"));
    assert!(BanList::decode(&seal(b"BTCPBANS", 2, &[0, 0, 0, 0])).unwrap_err().contains("version"));
    assert!(decode_anchors(&seal(b"BTCPANCH", 1, &[1, 4, 1, 2, 3])).unwrap_err().contains("truncated"));
    // Three anchors in a file: the first two are kept.
    let three = [3, 4, 1, 1, 1, 1, 0, 1, 4, 2, 2, 2, 2, 0, 2, 4, 3, 3, 3, 3, 0, 3];
    assert_eq!(decode_anchors(&seal(b"BTCPANCH", 1, &three)).unwrap().len(), MAX_ANCHORS);
    // A discouragement table of another size is refused.
    let mut body = vec![0u8; 12];
    body.push(1);
    body.extend_from_slice(&0u32.to_le_bytes());
    body.extend_from_slice(&2u32.to_le_bytes());
    body.extend_from_slice(&[0; 16]);
    assert!(Discouraged::decode(&seal(b"BTCPDISC", 1, &body)).unwrap_err().contains("table of 2 words"));
    body[12] = 4;
    assert!(Discouraged::decode(&seal(b"BTCPDISC", 1, &body)).unwrap_err().contains("generation 4"));
}

proptest! {
    #[test]
    fn r_n2_decoding_any_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        prop_assert!(BanList::decode(&data).is_err());
        prop_assert!(Discouraged::decode(&data).is_err());
        prop_assert!(decode_anchors(&data).is_err());
        // The same bytes as a well-framed body reach every parser's checks.
        let _ = BanList::decode(&seal(b"BTCPBANS", 1, &data));
        let _ = Discouraged::decode(&seal(b"BTCPDISC", 1, &data));
        let _ = decode_anchors(&seal(b"BTCPANCH", 1, &data));
    }

    #[test]
    fn r_n2_a_ban_list_round_trips_and_bans_what_it_holds(
        bans in proptest::collection::vec((any::<u32>(), 0u8..=32, any::<u128>(), 0u8..=128, any::<u64>()), 0..40),
        probe in any::<u32>(),
    ) {
        let mut list = BanList::new();
        for (v4, p4, v6, p6, until) in &bans {
            list.ban(Subnet::new(IpAddr::V4(Ipv4Addr::from(*v4)), *p4).unwrap(), *until);
            list.ban(Subnet::new(IpAddr::V6(Ipv6Addr::from(*v6)), *p6).unwrap(), *until);
        }
        prop_assert_eq!(&BanList::decode(&list.encode()).unwrap(), &list);
        let probe = IpAddr::V4(Ipv4Addr::from(probe));
        let by_scan = list.entries().any(|(s, until)| 0 < until && s.contains(probe));
        prop_assert_eq!(list.is_banned(probe, 0), by_scan);
        for (v4, _, v6, _, until) in &bans {
            // Each banned range holds the address it was made from.
            if *until > 0 {
                prop_assert!(list.is_banned(IpAddr::V4(Ipv4Addr::from(*v4)), 0));
                prop_assert!(list.is_banned(IpAddr::V6(Ipv6Addr::from(*v6)), 0));
            }
        }
    }
}
