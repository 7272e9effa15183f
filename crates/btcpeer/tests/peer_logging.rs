//! R-O2: a span per peer, a debug line per message, trace dumps of raw frames.
//!
//! Alone in its binary: tracing caches each call site's interest the first time it is hit, so a
//! test without a subscriber running alongside could hide this test's events.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use btcpeer::peer::NoopHandler;
use btcpeer::wire::Message;
use common::*;

/// Collects what the fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn r_o2_logs_carry_a_span_per_peer_a_line_per_message_and_trace_dumps() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("btcpeer=trace")
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (o, i) = duplex_pair(config(), NoopHandler, config(), NoopHandler);
    within(o.handshake()).await.unwrap();
    within(o.queue_message(&Message::Ping(0xabcdef)).unwrap().wait()).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    o.disconnect();
    within(i.wait_for_disconnect()).await;
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let id = o.id();
    assert!(text.contains(&format!("peer{{id={id} addr=127.0.0.1:18444 dir=outbound}}")), "{text}");
    assert!(text.contains("dir=inbound"), "{text}");
    assert!(text.contains("command=version") && text.contains("sent") && text.contains("recv"), "{text}");
    assert!(text.contains("handshake complete"), "{text}");
    assert!(text.contains("efcdab0000000000"), "trace hex dump of the ping payload: {text}");
    assert!(text.contains("disconnected"), "{text}");
}
