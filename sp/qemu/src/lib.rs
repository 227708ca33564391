//! Platform constants of the virtio-msg SP image for Hafnium on QEMU `virt`.
//!
//! The binary (`src/main.rs`) is the SP itself; this library only exports its layout so that
//! host tests can check the manifests against it.
#![no_std]
// No panic path (as in `sp`): a panic in the secure world stops the partition for every VM.
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

include!("layout.rs");

// `sp::mmu::initial_table` maps nothing for an empty window, one that wraps the address
// space, or the part of one above 4 GiB (its VA space): such a layout fails the build instead
// of an image that faults at its first fetch.
const _: () = assert!(
    MEM_SIZE > 0
        && match LOAD_ADDRESS.checked_add(MEM_SIZE) {
            Some(end) => end <= 1 << 32,
            None => false,
        }
);
