//! Tests of the wire codecs: round trips, known-answer vectors, every rejection rule, and
//! property tests over arbitrary frames and values.

use alloc::{vec, vec::Vec};

use proptest::prelude::*;

use super::*;
use crate::bus::{DEVICE_STATE_READY, DEVICE_STATE_REMOVED};
use crate::ids::{bus as bid, transport as tid};

const LAYOUTS: [Layout; 2] = [Layout::V1Review, Layout::Pr28];
const ORDERS: [GetDevicesOrder; 2] = [
    GetDevicesOrder::CountThenNext,
    GetDevicesOrder::NextThenCount,
];

// ---- helpers -------------------------------------------------------------------------------

/// A frame with a correct `msg_size` (8 + payload).
fn frame(msg_type: u8, id: u8, dev_num: u16, token: u16, payload: &[u8]) -> Vec<u8> {
    let size = u16::try_from(8 + payload.len()).unwrap();
    let mut f = vec![msg_type, id];
    f.extend_from_slice(&dev_num.to_le_bytes());
    f.extend_from_slice(&token.to_le_bytes());
    f.extend_from_slice(&size.to_le_bytes());
    f.extend_from_slice(payload);
    f
}

/// Concatenated little-endian words.
fn le32s(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Sets `msg_size` of a frame.
fn set_size(f: &mut [u8], size: usize) {
    f[6..8].copy_from_slice(&u16::try_from(size).unwrap().to_le_bytes());
}

/// Writes a little-endian u32 at payload offset `off`.
fn poke32(f: &mut [u8], off: usize, v: u32) {
    f[8 + off..12 + off].copy_from_slice(&v.to_le_bytes());
}

fn enc_req(req: &TransportRequest<'_>, layout: Layout, dev: u16, token: u16) -> Vec<u8> {
    let mut out = [0u8; 1024];
    let n = req.encode(layout, dev, token, &mut out).unwrap();
    out[..n].to_vec()
}

fn enc_resp(resp: &TransportResponse<'_>, layout: Layout, req: &Header) -> Vec<u8> {
    let mut out = [0u8; 1024];
    let n = resp.encode(layout, req, &mut out).unwrap();
    out[..n].to_vec()
}

fn enc_event(ev: &DeviceEvent<'_>, dev: u16) -> Vec<u8> {
    let mut out = [0u8; 1024];
    let n = ev.encode(dev, &mut out).unwrap();
    out[..n].to_vec()
}

fn enc_bus_req(req: &BusRequest, token: u16) -> Vec<u8> {
    let mut out = [0u8; 1024];
    let n = req.encode(token, &mut out).unwrap();
    out[..n].to_vec()
}

fn enc_bus_resp(resp: &BusResponse<'_>, order: GetDevicesOrder, req: &Header) -> Vec<u8> {
    let mut out = [0u8; 1024];
    let n = resp.encode(order, req, &mut out).unwrap();
    out[..n].to_vec()
}

fn enc_bus_event(ev: &BusEvent) -> Vec<u8> {
    let mut out = [0u8; 1024];
    let n = ev.encode(&mut out).unwrap();
    out[..n].to_vec()
}

/// A request header as a device would have decoded it.
fn req_header(msg_type: u8, msg_id: u8, dev_num: u16, token: u16) -> Header {
    Header {
        msg_type,
        msg_id,
        dev_num,
        token,
        msg_size: 8,
    }
}

const FEATURES: [u8; 8] = [0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00];
const CFG: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];
const UUID: [u8; 16] = [
    0xc6, 0x60, 0x28, 0xb5, 0x24, 0x98, 0x4a, 0xa1, 0x9d, 0xe7, 0x77, 0xda, 0x61, 0x22, 0xab, 0xf0,
];

/// Every transport request, valid in `layout`.
fn all_requests(layout: Layout) -> Vec<TransportRequest<'static>> {
    let mut v = vec![
        TransportRequest::GetDeviceInfo,
        TransportRequest::GetDeviceFeatures {
            block_index: 1,
            num_blocks: 2,
        },
        TransportRequest::SetDriverFeatures {
            block_index: 0,
            blocks: FeatureBlocks::from_le_bytes(&FEATURES).unwrap(),
        },
        TransportRequest::SetDriverFeatures {
            block_index: 7,
            blocks: FeatureBlocks::from_le_bytes(&[]).unwrap(),
        },
        TransportRequest::GetConfig {
            offset: 4,
            length: 8,
        },
        TransportRequest::GetConfig {
            offset: 0,
            length: 0,
        },
        TransportRequest::SetConfig {
            generation: 9,
            offset: 2,
            data: &CFG,
        },
        TransportRequest::SetConfig {
            generation: 9,
            offset: 2,
            data: &[],
        },
        TransportRequest::GetDeviceStatus,
        TransportRequest::SetDeviceStatus { status: 0x0f },
        TransportRequest::GetVqueue { index: 3 },
        TransportRequest::SetVqueue {
            index: 1,
            flags: 0,
            size: 256,
            desc_addr: 0x1_0000_1000,
            driver_addr: 0x1_0000_2000,
            device_addr: 0xffff_0000_0000_3000,
        },
        TransportRequest::ResetVqueue { index: 1 },
        TransportRequest::GetShm { index: 2 },
        TransportRequest::EventAvail {
            vq_index: 0,
            next_offset: 0x8000_0005,
        },
    ];
    if layout == Layout::V1Review {
        v.push(TransportRequest::SetVqueue {
            index: 0,
            flags: SET_VQUEUE_OP_ENABLE,
            size: 64,
            desc_addr: 0x1000,
            driver_addr: 0x2000,
            device_addr: 0x3000,
        });
    }
    v
}

