//! What connections tell the book: an attempt (counted as a failure or not, Core's
//! `AddrManImpl::Attempt_`), the services and v2 support a handshake showed (`SetServices_`), and
//! the end of a connection (`Connected_`). The success itself is [`good`](AddrBook::good).

use bitcoin::p2p::ServiceFlags;

use super::{AddrBook, Endpoint, V2Support};

impl AddrBook {
    /// A connection attempt to `peer` started, counted as a possible failure (Core's
    /// `AddrMan::Attempt` with `fCountFailure` true, its default): the same as
    /// [`attempt_with`](AddrBook::attempt_with)`(peer, true, now)`.
    ///
    /// ```
    /// # use btcpeer_core::addrbook::{AddrBook, Endpoint};
    /// # use btcpeer_core::bitcoin::p2p::{ServiceFlags, address::{AddrV2, AddrV2Message}};
    /// let now = 1_700_000_000;
    /// let mut book = AddrBook::new([7; 32], 1);
    /// let peer = Endpoint::new(AddrV2::Ipv4([8, 8, 4, 4].into()), 8333);
    /// let heard = AddrV2Message { time: now as u32, services: ServiceFlags::NETWORK, addr: peer.addr.clone(), port: 8333 };
    /// book.add(&[heard], &Endpoint::new(AddrV2::Ipv4([9, 9, 9, 9].into()), 8333), now);
    /// book.attempt(&peer, now);
    /// assert_eq!(book.info(&peer).map(|i| (i.last_try, i.attempts)), Some((now, 1)));
    /// ```
    pub fn attempt(&mut self, peer: &Endpoint, now: u64) {
        self.attempt_with(peer, true, now);
    }

    /// A connection attempt to `peer` started that must not count as a failure (Core's
    /// `fCountFailure` false). Only the time of the try is recorded. Core passes false while the
    /// node looks offline — its automatic dials (feelers included) count only once it has
    /// outbound connections in at least `min(max automatic connections - 1, 2)` network groups
    /// (`ThreadOpenConnections`: `count_failures`) — and for `-addnode` peers.
    ///
    /// ```
    /// # use btcpeer_core::addrbook::{AddrBook, Endpoint};
    /// # use btcpeer_core::bitcoin::p2p::{ServiceFlags, address::{AddrV2, AddrV2Message}};
    /// let now = 1_700_000_000;
    /// let mut book = AddrBook::new([7; 32], 1);
    /// let peer = Endpoint::new(AddrV2::Ipv4([8, 8, 4, 4].into()), 8333);
    /// let heard = AddrV2Message { time: now as u32, services: ServiceFlags::NETWORK, addr: peer.addr.clone(), port: 8333 };
    /// book.add(&[heard], &Endpoint::new(AddrV2::Ipv4([9, 9, 9, 9].into()), 8333), now);
    /// book.attempt_uncounted(&peer, now);
    /// assert_eq!(book.info(&peer).map(|i| (i.last_try, i.attempts)), Some((now, 0)));
    /// ```
    pub fn attempt_uncounted(&mut self, peer: &Endpoint, now: u64) {
        self.attempt_with(peer, false, now);
    }

    /// A connection attempt to `peer` started (Core's `AddrManImpl::Attempt_`): the try's time is
    /// recorded, and with `count_failure` a failure is counted — but only if no failure of this
    /// address was counted since the last [`good`](AddrBook::good) of *any* address. A node
    /// that is offline (no handshake succeeds anywhere) so counts at most one failure per
    /// address, and does not make its whole book terrible.
    ///
    /// ```
    /// # use btcpeer_core::addrbook::{AddrBook, Endpoint};
    /// # use btcpeer_core::bitcoin::p2p::{ServiceFlags, address::{AddrV2, AddrV2Message}};
    /// let now = 1_700_000_000;
    /// let mut book = AddrBook::new([7; 32], 1);
    /// let peer = Endpoint::new(AddrV2::Ipv4([8, 8, 4, 4].into()), 8333);
    /// let heard = AddrV2Message { time: now as u32, services: ServiceFlags::NETWORK, addr: peer.addr.clone(), port: 8333 };
    /// book.add(&[heard], &Endpoint::new(AddrV2::Ipv4([9, 9, 9, 9].into()), 8333), now);
    /// for i in 0..5 {
    ///     book.attempt_with(&peer, true, now + i * 60);
    /// }
    /// // No handshake succeeded anywhere in between: one failure counted, not five.
    /// assert_eq!(book.info(&peer).map(|i| i.attempts), Some(1));
    /// ```
    pub fn attempt_with(&mut self, peer: &Endpoint, count_failure: bool, now: u64) {
        let Some(id) = self.index.get(peer).copied() else { return };
        let Some(e) = self.entries.get_mut(&id) else { return };
        e.last_try = now;
        let last_counted = self.counted.get(&id).copied().unwrap_or(0);
        if count_failure && last_counted < self.last_good {
            self.counted.insert(id, now);
            e.attempts = e.attempts.saturating_add(1);
        }
    }

