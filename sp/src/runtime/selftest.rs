//! Start-up self-test, after the MMU and heap are up and before any FF-A call: .data holds
//! its initial values; the heap allocates, holds and frees memory; `RNDR` (if present) delivers; the stage-1 mapper maps a
//! normal-world page where the MMU sees it as non-secure and unmaps it again. Each check is
//! cut to what it proves about the partition (a few hundred instructions, not the 100,000 a
//! word-by-word fill of the heap block took).
//!
//! One line reports them all, `selftest: ok (...)`, or the first failure stops the start-up.

use alloc::{boxed::Box, vec::Vec};
use core::{
    fmt,
    sync::atomic::{AtomicU32, Ordering},
};

use ffa::memory::{MapError, MemRange, NsMapper, PAGE_SIZE};

use super::heap;
use crate::{arch, mmu::StageOneMapper};

/// A failed self-test check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure(&'static str);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A normal-world physical page used to exercise the mapper (QEMU `virt` DRAM starts here; it
/// is only translated, never accessed).
const PROBE_PA: u64 = 0x4000_0000;

/// A static with an initial value (in .data): the image stores it after .rodata and
/// `runtime::linker::copy_data` puts it in place.
static DATA_PROBE: AtomicU32 = AtomicU32::new(DATA_PROBE_VALUE);
const DATA_PROBE_VALUE: u32 = 0x5eed_da7a;

/// Runs every check; `Err` names the first that failed.
pub fn run(mapper: &mut StageOneMapper) -> Result<(), Failure> {
    // Through `black_box`, or the compiler reads the initializer instead of the memory.
    if core::hint::black_box(&DATA_PROBE).load(Ordering::Relaxed) != DATA_PROBE_VALUE {
        return Err(Failure(".data: initial values not copied from the image"));
    }
    let heap_kib = check_heap()?;
    let rndr = check_rndr()?;
    check_mapper(mapper)?;
    log::info!(
        "selftest: ok (heap {heap_kib} KiB: 64 KiB allocated, each page written and read back, \
         freed; rndr {rndr}; stage-1 map/unmap of NS memory)"
    );
    Ok(())
}

/// Bytes the heap check allocates: 16 pages.
const HEAP_PROBE: usize = 64 * 1024;
/// `u64`s per 4 KiB page.
const PAGE_WORDS: usize = 512;

/// The heap gives a 64 KiB block that holds what is written on each of its pages (so the
/// runtime tables map all of it read-write) and takes it back, and a small allocation works:
/// the accounting moves up and returns to where it was. One word per page and the block's
/// last word are written and read back (volatile, so that the compiler keeps them): filling
/// the whole block would test the RAM, not the partition, at 9 instructions a word.
fn check_heap() -> Result<usize, Failure> {
    let (total, used_before) = heap::stats();
    let words = HEAP_PROBE / 8;
    let mut block: Vec<u64> = Vec::new();
    block
        .try_reserve_exact(words)
        .map_err(|_| Failure("heap: 64 KiB allocation failed"))?;
    let base = block.as_mut_ptr();
    let pattern = |i: usize| u64::try_from(i).unwrap_or(0).wrapping_mul(0x9e37_79b9);
    let probes = (0..words)
        .step_by(PAGE_WORDS)
        .chain(core::iter::once(words.saturating_sub(1)));
    for i in probes.clone() {
        // SAFETY: `i < words`, and the vector holds a live allocation of at least `words`
        // `u64`s (reserved above), so `base + i` is in bounds and aligned; nothing else
        // refers to that memory.
        unsafe { base.add(i).write_volatile(pattern(i)) };
    }
    let boxed = Box::new(0x5eed_u64);
    // SAFETY: as above; each of these words was written just before.
    let intact = probes
        .into_iter()
        .all(|i| unsafe { base.add(i).read_volatile() } == pattern(i));
    if !intact || *boxed != 0x5eed {
        return Err(Failure("heap: memory did not hold its contents"));
    }
    let used_during = heap::stats().1;
    drop(block);
    drop(boxed);
    let used_after = heap::stats().1;
    if used_during <= used_before || used_after != used_before {
        return Err(Failure("heap: allocator accounting is off after free"));
    }
    Ok(total / 1024)
}

/// `ok`, or `absent` (FEAT_RNG not implemented).
fn check_rndr() -> Result<&'static str, Failure> {
    if !arch::rndr_present() {
        return Ok("absent");
    }
    let mut values = [0u64; 4];
    for v in &mut values {
        *v = (0..64)
            .find_map(|_| arch::rndr())
            .ok_or(Failure("rndr: no value after 64 tries"))?;
    }
    let distinct = values
        .iter()
        .enumerate()
        .all(|(i, a)| values.iter().skip(i.saturating_add(1)).all(|b| a != b));
    if !distinct {
        return Err(Failure("rndr: repeated values"));
    }
    Ok("ok")
}

fn check_mapper(mapper: &mut StageOneMapper) -> Result<(), Failure> {
    let range = MemRange {
        address: PROBE_PA,
        page_count: 2,
    };
    let base = mapper
        .map(range, false)
        .map_err(|_| Failure("stage-1: map failed"))?;
    let va = usize::try_from(base).map_err(|_| Failure("stage-1: bad address"))?;
    let second = va
        .checked_add(usize::try_from(PAGE_SIZE).unwrap_or(4096))
        .and_then(|page| page.checked_add(8))
        .ok_or(Failure("stage-1: bad address"))?;
    let mapped = mapper.translate(va) == Some((PROBE_PA, true))
        && mapper.translate(second) == Some((PROBE_PA + PAGE_SIZE + 8, true));
    let mut byte = [0u8; 1];
    let write_refused = mapper.write(base, &byte) == Err(MapError::NotMapped);
    let outside = base
        .checked_add(2 * PAGE_SIZE)
        .ok_or(Failure("stage-1: bad address"))?;
    let outside_refused = mapper.read(outside, &mut byte) == Err(MapError::NotMapped);
    mapper.unmap(base, range.page_count);
    let unmapped = mapper.translate(va).is_none()
        && mapper.read(base, &mut byte) == Err(MapError::NotMapped)
        && mapper.ns_mappings() == 0;
    if !mapped {
        return Err(Failure(
            "stage-1: mapping does not translate to the NS page",
        ));
    }
    if !write_refused || !outside_refused {
        return Err(Failure(
            "stage-1: mapper allowed an access it should refuse",
        ));
    }
    if !unmapped {
        return Err(Failure("stage-1: unmap left the page mapped"));
    }
    Ok(())
}
