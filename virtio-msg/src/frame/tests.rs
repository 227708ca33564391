//! Tests of the rules every decoder shares (truncation, `msg_size`, the type byte), run on a
//! valid sample of every message, and properties over arbitrary frames: each decoder either
//! refuses a frame or decodes it to a value that re-encodes and decodes to the same value.

use alloc::{vec, vec::Vec};

use proptest::prelude::*;

use super::testing::{frame, req_header, set_size};
use crate::{
    bus::{
        BusEvent, BusRequest, BusResponse, DEVICE_STATE_READY,
        codec::{decode_bus_event, decode_bus_request, decode_bus_response},
        samples::{ORDERS, all_bus_responses, enc_bus_event, enc_bus_req, enc_bus_resp},
    },
    error::DecodeError,
    header::Header,
    ids::bus as bid,
    transport::{
        event::decode_event,
        request::decode_request,
        response::decode_response,
        samples::{
            LAYOUTS, all_events, all_requests, all_responses, answered_id, enc_event, enc_req,
            enc_resp,
        },
    },
};

/// Applies a rejection check to every valid sample frame, with its decoder.
fn for_every_sample(
    mut check: impl FnMut(&str, Vec<u8>, &dyn Fn(&[u8]) -> Result<Header, DecodeError>),
) {
    for layout in LAYOUTS {
        for req in all_requests(layout) {
            let f = enc_req(&req, layout, 3, 1);
            check("request", f, &move |f: &[u8]| {
                decode_request(f, layout).map(|(h, _)| h)
            });
        }
        for resp in all_responses(layout) {
            let id = answered_id(&resp);
            let f = enc_resp(&resp, layout, &req_header(0, id, 3, 1));
            check("response", f, &move |f: &[u8]| {
                decode_response(f, layout, id).map(|(h, _)| h)
            });
        }
    }
    for ev in all_events() {
        check("event", enc_event(&ev, 3), &|f: &[u8]| {
            decode_event(f).map(|(h, _)| h)
        });
    }
    for req in [
        BusRequest::GetDevices {
            offset: 0,
            count: 255,
        },
        BusRequest::Ping { data: 5 },
    ] {
        check("bus request", enc_bus_req(&req, 1), &|f: &[u8]| {
            decode_bus_request(f).map(|(h, _)| h)
        });
    }
    for order in ORDERS {
        for resp in all_bus_responses() {
            let id = match resp {
                BusResponse::Devices { .. } => bid::GET_DEVICES,
                BusResponse::Ping { .. } => bid::PING,
            };
            let f = enc_bus_resp(&resp, order, &req_header(2, id, 0, 1));
            check("bus response", f, &move |f: &[u8]| {
                decode_bus_response(f, order, id).map(|(h, _)| h)
            });
        }
    }
    let ev = BusEvent::Device {
        dev_num: 1,
        state: DEVICE_STATE_READY,
    };
    check("bus event", enc_bus_event(&ev), &|f: &[u8]| {
        decode_bus_event(f).map(|(h, _)| h)
    });
}

// ---- rejection rules -------------------------------------------------------------------------

#[test]
fn truncated_frames() {
    for_every_sample(|what, f, decode| {
        for len in 0..8 {
            assert_eq!(
                decode(&f[..len]),
                Err(DecodeError::Truncated),
                "{what} len {len}"
            );
        }
    });
}

#[test]
fn msg_size_outside_frame() {
    for_every_sample(|what, f, decode| {
        let n = f.len();
        // msg_size larger than the frame the bus delivered.
        let mut g = f.clone();
        set_size(&mut g, n + 1);
        assert!(
            matches!(decode(&g), Err(DecodeError::BadSize { .. })),
            "{what}"
        );
        // msg_size smaller than the header.
        for size in [0, 7] {
            let mut g = f.clone();
            set_size(&mut g, size);
            assert!(
                matches!(decode(&g), Err(DecodeError::BadSize { .. })),
                "{what}"
            );
        }
        // Frame shortened by one byte (msg_size now points past it).
        let want = if n > 8 {
            Err(DecodeError::BadSize { got: n, need: 8 })
        } else {
            Err(DecodeError::Truncated)
        };
        assert_eq!(decode(&f[..n - 1]), want, "{what}");
    });
}

