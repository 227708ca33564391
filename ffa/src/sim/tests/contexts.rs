//! Tests of execution contexts (`sim/messaging.rs`, `SimConduit::start_ec`): an MP
//! partition's context `k` serves CPU `k` and no other, its secondary contexts start only
//! after FFA_SECONDARY_EP_REGISTER, and two contexts serve two CPUs at once; a UP
//! partition's one context serves every CPU.

use std::{
    sync::{Arc, Condvar, Mutex, mpsc},
    time::Duration,
};

use arm_ffa::{FfaError, Interface};

use super::support::*;
use crate::{
    calls::{Error, Ffa},
    sim::*,
};

/// An MP partition with `ecs` execution contexts.
fn mp_info(ecs: u16) -> SpInfo {
    let mut info = SpInfo::new(SP, vec![SVC]);
    info.exec_ctx_count = ecs;
    info
}

/// A VM's FF-A interface on CPU `cpu` (no buffers: direct messages need none).
fn vm_ffa_on(vm: &VmEndpoint, cpu: u16) -> Ffa<SimConduit> {
    Ffa::on_context(vm.conduit_on(cpu), V1_2)
}

/// A meeting point for two requests in flight at once: each arrival waits (at most 5 s) for
/// the other.
#[derive(Default)]
struct Meet(Mutex<u32>, Condvar);

impl Meet {
    /// Arrives; whether the other request was in flight too within the time.
    fn both_in_flight(&self) -> bool {
        let mut n = self.0.lock().unwrap();
        *n += 1;
        self.1.notify_all();
        let (n, timeout) = self
            .1
            .wait_timeout_while(n, Duration::from_secs(5), |n| *n < 2)
            .unwrap();
        drop(n);
        !timeout.timed_out()
    }
}

/// Answers each DIRECT_REQ2 with word 0 set to the context's index and word 1 incremented;
/// a request whose word 0 is 1 first meets another at `meet`, and word 2 of its answer says
/// whether it did (both requests were being served at once).
fn serve(mut ffa: Ffa<SimConduit>, id: u16, meet: Option<Arc<Meet>>) {
    let ec = ffa.conduit().vcpu();
    let mut msg = ffa.msg_wait();
    loop {
        match msg {
            Ok(Interface::MsgSendDirectReq2 { src_id, args, .. }) => {
                let mut p = args.0;
                if p[0] == 1
                    && let Some(m) = &meet
                {
                    p[2] = u64::from(m.both_in_flight());
                }
                p[0] = u64::from(ec);
                p[1] += 1;
                msg = ffa.direct_resp2(id, src_id, p);
            }
            // Run by the scheduler: nothing to do.
            Ok(Interface::Run { .. }) => msg = ffa.msg_wait(),
            Err(Error::Ffa(FfaError::Aborted)) => return,
            other => panic!("context {ec}: unexpected {other:?}"),
        }
    }
}

/// Boots an MP partition that registers its secondary entry point (if `register`) and
/// starts its other contexts; every context runs [`serve`]. Reports the start results.
fn mp_sp(
    ecs: u16,
    register: bool,
    meet: Option<Arc<Meet>>,
    started: mpsc::Sender<Vec<Result<(), FfaError>>>,
) -> impl FnOnce(SimConduit, SimMapper) + Send + 'static {
    move |conduit, _| {
        let (mut ffa, id) = sp_boot(conduit);
        if register {
            ffa.secondary_ep_register(0x0e30_4000).unwrap();
        }
        let version = ffa.negotiated();
        let results = (1..ecs)
            .map(|ec| {
                let meet = meet.clone();
                ffa.conduit()
                    .start_ec(ec, move |c| {
                        serve(Ffa::on_context(c, version), id, meet);
                    })
                    .map(|_| ())
            })
            .collect();
        started.send(results).unwrap();
        serve(ffa, id, meet);
    }
}

