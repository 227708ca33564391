//! Start-up self-test, after the MMU and heap are up and before any FF-A call: the heap
//! allocates, holds and frees memory; `RNDR` (if present) delivers; the stage-1 mapper maps a
//! normal-world page where the MMU sees it as non-secure and unmaps it again.
//!
//! Each check logs one `selftest: ...` line; the last line is `selftest: ok` or the failure.

use alloc::{boxed::Box, vec::Vec};
use core::fmt;

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

/// Runs every check; `Err` names the first that failed.
pub fn run(mapper: &mut StageOneMapper) -> Result<(), Failure> {
    check_heap()?;
    check_rndr()?;
    check_mapper(mapper)?;
    log::info!("selftest: ok");
    Ok(())
}

fn check_heap() -> Result<(), Failure> {
    let (total, used_before) = heap::stats();
    let len = 64 * 1024;
    let mut block: Vec<u64> = Vec::new();
    block
        .try_reserve_exact(len / 8)
        .map_err(|_| Failure("heap: 64 KiB allocation failed"))?;
    block.extend((0..len / 8).map(|i| u64::try_from(i).unwrap_or(0).wrapping_mul(0x9e37_79b9)));
    let boxed = Box::new(0x5eed_u64);
    let intact = block
        .iter()
        .enumerate()
        .all(|(i, &v)| v == u64::try_from(i).unwrap_or(0).wrapping_mul(0x9e37_79b9));
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
    log::info!(
        "selftest: heap ok ({} KiB, 64 KiB allocated and freed)",
        total / 1024
    );
    Ok(())
}

fn check_rndr() -> Result<(), Failure> {
    if !arch::rndr_present() {
        log::info!("selftest: rndr absent (FEAT_RNG not implemented)");
        return Ok(());
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
    log::info!("selftest: rndr ok");
    Ok(())
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
    log::info!("selftest: stage-1 map/unmap of NS memory ok");
    Ok(())
}
