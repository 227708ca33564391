//! The conduit: the single place an FF-A call leaves this endpoint.

/// Issues FF-A calls for one endpoint and owns its RX/TX buffers.
///
/// The real implementation is [`SmcConduit`](crate::arch::smc::SmcConduit) (`smc #0`: S-EL1
/// partition, NWd payload at EL2 under an SPMD); host tests and the simulated world implement it
/// in software. Every SMCCC call of the images goes through it, FF-A or not ([`smccc_call`]).
pub trait Conduit {
    /// Issues the call in `regs` (x0..x17) and returns x0..x17 as they come back.
    fn call(&mut self, regs: [u64; 18]) -> [u64; 18];
    /// The endpoint's TX buffer (the endpoint writes, the SPMC reads during the next call).
    fn tx(&mut self) -> &mut [u8];
    /// The endpoint's RX buffer (the SPMC writes during a call, the endpoint reads afterwards).
    fn rx(&self) -> &[u8];
    /// Hafnium's paravirtualised HF_INTERRUPT_GET (`hvc #0`, function 0xff04): takes the id of
    /// the caller's next pending virtual interrupt ([`HF_INVALID_INTID`] when none), which
    /// acknowledges it. `None` where the conduit has no such interface. A partition with
    /// `notification-support` gets the notification pending interrupt ([`HF_NPI_INTID`]) when
    /// it is run with notifications pending; until it takes it, every FFA_MSG_WAIT returns
    /// FFA_INTERRUPT at once.
    fn interrupt_get(&mut self) -> Option<u32> {
        None
    }
    /// Hafnium's paravirtualised HF_INTERRUPT_ENABLE (`hvc #0`, function 0xff03) of virtual
    /// interrupt `intid` as an IRQ, for the caller's execution context; returns whether it was
    /// enabled (`false` where the conduit has no such interface). Hafnium signals a waiting
    /// context with FFA_INTERRUPT only for an enabled interrupt.
    fn interrupt_enable(&mut self, intid: u32) -> bool {
        let _ = intid;
        false
    }
    /// Arms the caller's one-shot timer to fire `micros` microseconds from now (re-arming moves
    /// it); returns whether there is such a timer. Under Hafnium it is the S-EL1 partition's EL1
    /// physical timer (`CNTP_*_EL0`), which the SPMC traps and emulates on its own S-EL2 timer:
    /// when it fires, virtual interrupt [`HF_VIRTUAL_TIMER_INTID`] is pending, and a context
    /// waiting in FFA_MSG_WAIT (or answering with a direct response) is resumed with
    /// FFA_INTERRUPT. (Hafnium does not emulate the EL1 *virtual* timer: it must not be used.)
    fn timer_arm(&mut self, micros: u32) -> bool {
        let _ = micros;
        false
    }
    /// Stops the timer armed by [`timer_arm`](Self::timer_arm) (nothing if none is armed). A
    /// timer that has fired must be stopped, or its level stays asserted.
    fn timer_stop(&mut self) {}
}

/// HF_INTERRUPT_GET's answer when no virtual interrupt is pending (Hafnium `HF_INVALID_INTID`).
pub const HF_INVALID_INTID: u32 = 0xFFFF_FFFF;
/// Hafnium's notification pending interrupt (`HF_NOTIFICATION_PENDING_INTID`).
pub const HF_NPI_INTID: u32 = 5;
/// Hafnium's HF_INTERRUPT_GET function id.
pub const HF_INTERRUPT_GET: u32 = 0xff04;
/// Hafnium's HF_INTERRUPT_ENABLE function id (x1 = intid, x2 = enable, x3 = type: 0 = IRQ).
pub const HF_INTERRUPT_ENABLE: u32 = 0xff03;
/// The virtual interrupt of a partition's EL1 physical timer under Hafnium
/// (`HF_VIRTUAL_TIMER_INTID`).
pub const HF_VIRTUAL_TIMER_INTID: u32 = 3;

/// The low 32 bits of a register (an SMC function id, or a 32-bit status in w0).
pub fn low32(x: u64) -> u32 {
    let [a, b, c, d, ..] = x.to_le_bytes();
    u32::from_le_bytes([a, b, c, d])
}

/// An SMCCC call that is not FF-A (TRNG, PSCI) through `conduit`: x0 = `function`, x1.. =
/// `args`, the rest zero; returns x0..x17 of the answer.
pub fn smccc_call<C: Conduit + ?Sized>(conduit: &mut C, function: u32, args: &[u64]) -> [u64; 18] {
    let mut regs = [0u64; 18];
    let [x0, rest @ ..] = &mut regs;
    *x0 = u64::from(function);
    for (reg, arg) in rest.iter_mut().zip(args) {
        *reg = *arg;
    }
    conduit.call(regs)
}

/// The signed 32-bit status an SMCCC service returns in w0.
pub fn smccc_status(x0: u64) -> i32 {
    i32::from_le_bytes(low32(x0).to_le_bytes())
}
