//! FP/SIMD at EL2, for every CPU before its first Rust code that may use it.

use aarch64_cpu::{
    asm::barrier::{self, SY},
    registers::{CPTR_EL2, Readable, Writeable},
};

/// CPTR_EL2.TFP: FP/SIMD instructions at EL2 trap.
const CPTR_EL2_TFP: u64 = 1 << 10;

/// Clears CPTR_EL2.TFP, so FP/SIMD instructions at EL2 do not trap. Its reset value is UNKNOWN;
/// aarch64-rt only sets CPACR_EL1, which does not govern EL2 (HCR_EL2.E2H = 0). aarch64-cpu
/// 11.2.0 names no TFP field, hence the mask.
pub fn allow_fp_at_el2() {
    CPTR_EL2.set(CPTR_EL2.get() & !CPTR_EL2_TFP);
    barrier::isb(SY);
}
