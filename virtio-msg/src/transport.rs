//! Transport messages (driver ⇄ device): the typed values and their codecs.
//!
//! Decoding is strict: the header's `msg_size` must equal the frame length the bus delivered (bus
//! padding excluded) and the exact size the message needs in the session's
//! [`Layout`](crate::layout::Layout) (variable messages: their fixed part plus the length they
//! declare), reserved fields must be zero, lengths and counts must fit. Encoding writes a complete
//! frame (header included) and returns its length; it never writes past the buffer. The rules
//! every codec shares are listed in `frame`.
//!
//! - `values`: the typed values, re-exported here ([`TransportRequest`], [`TransportResponse`],
//!   [`DeviceEvent`], [`DeviceInfo`], [`FeatureBlocks`], [`status`] and the queue flags).
//! - `raw`: the raw payload structs; payload offsets and sizes are documented there.
//! - `request`, `response` and `event`: the codecs, which give the values their `decode` and
//!   `encode` methods.

pub(crate) mod event;
mod raw;
pub(crate) mod request;
pub(crate) mod response;
#[cfg(test)]
pub(crate) mod samples;
#[cfg(test)]
mod tests;
mod values;

pub use values::{
    DeviceEvent, DeviceInfo, FeatureBlocks, SET_VQUEUE_OP_ENABLE, TransportRequest,
    TransportResponse, VQUEUE_FLAG_ENABLED, status,
};
