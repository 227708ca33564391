//! The panic handler: the message goes to the console, then the partition stops (answering
//! FF-A with `FFA_ERROR`, see [`super::stop::stop`]); never a silent hang.

use core::{
    panic::PanicInfo,
    sync::atomic::{AtomicBool, Ordering},
};

static PANICKING: AtomicBool = AtomicBool::new(false);

/// Reports `info` and stops the partition. A panic while reporting one stops at once.
pub fn handle(info: &PanicInfo) -> ! {
    if PANICKING.swap(true, Ordering::AcqRel) {
        ffa::arch::halt();
    }
    super::console::emergency(format_args!("ERROR panic: {info}"));
    super::stop::stop()
}

/// Defines the image's `#[panic_handler]` (the binary invokes this once): it reports through
/// the console and stops the partition.
#[macro_export]
macro_rules! panic_handler {
    () => {
        #[panic_handler]
        fn panic(info: &core::panic::PanicInfo) -> ! {
            $crate::runtime::panic::handle(info)
        }
    };
}
