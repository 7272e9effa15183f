//! `PeerCore` driven directly: what happens when its bounded queue is full (issue 22's bugs that
//! only the core had), on a pair of cores joined in memory.

use std::time::{Duration, Instant, SystemTime};

use btcpeer_core::bitcoin::hashes::Hash;
use btcpeer_core::bitcoin::{BlockHash, Wtxid};
use btcpeer_core::peer::{CoreConfig, Direction, Event, PeerCore};
use btcpeer_core::wire::frame::RawFrame;
use btcpeer_core::wire::{Inventory, Message};

/// Carries every message written by `from` to `to`.
fn carry(from: &mut PeerCore, to: &mut PeerCore, now: Instant) {
    while let Some(m) = from.poll_transmit(now) {
        let frame = RawFrame::from_message(&m).expect("encodes");
        to.handle_frame(frame, now, SystemTime::now());
    }
}

/// Two cores with their handshake done, and the events it gave taken.
fn established(now: Instant) -> (PeerCore, PeerCore) {
    established_with(
        small(CoreConfig::seeded(Direction::Outbound, 1)),
        small(CoreConfig::seeded(Direction::Inbound, 2)),
        now,
    )
}

/// A queue of 4 KiB, so that filling it takes a few hundred messages.
fn small(mut config: CoreConfig) -> CoreConfig {
    config.max_queue_bytes = 4096;
    config
}

fn established_with(a: CoreConfig, b: CoreConfig, now: Instant) -> (PeerCore, PeerCore) {
    let mut a = PeerCore::new(a, now, SystemTime::now());
    let mut b = PeerCore::new(b, now, SystemTime::now());
    for _ in 0..4 {
        carry(&mut a, &mut b, now);
        carry(&mut b, &mut a, now);
    }
    assert!(matches!(a.poll_event(), Some(Event::Handshake(_))));
    assert!(matches!(b.poll_event(), Some(Event::Handshake(_))));
    (a, b)
}

/// Queues messages until the core refuses one.
fn fill(core: &mut PeerCore) {
    for _ in 0..100_000 {
        if !core.send(Message::GetAddr) {
            return;
        }
    }
    panic!("the queue never filled");
}

/// Takes every message queued, without delivering it.
fn drain(core: &mut PeerCore, now: Instant) -> Vec<Message> {
    std::iter::from_fn(|| core.poll_transmit(now)).collect()
}

#[test]
fn a_ping_refused_by_a_full_queue_does_not_block_later_pings() {
    let now = Instant::now();
    let (mut a, _b) = established(now);
    fill(&mut a);
    assert!(!a.ping(now), "no room for the ping");
    drain(&mut a, now);
    assert!(a.ping(now), "a later ping goes out once there is room");
    assert!(drain(&mut a, now).iter().any(|m| matches!(m, Message::Ping(_))));
}

#[test]
fn a_block_announcement_refused_by_a_full_queue_is_not_marked_known() {
    let now = Instant::now();
    let (mut a, _b) = established(now);
    let block = Inventory::Block(BlockHash::from_byte_array([7; 32]));
    fill(&mut a);
    assert!(!a.announce(block, now), "no room for the announcement");
    assert!(!a.knows(&block), "an announcement never sent is not known to the remote");
    drain(&mut a, now);
    assert!(a.announce(block, now), "the retry is sent");
    assert!(drain(&mut a, now).contains(&Message::Inv(vec![block])));
}

