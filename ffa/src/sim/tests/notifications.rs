//! Tests of notifications (`sim/notifications.rs`): bitmaps, bind/unbind, set/get, and
//! `VmEndpoint::wait_notification`.

use std::{thread, time::Duration};

use arm_ffa::{FfaError, Interface};

use super::support::*;
use crate::{calls::Ffa, sim::*};

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
