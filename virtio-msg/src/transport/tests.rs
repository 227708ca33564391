//! Tests of the transport codecs: round trips in both layouts, known-answer vectors, the
//! transport-specific rejection and encoding rules, and round-trip properties of typed values.
//! The rules every decoder shares are tested in `frame`.

use alloc::{vec, vec::Vec};

use proptest::prelude::*;

use super::{
    DeviceEvent, DeviceInfo, FeatureBlocks, SET_VQUEUE_OP_ENABLE, TransportRequest,
    TransportResponse,
    event::decode_event,
    request::{decode_request, request_id},
    response::decode_response,
    samples::{
        CFG, LAYOUTS, UUID, all_events, all_requests, all_responses, answered_id, enc_event,
        enc_req, enc_resp,
    },
};
use crate::{
    error::{DecodeError, EncodeError},
    frame::testing::{frame, le32s, poke32, req_header},
    ids::transport as tid,
    layout::Layout,
};

// ---- round trips -----------------------------------------------------------------------------

#[test]
fn requests_round_trip_both_layouts() {
    for layout in LAYOUTS {
        for req in all_requests(layout) {
            let f = enc_req(&req, layout, 0x1234, 0xbeef);
            let (h, got) = decode_request(&f, layout).unwrap();
            assert_eq!(got, req, "{layout:?}");
            assert_eq!(h.msg_type, 0x00);
            assert_eq!(h.msg_id, request_id(&req));
            assert_eq!(h.msg_id, req.msg_id());
            assert_eq!(h.dev_num, 0x1234);
            assert_eq!(h.token, 0xbeef);
            assert_eq!(usize::from(h.msg_size), f.len());
            // Bus padding after msg_size is ignored.
            let mut padded = f.clone();
            padded.extend_from_slice(&[0xa5; 13]);
            assert_eq!(decode_request(&padded, layout).unwrap().1, req);
        }
    }
}

#[test]
fn responses_round_trip_both_layouts() {
    for layout in LAYOUTS {
        for resp in all_responses(layout) {
            let id = answered_id(&resp);
            let req = req_header(0, id, 7, 0x55aa);
            let f = enc_resp(&resp, layout, &req);
            let (h, got) = decode_response(&f, layout, id).unwrap();
            assert_eq!(got, resp, "{layout:?}");
            assert_eq!(h.msg_type, 0x01);
            assert_eq!((h.msg_id, h.dev_num, h.token), (id, 7, 0x55aa));
            assert_eq!(usize::from(h.msg_size), f.len());
            let mut padded = f.clone();
            padded.extend_from_slice(&[0xff; 3]);
            assert_eq!(decode_response(&padded, layout, id).unwrap().1, resp);
        }
    }
}

#[test]
fn events_round_trip() {
    for ev in all_events() {
        let f = enc_event(&ev, 9);
        let (h, got) = decode_event(&f).unwrap();
        assert_eq!(got, ev);
        assert_eq!((h.msg_type, h.dev_num, h.token), (0x00, 9, 0));
        assert_eq!(usize::from(h.msg_size), f.len());
    }
}

#[test]
fn request_ids() {
    let ids: Vec<u8> = all_requests(Layout::V1Review)
        .iter()
        .map(request_id)
        .collect();
    assert_eq!(
        ids,
        [
            0x02, 0x03, 0x04, 0x04, 0x05, 0x05, 0x06, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,
            0x41, 0x0a
        ]
    );
}

// ---- known-answer vectors ------------------------------------------------------------------------

#[test]
fn kat_get_device_info_dec2025() {
    let bytes = [
        0x01, 0x02, 0x03, 0x00, 0x01, 0x00, 0x20,
        0x00, // header: resp, id 2, dev 3, token 1, 32
        0x04, 0x00, 0x00, 0x00, // device_id 4
        0x51, 0x45, 0x4d, 0x55, // vendor 'QEMU'
        0x40, 0x00, 0x00, 0x00, // 64 feature bits
        0x08, 0x00, 0x00, 0x00, // config_size 8
        0x02, 0x00, 0x00, 0x00, // max_virtqueues 2
        0x01, 0x00, 0x01, 0x00, // admin start 1, count 1
    ];
    let info = DeviceInfo {
        device_id: 4,
        vendor_id: 0x554d_4551,
        device_uuid: [0; 16],
        num_feature_bits: 64,
        config_size: 8,
        max_virtqueues: 2,
        admin_vq_start: 1,
        admin_vq_count: 1,
    };
    let (_, got) = decode_response(&bytes, Layout::Pr28, tid::GET_DEVICE_INFO).unwrap();
    assert_eq!(got, TransportResponse::DeviceInfo(info));
    let f = enc_resp(
        &TransportResponse::DeviceInfo(info),
        Layout::Pr28,
        &req_header(0, 2, 3, 1),
    );
    assert_eq!(f, bytes);
}