#[test]
fn a_trickle_flush_on_a_full_queue_requeues_its_announcements() {
    let start = Instant::now();
    let (mut a, _b) = established(start);
    let tx = Inventory::WTx(Wtxid::from_byte_array([9; 32]));
    assert!(a.announce(tx, start), "queued for the trickle tick");
    fill(&mut a);
    // Run the clock with the queue full: the tick finds no room.
    let mut now = start;
    let mut ticks = 0;
    while now < start + Duration::from_secs(60) && ticks < 1_000 {
        now = a.poll_timeout(now).unwrap_or(now + Duration::from_secs(1)).max(now + Duration::from_millis(10));
        a.handle_timeout(now);
        ticks += 1;
    }
    assert!(!a.is_ended());
    let first: Vec<Message> = drain(&mut a, now);
    assert!(!first.iter().any(|m| matches!(m, Message::Inv(_))), "no room for the inv while full");
    // With room again, a later tick sends it.
    let mut sent = false;
    for _ in 0..1_000 {
        now = a.poll_timeout(now).unwrap_or(now + Duration::from_secs(1)).max(now + Duration::from_millis(10));
        a.handle_timeout(now);
        if drain(&mut a, now).contains(&Message::Inv(vec![tx])) {
            sent = true;
            break;
        }
    }
    assert!(sent, "the announcement went back for a later tick, not lost");
}

#[test]
fn a_repeated_getheaders_is_not_sent_again_but_a_refused_one_may_be_retried() {
    let now = Instant::now();
    let (mut a, _b) = established(now);
    let (tip, stop) = (BlockHash::from_byte_array([1; 32]), BlockHash::all_zeros());
    assert!(a.get_headers(vec![tip], stop));
    assert!(!a.get_headers(vec![tip], stop), "the same request again is filtered");
    assert!(a.get_blocks(vec![tip], stop), "getblocks has its own memory");
    assert!(!a.get_headers(vec![BlockHash::all_zeros(); 102], stop), "at most 101 locator hashes");
    drain(&mut a, now);
    let other = BlockHash::from_byte_array([2; 32]);
    fill(&mut a);
    assert!(!a.get_headers(vec![other], stop), "no room");
    drain(&mut a, now);
    assert!(a.get_headers(vec![other], stop), "a request never queued is not a duplicate");
}

#[test]
fn the_core_counts_traffic_and_ends_past_the_misbehaviour_limit() {
    let now = Instant::now();
    let mut config = CoreConfig::seeded(Direction::Inbound, 3);
    config.ignored_limit = Some(2);
    let mut core = PeerCore::new(config, now, SystemTime::now());
    // Messages before `version` are ignored, as Core does, and counted.
    for _ in 0..2 {
        core.handle_frame(RawFrame::from_message(&Message::Ping(1)).unwrap(), now, SystemTime::now());
    }
    assert!(!core.is_ended());
    assert_eq!(core.state().traffic().messages_received(), 2);
    assert_eq!(core.state().traffic().bytes_received(), 2 * 32);
    assert_eq!(core.state().traffic().per_command().of(btcpeer_core::wire::Command::PING).messages_received, 2);
    core.handle_frame(RawFrame::from_message(&Message::Ping(1)).unwrap(), now, SystemTime::now());
    assert!(core.is_ended());
    assert!(matches!(
        std::iter::from_fn(|| core.poll_event()).last(),
        Some(Event::Disconnected(btcpeer_core::peer::DisconnectReason::Protocol(
            btcpeer_core::peer::Violation::TooManyIgnored { count: 3 }
        )))
    ));
}

