//! The peer's own rules for each message received after the handshake (Bitcoin
//! Core's conformance rules): what it answers itself (a pong), what it records (preferences,
//! relay), what it ignores and counts, and what ends the connection. Pure functions of the message
//! and the negotiated state: the driver (or [`PeerCore`](super::PeerCore)) applies the outcome.

use bitcoin::p2p::message_compact_blocks::SendCmpct;

use super::DisconnectReason;
use super::reason::Violation;
use crate::wire::version::{NO_BLOOM_VERSION, is_defined, ping_has_nonce};
use crate::wire::{Command, Message, PayloadError, PayloadErrorKind};

/// The most a fee rate may be: Core's `MAX_MONEY` (21 million bitcoin in satoshis), the bound of
/// its `MoneyRange`.
const MAX_MONEY: i64 = 21_000_000 * 100_000_000;
/// The only compact-block version Core supports (`CMPCTBLOCKS_VERSION`, with witnesses).
const CMPCTBLOCKS_VERSION: u64 = 2;

/// The preferences a remote announced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Preferences {
    /// It sent `sendheaders` (BIP130): announce blocks with `headers`.
    pub wants_headers: bool,
    /// Its `sendcmpct` (BIP152), version 2 only.
    pub compact_blocks: Option<SendCmpct>,
    /// Its `feefilter` (BIP133), in satoshis per 1,000 vbytes.
    pub fee_filter: Option<i64>,
}

impl Preferences {
    /// Records a preference the remote announced (`sendheaders`, `sendcmpct`, `feefilter`). Returns
    /// false for a message that is none of these, or a value Core ignores: a `sendcmpct` of another
    /// version than 2, a `feefilter` outside `MoneyRange` (`ProcessMessage` for `SENDCMPCT` and
    /// `FEEFILTER` in `net_processing.cpp`).
    pub fn record(&mut self, message: &Message) -> bool {
        match message {
            Message::SendHeaders => self.wants_headers = true,
            Message::SendCmpct(s) if s.version == CMPCTBLOCKS_VERSION => self.compact_blocks = Some(*s),
            Message::FeeFilter(rate) if (0..=MAX_MONEY).contains(rate) => self.fee_filter = Some(*rate),
            _ => return false,
        }
        true
    }
}

/// Whether bloom-filter messages are refused (BIP111): when we do not offer `NODE_BLOOM` and
/// enforcement is on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BloomPolicy {
    /// Refuse bloom messages (ignore below version 70011, end the connection from it).
    pub refuse: bool,
}

/// What to do with a message received after the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// Ignore it and count it, as Core does (the driver may enforce a limit).
    Ignore,
    /// It does not decode: send a `reject` (`malformed`) where the version has them, then end.
    Malformed(PayloadError),
    /// End the connection.
    End(DisconnectReason),
    /// Hand it to the application, after the peer's own handling.
    Deliver(Builtin),
}

/// The peer's own handling of a message it hands on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Builtin {
    /// Answer with this pong.
    pub pong: Option<u64>,
    /// A pong with this nonce arrived (the driver matches it to its ping).
    pub pong_received: Option<u64>,
    /// Transaction relay is now on (`filterload`, `filterclear`: BIP37; Core's `ProcessMessage`
    /// sets `m_relay_txs` on both).
    pub relay_on: bool,
    /// A command we do not know, counted.
    pub unknown: bool,
}

/// The check made before a payload is decoded: feature negotiation after verack ends the
/// connection at every negotiated version (Core's `ProcessMessage`: "wtxidrelay received after
/// verack", "sendaddrv2 received after verack"), so this comes before the version gate, which
/// would ignore them at an old version.
pub fn before_decode(command: Command) -> Result<(), DisconnectReason> {
    if command == Command::WTXIDRELAY || command == Command::SENDADDRV2 {
        return Err(DisconnectReason::Protocol(Violation::FeatureAfterVerack(command)));
    }
    Ok(())
}

