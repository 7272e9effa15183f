//! Conversions to and from rust-bitcoin 0.32's `p2p` types, for code that already speaks them.
//!
//! [`Message`] ⇄ `bitcoin::p2p::message::NetworkMessage` go through the wire encoding both
//! implement, so a conversion is exactly what a remote would have seen: byte for byte, or an
//! error naming which side could not read it. [`Inventory`] ⇄
//! `bitcoin::p2p::message_blockdata::Inventory` map kind to kind (the filtered kinds rust-bitcoin
//! lacks become its `Unknown` with their type number, and back).
//!
//! ```
//! use btcpeer_core::wire::Message;
//! use btcpeer_core::bitcoin::p2p::message::NetworkMessage;
//!
//! let theirs = NetworkMessage::try_from(&Message::Ping(7))?;
//! assert_eq!(theirs, NetworkMessage::Ping(7));
//! assert_eq!(Message::try_from(&theirs)?, Message::Ping(7));
//! # Ok::<(), btcpeer_core::wire::CompatError>(())
//! ```

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::message_blockdata::Inventory as TheirInventory;
use bytes::{Bytes, BytesMut};

use super::error::{EncodeError, FrameError, PayloadError};
use super::frame;
use super::{Inventory, Message};
use crate::network::Network;

/// Why a conversion between our messages and rust-bitcoin's failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompatError {
    /// Our message does not encode.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// rust-bitcoin could not read the bytes of our message.
    #[error("rust-bitcoin cannot read it: {0}")]
    Theirs(String),
    /// We could not read the bytes of rust-bitcoin's message (a frame or payload limit).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// We could not read the payload of rust-bitcoin's message.
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

impl TryFrom<&Message> for NetworkMessage {
    type Error = CompatError;

    fn try_from(message: &Message) -> Result<Self, Self::Error> {
        let net = Network::REGTEST;
        let mut buf = BytesMut::new();
        frame::encode_frame(message, &net, &mut buf)?;
        let raw: RawNetworkMessage = deserialize(&buf).map_err(|e| CompatError::Theirs(e.to_string()))?;
        Ok(raw.into_payload())
    }
}

impl TryFrom<Message> for NetworkMessage {
    type Error = CompatError;

    fn try_from(message: Message) -> Result<Self, Self::Error> {
        NetworkMessage::try_from(&message)
    }
}

impl TryFrom<&NetworkMessage> for Message {
    type Error = CompatError;

    fn try_from(message: &NetworkMessage) -> Result<Self, Self::Error> {
        let net = Network::REGTEST;
        let bytes = Bytes::from(serialize(&RawNetworkMessage::new(net.magic(), message.clone())));
        let (raw, _) = frame::decode_frame(&bytes, &net)?;
        Ok(raw.decode()?)
    }
}

impl TryFrom<NetworkMessage> for Message {
    type Error = CompatError;

    fn try_from(message: NetworkMessage) -> Result<Self, Self::Error> {
        Message::try_from(&message)
    }
}

impl From<Inventory> for TheirInventory {
    fn from(inv: Inventory) -> Self {
        match inv {
            Inventory::Tx(t) => TheirInventory::Transaction(t),
            Inventory::Block(b) => TheirInventory::Block(b),
            Inventory::CompactBlock(b) => TheirInventory::CompactBlock(b),
            Inventory::WTx(w) => TheirInventory::WTx(w),
            Inventory::WitnessTx(t) => TheirInventory::WitnessTransaction(t),
            Inventory::WitnessBlock(b) => TheirInventory::WitnessBlock(b),
            // rust-bitcoin decodes type 0 as `Unknown` too.
            Inventory::Error(hash) => TheirInventory::Unknown { inv_type: 0, hash },
            Inventory::FilteredBlock(b) => TheirInventory::Unknown { inv_type: 3, hash: b.to_byte_array() },
            Inventory::FilteredWitnessBlock(b) => {
                TheirInventory::Unknown { inv_type: 0x4000_0003, hash: b.to_byte_array() }
            }
            Inventory::Unknown { inv_type, hash } => TheirInventory::Unknown { inv_type, hash },
        }
    }
}

impl From<TheirInventory> for Inventory {
    fn from(inv: TheirInventory) -> Self {
        match inv {
            TheirInventory::Error => Inventory::Error([0; 32]),
            TheirInventory::Transaction(t) => Inventory::Tx(t),
            TheirInventory::Block(b) => Inventory::Block(b),
            TheirInventory::CompactBlock(b) => Inventory::CompactBlock(b),
            TheirInventory::WTx(w) => Inventory::WTx(w),
            TheirInventory::WitnessTransaction(t) => Inventory::WitnessTx(t),
            TheirInventory::WitnessBlock(b) => Inventory::WitnessBlock(b),
            TheirInventory::Unknown { inv_type, hash } => Inventory::from_parts(inv_type, hash),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn r_a_inventory_round_trips_through_rust_bitcoin(kind in prop_oneof![0u32..8, Just(0x4000_0001u32), Just(0x4000_0002), Just(0x4000_0003), any::<u32>()], hash in any::<[u8; 32]>()) {
            let ours = Inventory::from_parts(kind, hash);
            let theirs = TheirInventory::from(ours);
            prop_assert_eq!(Inventory::from(theirs), ours);
            // And the same bytes on the wire.
            let message = Message::Inv(vec![ours]);
            let converted = NetworkMessage::try_from(&message).unwrap();
            prop_assert_eq!(converted, NetworkMessage::Inv(vec![theirs]));
            prop_assert_eq!(Message::try_from(&NetworkMessage::Inv(vec![theirs])).unwrap(), message);
        }

        #[test]
        fn r_a_pings_and_fee_filters_round_trip(nonce in any::<u64>(), rate in 0i64..2_100_000_000_000_000) {
            for m in [Message::Ping(nonce), Message::Pong(nonce), Message::FeeFilter(rate)] {
                let theirs = NetworkMessage::try_from(&m).unwrap();
                prop_assert_eq!(Message::try_from(theirs).unwrap(), m);
            }
        }
    }
}
