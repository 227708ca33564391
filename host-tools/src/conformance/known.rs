//! Checks known to fail because of a partition defect, each with the defect named.
//!
//! `tests/tests/conformance.rs` runs the suite in the simulated world and fails if any other
//! check fails, or if one of these passes (remove the entry when its defect is fixed); the
//! payload's simulated run (`host-tools/payload/tests/sim.rs`) expects exactly these `FAIL`
//! lines, and the payload names the defect on each.

use ffa::bus::Dialect;

/// A check that fails in one dialect because of a partition defect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownFailure {
    /// The check's id.
    pub id: &'static str,
    /// The dialect it fails in.
    pub dialect: Dialect,
    /// The defect (what the partition does wrong, and where).
    pub defect: &'static str,
}

/// The known failures (none today; B6, an EVENT_AVAIL to a missing device answered with
/// ERROR, was the last, fixed in `ffa/src/bus/routing.rs`).
pub const KNOWN_FAILURES: &[KnownFailure] = &[];

/// The known failure of check `id` in `dialect`, if it is one.
pub fn known_failure(id: &str, dialect: Dialect) -> Option<&'static KnownFailure> {
    KNOWN_FAILURES
        .iter()
        .find(|k| k.id == id && k.dialect == dialect)
}
