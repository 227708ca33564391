//! The partition's memory window and the image's parts in it.
//!
//! The image reads it from its linker symbols (`runtime::linker`); host tests make one up.

use core::ops::Range;

/// Secondary execution contexts the image has stacks for: with the primary, four CPUs (QEMU
/// `virt` with `-smp 4`, as TF-A's QEMU port and the manifests assume).
pub const SECONDARY_STACKS: usize = 3;

/// Stack of each secondary context. A request's deepest path (an indirect descriptor table
/// and a bus frame on the stack) needs well under half of it.
pub const SECONDARY_STACK_BYTES: usize = 32 * 1024;

/// The unmapped guard page below each stack.
pub const STACK_GUARD_BYTES: usize = 4096;

/// A secondary context's slot in [`Layout::secondary_stacks`]: its guard page, then its stack.
pub const SECONDARY_SLOT_BYTES: usize = STACK_GUARD_BYTES + SECONDARY_STACK_BYTES;

/// The partition's memory window and the image's parts in it, as linked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Everything the SPMC gives the partition: `[load_address, load_address + mem_size)`.
    pub window: Range<usize>,
    /// Boot-info area and manifest DTB at the start of the package (read-only).
    pub package_head: Range<usize>,
    /// Code (read-only, executable).
    pub text: Range<usize>,
    /// Read-only data.
    pub rodata: Range<usize>,
    /// .data and .bss (read-write).
    pub data: Range<usize>,
    /// The unmapped guard page below the stack.
    pub stack_guard: Range<usize>,
    /// The boot stack (read-write).
    pub stack: Range<usize>,
    /// The secondary execution contexts' stacks: slots of [`SECONDARY_SLOT_BYTES`], each an
    /// unmapped guard page and a stack right above it (read-write); empty where the platform
    /// starts no other context. See [`Layout::secondary_slots`].
    pub secondary_stacks: Range<usize>,
    /// The heap: the rest of the window after the stacks (read-write).
    pub heap: Range<usize>,
}

impl Layout {
    /// The guard page and the stack of each whole slot in
    /// [`secondary_stacks`](Self::secondary_stacks), lowest first.
    pub fn secondary_slots(&self) -> impl Iterator<Item = (Range<usize>, Range<usize>)> + '_ {
        let end = self.secondary_stacks.end;
        self.secondary_stacks
            .clone()
            .step_by(SECONDARY_SLOT_BYTES)
            .map_while(move |slot| {
                let stack = slot.checked_add(STACK_GUARD_BYTES)?;
                let top = stack.checked_add(SECONDARY_STACK_BYTES)?;
                (top <= end).then_some((slot..stack, stack..top))
            })
    }
}

/// Rounds `x` up to a 4 KiB boundary (saturating).
pub const fn page_align_up(x: usize) -> usize {
    match x.checked_add(0xfff) {
        Some(v) => v & !0xfff,
        None => usize::MAX & !0xfff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_secondary_stacks(secondary_stacks: Range<usize>) -> Layout {
        let w = 0x0e30_0000;
        Layout {
            window: w..w + 0x20_0000,
            package_head: w..w,
            text: w..w,
            rodata: w..w,
            data: w..w,
            stack_guard: w..w,
            stack: w..w,
            secondary_stacks,
            heap: w..w,
        }
    }

    #[test]
    fn the_secondary_slots_are_whole_guard_pages_and_stacks_lowest_first() {
        let base = 0x0e33_b000;
        let slots: Vec<_> = with_secondary_stacks(base..base + 3 * SECONDARY_SLOT_BYTES)
            .secondary_slots()
            .collect();
        assert_eq!(slots.len(), SECONDARY_STACKS);
        for (i, (guard, stack)) in slots.into_iter().enumerate() {
            let slot = base + i * SECONDARY_SLOT_BYTES;
            assert_eq!(guard, slot..slot + STACK_GUARD_BYTES);
            assert_eq!(stack, guard.end..slot + SECONDARY_SLOT_BYTES);
        }
        // A slot cut short, an empty region, one at the top of the address space: no stacks.
        let short = base..base + 2 * SECONDARY_SLOT_BYTES - 1;
        assert_eq!(with_secondary_stacks(short).secondary_slots().count(), 1);
        assert_eq!(
            with_secondary_stacks(base..base).secondary_slots().count(),
            0
        );
        let top = usize::MAX - SECONDARY_SLOT_BYTES / 2..usize::MAX;
        assert_eq!(with_secondary_stacks(top).secondary_slots().count(), 0);
    }
}
