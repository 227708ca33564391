//! The aarch64 S-EL1 runtime of the secure partition (only built for `aarch64-unknown-none`):
//! the image's side of [`crate::startup`].
//!
//! Boot, as Hafnium runs an S-EL1 partition: entered at the image's first instruction with the
//! MMU and caches off and x0 = the boot-info blob (whose FDT descriptor points at the manifest).
//! aarch64-rt's entry code switches on the [initial page table](initial_pagetable!) first, then
//! clears .bss, sets the stack and the [exception vectors](exceptions), and calls the binary's
//! `main`, which calls [`main`]: heap ([`heap`]) and logger ([`console`]; lines are held until
//! the console is known), then [`startup::start`] on this [`Image`]:
//!
//! - boot info and manifest from the package head ([`crate::bootinfo`]);
//! - the runtime stage-1 tables ([`StageOneMapper`]), switched on, and the
//!   [self-test](selftest);
//! - the RX/TX buffers: the manifest's, or two static pages registered with `FFA_RXTX_MAP`;
//! - the console: `FFA_CONSOLE_LOG` with an SPMC, the PL011 without;
//! - entropy: `RNDR`, else SMCCC TRNG ([`crate::entropy`]).
//!
//! [`stop::stop`] ends the partition on any fatal error: with an SPMC it answers `FFA_ERROR`
//! (ABORTED), which ends the init run or refuses the message being handled; without one it
//! tries PSCI `SYSTEM_OFF` and then waits for interrupts forever.

pub mod console;
pub mod contexts;
pub mod exceptions;
pub mod heap;
pub mod linker;
pub mod panic;
pub mod selftest;
pub mod spmc;
pub mod stop;

use core::{
    ptr::NonNull,
    sync::atomic::{AtomicBool, Ordering},
};

use ffa::{
    arch::smc::{SmcCalls, SmcConduit},
    bus::BusConfig,
};

use crate::{
    bootinfo::{self, BootInfoError, Manifest, RxTxRegions},
    entropy::Entropy,
    layout::Layout,
    mmu::{InitialTable, StageOneMapper},
    startup::{self, Buffers, StartError},
};

/// What the runtime needs to know about the platform.
#[derive(Clone, Copy, Debug)]
pub struct Platform {
    /// Base of the PL011 used as console when no SPMC answers (QEMU `virt`: UART0).
    pub uart_base: u64,
}

/// The initial page table the entry code switches on before any Rust code runs (see
/// [`crate::mmu::initial_table`]).
pub const fn initial_pagetable(window_start: u64, window_size: u64) -> InitialTable {
    crate::mmu::initial_table(window_start, window_size)
}

/// TCR_EL1 while the initial table is active: aarch64-rt's default with the 4 GiB VA space of
/// the initial table ([`crate::mmu::INITIAL_T0SZ`]).
pub const INITIAL_TCR: u64 = (aarch64_rt::DEFAULT_TCR_EL1 & !0x3f) | crate::mmu::INITIAL_T0SZ;

/// Defines the image's initial page table for the window `[$start, $start + $size)` and the
/// `enable_mmu` routine aarch64-rt's entry code calls first (the binary invokes this once):
/// as `aarch64_rt::initial_pagetable!`, but with the 4-entry table of
/// [`crate::mmu::initial_table`] under [`INITIAL_TCR`] instead of a 4 KiB one. The table goes
/// to the section `.rodata.initial_pagetable`, which the linker script must put at the start
/// of a page (`enable_mmu` takes its address with `adrp`; the script checks it).
#[macro_export]
macro_rules! initial_pagetable {
    ($start:expr, $size:expr) => {
        #[unsafe(link_section = ".rodata.initial_pagetable")]
        #[unsafe(export_name = "initial_pagetable")]
        static INITIAL_PAGETABLE: $crate::mmu::InitialTable =
            $crate::runtime::initial_pagetable($start, $size);

        aarch64_rt::enable_mmu!(
            INITIAL_PAGETABLE,
            aarch64_rt::DEFAULT_MAIR,
            aarch64_rt::DEFAULT_SCTLR,
            $crate::runtime::INITIAL_TCR
        );
    };
}

/// The partition image as a [`startup::Platform`].
pub struct Image {
    layout: Layout,
    uart_base: usize,
    boot_info: u64,
}

impl startup::Platform for Image {
    type Conduit = SmcConduit;
    type Mapper = &'static mut StageOneMapper;
    type Entropy = Entropy<SmcCalls>;

    fn boot_info(&mut self) -> Result<Manifest, BootInfoError> {
        let head = &self.layout.package_head;
        // SAFETY: the package head is mapped read-only by the initial and the runtime tables
        // and never written while the partition runs.
        let bytes = unsafe {
            core::slice::from_raw_parts(
                core::ptr::with_exposed_provenance::<u8>(head.start),
                head.len(),
            )
        };
        bootinfo::parse(bytes, self.boot_info, &self.layout)
    }