/// Every transport response, valid in `layout`.
fn all_responses(layout: Layout) -> Vec<TransportResponse<'static>> {
    let uuid = if layout == Layout::V1Review {
        UUID
    } else {
        [0; 16]
    };
    let big = if layout == Layout::V1Review {
        0x1_0000
    } else {
        0xffff
    };
    vec![
        TransportResponse::DeviceInfo(DeviceInfo {
            device_id: 4,
            vendor_id: 0x554d_4551,
            device_uuid: uuid,
            num_feature_bits: 64,
            config_size: 12,
            max_virtqueues: 3,
            admin_vq_start: big,
            admin_vq_count: 1,
        }),
        TransportResponse::DeviceFeatures {
            block_index: 0,
            blocks: FeatureBlocks::from_le_bytes(&FEATURES).unwrap(),
        },
        TransportResponse::DeviceFeatures {
            block_index: 5,
            blocks: FeatureBlocks::from_le_bytes(&[]).unwrap(),
        },
        TransportResponse::SetDriverFeatures,
        TransportResponse::Config {
            generation: 1,
            offset: 0,
            data: &CFG,
        },
        TransportResponse::Config {
            generation: 2,
            offset: 0,
            data: &[],
        },
        TransportResponse::SetConfig {
            generation: 3,
            offset: 1,
            length: 4,
        },
        TransportResponse::SetConfig {
            generation: 3,
            offset: 1,
            length: 0,
        },
        TransportResponse::DeviceStatus { status: 0x4f },
        TransportResponse::SetDeviceStatus { status: 0 },
        TransportResponse::Vqueue {
            index: 1,
            max_size: 256,
            cur_size: 128,
            flags: if layout == Layout::V1Review {
                VQUEUE_FLAG_ENABLED
            } else {
                0
            },
            desc_addr: 0x1000,
            driver_addr: 0x2000,
            device_addr: 0x3000,
        },
        TransportResponse::SetVqueue,
        TransportResponse::ResetVqueue,
        TransportResponse::Shm {
            index: 1,
            length: if layout == Layout::V1Review {
                0x1_0000_0000
            } else {
                0x1000
            },
            address: 0xffff_f000,
        },
    ]
}

fn all_events() -> Vec<DeviceEvent<'static>> {
    vec![
        DeviceEvent::Config {
            device_status: 0x4f,
            generation: 7,
            offset: 4,
            data: &CFG,
        },
        DeviceEvent::Config {
            device_status: 0x40,
            generation: 8,
            offset: 0,
            data: &[],
        },
        DeviceEvent::Used { vq_index: 2 },
    ]
}

const BITMAP: [u8; 2] = [0x25, 0x00];

fn all_bus_responses() -> Vec<BusResponse<'static>> {
    vec![
        BusResponse::Devices {
            offset: 0,
            count: 16,
            next_offset: 16,
            bitmap: &BITMAP,
        },
        BusResponse::Devices {
            offset: 8,
            count: 0,
            next_offset: 0,
            bitmap: &[],
        },
        BusResponse::Devices {
            offset: 0,
            count: 9,
            next_offset: 0,
            bitmap: &BITMAP,
        },
        BusResponse::Ping { data: 0x1234_5678 },
    ]
}

/// The id a response answers (test-side table, independent of `response_id`).
fn answered_id(resp: &TransportResponse<'_>) -> u8 {
    match resp {
        TransportResponse::DeviceInfo(_) => 0x02,
        TransportResponse::DeviceFeatures { .. } => 0x03,
        TransportResponse::SetDriverFeatures => 0x04,
        TransportResponse::Config { .. } => 0x05,
        TransportResponse::SetConfig { .. } => 0x06,
        TransportResponse::DeviceStatus { .. } => 0x07,
        TransportResponse::SetDeviceStatus { .. } => 0x08,
        TransportResponse::Vqueue { .. } => 0x09,
        TransportResponse::SetVqueue => 0x0a,
        TransportResponse::ResetVqueue => 0x0b,
        TransportResponse::Shm { .. } => 0x0c,
    }
}

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
    fn typed_events_and_bus_round_trip(
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
