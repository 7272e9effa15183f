//! R-W3/R-W4 proof of no allocation sized by a count or length read off the wire: a counting global
//! allocator records the largest single allocation made while hostile inputs are decoded.
//!
//! This binary holds one test so that no other test's allocations interleave with the measurement.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use btcpeer::network::Network;
use btcpeer::transport::v1::V1Codec;
use btcpeer::wire::{Command, Message};
use bytes::{Bytes, BytesMut};

struct Tracking;

static ENABLED: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ENABLED.load(Ordering::Relaxed) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ENABLED.load(Ordering::Relaxed) {
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// The largest single allocation `f` makes.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.store(0, Ordering::SeqCst);
    ENABLED.store(true, Ordering::SeqCst);
    f();
    ENABLED.store(false, Ordering::SeqCst);
    LARGEST.load(Ordering::SeqCst)
}

fn frame_header(command: &[u8], len: u32) -> Vec<u8> {
    let mut h = Network::REGTEST.magic().to_bytes().to_vec();
    let mut cmd = [0u8; 12];
    cmd[..command.len()].copy_from_slice(command);
    h.extend(cmd);
    h.extend(len.to_le_bytes());
    h.extend([0; 4]);
    h
}

fn decode_payload(command: Command, payload: &[u8]) -> usize {
    let payload = Bytes::copy_from_slice(payload);
    largest_allocation(|| {
        assert!(Message::decode(command, payload).is_err());
    })
}

#[test]
fn r_w4_nothing_is_allocated_from_an_unchecked_count_or_length() {
    const SMALL: usize = 64 * 1024;

    // A length far above the network maximum: refused with no payload allocation.
    let mut rx = BytesMut::from(&frame_header(b"block", u32::MAX)[..]);
    let mut codec = V1Codec::new(Network::REGTEST);
    let largest = largest_allocation(|| assert!(codec.decode_frame(&mut rx).is_err()));
    assert!(largest < SMALL, "oversized length: largest allocation {largest}");

    // A legal 4 MB announcement with nothing behind it: at most one 256 KiB step is reserved.
    let mut rx = BytesMut::from(&frame_header(b"block", 4_000_000)[..]);
    let mut codec = V1Codec::new(Network::REGTEST);
    let largest = largest_allocation(|| assert!(codec.decode_frame(&mut rx).unwrap().is_none()));
    assert!(largest <= 256 * 1024 + 1024, "4 MB announcement: largest allocation {largest}");

    // inv claiming 50,000 entries with one present.
    let mut inv = vec![0xfd, 0x50, 0xc3];
    inv.extend([0u8; 36]);
    let largest = decode_payload(Command::INV, &inv);
    assert!(largest < SMALL, "inv: {largest}");

    // A transaction whose witness claims 4,000,000 elements (rust-bitcoin alone allocates 16 MB).
    let mut tx = vec![2, 0, 0, 0, 0x00, 0x01, 0x01];
    tx.extend([0u8; 36]);
    tx.extend([0x00, 0xff, 0xff, 0xff, 0xff, 0x00]);
    tx.extend([0xfe, 0x00, 0x09, 0x3d, 0x00]);
    tx.extend([0u8; 64]);
    let largest = decode_payload(Command::TX, &tx);
    assert!(largest < SMALL, "witness count: {largest}");

    // A transaction claiming 1,000,000 inputs (rust-bitcoin alone preallocates about 1 MB).
    let mut tx = vec![1, 0, 0, 0, 0xfe, 0x40, 0x42, 0x0f, 0x00];
    tx.extend([0u8; 100]);
    let largest = decode_payload(Command::TX, &tx);
    assert!(largest < SMALL, "input count: {largest}");

    // A block claiming 2,000,000 transactions.
    let mut block = vec![0u8; 80];
    block.extend([0xfe, 0x80, 0x84, 0x1e, 0x00]);
    block.extend([0u8; 100]);
    let largest = decode_payload(Command::BLOCK, &block);
    assert!(largest < SMALL, "block tx count: {largest}");

    // A merkleblock claiming 4,000,000 flag bytes (rust-bitcoin alone allocates 32 M booleans).
    let mut mb = vec![0u8; 84];
    mb.push(0);
    mb.extend([0xfe, 0x00, 0x09, 0x3d, 0x00]);
    mb.extend([0u8; 10]);
    let largest = decode_payload(Command::MERKLEBLOCK, &mb);
    assert!(largest < SMALL, "merkleblock flags: {largest}");

    // cmpctblock claiming many short ids, cfcheckpt claiming many headers, getblocktxn many indexes.
    let mut cb = vec![0u8; 88];
    cb.extend([0xfe, 0x00, 0x00, 0x00, 0x01]);
    let largest = decode_payload(Command::CMPCTBLOCK, &cb);
    assert!(largest < SMALL, "cmpctblock short ids: {largest}");
    let mut cf = vec![0u8; 33];
    cf.extend([0xfe, 0x00, 0x00, 0x00, 0x01]);
    let largest = decode_payload(Command::CFCHECKPT, &cf);
    assert!(largest < SMALL, "cfcheckpt: {largest}");
    let mut gb = vec![0u8; 32];
    gb.extend([0xfe, 0x00, 0x00, 0x00, 0x01]);
    let largest = decode_payload(Command::GETBLOCKTXN, &gb);
    assert!(largest < SMALL, "getblocktxn: {largest}");
}
