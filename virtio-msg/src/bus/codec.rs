//! The codec of the standard bus messages (type 0x02 requests and events, 0x03 responses,
//! dev_num 0).

use zerocopy::IntoBytes;

use super::{
    raw::{
        EventDeviceMsg, GetDevicesReq, GetDevicesRespCountThenNext, GetDevicesRespNextThenCount,
        PingMsg,
    },
    values::{BusEvent, BusRequest, BusResponse, GetDevicesOrder},
};
use crate::{
    error::{DecodeError, EncodeError},
    frame::{emit, exact, head, open, representable, with_tail},
    header::{Header, TYPE_BUS_REQUEST, TYPE_BUS_RESPONSE},
    ids,
};

impl BusRequest {
    /// Decodes a standard bus request frame (type 0x02).
    pub fn decode(frame: &[u8]) -> Result<(Header, Self), DecodeError> {
        decode_bus_request(frame)
    }

    /// [`BusRequest::decode`] for a frame whose header the bus parsed already: `payload` is that
    /// frame's bytes 8..msg_size ([`Header::payload`]). The header is not parsed again.
    pub fn decode_payload(header: &Header, payload: &[u8]) -> Result<Self, DecodeError> {
        decode_bus_request_payload(header, payload)
    }

    /// Encodes the request with `token`; returns the frame length.
    pub fn encode(&self, token: u16, out: &mut [u8]) -> Result<usize, EncodeError> {
        encode_bus_request(self, token, out)
    }
}

impl<'a> BusResponse<'a> {
    /// Decodes a standard bus response frame (type 0x03) answering `request_id`.
    pub fn decode(
        frame: &'a [u8],
        order: GetDevicesOrder,
        request_id: u8,
    ) -> Result<(Header, Self), DecodeError> {
        decode_bus_response(frame, order, request_id)
    }

    /// Encodes the response to `request` into `out`; returns the frame length.
    pub fn encode(
        &self,
        order: GetDevicesOrder,
        request: &Header,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        encode_bus_response(self, order, request, out)
    }
}

impl BusEvent {
    /// Decodes a standard bus event frame (type 0x02, id 0x40).
    pub fn decode(frame: &[u8]) -> Result<(Header, Self), DecodeError> {
        decode_bus_event(frame)
    }

    /// Encodes the event (token 0); returns the frame length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        encode_bus_event(self, out)
    }
}

/// Opens a bus frame: type as [`open`], then `dev_num` must be 0.
fn open_bus(frame: &[u8], want_type: u8) -> Result<(Header, &[u8]), DecodeError> {
    let (header, payload) = open(frame, want_type)?;
    if header.dev_num != 0 {
        return Err(DecodeError::Range);
    }
    Ok((header, payload))
}

/// The bitmap length for a GET_DEVICES window of `count` device numbers.
fn bitmap_len(count: u16) -> usize {
    // Cannot panic (`div_ceil`): the divisor is 8.
    usize::from(count).div_ceil(8)
}

/// Decodes a standard bus request: GET_DEVICES or PING. The GET_DEVICES window is not checked
/// for alignment (the bus layer decides; G2 asks for 255 devices).
pub(crate) fn decode_bus_request(frame: &[u8]) -> Result<(Header, BusRequest), DecodeError> {
    let (header, p) = open_bus(frame, TYPE_BUS_REQUEST)?;
    Ok((header, decode_bus_request_payload(&header, p)?))
}

/// [`decode_bus_request`] for a frame whose header was parsed already: `p` is its payload
/// (bytes 8..msg_size).
fn decode_bus_request_payload(header: &Header, p: &[u8]) -> Result<BusRequest, DecodeError> {
    if header.msg_type != TYPE_BUS_REQUEST {
        return Err(DecodeError::BadType(header.msg_type));
    }
    if header.dev_num != 0 {
        return Err(DecodeError::Range);
    }
    let req = match header.msg_id {
        ids::bus::GET_DEVICES => {
            let raw: &GetDevicesReq = exact(p)?;
            BusRequest::GetDevices {
                offset: raw.offset.get(),
                count: raw.count.get(),
            }
        }
        ids::bus::PING => BusRequest::Ping {
            data: exact::<PingMsg>(p)?.data.get(),
        },
        other => return Err(DecodeError::UnknownId(other)),
    };
    Ok(req)
}

/// Encodes a standard bus request (dev_num 0).
pub(crate) fn encode_bus_request(
    req: &BusRequest,
    token: u16,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    match *req {
        BusRequest::GetDevices { offset, count } => {
            let raw = GetDevicesReq {
                offset: offset.into(),
                count: count.into(),
            };
            let h = head(TYPE_BUS_REQUEST, ids::bus::GET_DEVICES, 0, token);
            emit(out, h, &[raw.as_bytes()])
        }
        BusRequest::Ping { data } => {
            let raw = PingMsg { data: data.into() };
            emit(
                out,
                head(TYPE_BUS_REQUEST, ids::bus::PING, 0, token),
                &[raw.as_bytes()],
            )
        }
    }
}

