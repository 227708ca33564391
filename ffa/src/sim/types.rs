//! The simulated world's public vocabulary: fixed endpoint ids and addresses, how a secure
//! partition is described ([`SpInfo`], what its manifest would say) and a refused memory
//! access ([`Fault`]).
//!
//! Endpoint ids follow FF-A v1.2 (DEN0077A) chapter 6, identification and discovery: bit 15
//! is set for secure-world ids; the SPMC's is 0x8000, as in Hafnium.

use super::props;

/// Base of the simulated normal-world physical memory.
pub const NS_BASE: u64 = 0x4000_0000;
/// Endpoint id of the SPMC.
pub const SPMC_ID: u16 = 0x8000;
/// Endpoint id the framework messages come from (the hypervisor's).
pub const HYPERVISOR_ID: u16 = 0;
/// Size of each conduit's RX and TX buffer.
pub const BUF_SIZE: usize = 4096;

/// A refused memory access (or misuse of memory) by an endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Endpoint that made the access.
    pub endpoint: u16,
    /// Address it used (virtual for a partition's mapped accesses, else physical).
    pub addr: u64,
    /// Length in bytes.
    pub len: u64,
    /// It was a write.
    pub write: bool,
    /// Why it was refused.
    pub reason: &'static str,
}

impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "fault: endpoint {:#06x} {} {:#x}+{:#x}: {}",
            self.endpoint,
            if self.write { "write" } else { "read" },
            self.addr,
            self.len,
            self.reason
        )
    }
}

/// How a secure partition is set up (what its manifest would say).
#[derive(Clone, Debug)]
pub struct SpInfo {
    /// Endpoint id (0x8001 or above).
    pub id: u16,
    /// UUIDs of the services it implements (at least one to be discoverable).
    pub uuids: Vec<uuid::Uuid>,
    /// Partition properties ([`props`]).
    pub properties: u32,
    /// Execution contexts.
    pub exec_ctx_count: u16,
    /// The SPMC mapped its RX/TX buffers at boot (no FFA_RXTX_MAP needed or allowed).
    pub rxtx_premapped: bool,
}

impl SpInfo {
    /// A partition serving `uuids` with the properties a virtio-msg device partition
    /// advertises: direct requests (both ABIs), notifications, AArch64; one execution
    /// context; buffers mapped with FFA_RXTX_MAP.
    pub fn new(id: u16, uuids: Vec<uuid::Uuid>) -> Self {
        Self {
            id,
            uuids,
            properties: props::DIRECT_REQ_RECV
                | props::NOTIFICATION_RECV
                | props::AARCH64
                | props::DIRECT_REQ2_RECV,
            exec_ctx_count: 1,
            rxtx_premapped: false,
        }
    }
}

std::thread_local! {
    /// Depth of simulator code running on this thread (see [`in_simulator`]).
    static SIMULATING: core::cell::Cell<u32> = const { core::cell::Cell::new(0) };
}

/// Whether this thread is running the simulated world's own code — an FF-A call or a mapping
/// being served — rather than an endpoint's. The simulated SPMC runs on its caller's thread,
/// so a test that fails a partition's allocations (to exhaust its heap) asks this to leave
/// the simulator's alone. Allocation-free.
pub fn in_simulator() -> bool {
    SIMULATING.with(|s| s.get() > 0)
}

/// Runs `f` as simulator code (see [`in_simulator`]).
pub(crate) fn simulating<R>(f: impl FnOnce() -> R) -> R {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            SIMULATING.with(|s| s.set(s.get().saturating_sub(1)));
        }
    }
    SIMULATING.with(|s| s.set(s.get().saturating_add(1)));
    let _leave = Leave;
    f()
}
