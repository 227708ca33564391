//! Tests of the simulated world, mostly through the typed calls ([`Ffa`]) as real endpoints
//! would make them.

use std::{
    sync::{Arc, Barrier, mpsc},
    thread,
    time::Duration,
};

use arm_ffa::{
    FfaError, FuncId, Interface, Version,
    interface_args::{DirectMsg2Args, DirectMsgArgs, SuccessArgs, VmAvailabilityStatus},
    partition_info::PartitionInfoGetFlags,
};
use uuid::Uuid;

use super::*;
use crate::Conduit;
use crate::{
    Ffa,
    calls::Error,
    memory::{
        ATTR_NORMAL_WB_INNER_SHAREABLE, DataAccess, MapError, MemRange, MemTransaction, NsMapper,
        Receiver, ShareKind,
    },
};

const SP: u16 = 0x8001;
const SP2: u16 = 0x8002;
const VM: u16 = 1;
const VM2: u16 = 2;
const SVC: Uuid = crate::VIRTIO_MSG_DEVICE_UUID;
const OTHER: Uuid = Uuid::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888);
const V1_1: Version = Version(1, 1);
const V1_2: Version = Version(1, 2);

fn ffa_err(e: FfaError) -> Result<(), Error> {
    Err(Error::Ffa(e))
}

/// A VM's FF-A interface after FFA_VERSION(1.2) and FFA_RXTX_MAP of two of its pages.
fn vm_ffa(vm: &VmEndpoint) -> Ffa<SimConduit> {
    let mut ffa = Ffa::new(vm.conduit());
    assert_eq!(ffa.version(V1_2).unwrap(), V1_2);
    let bufs = vm.alloc(2);
    ffa.rxtx_map(bufs, bufs + 4096, 1).unwrap();
    ffa
}

/// Boot sequence of a partition: version, id, buffers (secure addresses).
fn sp_boot(conduit: SimConduit) -> (Ffa<SimConduit>, u16) {
    let mut ffa = Ffa::new(conduit);
    ffa.version(V1_2).unwrap();
    let id = ffa.id_get().unwrap();
    ffa.rxtx_map(0x0e00_0000, 0x0e00_1000, 1).unwrap();
    (ffa, id)
}

/// A partition that answers each DIRECT_REQ2 with payload word 0 incremented.
fn echo_sp(conduit: SimConduit, _mapper: SimMapper) {
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
type Job = Box<dyn FnOnce(&mut Ffa<SimConduit>, &mut SimMapper) + Send>;

/// A partition that runs the queued job for each DIRECT_REQ2 it receives.
fn puppet_sp(jobs: mpsc::Receiver<Job>) -> impl FnOnce(SimConduit, SimMapper) + Send + 'static {
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
struct Env {
    world: World,
    vm: VmEndpoint,
    ffa: Ffa<SimConduit>,
    jobs: mpsc::Sender<Job>,
    sp: Option<SpHandle>,
}

impl Env {
    fn new() -> Self {
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
    fn on_sp<R: Send + 'static>(
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

fn share_desc(ranges: Vec<MemRange>, access: DataAccess) -> MemTransaction {
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

fn retrieve_req(handle: u64, tag: u64, sender: u16) -> MemTransaction {
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
}

fn raw_version(conduit: &mut SimConduit, v: u32) -> u64 {
    let mut regs = [0; 18];
    regs[0] = u64::from(u32::from(FuncId::Version));
    regs[1] = u64::from(v);
    conduit.call(regs)[0]
}

const NOT_SUPPORTED_W0: u64 = 0xffff_ffff;

// ---------------------------------------------------------------- version, id, discovery

#[test]
fn version_negotiation_and_lock() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let mut c = vm.conduit();
    assert_eq!(raw_version(&mut c, 0x1_0001), 0x1_0002);
    assert_eq!(
        raw_version(&mut c, 0x1_0002),
        0x1_0002,
        "may change before other calls"
    );
    for bad in [0x2_0000, 0x1_0003, 0x1_0000, 0x8001_0002] {
        assert_eq!(raw_version(&mut c, bad), NOT_SUPPORTED_W0, "{bad:#x}");
    }
    let mut ffa = Ffa::new(c);
    assert_eq!(ffa.id_get().unwrap(), VM);
    let c = ffa.conduit();
    assert_eq!(
        raw_version(c, 0x1_0001),
        NOT_SUPPORTED_W0,
        "locked after FFA_ID_GET"
    );
    assert_eq!(
        raw_version(c, 0x1_0002),
        0x1_0002,
        "the same version is still fine"
    );
}

#[test]
fn version_1_1_caller_cannot_use_1_2_abis() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), echo_sp);
    let mut c = vm.conduit();
    assert_eq!(raw_version(&mut c, 0x1_0001), 0x1_0002);
    // DIRECT_REQ2 encoded by hand (Ffa at v1.1 refuses to encode it).
    let mut regs = [0; 18];
    Interface::MsgSendDirectReq2 {
        src_id: VM,
        dst_id: SP,
        uuid: SVC,
        args: DirectMsg2Args([0; 14]),
    }
    .to_regs(V1_2, &mut regs);
    let answer = Interface::from_regs(V1_2, &c.call(regs)).unwrap();
    assert_eq!(answer, Interface::error(FfaError::NotSupported, true));
    // The 64-bit FFA_MSG_SEND_DIRECT_REQ is a v1.0 ABI: decoded (not refused, no panic).
    Interface::MsgSendDirectReq {
        src_id: VM,
        dst_id: 0x8009,
        args: DirectMsgArgs::Args64([0; 15]),
    }
    .to_regs(V1_2, &mut regs);
    let answer = Interface::from_regs(V1_2, &c.call(regs)).unwrap();
    assert_eq!(answer, Interface::error(FfaError::InvalidParameters, true));
    world.shutdown();
    sp.join().unwrap();
}

