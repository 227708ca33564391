//! FF-A bus messages (DEN0153 bus-specific ids 0x80 and up): ids, wire layouts, results.
//!
//! All are bus messages (type bit 1) with dev_num 0, except ERROR, which echoes the dev_num of
//! the request it answers. Payload offsets below are relative to the end of the 8-byte header.

use virtio_msg::Header;
use zerocopy::{
    FromBytes, Immutable, IntoBytes, KnownLayout,
    little_endian::{U16, U32, U64},
};

/// VERSION (driver → device).
pub const VERSION: u8 = 0x80;
/// AREA_SHARE (driver → device).
pub const AREA_SHARE: u8 = 0x81;
/// AREA_UNSHARE (driver → device).
pub const AREA_UNSHARE: u8 = 0x82;
/// RESET (driver → device).
pub const RESET: u8 = 0x83;
/// EVENT_POLL (driver → device).
pub const EVENT_POLL: u8 = 0x84;
/// EVENT_CONFIGURE (driver → device).
pub const EVENT_CONFIGURE: u8 = 0x85;
/// FIFO_CONFIGURE (driver → device); not offered by this device.
pub const FIFO_CONFIGURE: u8 = 0x86;
/// ERROR (device → driver, as the answer to a request it cannot serve).
pub const ERROR: u8 = 0x87;
/// AREA_RELEASE (device → driver event).
pub const AREA_RELEASE: u8 = 0xC0;
/// The id of the EVENT_AVAIL acknowledgement frame (type 0x03, dev_num 0, size 8).
pub const EVENT_ACK: u8 = 0x00;

/// Bus protocol version 1.0 (`major << 16 | minor`).
pub const BUS_VERSION_1_0: u32 = 0x0001_0000;
/// virtio-msg transport revision served.
pub const TRANSPORT_REVISION_1: u32 = 1;
/// FF-A version reported in the G3 VERSION response (1.2).
pub const FFA_VERSION_1_2: u32 = 0x0001_0002;

/// Result code: success.
pub const RESULT_SUCCESS: u16 = 0;
/// Result code: error.
pub const RESULT_ERROR: u16 = 1;
/// Result code: busy, retry later.
pub const RESULT_BUSY: u16 = 2;

/// Bus feature bits (VERSION response `bus_features`).
pub mod features {
    /// The device receives direct messages.
    pub const DIRECT_RX: u32 = 1 << 0;
    /// The device answers direct messages.
    pub const DIRECT_TX: u32 = 1 << 1;
    /// Indirect messages (FFA_MSG_SEND2) received.
    pub const INDIRECT_RX: u32 = 1 << 2;
    /// Indirect messages sent.
    pub const INDIRECT_TX: u32 = 1 << 3;
    /// FF-A notifications received.
    pub const NOTIF_RX: u32 = 1 << 4;
    /// FF-A notifications sent.
    pub const NOTIF_TX: u32 = 1 << 5;
    /// FIFO transfer.
    pub const FIFO: u32 = 1 << 6;
}

/// EVENT_CONFIGURE methods.
pub mod event_method {
    /// The driver polls with EVENT_POLL on its own schedule.
    pub const POLL: u8 = 0;
    /// The device rings an FF-A notification; the driver then polls.
    pub const NOTIF: u8 = 1;
    /// Events pushed with indirect messages (not offered).
    pub const INDIRECT: u8 = 2;
    /// Events through a FIFO (not offered).
    pub const FIFO: u8 = 3;
}

/// AREA_SHARE `sharing_attrs` fields.
pub mod attrs {
    /// Bits [1:0]: transaction type (0 share, 1 lend, 2 donate).
    pub const TYPE_MASK: u32 = 0b11;
    /// Bit 2: writable.
    pub const WRITABLE: u32 = 1 << 2;
    /// Bit 3: executable.
    pub const EXECUTABLE: u32 = 1 << 3;
    /// Bits [5:4]: shareability (2 outer, 3 inner).
    pub const SHAREABILITY_SHIFT: u32 = 4;
    /// Bits [7:6]: cacheability (3 write-back).
    pub const CACHEABILITY_SHIFT: u32 = 6;
    /// Bits [9:8]: memory type (2 normal).
    pub const MEM_TYPE_SHIFT: u32 = 8;
    /// Bit 10: non-secure.
    pub const NON_SECURE: u32 = 1 << 10;
    /// Bit 11: driver asks the device to retain the mapping.
    pub const DRIVER_RETENTION: u32 = 1 << 11;
    /// Bits [31:12]: must be zero.
    pub const MBZ_MASK: u32 = !0xFFF;
    /// What the Linux G3 driver sends: share, RW, XN, inner shareable, WB, normal, NS, retention.
    pub const LINUX_DEFAULT: u32 = 0xEF4;
}

/// VERSION request, G3 form (12-byte payload, 20-byte frame).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VersionReqG3 {
    /// Offset 0, length 4: bus version (0 in the probe).
    pub bus_version: U32,
    /// Offset 4, length 4: transport revision (0 in the probe).
    pub transport_revision: U32,
    /// Offset 8, length 4: the driver's FF-A version.
    pub ffa_version: U32,
}
const _: () = assert!(size_of::<VersionReqG3>() == 12);

