//! Bytes to messages and back, with no I/O, no tasks and no clock.
//!
//! This module owns the message types ([`Message`] and the payload types it carries), the dispatch
//! from a command to its payload decoder, the protocol's limits ([`limits`]) and leniencies, the v1
//! frame header and checksum ([`frame`]), and the table of which messages exist at which protocol
//! version ([`version`]). Consensus structures (blocks, transactions, headers, hashes) are
//! rust-bitcoin's types, re-exported as [`crate::bitcoin`].
//!
//! Everything here treats its input as hostile: counts are checked against their limits and against
//! the bytes actually present before anything is allocated for them, errors are typed
//! ([`PayloadError`] names the command and field), and nothing panics.
//!
//! ```
//! use btcpeer_core::network::Network;
//! use btcpeer_core::wire::{frame, Inventory, Message};
//! use btcpeer_core::bitcoin::{hashes::Hash, BlockHash};
//!
//! let inv = Message::Inv(vec![Inventory::Block(BlockHash::all_zeros())]);
//! let mut buf = bytes::BytesMut::new();
//! frame::encode_frame(&inv, &Network::MAINNET, &mut buf).unwrap();
//! let (decoded, _) = frame::decode_message(&buf.freeze(), &Network::MAINNET).unwrap();
//! assert_eq!(decoded, inv);
//! ```

mod block;
mod command;
mod compat;
mod error;
pub mod frame;
pub mod limits;
mod message;
mod payload;
mod read;
pub mod version;
mod write;

pub use block::{check_block, without_witness};
pub use command::{COMMAND_LEN, Command, CommandError};
pub use compat::CompatError;
pub use error::{ConsensusError, DecodeError, EncodeError, FrameError, PayloadError, PayloadErrorKind};
pub use message::Message;
pub use payload::{
    FilterAdd, FilterLoad, Inventory, Reject, RejectCode, SendTxRcncl, VersionMessage, VersionTail,
    address_from_socket, blank_address,
};

/// Payload types from rust-bitcoin that [`Message`] carries, re-exported for convenience.
pub mod types {
    pub use bitcoin::MerkleBlock;
    pub use bitcoin::bip152::{
        BlockTransactions, BlockTransactionsRequest, HeaderAndShortIds, PrefilledTransaction, ShortId,
    };
    pub use bitcoin::p2p::ServiceFlags;
    pub use bitcoin::p2p::address::{AddrV2, AddrV2Message, Address};
    pub use bitcoin::p2p::message_blockdata::{GetBlocksMessage, GetHeadersMessage};
    pub use bitcoin::p2p::message_compact_blocks::SendCmpct;
    pub use bitcoin::p2p::message_filter::{CFCheckpt, CFHeaders, CFilter, GetCFCheckpt, GetCFHeaders, GetCFilters};
}
