//! Bounded waits: the generic timer's physical count (CNTPCT_EL0) at the frequency firmware
//! set in CNTFRQ_EL0.

use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};

/// QEMU `virt`'s counter frequency before QEMU 9.0 (62.5 MHz), used if CNTFRQ_EL0 reads 0.
const FALLBACK_HZ: u64 = 62_500_000;

/// A point in time, in counter ticks.
#[derive(Clone, Copy, Debug)]
pub struct Instant(u64);

fn hz() -> u64 {
    match CNTFRQ_EL0.get() {
        0 => FALLBACK_HZ,
        f => f,
    }
}

impl Instant {
    /// Now.
    pub fn now() -> Self {
        Self(CNTPCT_EL0.get())
    }

    /// Milliseconds since `self`.
    pub fn elapsed_ms(self) -> u64 {
        let ticks = CNTPCT_EL0.get().saturating_sub(self.0);
        ticks.saturating_mul(1000) / hz()
    }
}

/// Waits until `done` holds or `timeout_ms` have passed; returns whether `done` held.
pub fn wait_until(timeout_ms: u64, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed_ms() >= timeout_ms {
            return done();
        }
        core::hint::spin_loop();
    }
}
