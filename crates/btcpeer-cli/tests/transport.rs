//! R-C2, R-C3 (`--transport v1|v2|auto` on `connect` and `listen`) and R-T5 (`connect --socks5`),
//! run as processes over 127.0.0.1, with a minimal SOCKS5 server in the test. Every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use btcpeer::network::Network;
use btcpeer::wire::{Message, blank_address, frame};

use common::{DEADLINE, Listener, run};

fn connect(addr: &str, extra: &[&str]) -> common::Run {
    let mut args = vec!["connect", addr, "--network", "regtest", "--json", "--timeout", "20"];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn r_c2_connect_auto_retries_in_v1() {
    let listener = Listener::start(&["--transport", "v1", "--duration", "30"]);
    let r = connect(&listener.addr(), &["--transport", "auto", "--ping", "1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.is_empty(), "{r:?}");
    let retry = r.of("retry");
    assert_eq!(retry.len(), 1, "{r:?}");
    assert_eq!(retry[0]["transport"], "v1");
    assert!(retry[0]["reason"].is_string() && retry[0]["kind"].is_string(), "{r:?}");
    assert!(r.position("retry") < r.position("handshake"), "{r:?}");
    let hs = r.of("handshake");
    assert_eq!(hs.len(), 1, "{r:?}");
    assert_eq!(hs[0]["transport"], "v1");
    assert_eq!(r.of("pong").len(), 1, "{r:?}");
    assert_eq!(r.of("stats")[0]["transport"], "v1");
    // Only the attempt that counted reports statistics and a disconnect.
    assert_eq!(r.of("stats").len(), 1, "{r:?}");
    assert_eq!(r.of("disconnect").len(), 1, "{r:?}");
}

#[test]
fn r_c2_connect_auto_retry_reads_well() {
    let listener = Listener::start(&["--transport", "v1", "--duration", "30"]);
    let r = run(&["connect", &listener.addr(), "--network", "regtest", "--timeout", "20"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout[0].starts_with("retry: ") && r.stdout[0].ends_with("dialing again in v1"), "{r:?}");
    assert!(r.stdout[1].starts_with("handshake: ") && r.stdout[1].contains("transport v1"), "{r:?}");
}

#[test]
fn r_c2_connect_v2() {
    let mut listener = Listener::start(&["--transport", "auto", "--duration", "30"]);
    let r = connect(&listener.addr(), &["--transport", "v2", "--ping", "2"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.of("retry").is_empty(), "{r:?}");
    let hs = r.of("handshake");
    assert_eq!(hs.len(), 1, "{r:?}");
    assert_eq!(hs[0]["transport"], "v2");
    assert!(
        hs[0]["service_names"].as_array().is_some_and(|s| s.iter().any(|n| n == "P2P_V2")),
        "a v2 listener advertises NODE_P2P_V2: {r:?}"
    );
    assert_eq!(r.of("pong").len(), 2, "{r:?}");
    let stats = r.of("stats")[0];
    assert_eq!(stats["transport"], "v2");
    assert_eq!(stats["per_command"]["pong"]["messages_received"], 2);

    // The listener saw the same.
    let local = stats["local_addr"].as_str().expect("local_addr").to_string();
    let accept = listener.wait_for("accept", |e| e["event"] == "accept" && e["addr"] == local.as_str());
    let id = accept["peer"].clone();
    let hs = listener.wait_for("handshake", |e| e["event"] == "handshake" && e["peer"] == id);
    assert_eq!(hs["transport"], "v2");
    let stats = listener.wait_for("stats", |e| e["event"] == "stats" && e["peer"] == id);
    assert_eq!(stats["transport"], "v2");
}

#[test]
fn r_c2_connect_auto_is_v2_when_the_remote_speaks_it() {
    let listener = Listener::start(&["--duration", "30"]);
    let r = connect(&listener.addr(), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.of("retry").is_empty(), "{r:?}");
    assert_eq!(r.of("handshake")[0]["transport"], "v2", "{r:?}");
}

#[test]
fn r_c2_connect_v2_to_a_v1_only_listener_fails_with_a_hint() {
    let listener = Listener::start(&["--transport", "v1", "--duration", "30"]);
    let r = connect(&listener.addr(), &["--transport", "v2"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.of("retry").is_empty() && r.of("handshake").is_empty(), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.stderr.contains("handshake failed") && r.stderr.contains("--transport auto"), "{r:?}");
}

#[test]
fn r_c3_listen_v2_required_refuses_v1() {
    let mut listener = Listener::start(&["--transport", "v2", "--duration", "30"]);
    let r = connect(&listener.addr(), &["--transport", "v1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.of("handshake").is_empty(), "{r:?}");
    assert!(r.stderr.starts_with("btcpeer connect: handshake failed"), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");

    let accept = listener.wait_for("accept", |e| e["event"] == "accept");
    let id = accept["peer"].clone();
    let d = listener.wait_for("disconnect", |e| e["event"] == "disconnect" && e["peer"] == id);
    assert_eq!(d["kind"], "protocol_violation", "{d}");
    assert!(d["reason"].as_str().is_some_and(|r| r.contains("v2 is required")), "{d}");
    assert!(!listener.events.iter().any(|e| e["event"] == "handshake" && e["peer"] == id), "{:#?}", listener.events);

    // A v2 initiator is welcome.
    let r = connect(&listener.addr(), &["--transport", "v2"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.of("handshake")[0]["transport"], "v2");
}

#[test]
fn r_c3_listen_auto_accepts_v1_and_v2() {
    let mut listener = Listener::start(&["--duration", "30"]);
    for transport in ["v1", "v2"] {
        let r = connect(&listener.addr(), &["--transport", transport]);
        assert_eq!(r.code, 0, "{r:?}");
        let local = r.of("stats")[0]["local_addr"].as_str().expect("local_addr").to_string();
        let accept = listener.wait_for("accept", |e| e["event"] == "accept" && e["addr"] == local.as_str());
        let id = accept["peer"].clone();
        let hs = listener.wait_for("handshake", |e| e["event"] == "handshake" && e["peer"] == id);
        assert_eq!(hs["transport"], transport);
    }
}

#[test]
fn r_c3_listen_on_a_taken_address_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = taken.local_addr().expect("addr").to_string();
    let r = run(&["listen", &addr, "--network", "regtest", "--duration", "1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.stderr.starts_with("btcpeer listen: cannot listen on"), "{r:?}");
}

/// What the in-test SOCKS5 server saw of one connection.
#[derive(Debug, Default, Clone)]
struct Proxied {
    /// The target as the client sent it: a name (ATYP 3) and a port.
    target: String,
    /// The first bytes the client sent after the proxy handshake.
    first_bytes: Vec<u8>,
}

/// A minimal SOCKS5 server on 127.0.0.1: no authentication, CONNECT to a domain name (ATYP 3)
/// only, every name mapped to `upstream`. Serves connections until the test ends.
fn socks5_server(upstream: String) -> (String, Arc<Mutex<Vec<Proxied>>>) {
    let server = TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = server.local_addr().expect("addr").to_string();
    let seen: Arc<Mutex<Vec<Proxied>>> = Arc::default();
    let log = seen.clone();
    thread::spawn(move || {
        for conn in server.incoming() {
            let Ok(client) = conn else { continue };
            let upstream = upstream.clone();
            let log = log.clone();
            thread::spawn(move || {
                let _ = proxy_one(client, &upstream, &log);
            });
        }
    });
    (addr, seen)
}

fn proxy_one(mut client: TcpStream, upstream: &str, log: &Mutex<Vec<Proxied>>) -> std::io::Result<()> {
    client.set_read_timeout(Some(DEADLINE))?;
    // Greeting: version 5, the methods offered; we choose "no authentication".
    let mut head = [0u8; 2];
    client.read_exact(&mut head)?;
    assert_eq!(head[0], 5, "SOCKS version");
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods)?;
    assert!(methods.contains(&0), "no-authentication offered: {methods:?}");
    client.write_all(&[5, 0])?;
    // Request: CONNECT, a domain name (the client must not resolve it).
    let mut req = [0u8; 4];
    client.read_exact(&mut req)?;
    assert_eq!(&req[..3], &[5, 1, 0], "CONNECT");
    assert_eq!(req[3], 3, "ATYP 3: the name, unresolved");
    let mut len = [0u8; 1];
    client.read_exact(&mut len)?;
    let mut name = vec![0u8; usize::from(len[0])];
    client.read_exact(&mut name)?;
    let mut port = [0u8; 2];
    client.read_exact(&mut port)?;
    let target = format!("{}:{}", String::from_utf8_lossy(&name), u16::from_be_bytes(port));
    let mut server = TcpStream::connect(upstream)?;
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0])?;
    // Relay both ways, keeping the first bytes the client sends.
    let mut first = vec![0u8; 4096];
    let n = client.read(&mut first)?;
    first.truncate(n);
    server.write_all(&first)?;
    log.lock().unwrap_or_else(|e| e.into_inner()).push(Proxied { target, first_bytes: first });
    let (mut c2, mut s2) = (client.try_clone()?, server.try_clone()?);
    let up = thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}

#[test]
fn r_t5_connect_through_socks5_onion_name() {
    let listener = Listener::start(&["--duration", "30"]);
    let (proxy, seen) = socks5_server(listener.addr());

    // Auto: v2 through the proxy.
    let r = connect("somename.onion:18444", &["--socks5", &proxy, "--ping", "1"]);
    assert_eq!(r.code, 0, "{r:?}");
    let hs = r.of("handshake");
    assert_eq!(hs.len(), 1, "{r:?}");
    assert_eq!(hs[0]["transport"], "v2");
    assert_eq!(hs[0]["addr"], "somename.onion:18444", "the peer is known by the name it was dialed by");
    assert_eq!(r.of("stats")[0]["addr"], "somename.onion:18444");

    // v1, so that our version message can be read on the way: it names neither the onion, nor the
    // proxy, nor anything else of ours.
    let r = connect("somename.onion:18444", &["--socks5", &proxy, "--transport", "v1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.of("handshake")[0]["transport"], "v1");

    let seen = seen.lock().expect("the proxy's log").clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|p| p.target == "somename.onion:18444"), "{seen:?}");
    let bytes = bytes::Bytes::from(seen[1].first_bytes.clone());
    let (raw, _) = frame::decode_frame(&bytes, &Network::REGTEST).expect("a v1 frame");
    let Message::Version(v) = raw.decode().expect("decodes") else { panic!("the first message is a version") };
    // The remote's address is blanked (its port may stay: the remote knows it), and neither the
    // proxy's address nor the name appears; our own address is blank too.
    let ip = std::net::Ipv6Addr::from(v.receiver.address);
    assert!(ip.is_unspecified() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_unspecified()), "{:?}", v.receiver);
    let proxy_port: u16 = proxy.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("a port");
    assert_ne!(v.receiver.port, proxy_port, "{:?}", v.receiver);
    assert_eq!(v.sender, blank_address(), "our address is not in our version");
    let name = b"somename";
    assert!(!seen[1].first_bytes.windows(name.len()).any(|w| w == name), "the name is not sent to the remote");
}

#[test]
fn r_t5_a_proxy_that_is_not_there_exits_1() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("binds");
        l.local_addr().expect("addr").port()
    };
    let r = connect("somename.onion:18444", &["--socks5", &format!("127.0.0.1:{port}")]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.stderr.contains("through the SOCKS5 proxy"), "{r:?}");
}
