//! The payload's checks run against the simulated FF-A world (the partition core in-process),
//! through the same `Machine` interface the image implements over `smc`.

use ffa::{
    Ffa,
    sim::{SimConduit, VmEndpoint, World},
};
use nwd_payload::{
    BANNER,
    concurrent::{self, CpuCounts, CpuFailure, Job},
    flow::{self, Machine, NO_FFA, NO_PARTITION},
    machine::CpuStart,
};
use vmsg_host::{
    SimSystem,
    conformance::{CHECKS, KNOWN_FAILURES, dialect_name, known_failure},
};

/// A normal-world endpoint of the simulated world as the payload's machine, with `cpus`
/// CPUs: threads, each with a conduit of its own on the same endpoint.
struct SimMachine {
    endpoint: VmEndpoint,
    rxtx: u64,
    cpus: usize,
    ready: usize,
}

impl SimMachine {
    fn new(world: &World, id: u16) -> Self {
        Self::with_cpus(world, id, 4)
    }

    fn with_cpus(world: &World, id: u16, cpus: usize) -> Self {
        let endpoint = world.add_vm(id);
        let rxtx = endpoint.alloc(2);
        Self {
            endpoint,
            rxtx,
            cpus,
            ready: 0,
        }
    }
}

impl Machine for SimMachine {
    type Conduit = SimConduit;
    type Platform = VmEndpoint;

    fn conduit(&mut self) -> Option<SimConduit> {
        Some(self.endpoint.conduit())
    }

    fn rxtx(&self) -> (u64, u64, u32) {
        (self.rxtx, self.rxtx + 4096, 1)
    }

    fn platform(&self) -> &VmEndpoint {
        &self.endpoint
    }

    fn no_ffa_reason(&self) -> &'static str {
        "simulated"
    }

    fn start_cpus(&mut self, max: usize) -> CpuStart {
        match self.cpus.min(max) {
            0 | 1 => CpuStart::One("the machine has one CPU".into()),
            n => {
                self.ready = n;
                CpuStart::Ready(n)
            }
        }
    }

    fn run_on_cpus(&mut self, job: &Job) -> Vec<Result<CpuCounts, CpuFailure>> {
        let endpoint = &self.endpoint;
        std::thread::scope(|s| {
            let others: Vec<_> = (1..self.ready)
                .map(|cpu| {
                    let conduit = endpoint.conduit();
                    s.spawn(move || concurrent::drive(&mut Ffa::new(conduit), job, cpu))
                })
                .collect();
            let first = concurrent::drive(&mut Ffa::new(endpoint.conduit()), job, 0);
            std::iter::once(Ok(first))
                .chain(others.into_iter().map(|h| {
                    h.join()
                        .map_err(|_| CpuFailure::Lost("the thread panicked".into()))
                }))
                .collect()
        })
    }
}

fn lines(out: &str) -> Vec<&str> {
    out.lines().collect()
}

/// Whether a `FAIL` line is a known conformance failure (a named partition defect).
fn is_known_failure(line: &str) -> bool {
    let mut words = line.split_whitespace().skip(1);
    let (Some(id), Some(dialect)) = (words.next(), words.next()) else {
        return false;
    };
    [ffa::bus::Dialect::G3, ffa::bus::Dialect::G2]
        .into_iter()
        .any(|d| {
            dialect.strip_suffix(':') == Some(dialect_name(d))
                && known_failure(id, d).is_some_and(|k| line.contains(k.defect))
        })
}

