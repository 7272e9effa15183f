//! A node's connection policy, sans I/O: which addresses to dial and when, whom to admit and whom
//! to evict, how address gossip is answered, relayed and rate-limited, and who is discouraged or
//! banned. Bitcoin Core's `CConnman` and `PeerManagerImpl` policies, driven from outside.

pub mod bans;
pub mod eviction;
