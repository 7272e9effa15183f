//! The version handshake as a state machine.
//!
//! The outbound side sends its version first; the inbound side waits for the remote's and answers.
//! Messages before the remote's version are ignored and counted, as Bitcoin Core does. The remote's
//! version is validated in this order: the caller checks its nonce (self-connection, which needs
//! the node's registry) and may refuse it (an application hook); then [`VersionHandshake::accept`]
//! checks the minimum version and the required services. Before verack each side sends the feature
//! messages the negotiated version allows (`wtxidrelay`, `sendaddrv2`, and `sendtxrcncl` when
//! configured and both sides relay transactions); while waiting for the remote's verack, the
//! feature messages, `sendheaders` and `sendcmpct` are honoured in any order, unknown messages are
//! tolerated, and anything else (a second version included) is ignored and counted, as Core does.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::p2p::ServiceFlags;

use super::{Direction, DisconnectReason, RemoteInfo, Transport};
use crate::wire::frame::RawFrame;
use crate::wire::version::{ADDRV2_VERSION, REJECT_VERSION, WTXID_RELAY_VERSION, is_defined, version_has_relay};
use crate::wire::{Command, Message, Reject, RejectCode, SendTxRcncl, VersionMessage, VersionTail, blank_address};

/// What our side of the handshake offers and requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeRules {
    /// Our protocol version.
    pub protocol_version: u32,
    /// The lowest version we accept from the remote.
    pub min_protocol_version: u32,
    /// Services the remote must offer.
    pub required_services: ServiceFlags,
    /// Our relay flag: whether we want transaction announcements.
    pub relay: bool,
    /// Whether we send `wtxidrelay` (BIP339).
    pub wtxid_relay: bool,
    /// Whether we send `sendaddrv2` (BIP155).
    pub addrv2: bool,
    /// Our `sendtxrcncl` (BIP330) version and salt, sent when both sides relay transactions.
    pub txrcncl: Option<(u32, u64)>,
}

impl HandshakeRules {
    /// Our version message under these rules, with blank addresses (the driver fills them in where
    /// it knows them): `now` is its timestamp.
    pub fn version(
        &self,
        services: ServiceFlags,
        nonce: u64,
        user_agent: &str,
        start_height: i32,
        now: SystemTime,
    ) -> VersionMessage {
        let mut sender = blank_address();
        sender.services = services;
        VersionMessage {
            version: self.protocol_version,
            services,
            timestamp: unix_secs(now),
            receiver: blank_address(),
            sender,
            nonce,
            user_agent: user_agent.to_string(),
            start_height,
            relay: self.relay,
            tail: if version_has_relay(self.protocol_version) { VersionTail::Complete } else { VersionTail::NoRelay },
        }
    }
}

impl Default for HandshakeRules {
    /// Core's current behaviour: version 70016 ([`PROTOCOL_VERSION`]), accepting 31800 and up
    /// ([`MIN_PEER_PROTO_VERSION`], Core's `MIN_PEER_PROTO_VERSION` in `net_processing.h`), no
    /// services required, relaying, with wtxidrelay and addrv2.
    ///
    /// [`PROTOCOL_VERSION`]: crate::wire::version::PROTOCOL_VERSION
    /// [`MIN_PEER_PROTO_VERSION`]: crate::wire::version::MIN_PEER_PROTO_VERSION
    fn default() -> Self {
        HandshakeRules {
            protocol_version: crate::wire::version::PROTOCOL_VERSION,
            min_protocol_version: crate::wire::version::MIN_PEER_PROTO_VERSION,
            required_services: ServiceFlags::NONE,
            relay: true,
            wtxid_relay: true,
            addrv2: true,
            txrcncl: None,
        }
    }
}

/// What a frame did to the handshake, for the caller to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeStep {
    /// Nothing for the caller.
    Continue,
    /// The frame was ignored; Core counts such frames (the caller may enforce a limit).
    Ignored,
    /// A command we do not know was tolerated.
    Unknown,
    /// A `sendheaders` or `sendcmpct` before verack: the caller records it (Core handles these
    /// before its "prior to verack" check), and counts it as ignored if its value is refused.
    Preference(Message),
    /// The remote's version arrived ([`VersionHandshake::remote`]): check it, then call
    /// [`VersionHandshake::accept`] or [`VersionHandshake::refuse`].
    Version,
    /// The remote's verack arrived: the handshake is complete.
    Done(RemoteInfo),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    AwaitVersion,
    Deciding,
    AwaitVerack,
    Over,
}

