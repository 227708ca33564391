//! The simulated world in inline mode: the partition core runs on the caller's thread.
//!
//! [`SimSystem`](super::SimSystem) runs the partition on its own thread, through its start-up
//! and message loop, and every direct request is a hand-off between two threads (tens of
//! microseconds). Here the partition is attached to the world without a thread
//! ([`World::attach_sp`]) and each endpoint's conduit ([`InlineConduit`]) delivers the
//! direct requests addressed to it by calling the message loop's own per-message function,
//! [`sp::partition::handle_message`], then returns its response as the SPMC would. Everything
//! else an endpoint calls (memory sharing, notifications, RX/TX) and everything the partition
//! calls (retrieve, relinquish, notification set) goes through the simulated SPMC as usual,
//! with its checks and its fault record. One thread, no hand-offs, deterministic: what the
//! fuzzer and instruction counts need.

use std::{cell::RefCell, rc::Rc};

use ffa::{
    Conduit, Ffa,
    arm_ffa::{
        Interface, Version,
        interface_args::{DirectMsgArgs, VmAvailabilityStatus},
    },
    bus::{BusConfig, Dialect},
    sim::{Fault, HYPERVISOR_ID, SimConduit, SimMapper, VmEndpoint, World},
};
use sp::{
    partition::{self, Partition},
    registry::StandardDevices,
};

use super::{SP_ID, open_over, partition_info};
use crate::{
    connection::Connection,
    entropy::OsEntropy,
    session::{Modes, SessionError},
};

/// FFA_MSG_SEND_DIRECT_REQ (32- and 64-bit) and FFA_MSG_SEND_DIRECT_REQ2.
pub(crate) const DIRECT_REQUESTS: [u32; 3] = [0x8400_006F, 0xC400_006F, 0xC400_008D];
/// FFA_RUN.
const RUN: u32 = 0x8400_006D;
/// FFA_MSG_WAIT (32-bit), how a run partition's execution ends.
const MSG_WAIT: u32 = 0x8400_006B;
/// FFA_RX_RELEASE.
const RX_RELEASE: u32 = 0x8400_0065;

/// The partition as the inline world holds it: its FF-A conduit, its mapper, its core.
struct Attached {
    ffa: Ffa<SimConduit>,
    mapper: SimMapper,
    partition: Partition<StandardDevices<OsEntropy>>,
}

impl Attached {
    fn handle(&mut self, msg: &Interface) -> Option<Interface> {
        partition::handle_message(&mut self.ffa, &mut self.mapper, &self.partition, msg)
    }
}

/// A simulated world whose partition runs on the caller's thread.
pub struct InlineSystem {
    world: World,
    sp: Rc<RefCell<Attached>>,
}

/// A connection from an endpoint of an [`InlineSystem`].
pub type InlineConnection = Connection<InlineConduit, VmEndpoint>;

impl InlineSystem {
    /// A world with the partition attached, with the standard devices (virtio-rng fed by the
    /// operating system's entropy) and the default bus configuration.
    pub fn start() -> Result<Self, SessionError> {
        Self::start_with(BusConfig::default())
    }

    /// The same with `config`.
    pub fn start_with(config: BusConfig) -> Result<Self, SessionError> {
        let world = World::new();
        let (conduit, mapper) = world.attach_sp(partition_info());
        let mut ffa = Ffa::new(conduit);
        ffa.version(ffa::FFA_VERSION)?;
        let own_id = ffa.id_get()?;
        let partition = Partition::new(own_id, StandardDevices::new(Some(OsEntropy)), config);
        Ok(Self {
            world,
            sp: Rc::new(RefCell::new(Attached {
                ffa,
                mapper,
                partition,
            })),
        })
    }

    /// The simulated world.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The partition's endpoint id.
    pub fn sp_id(&self) -> u16 {
        SP_ID
    }

    /// Accesses the partition made outside what it had retrieved (must stay empty).
    pub fn faults(&self) -> Vec<Fault> {
        self.world.faults()
    }

