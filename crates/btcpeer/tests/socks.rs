//! R-T5: dialing through a SOCKS5 proxy, against an in-test SOCKS5 server on loopback that records
//! what it was asked for and relays to real listeners. Run with `--features socks`.
#![cfg(feature = "socks")]

use std::collections::HashMap;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use btcpeer::network::Network;
use btcpeer::peer::{NonceRegistry, NoopHandler, Peer, PeerConfig, Transport, V2Policy};
use btcpeer::socks::{self, SocksAuth, SocksError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A bound on every wait.
const WAIT: Duration = Duration::from_secs(10);

const ONION: &str = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuv.onion";

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

/// How the in-test proxy behaves.
#[derive(Clone, Default)]
struct ProxyOpts {
    /// Required username and password; `None`: no authentication.
    auth: Option<(String, String)>,
    /// Names the proxy "resolves", to local listeners.
    names: HashMap<String, SocketAddr>,
    /// Refuse every request with this reply code.
    refuse: Option<u8>,
    /// Report the bound address as a name (ATYP 3) rather than an IPv4 address.
    bind_as_name: bool,
}

/// One CONNECT request the proxy received.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Request {
    atyp: u8,
    target: String,
    username: Option<String>,
}

type Seen = Arc<Mutex<Vec<Request>>>;

/// Starts the in-test SOCKS5 proxy on 127.0.0.1.
async fn start_proxy(opts: ProxyOpts) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let recorded = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (opts, recorded) = (opts.clone(), recorded.clone());
            tokio::spawn(async move {
                let _ = serve(stream, opts, recorded).await;
            });
        }
    });
    (addr, seen)
}

async fn read_vec(c: &mut TcpStream, len: usize) -> std::io::Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    c.read_exact(&mut v).await?;
    Ok(v)
}

async fn reply(c: &mut TcpStream, code: u8) -> std::io::Result<()> {
    c.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).await
}

async fn serve(mut c: TcpStream, opts: ProxyOpts, seen: Seen) -> std::io::Result<()> {
    let head = read_vec(&mut c, 2).await?;
    if head[0] != 5 {
        return Ok(());
    }
    let methods = read_vec(&mut c, usize::from(head[1])).await?;
    let mut username = None;
    match &opts.auth {
        Some((user, pass)) => {
            if !methods.contains(&2) {
                return c.write_all(&[5, 0xff]).await;
            }
            c.write_all(&[5, 2]).await?;
            let v = read_vec(&mut c, 2).await?;
            assert_eq!(v[0], 1, "RFC 1929 version");
            let u = read_vec(&mut c, usize::from(v[1])).await?;
            let plen = read_vec(&mut c, 1).await?;
            let p = read_vec(&mut c, usize::from(plen[0])).await?;
            if u != user.as_bytes() || p != pass.as_bytes() {
                return c.write_all(&[1, 1]).await;
            }
            c.write_all(&[1, 0]).await?;
            username = Some(String::from_utf8(u).unwrap());
        }
        None => {
            if !methods.contains(&0) {
                return c.write_all(&[5, 0xff]).await;
            }
            c.write_all(&[5, 0]).await?;
        }
    }
    let req = read_vec(&mut c, 4).await?;
    assert_eq!(&req[..3], &[5, 1, 0], "a CONNECT request");
    let atyp = req[3];
    let (target, dest) = match atyp {
        1 => {
            let a = read_vec(&mut c, 6).await?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let sa = SocketAddr::from((ip, u16::from_be_bytes([a[4], a[5]])));
            (sa.to_string(), Some(sa))
        }
        4 => {
            let a = read_vec(&mut c, 18).await?;
            let ip = Ipv6Addr::from(<[u8; 16]>::try_from(&a[..16]).unwrap());
            let sa = SocketAddr::from((ip, u16::from_be_bytes([a[16], a[17]])));
            (sa.to_string(), Some(sa))
        }
        3 => {
            let len = read_vec(&mut c, 1).await?;
            let name = String::from_utf8(read_vec(&mut c, usize::from(len[0])).await?).unwrap();
            let port = read_vec(&mut c, 2).await?;
            let port = u16::from_be_bytes([port[0], port[1]]);
            let dest = opts.names.get(&name).copied();
            (format!("{name}:{port}"), dest)
        }
        _ => return reply(&mut c, 8).await,
    };
    seen.lock().unwrap().push(Request { atyp, target, username });
    if let Some(code) = opts.refuse {
        return reply(&mut c, code).await;
    }
    let Some(dest) = dest else { return reply(&mut c, 4).await };
    let Ok(mut upstream) = TcpStream::connect(dest).await else { return reply(&mut c, 5).await };
    let bound = upstream.local_addr()?.port().to_be_bytes();
    if opts.bind_as_name {
        c.write_all(&[5, 0, 0, 3, 9]).await?;
        c.write_all(b"localhost").await?;
    } else {
        c.write_all(&[5, 0, 0, 1, 127, 0, 0, 1]).await?;
    }
    c.write_all(&bound).await?;
    tokio::io::copy_bidirectional(&mut c, &mut upstream).await?;
    Ok(())
}