#[test]
fn every_check_passes_against_the_partition() {
    let sys = SimSystem::start().unwrap();
    let mut machine = SimMachine::new(sys.world(), 1);
    let mut out = String::new();
    let summary = flow::run(&mut machine, &mut out);
    println!("{out}");
    let lines = lines(&out);
    assert_eq!(lines.first(), Some(&BANNER));
    // Every failure is a known conformance failure, naming its defect.
    let failures: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("FAIL"))
        .collect();
    assert!(failures.iter().all(|l| is_known_failure(l)), "{out}");
    assert_eq!(summary.failed as usize, KNOWN_FAILURES.len(), "{out}");
    assert_eq!(
        lines.last().copied(),
        Some(format!("{} passed, {} failed", summary.passed, summary.failed).as_str())
    );
    for needle in [
        "PASS ffa: FFA_VERSION",
        "PASS ffa: FFA_ID_GET (endpoint 0x0001)",
        "PASS ffa: FFA_RXTX_MAP",
        "PASS ffa: FFA_PARTITION_INFO_GET (partition 0x8001",
        "PASS ffa: partition properties",
        "PASS g3: version negotiated",
        "PASS g3: ping",
        "PASS g3: FFA_MEM_SHARE + AREA_SHARE, AREA_UNSHARE + FFA_MEM_RECLAIM",
        "PASS g3: GET_DEVICES (4 device(s): 0 entropy, 1 block, 2 console, 3 vsock)",
        "PASS g3: rng 0: initialised",
        "PASS g3: rng 0: read 65536 bytes",
        "PASS g3: rng 0: second read",
        "PASS g3: rng 0: closed",
        "PASS g3: blk: 32768 bytes written, read back equal",
        "PASS g3: console: the shell answered `version`: vmsg-sp",
        "PASS g3: vsock: 46 bytes to the echo service (port 7) and back",
        "PASS g3: bus RESET",
        "PASS g2: version negotiated",
        "PASS g2: rng 0: read 65536 bytes",
        "PASS g2: rng 0: closed",
        "PASS g2: GET_DEVICES (4 device(s): 0 entropy, 1 block, 2 console, 3 vsock)",
        "PASS g2: blk: 32768 bytes written, read back equal",
        "PASS g2: console: the shell answered `version`: vmsg-sp",
        "PASS g2: vsock: 46 bytes to the echo service (port 7) and back",
        "PASS g3 direct+notify: notification 0 rung by the partition and drained",
        "PASS g3 direct+pushed: rng 0: read 16384 bytes in 4 requests",
        "PASS g3 indirect: rng 0: read 16384 bytes in 4 requests",
        "PASS g3 indirect: bus RESET, no stray message",
        "INFO concurrent: the partition reports 1 execution context",
        "INFO concurrent: cpu 3: 200 done, busy ",
        "PASS concurrent: 4 CPUs x 200 requests: 800 done, busy ",
        ", errors 0 (PING and GET_DEVICES; 1 execution context: busy allowed, fewer contexts than CPUs)",
        "INFO conformance suite: ",
        "PASS V10 g3: ",
        "PASS V24 g2: ",
        "PASS FB-POLL-1 g3: ",
        "PASS FB-AREA-2 g2: ",
        "PASS FF-RESP-1 g3: ",
        "INFO n/a FB-POLL-1 g2: ",
        "INFO n/a V13 g3: ",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    // Every check has exactly one line per dialect: PASS, FAIL or INFO n/a.
    for check in CHECKS {
        for d in ["g3", "g2"] {
            let tag = format!(" {} {d}: ", check.id);
            let n = lines
                .iter()
                .filter(|l| {
                    (l.starts_with("PASS") || l.starts_with("FAIL") || l.starts_with("INFO n/a"))
                        && l.contains(&tag)
                })
                .count();
            assert_eq!(n, 1, "{} {d}: {n} lines in\n{out}", check.id);
        }
    }
    // G2 has no RESET; the second dialect is reached only through the partition's reset.
    assert!(!out.contains("g2: bus RESET"));
    assert!(sys.faults().is_empty(), "{:?}", sys.faults());
}

#[test]
fn no_partition_is_reported_and_counted_as_a_failure() {
    // A world without the partition: FF-A answers, but nobody offers the virtio-msg UUID.
    let world = World::new();
    let mut machine = SimMachine::new(&world, 1);
    let mut out = String::new();
    let summary = flow::run(&mut machine, &mut out);
    assert!(!summary.ok());
    assert_eq!(summary.failed, 1, "{out}");
    let lines = lines(&out);
    assert!(lines.contains(&NO_PARTITION), "{out}");
    assert!(out.contains("FAIL ffa: FFA_PARTITION_INFO_GET"), "{out}");
    assert_eq!(
        lines.last().copied(),
        Some(format!("{} passed, 1 failed", summary.passed).as_str())
    );
    assert!(
        !out.contains("g3:"),
        "the bus is not tried without a partition"
    );
}

