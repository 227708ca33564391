//! PSCI: `SYSTEM_OFF` at the end of the run, `CPU_OFF` for a secondary CPU done with its job,
//! and [`ConduitCall`], smccc's calling interface over the conduit, through which aarch64-rt's
//! `start_core` issues `CPU_ON`. Every SMC goes through the conduit.

use ffa::{
    arch::smc::SmcCalls,
    conduit::{low32, smccc_call, smccc_status},
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

/// PSCI `CPU_OFF` for the calling (secondary) CPU; if it returns, parks the CPU.
pub fn cpu_off() -> ! {
    let [status, ..] = smccc_call(&mut SmcCalls, smccc::psci::PSCI_CPU_OFF, &[]);
    log::warn!("PSCI CPU_OFF failed: {}; halting", smccc_status(status));
    ffa::arch::halt()
}

/// smccc's [`smccc::Call`] over the payload's conduit ([`SmcCalls`]: `smc #0`, registers only).
pub struct ConduitCall;

impl smccc::Call for ConduitCall {
    fn call32(function: u32, args: [u32; 7]) -> [u32; 8] {
        let answer = smccc_call(&mut SmcCalls, function, &args.map(u64::from));
        let mut out = [0u32; 8];
        for (o, a) in out.iter_mut().zip(answer) {
            *o = low32(a);
        }
        out
    }

    fn call64(function: u32, args: [u64; 17]) -> [u64; 18] {
        smccc_call(&mut SmcCalls, function, &args)
    }
}
