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
    // The allocator rounds the region inwards to `usize` alignment and asserts that it is not
    // inverted then: it gets an aligned start no further than the end, or nothing. (The linker
    // script page-aligns the heap and asserts its minimum size: that is the whole region.)
    let start = region.start.checked_next_multiple_of(size_of::<usize>());
    let Some((start, size)) = start.and_then(|s| Some((s, region.end.checked_sub(s)?))) else {
        return;
    };
    // SAFETY: the caller guarantees the region is exclusively ours, mapped RW normal memory;
    // `start..start + size` lies inside it.
    unsafe { HEAP.lock().init(start, size) };
}

/// (bytes handed to the allocator, bytes currently allocated).
pub fn stats() -> (usize, usize) {
    let heap = HEAP.lock();
    (heap.stats_total_bytes(), heap.stats_alloc_actual())
}
