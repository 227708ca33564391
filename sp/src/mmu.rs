//! Stage-1 translation for the partition (EL1&0 regime, 4 KiB granule, 39-bit VA).
//!
//! Two tables, in order:
//! 1. [`initial_table`]: a static level-1 table that the entry code switches on before any
//!    Rust code runs (so before any atomic, lock or allocation): the 1 GiB block(s) holding the
//!    partition's window as normal write-back memory. Its entries are non-global and used with
//!    ASID 0. It covers the low 4 GiB only ([`INITIAL_T0SZ`]), so it is 4 entries (64 bytes of
//!    the image with their alignment) where a 39-bit table would be a 4 KiB page of 512, 508
//!    of them zero; the window must lie below 4 GiB (the platform crate checks it at build
//!    time).
//! 2. The runtime tables ([`StageOneMapper::new`], built with `aarch64-paging` on the heap,
//!    ASID 1): the package head read-only, text read-only executable, rodata read-only, data
//!    and the stacks and heap read-write, a guard page below each stack unmapped, the RX/TX buffers,
//!    the PL011 as device memory, and a window where memory retrieved from the normal world is
//!    mapped on demand (non-secure, never executable).
//!
//! Switching from the first to the second changes the ASID, so no TLB entry of the initial
//! table can match a lookup afterwards; then TCR_EL1.T0SZ widens the VA space to 39 bits (the
//! runtime root has 512 entries: its first four, all the CPU walks before, translate the low
//! 4 GiB either way) and the TLBs are invalidated.

//!
//! The mapper builds on every target (the CPU accessors it needs are faked on the host, see
//! [`crate::arch`]), so map/unmap and the window accounting have host tests; only the accesses
//! to mapped normal-world memory need the real MMU.

use alloc::vec::Vec;
use core::ops::Range;

use aarch64_paging::{
    MapError as PagingError, Mapping,
    descriptor::{El1Attributes, PhysicalAddress, VirtualAddress},
    idmap::IdTranslation,
    paging::{Constraints, El1And0, MemoryRegion, VaRange},
};
use ffa::memory::{MapError, MemRange, NsMapper, PAGE_SIZE};

use crate::{arch, bootinfo::RxTxRegions, layout::Layout};

/// Size of a level-1 block.
const GIB: u64 = 1 << 30;
/// Level-1 block descriptor (VALID without TABLE_OR_PAGE): AttrIndx 1 (normal write-back in
/// aarch64-rt's default MAIR), inner shareable, access flag, non-global. Read-write and
/// executable at EL1.
const INITIAL_BLOCK_NORMAL: usize = El1Attributes::VALID
    .union(El1Attributes::ATTRIBUTE_INDEX_1)
    .union(El1Attributes::INNER_SHAREABLE)
    .union(El1Attributes::ACCESSED)
    .union(El1Attributes::NON_GLOBAL)
    .bits();

/// TCR_EL1.T0SZ while the initial table is active: a 32-bit (4 GiB) VA space, whose level-1
/// table has [`INITIAL_ENTRIES`] entries.
pub const INITIAL_T0SZ: u64 = 32;
/// Entries of the initial level-1 table (one per GiB of the 4 GiB VA space).
pub const INITIAL_ENTRIES: usize = 4;
/// TCR_EL1.T0SZ for the runtime tables: a 39-bit VA space (level-1 root of 512 entries).
pub const RUNTIME_T0SZ: u64 = 25;

/// Switches a secondary CPU, still on the initial table, to the runtime tables another CPU
/// [activated](StageOneMapper::activate) (`ttbr0`: that CPU's TTBR0_EL1), as `activate` does:
/// TTBR0, then the runtime VA size, then the initial table's entries out of the local TLB.
///
/// # Safety
///
/// `ttbr0` must be the value of a CPU on which the runtime tables are active, whose tables
/// are never freed, and they must map everything this CPU uses as its current table does.
pub unsafe fn join(ttbr0: u64) {
    arch::set_ttbr0_el1(ttbr0);
    leave_initial_table();
}

