//! Test samples of every transport message, valid in each layout, and encoding shorthands.

use alloc::{vec, vec::Vec};

use super::{
    DeviceEvent, DeviceInfo, FeatureBlocks, SET_VQUEUE_OP_ENABLE, TransportRequest,
    TransportResponse, VQUEUE_FLAG_ENABLED,
};
use crate::{header::Header, layout::Layout};

pub(crate) const LAYOUTS: [Layout; 2] = [Layout::V1Review, Layout::Pr28];

pub(crate) fn enc_req(req: &TransportRequest<'_>, layout: Layout, dev: u16, token: u16) -> Vec<u8> {
    let mut out = [0u8; 1024];
    let n = req.encode(layout, dev, token, &mut out).unwrap();
    out[..n].to_vec()
}

pub(crate) fn enc_resp(resp: &TransportResponse<'_>, layout: Layout, req: &Header) -> Vec<u8> {
    let mut out = [0u8; 1024];
    let n = resp.encode(layout, req, &mut out).unwrap();
    out[..n].to_vec()
}

pub(crate) fn enc_event(ev: &DeviceEvent<'_>, dev: u16) -> Vec<u8> {
    let mut out = [0u8; 1024];
    let n = ev.encode(dev, &mut out).unwrap();
    out[..n].to_vec()
}

pub(crate) const FEATURES: [u8; 8] = [0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00];

pub(crate) const CFG: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];

pub(crate) const UUID: [u8; 16] = [
    0xc6, 0x60, 0x28, 0xb5, 0x24, 0x98, 0x4a, 0xa1, 0x9d, 0xe7, 0x77, 0xda, 0x61, 0x22, 0xab, 0xf0,
];

/// Every transport request, valid in `layout`.
pub(crate) fn all_requests(layout: Layout) -> Vec<TransportRequest<'static>> {
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
pub(crate) fn all_responses(layout: Layout) -> Vec<TransportResponse<'static>> {
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

pub(crate) fn all_events() -> Vec<DeviceEvent<'static>> {
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

/// The id a response answers (test-side table, independent of `response_id`).
pub(crate) fn answered_id(resp: &TransportResponse<'_>) -> u8 {
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
