//! A first-fit page allocator over a fixed window of physical memory (the driver's rings and
//! buffers, shared with the partition). Bookkeeping only: it never touches the pages.

use alloc::{vec, vec::Vec};

/// Size of a page (the FF-A translation granule).
pub const PAGE_SIZE: u64 = 4096;

/// Why pages could not be freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FreeError {
    /// The range is not inside the window, not page-aligned or empty.
    #[error("{pages} pages at {pa:#x} are not a range of the window")]
    OutOfWindow {
        /// First byte.
        pa: u64,
        /// Pages.
        pages: u32,
    },
    /// A page of the range was not allocated.
    #[error("page {0:#x} is not allocated")]
    NotAllocated(u64),
}

/// Allocation state of the pages of `[base, base + pages * PAGE_SIZE)`.
#[derive(Clone, Debug)]
pub struct PageAllocator {
    base: u64,
    pages: u32,
    /// One bit per page, set when allocated.
    used: Vec<u64>,
}

impl PageAllocator {
    /// An allocator over `[base, base + size)`; `None` unless both are page-aligned, the
    /// window is not empty and does not wrap.
    pub fn new(base: u64, size: u64) -> Option<Self> {
        if !base.is_multiple_of(PAGE_SIZE) || !size.is_multiple_of(PAGE_SIZE) || size == 0 {
            return None;
        }
        base.checked_add(size)?;
        let pages = u32::try_from(size / PAGE_SIZE).ok()?;
        let words = usize::try_from(pages.div_ceil(64)).ok()?;
        Some(Self {
            base,
            pages,
            used: vec![0; words],
        })
    }

    /// First byte of the window.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Size of the window in bytes.
    pub fn size(&self) -> u64 {
        u64::from(self.pages) * PAGE_SIZE
    }

    fn is_used(&self, page: u32) -> bool {
        let (word, bit) = (page / 64, page % 64);
        usize::try_from(word)
            .ok()
            .and_then(|w| self.used.get(w))
            .is_some_and(|w| w & (1 << bit) != 0)
    }

    fn set(&mut self, page: u32, used: bool) {
        let (word, bit) = (page / 64, page % 64);
        if let Some(w) = usize::try_from(word)
            .ok()
            .and_then(|w| self.used.get_mut(w))
        {
            if used {
                *w |= 1 << bit;
            } else {
                *w &= !(1 << bit);
            }
        }
    }

    /// Allocates `pages` contiguous pages (first fit); returns the address of the first.
    pub fn alloc(&mut self, pages: u32) -> Option<u64> {
        if pages == 0 || pages > self.pages {
            return None;
        }
        let mut start = 0u32;
        while start.checked_add(pages)? <= self.pages {
            match (start..start + pages).find(|&p| self.is_used(p)) {
                // Restart after the page in the way.
                Some(busy) => start = busy + 1,
                None => {
                    for p in start..start + pages {
                        self.set(p, true);
                    }
                    return Some(self.base + u64::from(start) * PAGE_SIZE);
                }
            }
        }
        None
    }

    /// Frees `pages` pages from `pa`; every one must be allocated.
    pub fn free(&mut self, pa: u64, pages: u32) -> Result<(), FreeError> {
        let first = self
            .page_index(pa, pages)
            .ok_or(FreeError::OutOfWindow { pa, pages })?;
        if let Some(p) = (first..first + pages).find(|&p| !self.is_used(p)) {
            return Err(FreeError::NotAllocated(
                self.base + u64::from(p) * PAGE_SIZE,
            ));
        }
        for p in first..first + pages {
            self.set(p, false);
        }
        Ok(())
    }

    /// Index of the page at `pa` if `pages` pages from there are inside the window.
    fn page_index(&self, pa: u64, pages: u32) -> Option<u32> {
        if pages == 0 || !pa.is_multiple_of(PAGE_SIZE) {
            return None;
        }
        let first = u32::try_from(pa.checked_sub(self.base)? / PAGE_SIZE).ok()?;
        (first.checked_add(pages)? <= self.pages).then_some(first)
    }