    /// Adds endpoint `vm` and opens a bus session from it (as `SimSystem::connect`).
    pub fn connect(
        &self,
        vm: u16,
        dialect: Dialect,
        notify: bool,
    ) -> Result<InlineConnection, SessionError> {
        self.connect_modes(vm, dialect, Modes::from_notify(dialect, notify))
    }

    /// [`connect`](Self::connect) with messaging and event modes.
    pub fn connect_modes(
        &self,
        vm: u16,
        dialect: Dialect,
        modes: Modes,
    ) -> Result<InlineConnection, SessionError> {
        let endpoint = self.world.add_vm(vm);
        let conduit = self.conduit(&endpoint);
        open_over(conduit, endpoint, SP_ID, dialect, modes)
    }

    /// A conduit for `endpoint` that delivers its direct requests to the partition inline.
    pub fn conduit(&self, endpoint: &VmEndpoint) -> InlineConduit {
        InlineConduit {
            id: endpoint.id(),
            world: self.world.clone(),
            inner: endpoint.conduit(),
            sp: self.sp.clone(),
        }
    }

    /// The hypervisor tells the partition that VM `vm` is gone (the framework message);
    /// returns whether the partition acknowledged it.
    pub fn vm_destroyed(&self, vm: u16) -> bool {
        let msg = Interface::MsgSendDirectReq {
            src_id: HYPERVISOR_ID,
            dst_id: SP_ID,
            args: DirectMsgArgs::VmDestructed {
                vm_id: vm,
                handle: ffa::arm_ffa::memory_management::Handle(0),
            },
        };
        matches!(
            self.sp.borrow_mut().handle(&msg),
            Some(Interface::MsgSendDirectResp {
                args: DirectMsgArgs::VmDestructedAck {
                    sp_status: VmAvailabilityStatus::Success,
                },
                ..
            })
        )
    }

    /// Number of endpoints the partition keeps state for.
    pub fn endpoints(&self) -> usize {
        self.sp.borrow().partition.endpoints()
    }
}

/// An endpoint's conduit in an [`InlineSystem`]: direct requests to the partition are handed
/// to it on this thread; every other call goes to the simulated SPMC.
pub struct InlineConduit {
    id: u16,
    world: World,
    inner: SimConduit,
    sp: Rc<RefCell<Attached>>,
}

impl InlineConduit {
    /// The partition's answer to direct request `regs`, in registers, as the SPMC relays it:
    /// a request under another endpoint's id is refused (Hafnium checks the sender), and so is
    /// one the partition does not answer with a direct response to this endpoint.
    fn deliver(&mut self, regs: &[u64; 18]) -> [u64; 18] {
        let refused = || {
            let mut out = [0u64; 18];
            Interface::error(ffa::arm_ffa::FfaError::InvalidParameters, true)
                .to_regs(Version(1, 2), &mut out);
            out
        };
        let Ok(msg) = partition_decode(regs) else {
            return refused();
        };
        let src = match msg {
            Interface::MsgSendDirectReq { src_id, .. }
            | Interface::MsgSendDirectReq2 { src_id, .. } => src_id,
            _ => return refused(),
        };
        if src != self.id {
            return refused();
        }
        let Ok(mut sp) = self.sp.try_borrow_mut() else {
            // A request from inside the partition's own call: cannot happen in this world.
            return refused();
        };
        let answer = sp.handle(&msg);
        drop(sp);
        match answer {
            Some(
                ref resp @ (Interface::MsgSendDirectResp { dst_id, .. }
                | Interface::MsgSendDirectResp2 { dst_id, .. }),
            ) if dst_id == self.id => {
                let mut out = [0u64; 18];
                match partition_encode(resp, &mut out) {
                    Ok(()) => out,
                    Err(_) => refused(),
                }
            }
            _ => refused(),
        }
    }
}

/// The partition's decoding of a request it is sent: what its message loop's `Ffa::call` does
/// with the registers the SPMC hands it (`ffa::calls::decode_regs`). Out of line and named, so
/// that the benchmark counts it as the partition's (`vmsg bench --callgrind`).
#[inline(never)]
fn partition_decode(regs: &[u64; 18]) -> Result<Interface, ffa::Error> {
    ffa::calls::decode_regs(Version(1, 2), regs)
}

