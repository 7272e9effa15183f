//! Which ends of a connection discourage the remote's address: only those Core scores with
//! `Misbehaving` (`net_processing.cpp`), never our own policy or what Core merely disconnects.

use crate::peer::DisconnectReason;
use crate::wire::{Command, PayloadErrorKind};

/// Whether a peer that ended for `reason` is to be discouraged, as Core's
/// `PeerManagerImpl::Misbehaving` (followed by `MaybeDiscourageAndDisconnect`) would have it.
///
/// Core calls `Misbehaving` for a message over its size limit — `inv` or `getdata` above
/// 50,000 entries (`MAX_INV_SZ`), `headers` above 2,000 (`MAX_HEADERS_RESULTS`), `addr` or
/// `addrv2` above 1,000 (`MAX_ADDR_TO_SEND`) — and these arrive here as a payload refused for
/// too many entries. Nothing else that ends a connection in this crate does:
///
/// - our own policy: a v1 peer where v2 is required (`V1NotAllowed`), our limit of ignored
///   frames (`TooManyIgnored`);
/// - what Core only disconnects (`fDisconnect`): `wtxidrelay`/`sendaddrv2` after verack
///   (`FeatureAfterVerack`), a bloom message when we do not offer `NODE_BLOOM`
///   (`BloomNotOffered`), a wrong magic or oversized frame, a broken v2 packet;
/// - a payload that failed to decode otherwise: Core's `ProcessMessages` catches the exception
///   and drops the message;
/// - timeouts, closes and I/O errors.
///
/// ```
/// use btcpeer_core::node::discourages;
/// use btcpeer_core::peer::{DisconnectReason, Violation};
/// use btcpeer_core::wire::{Command, Message};
///
/// assert!(!discourages(&DisconnectReason::Protocol(Violation::V1NotAllowed)));
/// // An `inv` of 50,001 entries: Core's `Misbehaving(peer, "inv message size = …")`.
/// let err = Message::decode(Command::INV, bytes::Bytes::from_static(&[0xfd, 0x51, 0xc3])).unwrap_err();
/// assert!(discourages(&DisconnectReason::Payload(err)));
/// ```
pub fn discourages(reason: &DisconnectReason) -> bool {
    match reason {
        DisconnectReason::Payload(e) => {
            matches!(e.kind, PayloadErrorKind::TooMany { .. })
                && [Command::INV, Command::GETDATA, Command::HEADERS, Command::ADDR, Command::ADDRV2]
                    .contains(&e.command)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::Violation;
    use crate::wire::{Message, PayloadError};

    fn decode_error(command: Command, payload: &'static [u8]) -> PayloadError {
        Message::decode(command, bytes::Bytes::from_static(payload)).unwrap_err()
    }

    #[test]
    fn our_policy_and_what_core_only_disconnects_never_discourage() {
        for v in [
            Violation::V1NotAllowed,
            Violation::TooManyIgnored { count: 1_000 },
            Violation::FeatureAfterVerack(Command::WTXIDRELAY),
            Violation::FeatureAfterVerack(Command::SENDADDRV2),
            Violation::BloomNotOffered(Command::FILTERLOAD),
        ] {
            assert!(!discourages(&DisconnectReason::Protocol(v.clone())), "{v}");
        }
        assert!(!discourages(&DisconnectReason::IdleTimeout));
        assert!(!discourages(&DisconnectReason::RemoteClosed { during_handshake: false }));
    }

    #[test]
    fn a_payload_that_fails_to_decode_is_dropped_by_core_not_scored() {
        // A truncated `ping` and a `tx` of garbage: Core's exception handler drops them.
        assert!(!discourages(&DisconnectReason::Payload(decode_error(Command::PING, &[1, 2]))));
        assert!(!discourages(&DisconnectReason::Payload(decode_error(Command::TX, &[0xff; 9]))));
    }

    #[test]
    fn oversized_inv_getdata_headers_and_addr_are_misbehaviour_as_in_core() {
        // 50,001 inventory entries; 2,001 headers; 1,001 addresses.
        assert!(discourages(&DisconnectReason::Payload(decode_error(Command::INV, &[0xfd, 0x51, 0xc3]))));
        assert!(discourages(&DisconnectReason::Payload(decode_error(Command::GETDATA, &[0xfd, 0x51, 0xc3]))));
        assert!(discourages(&DisconnectReason::Payload(decode_error(Command::HEADERS, &[0xfd, 0xd1, 0x07]))));
        assert!(discourages(&DisconnectReason::Payload(decode_error(Command::ADDR, &[0xfd, 0xe9, 0x03]))));
    }
}
