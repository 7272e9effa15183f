//! Self-connection detection: the nonces of our handshakes in flight.
//!
//! Unlike btcd's process-wide 50-entry cache, an entry lives exactly as long as its handshake, so a
//! burst of handshakes can never evict a nonce that is still needed. When an inbound peer receives
//! one of our own nonces it marks the entry, so the outbound side of the same connection also learns
//! that it reached itself and reports [`SelfConnection`](super::DisconnectReason::SelfConnection).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The nonces of handshakes in flight, shared by the peers of one node (or the whole process).
///
/// ```
/// use btcpeer::peer::NonceRegistry;
///
/// let registry = NonceRegistry::new();
/// let entry = registry.register().expect("the OS random source works");
/// assert!(registry.check_and_mark(entry.nonce()), "our own nonce is recognised");
/// assert!(entry.was_self_connection());
/// drop(entry); // the handshake ended
/// assert_eq!(registry.in_flight(), 0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct NonceRegistry {
    inner: Arc<Mutex<HashMap<u64, bool>>>,
}

/// One handshake's nonce; removed from the registry when dropped.
#[derive(Debug)]
pub struct NonceEntry {
    registry: NonceRegistry,
    nonce: u64,
}

impl NonceRegistry {
    /// An empty registry, for a node that wants its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// The registry shared by every peer in the process that is not given another.
    pub fn global() -> Self {
        static GLOBAL: OnceLock<NonceRegistry> = OnceLock::new();
        GLOBAL.get_or_init(NonceRegistry::new).clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, bool>> {
        // A panic while holding this lock cannot leave the map inconsistent; keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Draws a fresh nonce from the OS's CSPRNG and records it until the entry is dropped.
    pub fn register(&self) -> Result<NonceEntry, RandomError> {
        loop {
            let nonce = getrandom::u64().map_err(|e| RandomError(e.to_string()))?;
            let mut map = self.lock();
            if nonce != 0 && !map.contains_key(&nonce) {
                map.insert(nonce, false);
                return Ok(NonceEntry { registry: self.clone(), nonce });
            }
        }
    }

    /// Records `nonce` (a seeded connection's own) unless it is 0 or already in flight.
    pub(crate) fn register_given(&self, nonce: u64) -> Option<NonceEntry> {
        let mut map = self.lock();
        if nonce == 0 || map.contains_key(&nonce) {
            return None;
        }
        map.insert(nonce, false);
        Some(NonceEntry { registry: self.clone(), nonce })
    }

    /// Whether `nonce` belongs to one of our handshakes in flight; if so, marks that handshake as a
    /// self-connection.
    pub fn check_and_mark(&self, nonce: u64) -> bool {
        match self.lock().get_mut(&nonce) {
            Some(flag) => {
                *flag = true;
                true
            }
            None => false,
        }
    }

    /// Whether `other` is this same registry (not a copy with the same contents).
    pub fn same_registry(&self, other: &NonceRegistry) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// How many handshakes are in flight.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }
}

impl NonceEntry {
    /// The nonce.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// Whether an inbound peer of this registry received this nonce.
    pub fn was_self_connection(&self) -> bool {
        self.registry.lock().get(&self.nonce).copied().unwrap_or(false)
    }
}

impl Drop for NonceEntry {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.nonce);
    }
}

/// The OS's random source failed (no nonce could be drawn).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the OS random source failed: {0}")]
pub struct RandomError(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_l3_in_flight_nonces_are_never_evicted() {
        let registry = NonceRegistry::new();
        let entries: Vec<NonceEntry> = (0..10_000).map(|_| registry.register().unwrap()).collect();
        assert_eq!(registry.in_flight(), 10_000);
        assert!(entries.iter().all(|e| registry.check_and_mark(e.nonce())));
        assert!(!registry.check_and_mark(0));
        drop(entries);
        assert_eq!(registry.in_flight(), 0);
    }
}
