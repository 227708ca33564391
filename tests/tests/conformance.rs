//! The conformance suite (`vmsg_host::conformance`) against the partition in the simulated FF-A
//! world, both dialects: every applicable check passes except the known failures
//! (`vmsg_host::conformance::KNOWN_FAILURES`, each a named partition defect), a known failure
//! that starts passing fails the test too (so the list stays honest), and the partition never
//! touches memory it was not given over the whole run.

use ffa::bus::Dialect;
use vmsg_host::{
    SimSystem,
    conformance::{
        self, CHECKS, Counts, KNOWN_FAILURES, Outcome, known_failure,
        sim::{InlineBackend, SimBackend},
    },
    sim::inline::InlineSystem,
};

#[test]
fn the_partition_conforms_in_both_dialects() {
    let sys = SimSystem::start().expect("simulated world starts");
    let mut backend = SimBackend::new(&sys);
    let results = conformance::run(&mut backend, &[Dialect::G3, Dialect::G2]);
    println!("{}", conformance::table(&results));
    conforms(&results);
    assert!(
        sys.faults().is_empty(),
        "simulator faults: {:?}",
        sys.faults()
    );
    assert!(sys.world().sp_alive(sys.sp_id()), "the partition died");
}

/// The same suite with the partition on the test's own thread (the fuzzer's and the
/// benchmark's world): the same results, so that what they measure is the real thing.
#[test]
fn the_partition_conforms_inline_as_it_does_on_its_own_thread() {
    let sys = InlineSystem::start().expect("simulated world starts");
    let mut backend = InlineBackend::new(&sys);
    let results = conformance::run(&mut backend, &[Dialect::G3, Dialect::G2]);
    conforms(&results);
    assert!(
        sys.faults().is_empty(),
        "simulator faults: {:?}",
        sys.faults()
    );
}

/// Every check ran in both dialects and passed or is not applicable, but for the known
/// failures (which must still fail and name a check).
fn conforms(results: &[conformance::CheckResult]) {
    assert_eq!(
        results.len(),
        2 * CHECKS.len(),
        "every check ran in both dialects"
    );
    let mut unexpected = Vec::new();
    for r in results {
        let known = known_failure(r.check.id, r.dialect).map(|k| k.defect);
        match (&r.outcome, known) {
            (Outcome::Fail(why), None) => {
                unexpected.push(format!("{} {:?} failed: {why}", r.check.id, r.dialect));
            }
            (Outcome::Fail(_), Some(_)) => {}
            (outcome, Some(defect)) => unexpected.push(format!(
                "{} {:?} is a known failure ({defect}) but is now {}: remove it from KNOWN_FAILURES",
                r.check.id,
                r.dialect,
                outcome.name()
            )),
            (_, None) => {}
        }
    }
    for k in KNOWN_FAILURES {
        assert!(
            results
                .iter()
                .any(|r| r.check.id == k.id && r.dialect == k.dialect),
            "known failure {} {:?} names no check",
            k.id,
            k.dialect
        );
    }
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
    let counts = Counts::of(results);
    assert!(counts.passed > 0);
    assert_eq!(counts.failed, KNOWN_FAILURES.len());
}

#[test]
fn json_lists_every_result() {
    let sys = SimSystem::start().expect("simulated world starts");
    let mut backend = SimBackend::new(&sys);
    let results = conformance::run(&mut backend, &[Dialect::G3]);
    let json = conformance::json(&results);
    assert!(json.starts_with('[') && json.trim_end().ends_with(']'));
    assert_eq!(json.matches("\"id\": ").count(), results.len());
    assert!(
        sys.faults().is_empty(),
        "simulator faults: {:?}",
        sys.faults()
    );
}
