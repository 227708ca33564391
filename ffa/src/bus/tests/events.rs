//! Tests of EVENT_CONFIGURE, EVENT_AVAIL acknowledgement, EVENT_POLL and notifications.

use super::*;

#[test]
fn event_avail_ack_poll_and_notification() {
    let (mut bus, mocks) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    // Notifications with id 5.
    let resp = send(
        &mut bus,
        &mut fake,
        &bus_frame(msg::EVENT_CONFIGURE, 40, &[1, 0, 5, 0]),
    )
    .unwrap();
    assert_eq!(
        resp,
        bus_frame_resp(msg::EVENT_CONFIGURE, 40, &0u16.to_le_bytes())
    );
    // A second EVENT_CONFIGURE is refused.
    assert_error(
        &send(
            &mut bus,
            &mut fake,
            &bus_frame(msg::EVENT_CONFIGURE, 41, &[0, 0, 0, 0]),
        )
        .unwrap(),
        msg::EVENT_CONFIGURE,
        0,
        41,
    );
    let ring = setup_queue(&mut bus, &mut fake, Layout::V1Review);
    init_device(&mut bus, &mut fake, Layout::V1Review, ring, 64);
    // Two kicks: one EVENT_USED (coalesced), one notification.
    for token in [50, 51] {
        let resp = transport(
            &mut bus,
            &mut fake,
            Layout::V1Review,
            TransportRequest::EventAvail {
                vq_index: 0,
                next_offset: 0,
            },
        );
        let mut ack = bus_frame_resp(msg::EVENT_ACK, 77, &[]);
        ack[4..6].copy_from_slice(&77u16.to_le_bytes());
        assert_eq!(resp, ack, "token {token}");
    }
    assert_eq!(mocks[0].state().notifies, vec![0, 0]);
    assert_eq!(fake.notified, vec![(VM, 5)]);
    let resp = send(&mut bus, &mut fake, &bus_frame(msg::EVENT_POLL, 60, &[])).unwrap();
    // EVENT_USED {vq 0} from device 0, token 0.
    assert_eq!(resp, vec![0x00, 0x42, 0, 0, 0, 0, 12, 0, 0, 0, 0, 0]);
    let resp = send(&mut bus, &mut fake, &bus_frame(msg::EVENT_POLL, 61, &[])).unwrap();
    assert_eq!(resp, bus_frame_resp(msg::EVENT_POLL, 61, &[]));
    // EVENT_POLL with a payload is malformed.
    assert_error(
        &send(&mut bus, &mut fake, &bus_frame(msg::EVENT_POLL, 62, &[0])).unwrap(),
        msg::EVENT_POLL,
        0,
        62,
    );
}

#[test]
fn event_configure_rejects_unsupported_methods() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    for (method, id) in [(3u8, 0u16), (9, 0), (1, 64)] {
        let p = [method, 0, id.to_le_bytes()[0], id.to_le_bytes()[1]];
        let resp = send(&mut bus, &mut fake, &bus_frame(msg::EVENT_CONFIGURE, 1, &p)).unwrap();
        assert_eq!(resp[8..], 1u16.to_le_bytes(), "method {method} id {id}");
    }
    // Reserved byte.
    assert_error(
        &send(
            &mut bus,
            &mut fake,
            &bus_frame(msg::EVENT_CONFIGURE, 2, &[0, 1, 0, 0]),
        )
        .unwrap(),
        msg::EVENT_CONFIGURE,
        0,
        2,
    );
    let resp = send(
        &mut bus,
        &mut fake,
        &bus_frame(msg::EVENT_CONFIGURE, 3, &[0, 0, 0, 0]),
    )
    .unwrap();
    assert_eq!(resp[8..], 0u16.to_le_bytes());
}

/// A kick of queue 0 of device 0; returns the answer.
fn kick(bus: &mut BusInstance, fake: &mut Fake, layout: Layout) -> Vec<u8> {
    transport(
        bus,
        fake,
        layout,
        TransportRequest::EventAvail {
            vq_index: 0,
            next_offset: 0,
        },
    )
}

/// EVENT_USED {vq 0} of device 0 as the driver receives it (token 0).
const USED_0: [u8; 12] = [0x00, 0x42, 0, 0, 0, 0, 12, 0, 0, 0, 0, 0];