#[test]
fn unknown_function_is_not_supported() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let mut c = vm.conduit();
    let mut regs = [0; 18];
    regs[0] = 0x8400_00ff;
    let answer = Interface::from_regs(V1_2, &c.call(regs)).unwrap();
    assert_eq!(answer, Interface::error(FfaError::NotSupported, true));
    // Known function, malformed flags (MBZ bits of FFA_MEM_RECLAIM).
    regs = [0; 18];
    regs[0] = u64::from(u32::from(FuncId::MemReclaim));
    regs[3] = 0x100;
    let answer = Interface::from_regs(V1_2, &c.call(regs)).unwrap();
    assert_eq!(answer, Interface::error(FfaError::InvalidParameters, true));
}

#[test]
fn id_get_features_and_spm_id() {
    let world = World::new();
    let vm = world.add_vm(7);
    let mut ffa = Ffa::new(vm.conduit());
    assert_eq!(ffa.id_get().unwrap(), 7);
    let ok = |ffa: &mut Ffa<SimConduit>, f: FuncId| {
        ffa.call(&Interface::Features {
            feat_id: arm_ffa::interface_args::Feature::FuncId(f),
            input_properties: 0,
        })
        .map(|_| ())
    };
    assert_eq!(ok(&mut ffa, FuncId::MsgSendDirectReq64_2), Ok(()));
    assert_eq!(ok(&mut ffa, FuncId::MemShare64), Ok(()));
    assert_eq!(
        ok(&mut ffa, FuncId::MsgWait32),
        ffa_err(FfaError::NotSupported)
    );
    assert_eq!(
        ok(&mut ffa, FuncId::MsgSend2),
        ffa_err(FfaError::NotSupported)
    );
    match ffa.call(&Interface::SpmIdGet).unwrap() {
        Interface::Success { args, .. } => {
            assert_eq!(args, SuccessArgs::Args32([0x8000, 0, 0, 0, 0, 0]))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn partition_info_get() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let other2 = Uuid::from_u128(42);
    let sp1 = world.spawn_sp(SpInfo::new(SP, vec![SVC, OTHER]), echo_sp);
    let mut info2 = SpInfo::new(SP2, vec![other2]);
    info2.properties = props::DIRECT_REQ_RECV | props::AARCH64;
    info2.exec_ctx_count = 4;
    let sp2 = world.spawn_sp(info2, echo_sp);
    let mut ffa = vm_ffa(&vm);

    let all = ffa.partition_info_get(Uuid::nil()).unwrap();
    let summary: Vec<(u16, Uuid)> = all.iter().map(|p| (p.partition_id, p.uuid)).collect();
    assert_eq!(summary, vec![(SP, SVC), (SP, OTHER), (SP2, other2)]);
    assert!(all[0].props.is_aarch64);
    assert_eq!(all[0].props.support_direct_req2_rec, Some(true));
    assert!(all[0].props.support_notif_rec);
    assert_eq!(all[2].props.support_direct_req2_rec, Some(false));
    assert!(all[2].props.support_direct_req_rec);
    assert_eq!(
        all[2].partition_id_type,
        arm_ffa::partition_info::PartitionIdType::PeEndpoint {
            execution_ctx_count: 4
        }
    );

    let one = ffa.partition_info_get(SVC).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].partition_id, SP);
    assert!(
        one[0].uuid.is_nil(),
        "UUID field is zero when a UUID was asked for"
    );

    assert_eq!(
        ffa.partition_info_get(Uuid::from_u128(7)).map(|_| ()),
        ffa_err(FfaError::InvalidParameters)
    );

    // Count only: no RX buffer involved.
    let count_only = Interface::PartitionInfoGet {
        uuid: Uuid::nil(),
        flags: PartitionInfoGetFlags { count_only: true },
    };
    match ffa.call(&count_only).unwrap() {
        Interface::Success { args, .. } => {
            assert_eq!(args, SuccessArgs::Args32([3, 0, 0, 0, 0, 0]))
        }
        other => panic!("{other:?}"),
    }

    // RX ownership: a second fill before FFA_RX_RELEASE is BUSY.
    let fill = Interface::PartitionInfoGet {
        uuid: Uuid::nil(),
        flags: PartitionInfoGetFlags { count_only: false },
    };
    match ffa.call(&fill).unwrap() {
        Interface::Success { args, .. } => {
            assert_eq!(args, SuccessArgs::Args32([3, 24, 0, 0, 0, 0]))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ffa.call(&fill).map(|_| ()), ffa_err(FfaError::Busy));
    ffa.rx_release().unwrap();
    assert_eq!(
        ffa.rx_release(),
        ffa_err(FfaError::Denied),
        "already released"
    );
    assert!(ffa.call(&fill).is_ok());
    ffa.rx_release().unwrap();

    // A v1.1 caller gets one descriptor per partition.
    let vm2 = world.add_vm(VM2);
    let mut old = Ffa::new(vm2.conduit());
    old.version(V1_1).unwrap();
    assert_eq!(
        old.partition_info_get(Uuid::nil()).map(|_| ()),
        ffa_err(FfaError::Busy),
        "no RX buffer mapped"
    );
    let bufs = vm2.alloc(2);
    old.rxtx_map(bufs, bufs + 4096, 1).unwrap();
    let ids: Vec<u16> = old
        .partition_info_get(Uuid::nil())
        .unwrap()
        .iter()
        .map(|p| p.partition_id)
        .collect();
    assert_eq!(ids, vec![SP, SP2]);

    world.shutdown();
    sp1.join().unwrap();
    sp2.join().unwrap();
}

#[test]
fn rxtx_map_rules() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let vm2 = world.add_vm(VM2);
    let mut ffa = Ffa::new(vm.conduit());
    let mine = vm.alloc(2);
    let theirs = vm2.alloc(1);
    assert_eq!(
        ffa.rxtx_map(mine, theirs, 1),
        ffa_err(FfaError::Denied),
        "RX not owned"
    );
    assert_eq!(
        ffa.rxtx_map(mine, mine + 4096, 2),
        ffa_err(FfaError::InvalidParameters)
    );
    assert_eq!(
        ffa.rxtx_map(mine, mine, 1),
        ffa_err(FfaError::InvalidParameters)
    );
    assert_eq!(
        ffa.rxtx_map(mine + 8, mine + 4096, 1),
        ffa_err(FfaError::InvalidParameters)
    );
    ffa.rxtx_map(mine, mine + 4096, 1).unwrap();
    assert_eq!(
        ffa.rxtx_map(mine, mine + 4096, 1),
        ffa_err(FfaError::Denied),
        "mapped twice"
    );
    assert!(vm.free(mine, 1).is_err(), "RX/TX pages are reserved");
    ffa.call(&Interface::RxTxUnmap { id: 0 }).unwrap();
    assert_eq!(
        ffa.call(&Interface::RxTxUnmap { id: 0 }).map(|_| ()),
        ffa_err(FfaError::InvalidParameters)
    );
    vm.free(mine, 2).unwrap();
    let faults = world.take_faults();
    assert_eq!(faults.len(), 1, "the refused free: {faults:?}");
}

