//! The SPMC's answers: the 18 registers of a call or answer, FFA_SUCCESS and FFA_ERROR,
//! and refusals (an FF-A error code with the reason, logged).
//!
//! FF-A v1.2 (DEN0077A), FFA_SUCCESS and FFA_ERROR in "Setup and discovery interfaces"; the
//! register layout of every answer the sim gives is the same in FF-A v1.1 and v1.2.

use arm_ffa::{
    FfaError, Interface, Version,
    interface_args::{SuccessArgs, TargetInfo},
};

/// Registers of one FF-A call or answer.
pub(super) type Regs = [u64; 18];

/// A refusal: the FF-A error code and why (for the log).
pub(super) type Refusal = (FfaError, &'static str);

/// FFA_ERROR (32-bit) with `code`.
pub(super) fn error(code: FfaError) -> Interface {
    Interface::error(code, true)
}

/// Encodes an answer (the register layout of every answer the sim gives is the same in
/// FF-A v1.1 and v1.2).
pub(super) fn encode(iface: &Interface) -> Regs {
    let mut regs = [0; 18];
    iface.to_regs(Version(1, 2), &mut regs);
    regs
}

/// FFA_SUCCESS (32-bit) with `args`.
pub(super) fn success(args: SuccessArgs) -> Interface {
    Interface::Success {
        target_info: TargetInfo::default(),
        args,
    }
}

/// FFA_SUCCESS without arguments.
pub(super) fn ok() -> Interface {
    Interface::success32_noargs()
}

/// FFA_ERROR for a refusal, logged with its reason.
pub(super) fn refuse(id: u16, what: &str, (code, why): Refusal) -> Interface {
    log::debug!("sim: {what} from {id:#06x} refused ({code:?}): {why}");
    error(code)
}
