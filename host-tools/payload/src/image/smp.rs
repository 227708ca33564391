//! The secondary CPUs, for the concurrent test ([`nwd_payload::concurrent`]).
//!
//! [`start`] reads the CPUs from the device tree QEMU left at [`DTB_BASE`], powers up to
//! three others than the boot CPU with PSCI `CPU_ON` (aarch64-rt's `start_core`: its
//! secondary entry turns on the MMU with the same [initial page table](super::mmu), which maps
//! the whole image window, their stacks in .bss included, and the UART), each on a stack of its
//! own, and waits (bounded) until each says it is up. A secondary then waits for the job
//! ([`run`] posts it; bounded too), runs its share with a conduit of its own (`smc`,
//! registers only: the RX/TX buffers stay with the boot CPU's session), posts its counts and
//! powers itself off with `CPU_OFF`. The secondaries run one job per boot.

use alloc::{format, string::String, vec::Vec};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use aarch64_cpu::registers::{MPIDR_EL1, Readable};
use aarch64_rt::Stack;
use ffa::{Ffa, arch::smc::SmcCalls};
use nwd_payload::{
    DTB_BASE, DTB_MAX_SIZE, SECONDARY_STACK_PAGES,
    concurrent::{self, CpuCounts, CpuFailure, Job, MAX_CPUS},
    fdt,
    machine::CpuStart,
};
use spin::Once;

use super::{clock, power};

/// Secondary CPUs the payload can run (the slots below).
const SECONDARIES: usize = MAX_CPUS - 1;
/// How long a started CPU may take to say it is up.
const START_TIMEOUT_MS: u64 = 10_000;
/// How long a secondary waits for the job before it powers off.
const JOB_TIMEOUT_MS: u64 = 60_000;
/// How long the boot CPU waits for the secondaries' counts once its own share is done.
const RESULT_TIMEOUT_MS: u64 = 300_000;
/// The affinity fields of MPIDR_EL1 (Aff3, Aff2..Aff0), as PSCI `CPU_ON` takes them.
const MPIDR_AFFINITY: u64 = 0xff_00ff_ffff;

type SecondaryStack = Stack<SECONDARY_STACK_PAGES>;

/// The secondaries' stacks, one per slot; each is handed to one CPU by `start_core` and used
/// by nothing else afterwards.
static mut STACKS: [SecondaryStack; SECONDARIES] = [const { Stack::new() }; SECONDARIES];

/// Where a secondary slot is.
const OFF: u8 = 0;
const STARTING: u8 = 1;
const WAITING: u8 = 2;
const RUNNING: u8 = 3;
const DONE: u8 = 4;
const GAVE_UP: u8 = 5;

static STATE: [AtomicU8; SECONDARIES] = [const { AtomicU8::new(OFF) }; SECONDARIES];
/// Secondaries started (slots `0..STARTED` are in use).
static STARTED: AtomicUsize = AtomicUsize::new(0);
/// The job, once posted; `None` tells waiting secondaries there is none.
static JOB: Once<Option<Job>> = Once::new();
/// Each secondary's counts.
static RESULTS: [Once<CpuCounts>; SECONDARIES] = [const { Once::new() }; SECONDARIES];

/// The device tree QEMU left at [`DTB_BASE`], if its header is there and its size sane.
fn device_tree() -> Result<&'static [u8], String> {
    let base = usize::try_from(DTB_BASE).map_err(|_| String::from("DTB_BASE"))?;
    let ptr = core::ptr::with_exposed_provenance::<u8>(base);
    let mut header = [0u8; 8];
    // SAFETY: DTB_BASE is the start of QEMU's non-secure RAM, identity-mapped as normal
    // readable memory (mmu.rs), outside the image and driver memory windows (asserted below),
    // which nobody writes while the payload runs; 8 bytes are read into a local array.
    unsafe { core::ptr::copy_nonoverlapping(ptr, header.as_mut_ptr(), header.len()) };
    let size = fdt::total_size(&header).map_err(|e| format!("at {DTB_BASE:#x}: {e}"))?;
    if u64::try_from(size).map_or(true, |s| s > DTB_MAX_SIZE) {
        return Err(format!(
            "the device tree at {DTB_BASE:#x} claims {size} bytes"
        ));
    }
    // SAFETY: `size` bytes from DTB_BASE (at most DTB_MAX_SIZE, checked above) lie in the
    // same mapped, unwritten RAM below the image window (asserted below); the slice is only
    // read.
    Ok(unsafe { core::slice::from_raw_parts(ptr, size) })
}

const _: () = assert!(DTB_BASE + DTB_MAX_SIZE <= nwd_payload::LOAD_ADDRESS);
const _: () = assert!(DTB_BASE >= nwd_payload::NS_DRAM.0);

