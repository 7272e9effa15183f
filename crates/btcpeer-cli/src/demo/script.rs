//! What each outbound peer does, step by step (see the module docs of `demo`).

use super::*;

/// What every outbound peer's script needs.
pub(super) struct Ctx {
    pub(super) shared: Arc<DemoShared>,
    pub(super) node: SocketAddr,
    pub(super) limit: Duration,
    pub(super) peers: usize,
    pub(super) config: PeerConfigBuilder,
    /// Stay connected until then, pinging and announcing (`--duration`).
    pub(super) linger_until: Option<Instant>,
    /// Set on Ctrl-C: the lingering ends.
    pub(super) stop: watch::Receiver<bool>,
    /// Scripts that finished every step.
    pub(super) finished: AtomicUsize,
    pub(super) salt: u64,
}

/// Which transport outbound peer `index` speaks.
pub(super) fn transport_of(choice: TransportArg, index: usize) -> Transport {
    match choice {
        TransportArg::V1 => Transport::V1,
        TransportArg::V2 => Transport::V2,
        // Half and half, starting with v2 (a single peer prefers v2, as auto does).
        TransportArg::Auto if index % 2 == 0 => Transport::V2,
        TransportArg::Auto => Transport::V1,
    }
}

/// Waits for what `pick` accepts among what the handler heard, at most `limit`, while the peer lives.
pub(super) async fn next_heard<T>(
    peer: &Peer,
    heard: &mut mpsc::UnboundedReceiver<Heard>,
    limit: Duration,
    what: &str,
    mut pick: impl FnMut(Heard) -> Option<T>,
) -> Result<T, Failure> {
    let mut closed = pin!(peer.closed());
    let mut deadline = pin!(tokio::time::sleep(limit));
    loop {
        tokio::select! {
            got = heard.recv() => match got {
                Some(h) => if let Some(t) = pick(h) { return Ok(t) },
                None => return Err((EXIT_FAILURE, format!("peer {}: ended while waiting for {what}", peer.id()))),
            },
            reason = &mut closed => {
                return Err((exit_code(&reason), format!("peer {}: disconnected waiting for {what}: {reason}", peer.id())));
            }
            () = &mut deadline => {
                return Err((EXIT_TIMEOUT, format!("peer {}: no {what} within {}", peer.id(), secs(limit))));
            }
        }
    }
}

