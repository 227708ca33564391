//! A simulated FF-A world: an SPMC in software, normal-world endpoints (VMs), secure
//! partitions running on their own threads, and normal-world memory with enforced windows.
//!
//! It exists so host tests can prove that a partition touches normal-world memory only
//! where it was shared and retrieved, and as the default backend of the `vmsg` CLI. It
//! follows the FF-A rules (with Hafnium's choice of error code where the spec leaves one),
//! not any partition's convenience.
//!
//! - [`World`]: the SPMC and its state. Cloneable handle; dropping the last [`World`] (and
//!   every [`VmEndpoint`] and VM [`SimConduit`], which hold one) shuts it down.
//! - [`VmEndpoint`]: a normal-world endpoint. It allocates memory ([`VmEndpoint::alloc`]),
//!   touches only pages it owns and has not lent, and issues FF-A calls through
//!   [`VmEndpoint::conduit`] (one conduit per thread).
//! - [`World::spawn_sp`]: runs a partition's `main(SimConduit, SimMapper)` on a thread and
//!   returns once it has finished booting (its first FFA_MSG_WAIT), as an SPMC boots its
//!   partitions before the normal world runs.
//! - [`SimMapper`]: the partition's [`crate::memory::NsMapper`].
//! - [`Fault`]: a refused memory access, recorded in the world ([`World::faults`]).
//!
//! # Modelled ABIs and rules
//!
//! FFA_VERSION (v1.1 and v1.2; locked once another call was made), FFA_FEATURES, FFA_ID_GET,
//! FFA_SPM_ID_GET, FFA_RXTX_MAP/UNMAP (one 4 KiB page each; a VM's buffers must be pages it
//! owns, and stay reserved while mapped), FFA_RX_RELEASE and RX ownership (a call that fills
//! RX while the caller still owns it is BUSY; FFA_MSG_WAIT releases it unless told to retain
//! it), FFA_PARTITION_INFO_GET, FFA_MSG_WAIT, FFA_MSG_SEND_DIRECT_REQ(2)/RESP(2) (VM to
//! partition; BUSY while the partition handles another request; ABORTED once its thread has
//! ended), the VM created/destroyed framework messages, FFA_MEM_SHARE/LEND,
//! FFA_MEM_RETRIEVE_REQ/RESP, FFA_MEM_RELINQUISH, FFA_MEM_RECLAIM, FFA_NOTIFICATION_*
//! (global notifications only) and FFA_CONSOLE_LOG. Anything else is NOT_SUPPORTED.
//!
//! Deliberate limits: no fragmented memory descriptors and no descriptors outside the TX
//! buffer (NOT_SUPPORTED), no FFA_MEM_DONATE, memory is shared only from VMs to partitions,
//! partitions do not send direct requests, no FFA_YIELD/FFA_RUN/interrupts, no indirect
//! messaging. A retrieval is counted once: a second FFA_MEM_RETRIEVE_REQ by the same receiver
//! before it relinquishes is DENIED (Hafnium behaves the same). FFA_ERROR from a partition is
//! an abort during boot (with ABORTED) and NOT_SUPPORTED otherwise: a request must be
//! answered with a direct response, as under Hafnium.
//!
//! Each conduit keeps its own RX and TX buffers; a call reads the TX buffer and fills the RX
//! buffer of the conduit that issued it.

mod abi;
mod mapper;
mod ns_memory;
mod state;
#[cfg(test)]
mod tests;