#[test]
fn premapped_partition_cannot_map_again() {
    let world = World::new();
    let mut info = SpInfo::new(SP, vec![SVC]);
    info.rxtx_premapped = true;
    let (tx, rx) = mpsc::channel();
    let sp = world.spawn_sp(info, move |conduit, _| {
        let mut ffa = Ffa::new(conduit);
        tx.send(ffa.rxtx_map(0x0e00_0000, 0x0e00_1000, 1)).unwrap();
        let _ = ffa.msg_wait();
    });
    assert_eq!(rx.recv().unwrap(), ffa_err(FfaError::Denied));
    world.shutdown();
    sp.join().unwrap();
}

// ---------------------------------------------------------------- direct messaging

#[test]
fn direct_request_round_trip() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), echo_sp);
    let mut ffa = vm_ffa(&vm);
    let mut payload = [0u64; 14];
    payload[0] = 41;
    payload[13] = 0xdead;
    let answer = ffa.direct_req2(VM, SP, SVC, payload).unwrap();
    assert_eq!(answer[0], 42);
    assert_eq!(answer[13], 0xdead);
    // The nil UUID is accepted too.
    assert_eq!(ffa.direct_req2(VM, SP, Uuid::nil(), [1; 14]).unwrap()[0], 2);
    world.shutdown();
    sp.join().unwrap();
    world.assert_no_faults();
}

#[test]
fn direct_request_refusals() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), echo_sp);
    let mut no_req2 = SpInfo::new(SP2, vec![SVC]);
    no_req2.properties &= !props::DIRECT_REQ2_RECV;
    let sp2 = world.spawn_sp(no_req2, echo_sp);
    let mut ffa = vm_ffa(&vm);
    let req = |ffa: &mut Ffa<SimConduit>, src, dst, uuid| {
        ffa.direct_req2(src, dst, uuid, [0; 14]).map(|_| ())
    };
    assert_eq!(
        req(&mut ffa, VM, SP, OTHER),
        ffa_err(FfaError::InvalidParameters),
        "UUID not served"
    );
    assert_eq!(
        req(&mut ffa, VM, SP2, SVC),
        ffa_err(FfaError::Denied),
        "no DIRECT_REQ2 receipt"
    );
    assert_eq!(
        req(&mut ffa, VM, 0x8009, SVC),
        ffa_err(FfaError::InvalidParameters),
        "no such partition"
    );
    assert_eq!(
        req(&mut ffa, VM2, SP, SVC),
        ffa_err(FfaError::InvalidParameters),
        "source not the caller"
    );
    assert_eq!(
        req(&mut ffa, VM, VM2, SVC),
        ffa_err(FfaError::InvalidParameters),
        "target is a VM"
    );
    assert_eq!(req(&mut ffa, VM, SP, SVC), Ok(()));
    world.shutdown();
    sp.join().unwrap();
    sp2.join().unwrap();
}

#[test]
fn busy_partition_answers_busy() {
    let world = World::new();
    let vm1 = world.add_vm(VM);
    let vm2 = world.add_vm(VM2);
    let entered = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let (e, r) = (entered.clone(), release.clone());
    let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), move |conduit, _| {
        let (mut ffa, id) = sp_boot(conduit);
        let mut msg = ffa.msg_wait();
        while let Ok(Interface::MsgSendDirectReq2 { src_id, args, .. }) = msg {
            if args.0[0] == 1 {
                e.wait();
                r.wait();
            }
            msg = ffa.direct_resp2(id, src_id, args.0);
        }
    });
    let mut first = vm_ffa(&vm1);
    let a = thread::spawn(move || first.direct_req2(VM, SP, SVC, [1; 14]));
    entered.wait(); // The partition is now handling VM 1's request.
    let mut second = vm_ffa(&vm2);
    assert_eq!(
        second.direct_req2(VM2, SP, SVC, [2; 14]).map(|_| ()),
        ffa_err(FfaError::Busy)
    );
    release.wait();
    assert_eq!(a.join().unwrap().unwrap()[0], 1);
    assert_eq!(second.direct_req2(VM2, SP, SVC, [2; 14]).unwrap()[0], 2);
    world.shutdown();
    sp.join().unwrap();
}

