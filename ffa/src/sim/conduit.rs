//! [`SimConduit`]: the [`Conduit`] through which an endpoint of the simulated world makes its
//! FF-A calls (the sim's `smc #0`), with that endpoint's RX and TX buffers. Each call goes to
//! the simulated SPMC ([`super::dispatch::call`]), made on one CPU: for a VM the CPU its
//! caller runs on, for a partition the execution context (vCPU) it calls from.
//!
//! The buffers are the conduit's own. A partition's execution contexts each have a conduit,
//! so each sees its own copy of what is one RX/TX pair under an SPMC: the world still owns
//! the one RX buffer (RX-full, release), so two contexts using it at once get what Hafnium
//! answers (BUSY), but a TX buffer overwritten by another context cannot be seen here.

use std::sync::Arc;

use super::{
    dispatch,
    reply::Regs,
    state::{Inner, Owner},
    types::{BUF_SIZE, simulating},
};
use crate::conduit::Conduit;

/// A [`Conduit`] into a `World` for one endpoint, with its own 4 KiB RX and TX buffers.
pub struct SimConduit {
    inner: Arc<Inner>,
    id: u16,
    /// The CPU (a VM's) or execution context (a partition's) the calls are made on.
    vcpu: u16,
    tx: Vec<u8>,
    rx: Vec<u8>,
    /// VM conduits keep the world alive (partition conduits must not, or it never shuts
    /// down).
    _owner: Option<Arc<Owner>>,
}

impl SimConduit {
    /// A conduit for endpoint `id` on CPU or execution context `vcpu`; `owner` keeps the
    /// world alive while the conduit lives.
    pub(super) fn new(inner: Arc<Inner>, id: u16, vcpu: u16, owner: Option<Arc<Owner>>) -> Self {
        Self {
            inner,
            id,
            vcpu,
            tx: vec![0; BUF_SIZE],
            rx: vec![0; BUF_SIZE],
            _owner: owner,
        }
    }

    /// The endpoint this conduit calls for.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The CPU (a VM's conduit) or execution context (a partition's) it calls on.
    pub fn vcpu(&self) -> u16 {
        self.vcpu
    }

    /// What starts this conduit's partition's other execution contexts (see
    /// [`ContextLauncher::start`]); it does not keep the world alive.
    pub fn contexts(&self) -> ContextLauncher {
        ContextLauncher {
            inner: self.inner.clone(),
            id: self.id,
        }
    }

    /// Starts execution context `ec` of this conduit's partition (see
    /// [`ContextLauncher::start`]).
    pub fn start_ec<F>(
        &self,
        ec: u16,
        entry: F,
    ) -> Result<std::thread::JoinHandle<()>, arm_ffa::FfaError>
    where
        F: FnOnce(SimConduit) + Send + 'static,
    {
        self.contexts().start(ec, entry)
    }
}

/// Starts the execution contexts of one partition, as the SPMC does when the normal world
/// powers CPUs on.
pub struct ContextLauncher {
    inner: Arc<Inner>,
    id: u16,
}

impl ContextLauncher {
    /// Starts execution context `ec` on a thread of its own: `entry` (what the partition
    /// registered with FFA_SECONDARY_EP_REGISTER stands for) runs with the context's conduit.
    /// When the thread ends the context is ended (a request pending on it gets
    /// FFA_ERROR(ABORTED)).
    ///
    /// Refused (DENIED) unless the partition is MP, registered a secondary entry point, and
    /// context `ec` (not the primary) has not started yet; INVALID_PARAMETERS if it has no
    /// context `ec`.
    pub fn start<F>(
        &self,
        ec: u16,
        entry: F,
    ) -> Result<std::thread::JoinHandle<()>, arm_ffa::FfaError>
    where
        F: FnOnce(SimConduit) + Send + 'static,
    {
        use super::state::SpRun;
        use arm_ffa::FfaError;
        let id = self.id;
        {
            let mut st = self.inner.lock();
            let sp = st.sp_mut(id).ok_or(FfaError::Denied)?;
            if sp.secondary_ep.is_none() || ec == 0 {
                return Err(FfaError::Denied);
            }
            let ctx = sp
                .ecs
                .get_mut(usize::from(ec))
                .ok_or(FfaError::InvalidParameters)?;
            if !matches!(ctx.run, SpRun::Init) || ctx.started {
                return Err(FfaError::Denied);
            }
            ctx.started = true;
        }
        let conduit = SimConduit::new(self.inner.clone(), id, ec, None);
        let guard = EcGuard(self.inner.clone(), id, usize::from(ec));
        std::thread::Builder::new()
            .name(format!("sp-{id:#06x}-ec{ec}"))
            .spawn(move || {
                let _guard = guard;
                entry(conduit);
            })
            .map_err(|_| FfaError::NoMemory)
    }
}

/// Ends an execution context when its thread ends, however it ends.
struct EcGuard(Arc<Inner>, u16, usize);

impl Drop for EcGuard {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        if std::thread::panicking() {
            log::warn!("sim: partition {:#06x} context {} panicked", self.1, self.2);
        }
        st.abort_ec(self.1, self.2);
        drop(st);
        self.0.cv.notify_all();
    }
}

impl Conduit for SimConduit {
    // Out of line: the benchmark takes the simulator's cost out by function.
    #[inline(never)]
    fn call(&mut self, regs: Regs) -> Regs {
        let answer = simulating(|| {
            dispatch::call(
                &self.inner,
                (self.id, self.vcpu),
                &regs,
                &self.tx,
                &mut self.rx,
            )
        });
        if self.vcpu != 0 {
            // A secondary context: let the others run between its calls, as CPUs do, so that
            // the contexts' calls interleave (a context that uses the shared RX buffer
            // without holding it for the whole exchange then meets another's BUSY).
            std::thread::yield_now();
        }
        answer
    }

    fn tx(&mut self) -> &mut [u8] {
        &mut self.tx
    }

    fn interrupt_get(&mut self) -> Option<u32> {
        simulating(|| dispatch::interrupt_get(&self.inner, self.id, self.vcpu))
    }

    fn interrupt_enable(&mut self, intid: u32) -> bool {
        simulating(|| dispatch::interrupt_enable(&self.inner, self.id, self.vcpu, intid))
            .unwrap_or(false)
    }

    fn timer_arm(&mut self, micros: u32) -> bool {
        simulating(|| dispatch::timer_set(&self.inner, self.id, self.vcpu, Some(micros)))
    }

    fn timer_stop(&mut self) {
        simulating(|| dispatch::timer_set(&self.inner, self.id, self.vcpu, None));
    }

    fn rx(&self) -> &[u8] {
        &self.rx
    }
}
