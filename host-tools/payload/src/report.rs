//! The payload's output: one line per check (`PASS <what>` or `FAIL <what>: <why>`), free-form
//! `INFO` lines, and exactly one final line `N passed, M failed`.

use core::fmt::{self, Write};

/// Counts checks and writes their lines to `out` (the UART on the machine).
pub struct Report<W: Write> {
    out: W,
    passed: u32,
    failed: u32,
}

/// The outcome of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Checks passed.
    pub passed: u32,
    /// Checks failed.
    pub failed: u32,
}

impl Summary {
    /// Whether every check passed and there was at least one.
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.passed > 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

impl<W: Write> Report<W> {
    /// A report writing to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            passed: 0,
            failed: 0,
        }
    }

    /// Writes a line as it is (nothing is counted).
    pub fn line(&mut self, args: fmt::Arguments) {
        // The output is the only channel there is: a failing write cannot be reported anywhere.
        let _ = self.out.write_fmt(args);
        let _ = self.out.write_str("\n");
    }

    /// Writes an `INFO` line.
    pub fn info(&mut self, args: fmt::Arguments) {
        self.line(format_args!("INFO {args}"));
    }

    /// Records a passed check.
    pub fn pass(&mut self, args: fmt::Arguments) {
        self.passed = self.passed.saturating_add(1);
        self.line(format_args!("PASS {args}"));
    }

    /// Records a failed check.
    pub fn fail(&mut self, args: fmt::Arguments) {
        self.failed = self.failed.saturating_add(1);
        self.line(format_args!("FAIL {args}"));
    }

    /// Counts so far.
    pub fn summary(&self) -> Summary {
        Summary {
            passed: self.passed,
            failed: self.failed,
        }
    }

    /// Writes the final line and returns the counts.
    pub fn finish(mut self) -> Summary {
        let s = self.summary();
        self.line(format_args!("{s}"));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_counts() {
        let mut out = String::new();
        let mut r = Report::new(&mut out);
        r.info(format_args!("hello"));
        r.pass(format_args!("g3: ping"));
        r.fail(format_args!("g2: rng read: {}", "busy"));
        r.pass(format_args!("x"));
        r.fail(format_args!("y: nope"));
        let s = r.finish();
        assert_eq!(
            s,
            Summary {
                passed: 2,
                failed: 2
            }
        );
        assert!(!s.ok());
        assert_eq!(
            out,
            "INFO hello\nPASS g3: ping\nFAIL g2: rng read: busy\nPASS x\nFAIL y: nope\n\
             2 passed, 2 failed\n"
        );
    }

    #[test]
    fn ok_needs_a_pass_and_no_failure() {
        assert!(
            !Summary {
                passed: 0,
                failed: 0
            }
            .ok()
        );
        assert!(
            Summary {
                passed: 1,
                failed: 0
            }
            .ok()
        );
        assert!(
            !Summary {
                passed: 5,
                failed: 1
            }
            .ok()
        );
    }
}
