//! Tests of the standard bus message codec: round trips in both GET_DEVICES orders,
//! known-answer vectors, the bus-specific rejection and encoding rules, and round-trip
//! properties of typed values. The rules every decoder shares are tested in `frame`.

use alloc::vec;

use proptest::prelude::*;

use super::{
    BusEvent, BusRequest, BusResponse, DEVICE_STATE_READY, DEVICE_STATE_REMOVED, GetDevicesOrder,
    codec::{decode_bus_event, decode_bus_request, decode_bus_response},
    samples::{BITMAP, ORDERS, all_bus_responses, enc_bus_event, enc_bus_req, enc_bus_resp},
};
use crate::{
    error::{DecodeError, EncodeError},
    frame::testing::{frame, req_header},
    ids::bus as bid,
};

// ---- round trips -----------------------------------------------------------------------------

#[test]
fn bus_messages_round_trip() {
    for req in [
        BusRequest::GetDevices {
            offset: 8,
            count: 256,
        },
        BusRequest::GetDevices {
            offset: 0,
            count: 255,
        },
        BusRequest::Ping { data: 0xffff_ffff },
    ] {
        let f = enc_bus_req(&req, 0x77);
        let (h, got) = decode_bus_request(&f).unwrap();
        assert_eq!(got, req);
        assert_eq!((h.msg_type, h.dev_num, h.token), (0x02, 0, 0x77));
    }
    for order in ORDERS {
        for resp in all_bus_responses() {
            let id = match resp {
                BusResponse::Devices { .. } => bid::GET_DEVICES,
                BusResponse::Ping { .. } => bid::PING,
            };
            let f = enc_bus_resp(&resp, order, &req_header(2, id, 0, 0x99));
            let (h, got) = decode_bus_response(&f, order, id).unwrap();
            assert_eq!(got, resp);
            assert_eq!(
                (h.msg_type, h.msg_id, h.dev_num, h.token),
                (0x03, id, 0, 0x99)
            );
        }
    }
    for state in [DEVICE_STATE_READY, DEVICE_STATE_REMOVED, 0x8000] {
        let ev = BusEvent::Device { dev_num: 5, state };
        let f = enc_bus_event(&ev);
        let (h, got) = decode_bus_event(&f).unwrap();
        assert_eq!(got, ev);
        assert_eq!(
            (h.msg_type, h.msg_id, h.dev_num, h.token),
            (0x02, 0x40, 0, 0)
        );
    }
}

// ---- known-answer vectors ------------------------------------------------------------------------

#[test]
fn kat_get_devices_spec_example_both_orders() {
    // Spec example: offset 0, count 16, bitmap 0x25 0x00, next_offset 16 → devices 0, 2, 5.
    let ctn = frame(0x03, 0x02, 0, 1, &[0, 0, 16, 0, 16, 0, 0x25, 0x00]);
    let ntc = frame(0x03, 0x02, 0, 1, &[0, 0, 16, 0, 16, 0, 0x25, 0x00]);
    let want = BusResponse::Devices {
        offset: 0,
        count: 16,
        next_offset: 16,
        bitmap: &BITMAP,
    };
    assert_eq!(
        decode_bus_response(&ctn, GetDevicesOrder::CountThenNext, 0x02)
            .unwrap()
            .1,
        want
    );
    assert_eq!(
        decode_bus_response(&ntc, GetDevicesOrder::NextThenCount, 0x02)
            .unwrap()
            .1,
        want
    );
    // Orders differ when count != next_offset.
    let f = frame(0x03, 0x02, 0, 1, &[0, 0, 8, 0, 0, 0, 0x01]);
    assert_eq!(
        decode_bus_response(&f, GetDevicesOrder::CountThenNext, 0x02)
            .unwrap()
            .1,
        BusResponse::Devices {
            offset: 0,
            count: 8,
            next_offset: 0,
            bitmap: &[0x01]
        }
    );
    // Read the other way, count is 0 so no bitmap byte is allowed.
    assert_eq!(
        decode_bus_response(&f, GetDevicesOrder::NextThenCount, 0x02),
        Err(DecodeError::BadSize { got: 15, need: 14 })
    );
    let req = req_header(0x02, 0x02, 0, 1);
    let resp = BusResponse::Devices {
        offset: 0,
        count: 8,
        next_offset: 16,
        bitmap: &[0x81],
    };
    assert_eq!(
        enc_bus_resp(&resp, GetDevicesOrder::CountThenNext, &req),
        frame(0x03, 0x02, 0, 1, &[0, 0, 8, 0, 16, 0, 0x81])
    );
    assert_eq!(
        enc_bus_resp(&resp, GetDevicesOrder::NextThenCount, &req),
        frame(0x03, 0x02, 0, 1, &[0, 0, 16, 0, 8, 0, 0x81])
    );
}