/// After TTBR0 points at the runtime tables: widens the VA space to theirs and drops the
/// initial table's entries from this CPU's TLB. Under the initial T0SZ the CPU walks only the
/// first four entries of the new root, which translate the low 4 GiB as they will under the
/// wider one; the initial table's entries are non-global and tagged with ASID 0, so none
/// matches a lookup with ASID 1 meanwhile.
fn leave_initial_table() {
    arch::set_t0sz_el1(RUNTIME_T0SZ);
    arch::tlb_invalidate_el1();
}

/// The initial level-1 table: 4 entries, aligned as a TTBR needs (64 bytes at least), and the
/// image's linker script puts it at the start of a page (the entry code finds it with `adrp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct InitialTable(pub [usize; INITIAL_ENTRIES]);

/// The entries of the initial level-1 table: the 1 GiB block(s) covering `[window_start,
/// window_start + window_size)`, identity-mapped as normal memory; nothing else. An empty
/// window, one that wraps the address space, or the part of one above 4 GiB maps nothing.
///
/// Device memory (the PL011) is not needed before the runtime tables replace this one.
pub const fn initial_table(window_start: u64, window_size: u64) -> InitialTable {
    let mut table = [0usize; INITIAL_ENTRIES];
    // The window's last byte.
    let last_byte = match window_size.checked_sub(1) {
        Some(extent) => window_start.checked_add(extent),
        None => None,
    };
    let Some(last_byte) = last_byte else {
        return InitialTable(table);
    };
    let last = last_byte / GIB;
    let mut gib = window_start / GIB;
    while gib <= last && gib < INITIAL_ENTRIES as u64 {
        // The const assertion below guarantees usize is 64 bits, so these casts are lossless;
        // `gib < INITIAL_ENTRIES` bounds the index (`get_mut` is not usable in a const fn).
        #[allow(clippy::cast_possible_truncation, clippy::indexing_slicing)]
        {
            // `gib < 4`: the product is below 2^32 and never saturates.
            table[gib as usize] = gib.saturating_mul(GIB) as usize | INITIAL_BLOCK_NORMAL;
        }
        // `gib < 4`: never saturates.
        gib = gib.saturating_add(1);
    }
    InitialTable(table)
}

const _: () = assert!(usize::BITS == 64);

/// ASID of the runtime tables (the initial table runs with ASID 0).
const RUNTIME_ASID: usize = 1;

/// First virtual address of the window where retrieved normal-world memory is mapped.
pub const NS_WINDOW_BASE: usize = 0x40_0000_0000;
/// Size of that window (256 MiB): the most normal-world memory mapped at once, all endpoints
/// together. It also bounds the heap the page tables for it can take: at most one level-3
/// table per 2 MiB of window (128 tables, 512 KiB) plus one level-2 table, whatever the
/// normal world shares (beyond it, `map` answers `NoSpace`).
pub const NS_WINDOW_SIZE: usize = 256 << 20;
/// Most mappings held at once in that window.
pub const MAX_NS_MAPPINGS: usize = 4096;
/// Highest physical address accepted for a normal-world range (48-bit PA).
const MAX_PA: u64 = 1 << 48;

/// Normal write-back, inner shareable, accessed, never executable at EL0.
const NORMAL: El1Attributes = El1Attributes::VALID
    .union(El1Attributes::ATTRIBUTE_INDEX_1)
    .union(El1Attributes::INNER_SHAREABLE)
    .union(El1Attributes::ACCESSED)
    .union(El1Attributes::UXN);
const TEXT: El1Attributes = NORMAL.union(El1Attributes::READ_ONLY);
const RODATA: El1Attributes = NORMAL
    .union(El1Attributes::READ_ONLY)
    .union(El1Attributes::PXN);
const DATA: El1Attributes = NORMAL.union(El1Attributes::PXN);
/// Device-nGnRE (AttrIndx 0), never executable.
const DEVICE: El1Attributes = El1Attributes::VALID
    .union(El1Attributes::ATTRIBUTE_INDEX_0)
    .union(El1Attributes::ACCESSED)
    .union(El1Attributes::UXN)
    .union(El1Attributes::PXN);