#[test]
fn partition_side_rules() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let (tx, rx) = mpsc::channel();
    let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), move |conduit, _| {
        let (mut ffa, id) = sp_boot(conduit);
        // Nothing pending yet: a response is DENIED.
        tx.send(ffa.direct_resp2(id, VM, [0; 14]).map(|_| ()))
            .unwrap();
        let msg = ffa.msg_wait().unwrap();
        let Interface::MsgSendDirectReq2 { src_id, .. } = msg else {
            panic!("{msg:?}")
        };
        // While a request is pending: MSG_WAIT is DENIED, FFA_ERROR is NOT_SUPPORTED, a
        // response to someone else is INVALID_PARAMETERS, the wrong ABI is DENIED.
        tx.send(ffa.msg_wait().map(|_| ())).unwrap();
        tx.send(ffa.error_answer(FfaError::Denied).map(|_| ()))
            .unwrap();
        tx.send(ffa.direct_resp2(id, VM2, [0; 14]).map(|_| ()))
            .unwrap();
        tx.send(ffa.direct_resp2(SP2, src_id, [0; 14]).map(|_| ()))
            .unwrap();
        tx.send(
            ffa.direct_resp(id, src_id, DirectMsgArgs::Args32([0; 5]))
                .map(|_| ()),
        )
        .unwrap();
        let mut msg = ffa.direct_resp2(id, src_id, [7; 14]);
        while let Ok(Interface::MsgSendDirectReq2 { src_id, .. }) = msg {
            msg = ffa.direct_resp2(id, src_id, [8; 14]);
        }
    });
    let mut ffa = vm_ffa(&vm);
    assert_eq!(ffa.direct_req2(VM, SP, SVC, [0; 14]).unwrap(), [7; 14]);
    let seen: Vec<Result<(), Error>> = rx.try_iter().collect();
    assert_eq!(
        seen,
        vec![
            ffa_err(FfaError::Denied),
            ffa_err(FfaError::Denied),
            ffa_err(FfaError::NotSupported),
            ffa_err(FfaError::InvalidParameters),
            ffa_err(FfaError::InvalidParameters),
            ffa_err(FfaError::Denied),
        ]
    );
    world.shutdown();
    sp.join().unwrap();
}

#[test]
fn partition_panic_aborts_the_caller() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), |conduit, _| {
        let (mut ffa, _) = sp_boot(conduit);
        let _request = ffa.msg_wait();
        panic!("partition bug (expected by the test)");
    });
    let mut ffa = vm_ffa(&vm);
    assert!(world.sp_alive(SP));
    assert_eq!(
        ffa.direct_req2(VM, SP, SVC, [0; 14]).map(|_| ()),
        ffa_err(FfaError::Aborted)
    );
    assert!(!world.sp_alive(SP));
    assert_eq!(
        ffa.direct_req2(VM, SP, SVC, [0; 14]).map(|_| ()),
        ffa_err(FfaError::Aborted)
    );
    assert!(sp.join().is_err());
}

#[test]
fn abort_during_boot() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let (tx, rx) = mpsc::channel();
    let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), move |conduit, _| {
        let mut ffa = Ffa::new(conduit);
        tx.send(ffa.error_answer(FfaError::Aborted).map(|_| ()))
            .unwrap();
        tx.send(ffa.id_get().map(|_| ())).unwrap();
    });
    assert_eq!(rx.recv().unwrap(), ffa_err(FfaError::Aborted));
    assert_eq!(
        rx.recv().unwrap(),
        ffa_err(FfaError::Aborted),
        "an aborted partition gets nothing done"
    );
    assert!(!world.sp_alive(SP));
    let mut ffa = vm_ffa(&vm);
    assert_eq!(
        ffa.direct_req2(VM, SP, SVC, [0; 14]).map(|_| ()),
        ffa_err(FfaError::Aborted)
    );
    sp.join().unwrap();
}

#[test]
fn shutdown_ends_the_partition_thread() {
    let world = World::new();
    let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), echo_sp);
    world.shutdown();
    sp.join().unwrap();
    assert!(!world.sp_alive(SP));
}

#[test]
fn dropping_the_world_ends_the_partition_thread() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), echo_sp);
    let mut ffa = vm_ffa(&vm);
    assert_eq!(ffa.direct_req2(VM, SP, SVC, [0; 14]).unwrap()[0], 1);
    drop((world, vm, ffa));
    sp.join().unwrap();
}

#[test]
fn vm_destroyed_framework_message() {
    let world = World::new();
    let mut info = SpInfo::new(SP, vec![SVC]);
    info.properties |= props::VM_DESTROYED;
    let (tx, rx) = mpsc::channel();
    let sp = world.spawn_sp(info, move |conduit, _| {
        let (mut ffa, id) = sp_boot(conduit);
        let mut msg = ffa.msg_wait();
        while let Ok(Interface::MsgSendDirectReq {
            src_id,
            args: DirectMsgArgs::VmDestructed { vm_id, .. },
            ..
        }) = msg
        {
            tx.send((src_id, vm_id)).unwrap();
            let sp_status = if vm_id == 5 {
                VmAvailabilityStatus::Success
            } else {
                VmAvailabilityStatus::Error(FfaError::Retry)
            };
            msg = ffa.direct_resp(id, src_id, DirectMsgArgs::VmDestructedAck { sp_status });
        }
    });
    assert_eq!(world.send_vm_destroyed(SP, 5), Ok(()));
    assert_eq!(rx.recv().unwrap(), (HYPERVISOR_ID, 5));
    assert_eq!(world.send_vm_destroyed(SP, 6), Err(FfaError::Retry));
    assert_eq!(
        world.send_vm_created(SP, 6),
        Err(FfaError::Denied),
        "not subscribed"
    );
    world.shutdown();
    sp.join().unwrap();
}

#[test]
fn console_lines() {
    let world = World::new();
    let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), |conduit, _| {
        let (mut ffa, _) = sp_boot(conduit);
        ffa.console_log(b"hello\nwor").unwrap();
        ffa.console_log(b"ld\n").unwrap();
        let _ = ffa.msg_wait();
    });
    world.shutdown();
    sp.join().unwrap();
    assert_eq!(
        world.console(),
        vec![(SP, "hello".to_string()), (SP, "world".to_string())]
    );
}

// ---------------------------------------------------------------- notifications

