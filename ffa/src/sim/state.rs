//! The simulated world's state, behind one mutex: endpoints, their FF-A bookkeeping (version,
//! RX/TX mailbox, notification bitmaps, a partition's run state) and the message slots; and
//! [`Inner`], that mutex with the condition variable every blocked call waits on.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use arm_ffa::{FfaError, Version};

use super::{
    ns_memory::Memory,
    props,
    reply::{Regs, encode, error},
    types::{Fault, NS_BASE, SpInfo},
};

/// Everything the world knows, behind the world's one mutex.
pub(super) struct State {
    /// All endpoints by id.
    pub endpoints: BTreeMap<u16, Endpoint>,
    /// Normal-world memory and memory transactions.
    pub mem: Memory,
    /// Recorded access faults.
    pub faults: Vec<Fault>,
    /// Console lines (endpoint, line).
    pub console: Vec<(u16, String)>,
    /// Answers to direct requests, by request token.
    pub replies: HashMap<u64, Regs>,
    /// Next direct request token.
    pub next_token: u64,
    /// Set by `World::shutdown`: waiting partitions get FFA_ERROR(ABORTED).
    pub shutdown: bool,
    /// FF-A calls made so far, by (caller, function id): what the benchmark counts.
    pub calls: BTreeMap<(u16, u32), u64>,
}

impl State {
    pub fn new() -> Self {
        Self {
            endpoints: BTreeMap::new(),
            mem: Memory::new(NS_BASE),
            faults: Vec::new(),
            console: Vec::new(),
            replies: HashMap::new(),
            next_token: 1,
            shutdown: false,
            calls: BTreeMap::new(),
        }
    }

    /// Counts one FF-A call `fid` by endpoint `id`.
    pub fn count_call(&mut self, id: u16, fid: u32) {
        let n = self.calls.entry((id, fid)).or_default();
        *n = n.saturating_add(1);
    }

    /// Whether `id` is a (live or dead) secure partition of this world.
    pub fn is_sp(&self, id: u16) -> bool {
        self.endpoints
            .get(&id)
            .is_some_and(|e| matches!(e.kind, Kind::Sp(_)))
    }

    /// The secure partition `id`.
    pub fn sp_mut(&mut self, id: u16) -> Option<&mut Sp> {
        match &mut self.endpoints.get_mut(&id)?.kind {
            Kind::Sp(sp) => Some(sp),
            Kind::Vm => None,
        }
    }

    /// Records a fault and logs it.
    pub fn fault(&mut self, fault: Fault) {
        log::warn!("sim: {fault}");
        self.faults.push(fault);
    }

    /// Marks partition `id` aborted, every execution context of it: a pending direct request
    /// gets FFA_ERROR(ABORTED), its retrievals are relinquished on its behalf (as Hafnium does
    /// for an aborted partition) and its mappings dropped.
    pub fn abort_sp(&mut self, id: u16) {
        let Some(sp) = self.sp_mut(id) else { return };
        let ecs = sp.ecs.len();
        sp.mappings.clear();
        for ec in 0..ecs {
            self.abort_ec(id, ec);
        }
        self.mem.drop_retrievals(id);
    }

    /// Marks execution context `ec` of partition `id` ended (its thread ended): a request
    /// pending on it gets FFA_ERROR(ABORTED), and so does every later one sent to it.
    pub fn abort_ec(&mut self, id: u16, ec: usize) {
        let Some(ctx) = self.sp_mut(id).and_then(|sp| sp.ecs.get_mut(ec)) else {
            return;
        };
        let previous = core::mem::replace(&mut ctx.run, SpRun::Dead);
        ctx.inbox = None;
        if let SpRun::Busy(pending) = previous {
            self.replies
                .insert(pending.token, encode(&error(FfaError::Aborted)));
        }
    }

    /// Execution context `vcpu` of partition `id`.
    pub fn ec_mut(&mut self, id: u16, vcpu: u16) -> Option<&mut Ec> {
        self.sp_mut(id)?.ecs.get_mut(usize::from(vcpu))
    }
}