    /// Whether `[pa, pa + len)` lies in allocated pages (what the driver may access).
    pub fn is_allocated(&self, pa: u64, len: usize) -> bool {
        let Some(end) = u64::try_from(len).ok().and_then(|l| pa.checked_add(l)) else {
            return false;
        };
        if len == 0 {
            return pa >= self.base && pa <= self.base + self.size();
        }
        let Some(offset) = pa.checked_sub(self.base) else {
            return false;
        };
        if end > self.base + self.size() {
            return false;
        }
        let first = offset / PAGE_SIZE;
        let last = (end - 1 - self.base) / PAGE_SIZE;
        (first..=last).all(|p| u32::try_from(p).is_ok_and(|p| self.is_used(p)))
    }

    /// Number of pages allocated.
    pub fn allocated(&self) -> u32 {
        self.used.iter().map(|w| w.count_ones()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x6100_0000;

    #[test]
    fn rejects_bad_windows() {
        assert!(PageAllocator::new(BASE + 1, 4 * PAGE_SIZE).is_none());
        assert!(PageAllocator::new(BASE, 4 * PAGE_SIZE + 1).is_none());
        assert!(PageAllocator::new(BASE, 0).is_none());
        assert!(PageAllocator::new(!0xfff, 2 * PAGE_SIZE).is_none());
    }

    #[test]
    fn first_fit_and_reuse() {
        let mut a = PageAllocator::new(BASE, 8 * PAGE_SIZE).unwrap();
        let x = a.alloc(2).unwrap();
        let y = a.alloc(3).unwrap();
        assert_eq!(x, BASE);
        assert_eq!(y, BASE + 2 * PAGE_SIZE);
        assert_eq!(a.allocated(), 5);
        a.free(x, 2).unwrap();
        // Three pages do not fit in the 2-page hole: they go after y.
        assert_eq!(a.alloc(3), Some(BASE + 5 * PAGE_SIZE));
        // One page fits in the hole.
        assert_eq!(a.alloc(1), Some(BASE));
        assert_eq!(a.alloc(1), Some(BASE + PAGE_SIZE));
        assert_eq!(a.alloc(1), None, "window full");
        assert_eq!(a.allocated(), 8);
    }

    #[test]
    fn refuses_impossible_allocations() {
        let mut a = PageAllocator::new(BASE, 4 * PAGE_SIZE).unwrap();
        assert_eq!(a.alloc(0), None);
        assert_eq!(a.alloc(5), None);
        assert_eq!(a.alloc(u32::MAX), None);
        assert_eq!(a.alloc(4), Some(BASE));
    }

    #[test]
    fn free_checks_the_range() {
        let mut a = PageAllocator::new(BASE, 4 * PAGE_SIZE).unwrap();
        let x = a.alloc(2).unwrap();
        assert_eq!(
            a.free(x, 3),
            Err(FreeError::NotAllocated(BASE + 2 * PAGE_SIZE))
        );
        assert_eq!(a.allocated(), 2, "a refused free changes nothing");
        assert!(matches!(
            a.free(x + 1, 1),
            Err(FreeError::OutOfWindow { .. })
        ));
        assert!(matches!(
            a.free(BASE - PAGE_SIZE, 1),
            Err(FreeError::OutOfWindow { .. })
        ));
        assert!(matches!(a.free(x, 5), Err(FreeError::OutOfWindow { .. })));
        assert!(matches!(a.free(x, 0), Err(FreeError::OutOfWindow { .. })));
        a.free(x, 2).unwrap();
        assert_eq!(a.free(x, 1), Err(FreeError::NotAllocated(x)), "double free");
    }

    #[test]
    fn access_only_to_allocated_pages() {
        let mut a = PageAllocator::new(BASE, 4 * PAGE_SIZE).unwrap();
        let x = a.alloc(2).unwrap();
        assert!(a.is_allocated(x, 2 * 4096));
        assert!(a.is_allocated(x + 100, 4096));
        assert!(!a.is_allocated(x, 2 * 4096 + 1), "runs into a free page");
        assert!(!a.is_allocated(x - 1, 2), "starts before the window");
        assert!(!a.is_allocated(u64::MAX - 1, 4), "wraps");
        assert!(!a.is_allocated(BASE + 3 * PAGE_SIZE, 1));
    }
}
