//! The heap: a buddy allocator over the rest of the image window (after the stack).

use core::sync::atomic::{AtomicBool, Ordering};

use buddy_system_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();
static STARTED: AtomicBool = AtomicBool::new(false);

/// Hands the heap region to the allocator (once; later calls do nothing).
pub fn init() {
    if STARTED.swap(true, Ordering::AcqRel) {
        return;
    }
    let region = super::linker::heap();
    let size = region.end.saturating_sub(region.start);
    // SAFETY: the region is the part of the image window after the stack (linker script),
    // mapped as normal read-write memory by the initial page table, used by nothing else; the
    // flag above makes this the only hand-over.
    unsafe { HEAP.lock().init(region.start, size) };
}