#[test]
fn kat_g2_get_devices_request() {
    let f = [
        0x02, 0x02, 0x00, 0x00, 0x01, 0x00, 0x0c, 0x00, 0x00, 0x00, 0xff, 0x00,
    ];
    let (h, req) = decode_bus_request(&f).unwrap();
    assert_eq!(
        req,
        BusRequest::GetDevices {
            offset: 0,
            count: 255
        }
    );
    assert_eq!(h.token, 1);
    assert_eq!(enc_bus_req(&req, 1), f);
}

#[test]
fn kat_small_messages() {
    // PING request and response.
    let f = [2, 3, 0, 0, 9, 0, 12, 0, 0x78, 0x56, 0x34, 0x12];
    assert_eq!(
        decode_bus_request(&f).unwrap().1,
        BusRequest::Ping { data: 0x1234_5678 }
    );
    let r = [3, 3, 0, 0, 9, 0, 12, 0, 0x78, 0x56, 0x34, 0x12];
    let (h, _) = decode_bus_request(&f).unwrap();
    assert_eq!(
        enc_bus_resp(
            &BusResponse::Ping { data: 0x1234_5678 },
            GetDevicesOrder::CountThenNext,
            &h
        ),
        r
    );
    // EVENT_DEVICE: device 3 removed.
    let f = [2, 0x40, 0, 0, 0, 0, 12, 0, 3, 0, 2, 0];
    let ev = BusEvent::Device {
        dev_num: 3,
        state: DEVICE_STATE_REMOVED,
    };
    assert_eq!(decode_bus_event(&f).unwrap().1, ev);
    assert_eq!(enc_bus_event(&ev), f);
}

// ---- rejection rules -------------------------------------------------------------------------

#[test]
fn unknown_ids() {
    for id in [0x00, 0x01, 0x04, 0x40, 0x80, 0x85] {
        let f = frame(2, id, 0, 0, &[0; 4]);
        assert_eq!(decode_bus_request(&f), Err(DecodeError::UnknownId(id)));
    }
    for id in [0x02, 0x03, 0x41, 0xc0] {
        let f = frame(2, id, 0, 0, &[0; 4]);
        assert_eq!(decode_bus_event(&f), Err(DecodeError::UnknownId(id)));
    }
    let f = frame(3, 0x03, 0, 0, &[0; 4]);
    for order in ORDERS {
        assert_eq!(
            decode_bus_response(&f, order, 0x02),
            Err(DecodeError::UnknownId(0x03))
        );
        let f = frame(3, 0x80, 0, 0, &[0; 4]);
        assert_eq!(
            decode_bus_response(&f, order, 0x80),
            Err(DecodeError::UnknownId(0x80))
        );
    }
}

#[test]
fn fields_out_of_range() {
    // EVENT_DEVICE state 0.
    let f = frame(2, 0x40, 0, 0, &[1, 0, 0, 0]);
    assert_eq!(decode_bus_event(&f), Err(DecodeError::Range));
}

#[test]
fn bus_messages_need_dev_num_zero() {
    let req = frame(2, 0x03, 1, 1, &[0; 4]);
    assert_eq!(decode_bus_request(&req), Err(DecodeError::Range));
    let resp = frame(3, 0x03, 0x100, 1, &[0; 4]);
    for order in ORDERS {
        assert_eq!(
            decode_bus_response(&resp, order, 0x03),
            Err(DecodeError::Range)
        );
    }
    let ev = frame(2, 0x40, 5, 0, &[5, 0, 1, 0]);
    assert_eq!(decode_bus_event(&ev), Err(DecodeError::Range));
    // The encoders always write dev_num 0, whatever the request header says.
    let f = enc_bus_resp(
        &BusResponse::Ping { data: 1 },
        GetDevicesOrder::CountThenNext,
        &req_header(2, 0x03, 9, 4),
    );
    assert_eq!(&f[2..4], &[0, 0]);
}

