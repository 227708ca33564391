//! The memory-lifecycle log of one bus instance: one INFO line per event (AREA_SHARE accepted
//! or refused, AREA_UNSHARE, relinquish ok / failed, RESET, a repeated VERSION), rate-limited
//! so that a hostile driver cannot flood the console.
//!
//! The limit is a token bucket per instance counted in messages, not time (the partition has no
//! clock it may rely on): [`BURST`] lines at once, then one more line per
//! [`MESSAGES_PER_LINE`] messages handled. Lines that find the bucket empty are counted, and
//! the next line that is written is preceded by "N lifecycle lines suppressed". Lines are
//! short and use no `Debug` formatting (image size).

use core::fmt;

/// Lines that may be written back to back.
pub(crate) const BURST: u32 = 16;
/// Messages handled per line earned.
pub(crate) const MESSAGES_PER_LINE: u32 = 8;

/// The rate limiter and the line writer.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    vm: u16,
    tokens: u32,
    credit: u32,
    suppressed: u32,
}

impl Lifecycle {
    /// A full bucket for endpoint `vm`.
    pub(crate) fn new(vm: u16) -> Self {
        Self {
            vm,
            tokens: BURST,
            credit: 0,
            suppressed: 0,
        }
    }

    /// Counts one message handled (earns a line every [`MESSAGES_PER_LINE`]).
    pub(crate) fn tick(&mut self) {
        // `credit < MESSAGES_PER_LINE` and `tokens <= BURST` between calls: neither saturates.
        self.credit = self.credit.saturating_add(1);
        if self.credit >= MESSAGES_PER_LINE {
            self.credit = 0;
            self.tokens = self.tokens.saturating_add(1).min(BURST);
        }
    }

    /// Writes `vm <id>: <line>` at INFO if the bucket allows; returns whether it was written.
    pub(crate) fn line(&mut self, line: fmt::Arguments<'_>) -> bool {
        let Some(tokens) = self.tokens.checked_sub(1) else {
            self.suppressed = self.suppressed.saturating_add(1);
            return false;
        };
        self.tokens = tokens;
        let vm = self.vm;
        if self.suppressed > 0 {
            log::info!("vm {vm:#x}: {} lifecycle lines suppressed", self.suppressed);
            self.suppressed = 0;
        }
        log::info!("vm {vm:#x}: {line}");
        true
    }

    /// Lines suppressed since the last one written.
    #[cfg(test)]
    pub(crate) fn suppressed(&self) -> u32 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_line_per_messages_per_line() {
        let mut log = Lifecycle::new(1);
        let mut written = 0;
        for _ in 0..1001 {
            log.tick();
            if log.line(format_args!("AREA_SHARE refused")) {
                written += 1;
            }
        }
        assert_eq!(written, BURST + 1001 / MESSAGES_PER_LINE);
        assert!(log.suppressed() > 0);
        // Quiet for a while: the bucket refills, and the next line reports the suppressed ones.
        for _ in 0..BURST * MESSAGES_PER_LINE {
            log.tick();
        }
        assert!(log.line(format_args!("RESET")));
        assert_eq!(log.suppressed(), 0);
    }
}
