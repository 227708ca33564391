//! Exception vectors: every exception is fatal (syndrome logged, partition stopped), except an
//! undefined `SMC`, which is how a missing EL3 shows itself: the SMC is skipped and returns
//! SMCCC NOT_SUPPORTED (-1) in x0, as firmware without the service would.

use core::{
    arch::asm,
    sync::atomic::{AtomicBool, Ordering},
};

use aarch64_rt::{ExceptionHandlers, RegisterStateRef};

/// Set once an `SMC` was found undefined at this exception level.
static SMC_UNDEFINED: AtomicBool = AtomicBool::new(false);

/// Whether an `SMC` has been found undefined (no EL3 firmware).
pub fn smc_undefined() -> bool {
    SMC_UNDEFINED.load(Ordering::Acquire)
}

fn esr() -> u64 {
    let v: u64;
    // SAFETY: reading a syndrome register has no side effects.
    unsafe { asm!("mrs {}, esr_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

fn far() -> u64 {
    let v: u64;
    // SAFETY: reading a syndrome register has no side effects.
    unsafe { asm!("mrs {}, far_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// A short name for an exception class.
fn class_name(ec: u64) -> &'static str {
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

/// Logs the syndrome of an exception nobody handles, and stops the partition.
fn fatal(kind: &str, state: &RegisterStateRef) -> ! {
    let esr = esr();
    let ec = (esr >> 26) & 0x3f;
    super::console::emergency(format_args!(
        "ERROR {kind}: {} (ESR_EL1 {esr:#x}, EC {ec:#x}) FAR {:#x} ELR {:#x} SPSR {:#x}",
        class_name(ec),
        far(),
        state.elr,
        state.spsr,
    ));
    super::stop()
}

/// The partition's exception handlers.
pub struct Handlers;

impl ExceptionHandlers for Handlers {
    extern "C" fn sync_current(mut state: RegisterStateRef) {
        // SAFETY: ELR is the address of the instruction this partition took the exception on,
        // in its own text, which is mapped readable.
        if unsafe { ffa::conduit::is_undefined_smc(esr(), state.elr) } {
            SMC_UNDEFINED.store(true, Ordering::Release);
            // SAFETY: resuming after the SMC with x0 = -1 is exactly what firmware without the
            // service returns; every SMC in this program goes through `smccc::smc64`, whose
            // asm declares x0..x17 as outputs.
            unsafe {
                let regs = state.get_mut();
                if let Some(x0) = regs.registers.first_mut() {
                    *x0 = u64::MAX;
                }
                regs.elr += 4;
            }
            return;
        }
        fatal("synchronous exception", &state)
    }

    extern "C" fn irq_current(state: RegisterStateRef) {
        fatal("IRQ", &state)
    }

    extern "C" fn fiq_current(state: RegisterStateRef) {
        fatal("FIQ", &state)
    }

    extern "C" fn serror_current(state: RegisterStateRef) {
        fatal("SError", &state)
    }

    extern "C" fn sync_lower(state: RegisterStateRef) {
        fatal("synchronous exception from EL0", &state)
    }

    extern "C" fn irq_lower(state: RegisterStateRef) {
        fatal("IRQ from EL0", &state)
    }

    extern "C" fn fiq_lower(state: RegisterStateRef) {
        fatal("FIQ from EL0", &state)
    }

    extern "C" fn serror_lower(state: RegisterStateRef) {
        fatal("SError from EL0", &state)
    }
}

aarch64_rt::exception_handlers!(Handlers);
