//! Faults in the middle of I/O (issue 10 item 3): the memory under a live queue unshared, a bus
//! RESET, a VM destroyed and a change of driver dialect while buffers are posted, a failing
//! FFA_MEM_RETRIEVE_REQ, and a driver that never polls its events. Each is answered by the protocol, the
//! partition never touches memory it no longer holds (zero simulator faults), every area is
//! relinquished exactly once (the normal world can reclaim it), and other endpoints are
//! unaffected.

use ffa::bus::Dialect;
use virtio_msg::driver::DeviceClient;
use vmsg_host::SimSystem;
use vmsg_tests::drive::{Live, live_queue};

/// The partition is alive, recorded no fault, holds none of `handles`, and still serves a
/// fresh endpoint.
fn unaffected(sys: &SimSystem, handles: &[u64], fresh_vm: u16) {
    assert!(sys.faults().is_empty(), "faults: {:?}", sys.faults());
    assert!(sys.world().sp_alive(sys.sp_id()));
    for &h in handles {
        assert!(
            !sys.world().is_retrieved(h, sys.sp_id()),
            "handle {h:#x} still retrieved by the partition"
        );
    }
    let mut other = sys.connect(fresh_vm, Dialect::G3, false).unwrap();
    let mut rng = other.rng().unwrap();
    assert_eq!(rng.read(4096).unwrap().len(), 4096);
}

#[test]
fn unsharing_the_rings_of_a_live_queue_then_kicking_it() {
    for dialect in [Dialect::G3, Dialect::G2] {
        let sys = SimSystem::start().unwrap();
        let mut vm = sys.connect(1, dialect, false).unwrap();
        let live = live_queue(&mut vm);
        vm.session()
            .unshare(&live.ring)
            .expect("AREA_UNSHARE answered");
        // The kick names a queue whose rings are gone: acknowledged, nothing touched.
        let layout = vm.session().info().dialect.layout();
        DeviceClient::new(vm.session(), 0, layout)
            .unwrap()
            .notify_avail(0)
            .expect("EVENT_AVAIL acknowledged");
        vm.session().unshare(&live.buffer).unwrap();
        unaffected(&sys, &[live.ring.handle, live.buffer.handle], 2);
    }
}

#[test]
fn a_bus_reset_while_buffers_are_posted() {
    let sys = SimSystem::start().unwrap();
    let mut vm = sys.connect(1, Dialect::G3, false).unwrap();
    let live = live_queue(&mut vm);
    vm.session().reset().expect("RESET answered");
    // Every area was relinquished once: the normal world reclaims both.
    for area in [&live.ring, &live.buffer] {
        vm.session()
            .ffa()
            .mem_reclaim(area.handle)
            .expect("reclaim");
    }
    unaffected(&sys, &[live.ring.handle, live.buffer.handle], 2);
}

#[test]
fn a_vm_destroyed_while_buffers_are_posted() {
    let sys = SimSystem::start().unwrap();
    let mut vm = sys.connect(1, Dialect::G3, false).unwrap();
    let live = live_queue(&mut vm);
    sys.world().send_vm_destroyed(sys.sp_id(), 1).unwrap();
    for area in [&live.ring, &live.buffer] {
        vm.session()
            .ffa()
            .mem_reclaim(area.handle)
            .expect("reclaim");
    }
    unaffected(&sys, &[live.ring.handle, live.buffer.handle], 2);
}

