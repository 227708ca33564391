//! Tests of VERSION (both handshakes), the dialect latch and RESET.

use super::*;

#[test]
fn g3_version_probe_then_echo_commits() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    let offer = version_g3(&mut bus, &mut fake, 0, 0);
    assert_eq!(offer.bus_version.get(), 0x0001_0000);
    assert_eq!(offer.transport_revision.get(), 1);
    assert_eq!(offer.ffa_version.get(), 0x0001_0002);
    assert_eq!(offer.feature_bits.get(), 0);
    // Direct, indirect and notifications, both ways each.
    assert_eq!(offer.bus_features.get(), 0x3F);
    assert_eq!(offer.max_areas.get(), 256);
    assert_eq!(bus.dialect(), Some(Dialect::G3));
    // The probe alone does not negotiate: bus messages other than VERSION/RESET are refused.
    let resp = send(&mut bus, &mut fake, &get_devices(0, 256)).unwrap();
    assert_error(&resp, 0x02, 0, 3);
    version_g3(&mut bus, &mut fake, 0x0001_0000, 1);
    let resp = send(&mut bus, &mut fake, &get_devices(0, 256)).unwrap();
    assert_eq!(header(&resp).msg_id, 0x02);
}

#[test]
fn g3_version_unsupported_and_newer() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    // Older than ours: all-zero answer, nothing negotiated.
    let r = version_g3(&mut bus, &mut fake, 0x0000_0001, 1);
    assert_eq!(
        (r.bus_version.get(), r.bus_features.get(), r.max_areas.get()),
        (0, 0, 0)
    );
    let r = version_g3(&mut bus, &mut fake, 0x0001_0000, 0);
    assert_eq!(r.bus_version.get(), 0);
    // Newer than ours: we offer ours without committing.
    let r = version_g3(&mut bus, &mut fake, 0x0002_0000, 1);
    assert_eq!(r.bus_version.get(), 0x0001_0000);
    let resp = send(&mut bus, &mut fake, &get_devices(0, 256)).unwrap();
    assert_error(&resp, 0x02, 0, 3);
    // Once agreed, a different version gets zeros and the agreement stands.
    version_g3(&mut bus, &mut fake, 0x0001_0000, 1);
    let r = version_g3(&mut bus, &mut fake, 0x0002_0000, 1);
    assert_eq!(r.bus_version.get(), 0);
    let r = version_g3(&mut bus, &mut fake, 0, 0);
    assert_eq!(r.bus_version.get(), 0x0001_0000);
    assert!(send(&mut bus, &mut fake, &get_devices(0, 256)).is_some());
}

#[test]
fn version_of_other_sizes_is_an_error() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    let resp = send(&mut bus, &mut fake, &bus_frame(msg::VERSION, 9, &[0; 18])).unwrap();
    assert_error(&resp, msg::VERSION, 0, 9);
    assert_eq!(bus.dialect(), None);
}

#[test]
fn g2_wrong_version_gets_zero_version() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    let req = msg::VersionReqG2 {
        bus_version: 0x0002_0000.into(),
        transport_revision: 1.into(),
    };
    let resp = send(
        &mut bus,
        &mut fake,
        &bus_frame(msg::VERSION, 1, req.as_bytes()),
    )
    .unwrap();
    let r = msg::VersionRespG2::read_from_bytes(&resp[8..]).unwrap();
    assert_eq!(r.bus_version.get(), 0);
}

#[test]
fn dialect_change_resets_the_instance() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    setup_queue(&mut bus, &mut fake, Layout::V1Review);
    negotiate_g2(&mut bus, &mut fake);
    assert_eq!(bus.dialect(), Some(Dialect::G2));
    assert!(bus.areas().is_empty());
    assert!(fake.retrieved.is_empty());
}

#[test]
fn reset_clears_everything_and_relinquishes_every_area() {
    let (mut bus, mocks) = instance(2);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    send(
        &mut bus,
        &mut fake,
        &bus_frame(msg::EVENT_CONFIGURE, 40, &[0, 0, 0, 0]),
    )
    .unwrap();
    let ring = setup_queue(&mut bus, &mut fake, Layout::V1Review);
    fake.offer(0x30, VM, 2);
    send(
        &mut bus,
        &mut fake,
        &area_share(9, 0x30, 2, msg::attrs::LINUX_DEFAULT),
    )
    .unwrap();
    init_device(&mut bus, &mut fake, Layout::V1Review, ring, 64);
    transport(
        &mut bus,
        &mut fake,
        Layout::V1Review,
        TransportRequest::EventAvail {
            vq_index: 0,
            next_offset: 0,
        },
    );
    assert_eq!(bus.pending_events(), 1);
    let resets_before = mocks[0].state().resets;
    let resp = send(&mut bus, &mut fake, &bus_frame(msg::RESET, 70, &[])).unwrap();
    assert_eq!(resp, bus_frame_resp(msg::RESET, 70, &0u16.to_le_bytes()));
    assert!(bus.areas().is_empty());
    assert!(fake.retrieved.is_empty());
    let mut relinquished = fake.relinquished.clone();
    relinquished.sort();
    assert_eq!(relinquished, vec![0x10, 0x30]);
    assert_eq!(bus.pending_events(), 0);
    assert!(mocks[0].state().resets > resets_before);
    assert_eq!(bus.device(0).unwrap().status(), 0);
    // Negotiation is gone too.
    assert_error(
        &send(&mut bus, &mut fake, &get_devices(0, 8)).unwrap(),
        0x02,
        0,
        3,
    );
    // And the endpoint can start over.
    negotiate_g3(&mut bus, &mut fake);
    assert_eq!(
        area_result(
            &send(
                &mut bus,
                &mut fake,
                &area_share(1, 0x10, 4, msg::attrs::LINUX_DEFAULT)
            )
            .unwrap(),
            1
        ),
        0
    );
}

