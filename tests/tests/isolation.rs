//! Isolation between endpoints (issue 10, item 2): several endpoints at once, and nothing of
//! one — message, area id, memory handle, device state, event, notification, mapping quota —
//! reaches another, including an endpoint that guesses the other's handles and area ids.
//! Every test ends with zero simulator faults and a live partition.
//!
//! (The partition has no per-endpoint log or socket yet: its log lines go to the SPMC's
//! console only, which no endpoint reads.)

use ffa::{
    VIRTIO_MSG_DEVICE_UUID,
    bus::{Dialect, bus_address, frame_to_regs, msg},
};
use virtio_msg::{Layout, driver::DeviceClient, transport::status};
use vmsg_host::session::{Event, SessionError};
use vmsg_tests::drive::{device_status, healthy, kick, live_queue, share, system, try_queue};

#[test]
fn two_endpoints_cannot_reach_each_others_areas() {
    let sys = system();
    let mut vm1 = sys.connect(1, Dialect::G3, false).unwrap();
    let mut vm2 = sys.connect(2, Dialect::G3, false).unwrap();
    let area1 = share(&mut vm1, 1);
    assert_eq!(area1.id, 1);

    // VM 2 names VM 1's memory handle in its own AREA_SHARE: the retrieve names VM 2 as the
    // owner, the SPMC refuses, the partition answers ERROR and holds nothing.
    let req = msg::AreaShareReq {
        area_id: 7.into(),
        mem_handle: area1.handle.into(),
        mem_tag: 0.into(),
        page_count: 1.into(),
        sharing_attrs: msg::attrs::LINUX_DEFAULT.into(),
    };
    assert_eq!(
        vm2.session().area_share_raw(&req).unwrap(),
        msg::RESULT_ERROR
    );
    // VM 2 points a queue at area 1, which exists only in VM 1's table: refused (the queue
    // stays unconfigured, so the read-back fails).
    assert!(try_queue(&mut vm2, bus_address(1, 0)).is_err());
    // VM 1 can use its own area.
    try_queue(&mut vm1, area1.bus(0)).unwrap();
    // Each endpoint has its own device instance: VM 1 resetting its device leaves VM 2's
    // device where VM 2 put it.
    let layout = Layout::V1Review;
    let before = device_status(&mut vm2);
    assert_eq!(before & 0x8, 0x8, "VM 2's device reached FEATURES_OK");
    DeviceClient::new(vm1.session(), 0, layout)
        .unwrap()
        .reset()
        .unwrap();
    assert_eq!(device_status(&mut vm2), before);
    // VM 2 shares its own area 1: a different area with the same id.
    let area2 = share(&mut vm2, 1);
    assert_eq!(area2.id, 1);
    assert_ne!(area2.handle, area1.handle);
    healthy(&sys);
}

/// VM 2 knows (or guesses) VM 1's handles, area ids and device numbers, and uses them in every
/// message it can send; VM 1's memory, device and posted request stay VM 1's, untouched.
#[test]
fn an_endpoint_guessing_anothers_handles_and_area_ids_gets_nothing() {
    for dialect in [Dialect::G3, Dialect::G2] {
        let sys = system();
        let mut vm1 = sys.connect(1, Dialect::G3, false).unwrap();
        let mut victim = live_queue(&mut vm1);
        let mut vm2 = sys.connect(2, dialect, false).unwrap();
        let handles = [victim.ring.handle, victim.buffer.handle];
        let attrs = match dialect {
            Dialect::G2 => 0,
            _ => msg::attrs::LINUX_DEFAULT,
        };

        // Its handles (and their neighbours) under VM 2's name: refused, nothing retrieved
        // twice, nothing retrieved for VM 2.
        let guesses = handles
            .iter()
            .flat_map(|&h| h.saturating_sub(4)..=h + 4)
            .collect::<Vec<_>>();
        for (i, &guess) in guesses.iter().enumerate() {
            let req = msg::AreaShareReq {
                area_id: u16::try_from(10 + i).unwrap().into(),
                mem_handle: guess.into(),
                mem_tag: 0.into(),
                page_count: 1.into(),
                sharing_attrs: attrs.into(),
            };
            let result = vm2.session().area_share_raw(&req).unwrap();
            assert_ne!(
                result,
                msg::RESULT_SUCCESS,
                "{dialect:?}: handle {guess:#x}"
            );
        }
        // Its area ids: unsharing them from VM 2 touches nothing of VM 1's.
        for area in [&victim.ring, &victim.buffer] {
            assert!(
                matches!(vm2.session().unshare(area), Err(SessionError::Refused(_))),
                "{dialect:?}: area {}",
                area.id
            );
        }
        // Queues at VM 1's bus addresses: refused for VM 2.
        assert!(
            try_queue(&mut vm2, victim.ring.bus(0)).is_err(),
            "{dialect:?}"
        );
        // A kick of "device 0, queue 0" is VM 2's own device (not running): VM 1's posted
        // request is not served.
        kick(&mut vm2);
        assert_eq!(victim.queue.pop_used(vm1.platform()).unwrap(), None);
        // VM 2 resets its bus and is then destroyed: VM 1 keeps its memory and its device.
        if dialect == Dialect::G3 {
            vm2.session().reset().unwrap();
        }
        sys.world().send_vm_destroyed(sys.sp_id(), 2).unwrap();
        for &h in &handles {
            assert!(sys.world().is_retrieved(h, sys.sp_id()), "{dialect:?}");
        }
        assert_eq!(
            device_status(&mut vm1) & status::DRIVER_OK,
            status::DRIVER_OK,
            "{dialect:?}"
        );

        // VM 1 kicks its own queue and gets its request served, and its event.
        kick(&mut vm1);
        assert_eq!(
            victim
                .queue
                .pop_used(vm1.platform())
                .unwrap()
                .map(|(_, n)| n),
            Some(4096)
        );
        assert_eq!(
            vm1.session().drain_events().unwrap(),
            vec![Event::Used { dev: 0, vq: 0 }]
        );
        vm1.session().unshare(&victim.ring).unwrap();
        vm1.session().unshare(&victim.buffer).unwrap();
        healthy(&sys);
    }
}