#[test]
fn kat_get_device_info_v2026() {
    let mut bytes = vec![0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 52, 0x00];
    bytes.extend_from_slice(&le32s(&[4, 0]));
    bytes.extend_from_slice(&UUID);
    bytes.extend_from_slice(&le32s(&[2, 8, 1, 0, 0])); // 2 blocks, config 8, 1 vq, admin 0/0
    let info = DeviceInfo {
        device_id: 4,
        vendor_id: 0,
        device_uuid: UUID,
        num_feature_bits: 64,
        config_size: 8,
        max_virtqueues: 1,
        admin_vq_start: 0,
        admin_vq_count: 0,
    };
    let (_, got) = decode_response(&bytes, Layout::V1Review, 0x02).unwrap();
    assert_eq!(got, TransportResponse::DeviceInfo(info));
    let f = enc_resp(
        &TransportResponse::DeviceInfo(info),
        Layout::V1Review,
        &req_header(0, 2, 0, 0),
    );
    assert_eq!(f, bytes);
}

#[test]
fn kat_set_vqueue_v2026() {
    let mut bytes = vec![0x00, 0x0a, 0x01, 0x00, 0x02, 0x00, 48, 0x00];
    bytes.extend_from_slice(&le32s(&[3, 1, 128, 0]));
    bytes.extend_from_slice(&0x8000_1000u64.to_le_bytes());
    bytes.extend_from_slice(&0x8000_2000u64.to_le_bytes());
    bytes.extend_from_slice(&0x0001_0000_8000_3000u64.to_le_bytes());
    let req = TransportRequest::SetVqueue {
        index: 3,
        flags: SET_VQUEUE_OP_ENABLE,
        size: 128,
        desc_addr: 0x8000_1000,
        driver_addr: 0x8000_2000,
        device_addr: 0x0001_0000_8000_3000,
    };
    assert_eq!(decode_request(&bytes, Layout::V1Review).unwrap().1, req);
    assert_eq!(enc_req(&req, Layout::V1Review, 1, 2), bytes);
}

#[test]
fn kat_g2_set_vqueue_44_and_48_decode_identically() {
    let addrs = [0x4000_0000u64, 0x4000_1000, 0x4000_2000];
    let mut long = vec![0x00, 0x0a, 0x00, 0x00, 0x01, 0x00, 48, 0x00];
    long.extend_from_slice(&le32s(&[1, 0, 256, 0]));
    let mut short = vec![0x00, 0x0a, 0x00, 0x00, 0x01, 0x00, 44, 0x00];
    short.extend_from_slice(&le32s(&[1, 0, 256]));
    for a in addrs {
        long.extend_from_slice(&a.to_le_bytes());
        short.extend_from_slice(&a.to_le_bytes());
    }
    let want = TransportRequest::SetVqueue {
        index: 1,
        flags: 0,
        size: 256,
        desc_addr: addrs[0],
        driver_addr: addrs[1],
        device_addr: addrs[2],
    };
    let (hl, l) = decode_request(&long, Layout::Pr28).unwrap();
    let (hs, s) = decode_request(&short, Layout::Pr28).unwrap();
    assert_eq!(l, want);
    assert_eq!(s, want);
    assert_eq!((hl.msg_size, hs.msg_size), (48, 44));
    // A 44-byte frame padded by the bus to 48 still decodes as the short form.
    let mut padded = short.clone();
    padded.extend_from_slice(&[0xee; 4]);
    assert_eq!(decode_request(&padded, Layout::Pr28).unwrap().1, want);
    // Encoding always produces the 48-byte form.
    assert_eq!(enc_req(&want, Layout::Pr28, 0, 1), long);
    // The 2026 layout knows only 48 bytes.
    assert_eq!(
        decode_request(&short, Layout::V1Review),
        Err(DecodeError::BadSize { got: 44, need: 48 })
    );
    // Reserved word at +4 in the short form.
    let mut bad = short.clone();
    poke32(&mut bad, 4, 1);
    assert_eq!(
        decode_request(&bad, Layout::Pr28),
        Err(DecodeError::Reserved)
    );
}

