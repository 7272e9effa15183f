//! R-A for BIP157 (item 15 of issue 23): filters, filter headers and checkpoints against the testing
//! chain server and against a remote driven by hand — whole ranges, in order, never a gap.

use super::*;

#[tokio::test]
async fn r_a_bip157_filters_headers_and_checkpoints_from_the_chain_server() {
    let chain = chain(2_100);
    let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS | ServiceFlags::COMPACT_FILTERS;
    let (client, _server, _rx) = pair(ChainServer::new(chain.clone()), services).await;
    let filters = within(client.get_cfilters(0, 10, chain.hash(30))).await.unwrap();
    assert_eq!(filters.len(), 21);
    for (i, f) in filters.iter().enumerate() {
        assert_eq!(f.block_hash, chain.hash(10 + i));
        assert_eq!(f.filter, chain.filter(10 + i));
        assert!(!f.filter.is_empty());
    }
    let headers = within(client.get_cfheaders(0, 10, chain.hash(30))).await.unwrap();
    assert_eq!(headers.filter_hashes.len(), 21);
    assert_eq!(headers.previous_filter_header, chain.filter_header(9));
    let checkpoints = within(client.get_cfcheckpt(0, chain.hash(2_050))).await.unwrap();
    assert_eq!(checkpoints.filter_headers, vec![chain.filter_header(1_000), chain.filter_header(2_000)]);

    // A remote without NODE_COMPACT_FILTERS is not asked.
    let (plain, _s, _r) = pair(ChainServer::new(chain.clone()), ServiceFlags::NETWORK).await;
    assert!(matches!(plain.get_cfilters(0, 1, chain.hash(2)).await, Err(RequestError::NotSupported(_))));
}

/// The server's own filters for `heights`, as `(block hash, filter)`.
fn own_filters(chain: &SyntheticChain, heights: std::ops::RangeInclusive<usize>) -> Vec<(BlockHash, Vec<u8>)> {
    heights.map(|h| (chain.hash(h), chain.filter(h))).collect()
}

fn as_pairs(filters: &[btcpeer::bitcoin::p2p::message_filter::CFilter]) -> Vec<(BlockHash, Vec<u8>)> {
    filters.iter().map(|f| (f.block_hash, f.filter.clone())).collect()
}

fn filter_server(len: usize) -> (Arc<SyntheticChain>, ChainServer, ServiceFlags) {
    let chain = chain(len);
    let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS | ServiceFlags::COMPACT_FILTERS;
    (chain.clone(), ChainServer::new(chain), services)
}

/// Item 15: the protocol's whole range (1,000 filters, Core's `MAX_GETCFILTERS_SIZE`) comes back
/// complete and in order, filter by filter the server's own; none reaches the handler.
#[tokio::test]
async fn r_a_get_cfilters_of_1000_blocks_returns_every_filter_in_order() {
    let (chain, server, services) = filter_server(1_100);
    let (client, _server, mut rx) = pair(server, services).await;
    let filters = within(client.get_cfilters(0, 1, chain.hash(1_000))).await.unwrap();
    assert_eq!(filters.len(), 1_000);
    assert_eq!(as_pairs(&filters), own_filters(&chain, 1..=1_000));
    // Nothing was diverted to the handler.
    while let Ok(event) = rx.try_recv() {
        assert!(!matches!(event, Event::Message(Message::CFilter(_))), "a filter reached the handler");
    }
}