/// Starts up to `max - 1` secondary CPUs (see the module docs).
pub fn start(max: usize) -> CpuStart {
    if STARTED.load(Ordering::Acquire) != 0 || JOB.is_completed() {
        return CpuStart::Failed(String::from("the secondary CPUs were started already"));
    }
    let cpus = match device_tree().and_then(|t| fdt::cpu_mpidrs(t).map_err(|e| format!("{e}"))) {
        Ok(cpus) => cpus,
        Err(why) => return CpuStart::One(format!("CPUs unknown: {why}")),
    };
    let me = MPIDR_EL1.get() & MPIDR_AFFINITY;
    let others: Vec<u64> = cpus
        .iter()
        .map(|m| m & MPIDR_AFFINITY)
        .filter(|m| *m != me)
        .take(max.saturating_sub(1).min(SECONDARIES))
        .collect();
    if others.is_empty() {
        return CpuStart::One(format!(
            "the machine has one CPU (device tree: {} CPU(s))",
            cpus.len()
        ));
    }
    for (slot, &mpidr) in others.iter().enumerate() {
        let Some(state) = STATE.get(slot) else {
            break;
        };
        state.store(STARTING, Ordering::Release);
        let stack = (&raw mut STACKS)
            .cast::<SecondaryStack>()
            .wrapping_add(slot);
        // SAFETY: `stack` is slot `slot` of STACKS (slot < SECONDARIES: `others` holds at most
        // that many), which only this CPU is handed (each slot once per boot: STARTED and the
        // check above); it lies in .bss, mapped read-write normal memory both here and in the
        // initial page table the started CPU turns on (the same table, so the same attributes).
        let started = unsafe {
            aarch64_rt::start_core::<power::ConduitCall, _, SECONDARY_STACK_PAGES>(
                mpidr,
                stack,
                move || secondary_entry(slot),
            )
        };
        if let Err(e) = started {
            state.store(OFF, Ordering::Release);
            STARTED.store(slot, Ordering::Release);
            release();
            return CpuStart::Failed(format!("PSCI CPU_ON({mpidr:#x}): {e}"));
        }
        STARTED.store(slot + 1, Ordering::Release);
    }
    let n = STARTED.load(Ordering::Acquire);
    let up = clock::wait_until(START_TIMEOUT_MS, || {
        STATE
            .iter()
            .take(n)
            .all(|s| s.load(Ordering::Acquire) >= WAITING)
    });
    if !up {
        release();
        let late: Vec<String> = STATE
            .iter()
            .zip(&others)
            .take(n)
            .filter(|(s, _)| s.load(Ordering::Acquire) < WAITING)
            .map(|(_, m)| format!("{m:#x}"))
            .collect();
        return CpuStart::Failed(format!(
            "CPU(s) {} accepted CPU_ON but did not come up in {START_TIMEOUT_MS} ms",
            late.join(", ")
        ));
    }
    CpuStart::Ready(n + 1)
}

/// Tells secondaries waiting for a job that there is none.
fn release() {
    JOB.call_once(|| None);
}

/// Posts `job`, runs the boot CPU's share, and collects every started secondary's counts
/// (bounded wait).
pub fn run(job: &Job) -> Vec<Result<CpuCounts, CpuFailure>> {
    let posted = *JOB.call_once(|| Some(*job));
    let n = STARTED.load(Ordering::Acquire);
    let mut results = Vec::new();
    results.push(Ok(concurrent::drive(&mut Ffa::new(SmcCalls), job, 0)));
    let start = clock::Instant::now();
    for (slot, result) in RESULTS.iter().enumerate().take(n) {
        let left = RESULT_TIMEOUT_MS.saturating_sub(start.elapsed_ms());
        let got = posted.is_some() && clock::wait_until(left, || result.is_completed());
        results.push(match result.get() {
            Some(counts) if got => Ok(*counts),
            _ if posted.is_none() => Err(CpuFailure::Lost(String::from("no job was posted"))),
            _ => match STATE.get(slot).map(|s| s.load(Ordering::Acquire)) {
                Some(GAVE_UP) => Err(CpuFailure::Lost(String::from(
                    "it stopped waiting for the job before it came",
                ))),
                _ => Err(CpuFailure::TimedOut {
                    waited_ms: start.elapsed_ms(),
                }),
            },
        });
    }
    results
}

/// Where a secondary CPU starts (from aarch64-rt's trampoline, MMU on, stack set): lets EL2
/// use FP/SIMD before any code that may (kept out of line, like the boot CPU's `main`).
#[inline(never)]
fn secondary_entry(slot: usize) -> ! {
    super::fp::allow_fp_at_el2();
    secondary(slot)
}

/// A secondary CPU: up, waits for the job (bounded), runs its share, posts the counts and
/// powers off.
#[inline(never)]
fn secondary(slot: usize) -> ! {
    let (Some(state), Some(result)) = (STATE.get(slot), RESULTS.get(slot)) else {
        power::cpu_off()
    };
    state.store(WAITING, Ordering::Release);
    clock::wait_until(JOB_TIMEOUT_MS, || JOB.is_completed());
    match JOB.get() {
        Some(Some(job)) => {
            state.store(RUNNING, Ordering::Release);
            let counts = concurrent::drive(&mut Ffa::new(SmcCalls), job, slot + 1);
            result.call_once(|| counts);
            state.store(DONE, Ordering::Release);
        }
        Some(None) => state.store(DONE, Ordering::Release),
        None => state.store(GAVE_UP, Ordering::Release),
    }
    power::cpu_off()
}
