//! Tests of GET_DEVICES, PING, malformed frames and transport messages routed to devices.

use super::*;

#[test]
fn g2_version_and_get_devices() {
    let (mut bus, _) = instance(3);
    let mut fake = Fake::default();
    let r = negotiate_g2(&mut bus, &mut fake);
    assert_eq!(r.bus_version.get(), 0x0001_0000);
    assert_eq!(r.transport_revision.get(), 1);
    assert_eq!(r.transport_features.get(), 0);
    assert_eq!(
        r.bus_features.get(),
        0xF,
        "G2 is offered direct and indirect messaging by default (it takes pushed events), \
         never notifications"
    );
    assert_eq!(bus.dialect(), Some(Dialect::G2));
    let resp = send(&mut bus, &mut fake, &get_devices(0, 255)).unwrap();
    let h = header(&resp);
    assert_eq!((h.msg_type, h.msg_id, h.msg_size), (0x03, 0x02, 8 + 6 + 32));
    let p = &resp[8..];
    assert_eq!(u16::from_le_bytes([p[0], p[1]]), 0, "offset");
    assert_eq!(u16::from_le_bytes([p[2], p[3]]), 3, "num = device count");
    assert_eq!(u16::from_le_bytes([p[4], p[5]]), 0, "next_offset");
    assert_eq!(p[6], 0b111);
    assert!(p[7..].iter().all(|b| *b == 0));
    // G2 gets no EVENT_POLL.
    let resp = send(&mut bus, &mut fake, &bus_frame(msg::EVENT_POLL, 1, &[])).unwrap();
    assert_error(&resp, msg::EVENT_POLL, 0, 1);
}

#[test]
fn g3_get_devices_windows() {
    let (mut bus, _) = instance(20);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    // Window 8..16 of 20 devices: all present, more after it.
    let resp = send(&mut bus, &mut fake, &get_devices(8, 8)).unwrap();
    let p = &resp[8..];
    assert_eq!(header(&resp).msg_size, 8 + 6 + 1);
    assert_eq!(u16::from_le_bytes([p[0], p[1]]), 8, "offset");
    assert_eq!(u16::from_le_bytes([p[2], p[3]]), 16, "next_offset");
    assert_eq!(u16::from_le_bytes([p[4], p[5]]), 8, "count");
    assert_eq!(p[6], 0xFF);
    // Last window: devices 16..19, no more.
    let resp = send(&mut bus, &mut fake, &get_devices(16, 256)).unwrap();
    let p = &resp[8..];
    assert_eq!(header(&resp).msg_size, 8 + 6 + 32);
    assert_eq!(u16::from_le_bytes([p[2], p[3]]), 0);
    assert_eq!(u16::from_le_bytes([p[4], p[5]]), 256);
    assert_eq!(p[6], 0x0F);
    assert!(p[7..].iter().all(|b| *b == 0));
    // A window larger than a frame carries is cut to what fits.
    let resp = send(&mut bus, &mut fake, &get_devices(0, 4096)).unwrap();
    let p = &resp[8..];
    assert_eq!(u16::from_le_bytes([p[4], p[5]]), 720);
    assert_eq!(header(&resp).msg_size, 104);
    // Beyond every device: an empty window.
    let resp = send(&mut bus, &mut fake, &get_devices(1024, 8)).unwrap();
    assert_eq!(resp[8 + 6], 0);
    // Malformed request size.
    let resp = send(&mut bus, &mut fake, &bus_frame(0x02, 5, &[0, 0])).unwrap();
    assert_error(&resp, 0x02, 0, 5);
}

#[test]
fn ping_echoes() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    let resp = send(
        &mut bus,
        &mut fake,
        &bus_frame(0x03, 44, &0xdead_beefu32.to_le_bytes()),
    )
    .unwrap();
    assert_eq!(
        resp,
        bus_frame_resp(0x03, 44, &0xdead_beefu32.to_le_bytes())
    );
}

