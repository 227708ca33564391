//! The aarch64 S-EL1 runtime of the secure partition (only built for `aarch64-unknown-none`).
//!
//! Boot, as Hafnium runs an S-EL1 partition: entered at the image's first instruction with the
//! MMU and caches off and x0 = the boot-info blob (whose FDT descriptor points at the manifest).
//! aarch64-rt's entry code switches on the [initial page table](mmu::initial_pagetable) first,
//! then clears .bss, sets the stack and the [exception vectors](exceptions), and calls the
//! binary's `main`, which calls [`init`]:
//!
//! 1. heap ([`heap`]) and logger ([`console`]; lines are held until the console is known);
//! 2. boot info and manifest ([`bootinfo`]): RX/TX buffers from `rx_tx-info`;
//! 3. the runtime stage-1 tables ([`mmu::StageOneMapper`]), switched on;
//! 4. the [self-test](selftest);
//! 5. `FFA_VERSION(1.2)`, the first FF-A call. No answer (SMCCC NOT_SUPPORTED, or an undefined
//!    `SMC`) means no SPMC: that is said on the PL011 and the partition stops. Otherwise the
//!    console becomes `FFA_CONSOLE_LOG`, then `FFA_ID_GET`, `FFA_RXTX_MAP` (only if the manifest
//!    has no `rx_tx-info`), and the entropy source is picked ([`entropy`]).
//!
//! [`stop`] ends the partition on any fatal error: with an SPMC it answers `FFA_ERROR`
//! (ABORTED), which ends the init run or refuses the message being handled; without one it
//! tries PSCI `SYSTEM_OFF` and then waits for interrupts forever.

pub mod bootinfo;
pub mod conduit;
pub mod console;
pub mod entropy;
pub mod exceptions;
pub mod heap;
pub mod linker;
pub mod mmu;
pub mod panic;
pub mod selftest;

use core::{
    arch::asm,
    ptr::NonNull,
    sync::atomic::{AtomicU8, Ordering},
};

use ffa::{
    Ffa,
    arm_ffa::{FfaError, Interface, Version, interface_args::TargetInfo},
};

pub use conduit::SmcConduit;
pub use entropy::Entropy;
pub use mmu::StageOneMapper;

/// What the runtime needs to know about the platform.
#[derive(Clone, Copy, Debug)]
pub struct Platform {
    /// Base of the PL011 used as console when no SPMC answers (QEMU `virt`: UART0).
    pub uart_base: u64,
}

/// The partition after [`init`]: FF-A negotiated, buffers registered, stage-1 mapper ready.
pub struct Runtime {
    /// FF-A over `smc`, negotiated at 1.2.
    pub ffa: Ffa<SmcConduit>,
    /// Maps retrieved normal-world memory.
    pub mapper: StageOneMapper,
    /// This partition's endpoint id (`FFA_ID_GET`).
    pub own_id: u16,
    /// The entropy source for the rng device, if any.
    pub entropy: Option<Entropy>,
}

const SPMC_UNKNOWN: u8 = 0;
const SPMC_PRESENT: u8 = 1;
const SPMC_ABSENT: u8 = 2;
const SPMC_RUNNING: u8 = 3;

/// What is known of the SPMC (decides how [`stop`] ends the partition).
static SPMC: AtomicU8 = AtomicU8::new(SPMC_UNKNOWN);

/// Records what an emergency `FFA_VERSION` probe found ([`console::emergency`] before `init`
/// got that far), unless something is already known.
pub(crate) fn note_spmc(present: bool) {
    let state = if present { SPMC_PRESENT } else { SPMC_ABSENT };
    let _ = SPMC.compare_exchange(SPMC_UNKNOWN, state, Ordering::AcqRel, Ordering::Acquire);
}

/// Records that the partition leaves init (its next FF-A call is the first `FFA_MSG_WAIT`).
pub fn mark_running() {
    SPMC.store(SPMC_RUNNING, Ordering::Release);
}

