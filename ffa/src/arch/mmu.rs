//! The two EL1 memory-management instructions the partition needs and `aarch64-cpu` 11.2.0
//! lacks: TLB invalidation and address translation. (Registers and barriers come from
//! `aarch64-cpu`.)

use core::arch::asm;

use aarch64_cpu::{
    asm::barrier::{self, NSH, SY},
    registers::{PAR_EL1, Readable},
};

/// Invalidates every stage-1 EL1&0 TLB entry of this CPU, then waits for it to complete.
pub fn tlb_invalidate_el1() {
    // SAFETY: TLB maintenance only drops cached translations; the caller's tables map
    // everything the program touches, so any walk it causes finds the same answers.
    unsafe { asm!("tlbi vmalle1", options(nostack, preserves_flags)) };
    barrier::dsb(NSH);
    barrier::isb(SY);
}

/// PAR_EL1 after `AT S1E1R` of `va`: what an EL1 read of `va` translates to.
pub fn translate_el1_read(va: usize) -> u64 {
    // SAFETY: an address translation instruction only writes PAR_EL1 (read back below).
    unsafe { asm!("at s1e1r, {va}", va = in(reg) va, options(nostack, preserves_flags)) };
    barrier::isb(SY);
    PAR_EL1.get()
}