#[test]
fn unknown_and_malformed_frames_get_error() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    // Unknown bus id.
    assert_error(
        &send(&mut bus, &mut fake, &bus_frame(0x99, 12, &[])).unwrap(),
        0x99,
        0,
        12,
    );
    // A bus event id sent as a request.
    assert_error(
        &send(&mut bus, &mut fake, &bus_frame(0x40, 12, &[0; 4])).unwrap(),
        0x40,
        0,
        12,
    );
    // FIFO_CONFIGURE is not offered.
    assert_error(
        &send(&mut bus, &mut fake, &bus_frame(0x86, 2, &[0; 12])).unwrap(),
        0x86,
        0,
        2,
    );
    // Bus message with a device number.
    let mut f = bus_frame(0x03, 13, &[1, 2, 3, 4]);
    f[2] = 1;
    assert_error(&send(&mut bus, &mut fake, &f).unwrap(), 0x03, 1, 13);
    // A response where a request is due.
    let f = bus_frame_resp(0x03, 14, &[1, 2, 3, 4]);
    assert_error(&send(&mut bus, &mut fake, &f).unwrap(), 0x03, 0, 14);
    // msg_size larger than the frame, and smaller than a header.
    let mut f = bus_frame(0x03, 15, &[1, 2, 3, 4]);
    f[6] = 200;
    assert_error(&send(&mut bus, &mut fake, &f).unwrap(), 0x03, 0, 15);
    f[6] = 4;
    assert_error(&send(&mut bus, &mut fake, &f).unwrap(), 0x03, 0, 15);
    // Transport message for a device that does not exist.
    let mut out = [0u8; MAX_MSG_SIZE];
    let n = TransportRequest::GetDeviceStatus
        .encode(Layout::V1Review, 9, 16, &mut out)
        .unwrap();
    assert_error(&send(&mut bus, &mut fake, &out[..n]).unwrap(), 0x07, 9, 16);
    // Empty frame.
    assert!(matches!(
        bus.handle(&[], &mut [0; MAX_MSG_SIZE], &mut fake),
        Reply::Frame(10)
    ));
    // Everything still works.
    assert!(send(&mut bus, &mut fake, &get_devices(0, 8)).is_some());
}

#[test]
fn transport_before_negotiation_is_an_error() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    let mut out = [0u8; MAX_MSG_SIZE];
    let n = TransportRequest::GetDeviceInfo
        .encode(Layout::V1Review, 0, 21, &mut out)
        .unwrap();
    assert_error(&send(&mut bus, &mut fake, &out[..n]).unwrap(), 0x02, 0, 21);
}

#[test]
fn set_vqueue_outside_areas_leaves_queue_unconfigured() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    let ring = setup_queue(&mut bus, &mut fake, Layout::V1Review);
    // Raw physical addresses (area 0) and addresses past the area's end are refused.
    for (desc, drv, dev) in [
        (0x8000_0000, 0x8000_1000, 0x8000_2000),
        (ring, ring + 0x1000, ring + 0x4000),
        (bus_address(2, 0), ring + 0x1000, ring + 0x2000),
    ] {
        let resp = transport(
            &mut bus,
            &mut fake,
            Layout::V1Review,
            TransportRequest::SetVqueue {
                index: 0,
                flags: 1,
                size: 64,
                desc_addr: desc,
                driver_addr: drv,
                device_addr: dev,
            },
        );
        assert_eq!(header(&resp).msg_size, 8);
        let resp = transport(
            &mut bus,
            &mut fake,
            Layout::V1Review,
            TransportRequest::GetVqueue { index: 0 },
        );
        assert_eq!(cur_size(&resp, Layout::V1Review), 0);
    }
    // The refused driver is served again only after a reset.
    transport(
        &mut bus,
        &mut fake,
        Layout::V1Review,
        TransportRequest::SetDeviceStatus { status: 0 },
    );
    init_device(&mut bus, &mut fake, Layout::V1Review, ring, 64);
    let resp = transport(
        &mut bus,
        &mut fake,
        Layout::V1Review,
        TransportRequest::GetVqueue { index: 0 },
    );
    assert_eq!(cur_size(&resp, Layout::V1Review), 64);
}