#[test]
fn get_devices_bitmap_length() {
    for order in ORDERS {
        for (count, bitmap_len, ok) in [
            (16u16, 2usize, true),
            (16, 1, false),
            (16, 3, false),
            (9, 2, true),
            (9, 1, false),
            (255, 32, true),
            (255, 31, false),
            (256, 32, true),
            (0, 0, true),
            (0, 1, false),
        ] {
            let mut p = vec![0, 0];
            let c = count.to_le_bytes();
            match order {
                GetDevicesOrder::CountThenNext => p.extend_from_slice(&[c[0], c[1], 0, 0]),
                GetDevicesOrder::NextThenCount => p.extend_from_slice(&[0, 0, c[0], c[1]]),
            }
            p.extend(core::iter::repeat_n(0xff, bitmap_len));
            let f = frame(3, 0x02, 0, 1, &p);
            let r = decode_bus_response(&f, order, 0x02);
            if ok {
                assert!(
                    matches!(r, Ok((_, BusResponse::Devices { count: c, bitmap, .. })) if c == count && bitmap.len() == bitmap_len)
                );
            } else {
                assert_eq!(
                    r,
                    Err(DecodeError::BadSize {
                        got: 14 + bitmap_len,
                        need: 14 + usize::from(count).div_ceil(8)
                    }),
                    "{order:?} {count} {bitmap_len}"
                );
            }
        }
    }
}

// ---- encoding errors -------------------------------------------------------------------------

#[test]
fn encode_too_small_buffer_and_no_overrun() {
    let mut tiny = [0u8; 4];
    assert_eq!(
        BusRequest::Ping { data: 1 }.encode(0, &mut tiny),
        Err(EncodeError::TooBig { need: 12 })
    );
    assert_eq!(
        BusEvent::Device {
            dev_num: 0,
            state: 1
        }
        .encode(&mut tiny),
        Err(EncodeError::TooBig { need: 12 })
    );
    assert_eq!(
        BusResponse::Ping { data: 1 }.encode(
            GetDevicesOrder::CountThenNext,
            &req_header(2, 3, 0, 0),
            &mut tiny
        ),
        Err(EncodeError::TooBig { need: 12 })
    );
}

#[test]
fn encode_unrepresentable() {
    let mut out = [0u8; 128];
    // Bus: bitmap length, wrong request, state 0.
    let gd = req_header(2, 0x02, 0, 1);
    for (count, bitmap) in [(16u16, &[0u8][..]), (8, &[0, 0][..]), (0, &[0][..])] {
        let r = BusResponse::Devices {
            offset: 0,
            count,
            next_offset: 0,
            bitmap,
        };
        assert_eq!(
            r.encode(GetDevicesOrder::NextThenCount, &gd, &mut out),
            Err(EncodeError::Unrepresentable)
        );
    }
    assert_eq!(
        BusResponse::Ping { data: 0 }.encode(GetDevicesOrder::NextThenCount, &gd, &mut out),
        Err(EncodeError::Unrepresentable)
    );
    assert_eq!(
        BusEvent::Device {
            dev_num: 1,
            state: 0
        }
        .encode(&mut out),
        Err(EncodeError::Unrepresentable)
    );
}

// ---- properties ------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn typed_bus_round_trip(
        w in prop::array::uniform4(any::<u32>()),
        h in prop::array::uniform3(any::<u16>()),
        data in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut out = [0u8; 256];
        for req in [BusRequest::GetDevices { offset: h[0], count: h[1] }, BusRequest::Ping { data: w[0] }] {
            let n = req.encode(h[2], &mut out).unwrap();
            prop_assert_eq!(decode_bus_request(&out[..n]).unwrap().1, req);
        }
        let count = h[1] % 320;
        let bitmap = &data[..usize::from(count).div_ceil(8).min(data.len())];
        for order in ORDERS {
            let resp = BusResponse::Devices { offset: h[0], count, next_offset: h[2], bitmap };
            let r = resp.encode(order, &req_header(2, 0x02, 0, 1), &mut out);
            if bitmap.len() == usize::from(count).div_ceil(8) {
                prop_assert_eq!(decode_bus_response(&out[..r.unwrap()], order, 0x02).unwrap().1, resp);
            } else {
                prop_assert_eq!(r, Err(EncodeError::Unrepresentable));
            }
        }
        let ev = BusEvent::Device { dev_num: h[0], state: h[1] };
        match ev.encode(&mut out) {
            Ok(n) => prop_assert_eq!(decode_bus_event(&out[..n]).unwrap().1, ev),
            Err(e) => prop_assert!(h[1] == 0 && e == EncodeError::Unrepresentable),
        }
    }
}