    fn memory(
        &mut self,
        rxtx: Option<&RxTxRegions>,
    ) -> Result<&'static mut StageOneMapper, StartError> {
        let mapper = StageOneMapper::build(&self.layout, self.uart_base, rxtx)
            .map_err(|e| StartError::fatal("mmu", format_args!("runtime tables: {e}")))?;
        // Live page tables must never be dropped (aarch64-paging panics if they are): whatever
        // start-up does with the mapper, the tables stay where they are.
        let mapper = alloc::boxed::Box::leak(alloc::boxed::Box::new(mapper));
        // SAFETY: the runtime tables map everything the program uses (image, stack, heap, the
        // memory the page tables themselves are in) at the same addresses with the same memory
        // type as the initial table, and they are leaked above, so never dropped.
        unsafe { mapper.activate() };
        contexts::note_runtime_tables();
        log::info!(
            "mmu: runtime tables active (text RX, rodata RO, data/stack/heap RW XN, stack guard {:#x})",
            self.layout.stack_guard.start
        );
        selftest::run(mapper)
            .map_err(|e| StartError::fatal("selftest", format_args!("FAILED: {e}")))?;
        Ok(mapper)
    }

    fn conduit(&mut self, rxtx: Option<&RxTxRegions>) -> Option<(SmcConduit, Buffers)> {
        if let Some(b) = rxtx {
            let rx = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(b.rx.start))?;
            let tx = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(b.tx.start))?;
            // SAFETY: the manifest regions were checked to be page-aligned, of equal size,
            // disjoint from each other and from the image; the runtime tables map RX read-only
            // and TX read-write; nothing else in the partition uses them.
            let conduit = unsafe { SmcConduit::new(rx, tx, b.rx.len()) };
            contexts::note_buffers(&conduit);
            return Some((conduit, Buffers::Manifest));
        }
        let conduit = with_static_buffers()?;
        contexts::note_buffers(&conduit);
        let (tx, rx, pages) = conduit.buffer_addresses();
        Some((conduit, Buffers::Own { tx, rx, pages }))
    }

    fn console(&mut self, spmc: bool) {
        spmc::set_present(spmc);
        if spmc {
            console::use_ffa();
        } else {
            console::use_uart();
        }
    }

    fn no_spmc_reason(&self) -> &'static str {
        if exceptions::smc_undefined() {
            "SMC is undefined: no EL3"
        } else {
            "SMCCC NOT_SUPPORTED"
        }
    }

    fn entropy(&mut self) -> Option<(Entropy<SmcCalls>, &'static str)> {
        Entropy::detect(SmcCalls).map(|e| {
            let name = e.name();
            (e, name)
        })
    }

    fn start_contexts(
        &mut self,
        ffa: &mut ffa::Ffa<SmcConduit>,
        count: u16,
        entry: startup::ContextEntry<SmcConduit>,
    ) -> Result<(), StartError> {
        contexts::register(ffa, count, entry)
    }

    fn running(&mut self) {
        spmc::set_running();
    }
}

/// Size of each static RX/TX buffer: one FF-A page.
const STATIC_BUFFER_SIZE: usize = 4096;
const _: () = assert!(STATIC_BUFFER_SIZE as u64 == ffa::memory::PAGE_SIZE);

#[repr(C, align(4096))]
struct Page([u8; STATIC_BUFFER_SIZE]);

static mut STATIC_RX: Page = Page([0; STATIC_BUFFER_SIZE]);
static mut STATIC_TX: Page = Page([0; STATIC_BUFFER_SIZE]);
static STATIC_TAKEN: AtomicBool = AtomicBool::new(false);

/// A conduit over the image's own static 4 KiB buffers, to be registered with `FFA_RXTX_MAP`.
/// `None` if they are already taken.
fn with_static_buffers() -> Option<SmcConduit> {
    if STATIC_TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    let rx = NonNull::new((&raw mut STATIC_RX).cast::<u8>())?;
    let tx = NonNull::new((&raw mut STATIC_TX).cast::<u8>())?;
    // SAFETY: the statics are page-aligned .bss pages, mapped read-write; the flag above makes
    // this the only conduit that ever owns them.
    Some(unsafe { SmcConduit::new(rx, tx, STATIC_BUFFER_SIZE) })
}

/// Brings the partition up on this image and runs it; never returns (see the module docs).
pub fn main(platform: &Platform, boot_info: u64) -> ! {
    // SAFETY: the first thing the partition does: nothing has used .data yet, and the initial
    // table maps the whole window read-write.
    unsafe { linker::copy_data() };
    let layout = linker::layout();
    // SAFETY: the heap range is the part of the partition's window after the stack, mapped
    // read-write normal memory by the initial table (and later by the runtime tables), used by
    // nothing else; `main` runs once.
    unsafe { heap::init(layout.heap.clone()) };
    let uart_base = usize::try_from(platform.uart_base).unwrap_or(0);
    console::init(uart_base);
    log::info!(
        "mmu: on (initial table, caches on); image {:#x}..{:#x}, window {:#x}..{:#x}; \
         heap {} KiB at {:#x}",
        layout.text.start,
        layout.data.end,
        layout.window.start,
        layout.window.end,
        layout.heap.len() / 1024,
        layout.heap.start
    );
    let mut image = Image {
        layout,
        uart_base,
        boot_info,
    };
    match startup::start(&mut image, BusConfig::default()) {
        StartError::NoSpmc => stop::stop(),
        e => stop::fatal(format_args!("{e}")),
    }
}