const NS_RW: El1Attributes = DATA.union(El1Attributes::NS);
const NS_RO: El1Attributes = NS_RW.union(El1Attributes::READ_ONLY);

/// One mapping in the normal-world window.
#[derive(Clone, Copy)]
struct NsMapping {
    /// Virtual base address.
    base: usize,
    /// Length in pages.
    pages: u32,
    writable: bool,
}

impl NsMapping {
    /// One past the mapping's last byte (`map` checked that it ends inside the window).
    fn end(&self) -> Option<usize> {
        let len = usize::try_from(u64::from(self.pages).checked_mul(PAGE_SIZE)?).ok()?;
        self.base.checked_add(len)
    }
}

/// Why the runtime tables could not be built.
#[derive(Clone, Debug)]
pub enum SetupError {
    /// `aarch64-paging` refused a region.
    Map {
        /// Which region.
        what: &'static str,
        /// The error.
        error: PagingError,
    },
}

impl core::fmt::Display for SetupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Map { what, error } => write!(f, "mapping {what}: {}", paging_error(error)),
        }
    }
}

/// What `aarch64-paging` refused, for the log: the kind of error, not its payload (the
/// callers log the addresses). Formatting the payload would put the crate's `Display` and
/// `Debug` of addresses, regions and descriptors in the image, 1.7 KiB of it.
fn paging_error(error: &PagingError) -> &'static str {
    match error {
        PagingError::AddressRange(_) => "virtual address out of range",
        PagingError::InvalidVirtualAddress(_) => "invalid virtual address",
        PagingError::RegionBackwards(_) => "region ends before it starts",
        PagingError::PteUpdateFault(_) => "page table entry update failed",
        PagingError::InvalidFlags(_) => "unsupported flags",
        PagingError::BreakBeforeMakeViolation(_) => "remap of a live region (break-before-make)",
    }
}

/// The partition's stage-1 tables, and [`NsMapper`] over them: normal-world memory is mapped
/// non-secure, never executable, read-write or read-only, at virtual addresses chosen in
/// [`NS_WINDOW_BASE`]`..+`[`NS_WINDOW_SIZE`], and unmapped again on request.
pub struct StageOneMapper {
    tables: Mapping<IdTranslation<El1Attributes>, El1And0>,
    /// Mappings in the normal-world window, sorted by virtual base address (at most
    /// [`MAX_NS_MAPPINGS`]; found by binary search, grown fallibly before a mapping is made).
    ns: Vec<NsMapping>,
}

impl StageOneMapper {
    /// Builds the runtime tables for `layout`, the PL011 at `uart_base` and the manifest's
    /// RX/TX buffers (if any); [`activate`](Self::activate) switches to them.
    ///
    /// In the image this runs while the initial table is active, after the heap is up (tables
    /// are allocated from it).
    pub fn build(
        layout: &Layout,
        uart_base: usize,
        rxtx: Option<&RxTxRegions>,
    ) -> Result<Self, SetupError> {
        let mut tables = Mapping::with_asid_and_va_range(
            IdTranslation::new(),
            RUNTIME_ASID,
            1,
            El1And0,
            VaRange::Lower,
        );
        let mut map = |what: &'static str, range: &Range<usize>, flags: El1Attributes| {
            if range.is_empty() {
                return Ok(());
            }
            tables
                .map_range(
                    &MemoryRegion::new(range.start, range.end),
                    PhysicalAddress(range.start),
                    flags,
                    Constraints::empty(),
                )
                .map_err(|error| SetupError::Map { what, error })
        };
        map("package head", &layout.package_head, RODATA)?;
        map("text", &layout.text, TEXT)?;
        map("rodata", &layout.rodata, RODATA)?;
        map("data", &layout.data, DATA)?;
        // The guard page below each stack stays unmapped.
        map("stack", &layout.stack, DATA)?;
        for (_guard, stack) in layout.secondary_slots() {
            map("secondary stack", &stack, DATA)?;
        }
        map("heap", &layout.heap, DATA)?;
        let uart_page = uart_base & !0xfff;
        // The top page of the address space is beyond the tables' range: refused, not wrapped
        // (a wrapped range would look empty and be skipped).
        let uart = uart_page
            .checked_add(0x1000)
            .map(|end| uart_page..end)
            .ok_or(SetupError::Map {
                what: "uart",
                error: PagingError::AddressRange(VirtualAddress(uart_page)),
            })?;
        map("uart", &uart, DEVICE)?;
        if let Some(rxtx) = rxtx {
            map("rx buffer", &rxtx.rx, RODATA)?;
            map("tx buffer", &rxtx.tx, DATA)?;
        }

