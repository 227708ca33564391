//! Tests of AREA_SHARE and AREA_UNSHARE.

use super::*;

#[test]
fn area_share_success_and_failure_paths() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    fake.offer(0x10, VM, 4);
    fake.offer(0x11, VM, 4);
    fake.offer(0x12, 0x0002, 4);
    let ok = msg::attrs::LINUX_DEFAULT;
    assert_eq!(
        area_result(
            &send(&mut bus, &mut fake, &area_share(1, 0x10, 4, ok)).unwrap(),
            1
        ),
        0
    );
    assert!(bus.areas().contains(1));
    // Area id 0 is reserved; an id in use is refused.
    assert_eq!(
        area_result(
            &send(&mut bus, &mut fake, &area_share(0, 0x11, 4, ok)).unwrap(),
            0
        ),
        1
    );
    assert_eq!(
        area_result(
            &send(&mut bus, &mut fake, &area_share(1, 0x11, 4, ok)).unwrap(),
            1
        ),
        1
    );
    // Attributes: executable, not writable, device memory, secure, MBZ bits, donate.
    for bad in [
        ok | 0x8,
        ok & !0x4,
        (ok & !0x300) | 0x100,
        ok & !0x400,
        ok | 0x1000,
        ok | 0x2,
        0,
    ] {
        assert_eq!(
            area_result(
                &send(&mut bus, &mut fake, &area_share(2, 0x11, 4, bad)).unwrap(),
                2
            ),
            1,
            "attrs {bad:#x} accepted"
        );
    }
    // Page count disagreeing with the retrieved memory: refused and relinquished.
    assert_eq!(
        area_result(
            &send(&mut bus, &mut fake, &area_share(2, 0x11, 3, ok)).unwrap(),
            2
        ),
        1
    );
    assert_eq!(fake.relinquished, vec![0x11]);
    assert!(!fake.retrieved.contains(&0x11));
    // Zero pages; a handle owned by another endpoint; an unknown handle.
    assert_eq!(
        area_result(
            &send(&mut bus, &mut fake, &area_share(2, 0x11, 0, ok)).unwrap(),
            2
        ),
        1
    );
    assert_eq!(
        area_result(
            &send(&mut bus, &mut fake, &area_share(2, 0x12, 4, ok)).unwrap(),
            2
        ),
        1
    );
    assert_eq!(
        area_result(
            &send(&mut bus, &mut fake, &area_share(2, 0x99, 4, ok)).unwrap(),
            2
        ),
        1
    );
    // Busy SPMC: G3 gets the busy sentinel, then a retry succeeds.
    fake.busy = true;
    assert_eq!(send(&mut bus, &mut fake, &area_share(2, 0x11, 4, ok)), None);
    fake.busy = false;
    assert_eq!(
        area_result(
            &send(&mut bus, &mut fake, &area_share(2, 0x11, 4, ok)).unwrap(),
            2
        ),
        0
    );
    // Wrong size.
    let mut f = area_share(3, 0x11, 4, ok);
    f.pop();
    f[6] -= 1;
    assert_error(
        &send(&mut bus, &mut fake, &f).unwrap(),
        msg::AREA_SHARE,
        0,
        30,
    );
    assert_eq!(bus.areas().len(), 2);
}

#[test]
fn g2_area_share_with_zero_attributes_and_no_busy() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g2(&mut bus, &mut fake);
    fake.offer(0x20, VM, 1024);
    fake.busy = true;
    let resp = send(&mut bus, &mut fake, &area_share(1, 0x20, 1024, 0)).unwrap();
    assert_eq!(area_result(&resp, 1), 1, "G2 never gets the busy sentinel");
    fake.busy = false;
    // G2 counts Linux pages: 16 KiB pages are 4 FF-A pages each.
    let resp = send(&mut bus, &mut fake, &area_share(1, 0x20, 256, 0)).unwrap();
    assert_eq!(area_result(&resp, 1), 0);
}

#[test]
fn area_unshare() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    fake.offer(0x10, VM, 1);
    send(
        &mut bus,
        &mut fake,
        &area_share(5, 0x10, 1, msg::attrs::LINUX_DEFAULT),
    )
    .unwrap();
    let unshare = |id: u16| bus_frame(msg::AREA_UNSHARE, 31, &id.to_le_bytes());
    let resp = send(&mut bus, &mut fake, &unshare(6)).unwrap();
    assert_eq!(
        msg::AreaResp::read_from_bytes(&resp[8..])
            .unwrap()
            .result
            .get(),
        1
    );
    let resp = send(&mut bus, &mut fake, &unshare(5)).unwrap();
    let r = msg::AreaResp::read_from_bytes(&resp[8..]).unwrap();
    assert_eq!((r.area_id.get(), r.result.get()), (5, 0));
    assert_eq!(fake.relinquished, vec![0x10]);
    assert!(bus.areas().is_empty());
}
