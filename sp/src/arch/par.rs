//! The fields of PAR_EL1 the partition reads after an address translation.

/// PAR_EL1.F: the translation failed.
pub const PAR_FAILED: u64 = 1;
/// PAR_EL1.NS: the output address is non-secure.
pub const PAR_NS: u64 = 1 << 9;
/// PAR_EL1.PA, bits \[47:12\].
pub const PAR_PA_MASK: u64 = 0x0000_ffff_ffff_f000;
