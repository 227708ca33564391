//! The heap: a buddy allocator over the rest of the partition's memory window (after the stack).
//!
//! Its size is `mem_size` (SPMC manifest) minus the image, .bss and stack; `sp/qemu/sp.ld`
//! asserts a minimum at link time.

use core::ops::Range;

use buddy_system_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Hands `region` to the allocator.
///
/// # Safety
///
/// `region` must be mapped as normal read-write memory (the MMU must be on: the allocator's
/// lock is an atomic), used by nothing else for the rest of the program, and this must be
/// called once.
pub unsafe fn init(region: Range<usize>) {
    let size = region.end.saturating_sub(region.start);
    // SAFETY: the caller guarantees the region is exclusively ours, mapped RW normal memory.
    unsafe { HEAP.lock().init(region.start, size) };
}

/// (bytes handed to the allocator, bytes currently allocated).
pub fn stats() -> (usize, usize) {
    let heap = HEAP.lock();
    (heap.stats_total_bytes(), heap.stats_alloc_actual())
}
