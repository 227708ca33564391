// The SP's memory layout on QEMU `virt` under Hafnium: the one place these numbers are set.
// `build.rs` includes this file to generate the linker script; `manifests/` repeats the values
// (an SPMC reads them from there) and `tests/tests/manifests.rs` checks that they agree.

/// Physical address of the SP package (SPMC manifest `load_address`, SP manifest
/// `load-address`, TB_FW_CONFIG `load-address`). The SP window of TF-A's QEMU port starts here.
pub const LOAD_ADDRESS: u64 = 0x0e30_0000;

/// Offset of the manifest DTB in the package (SPKG `pm_offset`).
pub const MANIFEST_OFFSET: u64 = 0x1000;

/// Offset of the image in the package (SPKG `img_offset`, SP manifest `entrypoint-offset`).
pub const IMAGE_OFFSET: u64 = 0x4000;

/// Link address of the image; its first instruction is the entry point.
pub const IMAGE_ADDRESS: u64 = LOAD_ADDRESS + IMAGE_OFFSET;

/// Memory the SPMC gives the partition from [`LOAD_ADDRESS`] (SPMC manifest `mem_size`): package
/// header and manifest, image, .bss, stack, and the heap, which is the rest of this window.
pub const MEM_SIZE: u64 = 0x20_0000;

/// Pages of boot stack.
pub const STACK_PAGES: usize = 16;

/// Smallest heap the link accepts (the linker script asserts it).
pub const MIN_HEAP_SIZE: u64 = 0x10_0000;

/// The normal-world PL011 (UART0) of QEMU `virt`: the fallback console when no SPMC answers.
pub const UART0_BASE: u64 = 0x0900_0000;