/// A listener that echoes every byte back.
async fn echo_listener() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn assert_echoes(stream: &mut TcpStream, data: &[u8]) {
    stream.write_all(data).await.unwrap();
    let mut back = vec![0u8; data.len()];
    within(stream.read_exact(&mut back)).await.unwrap();
    assert_eq!(back, data);
}

#[tokio::test]
async fn r_t5_socks5_round_trip_to_an_ip_target() {
    let echo = echo_listener().await;
    for bind_as_name in [false, true] {
        let (proxy, seen) = start_proxy(ProxyOpts { bind_as_name, ..ProxyOpts::default() }).await;
        let mut stream = within(socks::connect(proxy, &echo.to_string(), None)).await.unwrap();
        // The bound address was consumed exactly: the first bytes read are the target's.
        assert_echoes(&mut stream, b"hello through socks").await;
        assert_echoes(&mut stream, &[0u8; 70_000]).await;
        assert_eq!(seen.lock().unwrap().clone(), vec![Request { atyp: 1, target: echo.to_string(), username: None }]);
    }
    // An IPv6 literal goes as ATYP 4 (the proxy has no route to it here: refused, typed).
    let (proxy, seen) = start_proxy(ProxyOpts::default()).await;
    let err = within(socks::connect(proxy, "[::1]:1", None)).await.unwrap_err();
    assert!(matches!(err, SocksError::Refused { code: 5, .. } | SocksError::Refused { code: 4, .. }), "{err:?}");
    assert_eq!(seen.lock().unwrap()[0], Request { atyp: 4, target: "[::1]:1".into(), username: None });
    // connect_timeout works the same when the proxy is prompt.
    let (proxy, _) = start_proxy(ProxyOpts::default()).await;
    let mut stream = socks::connect_timeout(proxy, &echo.to_string(), None, WAIT).await.unwrap();
    assert_echoes(&mut stream, b"x").await;
}

#[tokio::test]
async fn r_t5_socks5_passes_onion_names_to_the_proxy_unresolved() {
    let echo = echo_listener().await;
    let names = HashMap::from([(ONION.to_string(), echo), ("node.example".to_string(), echo)]);
    let (proxy, seen) = start_proxy(ProxyOpts { names, ..ProxyOpts::default() }).await;
    let target = format!("{ONION}:8333");
    let mut stream = within(socks::connect(proxy, &target, None)).await.unwrap();
    assert_echoes(&mut stream, b"onion bytes").await;
    // DNS names are not resolved locally either (this one does not even exist).
    let mut stream = within(socks::connect(proxy, "node.example:18444", None)).await.unwrap();
    assert_echoes(&mut stream, b"dns bytes").await;
    // A 255-byte name is the longest the protocol carries, and is passed as is.
    let longest = "a".repeat(255);
    let err = within(socks::connect(proxy, &format!("{longest}:1"), None)).await.unwrap_err();
    assert!(matches!(err, SocksError::Refused { code: 4, reason: "host unreachable" }), "{err:?}");
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![
            Request { atyp: 3, target, username: None },
            Request { atyp: 3, target: "node.example:18444".into(), username: None },
            Request { atyp: 3, target: format!("{longest}:1"), username: None },
        ]
    );
    // Bad targets are rejected before the proxy is contacted.
    for bad in ["no-port", "host:", "host:http", "host:70000", ":8333", "[::1]", "::1:8333"] {
        let err = within(socks::connect(proxy, bad, None)).await.unwrap_err();
        assert!(matches!(err, SocksError::BadTarget(_)), "{bad}: {err:?}");
    }
    let err = within(socks::connect(proxy, &format!("{}:1", "a".repeat(256)), None)).await.unwrap_err();
    assert!(matches!(err, SocksError::BadTarget(_)), "{err:?}");
    assert_eq!(seen.lock().unwrap().len(), 3, "no request for a bad target");
}