#[test]
fn an_mp_partition_serves_two_cpus_at_once() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let (tx, rx) = mpsc::channel();
    let sp = world.spawn_sp(mp_info(2), mp_sp(2, true, Some(Arc::default()), tx));
    assert_eq!(rx.recv().unwrap(), vec![Ok(())]);
    // Let context 1 reach its FFA_MSG_WAIT.
    let mut on1 = vm_ffa_on(&vm, 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while on1.direct_req2(VM, SP, SVC, [0; 14]) == Err(Error::Ffa(FfaError::Busy)) {
        assert!(
            std::time::Instant::now() < deadline,
            "context 1 never waited"
        );
        std::thread::yield_now();
    }
    // Each request holds its context until the other request is in its own context: with one
    // context serving both CPUs the second would get BUSY and the first would meet no one.
    let vm2 = vm.clone();
    let other = std::thread::spawn(move || {
        let mut on0 = vm_ffa_on(&vm2, 0);
        let mut p = [0u64; 14];
        p[0] = 1;
        on0.direct_req2(VM, SP, SVC, p)
    });
    let mut p = [0u64; 14];
    p[0] = 1;
    p[1] = 10;
    let answer = on1.direct_req2(VM, SP, SVC, p).unwrap();
    assert_eq!(
        answer[..3],
        [1, 11, 1],
        "served by context 1, beside context 0"
    );
    let answer = other.join().unwrap().unwrap();
    assert_eq!(
        answer[..3],
        [0, 1, 1],
        "served by context 0, beside context 1"
    );
    world.shutdown();
    sp.join().unwrap();
    world.assert_no_faults();
}

#[test]
fn secondary_contexts_need_a_registered_entry_point() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let (tx, rx) = mpsc::channel();
    let sp = world.spawn_sp(mp_info(2), mp_sp(2, false, None, tx));
    assert_eq!(rx.recv().unwrap(), vec![Err(FfaError::Denied)]);
    // CPU 0 is served; CPU 1's context never started: BUSY, as a booting context is.
    assert_eq!(
        vm_ffa_on(&vm, 0).direct_req2(VM, SP, SVC, [0; 14]).unwrap()[1],
        1
    );
    assert_eq!(
        vm_ffa_on(&vm, 1).direct_req2(VM, SP, SVC, [0; 14]),
        Err(Error::Ffa(FfaError::Busy))
    );
    // A CPU the partition has no context for.
    assert_eq!(
        vm_ffa_on(&vm, 2).direct_req2(VM, SP, SVC, [0; 14]),
        Err(Error::Ffa(FfaError::InvalidParameters))
    );
    world.shutdown();
    sp.join().unwrap();
}

#[test]
fn a_up_partition_serves_every_cpu_and_has_no_secondary_entry() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let (tx, rx) = mpsc::channel();
    let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), move |conduit, _| {
        let (mut ffa, id) = sp_boot(conduit);
        tx.send(ffa.secondary_ep_register(0x0e30_4000)).unwrap();
        serve(ffa, id, None);
    });
    assert_eq!(rx.recv().unwrap(), ffa_err(FfaError::NotSupported));
    for cpu in [0, 3] {
        let answer = vm_ffa_on(&vm, cpu)
            .direct_req2(VM, SP, SVC, [0; 14])
            .unwrap();
        assert_eq!((answer[0], answer[1]), (0, 1), "cpu {cpu}: context 0");
    }
    world.shutdown();
    sp.join().unwrap();
}

#[test]
fn the_entry_point_is_registered_only_while_booting() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let (tx, rx) = mpsc::channel();
    let sp = world.spawn_sp(mp_info(2), move |conduit, _| {
        let (mut ffa, id) = sp_boot(conduit);
        let mut msg = ffa.msg_wait();
        while let Ok(Interface::MsgSendDirectReq2 { src_id, args, .. }) = msg {
            tx.send(ffa.secondary_ep_register(0x0e30_4000)).unwrap();
            msg = ffa.direct_resp2(id, src_id, args.0);
        }
    });
    vm_ffa_on(&vm, 0).direct_req2(VM, SP, SVC, [0; 14]).unwrap();
    assert_eq!(rx.recv().unwrap(), ffa_err(FfaError::Denied));
    world.shutdown();
    sp.join().unwrap();
}

#[test]
fn ffa_run_of_an_mp_partition_runs_the_callers_cpu_only() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let (tx, rx) = mpsc::channel();
    let sp = world.spawn_sp(mp_info(2), mp_sp(2, true, None, tx));
    assert_eq!(rx.recv().unwrap(), vec![Ok(())]);
    let mut on0 = vm_ffa_on(&vm, 0);
    assert_eq!(
        on0.run(SP, 1).map(|_| ()),
        ffa_err(FfaError::InvalidParameters),
        "vCPU 1 from CPU 0"
    );
    assert!(matches!(on0.run(SP, 0), Ok(Interface::MsgWait { .. })));
    world.shutdown();
    sp.join().unwrap();
}
