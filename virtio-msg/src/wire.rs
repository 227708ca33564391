//! The codec tests, until they move beside the codecs they test.

use crate::{
    bus::{
        BusEvent, BusRequest, BusResponse, GetDevicesOrder,
        codec::{decode_bus_event, decode_bus_request, decode_bus_response},
    },
    error::{DecodeError, EncodeError},
    header::Header,
    layout::Layout,
    transport::{
        DeviceEvent, DeviceInfo, FeatureBlocks, SET_VQUEUE_OP_ENABLE, TransportRequest,
        TransportResponse, VQUEUE_FLAG_ENABLED,
        event::decode_event,
        request::{decode_request, request_id},
        response::decode_response,
    },
};

mod tests;