#[tokio::test]
async fn r_t5_socks5_username_password_auth() {
    let echo = echo_listener().await;
    let opts = ProxyOpts { auth: Some(("alice".into(), "wonderland".into())), ..ProxyOpts::default() };
    let (proxy, seen) = start_proxy(opts).await;
    let target = echo.to_string();

    let good = SocksAuth::new("alice", "wonderland").unwrap();
    let mut stream = within(socks::connect(proxy, &target, Some(&good))).await.unwrap();
    assert_echoes(&mut stream, b"authenticated").await;
    assert_eq!(seen.lock().unwrap()[0].username.as_deref(), Some("alice"));

    let bad = SocksAuth::new("alice", "looking-glass").unwrap();
    let err = within(socks::connect(proxy, &target, Some(&bad))).await.unwrap_err();
    assert!(matches!(err, SocksError::AuthFailed), "{err:?}");

    // Without credentials, a proxy that requires them accepts none of our methods.
    let err = within(socks::connect(proxy, &target, None)).await.unwrap_err();
    assert!(matches!(err, SocksError::NoAcceptableAuth), "{err:?}");
    assert_eq!(seen.lock().unwrap().len(), 1, "only the authenticated request got through");

    // With credentials, both methods are offered and the proxy's choice is followed, as Bitcoin Core
    // does: a proxy without authentication accepts the connection without them.
    let (open_proxy, _) = start_proxy(ProxyOpts::default()).await;
    let mut stream = within(socks::connect(open_proxy, &target, Some(&good))).await.expect("no-auth proxy accepted");
    stream.write_all(b"ping").await.unwrap();

    // Credentials are checked: 1 to 255 bytes each, also when built directly.
    assert!(matches!(SocksAuth::new("", "x"), Err(SocksError::BadCredentials("username"))));
    assert!(matches!(SocksAuth::new("u", "x".repeat(256)), Err(SocksError::BadCredentials("password"))));
    assert!(SocksAuth::new("u".repeat(255), "x".repeat(255)).is_ok());
    let direct = SocksAuth { username: "u".repeat(256), password: "x".into() };
    let err = within(socks::connect(proxy, &target, Some(&direct))).await.unwrap_err();
    assert!(matches!(err, SocksError::BadCredentials("username")), "{err:?}");
    assert!(!format!("{good:?}").contains("wonderland"), "Debug hides the password");
}

