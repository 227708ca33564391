//! The stage-1 mapper on the host: the tables are built (never activated) and the window
//! accounting checked. Mapped normal-world memory is never accessed here (it does not exist on
//! the host); every refused access is refused before any memory is touched.

use super::*;
use crate::arch::fake;

const PAGE: usize = 4096;

/// A layout like the image's, at its real addresses (nothing is accessed there).
fn layout() -> Layout {
    let w = 0x0e30_0000;
    Layout {
        window: w..w + 0x20_0000,
        package_head: w..w + 0x4000,
        text: w + 0x4000..w + 0x2_0000,
        rodata: w + 0x2_0000..w + 0x2_8000,
        data: w + 0x2_8000..w + 0x2_c000,
        stack_guard: w + 0x2_c000..w + 0x2_d000,
        stack: w + 0x2_d000..w + 0x3_d000,
        // As the image links them: after the boot stack, three slots of a guard page and a
        // 32 KiB stack.
        secondary_stacks: w + 0x3_d000..w + 0x5_8000,
        heap: w + 0x5_8000..w + 0x20_0000,
    }
}

/// What the tables hold over `range`: the flags of each descriptor covering it, `None` for an
/// invalid one (at whatever level the walk found it).
fn flags_over(m: &StageOneMapper, range: &Range<usize>) -> Vec<Option<El1Attributes>> {
    let mut seen = Vec::new();
    m.tables
        .walk_range(
            &MemoryRegion::new(range.start, range.end),
            &mut |_, descriptor, _| {
                seen.push(descriptor.is_valid().then(|| descriptor.flags()));
                Ok(())
            },
        )
        .unwrap();
    seen
}

fn mapper() -> StageOneMapper {
    let rxtx = RxTxRegions {
        rx: 0x0e50_0000..0x0e50_1000,
        tx: 0x0e50_1000..0x0e50_2000,
    };
    StageOneMapper::build(&layout(), 0x0900_0000, Some(&rxtx)).unwrap()
}

fn range(address: u64, page_count: u32) -> MemRange {
    MemRange {
        address,
        page_count,
    }
}

#[test]
fn every_stack_is_mapped_read_write_never_executable_above_an_unmapped_guard_page() {
    let layout = layout();
    let m = mapper();
    let secondary: Vec<_> = layout.secondary_slots().collect();
    assert_eq!(
        secondary,
        [0x3_d000, 0x4_6000, 0x4_f000]
            .map(|g| {
                let g = layout.window.start + g;
                (g..g + PAGE, g + PAGE..g + PAGE + 0x8000)
            })
            .to_vec(),
        "three whole slots, each a guard page and the stack above it"
    );
    let slots = core::iter::once((layout.stack_guard.clone(), layout.stack.clone()));
    for (guard, stack) in slots.chain(secondary) {
        let (guard, stack) = (&guard, &stack);
        assert_eq!(guard.len(), PAGE);
        assert_eq!(
            guard.end, stack.start,
            "the guard page is right below its stack"
        );
        let over_guard = flags_over(&m, guard);
        assert!(
            !over_guard.is_empty() && over_guard.iter().all(Option::is_none),
            "guard {guard:#x?}: {over_guard:?}"
        );
        let over_stack = flags_over(&m, stack);
        assert!(!over_stack.is_empty());
        for flags in over_stack {
            let flags = flags.unwrap_or_else(|| panic!("stack {stack:#x?} not all mapped"));
            assert!(
                !flags.contains(El1Attributes::READ_ONLY),
                "{stack:#x?}: {flags:?}"
            );
            assert!(
                flags.contains(El1Attributes::PXN | El1Attributes::UXN),
                "{stack:#x?}: {flags:?}"
            );
        }
    }
}

#[test]
fn maps_into_the_window_without_overlap_and_reuses_freed_space() {
    let mut m = mapper();
    let a = m.map(range(0x4000_0000, 2), true).unwrap();
    let b = m.map(range(0x4100_0000, 3), false).unwrap();
    assert_eq!(a, NS_WINDOW_BASE as u64);
    assert_eq!(b, a + 2 * PAGE as u64, "first fit, right after the first");
    assert_eq!(m.ns_mappings(), 2);
    m.unmap(a, 2);
    assert_eq!(m.ns_mappings(), 1);
    // A 2-page hole at the start: a 2-page mapping fits there, a 3-page one goes after b.
    assert_eq!(
        m.map(range(0x4200_0000, 3), true).unwrap(),
        b + 3 * PAGE as u64
    );
    assert_eq!(m.map(range(0x4300_0000, 2), true).unwrap(), a);
}

