//! Exceptions the images do not expect: how they are reported, and the one they recover from.
//!
//! Every exception is fatal to either image except an `SMC` that no firmware implements, which
//! is how a missing EL3 (or an EL3 with `SCR_EL3.SMD` set) shows itself: the instruction is
//! undefined at the caller's level. The handler then resumes after it with SMCCC NOT_SUPPORTED
//! (-1) in x0, exactly what firmware without the service returns, so the conduit's caller sees
//! "no SPMC" instead of a crash.

use core::fmt;

/// ESR exception class "unknown reason", which an undefined `SMC` takes.
const EC_UNKNOWN: u64 = 0x00;
/// `SMC #imm16`: mask and value.
const SMC_MASK: u32 = 0xffe0_001f;
const SMC_BITS: u32 = 0xd400_0003;
/// SMCCC NOT_SUPPORTED, as a register value.
pub const NOT_SUPPORTED: u64 = u64::MAX;

/// The exception class of a syndrome (ESR bits \[31:26\]).
pub fn class(esr: u64) -> u64 {
    (esr >> 26) & 0x3f
}

/// A short name for an exception class.
pub fn class_name(ec: u64) -> &'static str {
    match ec {
        0x00 => "undefined instruction",
        0x07 => "FP/SIMD access trapped",
        0x15 => "SVC",
        0x16 => "HVC",
        0x17 => "SMC",
        0x18 => "system register access trapped",
        0x20 | 0x21 => "instruction abort",
        0x22 => "PC alignment fault",
        0x24 | 0x25 => "data abort",
        0x26 => "SP alignment fault",
        0x2f => "SError",
        0x3c => "BRK",
        _ => "other",
    }
}

/// What a fatal exception left: its syndrome and where it was taken. Displays as one line,
/// `<class> (ESR_ELn <esr>, EC <ec>) FAR <far> ELR <elr> SPSR <spsr>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// The exception level whose syndrome registers these are (1 or 2).
    pub el: u8,
    /// ESR_ELn.
    pub esr: u64,
    /// FAR_ELn.
    pub far: u64,
    /// ELR_ELn.
    pub elr: usize,
    /// SPSR_ELn.
    pub spsr: u64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ec = class(self.esr);
        write!(
            f,
            "{} (ESR_EL{} {:#x}, EC {ec:#x}) FAR {:#x} ELR {:#x} SPSR {:#x}",
            class_name(ec),
            self.el,
            self.esr,
            self.far,
            self.elr,
            self.spsr
        )
    }
}

/// Whether `insn`, taken with syndrome `esr`, is an `SMC` that no firmware implements.
pub fn is_undefined_smc_insn(esr: u64, insn: u32) -> bool {
    class(esr) == EC_UNKNOWN && insn & SMC_MASK == SMC_BITS
}

/// Whether a synchronous exception with syndrome `esr` taken at `pc` is an `SMC` that no
/// firmware implements (then call [`resume_after_undefined_smc`]).
///
/// # Safety
///
/// When the class is "unknown", `pc` is read as an instruction: it must be the address of an
/// instruction this program executed (the exception link register), mapped readable.
pub unsafe fn is_undefined_smc(esr: u64, pc: usize) -> bool {
    if class(esr) != EC_UNKNOWN || !pc.is_multiple_of(4) {
        return false;
    }
    let insn = core::ptr::with_exposed_provenance::<u32>(pc);
    // SAFETY: the caller guarantees `pc` is a readable instruction address; the read is
    // aligned (checked above).
    let insn = unsafe { insn.read_volatile() };
    is_undefined_smc_insn(esr, insn)
}

/// Makes the interrupted context continue after its undefined `SMC` with SMCCC NOT_SUPPORTED
/// in x0, as firmware without the service would answer. Every `SMC` of both images goes
/// through [`SmcConduit`](super::smc::SmcConduit), whose `asm!` declares x0..x17 as outputs,
/// so rewriting x0 is sound.
pub fn resume_after_undefined_smc(x0: &mut u64, elr: &mut usize) {
    *x0 = NOT_SUPPORTED;
    *elr = elr.wrapping_add(4);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_smc_with_unknown_class_is_undefined_smc() {
        assert!(is_undefined_smc_insn(0, 0xd400_0003));
        assert!(is_undefined_smc_insn(0x0200_0000, 0xd41f_ffe3)); // smc #0xffff, IL bit set
        assert!(!is_undefined_smc_insn(0, 0xd400_0002)); // hvc #0
        assert!(!is_undefined_smc_insn(0x17 << 26, 0xd400_0003)); // a trapped SMC
        assert!(!is_undefined_smc_insn(0, 0xd503_207f)); // wfi
    }

    #[test]
    fn report_is_one_line_naming_the_class() {
        let r = Report {
            el: 1,
            esr: 0x9600_0045,
            far: 0x1000,
            elr: 0x0e30_4000,
            spsr: 0x3c5,
        };
        assert_eq!(
            r.to_string(),
            "data abort (ESR_EL1 0x96000045, EC 0x25) FAR 0x1000 ELR 0xe304000 SPSR 0x3c5"
        );
    }

    #[test]
    fn resuming_skips_the_instruction_with_not_supported() {
        let (mut x0, mut elr) = (0x8400_0063, 0x1000);
        resume_after_undefined_smc(&mut x0, &mut elr);
        assert_eq!((x0, elr), (u64::MAX, 0x1004));
    }
}