/// FFA_MEM_RETRIEVE_REQ fails (Hafnium answers NO_MEMORY when its page pool runs out, DENIED
/// for a transaction it will not grant): AREA_SHARE is refused, the partition holds nothing and
/// maps nothing, the memory stays the VM's (it can reclaim it), and the same handle announced
/// again later works. A transient failure (ABORTED) gets G3's busy answer, which the driver
/// library retries: the first AREA_SHARE then succeeds.
#[test]
fn a_retrieve_that_fails_is_refused_and_can_be_retried() {
    use ffa::{
        arm_ffa::FfaError,
        bus::msg,
        memory::{DataAccess, MemRange, MemTransaction, Receiver, ShareKind},
    };
    for (error, transient) in [
        (FfaError::NoMemory, false),
        (FfaError::Denied, false),
        (FfaError::Aborted, true),
    ] {
        let sys = SimSystem::start().unwrap();
        let mut vm = sys.connect(1, Dialect::G3, false).unwrap();
        let pa = vm.platform().alloc(1);
        let desc = MemTransaction {
            sender: 1,
            attributes: ffa::memory::ATTR_NORMAL_WB_INNER_SHAREABLE,
            flags: 0,
            handle: 0,
            tag: 0,
            receivers: vec![Receiver {
                endpoint: sys.sp_id(),
                access: DataAccess::ReadWrite,
                executable: false,
            }],
            ranges: vec![MemRange {
                address: pa,
                page_count: 1,
            }],
        };
        let handle = vm
            .session()
            .ffa()
            .mem_send(ShareKind::Share, &desc)
            .unwrap();
        sys.world().fail_retrieve(handle, &[error]);
        let req = msg::AreaShareReq {
            area_id: 1.into(),
            mem_handle: handle.into(),
            mem_tag: 0.into(),
            page_count: 1.into(),
            sharing_attrs: msg::attrs::LINUX_DEFAULT.into(),
        };
        if !transient {
            assert_eq!(
                vm.session().area_share_raw(&req).unwrap(),
                msg::RESULT_ERROR,
                "{error:?}"
            );
            assert!(!sys.world().is_retrieved(handle, sys.sp_id()), "{error:?}");
        }
        // The area id is free (again) and the handle can be announced.
        assert_eq!(
            vm.session().area_share_raw(&req).unwrap(),
            msg::RESULT_SUCCESS,
            "{error:?}"
        );
        assert!(sys.world().is_retrieved(handle, sys.sp_id()));
        vm.session().reset().unwrap();
        vm.session().ffa().mem_reclaim(handle).unwrap();
        unaffected(&sys, &[handle], 2);
    }
}

/// A driver that never polls: completions keep coming but the partition's event queue does
/// not grow (one EVENT_USED pending per queue), and the driver that finally polls gets one.
#[test]
fn a_driver_that_never_polls_cannot_grow_the_event_queue() {
    let sys = SimSystem::start().unwrap();
    let mut vm = sys.connect(1, Dialect::G3, true).unwrap();
    let Live {
        mut queue, buffer, ..
    } = live_queue(&mut vm);
    let layout = vm.session().info().dialect.layout();
    DeviceClient::new(vm.session(), 0, layout)
        .unwrap()
        .notify_avail(0)
        .unwrap();
    assert_eq!(
        queue.pop_used(vm.platform()).unwrap().map(|(_, n)| n),
        Some(4096)
    );
    for _ in 0..1000 {
        queue
            .add(vm.platform(), &[], &[(buffer.bus(0), 64)])
            .unwrap();
        queue.publish(vm.platform()).unwrap();
        DeviceClient::new(vm.session(), 0, layout)
            .unwrap()
            .notify_avail(0)
            .unwrap();
        assert_eq!(
            queue.pop_used(vm.platform()).unwrap().map(|(_, n)| n),
            Some(64)
        );
    }
    // One EVENT_USED for all 1001 of them.
    assert_eq!(
        vm.session().drain_events().unwrap(),
        vec![vmsg_host::session::Event::Used { dev: 0, vq: 0 }]
    );
    unaffected(&sys, &[], 2);
}

/// The endpoint's kernel changes driver dialect while a request is posted (a reboot into the
/// other driver): the instance starts over, every area is relinquished once, the posted
/// buffer is never touched again, and the new session works.
#[test]
fn a_driver_changing_dialect_mid_io() {
    let sys = SimSystem::start().unwrap();
    let mut vm = sys.connect(1, Dialect::G3, false).unwrap();
    let live = live_queue(&mut vm);
    let ffa = vm.into_session().into_ffa();
    let mut g2 =
        vmsg_host::session::BusSession::connect(ffa, 1, sys.sp_id(), Dialect::G2, false).unwrap();
    for area in [&live.ring, &live.buffer] {
        assert!(!sys.world().is_retrieved(area.handle, sys.sp_id()));
        g2.ffa().mem_reclaim(area.handle).expect("reclaim");
    }
    assert_eq!(g2.devices().unwrap(), vec![0, 1, 2, 3]);
    unaffected(&sys, &[live.ring.handle, live.buffer.handle], 2);
}