        Ok(Self {
            tables,
            ns: Vec::new(),
        })
    }

    /// Switches this CPU to these tables, widens its VA space to theirs ([`RUNTIME_T0SZ`]), and
    /// drops the initial table's entries from the TLBs.
    ///
    /// # Safety
    ///
    /// The tables must map everything the program uses (image, stack, heap, the memory the
    /// page tables themselves are in) at the same addresses with the same memory type as the
    /// tables in use, and `self` must never be dropped (the runtime keeps it for the life of
    /// the partition).
    pub unsafe fn activate(&mut self) {
        // SAFETY: the caller's contract.
        unsafe {
            self.tables.activate();
        }
        leave_initial_table();
    }

    /// The first free range of `len` bytes in the normal-world window.
    fn find_free(&self, len: usize) -> Option<Range<usize>> {
        let mut candidate = NS_WINDOW_BASE;
        for mapping in &self.ns {
            if mapping.base.checked_sub(candidate)? >= len {
                break;
            }
            candidate = mapping.end()?;
        }
        let end = candidate.checked_add(len)?;
        (end <= NS_WINDOW_BASE + NS_WINDOW_SIZE).then_some(candidate..end)
    }

    /// The mapping holding `[addr, addr + len)`, if one does entirely.
    fn covering(&self, addr: u64, len: usize) -> Option<NsMapping> {
        let start = usize::try_from(addr).ok()?;
        let end = start.checked_add(len)?;
        // The last mapping that starts at or below `start`.
        let at = self
            .ns
            .partition_point(|m| m.base <= start)
            .checked_sub(1)?;
        let mapping = *self.ns.get(at)?;
        (end <= mapping.end()?).then_some(mapping)
    }

    /// The physical address and security of what `va` translates to for an EL1 read, as the
    /// MMU sees it (`AT S1E1R`): `Some((pa, non_secure))`, or `None` if it does not translate.
    pub fn translate(&self, va: usize) -> Option<(u64, bool)> {
        let par = arch::translate_el1_read(va);
        if par & arch::PAR_FAILED != 0 {
            return None;
        }
        let pa = (par & arch::PAR_PA_MASK) | (u64::try_from(va).ok()? & 0xfff);
        Some((pa, par & arch::PAR_NS != 0))
    }

    /// Number of normal-world mappings held.
    pub fn ns_mappings(&self) -> usize {
        self.ns.len()
    }
}

/// Heap a mapping of `len` bytes may take: one last-level table per 2 MiB it spans (plus one
/// for a range that straddles a boundary) and one next-level table. (The mapping list's room
/// is reserved fallibly before.)
fn map_heap_bytes(len: usize) -> usize {
    const TABLE: usize = 4096;
    const LAST_LEVEL_SPAN: usize = 2 * 1024 * 1024;
    // Cannot panic (`div_ceil`): LAST_LEVEL_SPAN is 2 MiB, not 0.
    len.div_ceil(LAST_LEVEL_SPAN)
        .saturating_add(2)
        .saturating_mul(TABLE)
}

