//! Tests of relinquish failures: an area whose relinquish failed stays held (in the table,
//! retrieved, mapped, its id taken) but unusable, and is relinquished later, exactly once (the
//! fake asserts that no handle is relinquished twice).

use super::*;

const OK: u32 = msg::attrs::LINUX_DEFAULT;

fn unshare(id: u16) -> Vec<u8> {
    bus_frame(msg::AREA_UNSHARE, 31, &id.to_le_bytes())
}

/// The result of an AREA_UNSHARE answer for area `id`.
fn unshare_result(resp: &[u8], id: u16) -> u16 {
    let h = header(resp);
    assert_eq!(
        (h.msg_type, h.msg_id, h.msg_size),
        (0x03, msg::AREA_UNSHARE, 12)
    );
    let r = msg::AreaResp::read_from_bytes(&resp[8..]).unwrap();
    assert_eq!(r.area_id.get(), id);
    r.result.get()
}

/// Any message: PING.
fn ping(bus: &mut BusInstance, fake: &mut Fake) {
    send(bus, fake, &bus_frame(0x03, 50, &[1, 2, 3, 4])).unwrap();
}

/// Shares area `id` backed by a fresh `pages`-page share `handle`.
fn share(bus: &mut BusInstance, fake: &mut Fake, id: u16, handle: u64, pages: u32, attrs: u32) {
    fake.offer(handle, VM, u64::from(pages));
    let resp = send(bus, fake, &area_share(id, handle, pages, attrs)).unwrap();
    assert_eq!(area_result(&resp, id), 0);
}

/// Whether devices may reach area `id`.
fn usable(bus: &BusInstance, id: u16) -> bool {
    bus.areas().covers(bus_address(id, 0), 1, false)
}

#[test]
fn g3_unshare_busy_keeps_the_area_held_unusable_and_retries_on_the_repeat() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    share(&mut bus, &mut fake, 1, 0x10, 1, OK);
    fake.fail_relinquish(0x10, [ServiceError::Busy]);
    let resp = send(&mut bus, &mut fake, &unshare(1)).unwrap();
    assert_eq!(unshare_result(&resp, 1), msg::RESULT_BUSY);
    // Still ours: in the table and retrieved, but no device may use it.
    assert!(bus.areas().contains(1));
    assert!(fake.retrieved.contains(&0x10));
    assert!(!usable(&bus, 1), "an area being unshared is still usable");
    // Its id is not reusable.
    fake.offer(0x11, VM, 1);
    let resp = send(&mut bus, &mut fake, &area_share(1, 0x11, 1, OK)).unwrap();
    assert_eq!(area_result(&resp, 1), 1);
    assert!(!fake.retrieved.contains(&0x11));
    // The driver repeats AREA_UNSHARE: relinquished, once.
    ping(&mut bus, &mut fake);
    let resp = send(&mut bus, &mut fake, &unshare(1)).unwrap();
    assert_eq!(unshare_result(&resp, 1), msg::RESULT_SUCCESS);
    assert_eq!(fake.relinquished, vec![0x10]);
    assert!(!bus.areas().contains(1));
    assert_eq!(fake.relinquish_calls, 2);
}

#[test]
fn g3_unshare_refused_keeps_the_area_and_the_partition_retries_it() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    send(
        &mut bus,
        &mut fake,
        &bus_frame(msg::EVENT_CONFIGURE, 40, &[0, 0, 0, 0]),
    )
    .unwrap();
    share(&mut bus, &mut fake, 1, 0x10, 1, OK);
    fake.fail_relinquish(0x10, [ServiceError::Refused, ServiceError::Refused]);
    let resp = send(&mut bus, &mut fake, &unshare(1)).unwrap();
    assert_eq!(unshare_result(&resp, 1), msg::RESULT_ERROR);
    // Not forgotten: the NWd could never reclaim it.
    assert!(
        bus.areas().contains(1),
        "area forgotten while still retrieved"
    );
    assert!(fake.retrieved.contains(&0x10));
    assert!(!usable(&bus, 1));
    // Retried on the endpoint's next messages until it succeeds, then never again.
    let calls = fake.relinquish_calls;
    ping(&mut bus, &mut fake);
    assert!(fake.relinquish_calls > calls, "not retried");
    for _ in 0..3 {
        ping(&mut bus, &mut fake);
    }
    assert!(!bus.areas().contains(1));
    assert_eq!(fake.relinquished, vec![0x10]);
    assert!(fake.retrieved.is_empty());
    assert_eq!(fake.relinquish_calls, 3);
    // The driver learns it may reclaim: AREA_RELEASE {1}.
    let resp = send(&mut bus, &mut fake, &bus_frame(msg::EVENT_POLL, 60, &[])).unwrap();
    assert_eq!(resp, vec![0x02, msg::AREA_RELEASE, 0, 0, 0, 0, 10, 0, 1, 0]);
}