use std::{
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use arm_ffa::{
    FfaError, Interface, Version,
    interface_args::{DirectMsgArgs, VmAvailabilityStatus},
    memory_management::Handle,
};

pub use mapper::{MAX_MAPPINGS, SimMapper};
use state::{Endpoint, Kind, Regs, ReqKind, Sp, SpRun, State};

use crate::Conduit;

/// Base of the simulated normal-world physical memory.
pub const NS_BASE: u64 = 0x4000_0000;
/// Endpoint id of the SPMC.
pub const SPMC_ID: u16 = 0x8000;
/// Endpoint id the framework messages come from (the hypervisor's).
pub const HYPERVISOR_ID: u16 = 0;
/// Size of each conduit's RX and TX buffer.
pub const BUF_SIZE: usize = 4096;

/// How long [`World::spawn_sp`] waits for a partition to finish booting.
const BOOT_TIMEOUT: Duration = Duration::from_secs(10);

/// FF-A partition properties (partition-info descriptor, FF-A v1.2 Table 6.2).
pub mod props {
    /// Receives direct requests (FFA_MSG_SEND_DIRECT_REQ).
    pub const DIRECT_REQ_RECV: u32 = 1 << 0;
    /// Sends direct requests.
    pub const DIRECT_REQ_SEND: u32 = 1 << 1;
    /// Sends and receives indirect messages.
    pub const INDIRECT_MSG: u32 = 1 << 2;
    /// Receives notifications.
    pub const NOTIFICATION_RECV: u32 = 1 << 3;
    /// Wants the "VM created" framework message.
    pub const VM_CREATED: u32 = 1 << 6;
    /// Wants the "VM destroyed" framework message.
    pub const VM_DESTROYED: u32 = 1 << 7;
    /// Runs in AArch64 state.
    pub const AARCH64: u32 = 1 << 8;
    /// Receives FFA_MSG_SEND_DIRECT_REQ2.
    pub const DIRECT_REQ2_RECV: u32 = 1 << 9;
    /// Sends FFA_MSG_SEND_DIRECT_REQ2.
    pub const DIRECT_REQ2_SEND: u32 = 1 << 10;
}

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

/// The world's shared core: state and the condition variable every blocked call waits on.
pub(crate) struct Inner {
    state: Mutex<State>,
    cv: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.cv.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    fn wait_timeout<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        self.cv
            .wait_timeout(guard, timeout)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0)
    }

    fn shutdown(&self) {
        self.lock().shutdown = true;
        self.cv.notify_all();
    }
}