/// One endpoint (a normal-world VM or a secure partition).
pub(super) struct Endpoint {
    /// FF-A version the endpoint negotiated (FF-A v1.2 until it calls FFA_VERSION).
    pub version: Version,
    /// Set by any call other than FFA_VERSION: the version can no longer change.
    pub version_locked: bool,
    /// The RX/TX buffer pair, once mapped.
    pub mailbox: Option<Mailbox>,
    /// The endpoint owns its RX buffer (filled, not yet released).
    pub rx_full: bool,
    /// An indirect message accepted for this endpoint's RX buffer: the buffer lives in the
    /// endpoint's conduit, so the bytes are copied into it when the endpoint's next FF-A call
    /// returns — before the endpoint can learn of the message (the RX-full notification, or
    /// the FFA_RUN that wakes it, both come back from a call), so the difference from an SPMC
    /// that copies at once cannot be seen.
    pub rx_incoming: Option<Vec<u8>>,
    /// Pending framework notifications: bit 0 "RX buffer full" from a partition (the SPM
    /// framework bitmap), bit 32 the same from a VM (the hypervisor framework bitmap), as
    /// Hafnium's `FFA_NOTIFICATION_{SPM,HYP}_BUFFER_FULL_MASK`.
    pub framework: u64,
    /// Console characters not yet ended by a newline.
    pub console_buf: Vec<u8>,
    /// Notification state (as a receiver).
    pub notif: Notifications,
    /// VM or SP specifics.
    pub kind: Kind,
}

impl Endpoint {
    pub fn new(kind: Kind) -> Self {
        let notif = match &kind {
            Kind::Vm => Notifications::default(),
            Kind::Sp(sp) => Notifications {
                enabled: sp.info.properties & props::NOTIFICATION_RECV != 0,
                vcpu_count: u32::from(sp.info.exec_ctx_count),
                ..Notifications::default()
            },
        };
        let mailbox = match &kind {
            Kind::Sp(sp) if sp.info.rxtx_premapped => Some(Mailbox {
                tx: 0,
                rx: 0,
                reserved: false,
            }),
            _ => None,
        };
        Self {
            version: crate::ids::FFA_VERSION,
            version_locked: false,
            mailbox,
            rx_full: false,
            rx_incoming: None,
            framework: 0,
            console_buf: Vec::new(),
            notif,
            kind,
        }
    }
}

/// Kind of endpoint.
pub(super) enum Kind {
    /// A normal-world endpoint.
    Vm,
    /// A secure partition.
    Sp(Box<Sp>),
}

/// A mapped RX/TX pair. The contents live in the caller's `SimConduit`; the world only
/// tracks the mapping (and, for VMs, reserves the pages).
pub(super) struct Mailbox {
    /// TX buffer address.
    pub tx: u64,
    /// RX buffer address.
    pub rx: u64,
    /// The pages are normal-world pages of the caller, reserved while mapped.
    pub reserved: bool,
}

/// Secure-partition specifics.
pub(super) struct Sp {
    /// What it was spawned with.
    pub info: SpInfo,
    /// Its execution contexts, one per vCPU (`info.exec_ctx_count`): a UP partition's one
    /// context serves every CPU (it migrates, as under Hafnium); an MP partition's context
    /// `k` serves the requests made on CPU `k` only (Hafnium `api_ffa_get_vm_vcpu`).
    pub ecs: Vec<Ec>,
    /// The entry point an MP partition registered with FFA_SECONDARY_EP_REGISTER while it
    /// booted: its other execution contexts can start only once there is one.
    pub secondary_ep: Option<u64>,
    /// Its current mappings of retrieved memory.
    pub mappings: Vec<Mapping>,
    /// Next virtual address to hand out for a mapping.
    pub next_va: u64,
}

impl Sp {
    /// The execution context serving requests made on CPU `cpu` (see [`Sp::ecs`]).
    pub fn ec_for_cpu(&self, cpu: u16) -> Option<usize> {
        if self.ecs.len() == 1 {
            return Some(0);
        }
        let ec = usize::from(cpu);
        (ec < self.ecs.len()).then_some(ec)
    }

    /// The primary execution context (the one that boots the partition).
    pub fn primary(&self) -> Option<&Ec> {
        self.ecs.first()
    }

    /// Whether a context is still booting: the primary, or a secondary whose thread was
    /// started. (The SPMC returns a CPU to the normal world only once the partition's context
    /// on it has booted, so no driver can call a context that is still booting.)
    pub fn booting(&self) -> bool {
        self.ecs
            .iter()
            .enumerate()
            .any(|(k, ec)| (k == 0 || ec.started) && matches!(ec.run, SpRun::Init))
    }
}

/// One execution context of a secure partition (a vCPU).
pub(super) struct Ec {
    /// Run state.
    pub run: SpRun,
    /// A message delivered to this context and not yet picked up by its thread.
    pub inbox: Option<Regs>,
    /// Its notification pending interrupt (Hafnium's NPI, virtual INTID 5): raised when the
    /// context is run with the partition's notifications pending, taken with
    /// HF_INTERRUPT_GET; while it is pending, FFA_MSG_WAIT returns FFA_INTERRUPT at once.
    pub npi: bool,
    /// Its EL1 physical timer, while armed: when it fires (as Hafnium emulates it).
    pub timer: Option<std::time::Instant>,
    /// Whether it enabled the timer's virtual interrupt (HF_INTERRUPT_ENABLE of
    /// [`crate::conduit::HF_VIRTUAL_TIMER_INTID`]): only then does a fired timer signal it.
    pub timer_enabled: bool,
    /// The timer fired and its interrupt was not taken yet (HF_INTERRUPT_GET); while it is
    /// pending, FFA_MSG_WAIT returns FFA_INTERRUPT at once.
    pub timer_pending: bool,
    /// Its thread was started (a secondary context: `ContextLauncher::start`).
    pub started: bool,
}