#[test]
fn kat_small_messages() {
    // EVENT_AVAIL: vq 1, next_offset with wrap bit.
    let f = [0, 0x41, 2, 0, 0, 0, 16, 0, 1, 0, 0, 0, 5, 0, 0, 0x80];
    let ev = TransportRequest::EventAvail {
        vq_index: 1,
        next_offset: 0x8000_0005,
    };
    assert_eq!(decode_request(&f, Layout::Pr28).unwrap().1, ev);
    assert_eq!(enc_req(&ev, Layout::V1Review, 2, 0), f);
    // EVENT_USED.
    let f = [0, 0x42, 2, 0, 0, 0, 12, 0, 1, 0, 0, 0];
    assert_eq!(
        decode_event(&f).unwrap().1,
        DeviceEvent::Used { vq_index: 1 }
    );
    assert_eq!(enc_event(&DeviceEvent::Used { vq_index: 1 }, 2), f);
    // GET_CONFIG request, length 0 (generation only).
    let f = [0, 0x05, 0, 0, 1, 0, 16, 0, 4, 0, 0, 0, 0, 0, 0, 0];
    let req = TransportRequest::GetConfig {
        offset: 4,
        length: 0,
    };
    assert_eq!(decode_request(&f, Layout::V1Review).unwrap().1, req);
    assert_eq!(enc_req(&req, Layout::V1Review, 0, 1), f);
    // EVENT_CONFIG with 2 data bytes.
    let f = [
        0, 0x40, 1, 0, 0, 0, 26, 0, 0x40, 0, 0, 0, 3, 0, 0, 0, 8, 0, 0, 0, 2, 0, 0, 0, 0xab, 0xcd,
    ];
    let ev = DeviceEvent::Config {
        device_status: 0x40,
        generation: 3,
        offset: 8,
        data: &[0xab, 0xcd],
    };
    assert_eq!(decode_event(&f).unwrap().1, ev);
    assert_eq!(enc_event(&ev, 1), f);
}

#[test]
fn kat_get_shm_both_layouts() {
    let mut v26 = vec![1, 0x0c, 0, 0, 1, 0, 32, 0];
    v26.extend_from_slice(&le32s(&[2, 0]));
    v26.extend_from_slice(&0x2_0000_0000u64.to_le_bytes());
    v26.extend_from_slice(&0x10_0000_0000u64.to_le_bytes());
    let want = TransportResponse::Shm {
        index: 2,
        length: 0x2_0000_0000,
        address: 0x10_0000_0000,
    };
    assert_eq!(
        decode_response(&v26, Layout::V1Review, 0x0c).unwrap().1,
        want
    );
    assert_eq!(
        enc_resp(&want, Layout::V1Review, &req_header(0, 0x0c, 0, 1)),
        v26
    );

    let d25 = frame(1, 0x0c, 0, 1, &le32s(&[2, 0x1000, 0x8000_0000]));
    let want = TransportResponse::Shm {
        index: 2,
        length: 0x1000,
        address: 0x8000_0000,
    };
    assert_eq!(decode_response(&d25, Layout::Pr28, 0x0c).unwrap().1, want);
    assert_eq!(
        enc_resp(&want, Layout::Pr28, &req_header(0, 0x0c, 0, 1)),
        d25
    );
    // Each layout refuses the other's size.
    assert!(matches!(
        decode_response(&d25, Layout::V1Review, 0x0c),
        Err(DecodeError::BadSize { got: 20, need: 32 })
    ));
    assert!(matches!(
        decode_response(&v26, Layout::Pr28, 0x0c),
        Err(DecodeError::BadSize { got: 32, need: 20 })
    ));
}

#[test]
fn kat_features_and_config() {
    let f = frame(0, 0x04, 0, 1, &le32s(&[0, 2, 0x0000_0001, 0x0000_0003]));
    let (_, req) = decode_request(&f, Layout::Pr28).unwrap();
    let TransportRequest::SetDriverFeatures {
        block_index,
        blocks,
    } = req
    else {
        panic!("{req:?}");
    };
    assert_eq!(block_index, 0);
    assert_eq!(blocks.iter().collect::<Vec<_>>(), [1, 3]);
    let f = frame(
        1,
        0x05,
        0,
        1,
        &[1, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 9, 8, 7],
    );
    assert_eq!(
        decode_response(&f, Layout::V1Review, 0x05).unwrap().1,
        TransportResponse::Config {
            generation: 1,
            offset: 4,
            data: &[9, 8, 7]
        }
    );
}

// ---- rejection rules -------------------------------------------------------------------------

