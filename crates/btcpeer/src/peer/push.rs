//! Announcing inventory and the push helpers.

use bitcoin::p2p::Address;
use bitcoin::p2p::address::{AddrV2, AddrV2Message};
use bitcoin::{BlockHash, Txid, Wtxid};

use super::error::QueueError;
use super::queue::Completion;
use super::{Direction, Peer};
use crate::wire::limits::{MAX_ADDR_ENTRIES, MAX_LOCATOR_HASHES};
use crate::wire::version::is_defined;
use crate::wire::{Command, Inventory, Message, Reject, RejectCode};
use btcpeer_core::peer::Announced;
use btcpeer_core::peer::inventory::{Pending, tx_kind_mismatch};

/// Why an announcement was refused ([`Peer::try_queue_inventory`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnnounceError {
    /// A transaction named by the kind of id the negotiation excludes: with wtxidrelay (BIP339)
    /// transactions are announced by wtxid (`MSG_WTX`) only, without it by txid (`MSG_TX`) only.
    /// Bitcoin Core ignores the other kind, so the announcement would be lost; use
    /// [`Peer::queue_transaction`], which picks the right one.
    #[error("{inventory:?} cannot be announced: wtxidrelay is {}", if *wtxid_relay { "on, so only wtxids" } else { "off, so only txids" })]
    WrongTxIdKind {
        /// The entry refused.
        inventory: Inventory,
        /// Whether wtxidrelay was negotiated.
        wtxid_relay: bool,
    },
    /// The block announcement could not be queued.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Why a push helper sent nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// A block locator of more than 101 hashes.
    #[error("block locator of {0} hashes; at most 101 allowed")]
    LocatorTooLong(usize),
    /// The message could not be queued.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The legacy form of an addrv2 entry, for remotes that did not ask for addrv2.
fn legacy(a: &AddrV2Message) -> Option<(u32, Address)> {
    let ip: std::net::IpAddr = match a.addr {
        AddrV2::Ipv4(ip) => ip.into(),
        AddrV2::Ipv6(ip) => ip.into(),
        _ => return None,
    };
    Some((a.time, Address::new(&std::net::SocketAddr::new(ip, a.port), a.services)))
}

/// A uniformly random sample of at most `k` of `items`, by a partial Fisher–Yates shuffle (every
/// k-subset equally likely, no duplicates, nothing lost).
pub(crate) fn sample<T: Clone>(items: &[T], k: usize, mut rand: impl FnMut(u64) -> u64) -> Vec<T> {
    let mut v: Vec<T> = items.to_vec();
    let n = v.len();
    let k = k.min(n);
    for i in 0..k {
        let remaining = n.saturating_sub(i) as u64;
        // `rand(m)` is below `m`, so `j` stays below `n`; `min` keeps a faulty generator in range.
        let j = i.saturating_add(rand(remaining) as usize).min(n.saturating_sub(1));
        v.swap(i, j);
    }
    v.truncate(k);
    v
}

/// A uniform random number below `bound` (> 0) from the OS CSPRNG, without modulo bias.
pub(crate) fn uniform_below(bound: u64) -> u64 {
    let Some(rem) = u64::MAX.checked_rem(bound) else { return 0 };
    // Values at or above `zone` would favour small results; draw again.
    let zone = u64::MAX.saturating_sub(rem);
    loop {
        let x = getrandom::u64().unwrap_or(0);
        if x < zone {
            return x.checked_rem(bound).unwrap_or(0);
        }
    }
}

impl Peer {
    /// Adds an item to what the remote is known to have.
    pub fn add_known_inventory(&self, inv: &Inventory) {
        self.with_core(|c| c.state_mut().known().insert(inv));
    }

    /// Whether the remote is known to have this item.
    pub fn has_known_inventory(&self, inv: &Inventory) -> bool {
        self.with_core(|c| c.knows(inv))
    }

    /// Forgets that the remote has this item.
    pub fn remove_known_inventory(&self, inv: &Inventory) {
        self.with_core(|c| c.state_mut().known().remove(inv));
    }

    /// Announces an item to the remote unless it already knows it. Blocks are announced at
    /// once; everything else waits for the next trickle tick. Returns whether the item will be
    /// announced: `false` when the remote already knows it, when it is a transaction and the remote
    /// asked for none (its version's `relay = false`, until it loads a bloom filter), when it names
    /// a transaction by the kind of id the negotiation excludes, when too many announcements wait,
    /// or when a block announcement finds the queue full. [`Peer::try_queue_inventory`] says why.
    ///
    /// ```no_run
    /// # use btcpeer::peer::Peer;
    /// # use btcpeer::wire::Inventory;
    /// # use btcpeer::bitcoin::{BlockHash, hashes::Hash};
    /// # fn f(peer: &Peer) {
    /// let block = Inventory::Block(BlockHash::all_zeros());
    /// assert!(peer.queue_inventory(block), "announced at once");
    /// assert!(!peer.queue_inventory(block), "the remote knows it now");
    /// # }
    /// ```
    pub fn queue_inventory(&self, inv: Inventory) -> bool {
        self.try_queue_inventory(inv).unwrap_or(false)
    }

