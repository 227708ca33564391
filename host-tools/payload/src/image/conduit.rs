//! The SMC conduit: the one place the payload issues FF-A calls (`smc #0`, to the SPMD at EL3),
//! with the endpoint's RX/TX buffers (two static pages in .bss, registered with
//! `FFA_RXTX_MAP`).
//!
//! The SMC itself is `ffa::arch::smc::SmcConduit`, shared with the partition; this module owns
//! the payload's buffers.

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

/// FF-A over `smc #0` from NS-EL2: [`ffa::arch::smc::SmcConduit`] over the payload's static
/// RX/TX pages. At most one exists at a time ([`SmcConduit::take`]); it owns the pages while
/// it lives.
pub struct SmcConduit(ffa::arch::smc::SmcConduit);

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
            // SAFETY: RX and TX are distinct page-aligned .bss pages, identity-mapped
            // read-write; TAKEN makes this conduit their only user until it is dropped.
            (Some(rx), Some(tx)) => Some(Self(unsafe {
                ffa::arch::smc::SmcConduit::new(rx, tx, BUFFER_SIZE)
            })),
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
        // Where no EL3 answers, the SMC is undefined: the exception handler resumes after it
        // with x0 = -1 (`super::exceptions`).
        self.0.call(regs)
    }

    fn tx(&mut self) -> &mut [u8] {
        self.0.tx()
    }

    fn rx(&self) -> &[u8] {
        self.0.rx()
    }
}