/// One side of the version handshake, sans I/O: [`handle_frame`](VersionHandshake::handle_frame)
/// for each frame read, [`poll_transmit`](VersionHandshake::poll_transmit) for the messages to
/// write (in order; those available together are best written together).
///
/// (The core's own: see the test `two_sides_complete_the_handshake_in_three_deliveries`.)
#[derive(Debug)]
pub struct VersionHandshake {
    rules: HandshakeRules,
    ours: Option<VersionMessage>,
    transport: Transport,
    stage: Stage,
    remote: Option<RemoteInfo>,
    we_send_wtxid: bool,
    out: VecDeque<Message>,
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl VersionHandshake {
    /// The transport settled after the handshake began (an inbound connection that told v1 from
    /// v2 by its first bytes): what [`RemoteInfo::transport`] will say.
    pub fn set_transport(&mut self, transport: Transport) {
        self.transport = transport;
    }

    /// A handshake that will send `ours` (an outbound side queues it at once).
    pub fn new(direction: Direction, rules: HandshakeRules, ours: VersionMessage, transport: Transport) -> Self {
        let mut out = VecDeque::with_capacity(5);
        let mut ours = Some(ours);
        if direction == Direction::Outbound {
            out.extend(ours.take().map(Message::Version));
        }
        VersionHandshake { rules, ours, transport, stage: Stage::AwaitVersion, remote: None, we_send_wtxid: false, out }
    }

    /// The next message to write, if any.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.out.pop_front()
    }

    /// What the handshake learned about the remote so far (from its version on).
    pub fn remote(&self) -> Option<&RemoteInfo> {
        self.remote.as_ref()
    }

    /// Takes one frame read from the remote; `now` is the wall clock (for the remote's time offset).
    pub fn handle_frame(&mut self, frame: &RawFrame, now: SystemTime) -> Result<HandshakeStep, DisconnectReason> {
        match self.stage {
            // Anything before the remote's version is ignored and counted, as Core does ("non-version
            // message before version handshake", `ProcessMessage` in `net_processing.cpp`); the
            // handshake deadline bounds how long a remote may go on so.
            Stage::AwaitVersion => {
                if frame.command != Command::VERSION {
                    return Ok(HandshakeStep::Ignored);
                }
                let Message::Version(version) = frame.decode().map_err(DisconnectReason::Payload)? else {
                    return Ok(HandshakeStep::Ignored);
                };
                let negotiated = self.rules.protocol_version.min(version.version);
                self.remote = Some(RemoteInfo {
                    time_offset: version.timestamp.saturating_sub(unix_secs(now)),
                    relay: version.relay,
                    version,
                    negotiated_version: negotiated,
                    wants_addrv2: false,
                    wtxid_relay: false,
                    txrcncl: None,
                    transport: self.transport,
                });
                self.stage = Stage::Deciding;
                Ok(HandshakeStep::Version)
            }
            // Frames are not read while the caller decides; one that is fed anyway is ignored.
            Stage::Deciding | Stage::Over => Ok(HandshakeStep::Ignored),
            Stage::AwaitVerack => self.before_verack(frame),
        }
    }

    /// Until the remote's verack: the feature messages are honoured in any order, as are
    /// `sendheaders` and `sendcmpct`, which Core handles before its "prior to verack" check; a
    /// second version and every other known message are ignored and counted; unknown messages
    /// (future feature negotiation) are tolerated.
    fn before_verack(&mut self, frame: &RawFrame) -> Result<HandshakeStep, DisconnectReason> {
        let we_send_wtxid = self.we_send_wtxid;
        let Some(info) = self.remote.as_mut() else { return Ok(HandshakeStep::Ignored) };
        let negotiated = info.negotiated_version;
        let command = frame.command;
        Ok(match command.as_str() {
            "verack" => {
                self.stage = Stage::Over;
                HandshakeStep::Done(info.clone())
            }
            "wtxidrelay" => {
                info.wtxid_relay = negotiated >= WTXID_RELAY_VERSION && we_send_wtxid;
                HandshakeStep::Continue
            }
            "sendaddrv2" => {
                info.wants_addrv2 = negotiated >= ADDRV2_VERSION;
                HandshakeStep::Continue
            }
            "sendtxrcncl" => {
                // We do not reconcile (Core with reconciliation off ignores it); it is recorded for
                // the application's information only.
                if let Ok(Message::SendTxRcncl(m)) = frame.decode() {
                    info.txrcncl = Some(m);
                }
                HandshakeStep::Continue
            }
            "sendheaders" | "sendcmpct" if is_defined(command, negotiated) => {
                HandshakeStep::Preference(frame.decode().map_err(DisconnectReason::Payload)?)
            }
            _ if command.is_known() => HandshakeStep::Ignored,
            _ => HandshakeStep::Unknown,
        })
    }