    /// Like [`Peer::queue_inventory`], with the reason an announcement is refused. Transactions go
    /// out as Core expects them: by wtxid (`MSG_WTX`) when wtxidrelay was negotiated, by txid
    /// (`MSG_TX`) otherwise; an entry of the other kind is refused with
    /// [`AnnounceError::WrongTxIdKind`] once the handshake is done (before it, such an entry is
    /// dropped at the tick and counted); [`Peer::queue_transaction`] picks the right kind by itself.
    /// A block announcement that does not fit the queue is [`AnnounceError::Queue`]. `Ok(false)`:
    /// known already, not wanted (`relay = false`), or too many waiting.
    ///
    /// ```no_run
    /// # use btcpeer::peer::{AnnounceError, Peer};
    /// # use btcpeer::wire::Inventory;
    /// # use btcpeer::bitcoin::{Txid, hashes::Hash};
    /// # fn f(peer: &Peer) {
    /// // With wtxidrelay negotiated, a txid announcement would be lost at a Core node.
    /// let err = peer.try_queue_inventory(Inventory::Tx(Txid::all_zeros()));
    /// assert!(matches!(err, Err(AnnounceError::WrongTxIdKind { wtxid_relay: true, .. })));
    /// # }
    /// ```
    pub fn try_queue_inventory(&self, inv: Inventory) -> Result<bool, AnnounceError> {
        if inv.is_transaction() {
            if let Some(wtxid_relay) = self.negotiated_wtxid_relay() {
                if tx_kind_mismatch(&inv, wtxid_relay) {
                    self.with_core(|c| c.state_mut().refuse_announcement());
                    return Err(AnnounceError::WrongTxIdKind { inventory: inv, wtxid_relay });
                }
            }
        }
        // The core's rule (`PeerCore::announce_at`), under one lock: a block at once (checked,
        // marked known, given back if the queue is full), the rest at the trickle tick.
        Ok(self.trickle(Pending::Plain(inv))?)
    }

    /// Announces a transaction: by wtxid when wtxidrelay was negotiated (BIP339), otherwise by txid.
    /// Returns whether it will be announced (see [`Peer::queue_inventory`]).
    pub fn queue_transaction(&self, txid: Txid, wtxid: Wtxid) -> bool {
        self.trickle(Pending::Tx { txid, wtxid }).unwrap_or(false)
    }

    /// Whether wtxidrelay was negotiated, once the handshake is done: read in place, without
    /// copying the remote's details as [`Peer::remote`] does.
    fn negotiated_wtxid_relay(&self) -> Option<bool> {
        if !self.handshake_complete() {
            return None;
        }
        self.with_core(|c| c.remote().map(|r| r.wtxid_relay))
    }

    /// Whether transactions are announced to the remote: its version's relay flag, switched on by a
    /// later `filterload` or `filterclear` (BIP37). True before its version arrives.
    pub fn relays_transactions(&self) -> bool {
        self.with_core(|c| c.state().relay())
    }

