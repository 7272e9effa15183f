//! [`Peer::broadcast_transaction`]: announce a transaction, serve the remote's `getdata` for it,
//! and watch for a `reject` of it.

use std::time::Duration;

use bitcoin::Transaction;

use super::super::Peer;
use super::super::error::SendOutcome;
use super::super::request::{Answer, Want};
use super::{RequestError, Requests, without_witness};
use crate::wire::{Inventory, Message, RejectCode};

/// How long a broadcast waits, after its transaction was written, for a `reject` of it.
const REJECT_WINDOW: Duration = Duration::from_secs(2);

/// What became of a broadcast transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BroadcastOutcome {
    /// The remote asked for it (`getdata`) and it was written to the stream.
    Requested,
    /// The remote did not ask for it within the timeout (it had it already, or does not want it).
    NotRequested,
    /// The remote rejected it (a `reject` naming it came soon after it was sent; only remotes
    /// that still send `reject`, such as btcd, do).
    Rejected {
        /// The reject code.
        code: RejectCode,
        /// The remote's reason.
        reason: String,
    },
}

impl Peer {
    /// Announces `tx` (by wtxid or txid, as negotiated), serves the remote's `getdata` for it
    /// (without witnesses when it asks by `MSG_TX`, as Core), and says what happened. After the
    /// first `getdata` it waits two seconds for a `reject`; another `getdata` for it meanwhile is
    /// served too.
    ///
    /// ```no_run
    /// # async fn f(peer: &btcpeer::peer::Peer, tx: btcpeer::bitcoin::Transaction) -> Result<(), btcpeer::peer::RequestError> {
    /// use btcpeer::peer::BroadcastOutcome;
    /// match peer.broadcast_transaction(tx).await? {
    ///     BroadcastOutcome::Requested => println!("the remote took it"),
    ///     BroadcastOutcome::NotRequested => println!("the remote did not ask for it"),
    ///     other => println!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn broadcast_transaction(&self, tx: Transaction) -> Result<BroadcastOutcome, RequestError> {
        self.requests().broadcast_transaction(tx).await
    }
}

impl Requests<'_> {
    /// See [`Peer::broadcast_transaction`].
    pub async fn broadcast_transaction(self, tx: Transaction) -> Result<BroadcastOutcome, RequestError> {
        self.ready(|_| Ok(())).await?;
        if !self.peer.relays_transactions() {
            return Err(RequestError::NotSupported("transactions (the remote asked for none: relay = false)"));
        }
        let (txid, wtxid) = (tx.compute_txid(), tx.compute_wtxid());
        let limit = self.limit(false);
        // Announced as the negotiation wants, at once (a broadcast is not trickled: the caller
        // waits on it). The remote may already know it: then it will not ask.
        let inv = if self.peer.wtxid_relay() { Inventory::WTx(wtxid) } else { Inventory::Tx(txid) };
        let mut registration = self.ask(Want::Broadcast { txid, wtxid }, &Message::Inv(vec![inv])).await?;
        self.peer.with_core(|c| c.state_mut().known().insert(&inv));
        let asked = match self.next(&mut registration, limit).await {
            Ok(Answer::Requested(asked)) => asked,
            Ok(_) => return Err(RequestError::NotSupported("an unexpected answer")),
            Err(RequestError::Timeout(_)) => return Ok(BroadcastOutcome::NotRequested),
            Err(e) => return Err(e),
        };
        let written = self.serve(&tx, asked)?.wait().await;
        if let SendOutcome::Dropped(reason) = written {
            return Err(RequestError::Disconnected(reason));
        }
        // The reject window: a `reject` of it ends the broadcast; another `getdata` for it (the
        // remote lost it, or asks again in the other form) is served as the first was.
        let window = tokio::time::Instant::now();
        loop {
            let left = REJECT_WINDOW.saturating_sub(window.elapsed());
            match tokio::time::timeout(left, registration.answers.recv()).await {
                Ok(Some(Answer::Message(Message::Reject(r)))) => {
                    return Ok(BroadcastOutcome::Rejected { code: r.code, reason: r.reason });
                }
                Ok(Some(Answer::Requested(again))) => {
                    let _ = self.serve(&tx, again)?;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return Ok(BroadcastOutcome::Requested),
            }
        }
    }

    /// Queues `tx` as `asked` wants it: `MSG_TX` asks for the serialization without witnesses
    /// (Core's `TX_NO_WITNESS`).
    fn serve(&self, tx: &Transaction, asked: Inventory) -> Result<super::super::Completion, RequestError> {
        let served = if matches!(asked, Inventory::Tx(_)) { without_witness(tx) } else { tx.clone() };
        self.peer.queue_message(&Message::Tx(served)).map_err(RequestError::Queue)
    }
}
