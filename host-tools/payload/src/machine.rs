//! What the payload needs from the machine it runs on: [`Machine`] (the image implements it
//! over `smc`, host tests over the simulated FF-A world).

use alloc::{string::String, vec::Vec};

use ffa::Conduit;
use vmsg_host::Platform;

use crate::concurrent::{CpuCounts, CpuFailure, Job};

/// What [`Machine::start_cpus`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpuStart {
    /// Only the boot CPU can take part (why: e.g. the machine has one CPU).
    One(String),
    /// This many CPUs, the boot CPU included, wait for [`Machine::run_on_cpus`].
    Ready(usize),
    /// Starting a CPU failed (what happened); none waits for a job.
    Failed(String),
}

/// What the flow needs from the machine it runs on.
pub trait Machine {
    /// The FF-A conduit (`smc` on the machine).
    type Conduit: Conduit;
    /// Driver memory.
    type Platform: Platform;

    /// A conduit over the endpoint's RX/TX buffers; `None` while another one is alive (each
    /// bus session owns one, and they are opened one after the other).
    fn conduit(&mut self) -> Option<Self::Conduit>;
    /// (TX address, RX address, pages of each) for `FFA_RXTX_MAP`.
    fn rxtx(&self) -> (u64, u64, u32);
    /// Driver memory for rings and buffers.
    fn platform(&self) -> &Self::Platform;
    /// How a missing FF-A showed itself (called after `FFA_VERSION` got no answer).
    fn no_ffa_reason(&self) -> &'static str;
    /// Brings up to `max` CPUs (the boot CPU included) to where they wait for a job, for the
    /// concurrent test. Called at most once.
    fn start_cpus(&mut self, max: usize) -> CpuStart;
    /// Runs [`crate::concurrent::drive`] of `job` on every CPU [`Machine::start_cpus`] made
    /// ready, all at once, the boot CPU (number 0) included, each with a conduit of its own
    /// (registers only); returns each CPU's counts, in CPU order. Every wait is bounded: a CPU
    /// that does not finish in time is [`CpuFailure::TimedOut`].
    fn run_on_cpus(&mut self, job: &Job) -> Vec<Result<CpuCounts, CpuFailure>>;
}
