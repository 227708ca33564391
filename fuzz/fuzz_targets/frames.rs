//! Every virtio-msg decoder on arbitrary bytes, in both transport layouts and both GET_DEVICES
//! orders: decoding never panics, and whatever decodes encodes again to a frame that decodes to
//! the same value (with the same header fields).
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtio_msg::{
    Header, Layout,
    bus::{BusEvent, BusRequest, BusResponse, GetDevicesOrder},
    transport::{DeviceEvent, TransportRequest, TransportResponse},
};

/// Largest frame `msg_size` can describe.
const MAX: usize = u16::MAX as usize;

fuzz_target!(|data: &[u8]| {
    let Some((&select, frame)) = data.split_first() else {
        return;
    };
    let layout = if select & 1 == 0 {
        Layout::Pr28
    } else {
        Layout::V1Review
    };
    let order = if select & 2 == 0 {
        GetDevicesOrder::CountThenNext
    } else {
        GetDevicesOrder::NextThenCount
    };
    // Responses are decoded against the id of the request they answer: the frame's own id
    // or another, as the fuzzer picks.
    let request_id = if select & 4 == 0 {
        frame.get(1).copied().unwrap_or(0)
    } else {
        select >> 3
    };
    let _ = Header::parse(frame);
    let mut out = vec![0u8; MAX];

    if let Ok((h, req)) = TransportRequest::decode(frame, layout) {
        let n = req
            .encode(layout, h.dev_num, h.token, &mut out)
            .expect("a decoded request encodes");
        let (h2, again) = TransportRequest::decode(&out[..n], layout).expect("and decodes again");
        assert_eq!(again, req);
        assert_eq!(
            (h2.msg_id, h2.dev_num, h2.token),
            (h.msg_id, h.dev_num, h.token)
        );
    }
    if let Ok((h, resp)) = TransportResponse::decode(frame, layout, request_id) {
        let n = resp
            .encode(layout, &h, &mut out)
            .expect("a decoded response encodes");
        let (h2, again) =
            TransportResponse::decode(&out[..n], layout, request_id).expect("and decodes again");
        assert_eq!(again, resp);
        assert_eq!(
            (h2.msg_id, h2.dev_num, h2.token),
            (h.msg_id, h.dev_num, h.token)
        );
    }
    if let Ok((h, event)) = DeviceEvent::decode(frame) {
        let n = event
            .encode(h.dev_num, &mut out)
            .expect("a decoded event encodes");
        let (_, again) = DeviceEvent::decode(&out[..n]).expect("and decodes again");
        assert_eq!(again, event);
    }
    if let Ok((h, req)) = BusRequest::decode(frame) {
        let n = req
            .encode(h.token, &mut out)
            .expect("a decoded bus request encodes");
        let (_, again) = BusRequest::decode(&out[..n]).expect("and decodes again");
        assert_eq!(again, req);
        // The same payload through the bus's parse-once entry point.
        let payload = h.payload(frame);
        assert_eq!(BusRequest::decode_payload(&h, payload), Ok(req));
    }
    if let Ok((h, resp)) = BusResponse::decode(frame, order, request_id) {
        let n = resp
            .encode(order, &h, &mut out)
            .expect("a decoded bus response encodes");
        let (_, again) =
            BusResponse::decode(&out[..n], order, request_id).expect("and decodes again");
        assert_eq!(again, resp);
    }
    if let Ok((_, event)) = BusEvent::decode(frame) {
        let n = event.encode(&mut out).expect("a decoded bus event encodes");
        let (_, again) = BusEvent::decode(&out[..n]).expect("and decodes again");
        assert_eq!(again, event);
    }
    if let Ok(h) = Header::parse(frame) {
        if let Ok(req) = TransportRequest::decode_payload(&h, h.payload(frame), layout) {
            let (_, full) =
                TransportRequest::decode(frame, layout).expect("both entry points agree");
            assert_eq!(full, req);
        }
    }
});