/// Waits until `done` holds, at most `limit`, while the peer lives.
pub(super) async fn until(peer: &Peer, limit: Duration, what: &str, done: impl Fn() -> bool) -> Result<(), Failure> {
    let started = Instant::now();
    loop {
        if done() {
            return Ok(());
        }
        if let Some(reason) = peer.disconnect_reason() {
            return Err((exit_code(&reason), format!("peer {}: disconnected waiting for {what}: {reason}", peer.id())));
        }
        if started.elapsed() >= limit {
            return Err((EXIT_TIMEOUT, format!("peer {}: no {what} within {}", peer.id(), secs(limit))));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Sends a ping and waits for its pong; reports it as ping `seq`.
pub(super) async fn ping(
    ctx: &Ctx,
    peer: &Peer,
    heard: &mut mpsc::UnboundedReceiver<Heard>,
    seq: u64,
) -> Result<(), Failure> {
    let nonce = nonce();
    let sent_at = Instant::now();
    drop(
        peer.queue_message(&Message::Ping(nonce))
            .map_err(|e| (EXIT_FAILURE, format!("peer {}: cannot send ping {seq}: {e}", peer.id())))?,
    );
    let rtt = next_heard(peer, heard, ctx.limit, &format!("pong to ping {seq}"), |h| match h {
        Heard::Pong { nonce: n, rtt, at } if n == nonce => Some(rtt.unwrap_or_else(|| at.duration_since(sent_at))),
        _ => None,
    })
    .await?;
    ctx.shared.tally.rtt(rtt);
    ctx.shared.emit(DemoEvent::Pong { peer: peer.id(), seq, rtt_us: micros(rtt) });
    Ok(())
}

/// Announces made-up transactions number `from` … `to - 1`.
pub(super) fn announce(ctx: &Ctx, peer: &Peer, index: usize, from: u64, to: u64) {
    let mut count = 0u64;
    for k in from..to {
        let (txid, wtxid) = made_up_tx(ctx.salt, index, k);
        if peer.queue_transaction(txid, wtxid) {
            count = count.saturating_add(1);
        }
    }
    Tally::add(&ctx.shared.tally.announced, count);
    ctx.shared.emit(DemoEvent::Announce { peer: peer.id(), count });
}

/// Fetches every header from genesis; returns them.
pub(super) async fn sync_headers(
    ctx: &Ctx,
    peer: &Peer,
    heard: &mut mpsc::UnboundedReceiver<Heard>,
    progress: &Progress,
    genesis: BlockHash,
    target: u64,
) -> Result<Vec<Header>, Failure> {
    let mut all: Vec<Header> = Vec::new();
    let mut sync = crate::headers::HeaderSync::new(SyncFrom::Genesis(genesis));
    let failed = |(code, why): Failure| (code, format!("peer {}: {why}", peer.id()));
    loop {
        let n = sync.request(peer).map_err(failed)?;
        let batch = next_heard(peer, heard, ctx.limit, &format!("headers batch {n}"), |h| match h {
            Heard::Headers(headers) => Some(headers),
            _ => None,
        })
        .await?;
        let done = sync.accept(&batch).map_err(failed)?;
        all.extend(batch);
        progress.set(format!("headers {}/{}", group(all.len() as u64), group(target)));
        if done {
            break;
        }
    }
    let synced = sync.synced();
    Tally::add(&ctx.shared.tally.headers, all.len() as u64);
    // The demo's event has no rate: the pace between steps would make it meaningless.
    ctx.shared.emit(DemoEvent::Headers(synced.done(peer.id())));
    Ok(all)
}

/// Asks for the block at `height` of `headers` and checks it.
pub(super) async fn fetch_block(
    ctx: &Ctx,
    peer: &Peer,
    heard: &mut mpsc::UnboundedReceiver<Heard>,
    headers: &[Header],
    height: usize,
) -> Result<(), Failure> {
    let Some(header) = height.checked_sub(1).and_then(|i| headers.get(i)) else {
        return Err((EXIT_FAILURE, format!("peer {}: no header at height {height} to ask a block for", peer.id())));
    };
    let hash = header.block_hash();
    drop(
        peer.queue_message(&Message::GetData(vec![Inventory::Block(hash)]))
            .map_err(|e| (EXIT_FAILURE, format!("peer {}: cannot send getdata: {e}", peer.id())))?,
    );
    let (block, size) = next_heard(peer, heard, ctx.limit, &format!("block {height}"), |h| match h {
        Heard::Block(block, size) => Some((block, size)),
        _ => None,
    })
    .await?;
    if block.block_hash() != hash {
        return Err((EXIT_FAILURE, format!("peer {}: asked for block {hash}, got {}", peer.id(), block.block_hash())));
    }
    if !block.check_merkle_root() {
        return Err((EXIT_FAILURE, format!("peer {}: block {hash} has a wrong merkle root", peer.id())));
    }
    Tally::add(&ctx.shared.tally.blocks, 1);
    ctx.shared.emit(DemoEvent::Block {
        peer: peer.id(),
        hash: hash.to_string(),
        height,
        txs: block.txdata.len(),
        size,
        merkle_root_ok: true,
    });
    Ok(())
}

/// One outbound peer: dial the node and go through every step (see the module docs).
pub(super) async fn client(ctx: Arc<Ctx>, index: usize, transport: Transport) -> Result<(), Failure> {
    let who = format!("outbound peer #{}", index.saturating_add(1));
    let policy = match transport {
        Transport::V2 => V2Policy::Require,
        _ => V2Policy::Never,
    };
    let config = ctx
        .config
        .clone()
        .user_agent_comment(format!("peer-{}", index.saturating_add(1)))
        .v2(policy)
        .build()
        .map_err(|e| (EXIT_FAILURE, format!("{who}: {e}")))?;
    // Created before dialing, so that our peers are numbered first, in order.
    let progress = Arc::new(Progress::default());
    progress.set("connecting");
    let (tx, mut heard) = mpsc::unbounded_channel();
    let handler = Client { shared: ctx.shared.clone(), progress: progress.clone(), heard: tx };
    let peer = Peer::outbound(config, ctx.node, handler);
    lock(&ctx.shared.rows).push((peer.clone(), Role::Client(progress.clone())));
    let stream = match tokio::time::timeout(ctx.limit, TcpStream::connect(ctx.node)).await {
        Err(_) => return Err((EXIT_TIMEOUT, format!("{who}: no connection to the node within {}", secs(ctx.limit)))),
        Ok(Err(e)) => return Err((EXIT_FAILURE, format!("{who}: cannot connect to the node: {e}"))),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr();
    progress.set("handshake");
    let associated = match local {
        Ok(local) => peer.associate_with_local(stream, local).map_err(|e| e.to_string()),
        Err(_) => peer.associate(stream).map_err(|e| e.to_string()),
    };
    associated.map_err(|e| (EXIT_FAILURE, format!("peer {}: {e}", peer.id())))?;

    let result = steps(&ctx, &peer, &mut heard, &progress, index, transport).await;
    match &result {
        Ok(()) => progress.set("done ✓"),
        Err(_) => progress.set("failed ✗"),
    }
    result
}

/// The steps of one outbound peer, after it is connected.
pub(super) async fn steps(
    ctx: &Ctx,
    peer: &Peer,
    heard: &mut mpsc::UnboundedReceiver<Heard>,
    progress: &Progress,
    index: usize,
    transport: Transport,
) -> Result<(), Failure> {
    let id = peer.id();
    let remote = match tokio::time::timeout(ctx.limit.saturating_add(Duration::from_secs(1)), peer.handshake()).await {
        Ok(Ok(remote)) => remote,
        Ok(Err(reason)) => return Err((exit_code(&reason), format!("peer {id}: handshake failed: {reason}"))),
        Err(_) => return Err((EXIT_TIMEOUT, format!("peer {id}: handshake timed out after {}", secs(ctx.limit)))),
    };
    if remote.transport != transport {
        return Err((
            EXIT_FAILURE,
            format!("peer {id}: handshake in {}, expected {}", remote.transport.as_str(), transport.as_str()),
        ));
    }

    for seq in 1..=PINGS {
        tokio::time::sleep(PACE).await;
        progress.set(format!("ping {seq}/{PINGS}"));
        ping(ctx, peer, heard, u64::from(seq)).await?;
    }

    // Announce once the node knows every peer, so that each announcement reaches all the others.
    progress.set("waiting");
    until(peer, ctx.limit, "handshakes of every peer with the node", || {
        ctx.shared.node_handshakes.load(Ordering::Relaxed) >= ctx.peers
    })
    .await?;
    tokio::time::sleep(PACE).await;
    progress.set("announce");
    announce(ctx, peer, index, 0, TXS);
    tokio::time::sleep(PACE).await;

    let genesis = btcpeer::bitcoin::blockdata::constants::genesis_block(btcpeer::bitcoin::Network::Regtest);
    let target = u64::try_from(remote.version.start_height).unwrap_or(0);
    progress.set("headers");
    let headers = sync_headers(ctx, peer, heard, progress, genesis.block_hash(), target).await?;
    if headers.len() < MAX_HEADERS as usize {
        return Err((EXIT_FAILURE, format!("peer {id}: only {} headers; the demo chain has more", headers.len())));
    }

    // Each peer asks for a different block near the tip.
    let height = headers.len().saturating_sub(index % headers.len());
    tokio::time::sleep(PACE).await;
    progress.set(format!("block {}", group(height as u64)));
    fetch_block(ctx, peer, heard, &headers, height).await?;

    progress.set("addresses");
    let want_addrs = made_up_addresses().len() as u64;
    until(peer, ctx.limit, "addresses from the node", || progress.addr_entries.load(Ordering::Relaxed) >= want_addrs)
        .await?;

    let want_inv = TXS.saturating_mul(ctx.peers.saturating_sub(1) as u64);
    progress.set("relay");
    until(peer, ctx.limit, &format!("{want_inv} relayed announcements"), || {
        let got = progress.inv_items.load(Ordering::Relaxed);
        progress.set(format!("relay {got}/{want_inv}"));
        got >= want_inv
    })
    .await?;
    // Every peer's announcements have reached the node (with one peer nothing is relayed, but its
    // own announcements must still arrive before the counts are final).
    let want_heard = TXS.saturating_mul(ctx.peers as u64);
    until(peer, ctx.limit, &format!("{want_heard} announcements at the node"), || {
        Tally::get(&ctx.shared.tally.node_heard) >= want_heard
    })
    .await?;
    ctx.finished.fetch_add(1, Ordering::Relaxed);

    if let Some(end) = ctx.linger_until {
        linger(ctx, peer, heard, progress, index, end).await?;
    }
    Ok(())
}

/// `--duration`: once a second, a ping and an announcement, until `end` or Ctrl-C.
pub(super) async fn linger(
    ctx: &Ctx,
    peer: &Peer,
    heard: &mut mpsc::UnboundedReceiver<Heard>,
    progress: &Progress,
    index: usize,
    end: Instant,
) -> Result<(), Failure> {
    let mut stop = ctx.stop.clone();
    let mut seq = u64::from(PINGS);
    let mut k = TXS;
    loop {
        let now = Instant::now();
        if now >= end || *stop.borrow() {
            return Ok(());
        }
        progress.set(format!("live {}s", end.saturating_duration_since(now).as_secs()));
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1).min(end.saturating_duration_since(now))) => {}
            _ = stop.changed() => return Ok(()),
        }
        if Instant::now() >= end {
            return Ok(());
        }
        seq = seq.saturating_add(1);
        ping(ctx, peer, heard, seq).await?;
        announce(ctx, peer, index, k, k.saturating_add(1));
        k = k.saturating_add(1);
    }
}
