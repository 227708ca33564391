//! A fake CPU for host builds: what the accessors return is scripted per thread, and what they
//! did is recorded.

extern crate std;

use core::cell::RefCell;
use std::{collections::VecDeque, thread_local};

use super::par::{PAR_FAILED, PAR_NS, PAR_PA_MASK};

/// The fake CPU of the calling thread.
#[derive(Debug, Default)]
pub struct FakeCpu {
    /// ID_AA64ISAR0_EL1.RNDR is non-zero.
    pub rndr_present: bool,
    /// Values `RNDR` returns, in order (`None`: a failed read); empty means failure.
    pub rndr: VecDeque<Option<u64>>,
    /// Number of `TLBI VMALLE1` issued.
    pub tlb_invalidations: usize,
    /// TCR_EL1.T0SZ as last set (`None`: never set).
    pub t0sz: Option<u64>,
    /// TTBR0_EL1 as last set (`None`: never set).
    pub ttbr0: Option<u64>,
    /// Identity translations `AT S1E1R` reports: `(va range, non-secure)`; anything else fails.
    pub translations: std::vec::Vec<(core::ops::Range<usize>, bool)>,
}

thread_local! {
    static CPU: RefCell<FakeCpu> = RefCell::new(FakeCpu::default());
}

/// Runs `f` on the calling thread's fake CPU.
pub fn with<R>(f: impl FnOnce(&mut FakeCpu) -> R) -> R {
    // Cannot panic (`borrow_mut`): no accessor below calls `with` from inside `f` (a test that
    // nests it is wrong, and fails loudly). Host builds only, never in the image.
    CPU.with(|cpu| f(&mut cpu.borrow_mut()))
}

/// Fake of [`super::real::rndr_present`].
pub fn rndr_present() -> bool {
    with(|cpu| cpu.rndr_present)
}

/// Fake of [`super::real::rndr`].
pub fn rndr() -> Option<u64> {
    with(|cpu| {
        if cpu.rndr_present {
            cpu.rndr.pop_front().flatten()
        } else {
            None
        }
    })
}

/// Fake of [`super::real::tlb_invalidate_el1`].
pub fn tlb_invalidate_el1() {
    with(|cpu| cpu.tlb_invalidations = cpu.tlb_invalidations.saturating_add(1));
}

/// Fake of [`super::real::set_t0sz_el1`].
pub fn set_t0sz_el1(t0sz: u64) {
    with(|cpu| cpu.t0sz = Some(t0sz));
}

/// Fake of [`super::real::set_ttbr0_el1`].
pub fn set_ttbr0_el1(value: u64) {
    with(|cpu| cpu.ttbr0 = Some(value));
}

/// Fake of [`super::real::translate_el1_read`].
pub fn translate_el1_read(va: usize) -> u64 {
    with(|cpu| {
        cpu.translations
            .iter()
            .find(|(range, _)| range.contains(&va))
            .map_or(PAR_FAILED, |(_, ns)| {
                let pa = u64::try_from(va).unwrap_or(0) & PAR_PA_MASK;
                pa | if *ns { PAR_NS } else { 0 }
            })
    })
}