/// Decodes a standard bus response to the request with id `request_id`; a different `msg_id`
/// is [`DecodeError::UnknownId`] (carrying the id found).
pub(crate) fn decode_bus_response(
    frame: &[u8],
    order: GetDevicesOrder,
    request_id: u8,
) -> Result<(Header, BusResponse<'_>), DecodeError> {
    let (header, p) = open_bus(frame, TYPE_BUS_RESPONSE)?;
    if header.msg_id != request_id {
        return Err(DecodeError::UnknownId(header.msg_id));
    }
    let resp = match request_id {
        ids::bus::GET_DEVICES => {
            let (offset, count, next_offset, bitmap) = match order {
                GetDevicesOrder::CountThenNext => {
                    let (raw, bitmap) = with_tail(p, |r: &GetDevicesRespCountThenNext| {
                        Some(bitmap_len(r.count.get()))
                    })?;
                    (raw.offset, raw.count, raw.next_offset, bitmap)
                }
                GetDevicesOrder::NextThenCount => {
                    let (raw, bitmap) = with_tail(p, |r: &GetDevicesRespNextThenCount| {
                        Some(bitmap_len(r.count.get()))
                    })?;
                    (raw.offset, raw.count, raw.next_offset, bitmap)
                }
            };
            BusResponse::Devices {
                offset: offset.get(),
                count: count.get(),
                next_offset: next_offset.get(),
                bitmap,
            }
        }
        ids::bus::PING => BusResponse::Ping {
            data: exact::<PingMsg>(p)?.data.get(),
        },
        other => return Err(DecodeError::UnknownId(other)),
    };
    Ok((header, resp))
}

/// Encodes the response to the bus request `request` (type 0x03, dev_num 0, `msg_id` and
/// `token` echoed). The bitmap must hold exactly `ceil(count / 8)` bytes and the variant must
/// answer `request.msg_id`, else [`EncodeError::Unrepresentable`].
pub(crate) fn encode_bus_response(
    resp: &BusResponse<'_>,
    order: GetDevicesOrder,
    request: &Header,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let h = head(TYPE_BUS_RESPONSE, request.msg_id, 0, request.token);
    match *resp {
        BusResponse::Devices {
            offset,
            count,
            next_offset,
            bitmap,
        } => {
            representable(request.msg_id == ids::bus::GET_DEVICES)?;
            representable(bitmap.len() == bitmap_len(count))?;
            match order {
                GetDevicesOrder::CountThenNext => {
                    let raw = GetDevicesRespCountThenNext {
                        offset: offset.into(),
                        count: count.into(),
                        next_offset: next_offset.into(),
                    };
                    emit(out, h, &[raw.as_bytes(), bitmap])
                }
                GetDevicesOrder::NextThenCount => {
                    let raw = GetDevicesRespNextThenCount {
                        offset: offset.into(),
                        next_offset: next_offset.into(),
                        count: count.into(),
                    };
                    emit(out, h, &[raw.as_bytes(), bitmap])
                }
            }
        }
        BusResponse::Ping { data } => {
            representable(request.msg_id == ids::bus::PING)?;
            let raw = PingMsg { data: data.into() };
            emit(out, h, &[raw.as_bytes()])
        }
    }
}

/// Decodes a standard bus event: EVENT_DEVICE (state 0 is reserved: [`DecodeError::Range`]).
pub(crate) fn decode_bus_event(frame: &[u8]) -> Result<(Header, BusEvent), DecodeError> {
    let (header, p) = open_bus(frame, TYPE_BUS_REQUEST)?;
    if header.msg_id != ids::bus::EVENT_DEVICE {
        return Err(DecodeError::UnknownId(header.msg_id));
    }
    let raw: &EventDeviceMsg = exact(p)?;
    let state = raw.state.get();
    if state == 0 {
        return Err(DecodeError::Range);
    }
    Ok((
        header,
        BusEvent::Device {
            dev_num: raw.dev_num.get(),
            state,
        },
    ))
}

/// Encodes a standard bus event (dev_num 0 in the header, token 0).
pub(crate) fn encode_bus_event(ev: &BusEvent, out: &mut [u8]) -> Result<usize, EncodeError> {
    match *ev {
        BusEvent::Device { dev_num, state } => {
            representable(state != 0)?;
            let raw = EventDeviceMsg {
                dev_num: dev_num.into(),
                state: state.into(),
            };
            let h = head(TYPE_BUS_REQUEST, ids::bus::EVENT_DEVICE, 0, 0);
            emit(out, h, &[raw.as_bytes()])
        }
    }
}
