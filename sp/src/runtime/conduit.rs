//! The SMC conduit (`ffa::conduit::SmcConduit`) over this partition's RX/TX buffers, and the
//! raw `smc` used before FF-A is up (console probing, TRNG).

use core::{
    ptr::NonNull,
    sync::atomic::{AtomicBool, Ordering},
};

use ffa::memory::PAGE_SIZE;

/// The low 32 bits of a register (the function id of an SMC).
pub(crate) fn low32(x: u64) -> u32 {
    let [a, b, c, d, ..] = x.to_le_bytes();
    u32::from_le_bytes([a, b, c, d])
}

/// Issues `smc #0` with x0..x17 = `regs`; returns x0..x17 as they come back.
///
/// Where no EL3 firmware implements SMC, the instruction is undefined at EL1: the exception
/// handler (`runtime::exceptions`) then returns SMCCC NOT_SUPPORTED (-1) in x0.
pub(crate) fn smc(regs: [u64; 18]) -> [u64; 18] {
    let [x0, args @ ..] = regs;
    smccc::smc64(low32(x0), args)
}

/// Size of each static RX/TX buffer: one FF-A page.
const STATIC_BUFFER_SIZE: usize = 4096;

#[repr(C, align(4096))]
struct Page([u8; STATIC_BUFFER_SIZE]);

static mut STATIC_RX: Page = Page([0; STATIC_BUFFER_SIZE]);
static mut STATIC_TX: Page = Page([0; STATIC_BUFFER_SIZE]);
static STATIC_TAKEN: AtomicBool = AtomicBool::new(false);

pub use ffa::conduit::SmcConduit;

/// A conduit over the image's own static 4 KiB buffers, to be registered with
/// `FFA_RXTX_MAP` (see [`SmcConduit::buffer_addresses`]). `None` if they are already taken.
pub fn with_static_buffers() -> Option<SmcConduit> {
    if STATIC_TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    let rx = NonNull::new((&raw mut STATIC_RX).cast::<u8>())?;
    let tx = NonNull::new((&raw mut STATIC_TX).cast::<u8>())?;
    // SAFETY: the statics are page-aligned .bss pages, mapped read-write; the flag above
    // makes this the only conduit that ever owns them.
    Some(unsafe { SmcConduit::new(rx, tx, STATIC_BUFFER_SIZE) })
}

const _: () = assert!(STATIC_BUFFER_SIZE as u64 == PAGE_SIZE);