#[test]
fn g2_unshare_failure_is_an_error_and_the_partition_retries() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g2(&mut bus, &mut fake);
    share(&mut bus, &mut fake, 1, 0x20, 1, 0);
    fake.fail_relinquish(0x20, [ServiceError::Busy]);
    let resp = send(&mut bus, &mut fake, &unshare(1)).unwrap();
    assert_eq!(
        unshare_result(&resp, 1),
        msg::RESULT_ERROR,
        "G2 gets no BUSY"
    );
    // G2 never repeats AREA_UNSHARE: the partition retries by itself (here at the end of the
    // same message, which succeeds).
    assert!(!bus.areas().contains(1));
    assert_eq!(fake.relinquished, vec![0x20]);
    assert_eq!(fake.relinquish_calls, 2);
    assert_eq!(bus.pending_events(), 0, "G2 queues no events");
    // Twice refused: still held after that message, unusable, then given back.
    share(&mut bus, &mut fake, 2, 0x21, 1, 0);
    fake.fail_relinquish(0x21, [ServiceError::Refused, ServiceError::Refused]);
    let resp = send(&mut bus, &mut fake, &unshare(2)).unwrap();
    assert_eq!(unshare_result(&resp, 2), msg::RESULT_ERROR);
    assert!(bus.areas().contains(2));
    assert!(
        !usable(&bus, 2),
        "an area whose relinquish failed is still usable"
    );
    ping(&mut bus, &mut fake);
    assert!(!bus.areas().contains(2));
    assert_eq!(fake.relinquished, vec![0x20, 0x21]);
}

#[test]
fn a_pending_area_takes_no_new_io() {
    let (mut bus, mocks) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    let ring = setup_queue(&mut bus, &mut fake, Layout::V1Review);
    init_device(&mut bus, &mut fake, Layout::V1Review, ring, 64);
    share(&mut bus, &mut fake, 2, 0x30, 1, OK);
    fake.fail_relinquish(0x30, [ServiceError::Busy]);
    let resp = send(&mut bus, &mut fake, &unshare(2)).unwrap();
    assert_eq!(unshare_result(&resp, 2), msg::RESULT_BUSY);
    // The device writes into the area being unshared: refused, nothing touched.
    mocks[0].state().notify_write = Some((bus_address(2, 0), vec![0xAA; 4]));
    transport(
        &mut bus,
        &mut fake,
        Layout::V1Review,
        TransportRequest::EventAvail {
            vq_index: 0,
            next_offset: 0,
        },
    );
    let mem = fake.memory.borrow();
    assert!(
        mem[&Fake::base(0x30)].iter().all(|b| *b == 0),
        "a device wrote into an area whose unshare is pending"
    );
}

#[test]
fn reset_keeps_areas_whose_relinquish_fails_and_retries_them() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    share(&mut bus, &mut fake, 1, 0x10, 1, OK);
    share(&mut bus, &mut fake, 2, 0x11, 1, OK);
    // Area 1 (relinquished first) fails at the reset and at the retry after it.
    fake.fail_relinquish(0x10, [ServiceError::NoSpace, ServiceError::NoSpace]);
    let resp = send(&mut bus, &mut fake, &bus_frame(msg::RESET, 70, &[])).unwrap();
    assert_eq!(resp, bus_frame_resp(msg::RESET, 70, &0u16.to_le_bytes()));
    assert!(
        bus.areas().contains(1),
        "RESET forgot an area still retrieved"
    );
    assert!(!bus.areas().contains(2));
    assert!(fake.retrieved.contains(&0x10));
    assert!(!usable(&bus, 1));
    // The next message (even one refused before VERSION) retries it.
    ping(&mut bus, &mut fake);
    assert!(bus.areas().is_empty());
    let mut relinquished = fake.relinquished.clone();
    relinquished.sort();
    assert_eq!(relinquished, vec![0x10, 0x11]);
    assert!(fake.retrieved.is_empty());
}