#[test]
fn notifications() {
    let mut env = Env::new();
    let bind = |ffa: &mut Ffa<SimConduit>, bits| ffa.notification_bind(SP, VM, bits);
    assert_eq!(
        bind(&mut env.ffa, 1 << 3),
        ffa_err(FfaError::NotSupported),
        "no bitmap yet"
    );
    env.ffa
        .call(&Interface::NotificationBitmapCreate {
            vm_id: VM,
            vcpu_cnt: 1,
        })
        .unwrap();
    assert_eq!(
        env.ffa
            .call(&Interface::NotificationBitmapCreate {
                vm_id: VM,
                vcpu_cnt: 1
            })
            .map(|_| ()),
        ffa_err(FfaError::Denied)
    );
    assert_eq!(bind(&mut env.ffa, 0), ffa_err(FfaError::InvalidParameters));
    assert_eq!(
        env.ffa.notification_bind(SP, VM2, 1),
        ffa_err(FfaError::InvalidParameters),
        "receiver must be the caller"
    );
    bind(&mut env.ffa, 1 << 3).unwrap();

    let results = env.on_sp(|ffa, _| {
        [
            ffa.notification_set(SP, VM, 1 << 3),
            ffa.notification_set(SP, VM, 1 << 4),
            ffa.notification_set(VM, VM, 1 << 3),
        ]
    });
    assert_eq!(
        results,
        [
            Ok(()),
            ffa_err(FfaError::Denied),
            ffa_err(FfaError::InvalidParameters)
        ]
    );
    assert_eq!(env.world.notifications_pending(VM), 1 << 3);
    assert!(env.vm.wait_notification(Duration::from_millis(1)));
    assert_eq!(
        env.ffa.notification_bind(SP, VM, 1 << 3 | 1 << 5),
        ffa_err(FfaError::Denied),
        "cannot rebind while pending"
    );
    assert_eq!(env.ffa.notification_get(VM).unwrap(), 1 << 3);
    assert_eq!(env.world.notifications_pending(VM), 0);
    assert!(!env.vm.wait_notification(Duration::from_millis(10)));
    assert_eq!(
        env.ffa.notification_get(VM2),
        ffa_err(FfaError::InvalidParameters).map(|()| 0)
    );

    // Unbinding stops the sender; a bit bound to another sender cannot be taken over.
    env.ffa
        .call(&Interface::NotificationUnbind {
            sender_id: SP,
            receiver_id: VM,
            bitmap: 1 << 3,
        })
        .unwrap();
    assert_eq!(
        env.on_sp(|ffa, _| ffa.notification_set(SP, VM, 1 << 3)),
        ffa_err(FfaError::Denied)
    );
    let vm2 = env.world.add_vm(VM2);
    let vm3 = env.world.add_vm(3);
    env.ffa.notification_bind(VM2, VM, 1 << 9).unwrap();
    assert_eq!(
        env.ffa.notification_bind(3, VM, 1 << 9),
        ffa_err(FfaError::Denied)
    );
    // Bits bound to VM senders and to SP senders are separate bitmaps (as in Hafnium).
    env.ffa.notification_bind(SP, VM, 1 << 9).unwrap();
    assert_eq!(
        env.ffa.notification_bind(0x8009, VM, 1),
        ffa_err(FfaError::InvalidParameters),
        "no such sender"
    );
    drop((vm2, vm3));
}

#[test]
fn wait_notification_wakes_up() {
    let mut env = Env::new();
    env.ffa
        .call(&Interface::NotificationBitmapCreate {
            vm_id: VM,
            vcpu_cnt: 1,
        })
        .unwrap();
    env.ffa.notification_bind(SP, VM, 1).unwrap();
    let (jobs, world) = (env.jobs.clone(), env.world.clone());
    let vm = env.vm.clone();
    let ringer = thread::spawn(move || {
        let mut ffa = Ffa::new(vm.conduit());
        ffa.version(V1_2).unwrap();
        jobs.send(Box::new(|ffa: &mut Ffa<SimConduit>, _: &mut SimMapper| {
            thread::sleep(Duration::from_millis(50));
            ffa.notification_set(SP, VM, 1).unwrap();
        }))
        .unwrap();
        ffa.direct_req2(VM, SP, SVC, [0; 14]).unwrap();
        drop(world);
    });
    assert!(env.vm.wait_notification(Duration::from_secs(10)));
    ringer.join().unwrap();
}

// ---------------------------------------------------------------- memory

#[test]
fn share_retrieve_access_relinquish_reclaim() {
    let mut env = Env::new();
    let pa = env.vm.alloc(2);
    env.vm.write(pa, b"hello").unwrap();
    let range = MemRange {
        address: pa,
        page_count: 2,
    };
    let handle = env
        .ffa
        .mem_send(
            ShareKind::Share,
            &share_desc(vec![range], DataAccess::ReadWrite),
        )
        .unwrap();
    assert_eq!(env.world.outstanding_handles(), vec![handle]);
    env.vm.write(pa + 8, b"!").unwrap(); // A sharer keeps access.

    let (resp, emad_size, va) = env.on_sp(move |ffa, mapper| {
        let resp = ffa.mem_retrieve(&retrieve_req(handle, 0, VM)).unwrap();
        // The raw response (still in the RX buffer) uses the v1.2 layout: 32-byte EMADs.
        let rx = ffa.conduit().rx();
        let emad_size = u32::from_le_bytes(rx[24..28].try_into().unwrap());
        let va = mapper.map(resp.ranges[0], true).unwrap();
        let mut buf = [0; 9];
        mapper.read(va, &mut buf).unwrap();
        assert_eq!(&buf, b"hello\0\0\0!");
        mapper.write(va + 4096 + 100, b"from the sp").unwrap();
        (resp, emad_size, va)
    });
    assert_eq!(emad_size, 32);
    assert_eq!(resp.handle, handle);
    assert_eq!(resp.sender, VM);
    assert_eq!(resp.ranges, vec![range]);
    assert_eq!(resp.receivers[0].access, DataAccess::ReadWrite);
    assert_eq!(
        resp.attributes,
        ATTR_NORMAL_WB_INNER_SHAREABLE | crate::memory::ATTR_NON_SECURE
    );
    assert_eq!(ShareKind::from_flags(resp.flags), Some(ShareKind::Share));
    assert_ne!(va, pa, "mapped at a virtual address of its own");
    assert!(env.world.is_retrieved(handle, SP));
    let mut buf = [0; 11];
    env.vm.read(pa + 4096 + 100, &mut buf).unwrap();
    assert_eq!(&buf, b"from the sp");

    assert_eq!(
        env.ffa.mem_reclaim(handle),
        ffa_err(FfaError::Denied),
        "still retrieved"
    );
    env.world.assert_no_faults();

    // Relinquish, then touch the still-mapped range: a fault.
    let after = env.on_sp(move |ffa, mapper| {
        ffa.mem_relinquish(handle, SP).unwrap();
        let again = ffa.mem_relinquish(handle, SP);
        let mut b = [0; 4];
        let read = mapper.read(va, &mut b);
        mapper.unmap(va, 2);
        (again, read)
    });
    assert_eq!(
        after,
        (
            ffa_err(FfaError::InvalidParameters),
            Err(MapError::NotMapped)
        )
    );
    let faults = env.world.take_faults();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(
        (faults[0].endpoint, faults[0].addr, faults[0].write),
        (SP, va, false)
    );
    assert!(
        faults[0].reason.contains("relinquish"),
        "{}",
        faults[0].reason
    );

    env.ffa.mem_reclaim(handle).unwrap();
    assert!(env.world.outstanding_handles().is_empty());
    assert_eq!(
        env.ffa.mem_reclaim(handle),
        ffa_err(FfaError::InvalidParameters),
        "handle gone"
    );
    env.vm.free(pa, 2).unwrap();
    env.world.assert_no_faults();
}