/// A machine whose SMCs nobody answers (SMCCC NOT_SUPPORTED in x0), as on QEMU without EL3.
struct NoFirmware;

struct NotSupported;

impl ffa::Conduit for NotSupported {
    fn call(&mut self, _regs: [u64; 18]) -> [u64; 18] {
        let mut out = [0; 18];
        out[0] = u64::MAX;
        out
    }
    fn tx(&mut self) -> &mut [u8] {
        &mut []
    }
    fn rx(&self) -> &[u8] {
        &[]
    }
}

impl Machine for NoFirmware {
    type Conduit = NotSupported;
    type Platform = VmEndpoint;

    fn conduit(&mut self) -> Option<NotSupported> {
        Some(NotSupported)
    }
    fn rxtx(&self) -> (u64, u64, u32) {
        (0, 0, 1)
    }
    fn platform(&self) -> &VmEndpoint {
        unreachable!("no driver memory is needed without FF-A")
    }
    fn no_ffa_reason(&self) -> &'static str {
        "nobody home"
    }
    fn start_cpus(&mut self, _max: usize) -> CpuStart {
        unreachable!("no concurrent test without FF-A")
    }
    fn run_on_cpus(&mut self, _job: &Job) -> Vec<Result<CpuCounts, CpuFailure>> {
        unreachable!("no concurrent test without FF-A")
    }
}

#[test]
fn no_ffa_is_reported_and_counted_as_a_failure() {
    let mut out = String::new();
    let summary = flow::run(&mut NoFirmware, &mut out);
    assert_eq!((summary.passed, summary.failed), (0, 1));
    assert_eq!(
        lines(&out),
        [
            BANNER,
            &format!("{NO_FFA}: nobody home (FFA_ERROR NotSupported)"),
            "FAIL ffa: FFA_VERSION not answered: FFA_ERROR NotSupported",
            NO_PARTITION,
            "0 passed, 1 failed",
        ]
    );
}

#[test]
fn with_one_cpu_the_concurrent_test_is_not_applicable() {
    let sys = SimSystem::start().unwrap();
    let mut machine = SimMachine::with_cpus(sys.world(), 1, 1);
    let mut out = String::new();
    let summary = flow::run(&mut machine, &mut out);
    assert!(
        out.contains("INFO n/a concurrent: the machine has one CPU"),
        "{out}"
    );
    assert!(!out.contains("PASS concurrent"), "{out}");
    assert!(!out.contains("FAIL concurrent"), "{out}");
    assert_eq!(summary.failed as usize, KNOWN_FAILURES.len(), "{out}");
}

#[test]
fn the_concurrent_test_alone_counts_every_request() {
    // Two CPUs straight against the partition, without the rest of the flow: each finds its
    // own answers, and the busy answers of the UP partition are retried, not lost.
    let sys = SimSystem::start().unwrap();
    let mut machine = SimMachine::with_cpus(sys.world(), 1, 2);
    let mut ffa = Ffa::new(machine.endpoint.conduit());
    ffa.version(ffa::FFA_VERSION).unwrap();
    let mut session =
        vmsg_host::session::BusSession::connect(ffa, 1, sys.sp_id(), ffa::bus::Dialect::G3, false)
            .unwrap();
    let numbers = session.devices().unwrap();
    assert_eq!(numbers, [0, 1, 2, 3]);
    let job = Job::new(1, sys.sp_id(), 50, &numbers);
    assert_eq!(machine.start_cpus(4), CpuStart::Ready(2));
    let results = machine.run_on_cpus(&job);
    assert_eq!(results.len(), 2);
    for r in &results {
        let c = r.as_ref().unwrap();
        assert_eq!((c.done, c.errors), (50, 0), "{c:?}");
    }
    // A job expecting other devices finds the difference.
    let wrong = Job::new(1, sys.sp_id(), 2, &[0]);
    let counts = concurrent::drive(&mut Ffa::new(machine.endpoint.conduit()), &wrong, 0);
    assert_eq!((counts.done, counts.errors), (1, 1), "{counts:?}");
    assert!(sys.faults().is_empty(), "{:?}", sys.faults());
}
