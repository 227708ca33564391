//! The real accessors (aarch64, EL1).

use aarch64_cpu::{
    asm::{
        barrier::{self, SY},
        random::ArmRng,
    },
    registers::{ReadWriteable, TCR_EL1, TTBR0_EL1, Writeable},
};
pub use ffa::arch::mmu::{tlb_invalidate_el1, translate_el1_read};

/// Sets TCR_EL1.T0SZ (the TTBR0 region is 2^(64 - `t0sz`) bytes), then synchronises the
/// context so that the next translation uses it.
pub fn set_t0sz_el1(t0sz: u64) {
    TCR_EL1.modify(TCR_EL1::T0SZ.val(t0sz));
    barrier::isb(SY);
}

/// Sets TTBR0_EL1 (root table and ASID), then synchronises the context.
pub fn set_ttbr0_el1(value: u64) {
    TTBR0_EL1.set(value);
    barrier::isb(SY);
}

/// Whether the CPU implements FEAT_RNG (ID_AA64ISAR0_EL1.RNDR non-zero).
pub fn rndr_present() -> bool {
    ArmRng::new().is_some()
}

/// One `RNDR` read: `None` if the hardware reported a failure, or if FEAT_RNG is absent.
pub fn rndr() -> Option<u64> {
    ArmRng::new()?.rndr()
}
