//! The conduit: the single place an FF-A call leaves this endpoint.

/// Issues FF-A calls for one endpoint and owns its RX/TX buffers.
///
/// The real implementation is `smc #0` (S-EL1 partition, NWd payload at EL2 under an SPMD);
/// host tests and the simulated world implement it in software.
pub trait Conduit {
    /// Issues the call in `regs` (x0..x17) and returns x0..x17 as they come back.
    fn call(&mut self, regs: [u64; 18]) -> [u64; 18];
    /// The endpoint's TX buffer (the endpoint writes, the SPMC reads during the next call).
    fn tx(&mut self) -> &mut [u8];
    /// The endpoint's RX buffer (the SPMC writes during a call, the endpoint reads afterwards).
    fn rx(&self) -> &[u8];
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use smc::{SmcConduit, is_undefined_smc};

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod smc {
    use core::ptr::NonNull;

    use super::Conduit;

    /// FF-A over `smc #0` (an S-EL1 partition, or a normal-world payload at EL2, talking to
    /// the SPMD at EL3), with RX/TX buffers given by the caller.
    ///
    /// The buffers are kept as raw pointers: the SPMC writes RX (and reads TX) *during* a
    /// call, when no slice into them is alive (`call` takes `&mut self`, which ends every
    /// borrow that [`Conduit::rx`] and [`Conduit::tx`] handed out).
    ///
    /// Where no EL3 firmware implements SMC the instruction is undefined: the caller's
    /// exception handler is expected to resume after it with SMCCC NOT_SUPPORTED in x0.
    pub struct SmcConduit {
        rx: NonNull<u8>,
        tx: NonNull<u8>,
        len: usize,
    }

    // SAFETY: the buffers are owned by the conduit (see `new`); moving it to another context
    // moves that ownership with it.
    unsafe impl Send for SmcConduit {}

    impl SmcConduit {
        /// A conduit over `len`-byte RX and TX buffers.
        ///
        /// # Safety
        ///
        /// `rx` and `tx` must each be `len` bytes of mapped memory (`rx` readable, `tx`
        /// read-write), not overlapping each other, and used by nothing but this conduit (and
        /// the SPMC during calls) for as long as the conduit lives.
        pub unsafe fn new(rx: NonNull<u8>, tx: NonNull<u8>, len: usize) -> Self {
            Self { rx, tx, len }
        }

        /// (TX address, RX address, 4 KiB page count): the arguments of `FFA_RXTX_MAP` for an
        /// identity-mapped image, where the virtual addresses are the physical ones.
        pub fn buffer_addresses(&self) -> (u64, u64, u32) {
            let pages = u32::try_from(self.len.div_ceil(4096)).unwrap_or(u32::MAX);
            let to_u64 = |p: NonNull<u8>| u64::try_from(p.as_ptr().addr()).unwrap_or(u64::MAX);
            (to_u64(self.tx), to_u64(self.rx), pages)
        }
    }

    /// ESR exception class "unknown reason", which an SMC takes where EL3 does not implement it.
    const EC_UNKNOWN: u64 = 0x00;
    /// `SMC #imm16`: mask and value.
    const SMC_MASK: u32 = 0xffe0_001f;
    const SMC_BITS: u32 = 0xd400_0003;

    /// Whether a synchronous exception with syndrome `esr` taken at `pc` is an `SMC` that no
    /// firmware implements. The exception handler then resumes after it with SMCCC
    /// NOT_SUPPORTED in x0, so [`SmcConduit::call`] reports "no SPMC" instead of crashing.
    ///
    /// # Safety
    ///
    /// When the class is "unknown", `pc` is read as an instruction: it must be the address of
    /// an instruction this program executed (the exception link register), mapped readable.
    pub unsafe fn is_undefined_smc(esr: u64, pc: usize) -> bool {
        if (esr >> 26) & 0x3f != EC_UNKNOWN || !pc.is_multiple_of(4) {
            return false;
        }
        let insn = core::ptr::with_exposed_provenance::<u32>(pc);
        // SAFETY: the caller guarantees `pc` is a readable instruction address; the read is
        // aligned (checked above).
        let insn = unsafe { insn.read_volatile() };
        insn & SMC_MASK == SMC_BITS
    }

    impl Conduit for SmcConduit {
        fn call(&mut self, regs: [u64; 18]) -> [u64; 18] {
            let [x0, args @ ..] = regs;
            // SMC function ids are the low 32 bits of x0.
            let [a, b, c, d, ..] = x0.to_le_bytes();
            smccc::smc64(u32::from_le_bytes([a, b, c, d]), args)
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
}
