//! Allocations sized by normal-world input are fallible: with the heap exhausted, a driver's
//! descriptor chain fails its request (`DeviceError`) and a new mapping of normal-world memory
//! is refused (`MapError::NoSpace`, before aarch64-paging would abort allocating its tables),
//! instead of aborting the image.
//!
//! A global allocator that can be told to fail stands in for an exhausted partition heap; it
//! fails only the allocations of the thread that told it to, so the tests run side by side.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

use ffa::memory::{MapError, MemRange, NsMapper};
use sp::{
    mmu::StageOneMapper,
    virtqueue::{SplitQueue, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE},
};
use virtio_msg::{
    SharedMem,
    device::{DeviceError, QueueConfig},
    mem::VecMem,
};

/// The system allocator, failing every allocation of a thread while its `FAIL` is set.
struct Exhaustible;

thread_local! {
    static FAIL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with this thread's allocations failing.
fn exhausted<R>(f: impl FnOnce() -> R) -> R {
    FAIL.with(|x| x.set(true));
    let r = f();
    FAIL.with(|x| x.set(false));
    r
}

// SAFETY: every call is forwarded to `System` unchanged, or answered with null (allocation
// failure), which `GlobalAlloc` allows.
unsafe impl GlobalAlloc for Exhaustible {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if FAIL.with(Cell::get) {
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

    let result = exhausted(|| queue.pop(&mut mem));
    assert_eq!(result, Err(DeviceError::Backend));
    // Nothing was consumed: with memory back, the same chain is served.
    let chain = queue.pop(&mut mem).unwrap().unwrap();
    assert_eq!(chain.readable, vec![(BUF, 16)]);
    assert_eq!(chain.writable, vec![(BUF + 16, 16)]);
}

#[test]
fn a_mapping_without_heap_for_its_tables_is_refused_not_the_image() {
    let w = 0x0e30_0000;
    let layout = sp::layout::Layout {
        window: w..w + 0x20_0000,
        package_head: w..w + 0x4000,
        text: w + 0x4000..w + 0x2_0000,
        rodata: w + 0x2_0000..w + 0x2_8000,
        data: w + 0x2_8000..w + 0x2_c000,
        stack_guard: w + 0x2_c000..w + 0x2_d000,
        stack: w + 0x2_d000..w + 0x3_d000,
        secondary_stacks: w + 0x3_d000..w + 0x5_8000,
        heap: w + 0x5_8000..w + 0x20_0000,
    };
    let mut mapper = StageOneMapper::build(&layout, 0x0900_0000, None).unwrap();
    let range = MemRange {
        address: 0x8000_0000,
        page_count: 16,
    };
    assert_eq!(
        exhausted(|| mapper.map(range, true)),
        Err(MapError::NoSpace)
    );
    // With memory back the same range maps, and unmaps.
    let va = mapper.map(range, true).unwrap();
    mapper.unmap(va, 16);
}
