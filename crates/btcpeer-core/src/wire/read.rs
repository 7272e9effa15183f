//! A bounds-checked cursor over a payload, and shape scanners for consensus structures.
//!
//! Every read checks what is left first, every count is checked against its protocol limit and
//! against the bytes actually present before anything is allocated for it, and every error names
//! the command and field. Transactions and blocks are handed to rust-bitcoin only after
//! [`Reader::tx_len`] has walked their shape: rust-bitcoin's decoders size some allocations from
//! counts (a witness's element count, a merkle block's flag bytes) without looking at the input's
//! length, so we make sure each count is backed by real bytes first.

use std::sync::Arc;

use bitcoin::consensus::Decodable;

use super::command::Command;
use super::error::{ConsensusError, PayloadError, PayloadErrorKind};
use super::limits::MAX_COMPACT_SIZE;

/// Smallest encoded transaction input: outpoint, empty script, sequence.
const MIN_TXIN_LEN: u64 = 32 + 4 + 1 + 4;
/// Smallest encoded transaction output: value and empty script.
const MIN_TXOUT_LEN: u64 = 8 + 1;
/// Smallest encoded transaction: version, one input, no outputs, lock time.
pub(crate) const MIN_TX_LEN: u64 = 4 + 1 + MIN_TXIN_LEN + 1 + 4;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    command: Command,
}

pub(crate) type Result<T> = std::result::Result<T, PayloadError>;