#[test]
fn msg_size_plus_minus_one() {
    for_every_sample(|what, f, decode| {
        let n = f.len();
        let mut longer = f.clone();
        longer.push(0);
        set_size(&mut longer, n + 1);
        assert!(
            matches!(decode(&longer), Err(DecodeError::BadSize { got, .. }) if got == n + 1),
            "{what} +1: {f:02x?}"
        );
        if n > 8 {
            let mut shorter = f.clone();
            set_size(&mut shorter, n - 1);
            assert!(
                matches!(decode(&shorter), Err(DecodeError::BadSize { got, .. }) if got == n - 1),
                "{what} -1: {f:02x?}"
            );
        }
    });
}

#[test]
fn wrong_type_byte() {
    for_every_sample(|what, f, decode| {
        let good = f[0];
        for ty in 0..4u8 {
            let mut g = f.clone();
            g[0] = ty;
            if ty == good {
                assert!(decode(&g).is_ok());
            } else {
                assert_eq!(decode(&g), Err(DecodeError::BadType(ty)), "{what}");
            }
            // Reserved type bits are ignored.
            g[0] = ty | 0xfc;
            if ty == good {
                assert_eq!(decode(&g).unwrap().msg_type, good, "{what}");
            } else {
                assert_eq!(decode(&g), Err(DecodeError::BadType(ty)), "{what}");
            }
        }
    });
}

// ---- properties ------------------------------------------------------------------------------

/// Runs every decoder on `f`; for each success, re-encodes and checks decode(encode(x)) == x
/// and that the header fields survive.
fn check_stable(f: &[u8]) {
    let mut out = vec![0u8; 70_000];
    for layout in LAYOUTS {
        if let Ok((h, x)) = decode_request(f, layout) {
            assert!(usize::from(h.msg_size) <= f.len());
            let n = x.encode(layout, h.dev_num, h.token, &mut out).unwrap();
            let (h2, y) = decode_request(&out[..n], layout).unwrap();
            assert_eq!(x, y);
            assert_eq!(
                (h2.msg_id, h2.dev_num, h2.token),
                (h.msg_id, h.dev_num, h.token)
            );
        }
        for id in 0..=0x0du8 {
            if let Ok((h, x)) = decode_response(f, layout, id) {
                let req = req_header(0, id, h.dev_num, h.token);
                let n = x.encode(layout, &req, &mut out).unwrap();
                let (h2, y) = decode_response(&out[..n], layout, id).unwrap();
                assert_eq!(x, y);
                assert_eq!(
                    (h2.msg_id, h2.dev_num, h2.token),
                    (h.msg_id, h.dev_num, h.token)
                );
            }
        }
    }
    if let Ok((h, x)) = decode_event(f) {
        let n = x.encode(h.dev_num, &mut out).unwrap();
        assert_eq!(decode_event(&out[..n]).unwrap().1, x);
    }
    if let Ok((h, x)) = decode_bus_request(f) {
        let n = x.encode(h.token, &mut out).unwrap();
        assert_eq!(decode_bus_request(&out[..n]).unwrap().1, x);
    }
    for order in ORDERS {
        for id in [0x02, 0x03] {
            if let Ok((h, x)) = decode_bus_response(f, order, id) {
                let n = x
                    .encode(order, &req_header(2, id, 0, h.token), &mut out)
                    .unwrap();
                assert_eq!(decode_bus_response(&out[..n], order, id).unwrap().1, x);
            }
        }
    }
    if let Ok((_, x)) = decode_bus_event(f) {
        let n = x.encode(&mut out).unwrap();
        assert_eq!(decode_bus_event(&out[..n]).unwrap().1, x);
    }
}

