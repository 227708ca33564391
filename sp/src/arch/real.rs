//! The real accessors (aarch64, EL1).

use core::arch::asm;

use aarch64_cpu::{
    asm::{
        barrier::{self, NSH, SY},
        random::ArmRng,
    },
    registers::{PAR_EL1, Readable},
};

/// Whether the CPU implements FEAT_RNG (ID_AA64ISAR0_EL1.RNDR non-zero).
pub fn rndr_present() -> bool {
    ArmRng::new().is_some()
}

/// One `RNDR` read: `None` if the hardware reported a failure, or if FEAT_RNG is absent.
pub fn rndr() -> Option<u64> {
    ArmRng::new()?.rndr()
}

/// Invalidates every stage-1 EL1&0 TLB entry of this CPU, then waits for it to complete.
pub fn tlb_invalidate_el1() {
    // aarch64-cpu 11.2.0 has no TLB maintenance instructions.
    // SAFETY: TLB maintenance only drops cached translations; the tables in use map everything
    // the program touches, so any walk it causes finds the same answers.
    unsafe { asm!("tlbi vmalle1", options(nostack, preserves_flags)) };
    barrier::dsb(NSH);
    barrier::isb(SY);
}

/// PAR_EL1 after `AT S1E1R` of `va`: what an EL1 read of `va` translates to.
pub fn translate_el1_read(va: usize) -> u64 {
    // aarch64-cpu 11.2.0 has no address translation instructions.
    // SAFETY: an address translation instruction only writes PAR_EL1 (read back below).
    unsafe { asm!("at s1e1r, {va}", va = in(reg) va, options(nostack, preserves_flags)) };
    barrier::isb(SY);
    PAR_EL1.get()
}