#[test]
fn events_and_notifications_reach_only_their_endpoint() {
    let sys = system();
    let mut vm1 = sys.connect(1, Dialect::G3, true).unwrap();
    let mut vm2 = sys.connect(2, Dialect::G3, true).unwrap();
    let mut idle = live_queue(&mut vm2);
    // VM 1 reads through its rng: the partition rings VM 1's notification and queues its
    // EVENT_USED; VM 2, with a request posted on its own queue, sees neither.
    let mut rng = vm1.rng().unwrap();
    assert_eq!(rng.read(3 * 4096).unwrap().len(), 3 * 4096);
    drop(rng);
    // (The driver found its buffers in the used ring; its EVENT_USED may still be queued.)
    assert!(
        vm1.session()
            .drain_events()
            .unwrap()
            .iter()
            .all(|e| matches!(
                e,
                Event::Used { dev: 0, vq: 0 } | Event::Config { dev: 0, .. }
            ))
    );
    assert_eq!(sys.world().notifications_pending(2), 0);
    assert_eq!(vm2.session().drain_events().unwrap(), vec![]);
    assert_eq!(idle.queue.pop_used(vm2.platform()).unwrap(), None);
    // VM 2's own kick: its own event and notification only.
    let before = sys.world().notifications_pending(1);
    kick(&mut vm2);
    assert_ne!(sys.world().notifications_pending(2), 0);
    assert_eq!(sys.world().notifications_pending(1), before);
    assert_eq!(
        vm2.session().drain_events().unwrap(),
        vec![Event::Used { dev: 0, vq: 0 }]
    );
    assert_eq!(vm1.session().drain_events().unwrap(), vec![]);
    healthy(&sys);
}

/// No endpoint can speak as another: the SPMC refuses a direct request whose sender is not
/// the caller (Hafnium `api_ffa_msg_send_direct_req`), so the partition never sees it.
#[test]
fn a_request_under_another_endpoints_id_never_reaches_the_partition() {
    let sys = system();
    let mut vm1 = sys.connect(1, Dialect::G3, false).unwrap();
    let area = share(&mut vm1, 1);
    let mut vm2 = sys.connect(2, Dialect::G3, false).unwrap();
    let mut frame = [0u8; 10];
    msg::write_bus_frame(
        &mut frame,
        false,
        msg::AREA_UNSHARE,
        0,
        1,
        &area.id.to_le_bytes(),
    )
    .unwrap();
    let forged = vm2.session().ffa().direct_req2(
        1,
        sys.sp_id(),
        VIRTIO_MSG_DEVICE_UUID,
        frame_to_regs(&frame),
    );
    assert!(forged.is_err(), "the SPMC let VM 2 send as VM 1");
    assert!(sys.world().is_retrieved(area.handle, sys.sp_id()));
    vm1.session().unshare(&area).unwrap();
    healthy(&sys);
}

#[test]
fn one_endpoint_cannot_take_the_others_share_of_the_mapping_window() {
    let sys = system();
    let mut vm1 = sys.connect(1, Dialect::G3, false).unwrap();
    let mut vm2 = sys.connect(2, Dialect::G3, false).unwrap();
    // 4 MiB areas: the fifth goes past one endpoint's 16 MiB share and is refused.
    let pages = 1024;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(share(&mut vm1, pages));
    }
    let pa = vm1.platform().alloc(pages);
    match vm1.session().share(pa, pages) {
        Err(SessionError::Refused(_)) => {}
        other => panic!("a share past the endpoint's quota was not refused: {other:?}"),
    }
    // The refused memory was given back (the NWd can reclaim it) and the other endpoint still
    // finds its own share free.
    let area2 = share(&mut vm2, pages);
    // Unsharing gives the first endpoint its share back.
    let first = held.remove(0);
    vm1.session().unshare(&first).unwrap();
    held.push(share(&mut vm1, pages));
    vm2.session().unshare(&area2).unwrap();
    for area in &held {
        vm1.session().unshare(area).unwrap();
    }
    healthy(&sys);
}