#[test]
fn retrieve_refusals() {
    let mut env = Env::new();
    let sp2 = env.world.spawn_sp(SpInfo::new(SP2, vec![OTHER]), echo_sp);
    let pa = env.vm.alloc(1);
    let range = MemRange {
        address: pa,
        page_count: 1,
    };
    let mut desc = share_desc(vec![range], DataAccess::ReadOnly);
    desc.tag = 9;
    let handle = env.ffa.mem_send(ShareKind::Share, &desc).unwrap();
    desc.receivers[0].endpoint = SP2;
    let not_mine = env.ffa.mem_send(ShareKind::Share, &{
        let pa2 = env.vm.alloc(1);
        let mut d = desc.clone();
        d.ranges = vec![MemRange {
            address: pa2,
            page_count: 1,
        }];
        d
    });
    let not_mine = not_mine.unwrap();

    let results = env.on_sp(move |ffa, mapper| {
        let get =
            |ffa: &mut Ffa<SimConduit>, req: &MemTransaction| ffa.mem_retrieve(req).map(|_| ());
        let mut out = vec![
            get(ffa, &retrieve_req(not_mine, 9, VM)),
            get(ffa, &retrieve_req(handle, 8, VM)),
            get(ffa, &retrieve_req(handle, 9, VM2)),
            get(ffa, &retrieve_req(0x1234, 9, VM)),
            get(ffa, &retrieve_req(handle, 9, VM)), // asks RW, was shared RO
        ];
        let mut ro = retrieve_req(handle, 9, VM);
        ro.receivers[0].access = DataAccess::ReadOnly;
        let mut lend = ro.clone();
        lend.flags = ShareKind::Lend.type_flag();
        out.push(get(ffa, &lend));
        out.push(get(ffa, &ro));
        out.push(get(ffa, &ro)); // second retrieval
        // Read-only: no writable mapping, no writes through a read-only one.
        let w = mapper.map(range, true).map(|_| ());
        let va = mapper.map(range, false).unwrap();
        let write = mapper.write(va, b"x");
        let straddle = mapper.read(va + 4090, &mut [0; 8]);
        let elsewhere = mapper.read(pa, &mut [0; 1]); // the physical address is not mapped
        (out, w, write, straddle, elsewhere)
    });
    let (out, w, write, straddle, elsewhere) = results;
    assert_eq!(
        out,
        vec![
            ffa_err(FfaError::InvalidParameters), // not a receiver of that handle
            ffa_err(FfaError::InvalidParameters), // wrong tag
            ffa_err(FfaError::Denied),            // wrong sender
            ffa_err(FfaError::InvalidParameters), // unknown handle
            ffa_err(FfaError::Denied),            // more access than granted
            ffa_err(FfaError::InvalidParameters), // wrong transaction type
            Ok(()),
            ffa_err(FfaError::Denied), // already retrieved
        ]
    );
    assert_eq!(w, Err(MapError::NotMapped));
    assert_eq!(write, Err(MapError::NotMapped));
    assert_eq!(straddle, Err(MapError::NotMapped));
    assert_eq!(elsewhere, Err(MapError::NotMapped));
    let reasons: Vec<&str> = env.world.take_faults().iter().map(|f| f.reason).collect();
    assert_eq!(
        reasons,
        vec![
            "write to memory retrieved read-only",
            "write to a read-only mapping",
            "access straddles the end of a mapping",
            "access to an address that is not mapped",
        ]
    );
    // The owner of the other handle is VM, but VM2 cannot reclaim either.
    let vm2 = env.world.add_vm(VM2);
    let mut other = vm_ffa(&vm2);
    assert_eq!(
        other.mem_reclaim(not_mine),
        ffa_err(FfaError::InvalidParameters)
    );
    env.ffa.mem_reclaim(not_mine).unwrap();
    env.world.shutdown();
    sp2.join().unwrap();
}

#[test]
fn retrieve_needs_rx_released() {
    let mut env = Env::new();
    let a = env.vm.alloc(1);
    let b = env.vm.alloc(1);
    let share = |ffa: &mut Ffa<SimConduit>, address| {
        ffa.mem_send(
            ShareKind::Share,
            &share_desc(
                vec![MemRange {
                    address,
                    page_count: 1,
                }],
                DataAccess::ReadWrite,
            ),
        )
        .unwrap()
    };
    let (ha, hb) = (share(&mut env.ffa, a), share(&mut env.ffa, b));
    let results = env.on_sp(move |ffa, _| {
        let raw = |ffa: &mut Ffa<SimConduit>, h| {
            let len = retrieve_req(h, 0, VM)
                .pack(V1_2, ffa.conduit().tx())
                .unwrap();
            let len = u32::try_from(len).unwrap();
            ffa.call(&Interface::MemRetrieveReq {
                total_len: len,
                frag_len: len,
                buf: None,
            })
            .map(|_| ())
        };
        let first = raw(ffa, ha);
        let busy = raw(ffa, hb);
        ffa.rx_release().unwrap();
        let second = raw(ffa, hb);
        ffa.rx_release().unwrap();
        [first, busy, second]
    });
    assert_eq!(results, [Ok(()), ffa_err(FfaError::Busy), Ok(())]);
}

