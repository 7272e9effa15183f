//! Traffic statistics of one connection: bytes and messages each way, per command in a table
//! bounded whatever command names the remote invents, and frames dropped unread.
//!
//! One home for both drivers: [`PeerCore`](super::PeerCore) counts what it reads and writes, and
//! the `btcpeer` driver keeps its [`Traffic`] in the [`ProtocolState`](super::ProtocolState) under
//! its peer's lock.

use crate::wire::Command;

/// Traffic of one command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandStats {
    /// Messages sent.
    pub messages_sent: u64,
    /// Bytes sent, frame headers included.
    pub bytes_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Bytes received, frame headers included.
    pub bytes_received: u64,
}

/// Traffic per command: one entry for each command btcpeer knows (the 36 of [`Command::KNOWN`])
/// and one `other` bucket for everything else, as Bitcoin Core counts (`NET_MESSAGE_TYPE_OTHER`
/// in `net.cpp`). It is indexed by command, never by a name the remote chose, and holds at most
/// 37 entries: a remote sending a million distinct unknown command names changes one bucket,
/// not the peer's memory. Entries are made on a command's first traffic, so an idle peer keeps
/// only the dozen it saw.
///
/// ```
/// use btcpeer_core::peer::CommandTable;
/// use btcpeer_core::wire::Command;
///
/// let table = CommandTable::default();
/// assert_eq!(table.of(Command::PING).messages_received, 0);
/// assert_eq!(table.get("ping"), None, "no traffic yet");
/// assert_eq!(table["ping"], table[Command::PING]);
/// assert_eq!(table.iter().count(), 0, "only commands with traffic are listed");
/// ```
#[derive(Clone, Debug)]
pub struct CommandTable {
    /// For each known command (by [`Command::known_index`]) and then `other`: 0 when it has seen
    /// no traffic, else its position in `used` plus one. Indexed by command, never by a name.
    slot: [u8; SLOTS],
    /// The entries of the commands that saw traffic (at most [`SLOTS`]): an idle peer that saw a
    /// dozen commands keeps a dozen entries, not 37.
    used: Vec<CommandStats>,
}

/// The known commands and the `other` bucket.
const SLOTS: usize = Command::KNOWN.len() + 1;
/// The `other` bucket's slot.
const OTHER: usize = Command::KNOWN.len();

impl Default for CommandTable {
    fn default() -> Self {
        CommandTable { slot: [0; SLOTS], used: Vec::new() }
    }
}

/// Equal when every command's traffic is (whatever order the commands first appeared in).
impl PartialEq for CommandTable {
    fn eq(&self, other: &Self) -> bool {
        (0..SLOTS).all(|i| self.at(i) == other.at(i))
    }
}

impl Eq for CommandTable {}

impl CommandTable {
    fn slot_of(command: Command) -> usize {
        command.known_index().unwrap_or(OTHER)
    }

    /// The entry of a slot, made on first use. `None` only for a slot out of range, which
    /// [`CommandTable::slot_of`] never gives.
    fn entry_at(&mut self, slot: usize) -> Option<&mut CommandStats> {
        let s = self.slot.get_mut(slot)?;
        if *s == 0 {
            self.used.push(CommandStats::default());
            // One entry per slot: at most 37, so the position fits a byte.
            *s = u8::try_from(self.used.len()).unwrap_or(u8::MAX);
        }
        self.used.get_mut(usize::from(*s).saturating_sub(1))
    }

    fn entry(&mut self, command: Command) -> Option<&mut CommandStats> {
        self.entry_at(Self::slot_of(command))
    }

    /// The entry of a slot that saw traffic.
    fn used_at(&self, slot: usize) -> Option<&CommandStats> {
        match self.slot.get(slot) {
            Some(&s) if s > 0 => self.used.get(usize::from(s).saturating_sub(1)),
            _ => None,
        }
    }

    /// A slot's traffic, zero when it saw none.
    fn at_ref(&self, slot: usize) -> &CommandStats {
        self.used_at(slot).unwrap_or(&NO_TRAFFIC)
    }

    fn at(&self, slot: usize) -> CommandStats {
        *self.at_ref(slot)
    }

    /// The traffic of `command`; for a command btcpeer does not know, the `other` bucket.
    pub fn of(&self, command: Command) -> CommandStats {
        self.at(Self::slot_of(command))
    }

    /// The traffic of the command named `name`, if it saw any, as a map keyed by name would give it
    /// (`per_command.get("inv")`); a name btcpeer does not know gives the `other` bucket.
    pub fn get(&self, name: &str) -> Option<&CommandStats> {
        self.used_at(Command::new(name).map_or(OTHER, Self::slot_of))
    }

    /// The traffic of every command btcpeer does not know, and of frames dropped before their
    /// command could be trusted (bad checksum, invalid command bytes).
    pub fn other(&self) -> CommandStats {
        self.at(OTHER)
    }

    /// The known commands that saw any traffic, in [`Command::KNOWN`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Command, CommandStats)> + '_ {
        Command::KNOWN.iter().enumerate().filter_map(|(i, c)| self.used_at(i).map(|s| (*c, *s)))
    }
}