#[test]
fn the_256_mib_window_is_exhausted_and_recovers() {
    let mut m = mapper();
    let half = u32::try_from(NS_WINDOW_SIZE / PAGE / 2).unwrap();
    let a = m.map(range(0x4000_0000, half), true).unwrap();
    let _b = m.map(range(0x5000_0000, half), true).unwrap();
    assert_eq!(m.map(range(0x6000_0000, 1), true), Err(MapError::NoSpace));
    // One page more than the whole window never fits.
    m.unmap(a, half);
    assert_eq!(
        m.map(range(0x6000_0000, half + 1), true),
        Err(MapError::NoSpace)
    );
    assert_eq!(m.map(range(0x6000_0000, half), true), Ok(a));
}

#[test]
fn the_number_of_mappings_is_bounded() {
    let mut m = mapper();
    for i in 0..MAX_NS_MAPPINGS {
        let pa = 0x4000_0000 + u64::try_from(i).unwrap() * 0x1000;
        m.map(range(pa, 1), false).unwrap();
    }
    assert_eq!(m.map(range(0x8000_0000, 1), false), Err(MapError::NoSpace));
    m.unmap(NS_WINDOW_BASE as u64, 1);
    assert!(m.map(range(0x8000_0000, 1), false).is_ok());
}

#[test]
fn bad_ranges_are_refused() {
    let mut m = mapper();
    assert_eq!(m.map(range(0x4000_0000, 0), true), Err(MapError::NoSpace));
    assert_eq!(m.map(range(0x4000_0800, 1), true), Err(MapError::NoSpace));
    assert_eq!(m.map(range(1 << 48, 1), true), Err(MapError::NoSpace));
    assert_eq!(
        m.map(range((1 << 48) - 0x1000, 2), true),
        Err(MapError::NoSpace),
        "past the 48-bit PA space"
    );
    assert_eq!(
        m.map(range(!0xfff, 2), true),
        Err(MapError::NoSpace),
        "wraps"
    );
    assert_eq!(m.ns_mappings(), 0);
}

#[test]
fn unmapping_what_was_never_mapped_changes_nothing() {
    let mut m = mapper();
    m.unmap(NS_WINDOW_BASE as u64, 1);
    m.unmap(0, 0);
    m.unmap(u64::MAX, u32::MAX);
    let a = m.map(range(0x4000_0000, 4), true).unwrap();
    // Wrong size, or inside the mapping rather than at its base: refused, mapping kept.
    m.unmap(a, 3);
    m.unmap(a + PAGE as u64, 3);
    assert_eq!(m.ns_mappings(), 1);
    m.unmap(a, 4);
    assert_eq!(m.ns_mappings(), 0);
    m.unmap(a, 4);
    assert_eq!(m.ns_mappings(), 0);
}

#[test]
fn accesses_outside_mappings_or_to_read_only_ones_are_refused() {
    let mut m = mapper();
    let mut byte = [0u8; 1];
    assert_eq!(
        m.read(NS_WINDOW_BASE as u64, &mut byte),
        Err(MapError::NotMapped)
    );
    let ro = m.map(range(0x4000_0000, 1), false).unwrap();
    assert_eq!(m.write(ro, &byte), Err(MapError::NotMapped));
    let mut two_pages = vec![0u8; 2 * PAGE];
    assert_eq!(m.read(ro, &mut two_pages), Err(MapError::NotMapped));
    assert_eq!(
        m.read(ro + PAGE as u64, &mut byte),
        Err(MapError::NotMapped)
    );
    assert_eq!(m.read(u64::MAX, &mut byte), Err(MapError::NotMapped));
    m.unmap(ro, 1);
    assert_eq!(m.read(ro, &mut byte), Err(MapError::NotMapped));
}