#[tokio::test]
async fn r_t5_socks5_refusal_is_typed() {
    let echo = echo_listener().await;
    let (proxy, seen) = start_proxy(ProxyOpts { refuse: Some(5), ..ProxyOpts::default() }).await;
    let err = within(socks::connect(proxy, &echo.to_string(), None)).await.unwrap_err();
    let SocksError::Refused { code, reason } = err else { panic!("{err:?}") };
    assert_eq!((code, reason), (5, "connection refused"));
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert!(
        SocksError::Refused { code, reason }.to_string().contains("connection refused"),
        "the message names the reason"
    );

    // Every RFC 1928 code is mapped to its text.
    let expected = [
        (1, "general SOCKS server failure"),
        (2, "connection not allowed by ruleset"),
        (3, "network unreachable"),
        (4, "host unreachable"),
        (5, "connection refused"),
        (6, "TTL expired"),
        (7, "command not supported"),
        (8, "address type not supported"),
    ];
    for (code, text) in expected {
        let (proxy, _) = start_proxy(ProxyOpts { refuse: Some(code), ..ProxyOpts::default() }).await;
        let err = within(socks::connect(proxy, ONION_TARGET, None)).await.unwrap_err();
        assert!(matches!(err, SocksError::Refused { code: c, reason } if c == code && reason == text), "{err:?}");
    }

    // A proxy that cannot reach the target says so, typed.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let (proxy, _) = start_proxy(ProxyOpts::default()).await;
    let err = within(socks::connect(proxy, &closed.to_string(), None)).await.unwrap_err();
    assert!(matches!(err, SocksError::Refused { code: 5, .. }), "{err:?}");

    // No proxy at all: an I/O error.
    let err = within(socks::connect(closed, &echo.to_string(), None)).await.unwrap_err();
    assert!(matches!(err, SocksError::Io(_)), "{err:?}");
}

const ONION_TARGET: &str = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuv.onion:8333";

/// A proxy that answers each connection (in order) with a script: for each stage, read whatever
/// the client sent, then write the stage's bytes; after the last stage, close.
async fn hostile(scripts: Vec<Vec<Vec<u8>>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for script in scripts {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let mut buf = [0u8; 1024];
            for stage in script {
                match stream.read(&mut buf).await {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
                if stream.write_all(&stage).await.is_err() {
                    break;
                }
            }
            let _ = stream.shutdown().await;
        }
    });
    addr
}

