//! The raw payload layouts of the standard bus messages, as zerocopy structs named after the
//! message they carry (payload offsets; the wire offset is 8 more).

use core::mem::size_of;

use zerocopy::{
    FromBytes, Immutable, IntoBytes, KnownLayout,
    little_endian::{U16, U32},
};

/// GET_DEVICES request payload (4 bytes, message 12).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct GetDevicesReq {
    /// Offset 0, length 2: first device number.
    pub(crate) offset: U16,
    /// Offset 2, length 2: window size.
    pub(crate) count: U16,
}
const _: () = assert!(size_of::<GetDevicesReq>() == 4);

/// Fixed part of the GET_DEVICES response, [`GetDevicesOrder::CountThenNext`](super::values::GetDevicesOrder::CountThenNext) (6 bytes),
/// followed by `ceil(count / 8)` bitmap bytes at offset 6.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct GetDevicesRespCountThenNext {
    /// Offset 0, length 2: window start (echo).
    pub(crate) offset: U16,
    /// Offset 2, length 2: device numbers covered.
    pub(crate) count: U16,
    /// Offset 4, length 2: next window start, 0 = no more.
    pub(crate) next_offset: U16,
}
const _: () = assert!(size_of::<GetDevicesRespCountThenNext>() == 6);

/// Fixed part of the GET_DEVICES response, [`GetDevicesOrder::NextThenCount`](super::values::GetDevicesOrder::NextThenCount) (6 bytes),
/// followed by `ceil(count / 8)` bitmap bytes at offset 6.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct GetDevicesRespNextThenCount {
    /// Offset 0, length 2: window start (echo).
    pub(crate) offset: U16,
    /// Offset 2, length 2: next window start, 0 = no more.
    pub(crate) next_offset: U16,
    /// Offset 4, length 2: device numbers covered.
    pub(crate) count: U16,
}
const _: () = assert!(size_of::<GetDevicesRespNextThenCount>() == 6);

/// PING request and response payload (4 bytes, message 12).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct PingMsg {
    /// Offset 0, length 4: value to echo.
    pub(crate) data: U32,
}
const _: () = assert!(size_of::<PingMsg>() == 4);

/// EVENT_DEVICE payload (4 bytes, message 12).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct EventDeviceMsg {
    /// Offset 0, length 2: device number concerned.
    pub(crate) dev_num: U16,
    /// Offset 2, length 2: device bus state (0 reserved).
    pub(crate) state: U16,
}
const _: () = assert!(size_of::<EventDeviceMsg>() == 4);
