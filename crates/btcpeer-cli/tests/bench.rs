//! R-C5 `btcpeer bench`: with small counts it prints one JSON object holding every figure for v1 and
//! v2, each beside the in-run sha256d baseline, and the scale mode's memory per peer. (The figures'
//! sizes are measured by the release build, not asserted here: a test cannot time reliably.)

mod common;

use common::run;

const FIGURES: [&str; 9] = [
    "handshakes_per_sec",
    "ping_rtt_per_sec",
    "ping_pipelined_per_sec",
    "inv1_msgs_per_sec",
    "inv1000_msgs_per_sec",
    "block_decoded_per_sec",
    "block_decoded_mbps",
    "block_raw_per_sec",
    "block_raw_mbps",
];

#[test]
fn r_c5_bench_json_has_every_figure_with_its_ratio() {
    let r = run(&[
        "bench",
        "--json",
        "--handshakes",
        "5",
        "--pings",
        "20",
        "--pipelined",
        "200",
        "--inv1",
        "200",
        "--inv1000",
        "20",
        "--blocks",
        "3",
        "--block-size",
        "100000",
        "--peers",
        "20",
        "--hold",
        "0",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.events.len(), 1, "one JSON object: {r:?}");
    let report = &r.events[0];
    assert_eq!(report["event"], "bench");
    assert!(report["sha256d_mbps"].as_f64().is_some_and(|x| x > 0.0), "{report}");
    for transport in ["v1", "v2"] {
        let t = &report[transport];
        for figure in FIGURES {
            assert!(t[figure].as_f64().is_some_and(|x| x > 0.0), "{transport} {figure}: {t}");
            assert!(t["ratio_to_sha256d_mbps"][figure].as_f64().is_some_and(|x| x > 0.0), "{transport} {figure}");
        }
        assert!(t["times_btcd"]["inv1000_msgs_per_sec"].as_f64().is_some(), "{t}");
        assert!(t["block_size_bytes"].as_u64().is_some_and(|n| n > 90_000), "about --block-size: {t}");
    }
    let scale = &report["scale"];
    assert_eq!(scale["peers"], 20, "{scale}");
    assert_eq!(scale["connected_after_hold"], 20, "every idle peer stayed up: {scale}");
    assert!(scale["rss_per_peer_bytes"].as_u64().is_some(), "{scale}");
    // P-5: the v2 figures beside their baselines, named so a script finds them.
    let v2 = &report["scale_v2"];
    assert_eq!(v2["connected_after_hold"], 20, "{v2}");
    assert!(report["v2_idle_extra_bytes"].as_i64().is_some(), "{report}");
    assert!(report["aead_mbps"].as_f64().is_some_and(|x| x > 0.0), "{report}");
    assert!(report["aead_over_sha256d"].as_f64().is_some_and(|x| x > 0.0), "{report}");
    let h = &report["v2_handshake"];
    for key in ["floor_us", "handshake_us", "over_floor"] {
        assert!(h[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {h}");
    }
    for figure in ["block_raw_mbps", "block_decoded_mbps", "inv1000_msgs_per_sec", "ping_pipelined_per_sec"] {
        assert!(report["v2_over_v1"][figure].as_f64().is_some_and(|x| x > 0.0), "{figure}: {report}");
    }
}

#[test]
fn r_c5_bench_one_transport_and_usage_errors() {
    let r = run(&[
        "bench",
        "--json",
        "--transport",
        "v1",
        "--handshakes",
        "2",
        "--pings",
        "2",
        "--pipelined",
        "2",
        "--inv1",
        "2",
        "--inv1000",
        "2",
        "--blocks",
        "1",
        "--block-size",
        "1000",
        "--peers",
        "0",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let report = &r.events[0];
    assert!(report["v1"].is_object() && report["v2"].is_null() && report["scale"].is_null(), "{report}");

    let bad = run(&["bench", "--transport", "v3"]);
    assert_eq!(bad.code, 2, "{bad:?}");
}

/// `--peers` beyond the old 10,000 cap is accepted: the soft open-file limit is raised to the hard
/// one, the peers are cut to what it allows, and the report says which limit applied and projects
/// 100,000 idle peers from the per-peer figure.
#[test]
fn bench_peers_are_bounded_by_the_open_file_limit_it_raised_and_reports() {
    let mut cmd = std::process::Command::new("sh");
    // Hard limit 256, soft 64: with only the soft one, no pair would fit beside the reserve.
    cmd.args(["-c", "ulimit -Sn 64 && ulimit -Hn 256 && exec \"$@\"", "sh", env!("CARGO_BIN_EXE_btcpeer")]);
    cmd.args(["bench", "--json", "--transport", "v1", "--handshakes", "1", "--pings", "1", "--pipelined", "1"]);
    cmd.args(["--inv1", "1", "--inv1000", "1", "--blocks", "1", "--block-size", "1000"]);
    cmd.args(["--peers", "100000", "--hold", "0"]);
    let r = common::run_command(cmd, "btcpeer bench --peers 100000 under ulimit -n 256");
    assert_eq!(r.code, 0, "{r:?}");
    let scale = &r.events[0]["scale"];
    assert_eq!(scale["peers_requested"], 100_000, "{scale}");
    assert_eq!(scale["open_file_limit"], 256, "the soft limit raised to the hard one: {scale}");
    assert_eq!(scale["open_file_limit_hard"], 256, "{scale}");
    assert_eq!(scale["limited_by"], "open files", "{scale}");
    let peers = scale["peers"].as_u64().unwrap();
    assert!(peers > 100 && peers < 256 && peers % 2 == 0, "{scale}");
    assert_eq!(scale["connected_after_hold"].as_u64(), Some(peers), "every idle peer stayed up: {scale}");
    let per_peer = scale["rss_per_peer_bytes"].as_u64().unwrap();
    assert_eq!(scale["projected_rss_100000_peers_bytes"].as_u64(), Some(per_peer * 100_000), "{scale}");
}

#[test]
fn bench_peers_within_the_limits_are_not_cut_and_bad_counts_are_usage_errors() {
    let r = run(&[
        "bench",
        "--json",
        "--transport",
        "v2",
        "--handshakes",
        "1",
        "--pings",
        "1",
        "--pipelined",
        "1",
        "--inv1",
        "1",
        "--inv1000",
        "1",
        "--blocks",
        "1",
        "--block-size",
        "1000",
        "--peers",
        "12",
        "--hold",
        "0",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let scale = &r.events[0]["scale_v2"];
    assert_eq!((scale["peers"].as_u64(), scale["peers_requested"].as_u64()), (Some(12), Some(12)), "{scale}");
    assert!(scale["limited_by"].is_null(), "{scale}");
    assert!(scale["open_file_limit"].as_u64().is_some_and(|n| n > 12), "{scale}");
    assert!(scale["local_ports"].as_u64().is_some_and(|n| n > 0), "{scale}");
    for bad in ["-1", "4294967296", "many"] {
        let r = run(&["bench", "--peers", bad]);
        assert_eq!(r.code, 2, "--peers {bad}: {r:?}");
    }
}
