//! Raw wire structs and the codecs behind [`crate::transport`] and [`crate::bus`].
// Placeholder: being written.
#![allow(clippy::todo, unused_variables, missing_docs)]

use crate::{
    Header, Layout,
    bus::{BusEvent, BusRequest, BusResponse, GetDevicesOrder},
    transport::{DecodeError, DeviceEvent, EncodeError, TransportRequest, TransportResponse},
};

pub(crate) fn decode_request(frame: &[u8], layout: Layout) -> Result<(Header, TransportRequest<'_>), DecodeError> { todo!() }
pub(crate) fn encode_request(req: &TransportRequest<'_>, layout: Layout, dev_num: u16, token: u16, out: &mut [u8]) -> Result<usize, EncodeError> { todo!() }
pub(crate) fn request_id(req: &TransportRequest<'_>) -> u8 { todo!() }
pub(crate) fn decode_response(frame: &[u8], layout: Layout, request_id: u8) -> Result<(Header, TransportResponse<'_>), DecodeError> { todo!() }
pub(crate) fn encode_response(resp: &TransportResponse<'_>, layout: Layout, request: &Header, out: &mut [u8]) -> Result<usize, EncodeError> { todo!() }
pub(crate) fn decode_event(frame: &[u8]) -> Result<(Header, DeviceEvent<'_>), DecodeError> { todo!() }
pub(crate) fn encode_event(ev: &DeviceEvent<'_>, dev_num: u16, out: &mut [u8]) -> Result<usize, EncodeError> { todo!() }
pub(crate) fn decode_bus_request(frame: &[u8]) -> Result<(Header, BusRequest), DecodeError> { todo!() }
pub(crate) fn encode_bus_request(req: &BusRequest, token: u16, out: &mut [u8]) -> Result<usize, EncodeError> { todo!() }
pub(crate) fn decode_bus_response(frame: &[u8], order: GetDevicesOrder, request_id: u8) -> Result<(Header, BusResponse<'_>), DecodeError> { todo!() }
pub(crate) fn encode_bus_response(resp: &BusResponse<'_>, order: GetDevicesOrder, request: &Header, out: &mut [u8]) -> Result<usize, EncodeError> { todo!() }
pub(crate) fn decode_bus_event(frame: &[u8]) -> Result<(Header, BusEvent), DecodeError> { todo!() }
pub(crate) fn encode_bus_event(ev: &BusEvent, out: &mut [u8]) -> Result<usize, EncodeError> { todo!() }
