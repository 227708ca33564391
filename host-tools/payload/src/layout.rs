// The payload's memory layout on QEMU `virt`: the one place these numbers are set.
// `build.rs` includes this file to generate the linker script; the image and the QEMU test use
// the constants from the library.

/// Physical address the image is loaded at and entered at (TF-A's BL33 base on QEMU `virt`,
/// `PLAT_QEMU_NS_IMAGE_OFFSET`); its first byte is the entry point.
pub const LOAD_ADDRESS: u64 = 0x6000_0000;

/// Memory the image owns from [`LOAD_ADDRESS`]: code, data, .bss, stack, and the heap, which is
/// the rest of this window.
pub const IMAGE_WINDOW: u64 = 0x100_0000;

/// Pages of boot stack.
pub const STACK_PAGES: usize = 32;

/// Pages of stack of each secondary CPU (in .bss; the concurrent test's drivers need little).
pub const SECONDARY_STACK_PAGES: usize = 16;

/// Smallest heap the link accepts (the linker script asserts it).
pub const MIN_HEAP_SIZE: u64 = 0x40_0000;

/// First byte of the pages the driver shares with the partition (rings, buffers, RX/TX):
/// right after the image window, inside QEMU's non-secure DRAM (from 0x4000_0000).
pub const DMA_BASE: u64 = LOAD_ADDRESS + IMAGE_WINDOW;

/// Size of that window (48 MiB).
pub const DMA_SIZE: u64 = 0x300_0000;

/// The normal-world PL011 (UART0) of QEMU `virt`.
pub const UART0_BASE: u64 = 0x0900_0000;

/// Where QEMU `virt` puts its device tree for the firmware (the start of RAM); TF-A leaves
/// it there, updated, for BL33. The payload reads the CPUs from it.
pub const DTB_BASE: u64 = 0x4000_0000;

/// Largest device tree the payload reads at [`DTB_BASE`] (TF-A's QEMU port allows 1 MiB).
pub const DTB_MAX_SIZE: u64 = 0x20_0000;

/// Non-secure DRAM of QEMU `virt` the payload relies on: `[0x4000_0000, 0x8000_0000)` (QEMU
/// must be given at least 1 GiB with `-m`).
pub const NS_DRAM: (u64, u64) = (0x4000_0000, 0x8000_0000);
