//! Shared fixtures of the simulator tests: endpoint ids, a booted VM, partitions that echo
//! or run queued jobs ([`Env`]), and descriptor builders.

use std::{sync::mpsc, thread};

use arm_ffa::{FfaError, FuncId, Interface, Version};
use uuid::Uuid;

use crate::{
    calls::Error,
    calls::Ffa,
    conduit::Conduit,
    memory::{
        ATTR_NORMAL_WB_INNER_SHAREABLE, DataAccess, MemRange, MemTransaction, Receiver, ShareKind,
    },
    sim::*,
};

pub(super) const SP: u16 = 0x8001;
pub(super) const SP2: u16 = 0x8002;
pub(super) const VM: u16 = 1;
pub(super) const VM2: u16 = 2;
pub(super) const SVC: Uuid = crate::ids::VIRTIO_MSG_DEVICE_UUID;
pub(super) const OTHER: Uuid = Uuid::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888);
pub(super) const V1_1: Version = Version(1, 1);
pub(super) const V1_2: Version = Version(1, 2);

pub(super) fn ffa_err(e: FfaError) -> Result<(), Error> {
    Err(Error::Ffa(e))
}

/// A VM's FF-A interface after FFA_VERSION(1.2) and FFA_RXTX_MAP of two of its pages.
pub(super) fn vm_ffa(vm: &VmEndpoint) -> Ffa<SimConduit> {
    let mut ffa = Ffa::new(vm.conduit());
    assert_eq!(ffa.version(V1_2).unwrap(), V1_2);
    let bufs = vm.alloc(2);
    ffa.rxtx_map(bufs, bufs + 4096, 1).unwrap();
    ffa
}

/// Boot sequence of a partition: version, id, buffers (secure addresses).
pub(super) fn sp_boot(conduit: SimConduit) -> (Ffa<SimConduit>, u16) {
    let mut ffa = Ffa::new(conduit);
    ffa.version(V1_2).unwrap();
    let id = ffa.id_get().unwrap();
    ffa.rxtx_map(0x0e00_0000, 0x0e00_1000, 1).unwrap();
    (ffa, id)
}

/// A partition that answers each DIRECT_REQ2 with payload word 0 incremented.
pub(super) fn echo_sp(conduit: SimConduit, _mapper: SimMapper) {
    let (mut ffa, id) = sp_boot(conduit);
    let mut msg = ffa.msg_wait();
    loop {
        match msg {
            Ok(Interface::MsgSendDirectReq2 { src_id, args, .. }) => {
                let mut p = args.0;
                p[0] += 1;
                msg = ffa.direct_resp2(id, src_id, p);
            }
            Err(Error::Ffa(FfaError::Aborted)) => return,
            other => panic!("echo sp: unexpected {other:?}"),
        }
    }
}

/// Work run on a partition's thread while it handles a direct request.
pub(super) type Job = Box<dyn FnOnce(&mut Ffa<SimConduit>, &mut SimMapper) + Send>;

/// A partition that runs the queued job for each DIRECT_REQ2 it receives.
pub(super) fn puppet_sp(
    jobs: mpsc::Receiver<Job>,
) -> impl FnOnce(SimConduit, SimMapper) + Send + 'static {
    move |conduit, mut mapper| {
        let (mut ffa, id) = sp_boot(conduit);
        let mut msg = ffa.msg_wait();
        loop {
            match msg {
                Ok(Interface::MsgSendDirectReq2 { src_id, .. }) => {
                    let job = jobs.try_recv().expect("a queued job");
                    job(&mut ffa, &mut mapper);
                    msg = ffa.direct_resp2(id, src_id, [0; 14]);
                }
                Err(Error::Ffa(FfaError::Aborted)) => return,
                other => panic!("puppet: unexpected {other:?}"),
            }
        }
    }
}

/// A world with VM 1 (booted) and a puppet partition 0x8001 serving `SVC`.
pub(super) struct Env {
    pub(super) world: World,
    pub(super) vm: VmEndpoint,
    pub(super) ffa: Ffa<SimConduit>,
    pub(super) jobs: mpsc::Sender<Job>,
    pub(super) sp: Option<SpHandle>,
}

impl Env {
    pub(super) fn new() -> Self {
        let world = World::new();
        let vm = world.add_vm(VM);
        let (jobs, rx) = mpsc::channel();
        let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), puppet_sp(rx));
        let ffa = vm_ffa(&vm);
        Self {
            world,
            vm,
            ffa,
            jobs,
            sp: Some(sp),
        }
    }

    /// Runs `f` on the partition (inside a direct request from VM 1) and returns its result.
    pub(super) fn on_sp<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Ffa<SimConduit>, &mut SimMapper) -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .send(Box::new(move |ffa, mapper| {
                tx.send(f(ffa, mapper)).unwrap()
            }))
            .unwrap();
        self.ffa.direct_req2(VM, SP, SVC, [0; 14]).unwrap();
        rx.recv().unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.world.shutdown();
        if let Some(sp) = self.sp.take()
            && !thread::panicking()
        {
            sp.join().unwrap();
        }
    }
}

pub(super) fn share_desc(ranges: Vec<MemRange>, access: DataAccess) -> MemTransaction {
    MemTransaction {
        sender: VM,
        attributes: ATTR_NORMAL_WB_INNER_SHAREABLE,
        flags: 0,
        handle: 0,
        tag: 0,
        receivers: vec![Receiver {
            endpoint: SP,
            access,
            executable: false,
        }],
        ranges,
    }
}

pub(super) fn retrieve_req(handle: u64, tag: u64, sender: u16) -> MemTransaction {
    MemTransaction::retrieve_request(
        sender,
        handle,
        tag,
        ShareKind::Share,
        Receiver {
            endpoint: SP,
            access: DataAccess::ReadWrite,
            executable: false,
        },
    )
    .expect("room for one receiver")
}

pub(super) fn raw_version(conduit: &mut SimConduit, v: u32) -> u64 {
    let mut regs = [0; 18];
    regs[0] = u64::from(u32::from(FuncId::Version));
    regs[1] = u64::from(v);
    conduit.call(regs)[0]
}

pub(super) const NOT_SUPPORTED_W0: u64 = 0xffff_ffff;
