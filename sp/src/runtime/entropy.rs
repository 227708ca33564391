//! Entropy for the rng device: `RNDR` when the CPU has FEAT_RNG, else the SMCCC TRNG
//! interface (Arm DEN0098) if the firmware implements it, else none.

use core::arch::asm;

use super::conduit::smc;
use crate::devices::rng::{EntropyError, EntropySource};

/// TRNG_VERSION function id.
const TRNG_VERSION: u32 = 0x8400_0050;
/// TRNG_FEATURES function id.
const TRNG_FEATURES: u32 = 0x8400_0051;
/// TRNG_RND64 function id.
const TRNG_RND64: u32 = 0xc400_0053;
/// TRNG_RND status: no entropy available right now (retry).
const TRNG_NO_ENTROPY: i64 = -3;
/// Bits asked of TRNG_RND64 per call (its maximum).
const TRNG_BITS: u64 = 192;
/// Attempts before a source is considered failed.
const RETRIES: u32 = 64;

/// Where entropy comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entropy {
    /// The `RNDR` register (FEAT_RNG).
    Rndr,
    /// SMCCC TRNG_RND64 (firmware).
    Trng,
}

/// Whether the CPU implements FEAT_RNG (ID_AA64ISAR0_EL1.RNDR, bits \[63:60\], non-zero).
pub fn rndr_present() -> bool {
    let isar0: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe {
        asm!("mrs {}, id_aa64isar0_el1", out(reg) isar0, options(nomem, nostack, preserves_flags));
    }
    (isar0 >> 60) & 0xf != 0
}

/// One `RNDR` read: `None` if the hardware reported a failure (NZCV = 0b0100).
///
/// Only call this when [`rndr_present`] is true (the register is undefined otherwise).
pub fn rndr() -> Option<u64> {
    let value: u64;
    let ok: u64;
    // SAFETY: RNDR (S3_3_C2_C4_0) is implemented (the caller checked FEAT_RNG); reading it only
    // returns a random number and sets the flags, which are consumed here.
    unsafe {
        asm!(
            "mrs {value}, s3_3_c2_c4_0",
            "cset {ok}, ne",
            value = out(reg) value,
            ok = out(reg) ok,
            options(nomem, nostack),
        );
    }
    (ok != 0).then_some(value)
}

/// SMCCC call with `x1 = arg1`: x0..x3 of the answer.
fn smccc(function: u32, arg1: u64) -> [u64; 4] {
    let mut regs = [0u64; 18];
    let [x0, x1, ..] = &mut regs;
    *x0 = u64::from(function);
    *x1 = arg1;
    let [a, b, c, d, ..] = smc(regs);
    [a, b, c, d]
}

/// The signed 32-bit status in w0.
fn status(x0: u64) -> i64 {
    i64::from(i32::from_le_bytes(super::conduit::low32(x0).to_le_bytes()))
}

/// Whether the firmware implements TRNG v1.x with TRNG_RND64. Issues SMCs: call it only after
/// `FFA_VERSION` (an SPMC must see that first).
pub fn trng_present() -> bool {
    let [version, ..] = smccc(TRNG_VERSION, 0);
    let version = status(version);
    // Negative: not implemented; bits[30:16] major, which must be 1.
    if version < 0 || (version >> 16) != 1 {
        return false;
    }
    let [features, ..] = smccc(TRNG_FEATURES, u64::from(TRNG_RND64));
    status(features) >= 0
}

impl Entropy {
    /// The best source available: `RNDR`, then TRNG (issues SMCs: only after `FFA_VERSION`).
    pub fn detect() -> Option<Self> {
        if rndr_present() && rndr().is_some() {
            Some(Self::Rndr)
        } else if trng_present() {
            Some(Self::Trng)
        } else {
            None
        }
    }
}

impl EntropySource for Entropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        match self {
            Self::Rndr => {
                for chunk in buf.chunks_mut(8) {
                    let value = (0..RETRIES).find_map(|_| rndr()).ok_or(EntropyError)?;
                    let bytes = value.to_le_bytes();
                    chunk.copy_from_slice(bytes.get(..chunk.len()).ok_or(EntropyError)?);
                }
                Ok(())
            }
            Self::Trng => {
                for chunk in buf.chunks_mut(24) {
                    let words = trng_rnd64()?;
                    let bytes = words.iter().flat_map(|w| w.to_le_bytes());
                    for (dst, src) in chunk.iter_mut().zip(bytes) {
                        *dst = src;
                    }
                }
                Ok(())
            }
        }
    }
}

/// 192 bits from TRNG_RND64 (x1..x3), retrying while the firmware has no entropy.
fn trng_rnd64() -> Result<[u64; 3], EntropyError> {
    for _ in 0..RETRIES {
        let [x0, x1, x2, x3] = smccc(TRNG_RND64, TRNG_BITS);
        match status(x0) {
            0 => return Ok([x1, x2, x3]),
            TRNG_NO_ENTROPY => continue,
            _ => return Err(EntropyError),
        }
    }
    Err(EntropyError)
}
