//! aarch64 support shared by the two bare-metal images of this project, the secure partition
//! (S-EL1) and the normal-world test payload (NS-EL2): what both need and neither should write
//! twice.
//!
//! - [`smc`] (aarch64 only): [`SmcConduit`](smc::SmcConduit), the one place either image issues
//!   `smc #0`, for FF-A and for every other SMCCC service (TRNG, PSCI).
//! - [`exception`]: the report of a fatal exception (syndrome decoding), and how an `SMC` that no
//!   firmware implements is recognised and turned into SMCCC NOT_SUPPORTED.
//! - [`volatile`]: copies to and from memory the other world may change at any time.
//! - [`mmu`] (aarch64 only): TLB invalidation and address translation, which `aarch64-cpu`
//!   lacks (the partition's stage-1 mapper).
//!
//! The only `asm!` of the project outside aarch64-rt's entry and vector glue is here (and in
//! the crates it uses: `smccc`, `aarch64-cpu`).
//! `exception` and `volatile` build on every target so that their logic has host tests.

pub mod exception;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod mmu;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod smc;
pub mod volatile;

/// Waits for interrupts forever: with interrupts masked, this parks the CPU for good.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfi();
    }
}