#[test]
fn dialect_change_keeps_areas_whose_relinquish_fails() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    share(&mut bus, &mut fake, 1, 0x10, 1, OK);
    fake.fail_relinquish(0x10, [ServiceError::Refused, ServiceError::Refused]);
    negotiate_g2(&mut bus, &mut fake);
    assert_eq!(bus.dialect(), Some(Dialect::G2));
    assert!(
        bus.areas().contains(1),
        "dialect change forgot a retrieved area"
    );
    assert!(fake.retrieved.contains(&0x10));
    ping(&mut bus, &mut fake);
    assert!(bus.areas().is_empty());
    assert_eq!(fake.relinquished, vec![0x10]);
}

#[test]
fn share_refused_after_retrieve_keeps_the_memory_if_relinquish_fails() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    // The page count disagrees with the retrieved memory: refused, and the relinquish of what
    // was retrieved fails (twice: at the share and at the retry after it).
    fake.offer(0x11, VM, 4);
    fake.fail_relinquish(0x11, [ServiceError::Refused, ServiceError::Refused]);
    let resp = send(&mut bus, &mut fake, &area_share(2, 0x11, 3, OK)).unwrap();
    assert_eq!(area_result(&resp, 2), 1);
    assert!(
        bus.areas().contains(2),
        "a refused share forgot memory it still holds"
    );
    assert!(fake.retrieved.contains(&0x11));
    assert!(!usable(&bus, 2));
    ping(&mut bus, &mut fake);
    assert!(bus.areas().is_empty());
    assert_eq!(fake.relinquished, vec![0x11]);
    // The id is free again.
    share(&mut bus, &mut fake, 2, 0x12, 1, OK);
}

#[test]
fn unusable_memory_still_retrieved_after_a_share_is_held() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    fake.offer(0x40, VM, 1);
    fake.strand_next_retrieve = true;
    fake.fail_relinquish(0x40, [ServiceError::Refused]);
    let resp = send(&mut bus, &mut fake, &area_share(3, 0x40, 1, OK)).unwrap();
    assert_eq!(area_result(&resp, 3), 1);
    assert_eq!(
        bus.areas().state(3),
        Some(AreaState::RelinquishPending {
            driver_retries: false
        })
    );
    assert!(!usable(&bus, 3));
    ping(&mut bus, &mut fake);
    assert!(bus.areas().is_empty());
    assert_eq!(fake.relinquished, vec![0x40]);
}

#[test]
fn one_retry_per_message_round_robin() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    for id in 1..=3 {
        share(&mut bus, &mut fake, id, 0x10 + u64::from(id), 1, OK);
    }
    // All three fail at the reset, area 1 again at the retry after it.
    fake.fail_relinquish(0x11, [ServiceError::Refused; 2]);
    fake.fail_relinquish(0x12, [ServiceError::Refused]);
    fake.fail_relinquish(0x13, [ServiceError::Refused]);
    assert_eq!(bus.reset(&mut fake), 3);
    assert!(bus.holds_memory());
    ping(&mut bus, &mut fake);
    assert_eq!((fake.relinquish_calls, bus.areas().len()), (4, 3));
    // Areas 2 and 3 are not starved by area 1.
    ping(&mut bus, &mut fake);
    assert_eq!((fake.relinquish_calls, bus.areas().state(2)), (5, None));
    ping(&mut bus, &mut fake);
    assert_eq!((fake.relinquish_calls, bus.areas().state(3)), (6, None));
    ping(&mut bus, &mut fake);
    assert_eq!(fake.relinquish_calls, 7);
    assert!(!bus.holds_memory());
    ping(&mut bus, &mut fake);
    assert_eq!(fake.relinquish_calls, 7, "retried after it succeeded");
    let mut relinquished = fake.relinquished.clone();
    relinquished.sort();
    assert_eq!(relinquished, vec![0x11, 0x12, 0x13]);
}
