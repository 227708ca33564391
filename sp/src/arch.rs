//! The partition's system-register and maintenance-instruction accessors, and their fakes.
//!
//! Everything the partition asks of the CPU outside the FF-A conduit goes through these few
//! functions, so that the code using them (the stage-1 mapper, entropy selection) also builds
//! and is tested on the host. On `aarch64-unknown-none` they are the real instructions
//! (`real`); on every other target, or with the `fakes` feature, they read and record a
//! per-thread fake CPU (`fake`, as `arm-gic` and RF-A do), which host tests script.
//!
//! `RNDR` and TCR_EL1 come from `aarch64-cpu`; what its version 11.2.0 lacks (TLB maintenance, address
//! translation) from the project's one aarch64 support module, `ffa::arch::mmu`.

pub mod par;
pub use par::{PAR_FAILED, PAR_NS, PAR_PA_MASK};

#[cfg(not(all(target_arch = "aarch64", target_os = "none", not(feature = "fakes"))))]
pub mod fake;
#[cfg(not(all(target_arch = "aarch64", target_os = "none", not(feature = "fakes"))))]
pub use fake::{
    rndr, rndr_present, set_t0sz_el1, set_ttbr0_el1, tlb_invalidate_el1, translate_el1_read,
};

#[cfg(all(target_arch = "aarch64", target_os = "none", not(feature = "fakes")))]
pub mod real;
#[cfg(all(target_arch = "aarch64", target_os = "none", not(feature = "fakes")))]
pub use real::{
    rndr, rndr_present, set_t0sz_el1, set_ttbr0_el1, tlb_invalidate_el1, translate_el1_read,
};