/// No traffic: what indexing gives for a command that saw none.
static NO_TRAFFIC: CommandStats =
    CommandStats { messages_sent: 0, bytes_sent: 0, messages_received: 0, bytes_received: 0 };

impl std::ops::Index<Command> for CommandTable {
    type Output = CommandStats;

    /// The traffic of `command` (the `other` bucket for a command btcpeer does not know).
    fn index(&self, command: Command) -> &CommandStats {
        self.at_ref(CommandTable::slot_of(command))
    }
}

/// `stats.per_command["ping"]`: the traffic of the command of that name; a name btcpeer does not
/// know, or that is no valid command, gives the `other` bucket.
impl std::ops::Index<&str> for CommandTable {
    type Output = CommandStats;

    fn index(&self, name: &str) -> &CommandStats {
        self.at_ref(Command::new(name).map_or(OTHER, Self::slot_of))
    }
}

/// A connection's traffic: bytes and messages each way, per command, and frames dropped unread.
///
/// ```
/// use btcpeer_core::peer::Traffic;
/// use btcpeer_core::wire::Command;
///
/// let mut t = Traffic::default();
/// t.received(Command::PING, 32);
/// t.sent(Command::PONG, 32);
/// t.dropped(30);
/// assert_eq!((t.bytes_received(), t.messages_received(), t.dropped_frames()), (62, 1, 1));
/// assert_eq!(t.per_command().other().bytes_received, 30, "dropped frames count as `other`");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    bytes_sent: u64,
    bytes_received: u64,
    messages_sent: u64,
    messages_received: u64,
    per_command: CommandTable,
    dropped_frames: u64,
}

impl Traffic {
    /// A message of `bytes` on the wire (its frame or packet included) was written.
    pub fn sent(&mut self, command: Command, bytes: usize) {
        let bytes = bytes as u64;
        self.bytes_sent = self.bytes_sent.saturating_add(bytes);
        self.messages_sent = self.messages_sent.saturating_add(1);
        if let Some(c) = self.per_command.entry(command) {
            c.messages_sent = c.messages_sent.saturating_add(1);
            c.bytes_sent = c.bytes_sent.saturating_add(bytes);
        }
    }

    /// A message of `bytes` on the wire was read.
    pub fn received(&mut self, command: Command, bytes: usize) {
        let bytes = bytes as u64;
        self.bytes_received = self.bytes_received.saturating_add(bytes);
        self.messages_received = self.messages_received.saturating_add(1);
        if let Some(c) = self.per_command.entry(command) {
            c.messages_received = c.messages_received.saturating_add(1);
            c.bytes_received = c.bytes_received.saturating_add(bytes);
        }
    }

    /// A frame was dropped unread (bad checksum, invalid command): counted in the `other` bucket,
    /// as Core's `V1Transport` counts a rejected message (`NET_MESSAGE_TYPE_OTHER`).
    pub fn dropped(&mut self, bytes: usize) {
        let bytes = bytes as u64;
        self.bytes_received = self.bytes_received.saturating_add(bytes);
        self.dropped_frames = self.dropped_frames.saturating_add(1);
        if let Some(c) = self.per_command.entry_at(OTHER) {
            c.messages_received = c.messages_received.saturating_add(1);
            c.bytes_received = c.bytes_received.saturating_add(bytes);
        }
    }

    /// Bytes of a transport handshake (BIP324's keys, garbage and version packet), which carry no
    /// message.
    pub fn handshake_bytes(&mut self, sent: usize, received: usize) {
        self.bytes_sent = self.bytes_sent.saturating_add(sent as u64);
        self.bytes_received = self.bytes_received.saturating_add(received as u64);
    }

    /// Bytes written.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Bytes read.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Messages written.
    pub fn messages_sent(&self) -> u64 {
        self.messages_sent
    }

    /// Messages read (dropped frames included).
    pub fn messages_received(&self) -> u64 {
        self.messages_received
    }

    /// Traffic per command.
    pub fn per_command(&self) -> &CommandTable {
        &self.per_command
    }

    /// Frames dropped unread.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_item1_the_command_table_holds_at_most_one_entry_per_known_command_and_one_other() {
        let mut c = Traffic::default();
        for i in 0..100_000u32 {
            c.received(Command::new(&format!("n{i}")).unwrap_or(Command::PING), 24);
        }
        for k in Command::KNOWN {
            c.received(k, 24);
            c.sent(k, 24);
        }
        c.dropped(30);
        assert_eq!(c.per_command.used.len(), Command::KNOWN.len() + 1);
        assert_eq!(c.per_command.other().messages_received, 100_001);
        assert_eq!(c.per_command.other().bytes_received, 100_000 * 24 + 30);
        assert_eq!(c.per_command.iter().count(), Command::KNOWN.len());
        assert_eq!(c.per_command.get("ping").map(|s| s.messages_sent), Some(1));
        assert_eq!(c.per_command.get("n5"), Some(&c.per_command.other()), "unknown names share a bucket");
        assert!(c.per_command.iter().all(|(_, s)| s.messages_sent == 1 && s.messages_received == 1));
    }
}
