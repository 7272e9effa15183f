//! Numbers and text for people: byte sizes, round trips, cells cut to a width (the demo's table
//! and `btcpeer node`'s).

/// Bytes with a binary unit: `812 B`, `4.3 KiB`, `1.2 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if n < 1024 {
        format!("{n} B")
    } else if f < KIB * KIB {
        format!("{:.1} KiB", f / KIB)
    } else {
        format!("{:.1} MiB", f / (KIB * KIB))
    }
}

/// A round trip: `98 µs`, `1.24 ms`, `-`.
pub(crate) fn rtt_text(us: Option<u64>) -> String {
    match us {
        None => "-".to_string(),
        Some(us) if us < 1_000 => format!("{us} µs"),
        Some(us) => format!("{:.2} ms", us as f64 / 1_000.0),
    }
}

/// `text` cut to `width` characters, with an ellipsis when cut.
pub(crate) fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}
