//! Messages the policy reads: `addr`/`addrv2` (rate limit, book, relay), `getaddr` (the cached
//! answer), and transactions, blocks and filters for eviction's statistics.

use std::time::Instant;

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2Message;

use super::relay::{
    ID_ADDRESS_RELAY, MAX_ADDR_TO_SEND, MAX_RELAY_MESSAGE, RELAY_FRESH_SECS, ROTATE_RELAY_SECS, addr_key, addr_of,
    needs_addrv2, peer_of, socket_of,
};
use super::{Action, ConnId, ConnKind, NodeCore, NodeReason};
use crate::addrbook::{Endpoint, NetKind, is_routable};
use crate::wire::Message;

/// Core's `ProcessAddrs`: an address time before this or too far ahead is replaced by five days
/// ago.
const ANCIENT_TIME: u32 = 100_000_000;
const FIVE_DAYS: u64 = 5 * 24 * 3600;

impl NodeCore {
    /// Whether [`received`](NodeCore::received) does anything with `message` from any peer: a
    /// driver skips the rest (pings, inventory …) without taking the policy's lock on every
    /// message — except `inv` from a block-relay-only peer, which it passes on too (see
    /// [`received`](NodeCore::received)).
    ///
    /// ```
    /// use btcpeer_core::node::NodeCore;
    /// use btcpeer_core::wire::Message;
    /// assert!(NodeCore::handles(&Message::GetAddr));
    /// assert!(!NodeCore::handles(&Message::Ping(7)));
    /// ```
    pub fn handles(message: &Message) -> bool {
        matches!(
            message,
            Message::Addr(_)
                | Message::AddrV2(_)
                | Message::GetAddr
                | Message::Tx(_)
                | Message::Block(_)
                | Message::CmpctBlock(_)
                | Message::Headers(_)
                | Message::FilterLoad(_)
                | Message::FilterClear
        )
    }

