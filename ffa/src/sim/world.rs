//! The test harness's view of the simulated world: [`World`] (create it, add VMs, spawn
//! partitions, inspect faults, console and memory), [`VmEndpoint`] (a normal-world endpoint
//! with its own pages) and [`SpHandle`] (a partition's thread).
//!
//! It also plays the hypervisor's part for the VM created/destroyed framework messages
//! (FF-A v1.2 (DEN0077A), the VM availability framework messages sent with
//! FFA_MSG_SEND_DIRECT_REQ).

use std::{
    collections::BTreeMap,
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use arm_ffa::{
    FfaError, Interface, Version,
    interface_args::{DirectMsgArgs, VmAvailabilityStatus},
    memory_management::Handle,
};

use super::{
    conduit::SimConduit,
    mapper::SimMapper,
    messaging::deliver_request,
    ns_memory::to_u64,
    reply::encode,
    state::{Ec, Endpoint, Inner, Kind, Owner, ReqKind, Sp, SpRun},
    types::{Fault, HYPERVISOR_ID, SPMC_ID, SpInfo},
};

/// How long [`World::spawn_sp`] waits for a partition to finish booting.
const BOOT_TIMEOUT: Duration = Duration::from_secs(10);

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
        let inner = Arc::new(Inner::new());
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

    /// Adds secure partition `info` without a thread of its own: the caller runs it, handing it
    /// each message itself (the inline mode of a test harness: one thread, no hand-offs). The
    /// partition counts as waiting for messages; its own FF-A calls (memory retrieve and
    /// relinquish, notifications) go through the returned conduit as usual. Direct requests
    /// sent to it through the world would wait for an answer that never comes: the caller
    /// must deliver them instead.
    ///
    /// # Panics
    /// If `info.id` is not a free secure id above the SPMC's (a test-harness bug).
    pub fn attach_sp(&self, info: SpInfo) -> (SimConduit, SimMapper) {
        self.register_sp(info, SpRun::Waiting)
    }

    /// Adds secure partition `info`, its primary execution context in state `run` (the others
    /// booting: they start with [`SimConduit::start_ec`]); returns the primary's conduit and
    /// the partition's mapper.
    #[allow(clippy::panic)] // Harness misuse: fail the test loudly.
    fn register_sp(&self, info: SpInfo, run: SpRun) -> (SimConduit, SimMapper) {
        let id = info.id;
        let mut st = self.inner.lock();
        if id <= SPMC_ID || st.endpoints.contains_key(&id) {
            panic!("sim: SP id {id:#06x} is not a free secure partition id");
        }
        let mut ecs = Vec::new();
        ecs.push(Ec::new(run));
        ecs.extend((1..info.exec_ctx_count).map(|_| Ec::new(SpRun::Init)));
        let sp = Sp {
            info,
            ecs,
            secondary_ep: None,
            mappings: Vec::new(),
            next_va: 0,
        };
        st.endpoints
            .insert(id, Endpoint::new(Kind::Sp(Box::new(sp))));
        drop(st);
        (
            SimConduit::new(self.inner.clone(), id, 0, None),
            SimMapper::new(self.inner.clone(), id),
        )
    }

    /// Starts secure partition `info` running `main` on its own thread, and returns once it
    /// has booted (its primary execution context, and every other it started meanwhile,
    /// called FFA_MSG_WAIT) or ended. When its thread ends (returns or panics)
    /// the partition is aborted: a pending request gets FFA_ERROR(ABORTED), and so does every
    /// later one.
    ///
    /// # Panics
    /// If `info.id` is not a free secure id above the SPMC's (a test-harness bug).
    pub fn spawn_sp<F>(&self, info: SpInfo, main: F) -> SpHandle
    where
        F: FnOnce(SimConduit, SimMapper) + Send + 'static,
    {
        let id = info.id;
        let (conduit, mapper) = self.register_sp(info, SpRun::Init);
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
        while st.sp_mut(id).is_some_and(|sp| sp.booting()) && !st.shutdown {
            let now = Instant::now();
            if now >= deadline {
                log::warn!("sim: partition {id:#06x} did not finish booting in {BOOT_TIMEOUT:?}");
                break;
            }
            st = self.inner.wait_timeout(st, deadline - now);
        }
        SpHandle { id, thread }
    }

    /// FF-A calls made so far, by (caller, function id) — both sides', the partition's
    /// responses (FFA_MSG_SEND_DIRECT_RESP2) included.
    pub fn calls(&self) -> BTreeMap<(u16, u32), u64> {
        self.inner.lock().calls.clone()
    }

    /// Forgets the calls counted so far.
    pub fn reset_calls(&self) {
        self.inner.lock().calls.clear();
    }

    /// Counts call `fid` by endpoint `id` that a harness delivered itself, outside the
    /// simulated SPMC (the inline world's direct requests and the partition's responses).
    pub fn count_call(&self, id: u16, fid: u32) {
        self.inner.lock().count_call(id, fid);
    }

    /// Fires the armed timer of partition `id`'s execution context `vcpu` at once, whatever
    /// its deadline: the stand-in for time passing where a harness runs the partition itself
    /// (the inline world). Returns whether it fired with its interrupt enabled, when the
    /// harness is to resume the context with FFA_INTERRUPT (the interrupt is then pending for
    /// HF_INTERRUPT_GET).
    pub fn fire_timer(&self, id: u16, vcpu: u16) -> bool {
        super::messaging::timer_fire(&mut self.inner.lock(), id, vcpu)
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
        let msg = encode(&Interface::MsgSendDirectReq {
            src_id: HYPERVISOR_ID,
            dst_id: sp,
            args,
        });
        let st = self.inner.lock();
        let answer = deliver_request(&self.inner, st, kind, (HYPERVISOR_ID, 0), sp, None, msg);
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

    /// Fault injection: the next FFA_MEM_RELINQUISH calls of `handle` that would succeed
    /// answer `errors` instead, one each, and change nothing.
    pub fn fail_relinquish(&self, handle: u64, errors: &[FfaError]) {
        self.inner.lock().mem.fail_relinquish(handle, errors);
    }

    /// Makes the next FFA_MEM_RETRIEVE_REQ calls of `handle` that would succeed fail with
    /// `errors`, one per call.
    pub fn fail_retrieve(&self, handle: u64, errors: &[FfaError]) {
        self.inner.lock().mem.fail_retrieve(handle, errors);
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
            .and_then(|sp| sp.primary())
            .is_some_and(|ec| !matches!(ec.run, SpRun::Dead))
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

    /// A new conduit for this endpoint on CPU 0, with its own RX/TX buffers (one per thread).
    pub fn conduit(&self) -> SimConduit {
        self.conduit_on(0)
    }

    /// A new conduit for this endpoint calling from CPU `cpu` (an MP partition serves it with
    /// its execution context `cpu`), with its own RX/TX buffers.
    pub fn conduit_on(&self, cpu: u16) -> SimConduit {
        SimConduit::new(
            self.world.inner.clone(),
            self.id,
            cpu,
            Some(self.world._owner.clone()),
        )
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
                    len: to_u64(len),
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
            let pending = st.endpoints.get(&self.id).is_some_and(|e| {
                e.notif.from_sp.pending | e.notif.from_vm.pending | e.framework != 0
            });
            let now = Instant::now();
            if pending || now >= deadline || st.shutdown {
                return pending;
            }
            st = inner.wait_timeout(st, deadline - now);
        }
    }
}