#[tokio::test]
async fn r_t5_socks5_hostile_proxy_never_panics() {
    type Check = fn(&SocksError) -> bool;
    let protocol: Check = |e| matches!(e, SocksError::ProxyProtocol(_));
    let ok_greeting = vec![5u8, 0];
    let cases: Vec<(&str, Vec<Vec<u8>>, Check)> = vec![
        ("silence then EOF", vec![vec![]], protocol),
        ("wrong version in the greeting reply", vec![vec![4, 0]], protocol),
        ("HTTP instead of SOCKS", vec![b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()], protocol),
        ("truncated greeting reply", vec![vec![5]], protocol),
        ("a method we did not offer", vec![vec![5, 2]], protocol),
        ("no acceptable method", vec![vec![5, 0xff]], |e| matches!(e, SocksError::NoAcceptableAuth)),
        ("a megabyte of garbage", vec![vec![0xff; 1 << 20]], protocol),
        ("wrong version in the connect reply", vec![ok_greeting.clone(), vec![4, 0, 0, 1, 0, 0, 0, 0, 0, 0]], protocol),
        ("truncated connect reply", vec![ok_greeting.clone(), vec![5, 0]], protocol),
        ("unknown address type", vec![ok_greeting.clone(), vec![5, 0, 0, 9, 1, 2, 3, 4, 5, 6]], protocol),
        ("non-zero reserved byte", vec![ok_greeting.clone(), vec![5, 0, 7, 1, 0, 0, 0, 0, 0, 0]], protocol),
        ("domain length 255 then EOF", vec![ok_greeting.clone(), vec![5, 0, 0, 3, 255]], protocol),
        (
            "domain length 255, 100 bytes, EOF",
            vec![ok_greeting.clone(), [vec![5, 0, 0, 3, 255], vec![b'a'; 100]].concat()],
            protocol,
        ),
        ("IPv6 bound address cut short", vec![ok_greeting.clone(), vec![5, 0, 0, 4, 1, 2, 3, 4, 5, 6, 7, 8]], protocol),
        ("IPv4 bound address without a port", vec![ok_greeting.clone(), vec![5, 0, 0, 1, 127, 0, 0, 1]], protocol),
        ("an unassigned reply code", vec![ok_greeting.clone(), vec![5, 0x99, 0, 1, 0, 0, 0, 0, 0, 0]], |e| {
            matches!(e, SocksError::Refused { code: 0x99, .. })
        }),
        ("a Tor onion-service code", vec![ok_greeting.clone(), vec![5, 0xf6, 0, 1, 0, 0, 0, 0, 0, 0]], |e| {
            matches!(e, SocksError::Refused { code: 0xf6, reason: "onion service invalid address" })
        }),
    ];
    // With credentials: broken authentication replies.
    let auth = SocksAuth::new("u", "p").unwrap();
    let auth_cases: Vec<(&str, Vec<Vec<u8>>, Check)> = vec![
        ("a SOCKS5 version in the auth reply", vec![vec![5, 2], vec![5, 0]], protocol),
        ("truncated auth reply", vec![vec![5, 2], vec![1]], protocol),
        ("auth refused", vec![vec![5, 2], vec![1, 0xff]], |e| matches!(e, SocksError::AuthFailed)),
        ("method 0 when 2 was offered", vec![vec![5, 0]], protocol),
    ];

    let scripts = cases.iter().chain(&auth_cases).map(|(_, s, _)| s.clone()).collect();
    let addr = hostile(scripts).await;
    for (name, _, check) in &cases {
        let err = within(socks::connect(addr, ONION_TARGET, None)).await.expect_err(name);
        assert!(check(&err), "{name}: {err:?}");
    }
    for (name, _, check) in &auth_cases {
        let err = within(socks::connect(addr, ONION_TARGET, Some(&auth))).await.expect_err(name);
        assert!(check(&err), "{name}: {err:?}");
    }

    // A valid reply with a 255-byte bound name is read exactly, leaving the stream at the
    // target's first byte.
    let bound = [vec![5, 0, 0, 3, 255], vec![b'n'; 255], vec![0x20, 0x8d], b"first".to_vec()].concat();
    let addr = hostile(vec![vec![ok_greeting.clone(), bound]]).await;
    let mut stream = within(socks::connect(addr, ONION_TARGET, None)).await.unwrap();
    let mut first = Vec::new();
    within(stream.read_to_end(&mut first)).await.unwrap();
    assert_eq!(first, b"first");

    // A proxy that never answers: the deadline.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        tokio::time::sleep(WAIT).await;
        drop(stream);
    });
    let err = socks::connect_timeout(silent, ONION_TARGET, None, Duration::from_millis(200)).await.unwrap_err();
    assert!(matches!(err, SocksError::Timeout), "{err:?}");
    holder.abort();

    // Random replies, deterministic: whatever the proxy says, a result and no panic.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut scripts = Vec::new();
    for _ in 0..200 {
        let greeting = if next() % 4 == 0 { vec![next() as u8, next() as u8] } else { ok_greeting.clone() };
        let atyp = [1u8, 3, 4, next() as u8][(next() % 4) as usize];
        let mut reply = vec![5, if next() % 8 == 0 { next() as u8 } else { 0 }, 0, atyp];
        let len = (next() % 300) as usize;
        reply.extend((0..len).map(|_| next() as u8));
        scripts.push(vec![greeting, reply]);
    }
    let addr = hostile(scripts).await;
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..200 {
        match within(socks::connect(addr, ONION_TARGET, None)).await {
            Ok(_) => ok += 1,
            Err(SocksError::Io(e)) => panic!("I/O error from a loopback proxy: {e}"),
            Err(_) => failed += 1,
        }
    }
    assert_eq!(ok + failed, 200);
    assert!(failed > 0);
}