#[test]
fn unknown_ids() {
    for layout in LAYOUTS {
        for id in [0x00, 0x01, 0x0d, 0x3f, 0x40, 0x42, 0x43, 0x80, 0xc0, 0xff] {
            let f = frame(0, id, 0, 1, &[0; 8]);
            assert_eq!(decode_request(&f, layout), Err(DecodeError::UnknownId(id)));
        }
        // A response to a different request.
        let f = frame(1, 0x07, 0, 1, &[0; 4]);
        assert_eq!(
            decode_response(&f, layout, 0x08),
            Err(DecodeError::UnknownId(0x07))
        );
        // Requests without responses, and unknown ids.
        for id in [0x00, 0x41, 0x40, 0x80] {
            let f = frame(1, id, 0, 1, &[0; 8]);
            assert_eq!(
                decode_response(&f, layout, id),
                Err(DecodeError::UnknownId(id))
            );
        }
    }
    for id in [0x02, 0x05, 0x41, 0x43, 0xc2] {
        let f = frame(0, id, 0, 0, &[0; 4]);
        assert_eq!(decode_event(&f), Err(DecodeError::UnknownId(id)));
    }
}

#[test]
fn reserved_fields_must_be_zero() {
    let set_vq = |layout| {
        enc_req(
            &TransportRequest::SetVqueue {
                index: 0,
                flags: 0,
                size: 8,
                desc_addr: 0x1000,
                driver_addr: 0x2000,
                device_addr: 0x3000,
            },
            layout,
            0,
            1,
        )
    };
    // Dec-2025 SET_VQUEUE: words at +4 and +12. 2026: word at +12.
    for (layout, off) in [
        (Layout::Pr28, 4),
        (Layout::Pr28, 12),
        (Layout::V1Review, 12),
    ] {
        let mut f = set_vq(layout);
        assert!(decode_request(&f, layout).is_ok());
        poke32(&mut f, off, 0x8000_0000);
        assert_eq!(
            decode_request(&f, layout),
            Err(DecodeError::Reserved),
            "{layout:?} +{off}"
        );
    }
    // Dec-2025 GET_VQUEUE response word at +12.
    let mut f = frame(1, 0x09, 0, 1, &[0; 40]);
    assert!(decode_response(&f, Layout::Pr28, 0x09).is_ok());
    poke32(&mut f, 12, 1);
    assert_eq!(
        decode_response(&f, Layout::Pr28, 0x09),
        Err(DecodeError::Reserved)
    );
    // 2026 GET_SHM response word at +4.
    let mut f = frame(1, 0x0c, 0, 1, &[0; 24]);
    assert!(decode_response(&f, Layout::V1Review, 0x0c).is_ok());
    poke32(&mut f, 4, 1);
    assert_eq!(
        decode_response(&f, Layout::V1Review, 0x0c),
        Err(DecodeError::Reserved)
    );
}

#[test]
fn fields_out_of_range() {
    // 2026 SET_VQUEUE flags: only 0 and 1.
    let mut f = frame(0, 0x0a, 0, 1, &[0; 40]);
    for (flags, ok) in [
        (0, true),
        (1, true),
        (2, false),
        (3, false),
        (0x8000_0000, false),
    ] {
        poke32(&mut f, 4, flags);
        assert_eq!(decode_request(&f, Layout::V1Review).is_ok(), ok, "{flags}");
        if !ok {
            assert_eq!(
                decode_request(&f, Layout::V1Review),
                Err(DecodeError::Range)
            );
        }
    }
    // 2026 GET_VQUEUE response flags: only bit 0.
    let mut f = frame(1, 0x09, 0, 1, &[0; 40]);
    for (flags, ok) in [(0, true), (1, true), (2, false), (0x8000_0001, false)] {
        poke32(&mut f, 12, flags);
        let r = decode_response(&f, Layout::V1Review, 0x09);
        assert_eq!(r.is_ok(), ok, "{flags}");
        if !ok {
            assert_eq!(r, Err(DecodeError::Range));
        }
    }
    // Dec-2025 GET_DEVICE_INFO: feature bits multiple of 32.
    let mut f = frame(1, 0x02, 0, 1, &[0; 24]);
    for (bits, ok) in [(0, true), (32, true), (64, true), (33, false), (63, false)] {
        poke32(&mut f, 8, bits);
        let r = decode_response(&f, Layout::Pr28, 0x02);
        assert_eq!(r.is_ok(), ok, "{bits}");
        if !ok {
            assert_eq!(r, Err(DecodeError::Range));
        }
    }
    // 2026 GET_DEVICE_INFO: num_feature_blocks * 32 must fit 32 bits.
    let mut f = frame(1, 0x02, 0, 1, &[0; 44]);
    poke32(&mut f, 24, 0x0800_0000);
    assert_eq!(
        decode_response(&f, Layout::V1Review, 0x02),
        Err(DecodeError::Range)
    );
    poke32(&mut f, 24, 0x07ff_ffff);
    let (_, r) = decode_response(&f, Layout::V1Review, 0x02).unwrap();
    assert!(matches!(r, TransportResponse::DeviceInfo(i) if i.num_feature_bits == 0xffff_ffe0));
}

