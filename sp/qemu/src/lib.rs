//! Platform constants of the virtio-msg SP image for Hafnium on QEMU `virt`.
//!
//! The binary (`src/main.rs`) is the SP itself; this library only exports its layout so that
//! host tests can check the manifests against it.
#![no_std]

include!("layout.rs");
