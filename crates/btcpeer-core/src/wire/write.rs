//! Writing payload fields straight into the frame buffer (no intermediate copies).

use bitcoin::consensus::Encodable;
use bytes::{BufMut, BytesMut};

/// Lets rust-bitcoin's encoders write into a `BytesMut`.
pub(crate) struct BufWriter<'a>(pub(crate) &'a mut BytesMut);

impl bitcoin::io::Write for BufWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> bitcoin::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> bitcoin::io::Result<()> {
        self.0.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> bitcoin::io::Result<()> {
        Ok(())
    }
}

pub(crate) fn compact_size(buf: &mut BytesMut, n: u64) {
    match n {
        0..=0xfc => buf.put_u8(n as u8),
        0xfd..=0xffff => {
            buf.put_u8(0xfd);
            buf.put_u16_le(n as u16);
        }
        0x1_0000..=0xffff_ffff => {
            buf.put_u8(0xfe);
            buf.put_u32_le(n as u32);
        }
        _ => {
            buf.put_u8(0xff);
            buf.put_u64_le(n);
        }
    }
}

pub(crate) fn var_bytes(buf: &mut BytesMut, bytes: &[u8]) {
    compact_size(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// Encodes a rust-bitcoin value. Writing into memory cannot fail, so the result is dropped.
pub(crate) fn consensus<T: Encodable + ?Sized>(buf: &mut BytesMut, value: &T) {
    let _ = value.consensus_encode(&mut BufWriter(buf));
}