#[test]
fn declared_lengths_must_match() {
    for layout in LAYOUTS {
        // SET_CONFIG: length larger than the data, smaller, and overflowing.
        for (len, data) in [(5u32, 4usize), (3, 4), (0xffff_ffff, 4), (0x8000_0000, 0)] {
            let mut p = le32s(&[0, 0, len]);
            p.extend(core::iter::repeat_n(0xaa, data));
            let f = frame(0, 0x06, 0, 1, &p);
            assert!(
                matches!(decode_request(&f, layout), Err(DecodeError::BadSize { got, .. }) if got == f.len()),
                "{len} {data}"
            );
        }
        // SET_DRIVER_FEATURES num_blocks vs words present (including a huge count).
        for (num, words) in [(1u32, 2usize), (3, 2), (0x4000_0000, 0), (0xffff_ffff, 1)] {
            let mut p = le32s(&[0, num]);
            p.extend(le32s(&vec![7; words]));
            let f = frame(0, 0x04, 0, 1, &p);
            assert!(matches!(
                decode_request(&f, layout),
                Err(DecodeError::BadSize { .. })
            ));
        }
        // Truncated fixed part of a variable message.
        let f = frame(0, 0x06, 0, 1, &[0; 11]);
        assert_eq!(
            decode_request(&f, layout),
            Err(DecodeError::BadSize { got: 19, need: 20 })
        );
        // GET_CONFIG response data exceeding the message / the frame.
        let mut p = le32s(&[1, 0, 8]);
        p.extend_from_slice(&[1, 2, 3, 4]);
        let f = frame(1, 0x05, 0, 1, &p);
        assert_eq!(
            decode_response(&f, layout, 0x05),
            Err(DecodeError::BadSize { got: 24, need: 28 })
        );
        // GET_DEVICE_FEATURES response.
        let f = frame(1, 0x03, 0, 1, &le32s(&[0, 2, 1]));
        assert_eq!(
            decode_response(&f, layout, 0x03),
            Err(DecodeError::BadSize { got: 20, need: 24 })
        );
    }
    // EVENT_CONFIG.
    let f = frame(0, 0x40, 0, 0, &le32s(&[0, 0, 0, 2]));
    assert_eq!(
        decode_event(&f),
        Err(DecodeError::BadSize { got: 24, need: 26 })
    );
    let mut p = le32s(&[0, 0, 0, 0xffff_ffff]);
    p.push(1);
    let f = frame(0, 0x40, 0, 0, &p);
    assert!(matches!(
        decode_event(&f),
        Err(DecodeError::BadSize { got: 25, .. })
    ));
}

#[test]
fn set_config_response_optional_echo() {
    for layout in LAYOUTS {
        let plain = frame(1, 0x06, 0, 1, &le32s(&[3, 0, 4]));
        let mut p = le32s(&[3, 0, 4]);
        p.extend_from_slice(&CFG);
        let echo = frame(1, 0x06, 0, 1, &p);
        let want = TransportResponse::SetConfig {
            generation: 3,
            offset: 0,
            length: 4,
        };
        assert_eq!(decode_response(&plain, layout, 0x06).unwrap().1, want);
        assert_eq!(decode_response(&echo, layout, 0x06).unwrap().1, want);
        // An echo must be exactly `length` bytes.
        for extra in [1usize, 3, 5] {
            let mut p = le32s(&[3, 0, 4]);
            p.extend(core::iter::repeat_n(0, extra));
            let f = frame(1, 0x06, 0, 1, &p);
            assert_eq!(
                decode_response(&f, layout, 0x06),
                Err(DecodeError::BadSize {
                    got: 20 + extra,
                    need: 24
                })
            );
        }
        // Rejected write (length 0): only the 12-byte form.
        let f = frame(1, 0x06, 0, 1, &le32s(&[3, 0, 0, 0]));
        assert!(matches!(
            decode_response(&f, layout, 0x06),
            Err(DecodeError::BadSize { .. })
        ));
    }
}

#[test]
fn empty_requests_must_be_empty() {
    for layout in LAYOUTS {
        for id in [0x02, 0x07] {
            let f = frame(0, id, 0, 1, &[0; 4]);
            assert_eq!(
                decode_request(&f, layout),
                Err(DecodeError::BadSize { got: 12, need: 8 })
            );
        }
        for id in [0x04, 0x0a, 0x0b] {
            let f = frame(1, id, 0, 1, &[0; 4]);
            assert_eq!(
                decode_response(&f, layout, id),
                Err(DecodeError::BadSize { got: 12, need: 8 })
            );
        }
    }
}

