//! How the partition stops for good: on a fatal error, a panic or an exception nobody handles.

use ffa::{
    arch::smc::SmcCalls,
    arm_ffa::{FfaError, Interface, interface_args::TargetInfo},
    conduit::{Conduit, low32, smccc_call},
};

use super::{console, spmc};

/// Logs `args` as an error and stops the partition.
pub fn fatal(args: core::fmt::Arguments) -> ! {
    console::emergency(format_args!("ERROR {args}"));
    stop()
}

/// Stops the partition for good.
///
/// With an SPMC: answers `FFA_ERROR(ABORTED)` (ending the init run, or refusing the message
/// being handled), again for every message the SPMC still delivers, until the SPMC refuses
/// that too; then waits for interrupts. Without one: PSCI `SYSTEM_OFF`, then waits for
/// interrupts.
pub fn stop() -> ! {
    let mut smc = SmcCalls;
    if spmc::present() {
        console::emergency(format_args!("ERROR stopped: answering FFA_ERROR(ABORTED)"));
        let mut regs = [0u64; 18];
        Interface::Error {
            target_info: TargetInfo::default(),
            error_code: FfaError::Aborted,
            error_arg: 0,
            is_32bit: true,
        }
        .to_regs(ffa::FFA_VERSION, &mut regs);
        loop {
            let [x0, ..] = smc.call(regs);
            let fid = low32(x0);
            // FFA_ERROR or SMCCC NOT_SUPPORTED back: the SPMC will not take it.
            if fid == 0x8400_0060 || fid == u32::MAX {
                break;
            }
        }
    } else {
        console::emergency(format_args!("INFO  stopped"));
        // With no firmware it returns (or is undefined and returns -1).
        let _ = smccc_call(&mut smc, smccc::psci::PSCI_SYSTEM_OFF, &[]);
    }
    ffa::arch::halt()
}