/// (type, id, fixed payload length, variable unit: bytes per declared unit, 0 = fixed size)
/// of every message shape in either layout.
const SHAPES: &[(u8, u8, usize, usize)] = &[
    (0, 0x02, 0, 0),
    (0, 0x03, 8, 0),
    (0, 0x04, 8, 4),
    (0, 0x05, 8, 0),
    (0, 0x06, 12, 1),
    (0, 0x07, 0, 0),
    (0, 0x08, 4, 0),
    (0, 0x09, 4, 0),
    (0, 0x0a, 40, 0),
    (0, 0x0a, 36, 0),
    (0, 0x0b, 4, 0),
    (0, 0x0c, 4, 0),
    (0, 0x40, 16, 1),
    (0, 0x41, 8, 0),
    (0, 0x42, 4, 0),
    (1, 0x02, 24, 0),
    (1, 0x02, 44, 0),
    (1, 0x03, 8, 4),
    (1, 0x04, 0, 0),
    (1, 0x05, 12, 1),
    (1, 0x06, 12, 0),
    (1, 0x06, 12, 1),
    (1, 0x07, 4, 0),
    (1, 0x08, 4, 0),
    (1, 0x09, 40, 0),
    (1, 0x0a, 0, 0),
    (1, 0x0b, 0, 0),
    (1, 0x0c, 12, 0),
    (1, 0x0c, 24, 0),
    (2, 0x02, 4, 0),
    (2, 0x03, 4, 0),
    (2, 0x40, 4, 0),
    (3, 0x02, 6, 1),
    (3, 0x03, 4, 0),
];

/// Frames that are mostly well formed: a known message shape whose declared length (when
/// `fix`) matches the payload and whose reserved words are mostly clear, with random field
/// values, random reserved type bits and random bus padding. Unfixed frames probe the checks.
fn plausible_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(SHAPES),
        any::<u8>(),
        prop_oneof![Just(0u16), any::<u16>()],
        any::<u16>(),
        0usize..20,
        prop::collection::vec(any::<u8>(), 64 + 20 * 8),
        prop::sample::select(vec![0u8, 1, 2, 3, 3, 3]),
        0usize..8,
    )
        .prop_map(
            |((ty, id, fixed, unit), junk, dev, token, k, bytes, fix, pad)| {
                // `fix`: 0 = leave random, 1 = declared length only, 2 = reserved only, 3 = both.
                let mut units = if unit == 0 { 0 } else { k };
                if ty == 3 && id == 0x02 {
                    units = units.div_ceil(8) * 8; // bitmap bytes = ceil(count / 8)
                }
                let len = fixed + units * unit.max(1) / if ty == 3 { 8 } else { 1 };
                let mut p = bytes[..len].to_vec();
                let put32 = |p: &mut Vec<u8>, off: usize, v: u32| {
                    p[off..off + 4].copy_from_slice(&v.to_le_bytes())
                };
                let n = u32::try_from(units).unwrap();
                if fix & 1 != 0 {
                    match (ty, id) {
                        (0, 0x04) | (1, 0x03) => put32(&mut p, 4, n),
                        (0, 0x06) | (1, 0x05 | 0x06) => put32(&mut p, 8, n),
                        (0, 0x40) => put32(&mut p, 12, n),
                        (3, 0x02) => {
                            let count = u16::try_from(units).unwrap().to_le_bytes();
                            p[2..4].copy_from_slice(&count);
                            p[4..6].copy_from_slice(&count);
                        }
                        _ => {}
                    }
                }
                if fix & 2 != 0 {
                    match (ty, id, len) {
                        (0, 0x0a, 40) => {
                            put32(&mut p, 4, u32::from(junk & 1));
                            put32(&mut p, 12, 0);
                        }
                        (0, 0x0a, 36) => put32(&mut p, 4, 0),
                        (1, 0x09, _) => put32(&mut p, 12, u32::from(junk & 1)),
                        (1, 0x0c, 24) => put32(&mut p, 4, 0),
                        (1, 0x02, 24) => p[8] &= 0xe0,
                        (1, 0x02, 44) => p[27] &= 0x07,
                        _ => {}
                    }
                }
                let mut f = frame(ty | (junk & 0xfc), id, dev, token, &p);
                f.extend(core::iter::repeat_n(junk, pad));
                f
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_never_panic(f in prop::collection::vec(any::<u8>(), 0..300)) {
        check_stable(&f);
    }

    #[test]
    fn plausible_frames_decode_stably(f in plausible_frame()) {
        check_stable(&f);
    }
}
