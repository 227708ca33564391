//! Faults in the middle of I/O (issue 10 item 3): the memory under a live queue unshared, a bus
//! RESET and a VM destroyed while buffers are posted. Each is answered by the protocol, the
//! partition never touches memory it no longer holds (zero simulator faults), every area is
//! relinquished exactly once (the normal world can reclaim it), and other endpoints are
//! unaffected.

use ffa::bus::Dialect;
use virtio_msg::{
    device::{VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1},
    driver::DeviceClient,
};
use vmsg_host::{SimConnection, SimSystem, session::SharedArea, virtqueue::DriverQueue};

/// A live virtio-rng queue on `conn` with one 4 KiB buffer posted (not yet kicked).
struct Live {
    ring: SharedArea,
    buffer: SharedArea,
}

fn share(conn: &mut SimConnection, pages: u32) -> SharedArea {
    let pa = conn.platform().alloc(pages);
    conn.session().share(pa, pages).expect("AREA_SHARE")
}

fn live_queue(conn: &mut SimConnection) -> Live {
    let ring = share(conn, 1);
    let buffer = share(conn, 1);
    let layout = conn.session().info().dialect.layout();
    let mut client = DeviceClient::new(conn.session(), 0, layout).unwrap();
    client
        .initialize(VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM)
        .unwrap();
    let mut queue = DriverQueue::new(conn.platform(), 16, ring.pa, ring.bus(0)).unwrap();
    let mut client = DeviceClient::new(conn.session(), 0, layout).unwrap();
    client.set_vqueue(0, queue.queue_config()).unwrap();
    client.driver_ok().unwrap();
    queue
        .add(conn.platform(), &[], &[(buffer.bus(0), 4096)])
        .unwrap();
    queue.publish(conn.platform()).unwrap();
    Live { ring, buffer }
}

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
