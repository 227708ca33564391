//! Copies between this image's memory and memory the other world shares with it.
//!
//! Shared memory can change under the reader at any time, so it is never turned into a
//! reference: every access is volatile, and a value read once is never read again to be
//! trusted (callers copy what they check).

/// Copies `len` bytes from `src` to `dst` with volatile accesses: 8 bytes at a time where both
/// sides are aligned, single bytes otherwise.
///
/// # Safety
///
/// `src` must be valid for reads and `dst` for writes of `len` bytes, and the two ranges must
/// not overlap.
pub unsafe fn copy(src: *const u8, dst: *mut u8, len: usize) {
    let mut i = 0;
    // `rest` is `len - i`, bytes still to copy; the loop stops when it is zero.
    while let Some(rest) = len.checked_sub(i).filter(|&rest| rest > 0) {
        // SAFETY: `i < len`, so both pointers stay inside the ranges the caller vouched for.
        let (s, d) = unsafe { (src.add(i), dst.add(i)) };
        let step = if rest >= 8 && s.addr().is_multiple_of(8) && d.addr().is_multiple_of(8) {
            // SAFETY: 8 bytes from `i` are inside both ranges, and both pointers are aligned.
            unsafe {
                d.cast::<u64>()
                    .write_volatile(s.cast::<u64>().read_volatile());
            }
            8
        } else {
            // SAFETY: byte `i` is inside both ranges.
            unsafe { d.write_volatile(s.read_volatile()) };
            1
        };
        // `step <= rest`, so `i` stays at most `len` and never saturates.
        i = i.saturating_add(step);
    }
}

#[cfg(test)]
mod tests {
    use super::copy;

    #[test]
    fn copies_every_length_and_alignment_exactly() {
        let src: Vec<u8> = (0..64u8).collect();
        for offset in 0..8 {
            for len in 0..40 {
                let mut dst = [0xeeu8; 64];
                // SAFETY: both ranges are inside their vectors and distinct allocations.
                unsafe { copy(src[offset..].as_ptr(), dst[3..].as_mut_ptr(), len) };
                assert_eq!(&dst[3..3 + len], &src[offset..offset + len]);
                assert!(dst[..3].iter().all(|&b| b == 0xee));
                assert!(dst[3 + len..].iter().all(|&b| b == 0xee));
            }
        }
    }
}