/// The rule for a decoded message. `payload_len` is its payload's length (a ping without its
/// nonce decodes, but is malformed once BIP31 applies); `prefs` records the preferences it carries.
pub fn classify(
    message: &Message,
    payload_len: usize,
    negotiated: u32,
    bloom: BloomPolicy,
    prefs: &mut Preferences,
) -> Rule {
    let command = message.command();
    if !is_defined(command, negotiated) {
        return Rule::Ignore;
    }
    let mut builtin = Builtin::default();
    match message {
        // A second version or verack is ignored, as Core ("redundant version message", "ignoring
        // redundant verack message"); btcd disconnects. We do not reconcile: Core with
        // reconciliation off ignores `sendtxrcncl` at any time.
        Message::Version(_) | Message::Verack | Message::SendTxRcncl(_) => return Rule::Ignore,
        // A ping without its nonce is malformed once BIP31 applies (Core reads the nonce and
        // fails), so it gets no pong.
        Message::Ping(_) if ping_has_nonce(negotiated) && payload_len == 0 => {
            let kind = PayloadErrorKind::Truncated { needed: 8, available: 0 };
            return Rule::Malformed(PayloadError { command, field: "nonce", kind });
        }
        Message::Ping(nonce) if ping_has_nonce(negotiated) => builtin.pong = Some(*nonce),
        Message::Pong(nonce) => builtin.pong_received = Some(*nonce),
        Message::SendHeaders | Message::SendCmpct(_) | Message::FeeFilter(_) if !prefs.record(message) => {
            return Rule::Ignore;
        }
        Message::FilterLoad(_) | Message::FilterAdd(_) | Message::FilterClear | Message::MemPool if bloom.refuse => {
            if negotiated >= NO_BLOOM_VERSION {
                return Rule::End(DisconnectReason::Protocol(Violation::BloomNotOffered(command)));
            }
            return Rule::Ignore;
        }
        Message::FilterLoad(_) | Message::FilterClear => builtin.relay_on = true,
        Message::Unknown { .. } => builtin.unknown = true,
        _ => {}
    }
    Rule::Deliver(builtin)
}

/// What the remote announced or sent, it knows: remembered in `known` (an `inv`'s entries
/// in one batch, which is cheaper than one by one).
pub fn learn_inventory(message: &Message, known: &mut super::KnownInventory) {
    use crate::wire::Inventory;
    match message {
        Message::Inv(items) => known.extend(items),
        Message::Tx(tx) => {
            known.insert(&Inventory::Tx(tx.compute_txid()));
            known.insert(&Inventory::WTx(tx.compute_wtxid()));
        }
        Message::Block(block) => known.insert(&Inventory::Block(block.block_hash())),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_r3_pings_are_answered_and_nonceless_pings_are_malformed() {
        let mut prefs = Preferences::default();
        let rule = classify(&Message::Ping(5), 8, 70016, BloomPolicy::default(), &mut prefs);
        assert_eq!(rule, Rule::Deliver(Builtin { pong: Some(5), ..Builtin::default() }));
        assert!(matches!(
            classify(&Message::Ping(0), 0, 70016, BloomPolicy::default(), &mut prefs),
            Rule::Malformed(_)
        ));
        // Before BIP31 a ping has no nonce and gets no pong.
        let rule = classify(&Message::Ping(0), 0, 60000, BloomPolicy::default(), &mut prefs);
        assert_eq!(rule, Rule::Deliver(Builtin::default()));
    }

    #[test]
    fn c_preferences_out_of_range_are_ignored() {
        let mut prefs = Preferences::default();
        assert_eq!(classify(&Message::FeeFilter(-1), 8, 70016, BloomPolicy::default(), &mut prefs), Rule::Ignore);
        assert!(matches!(
            classify(&Message::FeeFilter(1000), 8, 70016, BloomPolicy::default(), &mut prefs),
            Rule::Deliver(_)
        ));
        assert_eq!(prefs.fee_filter, Some(1000));
        assert!(before_decode(Command::WTXIDRELAY).is_err());
        assert!(before_decode(Command::PING).is_ok());
    }
}
