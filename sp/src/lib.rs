//! The virtio-msg secure partition core: message loop, per-VM bus instances, device registry,
//! device-side virtqueues and device models.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

extern crate alloc;
pub mod devices;
pub mod partition;
pub mod registry;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod runtime;
pub mod virtqueue;
