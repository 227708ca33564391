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

/// B6: `ffa/src/bus/routing.rs` `transport()` refuses a dev_num beyond the device table with
/// `frame::error` before it reaches the EVENT_AVAIL acknowledgement, so an event gets an ERROR
/// frame (virtio-msg §6 B6: no error responses to events; the G3 driver's ack validation makes
/// it -EPROTO).
const EVENT_TO_MISSING_DEVICE: &str = "EVENT_AVAIL to a device number that does not exist is \
     answered with ERROR instead of the ack (ffa/src/bus/routing.rs checks dev_num before the \
     event ack)";

/// The known failures.
pub const KNOWN_FAILURES: &[KnownFailure] = &[
    KnownFailure {
        id: "B6",
        dialect: Dialect::G3,
        defect: EVENT_TO_MISSING_DEVICE,
    },
    KnownFailure {
        id: "B6",
        dialect: Dialect::G2,
        defect: EVENT_TO_MISSING_DEVICE,
    },
];

/// The known failure of check `id` in `dialect`, if it is one.
pub fn known_failure(id: &str, dialect: Dialect) -> Option<&'static KnownFailure> {
    KNOWN_FAILURES
        .iter()
        .find(|k| k.id == id && k.dialect == dialect)
}