/// Brings the partition up (see the module docs) and returns it ready for the message loop.
/// Never returns on failure: it reports and [`stop`]s.
pub fn init(platform: &Platform, boot_info: u64) -> Runtime {
    let layout = linker::layout();
    // SAFETY: the heap range is the part of the partition's window after the stack, mapped
    // read-write normal memory by the initial table (and later by the runtime tables), used by
    // nothing else; `init` runs once.
    unsafe { heap::init(layout.heap.clone()) };
    let uart_base = usize::try_from(platform.uart_base).unwrap_or(0);
    console::init(uart_base);
    log::info!(
        "mmu: on (initial table, caches on); image {:#x}..{:#x}, window {:#x}..{:#x}",
        layout.text.start,
        layout.data.end,
        layout.window.start,
        layout.window.end
    );
    log::info!(
        "heap: {} KiB at {:#x}",
        layout.heap.len() / 1024,
        layout.heap.start
    );

    let manifest = match bootinfo::read(boot_info, &layout) {
        Ok(m) => {
            log::info!(
                "boot info: v{}.{}, manifest {} bytes, ffa-version {:#x}, rx_tx-info {}",
                m.boot_info_version.0,
                m.boot_info_version.1,
                m.fdt_len,
                m.ffa_version.unwrap_or(0),
                if m.rxtx.is_some() { "yes" } else { "no" }
            );
            Some(m)
        }
        Err(e) => {
            log::warn!("boot info: {e}; using built-in RX/TX buffers");
            None
        }
    };
    let rxtx = manifest.as_ref().and_then(|m| m.rxtx.clone());

    let mut mapper = match StageOneMapper::new(&layout, uart_base, rxtx.as_ref()) {
        Ok(m) => m,
        Err(e) => fatal(format_args!("mmu: runtime tables: {e}")),
    };
    log::info!(
        "mmu: runtime tables active (text RX, rodata RO, data/stack/heap RW XN, stack guard {:#x})",
        layout.stack_guard.start
    );

    if let Err(e) = selftest::run(&mut mapper) {
        fatal(format_args!("selftest: FAILED: {e}"));
    }

    // The RX/TX buffers: the manifest's (already mapped by the SPMC) or our own.
    let conduit = match &rxtx {
        Some(b) => match (
            NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(b.rx.start)),
            NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(b.tx.start)),
        ) {
            // SAFETY: the manifest regions were checked to be page-aligned, of equal size,
            // disjoint from each other and from the image; the runtime tables map RX read-only
            // and TX read-write; nothing else in the partition uses them.
            (Some(rx), Some(tx)) => Some(unsafe { SmcConduit::new(rx, tx, b.rx.len()) }),
            _ => None,
        },
        None => None,
    };
    let map_buffers = conduit.is_none();
    let Some(conduit) = conduit.or_else(conduit::with_static_buffers) else {
        fatal(format_args!("rx/tx: no buffers"));
    };
    let mut ffa = Ffa::new(conduit);

    // FFA_VERSION: the first FF-A call of the partition.
    match ffa.version(ffa::FFA_VERSION) {
        Ok(spmc) => {
            SPMC.store(SPMC_PRESENT, Ordering::Release);
            console::use_ffa();
            let agreed = ffa.negotiated();
            log::info!(
                "ffa: SPMC speaks FF-A {}.{}, using {}.{}",
                spmc.0,
                spmc.1,
                agreed.0,
                agreed.1
            );
            if agreed < Version(1, 2) {
                fatal(format_args!("ffa: FF-A 1.2 is needed"));
            }
        }
        Err(e) => {
            SPMC.store(SPMC_ABSENT, Ordering::Release);
            console::use_uart();
            let how = if exceptions::smc_undefined() {
                "SMC is undefined: no EL3"
            } else {
                "SMCCC NOT_SUPPORTED"
            };
            log::error!("no SPMC answered FFA_VERSION ({how}; {e})");
            stop();
        }
    }

    let own_id = match ffa.id_get() {
        Ok(id) => id,
        Err(e) => fatal(format_args!("ffa: FFA_ID_GET: {e}")),
    };
    if map_buffers {
        let (tx, rx, pages) = ffa.conduit().buffer_addresses();
        if let Err(e) = ffa.rxtx_map(tx, rx, pages) {
            fatal(format_args!("ffa: FFA_RXTX_MAP: {e}"));
        }
        log::info!("ffa: RX/TX mapped with FFA_RXTX_MAP (rx {rx:#x}, tx {tx:#x})");
    } else if let Some(b) = &rxtx {
        log::info!(
            "ffa: RX/TX from the manifest (rx {:#x}, tx {:#x}, {} bytes)",
            b.rx.start,
            b.tx.start,
            b.rx.len()
        );
    }
    let entropy = Entropy::detect();
    log::info!(
        "partition {own_id:#x} initialised; entropy: {}",
        match entropy {
            Some(Entropy::Rndr) => "RNDR",
            Some(Entropy::Trng) => "SMCCC TRNG",
            None => "none (no rng device)",
        }
    );
    Runtime {
        ffa,
        mapper,
        own_id,
        entropy,
    }
}

/// Logs `args` as an error and stops the partition.
pub fn fatal(args: core::fmt::Arguments) -> ! {
    console::emergency(format_args!("ERROR {args}"));
    stop()
}

/// Stops the partition for good.
///
/// With an SPMC: answers `FFA_ERROR(ABORTED)` (ending the init run, or refusing the message
/// being handled), again for every message the SPMC still delivers, until the SPMC refuses
/// that too; then waits for interrupts. Without one: PSCI `SYSTEM_OFF`, then waits for
/// interrupts.
pub fn stop() -> ! {
    match SPMC.load(Ordering::Acquire) {
        SPMC_PRESENT | SPMC_RUNNING => {
            console::emergency(format_args!("ERROR stopped: answering FFA_ERROR(ABORTED)"));
            let mut regs = [0u64; 18];
            Interface::Error {
                target_info: TargetInfo::default(),
                error_code: FfaError::Aborted,
                error_arg: 0,
                is_32bit: true,
            }
            .to_regs(ffa::FFA_VERSION, &mut regs);
            loop {
                let answer = conduit::smc(regs);
                let fid = conduit::low32(answer[0]);
                // FFA_ERROR or SMCCC NOT_SUPPORTED back: the SPMC will not take it.
                if fid == 0x8400_0060 || fid == u32::MAX {
                    break;
                }
            }
        }
        _ => {
            console::emergency(format_args!("INFO  stopped"));
            // PSCI SYSTEM_OFF; with no firmware it returns (or is undefined and returns -1).
            let mut regs = [0u64; 18];
            if let Some(x0) = regs.first_mut() {
                *x0 = 0x8400_0008;
            }
            let _ = conduit::smc(regs);
        }
    }
    halt()
}

/// Waits for interrupts forever (they are masked, so this only ever parks the CPU).
pub fn halt() -> ! {
    loop {
        // SAFETY: WFI only waits.
        unsafe { asm!("wfi", options(nomem, nostack, preserves_flags)) };
    }
}
