//! Tests of setup and discovery (`sim/setup.rs`): FFA_VERSION, FFA_FEATURES, FFA_ID_GET,
//! FFA_SPM_ID_GET, FFA_RXTX_MAP/UNMAP, FFA_PARTITION_INFO_GET and FFA_CONSOLE_LOG, and the
//! version gate of `sim/dispatch.rs`.

use std::sync::mpsc;

use arm_ffa::{
    FfaError, FuncId, Interface,
    interface_args::{DirectMsg2Args, DirectMsgArgs, SuccessArgs},
    partition_info::PartitionInfoGetFlags,
};
use uuid::Uuid;

use super::support::*;
use crate::{calls::Ffa, conduit::Conduit, sim::*};

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
    assert_eq!(ok(&mut ffa, FuncId::MsgSend2), Ok(()));
    assert_eq!(ffa.supports(FuncId::Run32), Ok(true), "a VM schedules");
    assert_eq!(
        ok(&mut ffa, FuncId::Yield32),
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

/// Hafnium prints a line once 255 characters are buffered (seen under Hafnium: a 256-character
/// line came out as 255 characters and a line holding the last one).
#[test]
fn a_console_line_longer_than_hafniums_buffer_comes_out_as_two() {
    let world = World::new();
    let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), |conduit, _| {
        let (mut ffa, _) = sp_boot(conduit);
        let long = "x".repeat(300);
        for piece in long.as_bytes().chunks(100) {
            ffa.console_log(piece).unwrap();
        }
        ffa.console_log(b"\n").unwrap();
        let _ = ffa.msg_wait();
    });
    world.shutdown();
    sp.join().unwrap();
    assert_eq!(
        world.console(),
        vec![(SP, "x".repeat(255)), (SP, "x".repeat(45))]
    );
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