#[test]
fn a_transaction_to_a_remote_without_node_witness_goes_without_its_witness() {
    use btcpeer_core::bitcoin::p2p::ServiceFlags;
    use btcpeer_core::bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
    let tx = Transaction {
        version: btcpeer_core::bitcoin::transaction::Version::TWO,
        lock_time: btcpeer_core::bitcoin::absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[vec![1u8, 2, 3]]),
        }],
        output: vec![TxOut { value: Amount::from_sat(1), script_pubkey: ScriptBuf::new() }],
    };
    let witnesses_received = |b_services: ServiceFlags| {
        let now = Instant::now();
        let mut b = CoreConfig::seeded(Direction::Inbound, 2);
        b.services = b_services;
        let (mut a, mut b) = established_with(CoreConfig::seeded(Direction::Outbound, 1), b, now);
        assert!(a.send(Message::Tx(tx.clone())));
        carry(&mut a, &mut b, now);
        match b.poll_event() {
            Some(Event::Message(Message::Tx(t))) => t.input[0].witness.len(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(witnesses_received(ServiceFlags::NONE), 0, "stripped for a remote without NODE_WITNESS");
    assert_eq!(witnesses_received(ServiceFlags::WITNESS), 1, "kept for one with it");
}

#[test]
fn time_in_our_own_handler_is_not_charged_to_the_remote() {
    let silent_for = |handled: bool| {
        let now = Instant::now();
        let (mut a, _b) = established(now);
        let later = now + Duration::from_secs(600);
        if handled {
            a.event_taken(now);
            a.event_handled(later);
        }
        a.handle_timeout(later);
        a.is_established()
    };
    assert!(!silent_for(false), "ten silent minutes end the connection (idle timeout)");
    assert!(silent_for(true), "not when we spent them handling an event");
}

mod framed {
    use super::*;
    use btcpeer_core::network::Network;
    use btcpeer_core::peer::{DisconnectReason, Transport, Violation};
    use btcpeer_core::transport::framing::{Framing, TransportPolicy};
    use bytes::BytesMut;

    fn core(direction: Direction, policy: TransportPolicy, seed: u64, now: Instant) -> PeerCore {
        let framing = Framing::new(Network::REGTEST, direction, policy, Default::default()).unwrap();
        PeerCore::framed(CoreConfig::seeded(direction, seed), framing, now, SystemTime::now())
    }

    /// Carries bytes both ways `rounds` times.
    fn exchange(a: &mut PeerCore, b: &mut PeerCore, now: Instant, rounds: usize) {
        let (mut ab, mut ba) = (BytesMut::new(), BytesMut::new());
        for _ in 0..rounds {
            a.poll_transmit_bytes(now, &mut ab);
            b.handle_bytes(&mut ab, now, SystemTime::now());
            b.poll_transmit_bytes(now, &mut ba);
            a.handle_bytes(&mut ba, now, SystemTime::now());
        }
    }

    fn handshake_transport(core: &mut PeerCore) -> Option<Transport> {
        std::iter::from_fn(|| core.poll_event()).find_map(|e| match e {
            Event::Handshake(info) => Some(info.transport),
            _ => None,
        })
    }

    #[test]
    fn two_framed_cores_speak_v2_ping_and_count_the_handshake_bytes() {
        let now = Instant::now();
        let mut a = core(Direction::Outbound, TransportPolicy::V2, 1, now);
        let mut b = core(Direction::Inbound, TransportPolicy::Auto, 2, now);
        exchange(&mut a, &mut b, now, 6);
        assert_eq!(handshake_transport(&mut a), Some(Transport::V2));
        assert_eq!(handshake_transport(&mut b), Some(Transport::V2));
        assert!(a.ping(now));
        let later = now + Duration::from_millis(5);
        exchange(&mut a, &mut b, later, 2);
        assert!(a.last_rtt().is_some(), "the pong came back over v2");
        // 64 bytes of key at least each way, beyond the messages.
        let t = &a.state().traffic();
        assert!(t.bytes_sent() > 64 && t.bytes_received() > 64);
        assert!(t.per_command().of(btcpeer_core::wire::Command::PING).messages_sent == 1);
    }

    #[test]
    fn an_inbound_auto_core_takes_a_v1_initiator() {
        let now = Instant::now();
        let mut a = core(Direction::Outbound, TransportPolicy::V1, 1, now);
        let mut b = core(Direction::Inbound, TransportPolicy::Auto, 2, now);
        exchange(&mut a, &mut b, now, 4);
        assert_eq!(handshake_transport(&mut a), Some(Transport::V1));
        assert_eq!(handshake_transport(&mut b), Some(Transport::V1));
    }

    #[test]
    fn a_v2_only_inbound_core_refuses_a_v1_initiator() {
        let now = Instant::now();
        let mut a = core(Direction::Outbound, TransportPolicy::V1, 1, now);
        let mut b = core(Direction::Inbound, TransportPolicy::V2, 2, now);
        exchange(&mut a, &mut b, now, 2);
        assert!(b.is_ended());
        let last = std::iter::from_fn(|| b.poll_event()).last();
        assert_eq!(last, Some(Event::Disconnected(DisconnectReason::Protocol(Violation::V1NotAllowed))));
    }

    #[test]
    fn an_outbound_auto_core_closed_before_any_byte_advises_a_v1_retry() {
        let now = Instant::now();
        let mut a = core(Direction::Outbound, TransportPolicy::Auto, 1, now);
        let mut out = BytesMut::new();
        assert_eq!(a.poll_transmit_bytes(now, &mut out), out.len());
        assert!(out.len() >= 64, "the key goes out first");
        a.stream_closed(None);
        assert_eq!(a.poll_event(), Some(Event::Disconnected(DisconnectReason::V1RetryAdvised)));
        let mut b = core(Direction::Outbound, TransportPolicy::V2, 1, now);
        b.stream_closed(None);
        assert_eq!(b.poll_event(), Some(Event::Disconnected(DisconnectReason::V2Unanswered)));
    }

    #[test]
    fn the_core_waits_for_the_drivers_verdict_on_the_remotes_version_leaving_later_bytes_unread() {
        let now = Instant::now();
        let mut a = core(Direction::Outbound, TransportPolicy::V1, 1, now);
        let mut config = CoreConfig::seeded(Direction::Inbound, 2);
        config.version_decision = true;
        let framing = Framing::new(Network::REGTEST, Direction::Inbound, TransportPolicy::V1, Default::default());
        let mut b = PeerCore::framed(config, framing.unwrap(), now, SystemTime::now());
        let mut ab = BytesMut::new();
        a.poll_transmit_bytes(now, &mut ab);
        // A second frame right behind the version.
        btcpeer_core::wire::frame::encode_frame(&Message::SendHeaders, &Network::REGTEST, &mut ab).unwrap();
        b.handle_bytes(&mut ab, now, SystemTime::now());
        assert!(
            matches!(b.poll_event(), Some(Event::Version(info)) if info.version.user_agent.starts_with("/btcpeer:"))
        );
        assert!(b.is_deciding());
        assert_eq!(ab.len(), 24, "the frame behind the version waits unread");
        let mut ba = BytesMut::new();
        assert_eq!(b.poll_transmit_bytes(now, &mut ba), 0, "nothing answered before the verdict");
        b.decide_version(Ok(()), now, SystemTime::now());
        exchange(&mut a, &mut b, now, 4);
        b.handle_bytes(&mut ab, now, SystemTime::now());
        assert_eq!(handshake_transport(&mut a), Some(Transport::V1));
        assert_eq!(handshake_transport(&mut b), Some(Transport::V1));
        assert!(b.preferences().wants_headers, "the frame that waited was taken after the verdict");
    }

    #[test]
    fn a_v1_frame_with_a_bad_checksum_is_dropped_and_counted() {
        let now = Instant::now();
        let mut b = core(Direction::Inbound, TransportPolicy::V1, 2, now);
        let mut frame = BytesMut::new();
        btcpeer_core::wire::frame::encode_frame(&Message::Ping(1), &Network::REGTEST, &mut frame).unwrap();
        if let Some(c) = frame.get_mut(20) {
            *c ^= 0xff;
        }
        b.handle_bytes(&mut frame, now, SystemTime::now());
        assert!(!b.is_ended());
        assert_eq!(b.state().traffic().dropped_frames(), 1);
        assert_eq!(b.state().traffic().bytes_received(), 32);
    }
}
