//! Allocations sized by normal-world input are fallible: with the heap exhausted, a driver's
//! descriptor chain fails its request (`DeviceError`) instead of aborting the image.
//!
//! A global allocator that can be told to fail stands in for an exhausted partition heap. The
//! binary holds one test so that nothing else allocates while the allocator fails.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicBool, Ordering},
};

use sp::virtqueue::{SplitQueue, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use virtio_msg::{
    SharedMem,
    device::{DeviceError, QueueConfig},
    mem::VecMem,
};

/// The system allocator, failing every allocation while `FAIL` is set.
struct Exhaustible;

static FAIL: AtomicBool = AtomicBool::new(false);

// SAFETY: every call is forwarded to `System` unchanged, or answered with null (allocation
// failure), which `GlobalAlloc` allows.
unsafe impl GlobalAlloc for Exhaustible {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if FAIL.load(Ordering::SeqCst) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with `layout` (null is never handed out as
        // an allocation to free).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Exhaustible = Exhaustible;

const BASE: u64 = 1 << 48;
const DESC: u64 = BASE;
const AVAIL: u64 = BASE + 0x1000;
const USED: u64 = BASE + 0x2000;
const BUF: u64 = BASE + 0x4000;

fn desc(mem: &mut VecMem, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
    let mut raw = [0u8; 16];
    raw[0..8].copy_from_slice(&addr.to_le_bytes());
    raw[8..12].copy_from_slice(&len.to_le_bytes());
    raw[12..14].copy_from_slice(&flags.to_le_bytes());
    raw[14..16].copy_from_slice(&next.to_le_bytes());
    mem.write(DESC + 16 * u64::from(i), &raw).unwrap();
}

#[test]
fn a_descriptor_chain_without_memory_fails_the_request_not_the_image() {
    let mut mem = VecMem::new(BASE, 0x8000);
    let mut queue = SplitQueue::new(QueueConfig {
        size: 8,
        desc_addr: DESC,
        driver_addr: AVAIL,
        device_addr: USED,
    })
    .unwrap();
    // A two-buffer chain (readable, then writable) at head 0, published in avail slot 0.
    desc(&mut mem, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
    desc(&mut mem, 1, BUF + 16, 16, VIRTQ_DESC_F_WRITE, 0);
    mem.write(AVAIL + 4, &0u16.to_le_bytes()).unwrap();
    mem.write(AVAIL + 2, &1u16.to_le_bytes()).unwrap();

    FAIL.store(true, Ordering::SeqCst);
    let result = queue.pop(&mem);
    FAIL.store(false, Ordering::SeqCst);
    assert_eq!(result, Err(DeviceError::Backend));
    // Nothing was consumed: with memory back, the same chain is served.
    let chain = queue.pop(&mem).unwrap().unwrap();
    assert_eq!(chain.readable, vec![(BUF, 16)]);
    assert_eq!(chain.writable, vec![(BUF + 16, 16)]);
}
