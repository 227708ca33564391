//! The panic handler: where the panic happened goes to the console, then the partition stops
//! (answering FF-A with `FFA_ERROR`, see [`super::stop::stop`]); never a silent hang.
//!
//! Only the location (file, line, column) is reported, not the message: a handler that reads
//! the message keeps every panic site's formatting (the `Debug` of each unwrapped error, the
//! message strings and the code that builds their `fmt::Arguments`) in the image, 16 KiB of it.
//! With the handler inlined into `core::panicking::panic_fmt` and the message unread, LTO drops
//! the message argument and all that hangs on it. A panic is a bug (the partition's crates deny
//! every panic path on normal-world input); the location finds it.

use core::{
    panic::PanicInfo,
    sync::atomic::{AtomicBool, Ordering},
};

static PANICKING: AtomicBool = AtomicBool::new(false);

/// Reports where `info` happened and stops the partition. A panic while reporting one stops
/// at once. Inlined into the handler, so that the message is visibly unused (see the module
/// docs).
#[inline(always)]
pub fn handle(info: &PanicInfo) -> ! {
    if PANICKING.swap(true, Ordering::AcqRel) {
        ffa::arch::halt();
    }
    match info.location() {
        Some(at) => super::console::emergency(format_args!(
            "ERROR panic at {}:{}:{}",
            at.file(),
            at.line(),
            at.column()
        )),
        None => super::console::emergency(format_args!("ERROR panic")),
    }
    super::stop::stop()
}

/// Defines the image's `#[panic_handler]` (the binary invokes this once): it reports through
/// the console and stops the partition.
#[macro_export]
macro_rules! panic_handler {
    () => {
        #[panic_handler]
        #[inline(always)]
        fn panic(info: &core::panic::PanicInfo) -> ! {
            $crate::runtime::panic::handle(info)
        }
    };
}
