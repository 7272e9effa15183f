//! What the peers of one node share: the nonces of its handshakes in flight (self-connection
//! detection) and the one trickle schedule of its inbound peers.
//!
//! Bitcoin Core announces transactions to all its inbound peers at the same Poisson-distributed
//! instants (`PeerManagerImpl::NextInvToInbounds` in `net_processing.cpp`, one
//! `m_next_inv_to_inbounds` for the node): an attacker who opens twenty inbound connections then
//! hears a transaction no sooner than with one. With a timer per peer, the first of twenty
//! exponential delays would come after a twentieth of the mean. Outbound peers keep timers of their
//! own, as in Core.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::time::Instant;

use super::nonce::NonceRegistry;
use btcpeer_core::peer::poisson_delay;

/// State shared by the peers of one node. Cheap to clone: clones share it.
///
/// Every [`PeerConfig`](super::PeerConfig) has one; peers built from the same configuration (or
/// from configurations given the same context with
/// [`PeerConfigBuilder::node`](super::PeerConfigBuilder::node)) are one node's peers.
///
/// ```
/// use btcpeer::network::Network;
/// use btcpeer::peer::{NodeContext, PeerConfig};
///
/// let node = NodeContext::new();
/// let inbound = PeerConfig::builder(Network::REGTEST).node(node.clone()).build().unwrap();
/// let outbound = PeerConfig::builder(Network::REGTEST).node(node.clone()).relay(false).build().unwrap();
/// assert!(inbound.node().same_node(outbound.node()));
/// ```
#[derive(Clone, Debug, Default)]
pub struct NodeContext {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    nonces: NonceRegistry,
    /// The next instant at which every inbound peer flushes its announcements.
    next_inbound_trickle: Mutex<Option<Instant>>,
}

impl NodeContext {
    /// A context of its own, with its own nonce registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context using `registry` for self-connection detection (for instance
    /// [`NonceRegistry::global`], shared by every node of the process).
    pub fn with_nonce_registry(registry: NonceRegistry) -> Self {
        NodeContext { inner: Arc::new(Inner { nonces: registry, next_inbound_trickle: Mutex::new(None) }) }
    }

    /// The nonces of this node's handshakes in flight.
    pub fn nonce_registry(&self) -> &NonceRegistry {
        &self.inner.nonces
    }

    /// Whether `other` is this same node's context.
    pub fn same_node(&self, other: &NodeContext) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The node's next inbound trickle instant: the one already drawn if it is still ahead, or a
    /// new one a Poisson delay of mean `mean` after `now` (Core's `NextInvToInbounds`).
    pub(crate) fn next_inbound_trickle(&self, now: Instant, mean: Duration) -> Instant {
        let mut next = self.inner.next_inbound_trickle.lock().unwrap_or_else(|e| e.into_inner());
        match *next {
            // An instant that is not strictly ahead has been used: draw the next one.
            Some(at) if at > now => at,
            _ => {
                let at = now.checked_add(poisson_delay(mean)).unwrap_or(now);
                *next = Some(at);
                at
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn c3_inbound_peers_of_one_node_share_one_trickle_instant() {
        let node = NodeContext::new();
        let now = crate::peer::now();
        let mean = Duration::from_secs(5);
        let first = node.next_inbound_trickle(now, mean);
        // Every inbound peer asking before that instant gets the same one.
        for _ in 0..20 {
            assert_eq!(node.next_inbound_trickle(now, mean), first);
        }
        // Once it has passed, a new one is drawn, no earlier than now.
        let later = first + Duration::from_millis(1);
        assert!(node.next_inbound_trickle(later, mean) >= later);
        // Another node has its own schedule.
        assert!(!NodeContext::new().same_node(&node));
    }
}
