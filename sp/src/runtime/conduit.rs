//! The SMC conduit: the one place this partition issues `smc #0`, with its RX/TX buffers.

use core::{
    ptr::NonNull,
    sync::atomic::{AtomicBool, Ordering},
};

use ffa::{Conduit, memory::PAGE_SIZE};

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

/// FF-A over `smc #0` (S-EL1 partition under an SPMD/SPMC), implementing [`ffa::Conduit`].
///
/// The buffers are kept as raw pointers: the SPMC writes RX (and reads TX) *during* a call,
/// when no slice into them is alive (`call` takes `&mut self`, which ends every borrow that
/// [`Conduit::rx`] and [`Conduit::tx`] handed out).
pub struct SmcConduit {
    rx: NonNull<u8>,
    tx: NonNull<u8>,
    len: usize,
}

// SAFETY: the buffers are owned by the conduit (see `new`); moving it to another context moves
// that ownership with it.
unsafe impl Send for SmcConduit {}

impl SmcConduit {
    /// A conduit over RX/TX buffers the SPMC already knows (the manifest's `rx_tx-info`).
    ///
    /// # Safety
    ///
    /// `rx` and `tx` must each be `len` bytes of mapped memory (`rx` readable, `tx` read-write),
    /// not overlapping each other, used by nothing but this conduit (and the SPMC during calls)
    /// for the rest of the program.
    pub unsafe fn new(rx: NonNull<u8>, tx: NonNull<u8>, len: usize) -> Self {
        Self { rx, tx, len }
    }

    /// A conduit over the image's own static 4 KiB buffers, to be registered with
    /// `FFA_RXTX_MAP` (see [`SmcConduit::buffer_addresses`]). `None` if they are already taken.
    pub fn with_static_buffers() -> Option<Self> {
        if STATIC_TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        let rx = NonNull::new((&raw mut STATIC_RX).cast::<u8>())?;
        let tx = NonNull::new((&raw mut STATIC_TX).cast::<u8>())?;
        // SAFETY: the statics are page-aligned .bss pages, mapped read-write; the flag above
        // makes this the only conduit that ever owns them.
        Some(unsafe { Self::new(rx, tx, STATIC_BUFFER_SIZE) })
    }

    /// (TX address, RX address, page count), the arguments of `FFA_RXTX_MAP` (identity-mapped
    /// image: the virtual addresses are the IPAs).
    pub fn buffer_addresses(&self) -> (u64, u64, u32) {
        let pages = u32::try_from(self.len.div_ceil(STATIC_BUFFER_SIZE)).unwrap_or(u32::MAX);
        let to_u64 = |p: NonNull<u8>| u64::try_from(p.as_ptr().addr()).unwrap_or(u64::MAX);
        (to_u64(self.tx), to_u64(self.rx), pages)
    }
}

const _: () = assert!(STATIC_BUFFER_SIZE as u64 == PAGE_SIZE);

impl Conduit for SmcConduit {
    fn call(&mut self, regs: [u64; 18]) -> [u64; 18] {
        smc(regs)
    }

    fn tx(&mut self) -> &mut [u8] {
        // SAFETY: `new`'s contract: `len` bytes of mapped read-write memory owned by this
        // conduit; `&mut self` makes this the only live borrow.
        unsafe { core::slice::from_raw_parts_mut(self.tx.as_ptr(), self.len) }
    }

    fn rx(&self) -> &[u8] {
        // SAFETY: `new`'s contract: `len` bytes of mapped readable memory owned by this conduit.
        // The SPMC only writes it during `call`, which needs `&mut self`, so it cannot change
        // while this shared borrow lives.
        unsafe { core::slice::from_raw_parts(self.rx.as_ptr(), self.len) }
    }
}
