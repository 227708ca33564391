//! The normal-world test payload for QEMU `virt`: a BL33 image entered at NS-EL2 at
//! 0x6000_0000 (TF-A's BL33 base), MMU and caches off.
//!
//! Thin on purpose: the EL2 runtime is in `image/`, the checks are the library's
//! [`nwd_payload::flow`]. Host builds (`cargo test --workspace`) compile an empty stub.
#![cfg_attr(target_os = "none", no_std, no_main)]

/// Host stub: the payload only runs on `aarch64-unknown-none`.
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod image;