#[test]
fn share_refusals() {
    let mut env = Env::new();
    let vm2 = env.world.add_vm(VM2);
    let mine = env.vm.alloc(4);
    let theirs = vm2.alloc(1);
    let send = |ffa: &mut Ffa<SimConduit>, desc: &MemTransaction| {
        ffa.mem_send(ShareKind::Share, desc).map(|_| ())
    };
    let one = |address, page_count| {
        share_desc(
            vec![MemRange {
                address,
                page_count,
            }],
            DataAccess::ReadWrite,
        )
    };

    assert_eq!(
        send(&mut env.ffa, &one(theirs, 1)),
        ffa_err(FfaError::Denied),
        "not owned"
    );
    assert_eq!(
        send(&mut env.ffa, &one(0x10_0000_0000, 1)),
        ffa_err(FfaError::Denied),
        "unallocated"
    );
    assert_eq!(
        send(&mut env.ffa, &one(mine, 0)),
        ffa_err(FfaError::InvalidParameters),
        "zero pages"
    );
    assert_eq!(
        send(&mut env.ffa, &one(mine + 3 * 4096, 2)),
        ffa_err(FfaError::Denied),
        "runs off the end"
    );
    let overlap = share_desc(
        vec![
            MemRange {
                address: mine,
                page_count: 2,
            },
            MemRange {
                address: mine + 4096,
                page_count: 1,
            },
        ],
        DataAccess::ReadWrite,
    );
    assert_eq!(
        send(&mut env.ffa, &overlap),
        ffa_err(FfaError::InvalidParameters),
        "overlap"
    );
    let mut d = one(mine, 1);
    d.sender = VM2;
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::Denied),
        "sender is not the caller"
    );
    let mut d = one(mine, 1);
    d.receivers[0].endpoint = VM2;
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::InvalidParameters),
        "receiver is a VM"
    );
    d.receivers[0].endpoint = 0x8007;
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::InvalidParameters),
        "no such receiver"
    );
    d.receivers = vec![];
    assert!(send(&mut env.ffa, &d).is_err(), "no receivers");
    let mut d = one(mine, 1);
    d.receivers[0].endpoint = VM;
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::InvalidParameters),
        "sharing with itself"
    );
    let mut d = one(mine, 1);
    d.receivers[0].access = DataAccess::NotSpecified;
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::InvalidParameters),
        "access not specified"
    );
    let mut d = one(mine, 1);
    d.receivers[0].executable = true;
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::InvalidParameters),
        "executable"
    );
    let mut d = one(mine, 1);
    d.attributes = 0x24; // normal, write-back, non-shareable
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::Denied),
        "attributes"
    );
    d.attributes = ATTR_NORMAL_WB_INNER_SHAREABLE | crate::memory::ATTR_NON_SECURE;
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::InvalidParameters),
        "NS bit"
    );
    let mut d = one(mine, 1);
    d.flags = 1; // clear: not for a share
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::InvalidParameters),
        "clear flag"
    );

    // Misaligned constituent: patch the packed descriptor (pack refuses to write one).
    let len = one(mine, 1).pack(V1_2, env.ffa.conduit().tx()).unwrap();
    let constituent = 48 + 32 + 16;
    env.ffa.conduit().tx()[constituent..constituent + 8]
        .copy_from_slice(&(mine + 0x10).to_le_bytes());
    let len = u32::try_from(len).unwrap();
    let raw = |ffa: &mut Ffa<SimConduit>, total_len, frag_len| {
        ffa.call(&Interface::MemShare {
            total_len,
            frag_len,
            buf: None,
        })
        .map(|_| ())
    };
    assert_eq!(
        raw(&mut env.ffa, len, len),
        ffa_err(FfaError::InvalidParameters),
        "misaligned"
    );
    one(mine, 1).pack(V1_2, env.ffa.conduit().tx()).unwrap();
    assert_eq!(
        raw(&mut env.ffa, len + 16, len),
        ffa_err(FfaError::NotSupported),
        "fragmented"
    );
    assert_eq!(
        raw(&mut env.ffa, 8000, 8000),
        ffa_err(FfaError::InvalidParameters),
        "longer than TX"
    );

    // Already shared, and RX/TX pages, cannot be shared (again).
    env.ffa.mem_send(ShareKind::Share, &one(mine, 2)).unwrap();
    assert_eq!(
        send(&mut env.ffa, &one(mine + 4096, 2)),
        ffa_err(FfaError::Denied),
        "already shared"
    );
    let rx_page = 0x4000_0000 + 4096; // vm_ffa's RX buffer: VM 1's first allocation
    assert_eq!(
        send(&mut env.ffa, &one(rx_page, 1)),
        ffa_err(FfaError::Denied),
        "RX buffer page"
    );
    assert!(
        env.vm.free(mine, 1).is_err(),
        "shared pages cannot be freed"
    );
    env.world.take_faults();
    env.world.assert_no_faults();
}