impl NsMapper for StageOneMapper {
    fn map(&mut self, range: MemRange, writable: bool) -> Result<u64, MapError> {
        let pages = u64::from(range.page_count);
        let len = pages
            .checked_mul(PAGE_SIZE)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or(MapError::NoSpace)?;
        let pa_end = range
            .address
            .checked_add(pages * PAGE_SIZE)
            .ok_or(MapError::NoSpace)?;
        if pages == 0 || !range.address.is_multiple_of(PAGE_SIZE) || pa_end > MAX_PA {
            log::warn!(
                "refusing to map {} pages at {:#x}",
                range.page_count,
                range.address
            );
            return Err(MapError::NoSpace);
        }
        if self.ns.len() >= MAX_NS_MAPPINGS || self.ns.try_reserve(1).is_err() {
            return Err(MapError::NoSpace);
        }
        let va = self.find_free(len).ok_or(MapError::NoSpace)?;
        // aarch64-paging allocates the tables it needs (and aborts if it cannot): check the
        // heap has room for them first.
        if !crate::headroom::available(map_heap_bytes(len)) {
            log::warn!("no heap for the page tables of {len:#x} bytes: mapping refused");
            return Err(MapError::NoSpace);
        }
        let pa = usize::try_from(range.address).map_err(|_| MapError::NoSpace)?;
        let flags = if writable { NS_RW } else { NS_RO };
        self.tables
            .map_range(
                &MemoryRegion::new(va.start, va.end),
                PhysicalAddress(pa),
                flags,
                Constraints::empty(),
            )
            .map_err(|e| {
                log::warn!(
                    "stage-1 map of {len:#x} bytes at {pa:#x} to {:#x}: {}",
                    va.start,
                    paging_error(&e)
                );
                MapError::NoSpace
            })?;
        // `find_free` kept the list sorted: nothing starts inside `va`, so `at` is where it goes.
        let at = self.ns.partition_point(|m| m.base < va.start);
        self.ns.insert(
            at,
            NsMapping {
                base: va.start,
                pages: range.page_count,
                writable,
            },
        );
        u64::try_from(va.start).map_err(|_| MapError::NoSpace)
    }

    fn unmap(&mut self, base: u64, page_count: u32) {
        let Some(va) = usize::try_from(base).ok() else {
            return;
        };
        let at = match self.ns.binary_search_by_key(&va, |m| m.base) {
            Ok(at) if self.ns.get(at).is_some_and(|m| m.pages == page_count) => at,
            _ => {
                log::warn!("unmap of {page_count} pages at {base:#x}: no such mapping");
                return;
            }
        };
        // `map` checked that the mapping ends inside the window.
        let Some(end) = usize::try_from(u64::from(page_count) * PAGE_SIZE)
            .ok()
            .and_then(|len| va.checked_add(len))
        else {
            return;
        };
        // Mapping without VALID unmaps; aarch64-paging invalidates the TLB for a live table.
        match self.tables.map_range(
            &MemoryRegion::new(va, end),
            PhysicalAddress(0),
            El1Attributes::empty(),
            Constraints::empty(),
        ) {
            Ok(()) => {
                self.ns.remove(at);
            }
            Err(e) => log::error!("stage-1 unmap at {va:#x}: {}", paging_error(&e)),
        }
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MapError> {
        self.covering(addr, buf.len()).ok_or(MapError::NotMapped)?;
        let src = core::ptr::with_exposed_provenance::<u8>(
            usize::try_from(addr).map_err(|_| MapError::NotMapped)?,
        );
        // SAFETY: `[addr, addr + len)` lies inside one live mapping of retrieved memory
        // (checked above), mapped readable; the normal world may write it concurrently, so it
        // is read with volatile accesses and never through a reference.
        unsafe { ffa::arch::volatile::copy(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MapError> {
        let mapping = self.covering(addr, data.len()).ok_or(MapError::NotMapped)?;
        if !mapping.writable {
            return Err(MapError::NotMapped);
        }
        let dst = core::ptr::with_exposed_provenance_mut::<u8>(
            usize::try_from(addr).map_err(|_| MapError::NotMapped)?,
        );
        // SAFETY: `[addr, addr + len)` lies inside one live read-write mapping of retrieved
        // memory (checked above); the normal world may access it concurrently, so it is written
        // with volatile accesses and never through a reference.
        unsafe { ffa::arch::volatile::copy(data.as_ptr(), dst, data.len()) };
        Ok(())
    }
}

#[cfg(test)]
mod tests;