/// Shuts the world down when the last owning handle goes.
struct Owner(Arc<Inner>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// The simulated FF-A world (see the module docs).
#[derive(Clone)]
pub struct World {
    inner: Arc<Inner>,
    _owner: Arc<Owner>,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// An empty world.
    pub fn new() -> Self {
        let inner = Arc::new(Inner {
            state: Mutex::new(State::new()),
            cv: Condvar::new(),
        });
        Self {
            _owner: Arc::new(Owner(inner.clone())),
            inner,
        }
    }

    /// Adds normal-world endpoint `id` (below 0x8000) and returns it.
    ///
    /// # Panics
    /// If `id` is not a normal-world id or is taken (a test-harness bug, not endpoint input).
    #[allow(clippy::panic)] // Harness misuse: fail the test loudly.
    pub fn add_vm(&self, id: u16) -> VmEndpoint {
        let mut st = self.inner.lock();
        if id >= SPMC_ID || st.endpoints.contains_key(&id) {
            panic!("sim: VM id {id:#06x} is not a free normal-world id");
        }
        st.endpoints.insert(id, Endpoint::new(Kind::Vm));
        VmEndpoint {
            world: self.clone(),
            id,
        }
    }

    /// Starts secure partition `info` running `main` on its own thread, and returns once it
    /// has booted (called FFA_MSG_WAIT) or ended. When its thread ends (returns or panics)
    /// the partition is aborted: a pending request gets FFA_ERROR(ABORTED), and so does every
    /// later one.
    ///
    /// # Panics
    /// If `info.id` is not a free secure id above the SPMC's (a test-harness bug).
    #[allow(clippy::panic)] // Harness misuse: fail the test loudly.
    pub fn spawn_sp<F>(&self, info: SpInfo, main: F) -> SpHandle
    where
        F: FnOnce(SimConduit, SimMapper) + Send + 'static,
    {
        let id = info.id;
        {
            let mut st = self.inner.lock();
            if id <= SPMC_ID || st.endpoints.contains_key(&id) {
                panic!("sim: SP id {id:#06x} is not a free secure partition id");
            }
            let sp = Sp {
                info,
                run: SpRun::Init,
                inbox: None,
                mappings: Vec::new(),
                next_va: 0,
            };
            st.endpoints
                .insert(id, Endpoint::new(Kind::Sp(Box::new(sp))));
        }
        let conduit = SimConduit::new(self.inner.clone(), id, None);
        let mapper = SimMapper::new(self.inner.clone(), id);
        let guard = EndGuard(self.inner.clone(), id);
        let thread = std::thread::Builder::new()
            .name(format!("sp-{id:#06x}"))
            .spawn(move || {
                let _guard = guard;
                main(conduit, mapper);
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                log::error!("sim: cannot start partition {id:#06x}: {e}");
                self.inner.lock().abort_sp(id);
                None
            }
        };
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let mut st = self.inner.lock();
        while st
            .sp_mut(id)
            .is_some_and(|sp| matches!(sp.run, SpRun::Init))
            && !st.shutdown
        {
            let now = Instant::now();
            if now >= deadline {
                log::warn!("sim: partition {id:#06x} did not finish booting in {BOOT_TIMEOUT:?}");
                break;
            }
            st = self.inner.wait_timeout(st, deadline - now);
        }
        SpHandle { id, thread }
    }

    /// Faults recorded so far.
    pub fn faults(&self) -> Vec<Fault> {
        self.inner.lock().faults.clone()
    }

    /// Faults recorded so far, clearing the record.
    pub fn take_faults(&self) -> Vec<Fault> {
        core::mem::take(&mut self.inner.lock().faults)
    }

    /// Test helper: panics listing every recorded fault, if any.
    ///
    /// # Panics
    /// If a fault was recorded.
    #[allow(clippy::panic)] // A test assertion; the sim is std-only test infrastructure.
    pub fn assert_no_faults(&self) {
        let faults = self.faults();
        if !faults.is_empty() {
            let list: Vec<String> = faults.iter().map(ToString::to_string).collect();
            panic!(
                "sim recorded {} fault(s):\n{}",
                faults.len(),
                list.join("\n")
            );
        }
    }

    /// Console lines logged with FFA_CONSOLE_LOG so far, with the endpoint that logged each.
    pub fn console(&self) -> Vec<(u16, String)> {
        self.inner.lock().console.clone()
    }

    /// Global notifications pending for endpoint `id` (from partitions and VMs), not cleared.
    pub fn notifications_pending(&self, id: u16) -> u64 {
        self.inner
            .lock()
            .endpoints
            .get(&id)
            .map_or(0, |e| e.notif.from_sp.pending | e.notif.from_vm.pending)
    }

    /// Sends the framework message "VM `vm` created" to partition `sp` (which must subscribe
    /// to it) and waits for its acknowledgement; returns the partition's status.
    pub fn send_vm_created(&self, sp: u16, vm: u16) -> Result<(), FfaError> {
        self.framework(
            sp,
            ReqKind::VmCreated,
            DirectMsgArgs::VmCreated {
                handle: Handle(Handle::INVALID),
                vm_id: vm,
            },
        )
    }

    /// Sends the framework message "VM `vm` destroyed" to partition `sp` (which must
    /// subscribe to it) and waits for its acknowledgement; returns the partition's status.
    pub fn send_vm_destroyed(&self, sp: u16, vm: u16) -> Result<(), FfaError> {
        self.framework(
            sp,
            ReqKind::VmDestroyed,
            DirectMsgArgs::VmDestructed {
                handle: Handle(Handle::INVALID),
                vm_id: vm,
            },
        )
    }

    fn framework(&self, sp: u16, kind: ReqKind, args: DirectMsgArgs) -> Result<(), FfaError> {
        let msg = state::encode(&Interface::MsgSendDirectReq {
            src_id: HYPERVISOR_ID,
            dst_id: sp,
            args,
        });
        let st = self.inner.lock();
        let answer = abi::deliver_request(&self.inner, st, kind, HYPERVISOR_ID, sp, None, msg);
        match Interface::from_regs(Version(1, 2), &answer) {
            Ok(Interface::MsgSendDirectResp {
                args:
                    DirectMsgArgs::VmCreatedAck { sp_status }
                    | DirectMsgArgs::VmDestructedAck { sp_status },
                ..
            }) => match sp_status {
                VmAvailabilityStatus::Success => Ok(()),
                VmAvailabilityStatus::Error(e) => Err(e),
            },
            Ok(Interface::Error { error_code, .. }) => Err(error_code),
            _ => Err(FfaError::InvalidParameters),
        }
    }

    /// Shuts the world down: partitions blocked in FFA_MSG_WAIT or after a direct response
    /// (and any later such call) get FFA_ERROR(ABORTED), so their loops can end; new direct
    /// requests are ABORTED.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    /// Handles of memory transactions not yet reclaimed.
    pub fn outstanding_handles(&self) -> Vec<u64> {
        self.inner.lock().mem.handles()
    }

    /// Whether `endpoint` currently has the memory of `handle` retrieved.
    pub fn is_retrieved(&self, handle: u64, endpoint: u16) -> bool {
        self.inner.lock().mem.is_retrieved(handle, endpoint)
    }

    /// Whether partition `id` exists and has not ended or aborted.
    pub fn sp_alive(&self, id: u16) -> bool {
        self.inner
            .lock()
            .sp_mut(id)
            .is_some_and(|sp| !matches!(sp.run, SpRun::Dead))
    }
}

/// Aborts the partition when its thread ends, however it ends.
struct EndGuard(Arc<Inner>, u16);

impl Drop for EndGuard {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        if std::thread::panicking() {
            log::warn!("sim: partition {:#06x} panicked", self.1);
        }
        st.abort_sp(self.1);
        drop(st);
        self.0.cv.notify_all();
    }
}

