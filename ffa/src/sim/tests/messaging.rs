//! Tests of messaging (`sim/messaging.rs`): FFA_MSG_WAIT, direct requests and responses,
//! BUSY and ABORTED, the framework messages, and how a partition ends (panic, abort during
//! boot, shutdown).

use std::{
    sync::{Arc, Barrier, mpsc},
    thread,
};

use arm_ffa::{
    FfaError, Interface,
    interface_args::{DirectMsgArgs, VmAvailabilityStatus},
};
use uuid::Uuid;

use super::support::*;
use crate::{
    calls::{Error, Ffa},
    sim::*,
};

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
