//! Powering off: PSCI `SYSTEM_OFF`, through the conduit like every SMC of the payload.

use ffa::{
    arch::smc::SmcCalls,
    conduit::{smccc_call, smccc_status},
};

/// PSCI `SYSTEM_OFF` (through the conduit, like every SMC of the payload); if it returns, says
/// so and parks the CPU.
pub fn power_off() -> ! {
    let [status, ..] = smccc_call(&mut SmcCalls, smccc::psci::PSCI_SYSTEM_OFF, &[]);
    let status = smccc_status(status);
    super::console::emergency(format_args!(
        "INFO PSCI SYSTEM_OFF failed: {status}; halting"
    ));
    ffa::arch::halt()
}