impl Ec {
    /// A context in run state `run`.
    pub fn new(run: SpRun) -> Self {
        Self {
            run,
            inbox: None,
            npi: false,
            timer: None,
            timer_enabled: false,
            timer_pending: false,
            started: false,
        }
    }
}

/// Run state of a secure partition's execution context.
pub(super) enum SpRun {
    /// Booting: has not called FFA_MSG_WAIT yet.
    Init,
    /// Waiting for a direct request.
    Waiting,
    /// Handling a direct request that must be answered.
    Busy(Pending),
    /// Resumed from waiting by FFA_INTERRUPT (its timer fired): runs until its next
    /// FFA_MSG_WAIT; direct requests to it meanwhile are BUSY, as under Hafnium.
    Interrupted,
    /// Its thread ended (or it aborted itself): every call to it is FFA_ERROR(ABORTED).
    Dead,
}

/// A direct request being handled by a partition.
pub(super) struct Pending {
    /// Token under which the answer is posted in [`State::replies`].
    pub token: u64,
    /// Who sent the request (the answer must go back to it).
    pub caller: u16,
    /// Which ABI the answer must use.
    pub kind: ReqKind,
}

/// Kind of direct request, which fixes the response ABI.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum ReqKind {
    /// FFA_MSG_SEND_DIRECT_REQ2, answered with FFA_MSG_SEND_DIRECT_RESP2.
    Req2,
    /// FFA_MSG_SEND_DIRECT_REQ (32/64-bit), answered with FFA_MSG_SEND_DIRECT_RESP of the
    /// same width.
    Req {
        /// SMC32 form.
        is_32bit: bool,
    },
    /// Framework message "VM created", answered with its ack.
    VmCreated,
    /// Framework message "VM destroyed", answered with its ack.
    VmDestroyed,
    /// FFA_RUN from the normal-world scheduler: the partition's execution ends with its next
    /// FFA_MSG_WAIT, which the scheduler gets back.
    Run,
}

/// A mapping a partition made through its `SimMapper`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Mapping {
    /// Virtual base handed to the partition.
    pub va: u64,
    /// Physical (normal-world) base.
    pub pa: u64,
    /// Size in pages.
    pub pages: u32,
    /// Mapped writable.
    pub writable: bool,
}

impl Mapping {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        u64::from(self.pages) * crate::memory::PAGE_SIZE
    }
}

/// An endpoint's notifications as a receiver.
#[derive(Default)]
pub(super) struct Notifications {
    /// Bitmap created (VMs: FFA_NOTIFICATION_BITMAP_CREATE; SPs: the manifest property).
    pub enabled: bool,
    /// vCPU count given at creation (execution contexts for SPs).
    pub vcpu_count: u32,
    /// Notifications bound to SP senders.
    pub from_sp: Bitmap,
    /// Notifications bound to VM senders.
    pub from_vm: Bitmap,
}

/// One notification bitmap: who may set each bit, and which bits are pending.
pub(super) struct Bitmap {
    /// Sender bound to each bit.
    pub bound: [Option<u16>; 64],
    /// Pending bits.
    pub pending: u64,
}

impl Default for Bitmap {
    fn default() -> Self {
        Self {
            bound: [None; 64],
            pending: 0,
        }
    }
}

/// The world's shared core: state and the condition variable every blocked call waits on.
pub(crate) struct Inner {
    /// The state.
    state: Mutex<State>,
    /// Notified whenever the state changes in a way a blocked call may wait for.
    pub cv: Condvar,
}

impl Inner {
    /// A world with no endpoints.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::new()),
            cv: Condvar::new(),
        }
    }

    /// Locks the state (a panic on another thread does not poison it).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a change of the state.
    pub fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.cv.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a change of the state, at most `timeout`.
    pub fn wait_timeout<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        self.cv
            .wait_timeout(guard, timeout)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0)
    }

    /// Shuts the world down (see `World::shutdown`).
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.cv.notify_all();
    }
}

/// Shuts the world down when the last owning handle goes.
pub(super) struct Owner(pub Arc<Inner>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}
