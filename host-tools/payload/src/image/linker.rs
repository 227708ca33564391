//! Linker symbols: the only place they are named (see `payload.ld`).

use core::ops::Range;

unsafe extern "C" {
    static heap_begin: u8;
    static heap_end: u8;
}

/// The heap: the rest of the image window after the stack.
pub fn heap() -> Range<usize> {
    // Only the addresses of these symbols are used, never their contents.
    (&raw const heap_begin).addr()..(&raw const heap_end).addr()
}