#[test]
fn a_mapping_made_in_a_hole_is_found_in_its_place() {
    let mut m = mapper();
    let mut byte = [0u8; 1];
    let a = m.map(range(0x4000_0000, 2), true).unwrap();
    let b = m.map(range(0x4100_0000, 1), false).unwrap();
    let c = m.map(range(0x4200_0000, 1), true).unwrap();
    m.unmap(a, 2);
    // First fit: the new read-only page goes first in the window, before b and c.
    let d = m.map(range(0x4300_0000, 1), false).unwrap();
    assert_eq!(d, a);
    assert_eq!(m.ns_mappings(), 3);
    // Each access is judged by the mapping that holds it: d and b are read-only, the page
    // after d is a hole, and nothing spans two mappings.
    assert_eq!(m.write(d, &byte), Err(MapError::NotMapped));
    assert_eq!(m.write(b, &byte), Err(MapError::NotMapped));
    assert_eq!(m.read(d + PAGE as u64, &mut byte), Err(MapError::NotMapped));
    let mut two_pages = vec![0u8; 2 * PAGE];
    assert_eq!(m.read(b, &mut two_pages), Err(MapError::NotMapped));
    m.unmap(b, 1);
    m.unmap(c, 1);
    m.unmap(d, 1);
    assert_eq!(m.ns_mappings(), 0);
}

#[test]
fn activation_invalidates_the_tlb_and_translate_reads_par() {
    let mut m = mapper();
    let before = fake::with(|cpu| cpu.tlb_invalidations);
    // SAFETY: on the host, activation only marks the tables active (no TTBR is written).
    unsafe { m.activate() };
    assert_eq!(fake::with(|cpu| cpu.tlb_invalidations), before + 1);
    assert_eq!(
        fake::with(|cpu| cpu.t0sz),
        Some(RUNTIME_T0SZ),
        "the VA space widened to the runtime tables' 39 bits"
    );
    assert_eq!(RUNTIME_T0SZ, 64 - 39);
    fake::with(|cpu| cpu.translations = vec![(0x4000_0000..0x4000_2000, true)]);
    assert_eq!(m.translate(0x4000_1008), Some((0x4000_1008, true)));
    assert_eq!(m.translate(0x4000_2000), None);
    // aarch64-paging refuses to drop an active table (the image never drops it).
    m.tables.mark_inactive();
}

#[test]
fn a_secondary_cpu_joins_with_the_ttbr0_the_runtime_va_size_and_a_clean_tlb() {
    let before = fake::with(|cpu| cpu.tlb_invalidations);
    // SAFETY: on the host, joining only records what the CPU would be set to.
    unsafe { join(0x0001_0000_0e40_0000) };
    fake::with(|cpu| {
        assert_eq!(cpu.ttbr0, Some(0x0001_0000_0e40_0000));
        // Without the wider VA size a secondary faults at the first shared area (the
        // normal-world window lies above 4 GiB).
        assert_eq!(cpu.t0sz, Some(RUNTIME_T0SZ));
        assert_eq!(cpu.tlb_invalidations, before + 1);
    });
}

#[test]
fn the_initial_table_maps_the_window_s_gib_blocks_only() {
    let InitialTable(t) = initial_table(0x0e30_0000, 0x20_0000);
    assert_eq!(t, [INITIAL_BLOCK_NORMAL, 0, 0, 0]);
    // Valid block (not a table), AttrIndx 1, inner shareable, AF, nG.
    assert_eq!(
        INITIAL_BLOCK_NORMAL,
        0b01 | (1 << 2) | (0b11 << 8) | (1 << 10) | (1 << 11)
    );
    let InitialTable(t) = initial_table((1 << 30) - 0x1000, 0x2000);
    assert_eq!(
        t,
        [INITIAL_BLOCK_NORMAL, (1 << 30) | INITIAL_BLOCK_NORMAL, 0, 0]
    );
    // The last GiB of the 4 GiB the table covers, and a window reaching past it.
    let InitialTable(t) = initial_table((4 << 30) - 0x1000, 0x2000);
    assert_eq!(t, [0, 0, 0, (3 << 30) | INITIAL_BLOCK_NORMAL]);
    // One entry per GiB of a 2^(64 - INITIAL_T0SZ)-byte VA space; a TTBR needs 64-byte
    // alignment at least.
    assert_eq!(INITIAL_ENTRIES, 1 << (64 - INITIAL_T0SZ - 30));
    assert_eq!(core::mem::align_of::<InitialTable>(), 64);
    assert_eq!(core::mem::size_of::<InitialTable>(), 64);
}

#[test]
fn the_initial_table_of_an_empty_wrapping_or_high_window_maps_nothing() {
    for (start, size) in [(0, 0), (1 << 30, 0), (!0xfff, 0x2000), (4 << 30, 0x1000)] {
        assert_eq!(
            initial_table(start, size),
            InitialTable([0; INITIAL_ENTRIES])
        );
    }
    assert_eq!(
        initial_table(!0xfff, 0x1000),
        InitialTable([0; INITIAL_ENTRIES])
    );
}
