//! [`PeerCore`] driven with bytes: its [`Framing`] (v1 or BIP324 v2) between the socket and the
//! frames, so that a driver only moves bytes and time.

use std::time::{Instant, SystemTime};

use bytes::BytesMut;

use super::{Framed, Framing, PeerCore};
use crate::peer::CoreConfig;

impl PeerCore {
    /// A connection driven with bytes through `framing` ([`handle_bytes`](PeerCore::handle_bytes)
    /// in, [`poll_transmit_bytes`](PeerCore::poll_transmit_bytes) out), starting at `now`.
    ///
    /// ```
    /// use std::time::{Instant, SystemTime};
    /// use bytes::BytesMut;
    /// use btcpeer_core::network::Network;
    /// use btcpeer_core::peer::{CoreConfig, Direction, Event, PeerCore, Transport};
    /// use btcpeer_core::transport::framing::{Framing, TransportPolicy};
    ///
    /// let now = Instant::now();
    /// let side = |direction, seed| {
    ///     let framing = Framing::new(Network::REGTEST, direction, TransportPolicy::Auto, Default::default()).unwrap();
    ///     PeerCore::framed(CoreConfig::seeded(direction, seed), framing, now, SystemTime::now())
    /// };
    /// let (mut a, mut b) = (side(Direction::Outbound, 1), side(Direction::Inbound, 2));
    /// let (mut ab, mut ba) = (BytesMut::new(), BytesMut::new());
    /// for _ in 0..6 {
    ///     a.poll_transmit_bytes(now, &mut ab);
    ///     b.handle_bytes(&mut ab, now, SystemTime::now());
    ///     b.poll_transmit_bytes(now, &mut ba);
    ///     a.handle_bytes(&mut ba, now, SystemTime::now());
    /// }
    /// let Some(Event::Handshake(info)) = a.poll_event() else { panic!("no handshake") };
    /// assert_eq!(info.transport, Transport::V2);
    /// ```
    pub fn framed(mut config: CoreConfig, framing: Framing, now: Instant, wall: SystemTime) -> PeerCore {
        if let Some(t) = framing.transport() {
            config.transport = t;
        }
        let mut core = PeerCore::new(config, now, wall);
        core.framing = Some(Box::new(framing));
        core
    }

    /// Takes the bytes read from the remote at the front of `buf` (whole frames are consumed, a
    /// partial one stays for the next call).
    pub fn handle_bytes(&mut self, buf: &mut BytesMut, now: Instant, wall: SystemTime) {
        // While the driver decides on the remote's version, bytes wait in `buf`.
        while !self.ended && !self.deciding {
            let Some(framing) = self.framing.as_mut() else { return };
            match framing.poll_input(buf) {
                Ok(Some(Framed::Frame { frame, wire })) => self.receive_frame(frame, wire, now, wall),
                Ok(Some(Framed::Dropped { wire, .. })) => self.dropped(wire, now),
                Ok(Some(Framed::Established(transport))) => {
                    let (sent, received) = framing.handshake_bytes();
                    self.state.traffic.handshake_bytes(sent, received);
                    self.config.transport = transport;
                    if let Some(hs) = self.handshake.as_mut() {
                        hs.set_transport(transport);
                    }
                }
                Ok(None) => return,
                Err(reason) => self.end(reason),
            }
        }
    }

    /// Appends what is to be written to `out` and returns how many bytes: the transport's
    /// handshake bytes, then every queued message once the transport is settled (each counted in
    /// the statistics; the stall and pong clocks start here, as they are taken for writing).
    pub fn poll_transmit_bytes(&mut self, now: Instant, out: &mut BytesMut) -> usize {
        let start = out.len();
        let Some(framing) = self.framing.as_mut() else { return 0 };
        framing.take_output(out);
        if !framing.is_ready() {
            return out.len().saturating_sub(start);
        }
        let mut payload = BytesMut::new();
        while let Some(message) = self.poll_transmit(now) {
            payload.clear();
            // A message that cannot be encoded (the application's) is not sent.
            if message.encode_payload(&mut payload).is_err() {
                continue;
            }
            let command = message.command();
            if let Some(wire) = self.framing.as_mut().and_then(|f| f.encode(command, &payload, None, out)) {
                self.state.traffic.sent(command, wire);
            }
        }
        out.len().saturating_sub(start)
    }

    /// The stream ended (`error`, if a read or write failed): the reason follows the transport's
    /// stage (a v2 handshake the remote closed before any byte advises a v1 retry).
    pub fn stream_closed(&mut self, error: Option<&std::io::Error>) {
        let established = self.established;
        let reason = match self.framing.as_ref() {
            Some(f) => f.closed(error, established),
            None => match error {
                Some(e) => crate::peer::DisconnectReason::io(e),
                None => crate::peer::DisconnectReason::RemoteClosed { during_handshake: !established },
            },
        };
        self.end(reason);
    }
}
