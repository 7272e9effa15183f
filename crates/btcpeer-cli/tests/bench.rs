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
