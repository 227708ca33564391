//! Linker symbols: the only place they are named (see `sp/qemu/sp.ld` and the memory script
//! `sp/qemu/build.rs` generates).

use crate::layout::{Layout, page_align_up};

unsafe extern "C" {
    static sp_window_begin: u8;
    static sp_window_end: u8;
    static text_begin: u8;
    static text_end: u8;
    static rodata_begin: u8;
    static rodata_end: u8;
    static data_begin: u8;
    static data_contents_end: u8;
    static data_load: u8;
    static data_end: u8;
    static stack_guard_begin: u8;
    static boot_stack_begin: u8;
    static boot_stack_end: u8;
    static secondary_stacks_begin: u8;
    static secondary_stacks_end: u8;
    static heap_begin: u8;
}

/// The window's end, read through a static: an absolute address in .rodata. The image is built
/// for the tiny code model (the Makefile's `SP_RUSTFLAGS`), whose PC-relative references reach
/// 1 MiB; the window's end lies 2 MiB above the code. (Were the read folded back into a direct
/// reference, the link would fail, not the image.)
static WINDOW_END: WindowEnd = WindowEnd(&raw const sp_window_end);

/// A pointer that is only ever read for its address.
struct WindowEnd(*const u8);

// SAFETY: only the address is used (never dereferenced), and it never changes.
unsafe impl Sync for WindowEnd {}

/// Copies the initial contents of .data from where the image stores them (after .rodata) to
/// where .data is linked.
///
/// # Safety
///
/// Must run once, before anything reads or writes a static in .data (the first thing the
/// image does), with the initial table active (it maps both places read-write).
pub unsafe fn copy_data() {
    let src = (&raw const data_load).cast::<u8>();
    let dst = (&raw const data_begin).cast_mut();
    let len = (&raw const data_contents_end)
        .addr()
        .saturating_sub(dst.addr());
    // SAFETY: the linker script puts `len` bytes of .data's contents at `data_load`, after
    // .rodata, and links .data at `data_begin` in the read-write pages after them: two
    // disjoint ranges of the image's window, mapped read-write by the initial table. By the
    // caller's contract nothing uses .data yet.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
}

/// The image layout from the linker symbols.
pub fn layout() -> Layout {
    // Only the addresses of these symbols are used, never their contents.
    let window = (&raw const sp_window_begin).addr()..core::hint::black_box(&WINDOW_END).0.addr();
    let text = (&raw const text_begin).addr()..page_align_up((&raw const text_end).addr());
    let rodata = (&raw const rodata_begin).addr()..page_align_up((&raw const rodata_end).addr());
    let data = (&raw const data_begin).addr()..page_align_up((&raw const data_end).addr());
    let stack_guard = (&raw const stack_guard_begin).addr()..(&raw const boot_stack_begin).addr();
    let stack = (&raw const boot_stack_begin).addr()..(&raw const boot_stack_end).addr();
    let secondary_stacks =
        (&raw const secondary_stacks_begin).addr()..(&raw const secondary_stacks_end).addr();
    let heap = (&raw const heap_begin).addr()..window.end;
    Layout {
        package_head: window.start..text.start,
        window,
        text,
        rodata,
        data,
        stack_guard,
        stack,
        secondary_stacks,
        heap,
    }
}
