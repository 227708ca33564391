//! What the driver library needs from the normal-world environment it runs in.

use crate::virtqueue::DriverMem;

/// The driver's memory and doorbell: pages to put rings and buffers in (then shared with
/// the partition), byte access to them, and a way to sleep until an FF-A notification.
pub trait Platform: DriverMem {
    /// Allocates `pages` contiguous, zeroed 4 KiB pages; returns their physical address.
    fn alloc_pages(&self, pages: u32) -> Option<u64>;
    /// Frees pages from [`Platform::alloc_pages`].
    fn free_pages(&self, pa: u64, pages: u32);
    /// Waits up to `timeout_ms` for an FF-A notification to this endpoint; `false` if none
    /// came (or the platform has no way to wait, in which case the driver polls).
    fn wait_notification(&self, timeout_ms: u32) -> bool;
}

impl<T: Platform + ?Sized> Platform for &T {
    fn alloc_pages(&self, pages: u32) -> Option<u64> {
        (**self).alloc_pages(pages)
    }
    fn free_pages(&self, pa: u64, pages: u32) {
        (**self).free_pages(pa, pages);
    }
    fn wait_notification(&self, timeout_ms: u32) -> bool {
        (**self).wait_notification(timeout_ms)
    }
}
