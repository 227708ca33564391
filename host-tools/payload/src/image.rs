//! The EL2 runtime of the payload image (only built for `aarch64-unknown-none`).
//!
//! Boot: TF-A (or QEMU's loader) enters the first byte of the image at NS-EL2 with the MMU and
//! caches off. aarch64-rt's entry code switches on the [initial page table](mmu) first (so
//! atomics, locks and the allocator work), clears .bss, sets the stack and the [exception
//! vectors](exceptions) (VBAR_EL2) and calls [`main`], which lets EL2 use FP/SIMD, starts the
//! [heap] and the [console], runs the checks ([`nwd_payload::flow::run`]) on this
//! [machine](platform::Payload), and powers off with PSCI `SYSTEM_OFF`. For the concurrent
//! test the [secondary CPUs](smp) are started with PSCI `CPU_ON` on stacks of their own, run
//! their share and power themselves off.

mod clock;
mod conduit;
mod console;
mod exceptions;
mod fp;
mod heap;
mod linker;
mod mmu;
mod platform;
mod power;
mod smp;

use fp::allow_fp_at_el2;
use power::power_off;

use core::panic::PanicInfo;

use nwd_payload::STACK_PAGES;

aarch64_rt::entry!(main, STACK_PAGES);
aarch64_rt::initial_pagetable!(mmu::initial_pagetable());

/// Entered from aarch64-rt's entry code with the MMU and caches on.
fn main(_x0: u64, _x1: u64, _x2: u64, _x3: u64) -> ! {
    // Nothing before this point uses FP/SIMD registers; everything after may (the target has
    // NEON, and the compiler uses it for copies).
    allow_fp_at_el2();
    run()
}

#[inline(never)]
fn run() -> ! {
    heap::init();
    console::init();
    let Some(mut machine) = platform::Payload::new() else {
        console::emergency(format_args!("FAIL payload: driver memory window unusable"));
        power_off()
    };
    let summary = nwd_payload::flow::run(&mut machine, console::Console);
    log::debug!("run ended: {summary}");
    power_off()
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    console::emergency(format_args!("PANIC {info}"));
    console::emergency(format_args!("FAIL payload: panicked, no result line"));
    power_off()
}
