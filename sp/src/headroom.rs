//! Heap headroom: whether the heap can give a block of a given size now.
//!
//! Some allocations cannot be made fallible — a `Box` of a device model, a page table that
//! `aarch64-paging` allocates — and an allocation that fails aborts the image
//! (`handle_alloc_error`). Where such allocations follow normal-world input (a new
//! endpoint, a new mapping), the partition first checks that the heap has room for all of them
//! in one free block, and refuses the request with the protocol's answer if it has not. The
//! partition is single-threaded and the buddy allocator splits a free block for smaller
//! requests, so a block of the total size found free just before is enough for them.

use alloc::vec::Vec;

/// Whether the heap can give `bytes` in one block now (allocated and freed again).
pub fn available(bytes: usize) -> bool {
    Vec::<u8>::new().try_reserve_exact(bytes).is_ok()
}

/// Heap a new endpoint may need, in one free block, before it is admitted: what
/// `BusInstance::new` and the device factory allocate infallibly — the bus instance, the
/// engines, and the four device models, each boxed in a block of the buddy heap (a power of
/// two): the rng, blk and console models take 8 KiB each (mostly the 4 KiB data buffers of the
/// rng and blk and the console's 4 KiB outbox), the vsock model 4 KiB (its eight connection
/// slots; a registry test keeps the four within seven eighths of this) — more as the
/// endpoint's queues and tables fill, mostly fallibly. A newcomer arriving when the heap has
/// less is refused with the ERROR frame, as when every slot is taken, rather than aborting the
/// partition in an allocation. (Checking 24 KiB, as before vsock, asked the buddy heap for the
/// same 32 KiB block.)
///
/// Not part of it, being fallible allocations of their own: the standard devices' RAM disk
/// ([`crate::registry::RAM_DISK_BYTES`]), which the factory allocates and then checks for this
/// much headroom again, serving the endpoint without a block device when either fails; and the
/// vsock connection buffers ([`crate::devices::vsock::BUFFER_BYTES`], 16 KiB), taken at the
/// endpoint's first vsock connection (which gets an RST without room) and given back at the
/// device's reset.
pub const ENDPOINT_HEAP_BYTES: usize = 32 * 1024;
