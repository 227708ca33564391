//! Entropy for the rng device: `RNDR` when the CPU has FEAT_RNG, else the SMCCC TRNG
//! interface (Arm DEN0098) if the firmware implements it, else none.
//!
//! `RNDR` is read through [`crate::arch`], TRNG calls go through a [`Conduit`]: both are faked
//! in host tests.

use ffa::{
    Conduit,
    conduit::{smccc_call, smccc_status},
};
use zerocopy::IntoBytes;

use crate::{
    arch,
    devices::rng::{EntropyError, EntropySource},
};

/// TRNG_VERSION function id.
const TRNG_VERSION: u32 = 0x8400_0050;
/// TRNG_FEATURES function id.
const TRNG_FEATURES: u32 = 0x8400_0051;
/// TRNG_RND64 function id.
const TRNG_RND64: u32 = 0xc400_0053;
/// TRNG_RND status: no entropy available right now (retry).
const TRNG_NO_ENTROPY: i32 = -3;
/// Bits asked of TRNG_RND64 per call (its maximum).
const TRNG_BITS: u64 = 192;
/// Attempts before a source is considered failed.
const RETRIES: u32 = 64;

/// Where entropy comes from. `C` is the conduit TRNG calls go through (registers only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entropy<C> {
    /// The `RNDR` register (FEAT_RNG).
    Rndr,
    /// SMCCC TRNG_RND64 (firmware).
    Trng(C),
}

/// Whether the firmware implements TRNG v1.x with TRNG_RND64. Issues SMCs: call it only after
/// `FFA_VERSION` (an SPMC must see that first).
pub fn trng_present<C: Conduit + ?Sized>(conduit: &mut C) -> bool {
    let [version, ..] = smccc_call(conduit, TRNG_VERSION, &[]);
    let version = smccc_status(version);
    // Negative: not implemented; bits[30:16] major, which must be 1.
    if version < 0 || (version >> 16) != 1 {
        return false;
    }
    let [features, ..] = smccc_call(conduit, TRNG_FEATURES, &[u64::from(TRNG_RND64)]);
    smccc_status(features) >= 0
}

impl<C: Conduit> Entropy<C> {
    /// The best source available: `RNDR` if present and delivering, then TRNG through
    /// `conduit` (issues SMCs: only after `FFA_VERSION`), else none.
    pub fn detect(mut conduit: C) -> Option<Self> {
        if arch::rndr_present() && arch::rndr().is_some() {
            Some(Self::Rndr)
        } else if trng_present(&mut conduit) {
            Some(Self::Trng(conduit))
        } else {
            None
        }
    }

    /// How the start-up log names it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Rndr => "RNDR",
            Self::Trng(_) => "SMCCC TRNG",
        }
    }
}

impl<C: Conduit> EntropySource for Entropy<C> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        match self {
            Self::Rndr => {
                // Cannot panic (`chunks_mut`): the chunk size is 8.
                for chunk in buf.chunks_mut(8) {
                    let value = (0..RETRIES)
                        .find_map(|_| arch::rndr())
                        .ok_or(EntropyError)?;
                    let bytes = value.to_le_bytes();
                    bytes
                        .get(..chunk.len())
                        .and_then(|b| b.write_to(chunk).ok())
                        .ok_or(EntropyError)?;
                }
                Ok(())
            }
            Self::Trng(conduit) => {
                // Cannot panic (`chunks_mut`): the chunk size is 24.
                for chunk in buf.chunks_mut(24) {
                    let words = trng_rnd64(conduit)?;
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
fn trng_rnd64<C: Conduit + ?Sized>(conduit: &mut C) -> Result<[u64; 3], EntropyError> {
    for _ in 0..RETRIES {
        let [x0, x1, x2, x3, ..] = smccc_call(conduit, TRNG_RND64, &[TRNG_BITS]);
        match smccc_status(x0) {
            0 => return Ok([x1, x2, x3]),
            TRNG_NO_ENTROPY => continue,
            _ => return Err(EntropyError),
        }
    }
    Err(EntropyError)
}

#[cfg(test)]
mod tests;