/// VERSION request, G2 form (8-byte payload, 16-byte frame).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VersionReqG2 {
    /// Offset 0, length 4: bus version (0x00010000).
    pub bus_version: U32,
    /// Offset 4, length 4: transport revision (1).
    pub transport_revision: U32,
}
const _: () = assert!(size_of::<VersionReqG2>() == 8);

/// VERSION response, G3 form (22-byte payload, 30-byte frame).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VersionRespG3 {
    /// Offset 0, length 4: bus version (0 = unsupported).
    pub bus_version: U32,
    /// Offset 4, length 4: transport revision.
    pub transport_revision: U32,
    /// Offset 8, length 4: the device's FF-A version.
    pub ffa_version: U32,
    /// Offset 12, length 4: transport feature bits (none defined: 0).
    pub feature_bits: U32,
    /// Offset 16, length 4: bus feature bits ([`features`]).
    pub bus_features: U32,
    /// Offset 20, length 2: most areas the device accepts at once.
    pub max_areas: U16,
}
const _: () = assert!(size_of::<VersionRespG3>() == 22);

/// VERSION response, G2 form (18-byte payload, 26-byte frame).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VersionRespG2 {
    /// Offset 0, length 4: bus version (the G2 driver requires 0x00010000).
    pub bus_version: U32,
    /// Offset 4, length 4: transport revision (must be 1).
    pub transport_revision: U32,
    /// Offset 8, length 4: transport features (must be 0).
    pub transport_features: U32,
    /// Offset 12, length 4: bus feature bits.
    pub bus_features: U32,
    /// Offset 16, length 2: number of areas (ignored by the driver).
    pub area_num: U16,
}
const _: () = assert!(size_of::<VersionRespG2>() == 18);

/// AREA_SHARE request (26-byte payload, 34-byte frame).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct AreaShareReq {
    /// Offset 0, length 2: area id chosen by the driver (1..=65535).
    pub area_id: U16,
    /// Offset 2, length 8: FF-A memory handle.
    pub mem_handle: U64,
    /// Offset 10, length 8: FF-A memory tag.
    pub mem_tag: U64,
    /// Offset 18, length 4: number of pages.
    pub page_count: U32,
    /// Offset 22, length 4: sharing attributes ([`attrs`]).
    pub sharing_attrs: U32,
}
const _: () = assert!(size_of::<AreaShareReq>() == 26);

/// AREA_SHARE / AREA_UNSHARE response (4-byte payload, 12-byte frame).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct AreaResp {
    /// Offset 0, length 2: area id (echo).
    pub area_id: U16,
    /// Offset 2, length 2: result.
    pub result: U16,
}
const _: () = assert!(size_of::<AreaResp>() == 4);

/// A payload holding one 16-bit field: AREA_UNSHARE request (area id), RESET and
/// EVENT_CONFIGURE responses (result), ERROR (original msg id), AREA_RELEASE (area id).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Word16 {
    /// Offset 0, length 2: the field.
    pub value: U16,
}
const _: () = assert!(size_of::<Word16>() == 2);

/// EVENT_CONFIGURE request (4-byte payload, 12-byte frame).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EventConfigureReq {
    /// Offset 0, length 1: method ([`event_method`]).
    pub method: u8,
    /// Offset 1, length 1: reserved, zero.
    pub reserved: u8,
    /// Offset 2, length 2: FF-A notification id for the NOTIF method.
    pub notif_id: U16,
}
const _: () = assert!(size_of::<EventConfigureReq>() == 4);

/// Writes a bus frame: header (type 0x02 | `response`, `msg_id`, `dev_num`, `token`) and
/// `payload` into `out`; returns the frame length, or `None` if it does not fit.
pub fn write_bus_frame(
    out: &mut [u8],
    response: bool,
    msg_id: u8,
    dev_num: u16,
    token: u16,
    payload: &[u8],
) -> Option<usize> {
    let len = virtio_msg::header::HEADER_SIZE.checked_add(payload.len())?;
    let header = Header {
        msg_type: virtio_msg::header::TYPE_BUS
            | if response {
                virtio_msg::header::TYPE_RESPONSE
            } else {
                0
            },
        msg_id,
        dev_num,
        token,
        msg_size: u16::try_from(len).ok()?,
    };
    let frame = out.get_mut(..len)?;
    header.write(frame)?;
    // Never refused: `frame` is `HEADER_SIZE + payload.len()` bytes long.
    payload
        .write_to(frame.get_mut(virtio_msg::header::HEADER_SIZE..)?)
        .ok()?;
    Some(len)
}

/// Reads the payload of `frame` as `T`, requiring `msg_size` to be exactly header + `T`.
pub fn exact<T: FromBytes + KnownLayout + Immutable>(header: &Header, frame: &[u8]) -> Option<T> {
    if usize::from(header.msg_size).checked_sub(virtio_msg::header::HEADER_SIZE)
        != Some(size_of::<T>())
    {
        return None;
    }
    T::read_from_bytes(header.payload(frame)).ok()
}
