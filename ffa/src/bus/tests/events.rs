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
    for (method, id) in [(2u8, 0u16), (3, 0), (9, 0), (1, 64)] {
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