#[test]
fn lend_takes_the_owners_access_until_reclaim() {
    let mut env = Env::new();
    let pa = env.vm.alloc(1);
    env.vm.write(pa, b"lent").unwrap();
    let mut desc = share_desc(
        vec![MemRange {
            address: pa,
            page_count: 1,
        }],
        DataAccess::ReadWrite,
    );
    desc.attributes = 0; // a lend to one borrower leaves the type unspecified
    let handle = env.ffa.mem_send(ShareKind::Lend, &desc).unwrap();
    let mut b = [0; 4];
    assert!(env.vm.read(pa, &mut b).is_err());
    assert_eq!(
        env.world.take_faults()[0].reason,
        "owner access to memory it lent"
    );
    let seen = env.on_sp(move |ffa, mapper| {
        let mut req = retrieve_req(handle, 0, VM);
        req.flags = ShareKind::Lend.type_flag();
        let resp = ffa.mem_retrieve(&req).unwrap();
        let va = mapper.map(resp.ranges[0], true).unwrap();
        let mut b = [0; 4];
        mapper.read(va, &mut b).unwrap();
        mapper.write(va, b"back").unwrap();
        mapper.unmap(va, 1);
        ffa.mem_relinquish(handle, SP).unwrap();
        b
    });
    assert_eq!(&seen, b"lent");
    env.ffa.mem_reclaim(handle).unwrap();
    env.vm.read(pa, &mut b).unwrap();
    assert_eq!(&b, b"back");
    env.world.assert_no_faults();
}

#[test]
fn map_needs_a_retrieval() {
    let mut env = Env::new();
    let pa = env.vm.alloc(1);
    let handle = env
        .ffa
        .mem_send(
            ShareKind::Share,
            &share_desc(
                vec![MemRange {
                    address: pa,
                    page_count: 1,
                }],
                DataAccess::ReadWrite,
            ),
        )
        .unwrap();
    let result = env.on_sp(move |_, mapper| {
        let r = mapper.map(
            MemRange {
                address: pa,
                page_count: 1,
            },
            false,
        );
        mapper.unmap(0x1000, 1);
        r
    });
    assert_eq!(result, Err(MapError::NotMapped));
    let reasons: Vec<&str> = env.world.take_faults().iter().map(|f| f.reason).collect();
    assert_eq!(
        reasons,
        vec![
            "access to memory not retrieved (or already relinquished)",
            "unmap of a range that is not a mapping"
        ]
    );
    env.ffa.mem_reclaim(handle).unwrap();
}

#[test]
fn partition_death_relinquishes_its_retrievals() {
    let mut env = Env::new();
    let pa = env.vm.alloc(1);
    let handle = env
        .ffa
        .mem_send(
            ShareKind::Share,
            &share_desc(
                vec![MemRange {
                    address: pa,
                    page_count: 1,
                }],
                DataAccess::ReadWrite,
            ),
        )
        .unwrap();
    env.jobs
        .send(Box::new(move |ffa, _| {
            ffa.mem_retrieve(&retrieve_req(handle, 0, VM)).unwrap();
            panic!("partition bug (expected by the test)");
        }))
        .unwrap();
    assert_eq!(
        env.ffa.direct_req2(VM, SP, SVC, [0; 14]).map(|_| ()),
        ffa_err(FfaError::Aborted)
    );
    assert!(!env.world.is_retrieved(handle, SP));
    env.ffa.mem_reclaim(handle).unwrap();
    assert!(env.sp.take().unwrap().join().is_err());
}

#[test]
fn vm_memory_access_rules() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let vm2 = world.add_vm(VM2);
    let mine = vm.alloc(2);
    let theirs = vm2.alloc(1);
    vm.write(mine + 4090, b"across a page").unwrap();
    let mut b = [0; 13];
    vm.read(mine + 4090, &mut b).unwrap();
    assert_eq!(&b, b"across a page");
    assert!(vm.read(theirs, &mut b).is_err());
    assert!(vm.write(mine + 2 * 4096 - 4, b"runs off").is_err());
    assert!(vm.read(0x1000, &mut b).is_err());
    assert!(vm.free(theirs, 1).is_err());
    let faults = world.take_faults();
    assert_eq!(faults.len(), 4, "{faults:?}");
    assert!(faults.iter().all(|f| f.endpoint == VM));
    vm.free(mine, 2).unwrap();
    assert!(vm.read(mine, &mut b).is_err(), "freed");
}

#[test]
#[should_panic(expected = "fault")]
fn assert_no_faults_panics_on_a_fault() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let _ = vm.read(0x1000, &mut [0; 1]);
    world.assert_no_faults();
}

#[test]
fn retrieve_response_layout_follows_the_callers_version() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<u64>();
    let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), move |conduit, _| {
        let mut ffa = Ffa::new(conduit);
        ffa.version(V1_1).unwrap();
        ffa.rxtx_map(0x0e00_0000, 0x0e00_1000, 1).unwrap();
        let mut msg = ffa.msg_wait();
        while let Ok(Interface::MsgSendDirectReq { src_id, .. }) = msg {
            let handle = go_rx.recv().unwrap();
            let resp = ffa
                .mem_retrieve(&retrieve_req(handle, 0, VM))
                .map(|r| r.ranges);
            let emad_size = u32::from_le_bytes(ffa.conduit().rx()[24..28].try_into().unwrap());
            tx.send((resp, emad_size)).unwrap();
            msg = ffa.direct_resp(SP, src_id, DirectMsgArgs::Args32([0; 5]));
        }
    });
    let mut ffa = vm_ffa(&vm);
    let pa = vm.alloc(1);
    let range = MemRange {
        address: pa,
        page_count: 1,
    };
    let handle = ffa
        .mem_send(
            ShareKind::Share,
            &share_desc(vec![range], DataAccess::ReadWrite),
        )
        .unwrap();
    go_tx.send(handle).unwrap();
    // A v1.1 partition is reached with the 32-bit FFA_MSG_SEND_DIRECT_REQ.
    let answer = ffa
        .call(&Interface::MsgSendDirectReq {
            src_id: VM,
            dst_id: SP,
            args: DirectMsgArgs::Args32([1, 2, 3, 4, 5]),
        })
        .unwrap();
    assert!(matches!(
        answer,
        Interface::MsgSendDirectResp {
            src_id: SP,
            dst_id: VM,
            ..
        }
    ));
    assert_eq!(rx.recv().unwrap(), (Ok(vec![range]), 16));
    world.shutdown();
    sp.join().unwrap();
}
