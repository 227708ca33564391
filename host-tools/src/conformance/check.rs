//! What a check is and what it can end in: [`Check`], [`Outcome`], [`CheckResult`],
//! [`Counts`], and the early exits of a check's body (`Stop`, `ensure!`).

use alloc::{format, string::String};
use core::fmt;

use ffa::bus::Dialect;

use crate::session::SessionError;

/// Which dialects a check applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    /// Both G2 and G3.
    Both,
    /// G3 only.
    G3,
    /// G2 only.
    G2,
}

impl Applies {
    /// Whether the check applies to `dialect`.
    pub fn includes(self, dialect: Dialect) -> bool {
        match self {
            Self::Both => true,
            Self::G3 => dialect == Dialect::G3,
            Self::G2 => dialect == Dialect::G2,
        }
    }
}

/// One conformance check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    /// Stable id (`V10`, `B14`, `FB-ACK-1`, …).
    pub id: &'static str,
    /// The clause it checks (spec and section).
    pub clause: &'static str,
    /// Dialects it applies to.
    pub applies: Applies,
    /// What it asserts, in one line.
    pub description: &'static str,
    /// Why it does not apply to the other dialect (empty for [`Applies::Both`]).
    pub not_applicable: &'static str,
}

/// A [`Check`] (for the `const` check tables of the `device` and `bus` groups).
pub(super) const fn check(
    id: &'static str,
    clause: &'static str,
    applies: Applies,
    description: &'static str,
    not_applicable: &'static str,
) -> Check {
    Check {
        id,
        clause,
        applies,
        description,
        not_applicable,
    }
}

/// The outcome of a check in one dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every assertion held.
    Pass,
    /// An assertion failed (or the exchange did), with the reason.
    Fail(String),
    /// The check does not apply, with the reason.
    NotApplicable(String),
}

impl Outcome {
    /// The outcome's short name (`pass`, `fail`, `n/a`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail(_) => "fail",
            Self::NotApplicable(_) => "n/a",
        }
    }

    /// The reason, for a failure or a not-applicable check.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Pass => None,
            Self::Fail(r) | Self::NotApplicable(r) => Some(r),
        }
    }
}

/// A check's outcome in one dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// The check.
    pub check: &'static Check,
    /// The dialect it ran in.
    pub dialect: Dialect,
    /// What happened.
    pub outcome: Outcome,
}

/// Counts over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Checks passed.
    pub passed: usize,
    /// Checks failed.
    pub failed: usize,
    /// Checks not applicable.
    pub not_applicable: usize,
}

impl Counts {
    /// Counts of `results`.
    pub fn of(results: &[CheckResult]) -> Self {
        let mut c = Self::default();
        for r in results {
            match r.outcome {
                Outcome::Pass => c.passed += 1,
                Outcome::Fail(_) => c.failed += 1,
                Outcome::NotApplicable(_) => c.not_applicable += 1,
            }
        }
        c
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passed, {} failed ({} not applicable)",
            self.passed, self.failed, self.not_applicable
        )
    }
}

/// Short name of a dialect (`g2`, `g3`).
pub fn dialect_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::G2 => "g2",
        Dialect::G3 => "g3",
    }
}

/// Why a check stopped before its end.
#[derive(Debug)]
pub(super) enum Stop {
    Fail(String),
    NotApplicable(String),
}

pub(super) type Verdict = Result<(), Stop>;

macro_rules! impl_stop_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Stop {
            fn from(e: $t) -> Self {
                Stop::Fail(format!("{e}"))
            }
        }
    )*};
}
impl_stop_from!(
    SessionError,
    crate::connection::HostError,
    virtio_msg::driver::DriverError,
    crate::virtqueue::QueueError,
    virtio_msg::MemError,
    virtio_msg::error::EncodeError,
    ffa::Error
);

/// Fails the check with a formatted reason unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::conformance::check::Stop::Fail(alloc::format!($($arg)+)));
        }
    };
}
pub(super) use ensure;
