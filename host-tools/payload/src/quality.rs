//! A sanity check of bytes read from an entropy device: not a statistical test suite, but it
//! catches a device that returns nothing, a constant, a counter, a short repeated block or
//! badly biased bytes.
//!
//! Two chi-square statistics over 256 bins (255 degrees of freedom: mean 255, standard
//! deviation about 22.6): the byte values, and the differences between consecutive bytes
//! (which catches counters and other perfectly "uniform" patterns). Each must stay below
//! [`CHI2_LIMIT`], more than six standard deviations above the mean.

use core::fmt;

/// Fewest bytes the check accepts (the statistics mean little below this).
pub const MIN_LEN: usize = 4096;
/// Largest chi-square accepted for either statistic.
pub const CHI2_LIMIT: u64 = 420;

/// What the check found wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QualityError {
    /// Fewer bytes than [`MIN_LEN`].
    #[error("only {0} bytes (at least {MIN_LEN} are needed)")]
    TooShort(usize),
    /// Every byte has the same value.
    #[error("every byte is {0:#04x}")]
    AllEqual(u8),
    /// The second half repeats the first.
    #[error("the second half repeats the first")]
    Repeats,
    /// Some byte value never appears although the sample is large enough that all should.
    #[error("only {0} of 256 byte values appear")]
    MissingValues(u32),
    /// The byte values are not uniform.
    #[error("byte histogram chi-square {0} > {CHI2_LIMIT}")]
    Biased(u64),
    /// Consecutive bytes are related.
    #[error("successive-difference chi-square {0} > {CHI2_LIMIT}")]
    Correlated(u64),
}

/// What the check measured on accepted bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Bytes checked.
    pub len: usize,
    /// Distinct byte values seen.
    pub distinct: u32,
    /// Rarest and most frequent byte value counts.
    pub min_count: u32,
    /// See `min_count`.
    pub max_count: u32,
    /// Chi-square of the byte histogram.
    pub chi2_bytes: u64,
    /// Chi-square of the histogram of successive differences.
    pub chi2_deltas: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} distinct values, counts {}..{}, chi2 {} (bytes) {} (deltas)",
            self.distinct, self.min_count, self.max_count, self.chi2_bytes, self.chi2_deltas
        )
    }
}

/// Chi-square of a 256-bin histogram of `n` samples against the uniform distribution:
/// sum((o - n/256)^2 / (n/256)) = sum((256 o - n)^2) / (256 n), in integers.
fn chi2(hist: &[u32; 256], n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let sum: u128 = hist
        .iter()
        .map(|&o| {
            let d = (256 * u128::from(o)).abs_diff(u128::from(n));
            d * d
        })
        .sum();
    u64::try_from(sum / (256 * u128::from(n))).unwrap_or(u64::MAX)
}

/// Checks `bytes` (see the module docs).
pub fn check(bytes: &[u8]) -> Result<Stats, QualityError> {
    let len = bytes.len();
    if len < MIN_LEN {
        return Err(QualityError::TooShort(len));
    }
    if let Some(&first) = bytes.first()
        && bytes.iter().all(|&b| b == first)
    {
        return Err(QualityError::AllEqual(first));
    }
    let (a, b) = bytes.split_at(len / 2);
    if b.starts_with(a) {
        return Err(QualityError::Repeats);
    }
    let mut hist = [0u32; 256];
    let mut deltas = [0u32; 256];
    for &byte in bytes {
        if let Some(h) = hist.get_mut(usize::from(byte)) {
            *h += 1;
        }
    }
    for pair in bytes.windows(2) {
        if let [x, y] = pair
            && let Some(d) = deltas.get_mut(usize::from(y.wrapping_sub(*x)))
        {
            *d += 1;
        }
    }
    let distinct = u32::try_from(hist.iter().filter(|&&c| c > 0).count()).unwrap_or(0);
    // With 16 KiB or more, a missing value has probability < 256 * e^-64.
    if len >= 16 * 1024 && distinct < 256 {
        return Err(QualityError::MissingValues(distinct));
    }
    let n = u64::try_from(len).unwrap_or(u64::MAX);
    let chi2_bytes = chi2(&hist, n);
    if chi2_bytes > CHI2_LIMIT {
        return Err(QualityError::Biased(chi2_bytes));
    }
    let chi2_deltas = chi2(&deltas, n - 1);
    if chi2_deltas > CHI2_LIMIT {
        return Err(QualityError::Correlated(chi2_deltas));
    }
    Ok(Stats {
        len,
        distinct,
        min_count: hist.iter().copied().min().unwrap_or(0),
        max_count: hist.iter().copied().max().unwrap_or(0),
        chi2_bytes,
        chi2_deltas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes (SplitMix64).
    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            out.extend_from_slice(&z.to_le_bytes());
        }
        out.truncate(n);
        out
    }

    #[test]
    fn accepts_random_bytes() {
        for seed in 0..20 {
            let s = check(&random(65536, seed)).unwrap();
            assert_eq!(s.distinct, 256);
            assert!(s.chi2_bytes < CHI2_LIMIT && s.chi2_deltas < CHI2_LIMIT);
            assert!(s.min_count > 150 && s.max_count < 370, "{s}");
        }
        check(&random(MIN_LEN, 7)).unwrap();
    }

    #[test]
    fn rejects_short_samples() {
        assert_eq!(check(&[]), Err(QualityError::TooShort(0)));
        assert_eq!(
            check(&random(MIN_LEN - 1, 1)),
            Err(QualityError::TooShort(MIN_LEN - 1))
        );
    }

    #[test]
    fn rejects_constants() {
        assert_eq!(check(&[0; 65536]), Err(QualityError::AllEqual(0)));
        assert_eq!(check(&[0xa5; 8192]), Err(QualityError::AllEqual(0xa5)));
    }

    #[test]
    fn rejects_a_repeated_half() {
        let half = random(32768, 3);
        let twice = [half.clone(), half].concat();
        assert_eq!(check(&twice), Err(QualityError::Repeats));
    }

    #[test]
    fn rejects_missing_values() {
        // Random bytes, but never 0x00.
        let bytes: Vec<u8> = random(65536, 4).into_iter().map(|b| b.max(1)).collect();
        assert_eq!(check(&bytes), Err(QualityError::MissingValues(255)));
    }

    #[test]
    fn rejects_bias() {
        // Every fourth byte forced to 0x42: all values appear, but 0x42 far too often.
        let mut bytes = random(65536, 5);
        for b in bytes.iter_mut().step_by(4) {
            *b = 0x42;
        }
        assert!(matches!(check(&bytes), Err(QualityError::Biased(_))));
    }

    #[test]
    fn rejects_a_counter() {
        // Perfectly uniform byte values, but (almost) each is the previous plus one; the
        // extra step every 256 bytes keeps the halves from repeating.
        let bytes: Vec<u8> = (0..65536u32)
            .map(|i| u8::try_from((i + i / 256) % 256).unwrap())
            .collect();
        assert_eq!(check(&bytes[..256]), Err(QualityError::TooShort(256)));
        assert!(matches!(check(&bytes), Err(QualityError::Correlated(_))));
    }

    #[test]
    fn chi2_of_a_flat_histogram_is_zero() {
        assert_eq!(chi2(&[4; 256], 1024), 0);
        // All 256 samples in one bin (expected 1 per bin): 255^2 + 255 * 1^2 = 255 * 256.
        let mut one = [0u32; 256];
        one[0] = 256;
        assert_eq!(chi2(&one, 256), 255 * 256);
    }
}