    fn trickle(&self, item: Pending) -> Result<bool, QueueError> {
        let now = super::now();
        // Inbound peers of one node share one trickle schedule (Core's `NextInvToInbounds`),
        // passed to the core as the instant of its tick; outbound peers draw their own delay.
        let at = match self.direction() {
            Direction::Inbound => {
                Some(self.shared.config.inner.node.next_inbound_trickle(now, self.shared.config.inner.trickle_inbound))
            }
            Direction::Outbound => None,
        };
        let announced = self.with_core(|c| c.announce_at(item, now, at))?;
        match announced {
            Announced::Queued { .. } => {
                // The writer sleeps until its next deadline (or writes a block's inv): wake it.
                self.shared.wake.notify_one();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Sends addresses: `addrv2` if the remote asked for it, otherwise `addr` (entries only
    /// addrv2 can carry are left out). More than 1,000 are sampled uniformly at random. Returns the
    /// entries sent; nothing is sent for an empty list.
    pub fn push_addr(&self, addrs: &[AddrV2Message]) -> Result<Vec<AddrV2Message>, PushError> {
        let usable: Vec<AddrV2Message> = if self.wants_addrv2() {
            addrs.to_vec()
        } else {
            addrs.iter().filter(|a| legacy(a).is_some()).cloned().collect()
        };
        let chosen = sample(&usable, MAX_ADDR_ENTRIES as usize, uniform_below);
        if chosen.is_empty() {
            return Ok(chosen);
        }
        let msg = if self.wants_addrv2() {
            Message::AddrV2(chosen.clone())
        } else {
            Message::Addr(chosen.iter().filter_map(legacy).collect())
        };
        let _ = self.queue_message(&msg)?;
        Ok(chosen)
    }

    /// Asks for the block inventory after `locator`. A request identical to the previous
    /// `getblocks` (same first locator hash and stop hash) is not sent again: `Ok(None)`.
    pub fn push_getblocks(&self, locator: Vec<BlockHash>, stop: BlockHash) -> Result<Option<Completion>, PushError> {
        self.push_locator(Command::GETBLOCKS, locator, stop)
    }

    /// Asks for the headers after `locator`, with the same duplicate rule as
    /// [`Peer::push_getblocks`].
    pub fn push_getheaders(&self, locator: Vec<BlockHash>, stop: BlockHash) -> Result<Option<Completion>, PushError> {
        self.push_locator(Command::GETHEADERS, locator, stop)
    }

    fn push_locator(
        &self,
        command: Command,
        locator: Vec<BlockHash>,
        stop: BlockHash,
    ) -> Result<Option<Completion>, PushError> {
        if locator.len() as u64 > MAX_LOCATOR_HASHES {
            return Err(PushError::LocatorTooLong(locator.len()));
        }
        // Checked, recorded and queued under one lock by the core's rule; put back if queueing
        // fails. A repeat of the previous request is not sent.
        let queued = self.with_core(|c| c.locator_request(command, locator, stop))?;
        Ok(queued.map(|seq| {
            self.shared.wake.notify_one();
            Completion::new(seq, self.shared.progress.clone())
        }))
    }

    /// Sends a BIP61 reject if the remote's version has them. Returns `Ok(None)` when it
    /// does not; otherwise the completion, which resolves once the reject was written (await it to
    /// wait, drop it not to).
    pub fn push_reject(
        &self,
        command: Command,
        code: RejectCode,
        reason: &str,
        hash: Option<[u8; 32]>,
    ) -> Result<Option<Completion>, PushError> {
        if self.handshake_complete() && !is_defined(Command::REJECT, self.negotiated_version()) {
            return Ok(None);
        }
        let reject = Reject { message: command.as_str().to_string(), code, reason: reason.to_string(), hash };
        Ok(Some(self.queue_message(&Message::Reject(reject))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator (splitmix64) so the statistical test is repeatable.
    struct SplitMix(u64);
    impl SplitMix {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % bound
        }
    }

    #[test]
    fn r_s5_address_sampling_has_no_duplicates_and_is_uniform() {
        let items: Vec<u32> = (0..3_000).collect();
        let mut rng = SplitMix(42);
        let mut counts = vec![0u32; items.len()];
        let rounds = 600;
        for _ in 0..rounds {
            let s = sample(&items, 1_000, |b| rng.below(b));
            assert_eq!(s.len(), 1_000);
            let mut sorted = s.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 1_000, "no duplicates, nothing lost");
            for x in s {
                counts[x as usize] += 1;
            }
        }
        // Each item is chosen with probability 1/3 per round: a count is Binomial(600, 1/3), mean 200,
        // variance 133.3. Normalised by that variance, the squared deviations over all 3,000 items sum
        // to about 2,999 (the fixed sample size removes one degree of freedom); a biased shuffle (such
        // as btcd's addrv2 one, or taking the first 1,000) lands far outside.
        let expected = rounds as f64 / 3.0;
        let variance = expected * (2.0 / 3.0);
        let chi2: f64 = counts.iter().map(|&c| (f64::from(c) - expected).powi(2) / variance).sum();
        let dof = (items.len() - 1) as f64;
        assert!((chi2 - dof).abs() < 5.0 * (2.0 * dof).sqrt(), "chi-square {chi2} for {dof} degrees of freedom");
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 140 && *max < 260, "every position sampled about a third of the time ({min}..{max})");
    }

    #[test]
    fn r_s5_a_biased_shuffle_fails_the_uniformity_bound() {
        // The same statistic for a naive "swap with any position" shuffle, which is known to be
        // biased, to show the bound can fail.
        let items: Vec<u32> = (0..3_000).collect();
        let mut rng = SplitMix(7);
        let mut counts = vec![0u32; items.len()];
        for _ in 0..600 {
            let mut v = items.clone();
            for i in 0..1_000 {
                let j = rng.below(3_000) as usize; // biased: j may fall before i
                v.swap(i, j);
            }
            for x in &v[..1_000] {
                counts[*x as usize] += 1;
            }
        }
        let (expected, variance) = (200.0, 200.0 * (2.0 / 3.0));
        let chi2: f64 = counts.iter().map(|&c| (f64::from(c) - expected).powi(2) / variance).sum();
        let dof = 2_999.0f64;
        assert!((chi2 - dof).abs() >= 5.0 * (2.0 * dof).sqrt(), "the biased shuffle passed: {chi2}");
    }

    #[test]
    fn uniform_below_stays_in_range() {
        for bound in [1u64, 2, 3, 1_000, u64::MAX] {
            for _ in 0..100 {
                assert!(uniform_below(bound) < bound);
            }
        }
    }
}