    /// Records what is known of `peer`'s v2 support, and nothing else (a failed v2 attempt, or a
    /// v1 handshake after trying v2: the next dial goes straight to v1).
    pub fn set_v2(&mut self, peer: &Endpoint, v2: V2Support) {
        let Some(id) = self.index.get(peer).copied() else { return };
        if let Some(e) = self.entries.get_mut(&id) {
            e.v2 = v2;
        }
    }

    /// Records the services `peer` offered in its `version`, and nothing else (Core's
    /// `AddrMan::SetServices`, called at the handshake). The address's time stays as it was:
    /// see [`connected`](AddrBook::connected).
    ///
    /// ```
    /// # use btcpeer_core::addrbook::{AddrBook, Endpoint};
    /// # use btcpeer_core::bitcoin::p2p::{ServiceFlags, address::{AddrV2, AddrV2Message}};
    /// let now = 1_700_000_000;
    /// let mut book = AddrBook::new([7; 32], 1);
    /// let peer = Endpoint::new(AddrV2::Ipv4([8, 8, 4, 4].into()), 8333);
    /// let heard = AddrV2Message { time: now as u32, services: ServiceFlags::NETWORK, addr: peer.addr.clone(), port: 8333 };
    /// book.add(&[heard], &Endpoint::new(AddrV2::Ipv4([9, 9, 9, 9].into()), 8333), now);
    /// book.set_services(&peer, ServiceFlags::NETWORK | ServiceFlags::WITNESS);
    /// assert!(book.info(&peer).is_some_and(|i| i.services.has(ServiceFlags::WITNESS)));
    /// ```
    pub fn set_services(&mut self, peer: &Endpoint, services: ServiceFlags) {
        let Some(id) = self.index.get(peer).copied() else { return };
        if let Some(e) = self.entries.get_mut(&id) {
            e.services = services;
        }
    }

    /// A connection to `peer` **ended** (call it at disconnect, as Core's `FinalizeNode` calls
    /// `AddrMan::Connected` for a full-relay or manual outbound peer that completed its
    /// handshake; not at the handshake). Records the services it offered and whether v2 worked
    /// (`Some(true)`) or failed, and moves its time to `now` if that time is more than 20
    /// minutes old (Core's `AddrManImpl::Connected_`).
    ///
    /// [`good`](AddrBook::good) never touches the time (Core: "to avoid leaking information about
    /// currently-connected peers"): an address we are connected to keeps the time it was heard
    /// with, so our `getaddr` answers do not reveal our current peers; it gets a fresh time
    /// only once the connection is over.
    ///
    /// ```
    /// # use btcpeer_core::addrbook::{AddrBook, Endpoint};
    /// # use btcpeer_core::bitcoin::p2p::{ServiceFlags, address::{AddrV2, AddrV2Message}};
    /// let now = 1_700_000_000;
    /// let mut book = AddrBook::new([7; 32], 1);
    /// let peer = Endpoint::new(AddrV2::Ipv4([8, 8, 4, 4].into()), 8333);
    /// let heard = AddrV2Message { time: (now - 3 * 86_400) as u32, services: ServiceFlags::NETWORK, addr: peer.addr.clone(), port: 8333 };
    /// book.add(&[heard], &peer, now);
    /// book.good(&peer, now); // the handshake
    /// assert_eq!(book.info(&peer).map(|i| i.time), Some(now - 3 * 86_400));
    /// book.connected(&peer, ServiceFlags::NETWORK, None, now + 3_600); // the disconnection
    /// assert_eq!(book.info(&peer).map(|i| i.time), Some(now + 3_600));
    /// ```
    pub fn connected(&mut self, peer: &Endpoint, services: ServiceFlags, v2: Option<bool>, now: u64) {
        let Some(id) = self.index.get(peer).copied() else { return };
        if let Some(e) = self.entries.get_mut(&id) {
            e.services = services;
            // Core updates the time of a connected peer at most every 20 minutes.
            if now.saturating_sub(e.time) > 20 * 60 {
                e.time = now;
            }
            match v2 {
                Some(true) => e.v2 = V2Support::Yes,
                Some(false) => e.v2 = V2Support::Failed,
                None => {}
            }
        }
    }
}
