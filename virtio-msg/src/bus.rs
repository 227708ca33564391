//! Standard bus messages: GET_DEVICES, PING and EVENT_DEVICE (type bit 1 set, dev_num 0).
//!
//! Bus-specific messages (ids 0x80 and up) belong to the bus binding, which decodes the header
//! first and hands standard ids to this module.
//!
//! - `values`: the typed values, re-exported here ([`BusRequest`], [`BusResponse`],
//!   [`BusEvent`], [`GetDevicesOrder`] and the EVENT_DEVICE states).
//! - `raw`: the raw payload structs.
//! - `codec`: their decoding and encoding, which gives the values their `decode` and `encode`
//!   methods.

pub(crate) mod codec;
mod raw;
#[cfg(test)]
pub(crate) mod samples;
#[cfg(test)]
mod tests;
mod values;

pub use values::{
    BusEvent, BusRequest, BusResponse, DEVICE_STATE_READY, DEVICE_STATE_REMOVED, GetDevicesOrder,
};
