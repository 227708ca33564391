//! `smc #0`: the conduit of both bare-metal images.

use core::ptr::NonNull;

use crate::conduit::Conduit;

/// Issues `smc #0` with x0..x17 = `regs`; returns x0..x17 as they come back. The one SMC
/// wrapper of the project: everything reaches it through [`SmcConduit::call`].
fn smc(regs: [u64; 18]) -> [u64; 18] {
    let [x0, args @ ..] = regs;
    // SMC function ids are the low 32 bits of x0.
    smccc::smc64(crate::conduit::low32(x0), args)
}

/// FF-A (and every other SMCCC service) over `smc #0`: an S-EL1 partition or a normal-world
/// payload at EL2 talking to the firmware at EL3, with RX/TX buffers given by the caller.
///
/// The buffers are kept as raw pointers: the SPMC writes RX (and reads TX) *during* a call,
/// when no slice into them is alive (`call` takes `&mut self`, which ends every borrow that
/// [`Conduit::rx`] and [`Conduit::tx`] handed out).
///
/// Where no EL3 firmware implements SMC the instruction is undefined: the caller's exception
/// handler is expected to resume after it with SMCCC NOT_SUPPORTED in x0
/// ([`super::exception::resume_after_undefined_smc`]).
pub struct SmcConduit {
    rx: NonNull<u8>,
    tx: NonNull<u8>,
    len: usize,
    /// Whether [`Conduit::timer_arm`] enabled the EL1 physical timer (and no stop followed).
    timer_on: bool,
}

// SAFETY: the buffers are owned by the conduit (see `new`); moving it to another context moves
// that ownership with it.
unsafe impl Send for SmcConduit {}

impl SmcConduit {
    /// A conduit over `len`-byte RX and TX buffers.
    ///
    /// # Safety
    ///
    /// `rx` and `tx` must each be `len` bytes of mapped memory (`rx` readable, `tx`
    /// read-write), not overlapping each other, and used by nothing but this conduit (and the
    /// SPMC during calls) for as long as the conduit lives.
    pub unsafe fn new(rx: NonNull<u8>, tx: NonNull<u8>, len: usize) -> Self {
        Self {
            rx,
            tx,
            len,
            timer_on: false,
        }
    }

    /// (TX address, RX address, 4 KiB page count): the arguments of `FFA_RXTX_MAP` for an
    /// identity-mapped image, where the virtual addresses are the physical ones.
    pub fn buffer_addresses(&self) -> (u64, u64, u32) {
        // Cannot panic (`div_ceil`): the divisor is 4096.
        let pages = u32::try_from(self.len.div_ceil(4096)).unwrap_or(u32::MAX);
        let to_u64 = |p: NonNull<u8>| u64::try_from(p.as_ptr().addr()).unwrap_or(u64::MAX);
        (to_u64(self.tx), to_u64(self.rx), pages)
    }
}

impl Conduit for SmcConduit {
    fn call(&mut self, regs: [u64; 18]) -> [u64; 18] {
        smc(regs)
    }

    fn interrupt_get(&mut self) -> Option<u32> {
        // Hafnium takes its paravirtualised calls from an S-EL1 partition by HVC only.
        let answer = smccc::hvc64(crate::conduit::HF_INTERRUPT_GET, [0; 17]);
        Some(crate::conduit::low32(answer[0]))
    }

    fn interrupt_enable(&mut self, intid: u32) -> bool {
        // x2 = enable, x3 = INTERRUPT_TYPE_IRQ (0); Hafnium answers 0, or -1 for a bad id.
        let mut args = [0u64; 17];
        args[0] = u64::from(intid);
        args[1] = 1;
        let answer = smccc::hvc64(crate::conduit::HF_INTERRUPT_ENABLE, args);
        crate::conduit::low32(answer[0]) == 0
    }

    fn timer_arm(&mut self, micros: u32) -> bool {
        use aarch64_cpu::registers::{
            CNTFRQ_EL0, CNTP_CTL_EL0, CNTP_TVAL_EL0, Readable, Writeable,
        };
        let freq = CNTFRQ_EL0.get();
        let ticks = freq.saturating_mul(u64::from(micros)) / 1_000_000;
        // TVAL is a signed 32-bit count down: at most i32::MAX ticks, at least one.
        CNTP_TVAL_EL0.set(ticks.clamp(1, 0x7fff_ffff));
        // ENABLE set, IMASK clear (written as zero).
        CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET);
        self.timer_on = true;
        true
    }

    fn timer_stop(&mut self) {
        use aarch64_cpu::registers::{CNTP_CTL_EL0, Writeable};
        if core::mem::take(&mut self.timer_on) {
            CNTP_CTL_EL0.set(0);
        }
    }

    fn tx(&mut self) -> &mut [u8] {
        // SAFETY: `new`'s contract: `len` bytes of mapped read-write memory owned by this
        // conduit; `&mut self` makes this the only live borrow.
        unsafe { core::slice::from_raw_parts_mut(self.tx.as_ptr(), self.len) }
    }

    fn rx(&self) -> &[u8] {
        // SAFETY: `new`'s contract: `len` bytes of mapped readable memory owned by this
        // conduit. The SPMC only writes it during `call`, which needs `&mut self`, so it
        // cannot change while this shared borrow lives.
        unsafe { core::slice::from_raw_parts(self.rx.as_ptr(), self.len) }
    }
}

/// `smc #0` for calls that carry everything in registers (console logging, the emergency
/// FFA_VERSION probe, SMCCC TRNG, PSCI): a conduit without RX/TX buffers (both are empty), so
/// any number of them may exist beside the one [`SmcConduit`] that owns the buffers.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmcCalls;

impl Conduit for SmcCalls {
    fn call(&mut self, regs: [u64; 18]) -> [u64; 18] {
        smc(regs)
    }

    fn tx(&mut self) -> &mut [u8] {
        &mut []
    }

    fn rx(&self) -> &[u8] {
        &[]
    }
}