// ---- encoding errors -------------------------------------------------------------------------

#[test]
fn encode_too_small_buffer_and_no_overrun() {
    for layout in LAYOUTS {
        for req in all_requests(layout) {
            let need = enc_req(&req, layout, 0, 1).len();
            let mut out = vec![0xaa; need - 1];
            assert_eq!(
                req.encode(layout, 0, 1, &mut out),
                Err(EncodeError::TooBig { need })
            );
            // Exactly enough: fits; bytes after msg_size stay untouched.
            let mut out = vec![0xaa; need + 16];
            assert_eq!(req.encode(layout, 0, 1, &mut out), Ok(need));
            assert!(out[need..].iter().all(|&b| b == 0xaa));
            assert_eq!(req.encode(layout, 0, 1, &mut out[..need]), Ok(need));
        }
        for resp in all_responses(layout) {
            let h = req_header(0, answered_id(&resp), 0, 1);
            let need = enc_resp(&resp, layout, &h).len();
            let mut out = vec![0xaa; need + 4];
            assert_eq!(
                resp.encode(layout, &h, &mut out[..need - 1]),
                Err(EncodeError::TooBig { need })
            );
            assert_eq!(resp.encode(layout, &h, &mut out), Ok(need));
            assert!(out[need..].iter().all(|&b| b == 0xaa));
        }
    }
    let ev = DeviceEvent::Config {
        device_status: 0,
        generation: 0,
        offset: 0,
        data: &CFG,
    };
    assert_eq!(
        ev.encode(0, &mut [0; 27]),
        Err(EncodeError::TooBig { need: 28 })
    );
}

#[test]
fn encode_over_u16_is_too_big() {
    let data = vec![0u8; 65536 - 20 + 1];
    let mut out = vec![0u8; 70000];
    let req = TransportRequest::SetConfig {
        generation: 0,
        offset: 0,
        data: &data,
    };
    assert_eq!(
        req.encode(Layout::V1Review, 0, 0, &mut out),
        Err(EncodeError::TooBig { need: 65537 })
    );
    // The largest message that fits u16.
    let req = TransportRequest::SetConfig {
        generation: 0,
        offset: 0,
        data: &data[..65535 - 20],
    };
    assert_eq!(req.encode(Layout::V1Review, 0, 0, &mut out), Ok(65535));
    assert_eq!(decode_request(&out, Layout::V1Review).unwrap().1, req);
}

#[test]
fn encode_unrepresentable() {
    let info = DeviceInfo {
        device_id: 1,
        num_feature_bits: 64,
        ..DeviceInfo::default()
    };
    let gdi = req_header(0, 0x02, 0, 1);
    let mut out = [0u8; 128];
    let bad_infos = [
        (
            Layout::Pr28,
            DeviceInfo {
                admin_vq_start: 0x1_0000,
                ..info
            },
        ),
        (
            Layout::Pr28,
            DeviceInfo {
                admin_vq_count: 0x1_0000,
                ..info
            },
        ),
        (
            Layout::Pr28,
            DeviceInfo {
                num_feature_bits: 65,
                ..info
            },
        ),
        (
            Layout::V1Review,
            DeviceInfo {
                num_feature_bits: 33,
                ..info
            },
        ),
    ];
    for (layout, bad) in bad_infos {
        assert_eq!(
            TransportResponse::DeviceInfo(bad).encode(layout, &gdi, &mut out),
            Err(EncodeError::Unrepresentable)
        );
    }
    // Dec-2025 drops the UUID instead of failing.
    let with_uuid = TransportResponse::DeviceInfo(DeviceInfo {
        device_uuid: UUID,
        ..info
    });
    let f = enc_resp(&with_uuid, Layout::Pr28, &gdi);
    assert_eq!(f.len(), 32);
    assert_eq!(
        decode_response(&f, Layout::Pr28, 0x02).unwrap().1,
        TransportResponse::DeviceInfo(info)
    );
    // GET_SHM Dec-2025: 32-bit length and address.
    let shm = req_header(0, 0x0c, 0, 1);
    for (length, address) in [(0x1_0000_0000u64, 0u64), (1, 0x1_0000_0000)] {
        let r = TransportResponse::Shm {
            index: 0,
            length,
            address,
        };
        assert_eq!(
            r.encode(Layout::Pr28, &shm, &mut out),
            Err(EncodeError::Unrepresentable)
        );
        assert!(r.encode(Layout::V1Review, &shm, &mut out).is_ok());
    }
    // Queue flags.
    let sv = |flags| TransportRequest::SetVqueue {
        index: 0,
        flags,
        size: 8,
        desc_addr: 0,
        driver_addr: 0,
        device_addr: 0,
    };
    assert_eq!(
        sv(1).encode(Layout::Pr28, 0, 0, &mut out),
        Err(EncodeError::Unrepresentable)
    );
    assert_eq!(
        sv(2).encode(Layout::V1Review, 0, 0, &mut out),
        Err(EncodeError::Unrepresentable)
    );
    let gv = |flags| TransportResponse::Vqueue {
        index: 0,
        max_size: 8,
        cur_size: 0,
        flags,
        desc_addr: 0,
        driver_addr: 0,
        device_addr: 0,
    };
    let gvh = req_header(0, 0x09, 0, 1);
    assert_eq!(
        gv(1).encode(Layout::Pr28, &gvh, &mut out),
        Err(EncodeError::Unrepresentable)
    );
    assert_eq!(
        gv(2).encode(Layout::V1Review, &gvh, &mut out),
        Err(EncodeError::Unrepresentable)
    );
    // A response to a different request.
    assert_eq!(
        TransportResponse::SetVqueue.encode(Layout::V1Review, &gvh, &mut out),
        Err(EncodeError::Unrepresentable)
    );
}

