//! The partition's memory window and the image's parts in it.
//!
//! The image reads it from its linker symbols (`runtime::linker`); host tests make one up.

use core::ops::Range;

/// The partition's memory window and the image's parts in it, as linked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Everything the SPMC gives the partition: `[load_address, load_address + mem_size)`.
    pub window: Range<usize>,
    /// Boot-info area and manifest DTB at the start of the package (read-only).
    pub package_head: Range<usize>,
    /// Code (read-only, executable).
    pub text: Range<usize>,
    /// Read-only data.
    pub rodata: Range<usize>,
    /// .data and .bss (read-write).
    pub data: Range<usize>,
    /// The unmapped guard page below the stack.
    pub stack_guard: Range<usize>,
    /// The boot stack (read-write).
    pub stack: Range<usize>,
    /// The heap: the rest of the window after the stack (read-write).
    pub heap: Range<usize>,
}

/// Rounds `x` up to a 4 KiB boundary (saturating).
pub const fn page_align_up(x: usize) -> usize {
    match x.checked_add(0xfff) {
        Some(v) => v & !0xfff,
        None => usize::MAX & !0xfff,
    }
}
