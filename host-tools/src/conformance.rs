//! The conformance suite: checks of the partition against the virtio-msg clauses (virtio-msg
//! §6: `V*` device clauses, `B*` bus clauses) and the virtio-msg FF-A bus rules (DEN0153 as
//! digested in `shared/spec/virtio-msg-ffa.md`: `FB-*` bus messages, `FF-*` FF-A framing),
//! run from the driver side against any [`Backend`]: the simulated world (`vmsg conformance`,
//! `tests/tests/conformance.rs`) or real FF-A (the normal-world payload under Hafnium).
//!
//! Each [`Check`] has a stable id tied to its clause, a one-line description, the dialects it
//! applies to, and gets a fresh bus session from the backend. Its [`Outcome`] is
//! [`Outcome::Pass`], [`Outcome::Fail`] with the reason (values are asserted, so a check can
//! fail), or [`Outcome::NotApplicable`] with the reason (the dialect has no such rule, or the
//! device offers nothing to observe).
//!
//! Where the partition deliberately differs from the spec text (README, "Where the specs and
//! the Linux drivers disagree"), the check follows the documented behaviour and its description
//! says so ("documented: …").
//!
//! - `check`: what a check is ([`Check`]) and ends in ([`Outcome`], [`CheckResult`], [`Counts`]);
//! - `backend`: [`Backend`], where the sessions come from;
//! - `wire`: raw exchanges (every byte of x4..x17 of the answer), frames, expectations;
//! - `device`: the `V*` checks (transport messages to the first device);
//! - `bus`: the `B*`, `FB-*` and `FF-*` checks;
//! - [`known`]: the checks known to fail because of a partition defect;
//! - `report`: the table and JSON renderings;
//! - `sim` (std): the simulated world as a backend (a new endpoint per check).

mod backend;
mod bus;
mod check;
mod device;
pub mod known;
mod report;
#[cfg(feature = "std")]
pub mod sim;
mod wire;

use alloc::{format, string::String, vec::Vec};

use ffa::{Conduit, bus::Dialect};

use crate::{connection::Connection, platform::Platform};
pub use backend::Backend;
pub use check::{Applies, Check, CheckResult, Counts, Outcome, dialect_name};
use check::{Stop, Verdict};
pub use known::{KNOWN_FAILURES, KnownFailure, known_failure};
pub use report::{json, table};

/// Every check, in the order they run.
pub const CHECKS: &[Check] = &[
    // Device clauses (virtio-msg §6 "Device").
    device::V1,
    device::V2,
    device::V3,
    device::V4,
    device::V5,
    device::V6,
    device::V7,
    device::V9,
    device::V10,
    device::V11,
    device::V12,
    device::V13,
    device::V16,
    device::V17,
    device::V18,
    device::V19,
    device::V20,
    device::V21,
    device::V22,
    device::V23,
    device::V24,
    device::V25,
    device::V27,
    device::V28,
    device::V29,
    // Bus clauses (virtio-msg §6 "Bus").
    bus::B2,
    bus::B3,
    bus::B5,
    bus::B6,
    bus::B7,
    bus::B8,
    bus::B14,
    bus::B15,
    // The FF-A bus binding.
    bus::FB_VERSION_1,
    bus::FB_VERSION_2,
    bus::FB_VERSION_3,
    bus::FB_FRAME_1,
    bus::FB_ERROR_1,
    bus::FB_BUSY_1,
    bus::FB_ACK_1,
    bus::FB_EVCFG_1,
    bus::FB_POLL_1,
    bus::FB_POLL_2,
    bus::FB_AREA_1,
    bus::FB_AREA_2,
    bus::FB_AREA_3,
    bus::FB_AREA_4,
    bus::FB_AREA_5,
    bus::FB_RESET_1,
    bus::FF_RESP_1,
    bus::FF_UUID_1,
];

/// The check with id `id`.
pub fn check(id: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.id == id)
}

/// Runs one check's body on `conn`.
fn execute<C: Conduit, P: Platform>(id: &str, conn: &mut Connection<C, P>) -> Verdict {
    if let Some(v) = device::execute(id, conn) {
        return v;
    }
    if let Some(v) = bus::execute(id, conn) {
        return v;
    }
    Err(Stop::Fail(format!("no body for check {id}")))
}

/// Runs `check` in `dialect` on a fresh session from `backend`.
pub fn run_check<B: Backend>(backend: &mut B, check: &'static Check, dialect: Dialect) -> Outcome {
    if !check.applies.includes(dialect) {
        return Outcome::NotApplicable(String::from(check.not_applicable));
    }
    let outcome = match backend.connect(dialect) {
        // A G2 driver shares its DMA pool at bus probe, before any device (the partition
        // refuses G2's FEATURES_OK while nothing is shared): so does every G2 session here.
        Ok(mut conn) => match conn.share_dma_pool() {
            Err(e) => Outcome::Fail(format!("no DMA pool: {e}")),
            Ok(()) => match execute(check.id, &mut conn) {
                Ok(()) => Outcome::Pass,
                Err(Stop::Fail(r)) => Outcome::Fail(r),
                Err(Stop::NotApplicable(r)) => Outcome::NotApplicable(r),
            },
        },
        Err(e) => Outcome::Fail(format!("no session: {e}")),
    };
    backend.disconnect();
    outcome
}

/// Runs every check in each of `dialects`, calling `each` with every result as it comes.
pub fn run_with<B: Backend>(
    backend: &mut B,
    dialects: &[Dialect],
    mut each: impl FnMut(&CheckResult),
) -> Vec<CheckResult> {
    let mut out = Vec::with_capacity(CHECKS.len() * dialects.len());
    for &dialect in dialects {
        for check in CHECKS {
            let result = CheckResult {
                check,
                dialect,
                outcome: run_check(backend, check, dialect),
            };
            each(&result);
            out.push(result);
        }
    }
    out
}

/// Runs every check in each of `dialects`.
pub fn run<B: Backend>(backend: &mut B, dialects: &[Dialect]) -> Vec<CheckResult> {
    run_with(backend, dialects, |_| {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_every_check_says_why_it_may_not_apply() {
        for (i, c) in CHECKS.iter().enumerate() {
            assert!(
                CHECKS.iter().skip(i + 1).all(|o| o.id != c.id),
                "duplicate {}",
                c.id
            );
            assert!(
                !c.description.is_empty() && !c.clause.is_empty(),
                "{}",
                c.id
            );
            assert_eq!(
                c.applies == Applies::Both,
                c.not_applicable.is_empty(),
                "{}: a reason exactly when a dialect is left out",
                c.id
            );
        }
    }
}
