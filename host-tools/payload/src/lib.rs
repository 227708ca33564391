//! The normal-world test payload: a bare-metal aarch64 image (BL33 for QEMU `virt`, entered by
//! TF-A at NS-EL2 at [`LOAD_ADDRESS`]) that drives the virtio-msg partition over real FF-A
//! calls with the same driver library as the `vmsg` host tool, and prints one result line per
//! check on UART0.
//!
//! This library is the part that does not depend on the machine, so host tests run it against
//! the simulated FF-A world:
//! - [`flow`]: the checks, generic over a [`flow::Machine`] (conduit, RX/TX buffers, driver
//!   memory);
//! - [`concurrent`]: the concurrent test, every CPU driving the partition at once;
//! - [`conformance`]: the conformance suite of the driver library on the payload's endpoint;
//! - [`fdt`]: the CPUs listed in the machine's device tree;
//! - [`machine`]: what the flow needs from the machine ([`machine::Machine`]);
//! - [`report`]: `PASS`/`FAIL` lines and the final `N passed, M failed`;
//! - [`pages`]: the page allocator for driver memory;
//! - [`quality`]: the sanity check of entropy read from the rng device;
//! - the layout constants (also read by `build.rs` for the link).
//!
//! The binary (`src/main.rs`, `src/image/`) adds the EL2 runtime: entry, initial page table,
//! exception vectors, heap, PL011 console, the `smc` conduit and PSCI `SYSTEM_OFF`.
//!
//! Running it (`make payload` writes `out/nwd-payload.bin`):
//! - under TF-A + Hafnium on QEMU `virt`: build TF-A (`PLAT=qemu`, SPMD with Hafnium at
//!   S-EL2, the partition in `SP_LAYOUT_FILE`) with `BL33=out/nwd-payload.bin`; BL31 enters it
//!   at NS-EL2 at 0x6000_0000 and its lines follow the firmware's on UART0;
//! - alone (no FF-A, so it stops after `FFA_VERSION`):
//!   `qemu-system-aarch64 -M virt,virtualization=on -cpu max -m 1G -nographic -net none
//!   -device loader,file=out/nwd-payload.bin,addr=0x60000000,cpu-num=0`
//!   (`tests/tests/qemu_payload.rs` boots it this way and from an EL3 stand-in).
#![cfg_attr(not(test), no_std)]
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

pub mod concurrent;
pub mod conformance;
pub mod fdt;
pub mod flow;
pub mod machine;
pub mod pages;
pub mod quality;
pub mod report;

include!("layout.rs");

/// First line the payload prints.
pub const BANNER: &str = concat!(
    "nwd-payload ",
    env!("CARGO_PKG_VERSION"),
    ": virtio-msg FF-A normal-world test payload"
);
