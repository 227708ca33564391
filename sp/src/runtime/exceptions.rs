//! Exception vectors: every exception is fatal (syndrome logged, partition stopped), except an
//! undefined `SMC`, which is how a missing EL3 shows itself: it is skipped and returns SMCCC
//! NOT_SUPPORTED in x0 ([`ffa::arch::exception`]).

use core::sync::atomic::{AtomicBool, Ordering};

use aarch64_cpu::registers::{ESR_EL1, FAR_EL1, Readable};
use aarch64_rt::{ExceptionHandlers, RegisterStateRef};
use ffa::arch::exception::{self, Report};

/// Set once an `SMC` was found undefined at this exception level.
static SMC_UNDEFINED: AtomicBool = AtomicBool::new(false);

/// Whether an `SMC` has been found undefined (no EL3 firmware).
pub fn smc_undefined() -> bool {
    SMC_UNDEFINED.load(Ordering::Acquire)
}

/// Logs the syndrome of an exception nobody handles, and stops the partition.
fn fatal(kind: &str, state: &RegisterStateRef) -> ! {
    let report = Report {
        el: 1,
        esr: ESR_EL1.get(),
        far: FAR_EL1.get(),
        elr: state.elr,
        spsr: state.spsr,
    };
    super::console::emergency(format_args!("ERROR {kind}: {report}"));
    super::stop::stop()
}

/// The partition's exception handlers.
pub struct Handlers;

impl ExceptionHandlers for Handlers {
    extern "C" fn sync_current(mut state: RegisterStateRef) {
        // SAFETY: ELR is the address of the instruction this partition took the exception on,
        // in its own text, which is mapped readable.
        if unsafe { exception::is_undefined_smc(ESR_EL1.get(), state.elr) } {
            SMC_UNDEFINED.store(true, Ordering::Release);
            // SAFETY: the interrupted context is this partition's own SMC, issued through the
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