/// A running secure partition.
pub struct SpHandle {
    id: u16,
    thread: Option<JoinHandle<()>>,
}

impl SpHandle {
    /// Its endpoint id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Waits for its thread to end; `Err` carries the panic payload if it panicked.
    pub fn join(self) -> std::thread::Result<()> {
        match self.thread {
            Some(t) => t.join(),
            None => Ok(()),
        }
    }
}

/// A normal-world endpoint of a [`World`] (keeps the world alive).
#[derive(Clone)]
pub struct VmEndpoint {
    world: World,
    id: u16,
}

impl VmEndpoint {
    /// Its endpoint id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The world it belongs to.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// A new conduit for this endpoint, with its own RX/TX buffers (one per thread).
    pub fn conduit(&self) -> SimConduit {
        SimConduit::new(self.world.inner.clone(), self.id, Some(self.world.clone()))
    }

    /// Allocates `pages` contiguous, zeroed 4 KiB pages owned by this endpoint; returns the
    /// physical base. Addresses are never reused.
    pub fn alloc(&self, pages: u32) -> u64 {
        self.world.inner.lock().mem.alloc(self.id, pages)
    }

    /// Frees pages this endpoint allocated; they must not be shared, lent or mapped as RX/TX.
    pub fn free(&self, pa: u64, pages: u32) -> Result<(), Fault> {
        let mut st = self.world.inner.lock();
        st.mem.free(self.id, pa, pages).map_err(|reason| {
            let fault = Fault {
                endpoint: self.id,
                addr: pa,
                len: u64::from(pages) * crate::memory::PAGE_SIZE,
                write: true,
                reason,
            };
            st.fault(fault.clone());
            fault
        })
    }

    /// Reads its own memory (pages it owns and has not lent).
    pub fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), Fault> {
        self.access(pa, buf.len(), false)?;
        self.world.inner.lock().mem.copy_out(pa, buf);
        Ok(())
    }

    /// Writes its own memory (pages it owns and has not lent).
    pub fn write(&self, pa: u64, data: &[u8]) -> Result<(), Fault> {
        self.access(pa, data.len(), true)?;
        self.world.inner.lock().mem.copy_in(pa, data);
        Ok(())
    }

    fn access(&self, pa: u64, len: usize, write: bool) -> Result<(), Fault> {
        let mut st = self.world.inner.lock();
        st.mem
            .check_owner_access(self.id, pa, len)
            .map_err(|reason| {
                let fault = Fault {
                    endpoint: self.id,
                    addr: pa,
                    len: ns_memory::to_u64(len),
                    write,
                    reason,
                };
                st.fault(fault.clone());
                fault
            })
    }

    /// Waits until a notification is pending for this endpoint, at most `timeout`; returns
    /// whether one is (it stays pending until FFA_NOTIFICATION_GET).
    pub fn wait_notification(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let inner = &self.world.inner;
        let mut st = inner.lock();
        loop {
            let pending = st
                .endpoints
                .get(&self.id)
                .is_some_and(|e| e.notif.from_sp.pending | e.notif.from_vm.pending != 0);
            let now = Instant::now();
            if pending || now >= deadline || st.shutdown {
                return pending;
            }
            st = inner.wait_timeout(st, deadline - now);
        }
    }
}

/// A [`Conduit`] into a [`World`] for one endpoint, with its own 4 KiB RX and TX buffers.
pub struct SimConduit {
    inner: Arc<Inner>,
    id: u16,
    tx: Vec<u8>,
    rx: Vec<u8>,
    /// VM conduits keep the world alive (partition conduits must not, or it never shuts
    /// down).
    _world: Option<World>,
}

impl SimConduit {
    fn new(inner: Arc<Inner>, id: u16, world: Option<World>) -> Self {
        Self {
            inner,
            id,
            tx: vec![0; BUF_SIZE],
            rx: vec![0; BUF_SIZE],
            _world: world,
        }
    }

    /// The endpoint this conduit calls for.
    pub fn id(&self) -> u16 {
        self.id
    }
}

impl Conduit for SimConduit {
    fn call(&mut self, regs: Regs) -> Regs {
        abi::call(&self.inner, self.id, &regs, &self.tx, &mut self.rx)
    }

    fn tx(&mut self) -> &mut [u8] {
        &mut self.tx
    }

    fn rx(&self) -> &[u8] {
        &self.rx
    }
}
