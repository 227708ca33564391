//! Standard bus messages: GET_DEVICES, PING and EVENT_DEVICE (type bit 1 set, dev_num 0).
//!
//! Bus-specific messages (ids 0x80 and up) belong to the bus binding, which decodes the header
//! first and hands standard ids to this module.

use crate::{
    Header,
    transport::{DecodeError, EncodeError},
};

/// Field order of the GET_DEVICES response, which differs between revisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GetDevicesOrder {
    /// `offset, count, next_offset, bitmap` (Dec-2025 spec text; the G2 Linux driver).
    CountThenNext,
    /// `offset, next_offset, count, bitmap` (2026 Linux driver, G3).
    NextThenCount,
}

/// EVENT_DEVICE state: the device is ready (ADDED in 2026 naming).
pub const DEVICE_STATE_READY: u16 = 0x0001;
/// EVENT_DEVICE state: the device is gone.
pub const DEVICE_STATE_REMOVED: u16 = 0x0002;

/// A standard bus request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusRequest {
    /// GET_DEVICES (0x02): a window of device numbers.
    GetDevices {
        /// First device number of the window (the spec asks for a multiple of 8).
        offset: u16,
        /// Window size in device numbers (the spec asks for a multiple of 8).
        count: u16,
    },
    /// PING (0x03).
    Ping {
        /// Value to echo.
        data: u32,
    },
}

/// A standard bus response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusResponse<'a> {
    /// GET_DEVICES response.
    Devices {
        /// Echo of the window start.
        offset: u16,
        /// Device numbers covered (bitmap holds `ceil(count / 8)` bytes).
        count: u16,
        /// Next window start, 0 = no more devices.
        next_offset: u16,
        /// Presence bitmap, LSB first: bit n of byte b = device `offset + 8b + n`.
        bitmap: &'a [u8],
    },
    /// PING response: the echo.
    Ping {
        /// The echoed value.
        data: u32,
    },
}

/// A standard bus event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusEvent {
    /// EVENT_DEVICE (0x40).
    Device {
        /// Device number concerned.
        dev_num: u16,
        /// [`DEVICE_STATE_READY`], [`DEVICE_STATE_REMOVED`] or another state value.
        state: u16,
    },
}

impl BusRequest {
    /// Decodes a standard bus request frame (type 0x02).
    pub fn decode(frame: &[u8]) -> Result<(Header, Self), DecodeError> {
        crate::wire::decode_bus_request(frame)
    }

    /// [`BusRequest::decode`] for a frame whose header the bus parsed already: `payload` is that
    /// frame's bytes 8..msg_size ([`Header::payload`]). The header is not parsed again.
    pub fn decode_payload(header: &Header, payload: &[u8]) -> Result<Self, DecodeError> {
        crate::wire::decode_bus_request_payload(header, payload)
    }

    /// Encodes the request with `token`; returns the frame length.
    pub fn encode(&self, token: u16, out: &mut [u8]) -> Result<usize, EncodeError> {
        crate::wire::encode_bus_request(self, token, out)
    }
}

impl<'a> BusResponse<'a> {
    /// Decodes a standard bus response frame (type 0x03) answering `request_id`.
    pub fn decode(
        frame: &'a [u8],
        order: GetDevicesOrder,
        request_id: u8,
    ) -> Result<(Header, Self), DecodeError> {
        crate::wire::decode_bus_response(frame, order, request_id)
    }

    /// Encodes the response to `request` into `out`; returns the frame length.
    pub fn encode(
        &self,
        order: GetDevicesOrder,
        request: &Header,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        crate::wire::encode_bus_response(self, order, request, out)
    }
}

impl BusEvent {
    /// Decodes a standard bus event frame (type 0x02, id 0x40).
    pub fn decode(frame: &[u8]) -> Result<(Header, Self), DecodeError> {
        crate::wire::decode_bus_event(frame)
    }

    /// Encodes the event (token 0); returns the frame length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        crate::wire::encode_bus_event(self, out)
    }
}