#[test]
fn g2_unsupported_version_does_not_open_the_bus() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    for (v, rev) in [(0x0002_0000, 1), (0x0001_0000, 0), (0, 0)] {
        let req = msg::VersionReqG2 {
            bus_version: v.into(),
            transport_revision: rev.into(),
        };
        let resp = send(
            &mut bus,
            &mut fake,
            &bus_frame(msg::VERSION, 1, req.as_bytes()),
        )
        .unwrap();
        let r = msg::VersionRespG2::read_from_bytes(&resp[8..]).unwrap();
        assert_eq!(
            (r.bus_version.get(), r.bus_features.get(), r.area_num.get()),
            (0, 0, 0)
        );
        // Nothing but VERSION and RESET is served.
        assert_error(
            &send(&mut bus, &mut fake, &get_devices(0, 255)).unwrap(),
            0x02,
            0,
            3,
        );
        fake.offer(0x10, VM, 1);
        let resp = send(&mut bus, &mut fake, &area_share(1, 0x10, 1, 0)).unwrap();
        assert_error(&resp, msg::AREA_SHARE, 0, 30);
        assert!(fake.retrieved.is_empty());
        let mut out = [0u8; MAX_MSG_SIZE];
        let n = TransportRequest::GetDeviceInfo
            .encode(Layout::Pr28, 0, 21, &mut out)
            .unwrap();
        assert_error(&send(&mut bus, &mut fake, &out[..n]).unwrap(), 0x02, 0, 21);
    }
    // The version served opens it; a wrong one afterwards does not close it.
    negotiate_g2(&mut bus, &mut fake);
    assert!(header(&send(&mut bus, &mut fake, &get_devices(0, 255)).unwrap()).msg_id == 0x02);
    let req = msg::VersionReqG2 {
        bus_version: 0x0002_0000.into(),
        transport_revision: 1.into(),
    };
    let resp = send(
        &mut bus,
        &mut fake,
        &bus_frame(msg::VERSION, 1, req.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        msg::VersionRespG2::read_from_bytes(&resp[8..])
            .unwrap()
            .bus_version
            .get(),
        0
    );
    let resp = send(&mut bus, &mut fake, &get_devices(0, 255)).unwrap();
    assert_eq!(
        (header(&resp).msg_id, header(&resp).msg_size),
        (0x02, 8 + 6 + 32)
    );
}

#[test]
fn bus_messages_with_a_device_number_are_refused() {
    let (mut bus, _) = instance(2);
    let mut fake = Fake::default();
    let with_dev = |mut f: Vec<u8>| {
        f[2] = 1;
        f
    };
    // VERSION: refused, nothing latched.
    let req = msg::VersionReqG3 {
        bus_version: 0.into(),
        transport_revision: 0.into(),
        ffa_version: 0x10002.into(),
    };
    let resp = send(
        &mut bus,
        &mut fake,
        &with_dev(bus_frame(msg::VERSION, 7, req.as_bytes())),
    )
    .unwrap();
    assert_error(&resp, msg::VERSION, 1, 7);
    assert_eq!(bus.dialect(), None);
    negotiate_g3(&mut bus, &mut fake);
    fake.offer(0x10, VM, 1);
    // AREA_SHARE: refused, nothing retrieved.
    let resp = send(
        &mut bus,
        &mut fake,
        &with_dev(area_share(1, 0x10, 1, msg::attrs::LINUX_DEFAULT)),
    )
    .unwrap();
    assert_error(&resp, msg::AREA_SHARE, 1, 30);
    assert!(fake.retrieved.is_empty());
    send(
        &mut bus,
        &mut fake,
        &area_share(1, 0x10, 1, msg::attrs::LINUX_DEFAULT),
    )
    .unwrap();
    // AREA_UNSHARE: refused, the area stays.
    let resp = send(
        &mut bus,
        &mut fake,
        &with_dev(bus_frame(msg::AREA_UNSHARE, 31, &1u16.to_le_bytes())),
    )
    .unwrap();
    assert_error(&resp, msg::AREA_UNSHARE, 1, 31);
    assert!(bus.areas().contains(1));
    // EVENT_CONFIGURE, EVENT_POLL, GET_DEVICES.
    let resp = send(
        &mut bus,
        &mut fake,
        &with_dev(bus_frame(msg::EVENT_CONFIGURE, 40, &[0, 0, 0, 0])),
    )
    .unwrap();
    assert_error(&resp, msg::EVENT_CONFIGURE, 1, 40);
    let resp = send(
        &mut bus,
        &mut fake,
        &with_dev(bus_frame(msg::EVENT_POLL, 60, &[])),
    )
    .unwrap();
    assert_error(&resp, msg::EVENT_POLL, 1, 60);
    let resp = send(&mut bus, &mut fake, &with_dev(get_devices(0, 8))).unwrap();
    assert_error(&resp, 0x02, 1, 3);
    // RESET: refused, nothing reset.
    let resp = send(
        &mut bus,
        &mut fake,
        &with_dev(bus_frame(msg::RESET, 70, &[])),
    )
    .unwrap();
    assert_error(&resp, msg::RESET, 1, 70);
    assert!(bus.areas().contains(1));
    assert_eq!(bus.dialect(), Some(Dialect::G3));
}
