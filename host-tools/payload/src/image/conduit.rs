//! The SMC conduit: the one place the payload issues FF-A calls (`smc #0`, to the SPMD at EL3),
//! with the endpoint's RX/TX buffers (two static pages in .bss, registered with
//! `FFA_RXTX_MAP`).
//!
//! The same shape as the partition's conduit (`sp::runtime::conduit`), which cannot be shared:
//! the `sp` crate's runtime brings the partition's allocator and exception handlers.

use core::{
    ptr::NonNull,
    sync::atomic::{AtomicBool, Ordering},
};

use ffa::{Conduit, memory::PAGE_SIZE};

/// Size of each RX/TX buffer: one FF-A page.
const BUFFER_SIZE: usize = 4096;
const _: () = assert!(BUFFER_SIZE as u64 == PAGE_SIZE);

#[repr(C, align(4096))]
struct Page([u8; BUFFER_SIZE]);

static mut RX: Page = Page([0; BUFFER_SIZE]);
static mut TX: Page = Page([0; BUFFER_SIZE]);
/// Set while a [`SmcConduit`] exists.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The low 32 bits of a register (the function id of an SMC).
fn low32(x: u64) -> u32 {
    let [a, b, c, d, ..] = x.to_le_bytes();
    u32::from_le_bytes([a, b, c, d])
}

/// FF-A over `smc #0` from NS-EL2, implementing [`ffa::Conduit`].
///
/// At most one exists at a time ([`SmcConduit::take`]); it owns the RX/TX pages while it
/// lives. They are kept as raw pointers: the SPMC writes RX (and reads TX) *during* a call,
/// when no slice into them is alive (`call` takes `&mut self`, which ends every borrow that
/// [`Conduit::rx`] and [`Conduit::tx`] handed out).
pub struct SmcConduit {
    rx: NonNull<u8>,
    tx: NonNull<u8>,
}

impl SmcConduit {
    /// The conduit, unless another one is alive.
    pub fn take() -> Option<Self> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        match (
            NonNull::new((&raw mut RX).cast::<u8>()),
            NonNull::new((&raw mut TX).cast::<u8>()),
        ) {
            (Some(rx), Some(tx)) => Some(Self { rx, tx }),
            _ => {
                TAKEN.store(false, Ordering::Release);
                None
            }
        }
    }

    /// (TX address, RX address, page count), the arguments of `FFA_RXTX_MAP` (identity map:
    /// the addresses are the physical ones).
    pub fn buffer_addresses() -> (u64, u64, u32) {
        let to_u64 = |p: *mut Page| u64::try_from(p.addr()).unwrap_or(u64::MAX);
        (to_u64(&raw mut TX), to_u64(&raw mut RX), 1)
    }
}

impl Drop for SmcConduit {
    fn drop(&mut self) {
        TAKEN.store(false, Ordering::Release);
    }
}

impl Conduit for SmcConduit {
    fn call(&mut self, regs: [u64; 18]) -> [u64; 18] {
        let [x0, args @ ..] = regs;
        // Where no EL3 answers, the SMC is undefined: the exception handler resumes after it
        // with x0 = -1 (`super::exceptions`).
        smccc::smc64(low32(x0), args)
    }

    fn tx(&mut self) -> &mut [u8] {
        // SAFETY: TX is a static page owned by this conduit (`take` hands out one at a time),
        // mapped read-write; `&mut self` makes this the only live borrow.
        unsafe { core::slice::from_raw_parts_mut(self.tx.as_ptr(), BUFFER_SIZE) }
    }

    fn rx(&self) -> &[u8] {
        // SAFETY: RX is a static page owned by this conduit, mapped readable. The SPMC only
        // writes it during `call`, which needs `&mut self`, so it cannot change while this
        // shared borrow lives.
        unsafe { core::slice::from_raw_parts(self.rx.as_ptr(), BUFFER_SIZE) }
    }
}