    /// Accepts the remote's version after the caller's checks: the minimum version and the
    /// required services are checked, then our version (inbound), the feature messages and verack
    /// are queued. On a refusal a `reject` is queued where the remote's version has them; write it,
    /// then end the connection with the reason returned.
    pub fn accept(&mut self) -> Result<(), DisconnectReason> {
        let Some(info) = self.remote.as_ref().filter(|_| self.stage == Stage::Deciding) else {
            return Ok(());
        };
        let (version, services, negotiated) = (info.version.version, info.version.services, info.negotiated_version);
        let remote_relays = info.version.relay;
        if version < self.rules.min_protocol_version {
            let minimum = self.rules.min_protocol_version;
            self.reject(negotiated, RejectCode::OBSOLETE, format!("protocol version must be {minimum} or greater"));
            return Err(DisconnectReason::ObsoleteVersion { version, minimum });
        }
        if !services.has(self.rules.required_services) {
            self.reject(negotiated, RejectCode::NONSTANDARD, "missing required services".into());
            return Err(DisconnectReason::MissingServices {
                advertised: services,
                required: self.rules.required_services,
            });
        }
        // Our version (inbound), the feature messages and verack go out together.
        self.out.extend(self.ours.take().map(Message::Version));
        self.we_send_wtxid = self.rules.wtxid_relay && negotiated >= WTXID_RELAY_VERSION;
        if self.we_send_wtxid {
            self.out.push_back(Message::WtxidRelay);
        }
        if self.rules.addrv2 && negotiated >= ADDRV2_VERSION {
            self.out.push_back(Message::SendAddrV2);
        }
        // BIP330: only where transactions may be relayed both ways (Core's `ProcessMessage` for
        // `VERSION` sends it only when it relays and the remote's relay flag is set).
        let reconcile = self.we_send_wtxid && self.rules.relay && remote_relays;
        if let Some((version, salt)) = self.rules.txrcncl.filter(|_| reconcile) {
            self.out.push_back(Message::SendTxRcncl(SendTxRcncl { version, salt }));
        }
        self.out.push_back(Message::Verack);
        self.stage = Stage::AwaitVerack;
        Ok(())
    }

    /// Refuses the remote's version for the caller's reason (an application hook): a `reject` is
    /// queued where the remote's version has them.
    pub fn refuse(&mut self, why: String) -> DisconnectReason {
        let negotiated = self.remote.as_ref().map_or(0, |r| r.negotiated_version);
        self.reject(negotiated, RejectCode::NONSTANDARD, why.clone());
        DisconnectReason::Refused(why)
    }

    fn reject(&mut self, negotiated: u32, code: RejectCode, reason: String) {
        self.stage = Stage::Over;
        self.out.clear();
        if negotiated >= REJECT_VERSION {
            self.out.push_back(Message::Reject(Reject { message: "version".into(), code, reason, hash: None }));
        }
    }
}

#[cfg(test)]
mod doc_example {
    #[test]
    fn two_sides_complete_the_handshake_in_three_deliveries() -> Result<(), crate::peer::DisconnectReason> {
        use crate::peer::handshake::{HandshakeRules, HandshakeStep, VersionHandshake};
        use crate::peer::{Direction, DisconnectReason, Transport};
        use crate::wire::frame::RawFrame;
        use bitcoin::p2p::ServiceFlags;
        use std::time::SystemTime;

        /// Delivers what `from` has to send to `to`; true when `to` completed.
        fn deliver(from: &mut VersionHandshake, to: &mut VersionHandshake) -> Result<bool, DisconnectReason> {
            let mut done = false;
            while let Some(message) = from.poll_transmit() {
                match to.handle_frame(&RawFrame::from_message(&message).unwrap(), SystemTime::now())? {
                    HandshakeStep::Version => to.accept()?,
                    HandshakeStep::Done(_) => done = true,
                    _ => {}
                }
            }
            Ok(done)
        }

        let rules = HandshakeRules::default();
        let version = |nonce| rules.version(ServiceFlags::NETWORK, nonce, "/example:0.1/", 0, SystemTime::now());
        let mut a = VersionHandshake::new(Direction::Outbound, rules.clone(), version(1), Transport::V1);
        let mut b = VersionHandshake::new(Direction::Inbound, rules.clone(), version(2), Transport::V1);
        deliver(&mut a, &mut b)?; // a's version; b answers with version, wtxidrelay, sendaddrv2, verack
        assert!(deliver(&mut b, &mut a)?, "a is done");
        assert!(deliver(&mut a, &mut b)?, "b is done");
        assert_eq!(a.remote().unwrap().version.nonce, 2);
        assert!(a.remote().unwrap().wtxid_relay);
        Ok(())
    }
}
