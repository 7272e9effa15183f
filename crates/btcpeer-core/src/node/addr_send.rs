//! Sending addresses on Core's timers (`PeerManagerImpl::MaybeSendAddr`, `net_processing.cpp`):
//! what is for a peer — relayed addresses, a `getaddr` answer, our own address — waits in its
//! queue (`m_addrs_to_send`) and goes out in one message when its Poisson timer fires
//! (`m_next_addr_send`, mean `AVG_ADDRESS_BROADCAST_INTERVAL`, 30 s); our own address is
//! announced when relay starts and again on a timer of mean a day (`m_next_local_addr_send`,
//! `AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL`). A spy sending an address cannot time its relay to
//! learn which peer relayed it first.

use std::time::{Duration, Instant};

use bitcoin::p2p::address::AddrV2Message;

use super::outbound::exponential;
use super::relay::{ADDR_KNOWN, ID_ADDRESS_RELAY, MAX_ADDR_TO_SEND, RecentSet, addr_key, peer_of};
use super::{Action, ConnId, NodeCore};

/// The mean wait between two address messages to one peer (`AVG_ADDRESS_BROADCAST_INTERVAL`).
pub(crate) const ADDR_SEND_INTERVAL: Duration = Duration::from_secs(30);
/// The mean wait between two announcements of our own address to one peer
/// (`AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL`, 24 h).
pub(crate) const LOCAL_ADDR_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// A peer's side of address sending.
#[derive(Debug, Default)]
pub(crate) struct AddrSend {
    /// Addresses waiting for the timer (Core's `m_addrs_to_send`), at most
    /// [`MAX_ADDR_TO_SEND`].
    queue: Vec<AddrV2Message>,
    /// When the next message may go (`m_next_addr_send`); `None`: at once (none sent yet).
    next: Option<Instant>,
    /// When our own address is announced again (`m_next_local_addr_send`); `None`: not yet due
    /// (relay has not started or we announce nothing).
    next_local: Option<Instant>,
}

impl NodeCore {
    /// Queues `a` for `to` (Core's `PushAddress`): when the queue is full, a random entry gives
    /// way. An address already known to the peer must be filtered by the caller.
    pub(super) fn queue_addr(&mut self, to: ConnId, a: AddrV2Message, now: Instant) {
        let wait = exponential(ADDR_SEND_INTERVAL, self.random());
        let random = self.random();
        let Some(conn) = self.conns.get_mut(&to) else { return };
        let s = &mut conn.addr_send;
        // Core's timer ticks whether or not there is anything to send; an idle queue whose tick
        // has passed waits a fresh exponential delay, which is the same thing (the distribution
        // is memoryless).
        if s.queue.is_empty() && s.next.is_some_and(|t| t <= now) {
            s.next = now.checked_add(wait);
        }
        if s.queue.len() >= MAX_ADDR_TO_SEND {
            let at = usize::try_from(random.checked_rem(s.queue.len() as u64).unwrap_or(0)).unwrap_or(0);
            if let Some(slot) = s.queue.get_mut(at) {
                *slot = a;
            }
        } else {
            s.queue.push(a);
        }
    }

    /// Our own address as announced now, if we announce one.
    fn self_announcement(&self, unix: u64) -> Option<AddrV2Message> {
        let local = self.settings.local_addr?;
        let peer = peer_of(local);
        Some(AddrV2Message {
            time: u32::try_from(unix).unwrap_or(u32::MAX),
            services: self.settings.services,
            addr: peer.addr,
            port: peer.port,
        })
    }

    /// Queues our own address for `id` (known to it from now on) and schedules the next
    /// announcement a day away on average.
    pub(super) fn announce_self(&mut self, id: ConnId, now: Instant, unix: u64) {
        let Some(me) = self.self_announcement(unix) else { return };
        let h = self.keyed.hash(ID_ADDRESS_RELAY, &[&addr_key(&me)]);
        let wait = exponential(LOCAL_ADDR_INTERVAL, self.random());
        let Some(conn) = self.conns.get_mut(&id) else { return };
        conn.known.insert(h);
        conn.addr_send.next_local = now.checked_add(wait);
        self.queue_addr(id, me, now);
    }

    /// Sends the address messages that are due at `now`: each address-relaying peer whose timer
    /// fired gets what waits for it in one [`Action::Addr`], and our own address goes again to a
    /// peer whose daily timer fired (its known addresses forgotten first, so that it does go,
    /// as Core resets `m_addr_known`). Call it whenever [`poll_timeout`](NodeCore::poll_timeout)
    /// says, and after [`received`](NodeCore::received) or [`established`](NodeCore::established)
    /// (the first message to a peer goes at once).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use btcpeer_core::addrbook::AddrBook;
    /// use btcpeer_core::bitcoin::p2p::ServiceFlags;
    /// use btcpeer_core::node::{Action, Admission, Hello, NodeCore, NodeSettings};
    /// use btcpeer_core::wire::Message;
    ///
    /// let (now, unix) = (Instant::now(), 1_700_000_000);
    /// let mut settings = NodeSettings::default();
    /// settings.local_addr = Some("8.8.4.4:8333".parse()?);
    /// let mut node = NodeCore::new(settings, AddrBook::new([1; 32], 1), now);
    /// let Admission::Accept(id) = node.inbound("8.8.8.8:50000".parse()?, now, unix) else { panic!() };
    /// node.established(id, &Hello::new(ServiceFlags::NETWORK, 70016, true, false, "/x/".into()), now, unix);
    /// node.received(id, &Message::GetAddr, now, unix); // address relay starts with it
    /// assert_eq!(node.poll_action(), None, "nothing before the timers are polled");
    /// node.poll_addr_relay(now, unix);
    /// let Some(Action::Addr { to, addrs }) = node.poll_action() else { panic!() };
    /// assert_eq!((to, addrs.len()), (id, 1)); // our own address, at once
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_addr_relay(&mut self, now: Instant, unix: u64) {
        self.last_now = self.last_now.max(now);
        let ids: Vec<ConnId> =
            self.conns.values().filter(|c| c.addr_relay && c.info.established).map(|c| c.info.id).collect();
        for id in ids {
            let local_due = self.conns.get(&id).is_some_and(|c| c.addr_send.next_local.is_some_and(|t| t <= now));
            if local_due {
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.known = RecentSet::new(ADDR_KNOWN);
                }
                self.announce_self(id, now, unix);
            }
            let wait = exponential(ADDR_SEND_INTERVAL, self.random());
            let Some(conn) = self.conns.get_mut(&id) else { continue };
            let s = &mut conn.addr_send;
            if s.next.is_some_and(|t| t > now) {
                continue;
            }
            if s.next.is_none() || !s.queue.is_empty() {
                s.next = now.checked_add(wait);
            }
            if s.queue.is_empty() {
                continue;
            }
            let addrs = std::mem::take(&mut s.queue);
            self.push_action(Action::Addr { to: id, addrs });
        }
    }

    /// The earliest time an address message or self-announcement is due, if any.
    pub(super) fn addr_relay_timeout(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter(|c| c.addr_relay && c.info.established)
            .flat_map(|c| {
                let s = &c.addr_send;
                let send = (!s.queue.is_empty()).then(|| s.next.unwrap_or(self.last_now));
                [send, s.next_local]
            })
            .flatten()
            .min()
    }
}