/// A driver whose rings lie outside every shared area, once its device is past FEATURES_OK
/// (where the engine itself would take the queue): the queue stays unconfigured and DRIVER_OK
/// is refused with DEVICE_NEEDS_RESET. This is the only check between such a driver and a
/// device that reads raw physical addresses: with `rings_in_areas` always true this fails.
#[test]
fn rings_outside_areas_refuse_the_driver_in_both_dialects() {
    use virtio_msg::transport::status::*;
    for (layout, negotiate) in [
        (
            Layout::V1Review,
            negotiate_g3 as fn(&mut BusInstance, &mut Fake),
        ),
        (Layout::Pr28, |b: &mut BusInstance, f: &mut Fake| {
            negotiate_g2(b, f);
        }),
    ] {
        let (mut bus, mocks) = instance(1);
        let mut fake = Fake::default();
        negotiate(&mut bus, &mut fake);
        let ring = setup_queue(&mut bus, &mut fake, layout);
        assert_ne!(to_features_ok(&mut bus, &mut fake, layout) & FEATURES_OK, 0);
        let resp = transport(
            &mut bus,
            &mut fake,
            layout,
            TransportRequest::SetVqueue {
                index: 0,
                flags: if layout == Layout::V1Review { 1 } else { 0 },
                size: 64,
                desc_addr: 0x8000_0000,
                driver_addr: 0x8000_1000,
                device_addr: 0x8000_2000,
            },
        );
        assert_eq!(header(&resp).msg_size, 8, "{layout:?}");
        let resp = transport(
            &mut bus,
            &mut fake,
            layout,
            TransportRequest::GetVqueue { index: 0 },
        );
        assert_eq!(
            cur_size(&resp, layout),
            0,
            "{layout:?}: queue configured at raw PAs"
        );
        let resp = transport(
            &mut bus,
            &mut fake,
            layout,
            TransportRequest::SetDeviceStatus {
                status: ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK,
            },
        );
        let status = status_of(&resp, layout, 0x08);
        assert_eq!(status & DRIVER_OK, 0, "{layout:?}: DRIVER_OK taken");
        assert_ne!(status & DEVICE_NEEDS_RESET, 0, "{layout:?}");
        let resp = transport(
            &mut bus,
            &mut fake,
            layout,
            TransportRequest::GetDeviceStatus,
        );
        assert_eq!(status_of(&resp, layout, 0x07), status);
        assert!(
            mocks[0].state().activations == 0,
            "{layout:?}: device went live"
        );
        // After a reset the same driver with rings inside its area is served.
        transport(
            &mut bus,
            &mut fake,
            layout,
            TransportRequest::SetDeviceStatus { status: 0 },
        );
        init_device(&mut bus, &mut fake, layout, ring, 64);
        let resp = transport(
            &mut bus,
            &mut fake,
            layout,
            TransportRequest::GetDeviceStatus,
        );
        assert_ne!(status_of(&resp, layout, 0x07) & DRIVER_OK, 0, "{layout:?}");
    }
}

/// A G2 driver shares its DMA pool at bus probe, before any device; one that has shared
/// nothing by FEATURES_OK hands raw physical addresses (built without its pool). FEATURES_OK
/// is refused, which virtio core notices at probe. G3 shares memory later and is not affected.
#[test]
fn g2_driver_without_shared_memory_is_refused_features_ok() {
    use virtio_msg::transport::status::*;
    let (mut bus, _) = instance(2);
    let mut fake = Fake::default();
    negotiate_g2(&mut bus, &mut fake);
    assert_eq!(
        to_features_ok(&mut bus, &mut fake, Layout::Pr28) & FEATURES_OK,
        0,
        "FEATURES_OK taken from a G2 driver that shared no memory"
    );
    let resp = transport(
        &mut bus,
        &mut fake,
        Layout::Pr28,
        TransportRequest::GetDeviceStatus,
    );
    assert_eq!(status_of(&resp, Layout::Pr28, 0x07) & FEATURES_OK, 0);
    // With its pool shared (the driver reloaded: reset first), the same driver is served.
    transport(
        &mut bus,
        &mut fake,
        Layout::Pr28,
        TransportRequest::SetDeviceStatus { status: 0 },
    );
    setup_queue(&mut bus, &mut fake, Layout::Pr28);
    assert_ne!(
        to_features_ok(&mut bus, &mut fake, Layout::Pr28) & FEATURES_OK,
        0
    );

    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    assert_ne!(
        to_features_ok(&mut bus, &mut fake, Layout::V1Review) & FEATURES_OK,
        0
    );
}

