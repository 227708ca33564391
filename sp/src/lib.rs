//! The virtio-msg secure partition: its one start-up path, the partition core (message loop,
//! per-VM bus instances, device registry), device-side virtqueues and device models, and the
//! aarch64 runtime of the image.
//!
//! - [`startup`]: the start-up steps, generic over a [`startup::Platform`]; the image
//!   ([`runtime`]) and the simulated world run the same function.
//! - [`bootinfo`], [`layout`], [`mmu`], [`entropy`], [`console`]: the platform pieces the
//!   image uses, host-tested (CPU accessors through [`arch`], faked on the host).
//! - [`partition`], [`registry`], [`devices`], [`virtqueue`]: the partition core.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
// No panic path: everything this crate decodes or computes can come from the normal world,
// which is hostile, and a panic in the secure world stops the partition for every VM (a denial
// of service of the machine). Bad input is refused with the protocol's error instead; the few
// operations that provably cannot fail say why where they are allowed. Tests may panic.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

extern crate alloc;
pub mod arch;
pub mod bootinfo;
pub mod console;
pub mod devices;
pub mod entropy;
pub mod headroom;
pub mod layout;
pub mod mmu;
pub mod partition;
pub mod quota;
pub mod registry;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod runtime;
#[cfg(any(test, feature = "test-utils"))]
pub mod scripted;
pub mod startup;
pub mod virtqueue;
