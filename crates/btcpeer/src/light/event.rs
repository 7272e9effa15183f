//! What a [`LightClient`](super::LightClient) reports: [`LightEvent`]s on its bounded channel.

use bitcoin::{Amount, BlockHash, OutPoint, ScriptBuf, Transaction, Txid};

/// A stage of the sync, for [`LightEvent::Progress`].
///
/// ```
/// use btcpeer::light::Stage;
/// assert_eq!(Stage::Headers.as_str(), "headers");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Block headers.
    Headers,
    /// BIP157 filter headers, cross-checked between peers.
    FilterHeaders,
    /// BIP158 filters, each checked against its filter header and matched against the watch list.
    Filters,
    /// Blocks whose filter matched, downloaded and scanned.
    Blocks,
}

impl Stage {
    /// A short lowercase name: `headers`, `filter_headers`, `filters`, `blocks`.
    ///
    /// ```
    /// assert_eq!(btcpeer::light::Stage::FilterHeaders.as_str(), "filter_headers");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Headers => "headers",
            Stage::FilterHeaders => "filter_headers",
            Stage::Filters => "filters",
            Stage::Blocks => "blocks",
        }
    }
}

/// How a relevant transaction touches the watch list.
///
/// ```
/// use btcpeer::light::TxKind;
/// # fn f(kind: TxKind) {
/// match kind {
///     TxKind::Received { vout, value, .. } => println!("received {value} at output {vout}"),
///     TxKind::Spent { outpoint, .. } => println!("spent {outpoint}"),
///     _ => {}
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxKind {
    /// Output `vout` pays `value` to the watched `script`.
    Received {
        /// The output's index.
        vout: u32,
        /// What it pays.
        value: Amount,
        /// The watched script it pays to.
        script: ScriptBuf,
    },
    /// Input `vin` spends `outpoint`, an output to a watched script seen earlier, worth `value`.
    Spent {
        /// The input's index in the spending transaction.
        vin: u32,
        /// The output spent.
        outpoint: OutPoint,
        /// Its value.
        value: Amount,
    },
}

/// A transaction of a connected block that pays to or spends from the watch list (one event per
/// output received and per input spent).
///
/// ```
/// # fn f(t: btcpeer::light::RelevantTx) {
/// println!("{} in block {} at height {}: {:?}", t.txid, t.block, t.height, t.kind);
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelevantTx {
    /// The transaction's id.
    pub txid: Txid,
    /// What it does to the watch list.
    pub kind: TxKind,
    /// The height of its block.
    pub height: u32,
    /// Its block.
    pub block: BlockHash,
    /// The whole transaction.
    pub tx: Transaction,
}

/// What a [`LightClient`](super::LightClient) reports, in order.
///
/// ```no_run
/// # async fn f(mut client: btcpeer::light::LightHandle) {
/// use btcpeer::light::{LightEvent, TxKind};
/// while let Some(event) = client.next_event().await {
///     match event {
///         LightEvent::Tx(t) => println!("{} at {}: {:?}", t.txid, t.height, t.kind),
///         LightEvent::Synced { height, tip } => println!("synced at {height} ({tip})"),
///         LightEvent::Stopped(e) => eprintln!("stopped: {e}"),
///         _ => {}
///     }
/// }
/// # }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum LightEvent {
    /// A peer finished its handshake and serves compact filters.
    PeerConnected {
        /// The address it was dialed at.
        addr: String,
        /// Its user agent.
        user_agent: String,
        /// Whether the connection is v2 (BIP324).
        v2: bool,
    },
    /// A peer was dropped, and why (a lie, a wrong network, no filters, silence …).
    PeerDropped {
        /// The address it was dialed at.
        addr: String,
        /// Why.
        reason: String,
    },
    /// How far a stage is: `height` of `target`.
    Progress {
        /// The stage.
        stage: Stage,
        /// Done up to this height.
        height: u32,
        /// The height the stage goes to.
        target: u32,
    },
    /// A block joined the best chain (reported for blocks after the first sync: while catching
    /// up, [`LightEvent::Progress`] stands for them).
    BlockConnected {
        /// Its height.
        height: u32,
        /// Its hash.
        hash: BlockHash,
    },
    /// A block left the best chain (a reorg: disconnections come first, tip downwards, then the
    /// new blocks' [`LightEvent::BlockConnected`]).
    BlockDisconnected {
        /// Its height.
        height: u32,
        /// Its hash.
        hash: BlockHash,
    },
    /// The best chain switched to a fork with more work (after the fork's
    /// [`LightEvent::BlockDisconnected`] events; its blocks are then scanned again).
    Reorg {
        /// The height of the last block both chains share.
        fork_height: u32,
        /// How many blocks left the best chain.
        disconnected: u32,
        /// The tip before.
        old_tip: BlockHash,
        /// The tip now.
        new_tip: BlockHash,
    },
    /// A transaction that pays to or spends from the watch list.
    Tx(RelevantTx),
    /// Caught up: every filter up to the tip was matched and every matching block scanned.
    Synced {
        /// The tip's height.
        height: u32,
        /// The tip's hash.
        tip: BlockHash,
    },
    /// The client stopped (the last event).
    Stopped(super::LightError),
}
