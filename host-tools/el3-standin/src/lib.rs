//! Where the EL3 stand-in (the binary of this crate, `make bench`) lives on QEMU `virt` and
//! what the host tells it, for `vmsg bench` (`vmsg_host::bench::boot`) to boot the SP image
//! against it.
//!
//! The host puts the stand-in at [`STANDIN_ADDR`] (QEMU's loader also starts the CPU there, at
//! EL3), the SP package at [`STAGING_ADDR`] in normal RAM, and three words at [`PARAMS_ADDR`]:
//! the package's length, its load address and its entry point. The stand-in copies the package
//! to its load address (secure RAM, which QEMU's loader cannot write) and enters it at secure
//! EL1 with x0 = the load address (the boot-info blob), as Hafnium would. It answers the FF-A
//! calls of the partition's start-up and, at the first `FFA_MSG_WAIT`, prints [`REPORT`] with
//! the number of instructions the partition executed since its first one, then ends QEMU with
//! a semihosting exit (`-semihosting-config enable=on,target=native`).
#![no_std]

/// Where the stand-in is loaded and started (normal RAM; QEMU keeps its DTB at 0x40000000).
pub const STANDIN_ADDR: u64 = 0x4020_0000;
/// The three parameter words: package length in bytes, load address, entry point (the
/// stand-in's state follows them in that page).
pub const PARAMS_ADDR: u64 = STANDIN_ADDR + 0x1000;
/// Where the host puts the SP package for the stand-in to copy (normal RAM).
pub const STAGING_ADDR: u64 = 0x4030_0000;
/// Largest package the stand-in copies (it must end below the stand-in's reach of RAM).
pub const MAX_PACKAGE: u64 = 0x10_0000;

/// [`REPORT`] as a literal (the assembly is built from it).
#[macro_export]
macro_rules! report {
    () => {
        "el3-standin: FFA_MSG_WAIT after "
    };
}

/// [`FAILURE`] as a literal (the assembly is built from it).
#[macro_export]
macro_rules! failure {
    () => {
        "el3-standin: FAILED "
    };
}

/// Start of the line the stand-in prints at the partition's first `FFA_MSG_WAIT`:
/// `el3-standin: FFA_MSG_WAIT after N instructions, S SMCs, counter F Hz`.
pub const REPORT: &str = report!();
/// Start of the line the stand-in prints when the partition takes an exception other than an
/// `SMC`, or the host's parameters are unusable; it halts after it.
pub const FAILURE: &str = failure!();