#[tokio::test]
async fn r_t5_a_peer_handshakes_through_socks5_without_leaking_the_proxy_address() {
    let config = || PeerConfig::builder(Network::REGTEST).nonce_registry(NonceRegistry::new());

    // The inbound side: a btcpeer listening on loopback.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listen_addr = listener.local_addr().unwrap();
    let (tx, mut inbound) = tokio::sync::mpsc::unbounded_channel();
    let inbound_config = config().build().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, from)) = listener.accept().await {
            let peer = Peer::inbound(inbound_config.clone(), from, NoopHandler);
            peer.associate(stream).unwrap();
            if tx.send(peer).is_err() {
                return;
            }
        }
    });

    // The proxy knows the onion name as that listener.
    let names = HashMap::from([("somename.onion".to_string(), listen_addr)]);
    let (proxy_addr, seen) = start_proxy(ProxyOpts { names, ..ProxyOpts::default() }).await;

    // The outbound side dials through the proxy by name.
    let target = "somename.onion:8333";
    let stream = within(socks::connect(proxy_addr, target, None)).await.unwrap();
    let outbound = Peer::outbound(config().proxy(proxy_addr).build().unwrap(), target, NoopHandler);
    outbound.associate(stream).unwrap();
    let inbound = within(inbound.recv()).await.unwrap();

    let out_info = within(outbound.handshake()).await.unwrap();
    let in_info = within(inbound.handshake()).await.unwrap();
    assert_eq!(out_info.negotiated_version, in_info.negotiated_version);
    assert_eq!(seen.lock().unwrap().clone(), vec![Request { atyp: 3, target: target.into(), username: None }]);

    // What the remote learned from our version message: no IP (0.0.0.0, IPv4-mapped), only the
    // port it was dialed on; nothing of the proxy nor of the name.
    let version = inbound.remote().unwrap().version;
    assert_eq!(version.receiver.address, [0, 0, 0, 0, 0, 0xffff, 0, 0], "receiver IP is 0.0.0.0");
    assert_eq!(version.receiver.port, 8333);
    let ip = version.receiver.socket_addr().unwrap().ip();
    assert!(ip.to_canonical().is_unspecified(), "{ip}");
    assert_ne!(version.receiver.port, proxy_addr.port());
    assert_eq!(version.sender.address, [0; 8], "our own address is not advertised");
    let dump = format!("{version:?}");
    assert!(!dump.contains("somename"), "{dump}");

    outbound.disconnect();
    within(outbound.wait_for_disconnect()).await;
    within(inbound.wait_for_disconnect()).await;
}

/// Item 18 (issue 23), with the feature: `Peer::connect` sends every dial through the configured
/// proxy, the v1 redial after a remote hung up on our v2 key included; the remote sees as many
/// connections as the proxy was asked for, none directly. (Core: `ConnectNode` goes through
/// `ConnectThroughProxy` whenever a proxy is set for the network.)
#[tokio::test]
async fn r_t5_connect_sends_every_dial_through_the_proxy_the_v1_redial_included() {
    let config = || PeerConfig::builder(Network::REGTEST).nonce_registry(NonceRegistry::new());
    // A v1-only btcpeer on loopback: it hangs up on a v2 key, so a v2-preferring dialer redials.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listen_addr = listener.local_addr().unwrap();
    let accepted = Arc::new(Mutex::new(0u32));
    let inbound_config = config().v2(V2Policy::Never).build().unwrap();
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut peers = Vec::new();
        while let Ok((stream, from)) = listener.accept().await {
            *count.lock().unwrap() += 1;
            let peer = Peer::inbound(inbound_config.clone(), from, NoopHandler);
            peer.associate(stream).unwrap();
            peers.push(peer);
        }
    });
    let (proxy, seen) = start_proxy(ProxyOpts::default()).await;

    let outbound = config().proxy(proxy).v2(V2Policy::Prefer).build().unwrap();
    let (peer, remote) = within(Peer::connect(&listen_addr.to_string(), outbound, NoopHandler)).await.unwrap();
    assert_eq!(peer.stats().transport, Transport::V1, "redialed in v1");
    assert!(remote.negotiated_version > 0);
    let asked = seen.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "the v2 dial and the v1 redial both through the proxy: {asked:?}");
    assert!(asked.iter().all(|r| r.atyp == 1 && r.target == listen_addr.to_string()));
    assert_eq!(*accepted.lock().unwrap(), 2, "no connection reached the remote but through the proxy");
    peer.disconnect();
    within(peer.wait_for_disconnect()).await;
}
