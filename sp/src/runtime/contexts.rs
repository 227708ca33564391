//! The secondary execution contexts of an MP partition (one per CPU; the manifest's
//! `execution-ctx-count` above 1), as Hafnium starts them.
//!
//! The primary context registers [`secondary_entry`] with `FFA_SECONDARY_EP_REGISTER` while it
//! boots ([`register`]). When the normal world powers CPU `k` on, Hafnium starts the
//! partition's context `k` there (`vcpu_bootstrap`): at that address, with the MMU and caches
//! off, x0 = 0 and x4 = the CPU's linear index (`PHYS_CORE_IDX_GP_REG`). The entry switches the
//! MMU on with aarch64-rt's initial table, takes stack `k - 1` of [`STACKS`], sets the
//! exception vectors and calls [`secondary_main`], which moves to the runtime stage-1 tables
//! the primary built (their TTBR0 value, recorded by [`note_runtime_tables`]) and runs the
//! message loop on the partition the primary made ([`startup::ContextEntry`]), with a conduit
//! over the partition's one RX/TX pair — whose every use is serialised by the partition's
//! `ffa::bus::Mailbox`.
//!
//! The contexts share the stage-1 tables: the mapper invalidates with inner-shareable TLB
//! maintenance (aarch64-paging's `tlbi vaae1is`), which reaches every CPU.