    /// A message from `id` after its handshake: `addr` and `addrv2` are rate-limited, added to
    /// the book with the sender as source, and small fresh unsolicited ones relayed;
    /// `getaddr` from an inbound peer is answered once; `filterload` and what earns eviction
    /// protection feed eviction's statistics. Other messages are not the policy's.
    ///
    /// Eviction protection must cost the peer something (Core credits a transaction accepted to
    /// its mempool and a new valid block, `m_last_tx_time`, `m_last_block_time`). A node that
    /// validates nothing credits what it can check:
    /// - a transaction ([`ConnInfo::last_tx`](super::ConnInfo::last_tx)) that decoded, is new,
    ///   and was asked for by us from that peer ([`requested`](NodeCore::requested));
    /// - a `block`, `cmpctblock` or header of `headers` ([`ConnInfo::last_block`](super::ConnInfo::last_block))
    ///   that is new, has valid proof of work for the target it states, within
    ///   [`NodeSettings::pow_limit`](super::NodeSettings::pow_limit), and is on or near the best
    ///   chain seen: it extends a header that counted at a target at most 4 times easier than
    ///   the hardest seen, or its target is at least as hard as that (the first valid header
    ///   counts).
    ///
    /// A block-relay-only peer that sends a transaction or announces one in an `inv` is
    /// disconnected ([`NodeReason::TxFromBlockRelay`]; Core's
    /// `RejectIncomingTxs`), not discouraged.
    pub fn received(&mut self, id: ConnId, message: &Message, now: Instant, unix: u64) {
        self.last_now = self.last_now.max(now);
        match message {
            Message::Addr(entries) => {
                let addrs: Vec<AddrV2Message> = entries
                    .iter()
                    .filter_map(|(time, a)| {
                        let sa = a.socket_addr().ok()?;
                        Some(AddrV2Message {
                            time: *time,
                            services: a.services,
                            addr: addr_of(sa.ip()),
                            port: sa.port(),
                        })
                    })
                    .collect();
                // The count as sent decides the message's size rules.
                self.process_addrs(id, addrs, entries.len(), now, unix);
            }
            Message::AddrV2(addrs) => self.process_addrs(id, addrs.clone(), addrs.len(), now, unix),
            Message::GetAddr => self.process_getaddr(id, now, unix),
            Message::Tx(tx) => {
                if self.conns.get(&id).is_some_and(|c| c.info.kind == ConnKind::BlockRelay) {
                    self.tx_from_block_relay(id);
                } else {
                    self.tx_seen(id, tx, now);
                }
            }
            Message::Inv(items) => {
                let block_relay = self.conns.get(&id).is_some_and(|c| c.info.kind == ConnKind::BlockRelay);
                if block_relay && items.iter().any(|i| i.is_transaction()) {
                    self.tx_from_block_relay(id);
                }
            }
            Message::Block(block) => self.header_seen(id, &block.header, now),
            Message::CmpctBlock(cmpct) => self.header_seen(id, &cmpct.header, now),
            Message::Headers(headers) => {
                for h in headers {
                    self.header_seen(id, h, now);
                }
            }
            Message::FilterLoad(_) => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.bloom = true;
                }
            }
            Message::FilterClear => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.bloom = false;
                }
            }
            _ => {}
        }
    }

    /// A block-relay-only peer sent a transaction or announced one: Core's `ProcessMessage`
    /// disconnects it (`RejectIncomingTxs`: "transaction sent in violation of protocol"), without
    /// discouraging it.
    fn tx_from_block_relay(&mut self, id: ConnId) {
        if self.conns.remove(&id).is_some() {
            self.push_action(Action::Disconnect { id, reason: NodeReason::TxFromBlockRelay });
        }
    }

    /// Address relay starts with `id` (Core's `SetupAddressRelay`): our own address is queued
    /// first, to go at the first [`poll_addr_relay`](NodeCore::poll_addr_relay) (Core's
    /// self-announcement in `MaybeSendAddr`, at once the first time).
    pub(super) fn start_addr_relay(&mut self, id: ConnId, now: Instant, unix: u64) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        if conn.addr_relay || !conn.info.kind.relays_addr() {
            return;
        }
        conn.addr_relay = true;
        self.announce_self(id, now, unix);
    }

    /// Core's `PeerManagerImpl::ProcessAddrs` (`net_processing.cpp`).
    fn process_addrs(&mut self, id: ConnId, mut addrs: Vec<AddrV2Message>, sent: usize, now: Instant, unix: u64) {
        let Some(conn) = self.conns.get(&id) else { return };
        // Block-relay-only peers and feelers take part in no address relay: ignored.
        if !conn.info.established || !conn.info.kind.relays_addr() {
            return;
        }
        // More than 1,000 entries is a protocol violation (`Misbehaving`, "addr message size").
        if sent > MAX_ADDR_TO_SEND {
            self.misbehaving(id, now);
            return;
        }
        self.start_addr_relay(id, now, unix);
        // Shuffled first, so that a sender cannot choose which of its addresses the bucket drops.
        for i in (1..addrs.len()).rev() {
            let j = usize::try_from(self.random().checked_rem((i as u64).saturating_add(1)).unwrap_or(0)).unwrap_or(0);
            addrs.swap(i, j.min(i));
        }
        let hashes: Vec<u64> = addrs.iter().map(|a| self.keyed.hash(ID_ADDRESS_RELAY, &[&addr_key(a)])).collect();
        let (allow_local, bans_now) = (self.settings.allow_local, unix);
        let mut keep = Vec::new();
        let mut relay = Vec::new();
        let refused: Vec<bool> = addrs
            .iter()
            .map(|a| {
                socket_of(&Endpoint::new(a.addr.clone(), a.port))
                    .is_some_and(|s| self.bans.is_banned(s.ip(), bans_now) || self.discouraged.is_discouraged(s.ip()))
            })
            .collect();
        let (rate, cap) = (self.settings.addr_rate, self.settings.addr_burst);
        let Some(conn) = self.conns.get_mut(&id) else { return };
        conn.bucket.refill(now, rate, cap);
        let solicited = conn.getaddr_sent;
        for ((mut a, h), refused) in addrs.into_iter().zip(hashes).zip(refused) {
            if !conn.bucket.take() {
                conn.info.addr_rate_limited = conn.info.addr_rate_limited.saturating_add(1);
                continue;
            }
            // `MayHaveUsefulAddressDB`: an address that serves no history is of no use to anyone.
            if !(a.services.has(ServiceFlags::NETWORK) || a.services.has(ServiceFlags::NETWORK_LIMITED)) {
                continue;
            }
            if a.time <= ANCIENT_TIME || u64::from(a.time) > unix.saturating_add(10 * 60) {
                a.time = u32::try_from(unix.saturating_sub(FIVE_DAYS)).unwrap_or(0);
            }
            conn.known.insert(h);
            // Banned and discouraged addresses are remembered as known, nothing more.
            if refused {
                continue;
            }
            conn.info.addr_processed = conn.info.addr_processed.saturating_add(1);
            let fresh = u64::from(a.time) > unix.saturating_sub(RELAY_FRESH_SECS);
            if fresh && !solicited && sent <= MAX_RELAY_MESSAGE && (allow_local || is_routable(&a.addr)) {
                relay.push((a.clone(), h));
            }
            keep.push(a);
        }
        // A smaller message than the most a `getaddr` answer holds ends the solicited answer.
        if sent < MAX_ADDR_TO_SEND {
            conn.getaddr_sent = false;
        }
        let source = peer_of(conn.info.addr);
        self.book.add(&keep, &source, unix);
        // Queued for each target, to go on its timer (`RelayAddress` → `PushAddress`).
        for (a, h) in relay {
            for to in self.relay_targets_hashed(id, &a, h, unix) {
                if self.conns.get_mut(&to).is_some_and(|c| c.known.insert(h)) {
                    self.queue_addr(to, a.clone(), now);
                }
            }
        }
    }

    /// The peers an address from `origin` is relayed to (Core's `PeerManagerImpl::RelayAddress`):
    /// two (one, by the hash's low bit, for a network we cannot reach) of the address-relaying
    /// peers other than the origin, those with the highest keyed hash of (address, day, peer) —
    /// the same peers all day for one address, so relaying it again reaches no one new.
    pub fn relay_targets(&self, origin: ConnId, a: &AddrV2Message, unix: u64) -> Vec<ConnId> {
        let h = self.keyed.hash(ID_ADDRESS_RELAY, &[&addr_key(a)]);
        self.relay_targets_hashed(origin, a, h, unix)
    }

    fn relay_targets_hashed(&self, origin: ConnId, a: &AddrV2Message, hash_addr: u64, unix: u64) -> Vec<ConnId> {
        let day = unix.wrapping_add(hash_addr) / ROTATE_RELAY_SECS;
        let base = self.keyed.hash(ID_ADDRESS_RELAY, &[&hash_addr.to_le_bytes(), &day.to_le_bytes()]);
        let reachable = socket_of(&Endpoint::new(a.addr.clone(), a.port)).is_some();
        let n = if reachable || base & 1 == 1 { 2 } else { 1 };
        let mut scored: Vec<(u64, ConnId)> = self
            .conns
            .values()
            .filter(|c| c.addr_relay && c.info.established && c.info.id != origin)
            .filter(|c| !needs_addrv2(&a.addr) || c.info.hello.as_ref().is_some_and(|h| h.wants_addrv2))
            .map(|c| {
                let k = self
                    .keyed
                    .hash(ID_ADDRESS_RELAY, &[&hash_addr.to_le_bytes(), &day.to_le_bytes(), &c.info.id.to_le_bytes()]);
                (k, c.info.id)
            })
            .collect();
        scored.sort_unstable_by(|x, y| y.cmp(x));
        scored.into_iter().take(n).map(|(_, id)| id).collect()
    }

    /// Core's `PeerManagerImpl::ProcessGetAddr`: only inbound peers are answered (an outbound
    /// peer asking could be fingerprinting us), once per connection, from the cached answer for
    /// the requestor's network and the local address and port it connected to
    /// (`CConnman::GetAddresses`; see [`NodeCore::inbound_on`]).
    fn process_getaddr(&mut self, id: ConnId, now: Instant, unix: u64) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        if conn.info.kind != ConnKind::Inbound || !conn.info.established || conn.getaddr_recvd {
            return;
        }
        conn.getaddr_recvd = true;
        let net = NetKind::of(&addr_of(conn.info.addr.ip()));
        let local = conn.info.local;
        self.start_addr_relay(id, now, unix);
        let random = self.random();
        let limits = (self.settings.getaddr_max, self.settings.getaddr_pct);
        let cached = self.cache.get(&self.keyed, net, local, &mut self.book, random, limits, now, unix);
        let hashes: Vec<u64> = cached.iter().map(|a| self.keyed.hash(ID_ADDRESS_RELAY, &[&addr_key(a)])).collect();
        let Some(conn) = self.conns.get_mut(&id) else { return };
        let addrv2 = conn.info.hello.as_ref().is_some_and(|h| h.wants_addrv2);
        let mut addrs = Vec::new();
        for (a, h) in cached.into_iter().zip(hashes) {
            if (addrv2 || !needs_addrv2(&a.addr)) && conn.known.insert(h) {
                addrs.push(a);
            }
        }
        // Queued: the answer goes with the next address message (at once, when it is the first).
        for a in addrs {
            self.queue_addr(id, a, now);
        }
    }
}
