//! Exception vectors (EL2): every exception is fatal (syndrome printed, power off), except an
//! undefined `SMC`, which is how a missing EL3 shows itself: the SMC is skipped and returns
//! SMCCC NOT_SUPPORTED (-1) in x0, as firmware without the service would.

use core::sync::atomic::{AtomicBool, Ordering};

use aarch64_cpu::registers::{ESR_EL2, FAR_EL2, Readable};
use aarch64_rt::{ExceptionHandlers, RegisterStateRef};
use ffa::arch::exception::{self, Report};

/// Set once an `SMC` was found undefined.
static SMC_UNDEFINED: AtomicBool = AtomicBool::new(false);

/// Whether an `SMC` has been found undefined (no EL3).
pub fn smc_undefined() -> bool {
    SMC_UNDEFINED.load(Ordering::Acquire)
}

/// Prints the syndrome of an exception nobody handles and powers off.
fn fatal(kind: &str, state: &RegisterStateRef) -> ! {
    let report = Report {
        el: 2,
        esr: ESR_EL2.get(),
        far: FAR_EL2.get(),
        elr: state.elr,
        spsr: state.spsr,
    };
    super::console::emergency(format_args!("PANIC {kind}: {report}"));
    super::console::emergency(format_args!("FAIL payload: exception, no result line"));
    super::power::power_off()
}

/// The payload's exception handlers.
pub struct Handlers;

impl ExceptionHandlers for Handlers {
    extern "C" fn sync_current(mut state: RegisterStateRef) {
        // SAFETY: ELR is the address of the instruction the payload took the exception on,
        // in its own text, which is mapped readable.
        if unsafe { exception::is_undefined_smc(ESR_EL2.get(), state.elr) } {
            SMC_UNDEFINED.store(true, Ordering::Release);
            // SAFETY: the interrupted context is the payload's own SMC, issued through the
            // conduit whose asm declares x0..x17 as outputs; resuming after it with a new x0
            // breaks no assumption of the interrupted code.
            let regs = unsafe { state.get_mut() };
            if let Some(x0) = regs.registers.first_mut() {
                exception::resume_after_undefined_smc(x0, &mut regs.elr);
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