impl<'a> Reader<'a> {
    pub(crate) fn new(command: Command, buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0, command }
    }

    pub(crate) fn error(&self, field: &'static str, kind: PayloadErrorKind) -> PayloadError {
        PayloadError { command: self.command, field, kind }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Takes `n` bytes, or fails with `Truncated` without moving.
    pub(crate) fn take(&mut self, field: &'static str, n: u64) -> Result<&'a [u8]> {
        let available = self.remaining();
        match usize::try_from(n) {
            Ok(len) if len <= available => {
                let start = self.pos;
                self.pos = start.saturating_add(len);
                Ok(self.buf.get(start..self.pos).unwrap_or_default())
            }
            _ => Err(self.error(field, PayloadErrorKind::Truncated { needed: n, available })),
        }
    }

    pub(crate) fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let bytes = self.take(field, N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16_be(&mut self, field: &'static str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array(field)?))
    }

    /// A minimally encoded CompactSize of any value (used for addrv2 services).
    pub(crate) fn compact_value(&mut self, field: &'static str) -> Result<u64> {
        let first = self.u8(field)?;
        let (value, min) = match first {
            0xfd => (u64::from(u16::from_le_bytes(self.array(field)?)), 0xfd),
            0xfe => (u64::from(u32::from_le_bytes(self.array(field)?)), 0x1_0000),
            0xff => (u64::from_le_bytes(self.array(field)?), 0x1_0000_0000),
            n => return Ok(u64::from(n)),
        };
        if value < min {
            return Err(self.error(field, PayloadErrorKind::NonMinimalCompactSize));
        }
        Ok(value)
    }

    /// A CompactSize used as a length or count: minimal and at most `MAX_SIZE`.
    pub(crate) fn compact_size(&mut self, field: &'static str) -> Result<u64> {
        let value = self.compact_value(field)?;
        if value > MAX_COMPACT_SIZE {
            return Err(self.error(field, PayloadErrorKind::CompactSizeTooLarge { value }));
        }
        Ok(value)
    }

    /// A count of items: at most `max`, and no more than the remaining bytes can hold when each
    /// item takes at least `min_item_len` bytes. Only after this may the caller allocate.
    pub(crate) fn count(&mut self, field: &'static str, max: u64, min_item_len: u64) -> Result<usize> {
        let count = self.compact_size(field)?;
        if count > max {
            return Err(self.error(field, PayloadErrorKind::TooMany { count, max }));
        }
        self.backed(field, count, min_item_len)
    }

    /// Checks that `count` items of at least `min_item_len` bytes can fit in what is left.
    pub(crate) fn backed(&self, field: &'static str, count: u64, min_item_len: u64) -> Result<usize> {
        let needed = count.saturating_mul(min_item_len);
        let available = self.remaining();
        if needed > available as u64 {
            return Err(self.error(field, PayloadErrorKind::Truncated { needed, available }));
        }
        usize::try_from(count).map_err(|_| self.error(field, PayloadErrorKind::Truncated { needed, available }))
    }

    /// A length-prefixed byte string of at most `max` bytes.
    pub(crate) fn var_bytes(&mut self, field: &'static str, max: u64) -> Result<&'a [u8]> {
        let len = self.compact_size(field)?;
        if len > max {
            return Err(self.error(field, PayloadErrorKind::TooLong { len, max }));
        }
        self.take(field, len)
    }

    /// A length-prefixed string of at most `max` bytes. Bitcoin Core accepts any bytes there, so
    /// invalid UTF-8 is not refused: each invalid byte becomes `?`. One byte for one byte keeps the
    /// string within its limit when it is encoded again (U+FFFD would take three; found by fuzzing).
    pub(crate) fn var_string(&mut self, field: &'static str, max: u64) -> Result<String> {
        let bytes = self.var_bytes(field, max)?;
        let mut text = String::with_capacity(bytes.len());
        for chunk in bytes.utf8_chunks() {
            text.push_str(chunk.valid());
            text.extend(std::iter::repeat_n('?', chunk.invalid().len()));
        }
        Ok(text)
    }

    /// Skips whatever is left.
    pub(crate) fn skip_rest(&mut self) {
        self.pos = self.buf.len();
    }

    /// Fails if anything is left.
    pub(crate) fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(self.error("end", PayloadErrorKind::TrailingBytes { count })),
        }
    }

    /// Decodes exactly `len` bytes as a rust-bitcoin consensus type. Callers make sure (with a
    /// shape scan or a fixed size) that `len` bytes bound every allocation the decoder makes.
    pub(crate) fn consensus<T: Decodable>(&mut self, field: &'static str, len: u64) -> Result<T> {
        let bytes = self.take(field, len)?;
        bitcoin::consensus::deserialize(bytes)
            .map_err(|e| self.error(field, PayloadErrorKind::Consensus(ConsensusError(Arc::new(e)))))
    }

    /// Walks the transaction starting here, checking each count against the bytes present, and
    /// returns its encoded length without consuming it. Mirrors rust-bitcoin's reading of the
    /// segwit marker so that the length matches what its decoder consumes.
    pub(crate) fn tx_len(&self, field: &'static str) -> Result<u64> {
        self.tx_walk(field, false)
    }

    /// [`Reader::tx_len`], and with `whole` also the one check rust-bitcoin's decoder makes beyond
    /// the shape (a segwit flag with no witness present), so that a transaction kept undecoded is
    /// refused exactly when decoding it would be.
    pub(crate) fn tx_walk(&self, field: &'static str, whole: bool) -> Result<u64> {
        let mut s = Reader { buf: self.buf, pos: self.pos, command: self.command };
        s.take(field, 4)?; // version
        let mut inputs = s.compact_size(field)?;
        let segwit = inputs == 0;
        if segwit {
            match s.u8(field)? {
                1 => inputs = s.compact_size(field)?,
                _ => {
                    return Err(s.error(field, PayloadErrorKind::Invalid("unsupported segwit flag")));
                }
            }
        }
        s.backed(field, inputs, MIN_TXIN_LEN)?;
        for _ in 0..inputs {
            s.take(field, 36)?;
            let script = s.compact_size(field)?;
            s.take(field, script)?;
            s.take(field, 4)?;
        }
        let outputs = s.compact_size(field)?;
        s.backed(field, outputs, MIN_TXOUT_LEN)?;
        for _ in 0..outputs {
            s.take(field, 8)?;
            let script = s.compact_size(field)?;
            s.take(field, script)?;
        }
        if segwit {
            let mut witnessed = false;
            for _ in 0..inputs {
                let elements = s.compact_size(field)?;
                witnessed |= elements > 0;
                s.backed(field, elements, 1)?;
                for _ in 0..elements {
                    let len = s.compact_size(field)?;
                    s.take(field, len)?;
                }
            }
            // rust-bitcoin: "witness flag set but no witnesses present".
            if whole && inputs > 0 && !witnessed {
                return Err(s.error(field, PayloadErrorKind::Invalid("witness flag set but no witnesses present")));
            }
        }
        s.take(field, 4)?; // lock time
        Ok(s.pos.saturating_sub(self.pos) as u64)
    }

    /// Reads one transaction after checking its shape.
    pub(crate) fn transaction(&mut self, field: &'static str) -> Result<bitcoin::Transaction> {
        let len = self.tx_len(field)?;
        self.consensus(field, len)
    }

    /// Reads a CompactSize-counted list of transactions after checking each one's shape.
    pub(crate) fn transactions(&mut self, field: &'static str) -> Result<Vec<bitcoin::Transaction>> {
        let count = self.count(field, MAX_COMPACT_SIZE, MIN_TX_LEN)?;
        let mut txs = Vec::with_capacity(count);
        for _ in 0..count {
            txs.push(self.transaction(field)?);
        }
        Ok(txs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_w5_invalid_utf8_strings_keep_their_length() {
        let mut payload = vec![5u8];
        payload.extend([b'a', 0xff, 0xfe, b'b', 0xc3]);
        let mut r = Reader::new(Command::VERSION, &payload);
        assert_eq!(r.var_string("user_agent", 256).unwrap(), "a??b?");
        // Valid multi-byte characters are kept as they are.
        let mut payload = vec![2u8];
        payload.extend("é".as_bytes());
        let mut r = Reader::new(Command::VERSION, &payload);
        assert_eq!(r.var_string("user_agent", 256).unwrap(), "é");
    }

    #[test]
    fn r_w4_non_minimal_compact_size_is_rejected() {
        for bytes in
            [&[0xfd, 0xfc, 0x00][..], &[0xfe, 0xff, 0xff, 0x00, 0x00], &[0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]]
        {
            let mut r = Reader::new(Command::INV, bytes);
            let err = r.compact_size("count").unwrap_err();
            assert!(matches!(err.kind, PayloadErrorKind::NonMinimalCompactSize), "{bytes:02x?}");
        }
        let mut r = Reader::new(Command::INV, &[0xfd, 0xfd, 0x00]);
        assert_eq!(r.compact_size("count").unwrap(), 0xfd);
    }

    #[test]
    fn r_w4_compact_size_above_max_size_is_rejected() {
        let mut r = Reader::new(Command::TX, &[0xfe, 0x01, 0x00, 0x00, 0x02]);
        assert!(matches!(
            r.compact_size("len").unwrap_err().kind,
            PayloadErrorKind::CompactSizeTooLarge { value: 0x0200_0001 }
        ));
    }

    #[test]
    fn r_w4_count_must_be_backed_by_bytes() {
        // 1,000 claimed entries of 36 bytes with 10 bytes present.
        let mut payload = vec![0xfd, 0xe8, 0x03];
        payload.extend([0u8; 10]);
        let mut r = Reader::new(Command::INV, &payload);
        let err = r.count("count", 50_000, 36).unwrap_err();
        assert!(matches!(err.kind, PayloadErrorKind::Truncated { needed: 36_000, available: 10 }));
    }

    #[test]
    fn r_w4_witness_element_count_must_be_backed_by_bytes() {
        // A segwit transaction whose witness claims 4,000,000 elements in a few bytes: rust-bitcoin
        // would allocate 16 MB for the element index before noticing; the scan refuses it first.
        let mut tx = vec![2, 0, 0, 0, 0x00, 0x01, 0x01];
        tx.extend([0u8; 36]);
        tx.extend([0x00, 0xff, 0xff, 0xff, 0xff, 0x00]); // empty script, sequence, no outputs
        tx.extend([0xfe, 0x00, 0x09, 0x3d, 0x00]); // witness element count 4,000,000
        tx.extend([0u8; 4]);
        let r = Reader::new(Command::TX, &tx);
        let err = r.tx_len("tx").unwrap_err();
        assert!(matches!(err.kind, PayloadErrorKind::Truncated { needed: 4_000_000, .. }), "{err}");
    }
}