#[test]
fn g3_indirect_events_are_pushed_and_kept_while_the_driver_rx_is_busy() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    let resp = send(
        &mut bus,
        &mut fake,
        &bus_frame(msg::EVENT_CONFIGURE, 40, &[2, 0, 0, 0]),
    )
    .unwrap();
    assert_eq!(resp[8..], 0u16.to_le_bytes(), "INDIRECT accepted");
    let ring = setup_queue(&mut bus, &mut fake, Layout::V1Review);
    init_device(&mut bus, &mut fake, Layout::V1Review, ring, 64);
    kick(&mut bus, &mut fake, Layout::V1Review);
    assert!(
        fake.sent.is_empty(),
        "pushed only once the message is answered"
    );
    assert_eq!(bus.push_events(&mut fake), 1);
    assert_eq!(
        fake.sent,
        vec![(VM, crate::ids::VIRTIO_MSG_DRIVER_UUID, USED_0.to_vec())]
    );
    assert!(fake.notified.is_empty(), "no doorbell with pushed events");
    // The driver keeps its RX buffer: the event stays queued, and goes with the next push.
    fake.send_busy = true;
    kick(&mut bus, &mut fake, Layout::V1Review);
    assert_eq!(bus.push_events(&mut fake), 0);
    assert_eq!(bus.pending_events(), 1);
    assert!(bus.awaits_push(), "refused: to be pushed again");
    kick(&mut bus, &mut fake, Layout::V1Review);
    assert_eq!(bus.pending_events(), 1, "coalesced while waiting");
    fake.send_busy = false;
    assert_eq!(bus.push_events(&mut fake), 1);
    assert!(!bus.awaits_push());
    assert_eq!(fake.sent.len(), 2);
    assert_eq!(bus.pending_events(), 0);
    assert_eq!(bus.push_events(&mut fake), 0, "nothing left");
    // Refused again, then taken by EVENT_POLL: nothing waits to be pushed any more.
    fake.send_busy = true;
    kick(&mut bus, &mut fake, Layout::V1Review);
    assert_eq!(bus.push_events(&mut fake), 0);
    assert!(bus.awaits_push());
    let resp = send(&mut bus, &mut fake, &bus_frame(msg::EVENT_POLL, 42, &[])).unwrap();
    assert_eq!(resp[..], USED_0[..], "the event, by EVENT_POLL");
    assert_eq!(bus.pending_events(), 0);
    assert!(!bus.awaits_push(), "polled away");
}

#[test]
fn g2_gets_used_events_pushed_only_when_indirect_is_offered() {
    for (indirect, g2_pushed_events) in [(true, true), (true, false), (false, true)] {
        let mocks = [MockDevice::new(MockState::default())];
        let devices: Vec<Box<dyn VirtioDevice + Send>> = mocks
            .iter()
            .map(|m| Box::new(m.clone()) as Box<dyn VirtioDevice + Send>)
            .collect();
        let config = BusConfig {
            indirect,
            g2_pushed_events,
            ..BusConfig::default()
        };
        let indirect = indirect && g2_pushed_events;
        let mut bus = BusInstance::new(VM, devices, config);
        let mut fake = Fake::default();
        let r = negotiate_g2(&mut bus, &mut fake);
        let want = if indirect { 0xF } else { 0x3 };
        assert_eq!(r.bus_features.get(), want, "{config:?}");
        let ring = setup_queue(&mut bus, &mut fake, Layout::Pr28);
        init_device(&mut bus, &mut fake, Layout::Pr28, ring, 64);
        kick(&mut bus, &mut fake, Layout::Pr28);
        assert_eq!(mocks[0].state().notifies, vec![0]);
        if indirect {
            assert_eq!(bus.push_events(&mut fake), 1);
            assert_eq!(
                fake.sent,
                vec![(VM, crate::ids::VIRTIO_MSG_DEVICE_UUID, USED_0.to_vec())],
                "G2 matches the partition's own UUID"
            );
        } else {
            assert_eq!(bus.pending_events(), 0, "G2 polls its used rings");
            assert_eq!(bus.push_events(&mut fake), 0);
            assert!(fake.sent.is_empty());
        }
    }
}

#[test]
fn indirect_events_are_refused_when_the_partition_has_no_indirect_messaging() {
    let mocks = [MockDevice::new(MockState::default())];
    let devices: Vec<Box<dyn VirtioDevice + Send>> = mocks
        .iter()
        .map(|m| Box::new(m.clone()) as Box<dyn VirtioDevice + Send>)
        .collect();
    let config = BusConfig {
        indirect: false,
        ..BusConfig::default()
    };
    let mut bus = BusInstance::new(VM, devices, config);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    let resp = send(
        &mut bus,
        &mut fake,
        &bus_frame(msg::EVENT_CONFIGURE, 40, &[2, 0, 0, 0]),
    )
    .unwrap();
    assert_eq!(resp[8..], 1u16.to_le_bytes());
}
