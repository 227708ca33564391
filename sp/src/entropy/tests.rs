//! Entropy selection (RNDR, then TRNG, then none) and both sources' fills, on the fake CPU and
//! a scripted conduit.

use alloc::{collections::VecDeque, vec};

use super::*;
use crate::{arch::fake, scripted::Scripted};

/// A TRNG firmware: TRNG_VERSION answers `version`, TRNG_FEATURES(RND64) answers `features`,
/// TRNG_RND64 answers NO_ENTROPY `busy` times and then 1, 2, 3 in x1..x3.
fn trng(version: i64, features: i64, busy: usize) -> Scripted {
    let left = std::sync::atomic::AtomicUsize::new(busy);
    Scripted::new(move |regs| {
        let mut r = [0u64; 18];
        let status = |s: i64| s.cast_unsigned();
        r[0] = match ffa::conduit::low32(regs[0]) {
            TRNG_VERSION => status(version),
            TRNG_FEATURES if regs[1] == u64::from(TRNG_RND64) => status(features),
            TRNG_RND64 => {
                if left.load(std::sync::atomic::Ordering::Relaxed) > 0 {
                    left.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    status(i64::from(TRNG_NO_ENTROPY))
                } else {
                    r[1..4].copy_from_slice(&[1, 2, 3]);
                    0
                }
            }
            _ => u64::MAX,
        };
        r
    })
}

fn cpu(present: bool, values: &[Option<u64>]) {
    fake::with(|cpu| {
        cpu.rndr_present = present;
        cpu.rndr = values.iter().copied().collect::<VecDeque<_>>();
    });
}

#[test]
fn rndr_is_chosen_first_without_any_smc() {
    cpu(true, &[Some(7)]);
    let conduit = trng(0x1_0000, 0, 0);
    assert_eq!(Entropy::detect(conduit.clone()), Some(Entropy::Rndr));
    assert!(conduit.calls().is_empty(), "no SMC when RNDR delivers");
}

#[test]
fn trng_is_chosen_when_rndr_is_absent_or_failing() {
    for (present, values) in [(false, vec![Some(1)]), (true, vec![None])] {
        cpu(present, &values);
        let conduit = trng(0x1_0000, 0, 0);
        let got = Entropy::detect(conduit.clone()).unwrap();
        assert_eq!(got.name(), "SMCCC TRNG");
        assert_eq!(conduit.function_ids(), [TRNG_VERSION, TRNG_FEATURES]);
    }
}

#[test]
fn no_usable_trng_means_no_entropy() {
    cpu(false, &[]);
    for (version, features) in [(-1, 0), (0x2_0000, 0), (0x0_0001, 0), (0x1_0000, -1)] {
        let conduit = trng(version, features, 0);
        assert_eq!(
            Entropy::detect(conduit),
            None,
            "version {version:#x}, features {features}"
        );
    }
}

#[test]
fn rndr_fills_from_the_register_and_fails_after_its_retries() {
    cpu(
        true,
        &[
            Some(0x0807_0605_0403_0201),
            None,
            Some(0x1111_1111_1111_1111),
        ],
    );
    let mut e = Entropy::<Scripted>::Rndr;
    let mut buf = [0u8; 11];
    e.fill(&mut buf).unwrap();
    assert_eq!(buf, [1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x11, 0x11]);
    cpu(true, &vec![None; 64]);
    assert_eq!(e.fill(&mut buf), Err(EntropyError));
}

#[test]
fn trng_fills_192_bits_per_call_and_retries_no_entropy() {
    let conduit = trng(0x1_0000, 0, 3);
    let mut e = Entropy::Trng(conduit.clone());
    let mut buf = [0u8; 30];
    e.fill(&mut buf).unwrap();
    let mut want = [0u8; 30];
    for (i, chunk) in want.chunks_mut(24).enumerate() {
        let words: [u64; 3] = [1, 2, 3];
        let bytes: alloc::vec::Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
        let _ = i;
    }
    assert_eq!(buf, want);
    // 3 NO_ENTROPY answers, then one per 24-byte chunk; each asks for 192 bits.
    let calls = conduit.calls();
    assert_eq!(calls.len(), 5);
    assert!(calls.iter().all(|r| r[1] == TRNG_BITS));
    // A firmware that never has entropy, or fails, gives an error.
    let mut starved = Entropy::Trng(trng(0x1_0000, 0, usize::MAX));
    assert_eq!(starved.fill(&mut buf), Err(EntropyError));
}
