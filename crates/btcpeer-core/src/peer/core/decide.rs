//! [`PeerCore`]'s decision step on the remote's version: node-wide state (a nonce registry shared
//! by a node's connections, the application's refusal) goes in as an input, not a callback.

use std::time::{Instant, SystemTime};

use super::{MAX_EVENTS, PeerCore};
use crate::wire::frame::RawFrame;

impl PeerCore {
    /// Whether the core waits for [`decide_version`](PeerCore::decide_version).
    pub fn is_deciding(&self) -> bool {
        self.deciding && !self.ended
    }

    /// The driver's verdict on the remote's version ([`Event::Version`](super::Event::Version)):
    /// `Ok` continues the handshake by the core's own rules (minimum version, required services);
    /// `Err(why)` refuses it (a `reject` where the version has them, then the end, with
    /// [`DisconnectReason::Refused`](super::DisconnectReason::Refused)). Frames that came
    /// meanwhile are then taken, in order.
    ///
    /// ```
    /// use std::time::{Instant, SystemTime};
    /// use btcpeer_core::peer::{CoreConfig, Direction, DisconnectReason, Event, PeerCore};
    /// use btcpeer_core::wire::frame::RawFrame;
    ///
    /// let now = Instant::now();
    /// let mut a = PeerCore::new(CoreConfig::seeded(Direction::Outbound, 1), now, SystemTime::now());
    /// let mut config = CoreConfig::seeded(Direction::Inbound, 2);
    /// config.version_decision = true;
    /// let mut b = PeerCore::new(config, now, SystemTime::now());
    /// while let Some(m) = a.poll_transmit(now) { b.handle_frame(RawFrame::from_message(&m).unwrap(), now, SystemTime::now()); }
    /// assert!(matches!(b.poll_event(), Some(Event::Version(_))));
    /// assert!(b.poll_transmit(now).is_none(), "nothing answered before the verdict");
    /// b.decide_version(Err("not today".into()), now, SystemTime::now());
    /// assert_eq!(b.poll_event(), Some(Event::Disconnected(DisconnectReason::Refused("not today".into()))));
    /// ```
    pub fn decide_version(&mut self, verdict: Result<(), String>, now: Instant, wall: SystemTime) {
        if !self.deciding || self.ended {
            return;
        }
        self.deciding = false;
        let Some(hs) = self.handshake.as_mut() else { return };
        let result = match verdict {
            Ok(()) => hs.accept(),
            Err(why) => Err(hs.refuse(why)),
        };
        self.pull_handshake_output();
        if let Err(reason) = result {
            self.end(reason);
            return;
        }
        let paused = self.paused.take().map(|p| *p).unwrap_or_default();
        for (frame, wire) in paused {
            self.receive_frame(frame, wire, now, wall);
        }
    }

    /// The nonce of our `version` on this connection: what a node-wide registry records while the
    /// handshake is in flight, so that a remote `version` carrying it is known as our own (Core:
    /// `CNode::GetLocalNonce`, checked by `CConnman::CheckIncomingNonce`).
    ///
    /// ```
    /// use std::time::{Instant, SystemTime};
    /// use btcpeer_core::peer::{CoreConfig, Direction, PeerCore};
    /// use btcpeer_core::wire::Message;
    ///
    /// let now = Instant::now();
    /// let mut core = PeerCore::new(CoreConfig::seeded(Direction::Outbound, 7), now, SystemTime::now());
    /// let Some(Message::Version(v)) = core.poll_transmit(now) else { unreachable!() };
    /// assert_eq!(v.nonce, core.nonce());
    /// ```
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The verdict on the remote's version ([`Event::Version`](super::Event::Version)) when its
    /// nonce is one of this node's handshakes in flight: the connection reached ourselves and ends
    /// with [`DisconnectReason::SelfConnection`](super::DisconnectReason::SelfConnection), without
    /// a reject (Core: `PeerManagerImpl::ProcessMessage`, "connected to self ..., disconnecting").
    /// Nothing happens when the core is not deciding.
    ///
    /// ```
    /// use std::time::{Instant, SystemTime};
    /// use btcpeer_core::peer::{CoreConfig, Direction, DisconnectReason, Event, PeerCore};
    /// use btcpeer_core::wire::frame::RawFrame;
    ///
    /// let now = Instant::now();
    /// let mut a = PeerCore::new(CoreConfig::seeded(Direction::Outbound, 1), now, SystemTime::now());
    /// let mut config = CoreConfig::seeded(Direction::Inbound, 2);
    /// config.version_decision = true;
    /// let mut b = PeerCore::new(config, now, SystemTime::now());
    /// while let Some(m) = a.poll_transmit(now) { b.handle_frame(RawFrame::from_message(&m).unwrap(), now, SystemTime::now()); }
    /// let Some(Event::Version(info)) = b.poll_event() else { unreachable!() };
    /// assert_eq!(info.version.nonce, a.nonce(), "the driver finds it in its registry");
    /// b.refuse_self_connection();
    /// assert_eq!(b.poll_event(), Some(Event::Disconnected(DisconnectReason::SelfConnection)));
    /// assert!(b.poll_transmit(now).is_none(), "no reject, no version");
    /// ```
    pub fn refuse_self_connection(&mut self) {
        if !self.deciding || self.ended {
            return;
        }
        self.deciding = false;
        self.paused = None;
        self.end(super::DisconnectReason::SelfConnection);
    }

    /// A frame handed in while deciding waits (a driver feeding bytes keeps them unread instead);
    /// beyond a bound it is dropped and counted, as a full queue's are.
    pub(super) fn hold_while_deciding(&mut self, frame: RawFrame, wire: usize) {
        let paused = self.paused.get_or_insert_with(Default::default);
        if paused.len() < MAX_EVENTS {
            paused.push_back((frame, wire));
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }
}