/// Item 15: a consumer that polls its request only now and then (a busy task) still gets the
/// whole range: the request holds it, nothing is diverted while it is not looking.
#[tokio::test(start_paused = true)]
async fn r_a_get_cfilters_holds_the_whole_range_for_a_slow_consumer() {
    let (chain, server, services) = filter_server(1_100);
    let (client, _server, mut rx) = pair(server, services).await;
    let request = client.get_cfilters(0, 1, chain.hash(1_000));
    let mut request = std::pin::pin!(request);
    // Polled once every 50 ms (of paused time: everything that can arrive meanwhile arrives).
    let mut filters = None;
    for _ in 0..100 {
        if let Ok(done) = tokio::time::timeout(Duration::ZERO, request.as_mut()).await {
            filters = Some(done.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let filters = filters.expect("done within 100 polls");
    assert_eq!(as_pairs(&filters), own_filters(&chain, 1..=1_000));
    while let Ok(event) = rx.try_recv() {
        assert!(!matches!(event, Event::Message(Message::CFilter(_))), "a filter reached the handler");
    }
}

/// Item 15: concurrent ranges, each matched to its own request (by its range, not by arrival),
/// beside filter headers of the same stop.
#[tokio::test]
async fn r_a_concurrent_get_cfilters_each_get_their_own_range() {
    let (chain, server, services) = filter_server(2_100);
    let (client, _server, _rx) = pair(server, services).await;
    let ranges = [(1usize, 1_000usize), (1_001, 2_000), (500, 1_499), (1_990, 2_000), (1, 1_000)];
    let chain2 = chain.clone();
    let got = within(concurrently(&client, ranges, move |p, (a, b)| {
        let stop = chain2.hash(b);
        async move { p.get_cfilters(0, a as u32, stop).await }
    }))
    .await;
    for ((a, b), result) in ranges.into_iter().zip(got) {
        let filters = result.unwrap();
        assert_eq!(as_pairs(&filters), own_filters(&chain, a..=b), "range {a}..={b}");
    }
    let headers = within(client.get_cfheaders(0, 1_001, chain.hash(2_000))).await.unwrap();
    assert_eq!(headers.filter_hashes.len(), 1_000);
}

/// Items 15–16: a range over BIP157's 1,000 filters is refused here, with the limit named, before
/// a `getcfilters` Core would disconnect for (`PrepareBlockFilterRequest`) is sent.
#[tokio::test]
async fn r_a_get_cfilters_over_1000_blocks_is_refused_naming_the_limit() {
    let (chain, server, services) = filter_server(1_100);
    let (client, _server, _rx) = pair(server, services).await;
    let err = within(client.get_cfilters(0, 1, chain.hash(1_001))).await.unwrap_err();
    assert_eq!(err, RequestError::RangeTooLarge { blocks: 1_001, limit: 1_000 });
    assert!(client.is_connected());
    assert_eq!(within(client.get_cfilters(0, 2, chain.hash(1_001))).await.unwrap().len(), 1_000);
}

/// A remote driven by hand that signals BIP157 (`NODE_COMPACT_FILTERS`), after its handshake with
/// `client`.
async fn filter_remote(client: &Peer, remote: &mut common::Remote) {
    let Some(Message::Version(_)) = common::within_simulated(60, remote.recv_untimed()).await else {
        panic!("version first")
    };
    let mut version = common::raw_version(70016, 42);
    version.services = ServiceFlags::NETWORK | ServiceFlags::WITNESS | ServiceFlags::COMPACT_FILTERS;
    remote.send(&Message::Version(version)).await;
    remote.send(&Message::Verack).await;
    within(client.handshake()).await.unwrap();
}

/// The next message the client sends of the kind `f` picks.
async fn next_sent(remote: &mut common::Remote, f: impl Fn(&Message) -> bool) -> Message {
    loop {
        match common::within_simulated(60, remote.recv_untimed()).await {
            Some(m) if f(&m) => return m,
            Some(_) => {}
            None => panic!("closed"),
        }
    }
}

/// Item 15: a range is never returned with a gap. A filter that is not the next of the range (a
/// stray one, or one after a filter left out) is not taken; the stop block's filter arriving while
/// the range is short ends the request with a typed error at once. The others go to the handler.
#[tokio::test(start_paused = true)]
async fn r_a_get_cfilters_never_returns_a_range_with_a_gap() {
    let chain = chain(40);
    let (rec, mut rx) = recorder();
    let (client, mut remote) = common::outbound_to_remote(quiet().build().unwrap(), rec);
    filter_remote(&client, &mut remote).await;
    let request = tokio::spawn({
        let (client, stop) = (client.clone(), chain.hash(20));
        async move { client.requests().timeout(Duration::from_secs(5)).get_cfilters(0, 11, stop).await }
    });
    let Message::GetCFHeaders(asked) = next_sent(&mut remote, |m| matches!(m, Message::GetCFHeaders(_))).await else {
        unreachable!()
    };
    assert_eq!((asked.start_height, asked.stop_hash), (11, chain.hash(20)));
    // Distinct contents (the synthetic chain's blocks all have the same, empty, filter).
    let content = |h: usize| vec![1, h as u8];
    let filter_hashes = (11..=20).map(|h| btcpeer::bitcoin::FilterHash::hash(&content(h))).collect();
    let headers = btcpeer::bitcoin::p2p::message_filter::CFHeaders {
        filter_type: 0,
        stop_hash: chain.hash(20),
        previous_filter_header: chain.filter_header(10),
        filter_hashes,
    };
    remote.send(&Message::CFHeaders(headers)).await;
    next_sent(&mut remote, |m| matches!(m, Message::GetCFilters(_))).await;
    let cfilter = |h: usize| btcpeer::bitcoin::p2p::message_filter::CFilter {
        filter_type: 0,
        block_hash: chain.hash(h),
        filter: content(h),
    };
    // A stray filter first (block 30's), then the range without block 15's.
    remote.send(&Message::CFilter(cfilter(30))).await;
    for h in (11..=20).filter(|h| *h != 15) {
        remote.send(&Message::CFilter(cfilter(h))).await;
    }
    let outcome = within(request).await.unwrap();
    assert!(matches!(outcome, Err(RequestError::InvalidAnswer(_))), "{outcome:?}");
    let mut handed_on = Vec::new();
    for _ in 0..6 {
        match common::next_message(&mut rx, |m| matches!(m, Message::CFilter(_))).await {
            Message::CFilter(f) => handed_on.push(f.block_hash),
            _ => unreachable!(),
        }
    }
    let expected: Vec<_> = [30, 16, 17, 18, 19, 20].into_iter().map(|h| chain.hash(h)).collect();
    assert_eq!(handed_on, expected, "the stray filter and those after the gap reach the handler");
}

/// Item 15, with the caller's headers: the full range, filter by filter the server's own, beside
/// concurrent ranges of both forms.
#[tokio::test]
async fn r_a_get_cfilters_of_known_blocks_returns_the_whole_range() {
    let (chain, server, services) = filter_server(2_100);
    let (client, _server, _rx) = pair(server, services).await;
    let blocks = |a: usize, b: usize| (a..=b).map(|h| chain.hash(h)).collect::<Vec<_>>();
    let (first, second, third) = (blocks(1, 1_000), blocks(1_001, 2_000), blocks(1_990, 2_000));
    let (a, b, c, d) = within(async {
        tokio::join!(
            client.get_cfilters_of(0, 1, &first),
            client.get_cfilters_of(0, 1_001, &second),
            client.get_cfilters(0, 500, chain.hash(1_499)),
            client.get_cfilters_of(0, 1_990, &third),
        )
    })
    .await;
    assert_eq!(as_pairs(&a.unwrap()), own_filters(&chain, 1..=1_000));
    assert_eq!(as_pairs(&b.unwrap()), own_filters(&chain, 1_001..=2_000));
    assert_eq!(as_pairs(&c.unwrap()), own_filters(&chain, 500..=1_499));
    assert_eq!(as_pairs(&d.unwrap()), own_filters(&chain, 1_990..=2_000));
    // Over the limit: refused before anything is sent; none: nothing to do.
    let too_many = blocks(1, 1_001);
    let err = client.get_cfilters_of(0, 1, &too_many).await.unwrap_err();
    assert_eq!(err, RequestError::RangeTooLarge { blocks: 1_001, limit: 1_000 });
    assert!(client.get_cfilters_of(0, 1, &[]).await.unwrap().is_empty());
}

/// Item 15, with the caller's headers: checked block by block even where every filter is the
/// same (the synthetic chain's blocks all have the empty filter), so a filter left out ends the
/// request at once; and no `getcfheaders` is needed.
#[tokio::test(start_paused = true)]
async fn r_a_get_cfilters_of_known_blocks_detects_a_gap_among_identical_filters() {
    let chain = chain(40);
    let (rec, mut rx) = recorder();
    let (client, mut remote) = common::outbound_to_remote(quiet().build().unwrap(), rec);
    filter_remote(&client, &mut remote).await;
    let blocks: Vec<_> = (11..=20).map(|h| chain.hash(h)).collect();
    let request = tokio::spawn({
        let (client, blocks) = (client.clone(), blocks.clone());
        async move { client.requests().timeout(Duration::from_secs(5)).get_cfilters_of(0, 11, &blocks).await }
    });
    let first = next_sent(&mut remote, |m| matches!(m, Message::GetCFilters(_) | Message::GetCFHeaders(_))).await;
    let Message::GetCFilters(asked) = first else { panic!("getcfilters at once, not {first:?}") };
    assert_eq!((asked.start_height, asked.stop_hash), (11, chain.hash(20)));
    let cfilter = |h: usize| btcpeer::bitcoin::p2p::message_filter::CFilter {
        filter_type: 0,
        block_hash: chain.hash(h),
        filter: chain.filter(h),
    };
    assert_eq!(chain.filter(12), chain.filter(13), "identical filters");
    // A stray filter (block 30's, the same bytes), then the range without block 15's.
    remote.send(&Message::CFilter(cfilter(30))).await;
    for h in (11..=20).filter(|h| *h != 15) {
        remote.send(&Message::CFilter(cfilter(h))).await;
    }
    let outcome = within(request).await.unwrap();
    assert!(matches!(outcome, Err(RequestError::InvalidAnswer(_))), "{outcome:?}");
    let stray = common::next_message(&mut rx, |m| matches!(m, Message::CFilter(_))).await;
    assert!(matches!(stray, Message::CFilter(f) if f.block_hash == chain.hash(30)));
}