use core::{
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use aarch64_cpu::registers::{Readable, TTBR0_EL1};
use ffa::{Ffa, arch::smc::SmcConduit};

use super::stop;
use crate::{
    layout,
    startup::{ContextEntry, StartError},
};

/// Secondary contexts the image has stacks for.
pub const SECONDARIES: usize = layout::SECONDARY_STACKS;

/// A secondary context's stack with its guard page below it, which the runtime tables leave
/// unmapped ([`crate::layout::Layout::secondary_slots`]): an overflow faults there instead of
/// running into what lies below (the boot stack, or the previous context's stack).
#[repr(C, align(4096))]
struct GuardedStack {
    guard: [u8; layout::STACK_GUARD_BYTES],
    stack: [u8; layout::SECONDARY_STACK_BYTES],
}

const _: () = assert!(size_of::<GuardedStack>() == layout::SECONDARY_SLOT_BYTES);

/// The secondary contexts' stacks, alone in `.stack.secondary`, in the NOLOAD `.stack` beside
/// the boot stack (`sp/qemu/sp.ld`; `runtime::linker` reads where from the symbols around it):
/// outside .bss, so the boot does not zero them (nothing reads a stack before writing it).
/// Only [`secondary_entry`] names it.
#[unsafe(link_section = ".stack.secondary")]
static mut STACKS: [GuardedStack; SECONDARIES] = [const {
    GuardedStack {
        guard: [0; layout::STACK_GUARD_BYTES],
        stack: [0; layout::SECONDARY_STACK_BYTES],
    }
}; SECONDARIES];

/// What each secondary context runs (set once, by [`register`]).
static ENTRY: spin::Once<ContextEntry<SmcConduit>> = spin::Once::new();

/// The partition's RX/TX buffers: (RX address, TX address, size), set with the primary's
/// conduit ([`note_buffers`]).
static BUFFERS: spin::Once<(usize, usize, usize)> = spin::Once::new();

/// TTBR0_EL1 with the runtime tables active (0 until [`note_runtime_tables`]).
static RUNTIME_TTBR0: AtomicU64 = AtomicU64::new(0);

/// Records the TTBR0 value of the runtime tables, which the primary has just activated.
pub fn note_runtime_tables() {
    RUNTIME_TTBR0.store(TTBR0_EL1.get(), Ordering::Release);
}

/// Records the RX/TX buffers the primary's conduit works over.
pub fn note_buffers(conduit: &SmcConduit) {
    let (tx, rx, pages) = conduit.buffer_addresses();
    let to_usize = |a: u64| usize::try_from(a).unwrap_or(0);
    let len = usize::try_from(pages).unwrap_or(0).saturating_mul(4096);
    BUFFERS.call_once(|| (to_usize(rx), to_usize(tx), len));
}

/// Registers [`secondary_entry`] with `FFA_SECONDARY_EP_REGISTER` for contexts 1..`count`,
/// which will run `entry`.
pub fn register(
    ffa: &mut Ffa<SmcConduit>,
    count: u16,
    entry: ContextEntry<SmcConduit>,
) -> Result<(), StartError> {
    if usize::from(count) > SECONDARIES + 1 {
        return Err(StartError::fatal(
            "contexts",
            format_args!(
                "execution-ctx-count {count}: the image has stacks for {}",
                SECONDARIES + 1
            ),
        ));
    }
    if RUNTIME_TTBR0.load(Ordering::Acquire) == 0 || BUFFERS.get().is_none() {
        return Err(StartError::fatal(
            "contexts",
            "no runtime tables or RX/TX buffers to share",
        ));
    }
    ENTRY.call_once(|| entry);
    let address = (secondary_entry as *const ()).addr() as u64;
    ffa.secondary_ep_register(address)
        .map_err(|e| StartError::fatal("ffa", format_args!("FFA_SECONDARY_EP_REGISTER: {e}")))?;
    Ok(())
}

/// Where Hafnium starts a secondary context (see the module docs): MMU on with the initial
/// table (aarch64-rt's `enable_mmu`, which clobbers x8–x11 and x30), floating point enabled,
/// the context's stack, the exception vectors; then [`secondary_main`] with the CPU index.
/// A CPU index the image has no stack for (0, or above [`SECONDARIES`]) parks the CPU.
///
/// # Safety
///
/// Entered by the SPMC only, as described, with the initial table valid (it is a static).
#[unsafe(naked)]
unsafe extern "C" fn secondary_entry() -> ! {
    core::arch::naked_asm!(
        "mov x19, x4",
        "bl enable_mmu",
        "mrs x30, cpacr_el1",
        "orr x30, x30, #(0x3 << 20)",
        "msr cpacr_el1, x30",
        "isb",
        // Stack k - 1 for CPU k, whose top is the end of slot k - 1: STACKS + k * slot size;
        // x19 = 0 wraps and is refused too.
        "sub x20, x19, #1",
        "cmp x20, #{secondaries}",
        "b.hs 2f",
        "adrp x21, {stacks}",
        "add x21, x21, :lo12:{stacks}",
        "add x20, x20, #1",
        "mov x22, #{slot_bytes}",
        "madd x21, x20, x22, x21",
        "mov sp, x21",
        "bl {set_vectors}",
        "mov x0, x19",
        "b {main}",
        "2:",
        "wfi",
        "b 2b",
        secondaries = const SECONDARIES,
        slot_bytes = const layout::SECONDARY_SLOT_BYTES,
        stacks = sym STACKS,
        set_vectors = sym aarch64_rt::set_exception_vector,
        main = sym secondary_main,
    )
}

/// A secondary context's Rust entry (see [`secondary_entry`]): switches to the runtime tables
/// and runs the message loop; stops the partition if it ends.
extern "C" fn secondary_main(cpu: u64) -> ! {
    let ttbr0 = RUNTIME_TTBR0.load(Ordering::Acquire);
    // SAFETY: the runtime tables map everything this context uses (image, its stack, heap,
    // the tables themselves) at the same addresses with the same memory types as the initial
    // table it runs on now, and they are never freed (the primary leaked them); `ttbr0` is
    // the primary's value with them active.
    unsafe { crate::mmu::join(ttbr0) };
    let (Some(entry), Some(&(rx, tx, len))) = (ENTRY.get(), BUFFERS.get()) else {
        stop::fatal(format_args!(
            "context {cpu}: started before it was registered"
        ))
    };
    let (Some(rx), Some(tx)) = (
        NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(rx)),
        NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(tx)),
    ) else {
        stop::fatal(format_args!("context {cpu}: no RX/TX buffers"))
    };
    // SAFETY: the partition's RX/TX buffers (mapped as for the primary); every context's use
    // of them is serialised by the partition's mailbox lock (`ffa::bus::Mailbox`), and the
    // SPMC writes RX only while a call that asked for it is in progress.
    let conduit = unsafe { SmcConduit::new(rx, tx, len) };
    log::info!("context {cpu}: entering the message loop (FFA_MSG_WAIT)");
    entry(conduit);
    stop::fatal(format_args!("context {cpu}: message loop ended"))
}