/// The partition's encoding of its answer (`ffa::calls::encode_regs`), as
/// [`partition_decode`] is of the request.
#[inline(never)]
fn partition_encode(answer: &Interface, out: &mut [u64; 18]) -> Result<(), ffa::Error> {
    ffa::calls::encode_regs(answer, Version(1, 2), out)
}

impl InlineConduit {
    /// FFA_RUN of the partition by this endpoint (the scheduler): the partition serves what
    /// its RX buffer holds and pushes its pending events; its execution ends with FFA_MSG_WAIT,
    /// which is what the scheduler gets back (counted as the partition's call).
    fn run(&mut self) -> [u64; 18] {
        let mut out = [0u64; 18];
        let Ok(mut sp) = self.sp.try_borrow_mut() else {
            Interface::error(ffa::arm_ffa::FfaError::Busy, true).to_regs(Version(1, 2), &mut out);
            return out;
        };
        let msg = Interface::Run {
            target_info: ffa::arm_ffa::interface_args::TargetInfo {
                endpoint_id: SP_ID,
                vcpu_id: 0,
            },
            is_32bit: true,
        };
        let answer = sp.handle(&msg);
        drop(sp);
        if let Some(unexpected) = answer {
            log::warn!("inline: the partition answered a run with {unexpected:?}");
        }
        self.world.count_call(SP_ID, MSG_WAIT);
        Interface::MsgWait {
            flags: Default::default(),
            is_32bit: true,
        }
        .to_regs(Version(1, 2), &mut out);
        out
    }
}

impl InlineConduit {
    /// Time passes for the partition once this endpoint released its RX buffer: an armed timer
    /// (its push retry timer) fires, and the partition is resumed with FFA_INTERRUPT, as a
    /// waiting execution context is under Hafnium. Here, where nothing runs the partition
    /// unless a call hands it control, the release is the moment that matters: a retry before
    /// it would find the buffer still full.
    fn fire_timer(&mut self) {
        if !self.world.fire_timer(SP_ID, 0) {
            return;
        }
        let Ok(mut sp) = self.sp.try_borrow_mut() else {
            return;
        };
        let msg = Interface::Interrupt {
            target_info: ffa::arm_ffa::interface_args::TargetInfo {
                endpoint_id: SP_ID,
                vcpu_id: 0,
            },
            interrupt_id: ffa::conduit::HF_VIRTUAL_TIMER_INTID,
            is_32bit: true,
        };
        if let Some(unexpected) = sp.handle(&msg) {
            log::warn!("inline: the partition answered an interrupt with {unexpected:?}");
        }
        drop(sp);
        self.world.count_call(SP_ID, MSG_WAIT);
    }
}

impl Conduit for InlineConduit {
    fn call(&mut self, regs: [u64; 18]) -> [u64; 18] {
        let fid = ffa::conduit::low32(regs[0]);
        let dst = ffa::conduit::low32(regs[1]) & 0xffff;
        if fid == RUN && ffa::conduit::low32(regs[1]) >> 16 == u32::from(SP_ID) {
            let world = self.world.clone();
            world.count_call(self.id, fid);
            return self.run();
        }
        if fid == RX_RELEASE {
            let answer = self.inner.call(regs);
            self.fire_timer();
            return answer;
        }
        if DIRECT_REQUESTS.contains(&fid) && dst == u32::from(SP_ID) {
            let world = self.world.clone();
            world.count_call(self.id, fid);
            let answer = self.deliver(&regs);
            // The partition's answer is its own FF-A call (a direct response) under an SPMC.
            world.count_call(SP_ID, ffa::conduit::low32(answer[0]));
            answer
        } else {
            self.inner.call(regs)
        }
    }

    fn tx(&mut self) -> &mut [u8] {
        self.inner.tx()
    }

    fn rx(&self) -> &[u8] {
        self.inner.rx()
    }
}
