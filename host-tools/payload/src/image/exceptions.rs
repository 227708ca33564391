//! Exception vectors (EL2): every exception is fatal (syndrome printed, power off), except an
//! undefined `SMC`, which is how a missing EL3 shows itself: the SMC is skipped and returns
//! SMCCC NOT_SUPPORTED (-1) in x0, as firmware without the service would.

use core::{
    arch::asm,
    sync::atomic::{AtomicBool, Ordering},
};

use aarch64_rt::{ExceptionHandlers, RegisterStateRef};

/// Set once an `SMC` was found undefined.
static SMC_UNDEFINED: AtomicBool = AtomicBool::new(false);

/// Whether an `SMC` has been found undefined (no EL3).
pub fn smc_undefined() -> bool {
    SMC_UNDEFINED.load(Ordering::Acquire)
}

fn esr() -> u64 {
    let v: u64;
    // SAFETY: reading a syndrome register has no side effects.
    unsafe { asm!("mrs {}, esr_el2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

fn far() -> u64 {
    let v: u64;
    // SAFETY: reading a syndrome register has no side effects.
    unsafe { asm!("mrs {}, far_el2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Prints the syndrome of an exception nobody handles and powers off.
fn fatal(kind: &str, state: &RegisterStateRef) -> ! {
    let esr = esr();
    super::console::emergency(format_args!(
        "PANIC {kind}: ESR_EL2 {esr:#x} (EC {:#x}) FAR_EL2 {:#x} ELR {:#x} SPSR {:#x}",
        (esr >> 26) & 0x3f,
        far(),
        state.elr,
        state.spsr,
    ));
    super::console::emergency(format_args!("FAIL payload: exception, no result line"));
    super::power_off()
}

/// The payload's exception handlers.
pub struct Handlers;

impl ExceptionHandlers for Handlers {
    extern "C" fn sync_current(mut state: RegisterStateRef) {
        // SAFETY: ELR is the address of the instruction the payload took the exception on,
        // in its own text, which is mapped readable.
        if unsafe { ffa::conduit::is_undefined_smc(esr(), state.elr) } {
            SMC_UNDEFINED.store(true, Ordering::Release);
            // SAFETY: resuming after the SMC with x0 = -1 is what firmware without the service
            // returns; every SMC in the payload goes through `smccc`, whose asm declares
            // x0..x17 as outputs.
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
        fatal("synchronous exception from a lower EL", &state)
    }

    extern "C" fn irq_lower(state: RegisterStateRef) {
        fatal("IRQ from a lower EL", &state)
    }

    extern "C" fn fiq_lower(state: RegisterStateRef) {
        fatal("FIQ from a lower EL", &state)
    }

    extern "C" fn serror_lower(state: RegisterStateRef) {
        fatal("SError from a lower EL", &state)
    }
}

aarch64_rt::exception_handlers!(Handlers);
