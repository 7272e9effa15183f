//! The header sync `connect --headers` and the demo's peers share: `getheaders` from a locator of
//! the last header received until an answer holds fewer than 2,000, each batch checked to connect
//! to the one before; where the genesis block is unknown (simnet, a custom magic), from the
//! remote's, learnt from the first header's parent (see `connect`'s module docs).

use std::time::{Duration, Instant};

use btcpeer::bitcoin::BlockHash;
use btcpeer::bitcoin::block::Header;
use btcpeer::bitcoin::hashes::Hash;
use btcpeer::peer::Peer;
use btcpeer::wire::limits::MAX_HEADERS;
use serde::Serialize;

use crate::EXIT_FAILURE;
use crate::events::{as_millis, display};
use crate::report::Failure;

/// Where a header sync starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncFrom {
    /// The network's genesis block, which btcpeer knows.
    Genesis(BlockHash),
    /// The remote's genesis block, learnt from the first header's parent (simnet, a custom magic).
    RemoteGenesis,
}

/// What the `headers` events of `connect` and `demo` have in common: the peer and what it sent.
#[derive(Serialize, Debug, Clone)]
pub(crate) struct HeadersDone {
    pub(crate) peer: u64,
    #[serde(flatten)]
    pub(crate) synced: Synced,
}

/// What a headers sync fetched, as the `headers` events show it (`tip` in display order,
/// `elapsed_ms`).
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Synced {
    /// Headers received (genesis excluded).
    pub(crate) count: u64,
    /// The last header's hash (the genesis block's, or zero when unknown, if none came).
    #[serde(serialize_with = "display")]
    pub(crate) tip: BlockHash,
    /// Answers received, an empty last one included.
    pub(crate) batches: u64,
    /// How long it took.
    #[serde(rename = "elapsed_ms", serialize_with = "as_millis")]
    pub(crate) elapsed: Duration,
}

impl Synced {
    /// Headers per second, rounded (0 when nothing came).
    pub(crate) fn rate(&self) -> u64 {
        rate(self.count, self.elapsed)
    }

    /// The keys of the `headers` event.
    pub(crate) fn done(&self, peer: u64) -> HeadersDone {
        HeadersDone { peer, synced: *self }
    }
}

/// `count` per `elapsed`, rounded; a zero duration counts as one microsecond.
pub(crate) fn rate(count: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64().max(1e-6);
    (count as f64 / secs).round() as u64
}

/// Why a batch does not connect: the first header whose parent is not the header before it.
pub(crate) fn check_connects(tip: BlockHash, headers: &[Header]) -> Result<(), (usize, BlockHash, BlockHash)> {
    let mut prev = tip;
    for (i, h) in headers.iter().enumerate() {
        if h.prev_blockhash != prev {
            return Err((i, h.prev_blockhash, prev));
        }
        prev = h.block_hash();
    }
    Ok(())
}

/// A header sync in progress: [`HeaderSync::request`] sends the next getheaders, the caller waits
/// for its answer in its own way, and [`HeaderSync::accept`] checks it and says whether it was the
/// last.
pub(crate) struct HeaderSync {
    started: Instant,
    synced: Synced,
    genesis_known: bool,
}

impl HeaderSync {
    /// A sync from `from`.
    pub(crate) fn new(from: SyncFrom) -> HeaderSync {
        let genesis = match from {
            SyncFrom::Genesis(hash) => Some(hash),
            SyncFrom::RemoteGenesis => None,
        };
        HeaderSync {
            started: Instant::now(),
            // A locator of the zero hash, which no chain has, makes Core and btcd answer from
            // their genesis block.
            synced: Synced {
                count: 0,
                tip: genesis.unwrap_or(BlockHash::all_zeros()),
                batches: 0,
                elapsed: Duration::ZERO,
            },
            genesis_known: genesis.is_some(),
        }
    }

    /// Sends the next `getheaders`; returns its number (from 1).
    pub(crate) fn request(&self, peer: &Peer) -> Result<u64, Failure> {
        let n = self.synced.batches.saturating_add(1);
        match peer.push_getheaders(vec![self.synced.tip], BlockHash::all_zeros()) {
            // The completion is not needed: the answer tells us the request went out.
            Ok(Some(completion)) => drop(completion),
            // Only a request identical to the previous one is not sent, and every batch moves the tip.
            Ok(None) => return Err((EXIT_FAILURE, format!("getheaders {n} was not sent: same as the previous one"))),
            Err(e) => return Err((EXIT_FAILURE, format!("cannot send getheaders {n}: {e}"))),
        }
        Ok(n)
    }

    /// Takes the answer to the last request: checks it connects, and returns whether the remote
    /// has no more.
    pub(crate) fn accept(&mut self, headers: &[Header]) -> Result<bool, Failure> {
        let n = self.synced.batches.saturating_add(1);
        if !self.genesis_known {
            // The remote's genesis block is the first header's parent.
            if let Some(first) = headers.first() {
                self.synced.tip = first.prev_blockhash;
            }
            self.genesis_known = true;
        }
        if let Err((i, parent, expected)) = check_connects(self.synced.tip, headers) {
            let height = self.synced.count.saturating_add(i as u64).saturating_add(1);
            return Err((
                EXIT_FAILURE,
                format!(
                    "headers batch {n} does not connect: header {} of {} (height {height}) follows {parent}, \
                     expected {expected}",
                    i.saturating_add(1),
                    headers.len(),
                ),
            ));
        }
        self.synced.batches = n;
        self.synced.count = self.synced.count.saturating_add(headers.len() as u64);
        if let Some(last) = headers.last() {
            self.synced.tip = last.block_hash();
        }
        let done = (headers.len() as u64) < MAX_HEADERS;
        if done {
            self.synced.elapsed = self.started.elapsed();
        }
        Ok(done)
    }

    /// Time since the sync started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// What was fetched so far (all of it once `accept` said so).
    pub(crate) fn synced(&self) -> Synced {
        self.synced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use btcpeer::bitcoin::block::Version;
    use btcpeer::bitcoin::{CompactTarget, TxMerkleNode};

    fn header(prev: BlockHash, nonce: u32) -> Header {
        Header {
            version: Version::TWO,
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::all_zeros(),
            time: 1_700_000_000,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            nonce,
        }
    }

    #[test]
    fn batches_connect_only_when_every_parent_is_the_header_before() {
        let tip = BlockHash::all_zeros();
        let a = header(tip, 1);
        let b = header(a.block_hash(), 2);
        let c = header(b.block_hash(), 3);
        assert_eq!(check_connects(tip, &[]), Ok(()));
        assert_eq!(check_connects(tip, &[a, b, c]), Ok(()));
        assert_eq!(check_connects(a.block_hash(), &[b, c]), Ok(()));
        assert_eq!(check_connects(tip, &[b, c]), Err((0, a.block_hash(), tip)));
        assert_eq!(check_connects(tip, &[a, c]), Err((1, b.block_hash(), a.block_hash())));
    }
}