#[test]
fn response_header_echo() {
    let req = frame(0xfc, 0x07, 0x0102, 0xabcd, &[]); // reserved type bits set on receive
    let (h, r) = decode_request(&req, Layout::V1Review).unwrap();
    assert_eq!(r, TransportRequest::GetDeviceStatus);
    let f = enc_resp(
        &TransportResponse::DeviceStatus { status: 0xf },
        Layout::V1Review,
        &h,
    );
    assert_eq!(f, frame(0x01, 0x07, 0x0102, 0xabcd, &le32s(&[0xf])));
}

// ---- properties ------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn typed_requests_round_trip(
        sel in 0usize..16,
        w in prop::array::uniform4(any::<u32>()),
        a in prop::array::uniform3(any::<u64>()),
        data in prop::collection::vec(any::<u8>(), 0..80),
        dev in any::<u16>(),
        token in any::<u16>(),
    ) {
        for layout in LAYOUTS {
            let mut reqs = all_requests(layout);
            let words = &data[..data.len() / 4 * 4];
            // Replace the field values of the chosen sample with random ones.
            let req = match reqs.swap_remove(sel % reqs.len()) {
                TransportRequest::GetDeviceFeatures { .. } => TransportRequest::GetDeviceFeatures { block_index: w[0], num_blocks: w[1] },
                TransportRequest::SetDriverFeatures { .. } => TransportRequest::SetDriverFeatures { block_index: w[0], blocks: FeatureBlocks::from_le_bytes(words).unwrap() },
                TransportRequest::GetConfig { .. } => TransportRequest::GetConfig { offset: w[0], length: w[1] },
                TransportRequest::SetConfig { .. } => TransportRequest::SetConfig { generation: w[0], offset: w[1], data: &data },
                TransportRequest::SetDeviceStatus { .. } => TransportRequest::SetDeviceStatus { status: w[0] },
                TransportRequest::GetVqueue { .. } => TransportRequest::GetVqueue { index: w[0] },
                TransportRequest::SetVqueue { .. } => TransportRequest::SetVqueue { index: w[0], flags: w[1] % 3, size: w[2], desc_addr: a[0], driver_addr: a[1], device_addr: a[2] },
                TransportRequest::ResetVqueue { .. } => TransportRequest::ResetVqueue { index: w[0] },
                TransportRequest::GetShm { .. } => TransportRequest::GetShm { index: w[0] },
                TransportRequest::EventAvail { .. } => TransportRequest::EventAvail { vq_index: w[0], next_offset: w[1] },
                other => other,
            };
            let mut out = [0u8; 256];
            let representable = match (req, layout) {
                (TransportRequest::SetVqueue { flags, .. }, Layout::Pr28) => flags == 0,
                (TransportRequest::SetVqueue { flags, .. }, Layout::V1Review) => flags <= 1,
                _ => true,
            };
            match req.encode(layout, dev, token, &mut out) {
                Ok(n) => {
                    prop_assert!(representable);
                    let (h, got) = decode_request(&out[..n], layout).unwrap();
                    prop_assert_eq!(got, req);
                    prop_assert_eq!((h.dev_num, h.token, usize::from(h.msg_size)), (dev, token, n));
                }
                Err(e) => {
                    prop_assert!(!representable);
                    prop_assert_eq!(e, EncodeError::Unrepresentable);
                }
            }
        }
    }

    #[test]
    fn typed_responses_round_trip(
        sel in 0usize..14,
        w in prop::array::uniform8(any::<u32>()),
        a in prop::array::uniform3(any::<u64>()),
        uuid in prop::array::uniform16(any::<u8>()),
        data in prop::collection::vec(any::<u8>(), 0..80),
        dev in any::<u16>(),
        token in any::<u16>(),
    ) {
        for layout in LAYOUTS {
            let mut resps = all_responses(layout);
            let words = &data[..data.len() / 4 * 4];
            let small = |v: u32| if w[7] & 1 == 0 { v & 0xffff } else { v };
            let resp = match resps.swap_remove(sel % resps.len()) {
                TransportResponse::DeviceInfo(_) => TransportResponse::DeviceInfo(DeviceInfo {
                    device_id: w[0],
                    vendor_id: w[1],
                    device_uuid: uuid,
                    num_feature_bits: if w[7] & 2 == 0 { w[2] & !31 } else { w[2] },
                    config_size: w[3],
                    max_virtqueues: w[4],
                    admin_vq_start: small(w[5]),
                    admin_vq_count: small(w[6]),
                }),
                TransportResponse::DeviceFeatures { .. } => TransportResponse::DeviceFeatures { block_index: w[0], blocks: FeatureBlocks::from_le_bytes(words).unwrap() },
                TransportResponse::Config { .. } => TransportResponse::Config { generation: w[0], offset: w[1], data: &data },
                TransportResponse::SetConfig { .. } => TransportResponse::SetConfig { generation: w[0], offset: w[1], length: w[2] },
                TransportResponse::DeviceStatus { .. } => TransportResponse::DeviceStatus { status: w[0] },
                TransportResponse::SetDeviceStatus { .. } => TransportResponse::SetDeviceStatus { status: w[0] },
                TransportResponse::Vqueue { .. } => TransportResponse::Vqueue { index: w[0], max_size: w[1], cur_size: w[2], flags: w[3] % 3, desc_addr: a[0], driver_addr: a[1], device_addr: a[2] },
                TransportResponse::Shm { .. } => TransportResponse::Shm { index: w[0], length: if w[7] & 4 == 0 { u64::from(w[1]) } else { a[0] }, address: if w[7] & 8 == 0 { u64::from(w[2]) } else { a[1] } },
                other => other,
            };
            let representable = match (resp, layout) {
                (TransportResponse::DeviceInfo(i), Layout::Pr28) => {
                    i.num_feature_bits % 32 == 0 && i.admin_vq_start <= 0xffff && i.admin_vq_count <= 0xffff
                }
                (TransportResponse::DeviceInfo(i), Layout::V1Review) => i.num_feature_bits % 32 == 0,
                (TransportResponse::Vqueue { flags, .. }, Layout::Pr28) => flags == 0,
                (TransportResponse::Vqueue { flags, .. }, Layout::V1Review) => flags <= 1,
                (TransportResponse::Shm { length, address, .. }, Layout::Pr28) => {
                    length <= 0xffff_ffff && address <= 0xffff_ffff
                }
                _ => true,
            };
            let id = answered_id(&resp);
            let mut out = [0u8; 256];
            match resp.encode(layout, &req_header(0, id, dev, token), &mut out) {
                Ok(n) => {
                    prop_assert!(representable);
                    let (h, got) = decode_response(&out[..n], layout, id).unwrap();
                    let want = match (resp, layout) {
                        (TransportResponse::DeviceInfo(i), Layout::Pr28) => {
                            TransportResponse::DeviceInfo(DeviceInfo { device_uuid: [0; 16], ..i })
                        }
                        _ => resp,
                    };
                    prop_assert_eq!(got, want);
                    prop_assert_eq!((h.msg_id, h.dev_num, h.token, usize::from(h.msg_size)), (id, dev, token, n));
                }
                Err(e) => {
                    prop_assert!(!representable);
                    prop_assert_eq!(e, EncodeError::Unrepresentable);
                }
            }
        }
    }

    #[test]
    fn typed_events_round_trip(
        w in prop::array::uniform4(any::<u32>()),
        h in prop::array::uniform3(any::<u16>()),
        data in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut out = [0u8; 256];
        let ev = DeviceEvent::Config { device_status: w[0], generation: w[1], offset: w[2], data: &data };
        let n = ev.encode(h[0], &mut out).unwrap();
        prop_assert_eq!(decode_event(&out[..n]).unwrap().1, ev);
        let ev = DeviceEvent::Used { vq_index: w[3] };
        let n = ev.encode(h[0], &mut out).unwrap();
        prop_assert_eq!(decode_event(&out[..n]).unwrap().1, ev);
    }
}