#[test]
fn device_cannot_reach_memory_outside_areas() {
    let (mut bus, mocks) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    let ring = setup_queue(&mut bus, &mut fake, Layout::V1Review);
    init_device(&mut bus, &mut fake, Layout::V1Review, ring, 64);
    // The device writes past the end of the area: the write fails, nothing is touched, and
    // the device is flagged DEVICE_NEEDS_RESET by its model (mock returns the memory error).
    mocks[0].state().notify_write = Some((ring + 4 * 4096 - 2, vec![0xAA; 4]));
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
    assert!(mem[&Fake::base(0x10)].iter().all(|b| *b == 0));
}

#[test]
fn frames_and_registers_round_trip() {
    let frame: Vec<u8> = (1..=104).collect();
    let regs = frame_to_regs(&frame);
    assert_eq!(regs[0], u64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8]));
    assert_eq!(regs[13], 0, "x17 stays zero");
    assert_eq!(&regs_to_frame(&regs)[..104], &frame[..]);
    assert_eq!(bus_address(0xFFFF, 0x1234), 0xFFFF_0000_0000_1234);
    let _ = HEADER_SIZE;
}

/// SET_VQUEUE of queue 0 (size 64), then its size as read back.
fn set_vqueue(bus: &mut BusInstance, fake: &mut Fake, desc: u64, drv: u64, dev: u64) -> u32 {
    transport(
        bus,
        fake,
        Layout::V1Review,
        TransportRequest::SetVqueue {
            index: 0,
            flags: 1,
            size: 64,
            desc_addr: desc,
            driver_addr: drv,
            device_addr: dev,
        },
    );
    let resp = transport(
        bus,
        fake,
        Layout::V1Review,
        TransportRequest::GetVqueue { index: 0 },
    );
    cur_size(&resp, Layout::V1Review)
}

#[test]
fn set_vqueue_at_features_ok_with_rings_outside_areas_is_not_configured() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    // Area 1: 4 pages; the good rings are at 0, 0x1000 and 0x2000 in it.
    let ring = setup_queue(&mut bus, &mut fake, Layout::V1Review);
    to_features_ok(&mut bus, &mut fake, Layout::V1Review);
    for (desc, drv, dev) in [
        // Raw physical addresses (area 0).
        (0x8000_0000, 0x8000_1000, 0x8000_2000),
        // Each ring alone outside: unknown area, past the end, straddling the end.
        (bus_address(7, 0), ring + 0x1000, ring + 0x2000),
        (ring, bus_address(7, 0x1000), ring + 0x2000),
        (ring, ring + 0x1000, bus_address(7, 0x2000)),
        (ring + 0x4000, ring + 0x1000, ring + 0x2000),
        (ring, ring + 0x1000, ring + 0x4000 - 8),
        (ring + 0x4000 - 16 * 32, ring + 0x1000, ring + 0x2000),
    ] {
        assert_eq!(
            set_vqueue(&mut bus, &mut fake, desc, drv, dev),
            0,
            "rings {desc:#x} {drv:#x} {dev:#x} outside the areas were accepted"
        );
    }
    // Inside: configured.
    assert_eq!(
        set_vqueue(&mut bus, &mut fake, ring, ring + 0x1000, ring + 0x2000),
        64
    );
}

/// The endpoint's counters: every message counted, ERROR answers among them, the areas held
/// after each; a transport message counted for its device (and no other).
#[test]
fn stats_count_messages_errors_areas_and_device_messages() {
    let (bus, _) = instance(2);
    let stats = alloc::sync::Arc::new(virtio_msg::device::EndpointStats::new());
    let mut bus = bus.with_stats(alloc::sync::Arc::clone(&stats));
    let mut fake = Fake::default();
    // Two VERSION messages, then an undecodable frame (ERROR), then an area.
    negotiate_g3(&mut bus, &mut fake);
    send(&mut bus, &mut fake, &[0xff, 0x01]).unwrap();
    let layout = Layout::V1Review;
    let _ = setup_queue(&mut bus, &mut fake, layout);
    transport(&mut bus, &mut fake, layout, TransportRequest::GetDeviceInfo);
    let s = stats.endpoint();
    assert_eq!((s.messages, s.errors, s.areas), (5, 1, 1), "{s:?}");
    assert_eq!(stats.device(0).unwrap().messages, 1);
    assert_eq!(stats.device(1), Some(Default::default()));
}
