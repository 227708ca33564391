//! Tests of a partition's timer as the simulated SPMC emulates Hafnium's (`sim/messaging.rs`):
//! an armed EL1 physical timer resumes a waiting context with FFA_INTERRUPT only once its
//! interrupt is enabled, the interrupt stays pending until HF_INTERRUPT_GET takes it, a stopped
//! timer never fires, and a context serving the interrupt is BUSY to direct requests.

use std::{sync::mpsc, time::Duration};

use arm_ffa::{FfaError, Interface};

use super::support::*;
use crate::{
    calls::Error,
    conduit::{Conduit, HF_INVALID_INTID, HF_VIRTUAL_TIMER_INTID},
    sim::*,
};

#[test]
fn an_enabled_timer_resumes_a_waiting_context_with_ffa_interrupt_until_taken() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let (tx, seen) = mpsc::channel();
    let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), move |conduit, _| {
        let (mut ffa, id) = sp_boot(conduit);
        // Not enabled: the timer fires unseen; the VM's request is what ends the wait.
        assert!(ffa.conduit().timer_arm(100));
        let Ok(Interface::MsgSendDirectReq2 { src_id, .. }) = ffa.msg_wait() else {
            panic!("not the VM's request");
        };
        // Enabled: FFA_INTERRUPT with the timer's id (to the response's wait), again while it
        // is not taken.
        assert!(ffa.conduit().interrupt_enable(HF_VIRTUAL_TIMER_INTID));
        assert!(ffa.conduit().timer_arm(200));
        let first = ffa.direct_resp2(id, src_id, [7; 14]);
        let again = ffa.msg_wait();
        let taken = ffa.conduit().interrupt_get();
        let none = ffa.conduit().interrupt_get();
        ffa.conduit().timer_stop();
        tx.send(format!("{first:?} | {again:?} | {taken:?} {none:?}"))
            .unwrap();
        // Armed, then stopped: it never fires; the next message is the VM's second request.
        assert!(ffa.conduit().timer_arm(100));
        ffa.conduit().timer_stop();
        tx.send(format!(
            "{:?}",
            ffa.msg_wait()
                .map(|m| matches!(m, Interface::MsgSendDirectReq2 { .. }))
        ))
        .unwrap();
        assert_eq!(
            ffa.direct_resp2(id, src_id, [8; 14]),
            Err(Error::Ffa(FfaError::Aborted))
        );
    });
    let mut ffa = vm_ffa(&vm);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(ffa.direct_req2(VM, SP, SVC, [1; 14]).unwrap(), [7; 14]);
    let interrupt = format!(
        "Ok(Interrupt {{ target_info: TargetInfo {{ endpoint_id: {SP}, vcpu_id: 0 }}, \
         interrupt_id: {HF_VIRTUAL_TIMER_INTID}, is_32bit: true }})"
    );
    assert_eq!(
        seen.recv().unwrap(),
        format!(
            "{interrupt} | {interrupt} | Some({HF_VIRTUAL_TIMER_INTID}) Some({HF_INVALID_INTID})"
        )
    );
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(ffa.direct_req2(VM, SP, SVC, [2; 14]).unwrap(), [8; 14]);
    assert_eq!(seen.recv().unwrap(), "Ok(true)");
    world.shutdown();
    sp.join().unwrap();
}

#[test]
fn a_context_serving_its_timer_interrupt_is_busy_to_direct_requests() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let (tx, seen) = mpsc::channel();
    let (go, gate) = mpsc::channel::<()>();
    let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), move |conduit, _| {
        let (mut ffa, _) = sp_boot(conduit);
        assert!(ffa.conduit().interrupt_enable(HF_VIRTUAL_TIMER_INTID));
        assert!(ffa.conduit().timer_arm(100));
        assert!(matches!(ffa.msg_wait(), Ok(Interface::Interrupt { .. })));
        tx.send(()).unwrap();
        gate.recv().unwrap();
        ffa.conduit().interrupt_get();
        ffa.conduit().timer_stop();
        // The interrupt served, FFA_MSG_WAIT takes requests again.
        assert_eq!(ffa.msg_wait(), Err(Error::Ffa(FfaError::Aborted)));
    });
    seen.recv().unwrap();
    let mut ffa = vm_ffa(&vm);
    assert_eq!(
        ffa.direct_req2(VM, SP, SVC, [0; 14]),
        Err(Error::Ffa(FfaError::Busy))
    );
    go.send(()).unwrap();
    world.shutdown();
    sp.join().unwrap();
}
