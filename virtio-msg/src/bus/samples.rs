//! Test samples of the standard bus messages and encoding shorthands.

use alloc::{vec, vec::Vec};

use super::{BusEvent, BusRequest, BusResponse, GetDevicesOrder};
use crate::header::Header;

pub(crate) const ORDERS: [GetDevicesOrder; 2] = [
    GetDevicesOrder::CountThenNext,
    GetDevicesOrder::NextThenCount,
];

pub(crate) fn enc_bus_req(req: &BusRequest, token: u16) -> Vec<u8> {
    let mut out = [0u8; 1024];
    let n = req.encode(token, &mut out).unwrap();
    out[..n].to_vec()
}

pub(crate) fn enc_bus_resp(
    resp: &BusResponse<'_>,
    order: GetDevicesOrder,
    req: &Header,
) -> Vec<u8> {
    let mut out = [0u8; 1024];
    let n = resp.encode(order, req, &mut out).unwrap();
    out[..n].to_vec()
}

pub(crate) fn enc_bus_event(ev: &BusEvent) -> Vec<u8> {
    let mut out = [0u8; 1024];
    let n = ev.encode(&mut out).unwrap();
    out[..n].to_vec()
}

pub(crate) const BITMAP: [u8; 2] = [0x25, 0x00];

pub(crate) fn all_bus_responses() -> Vec<BusResponse<'static>> {
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
