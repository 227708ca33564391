//! The payload's only translation table: aarch64-rt's initial page table (EL2 regime, 4 KiB
//! granule, 39-bit VA, so level-1 entries are 1 GiB blocks), switched on before any Rust code
//! runs and kept for the whole run. Identity map:
//!
//! - `[0, 1 GiB)`: device memory (Device-nGnRE, never executable): UART0 and the rest of
//!   QEMU `virt`'s peripherals;
//! - `[1 GiB, 2 GiB)`: normal write-back memory, read-write, executable: QEMU's non-secure DRAM
//!   from 0x4000_0000, which holds the image, its heap and the driver memory window.
//!
//! Nothing else is mapped. The secondary CPUs turn on this same table (aarch64-rt's
//! secondary entry, [`super::smp`]): what they touch (their stacks in .bss, the statics they
//! share with the boot CPU, the device tree read at `DTB_BASE`, the UART) lies in these two
//! blocks, with the same attributes on every CPU.

use aarch64_paging::descriptor::El23Attributes;
use aarch64_rt::InitialPagetable;
use nwd_payload::NS_DRAM;

/// Size of a level-1 block.
const GIB: u64 = 1 << 30;
/// Block descriptor (VALID without TABLE_OR_PAGE), access flag set, AP\[1\] set (RES1 in the
/// EL2 regime), read-write.
const BLOCK: El23Attributes = El23Attributes::VALID
    .union(El23Attributes::USER_RES1)
    .union(El23Attributes::ACCESSED);
/// AttrIndx 0 (Device-nGnRE in aarch64-rt's MAIR), execute-never.
const DEVICE: usize = BLOCK
    .union(El23Attributes::ATTRIBUTE_INDEX_0)
    .union(El23Attributes::XN)
    .bits();
/// AttrIndx 1 (normal write-back in aarch64-rt's MAIR), inner shareable.
const NORMAL: usize = BLOCK
    .union(El23Attributes::ATTRIBUTE_INDEX_1)
    .union(El23Attributes::INNER_SHAREABLE)
    .bits();

const _: () = assert!(usize::BITS == 64);
const _: () = assert!(NS_DRAM.0 == GIB && NS_DRAM.1 == 2 * GIB);
const _: () = assert!(nwd_payload::UART0_BASE < GIB);
const _: () = assert!(
    nwd_payload::DTB_BASE >= GIB && nwd_payload::DTB_BASE + nwd_payload::DTB_MAX_SIZE <= 2 * GIB
);
const _: () = assert!(
    nwd_payload::DMA_BASE + nwd_payload::DMA_SIZE <= NS_DRAM.1
        && nwd_payload::LOAD_ADDRESS >= NS_DRAM.0
);

/// The table (see the module docs).
pub const fn initial_pagetable() -> InitialPagetable {
    let mut table = [0usize; 512];
    // The assertion above guarantees usize is 64 bits, so the cast is lossless.
    #[allow(clippy::cast_possible_truncation)]
    {
        table[0] = DEVICE;
        table[1] = GIB as usize | NORMAL;
    }
    InitialPagetable(table)
}
