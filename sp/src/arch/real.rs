//! The real accessors (aarch64, EL1).

use aarch64_cpu::asm::random::ArmRng;
pub use ffa::arch::mmu::{tlb_invalidate_el1, translate_el1_read};

/// Whether the CPU implements FEAT_RNG (ID_AA64ISAR0_EL1.RNDR non-zero).
pub fn rndr_present() -> bool {
    ArmRng::new().is_some()
}

/// One `RNDR` read: `None` if the hardware reported a failure, or if FEAT_RNG is absent.
pub fn rndr() -> Option<u64> {
    ArmRng::new()?.rndr()
}
