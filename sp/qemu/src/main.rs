//! The virtio-msg secure partition for Hafnium on QEMU `virt`: an S-EL1 image entered by the
//! SPMC per the FF-A boot protocol (MMU off, x0 = boot-info blob whose FDT is the manifest).
//!
//! Thin on purpose: the entry point, the platform constants and the panic handler. The runtime
//! is `sp::runtime`, the start-up `sp::startup`. Host builds (`cargo test --workspace`) compile
//! an empty stub.
#![cfg_attr(target_os = "none", no_std, no_main)]
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

/// Host stub: the SP only runs on `aarch64-unknown-none`.
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod image {
    use sp::runtime::{self, Platform};
    use sp_qemu::{LOAD_ADDRESS, MEM_SIZE, STACK_PAGES, UART0_BASE};

    aarch64_rt::entry!(main, STACK_PAGES);
    sp::initial_pagetable!(LOAD_ADDRESS, MEM_SIZE);
    sp::panic_handler!();

    /// What the runtime needs to know about QEMU `virt`.
    const PLATFORM: Platform = Platform {
        uart_base: UART0_BASE,
    };

    /// Entered from aarch64-rt's entry code with the MMU on (initial page table) and x0..x3
    /// as the SPMC left them: x0 is the boot-info address (`gp-register-num = <0>`).
    fn main(x0: u64, _x1: u64, _x2: u64, _x3: u64) -> ! {
        runtime::main(&PLATFORM, x0)
    }
}
