//! Linker symbols: the only place they are named (see `sp/qemu/sp.ld` and the memory script
//! `sp/qemu/build.rs` generates).

use core::ops::Range;

unsafe extern "C" {
    static sp_window_begin: u8;
    static sp_window_end: u8;
    static text_begin: u8;
    static text_end: u8;
    static rodata_begin: u8;
    static rodata_end: u8;
    static data_begin: u8;
    static data_end: u8;
    static stack_guard_begin: u8;
    static boot_stack_begin: u8;
    static boot_stack_end: u8;
    static heap_begin: u8;
}

/// The partition's memory window and the image's parts in it, as linked.
#[derive(Clone, Debug)]
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
pub(crate) const fn page_align_up(x: usize) -> usize {
    match x.checked_add(0xfff) {
        Some(v) => v & !0xfff,
        None => usize::MAX & !0xfff,
    }
}

/// The image layout from the linker symbols.
pub fn layout() -> Layout {
    // Only the addresses of these symbols are used, never their contents.
    let window = (&raw const sp_window_begin).addr()..(&raw const sp_window_end).addr();
    let text = (&raw const text_begin).addr()..page_align_up((&raw const text_end).addr());
    let rodata = (&raw const rodata_begin).addr()..page_align_up((&raw const rodata_end).addr());
    let data = (&raw const data_begin).addr()..page_align_up((&raw const data_end).addr());
    let stack_guard = (&raw const stack_guard_begin).addr()..(&raw const boot_stack_begin).addr();
    let stack = (&raw const boot_stack_begin).addr()..(&raw const boot_stack_end).addr();
    let heap = (&raw const heap_begin).addr()..window.end;
    Layout {
        package_head: window.start..text.start,
        window,
        text,
        rodata,
        data,
        stack_guard,
        stack,
        heap,
    }
}
