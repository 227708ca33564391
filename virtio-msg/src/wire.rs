//! Raw wire structs and the codecs behind [`crate::transport`] and [`crate::bus`].
//!
//! Each raw struct is one payload layout (offsets are payload offsets: the wire offset is 8 more).
//! All fields are little-endian with alignment 1, so the structs have no padding.
//!
//! Decoding rules, in the order they are checked:
//! 1. the header parses and `msg_size` lies within the frame (bytes past `msg_size` are bus
//!    padding and ignored) — [`DecodeError::Truncated`], [`DecodeError::BadSize`];
//! 2. the type byte (reserved bits masked) is exactly the expected one — [`DecodeError::BadType`];
//! 3. bus messages carry `dev_num` 0 — [`DecodeError::Range`];
//! 4. the id is one this decoder accepts; for responses it must also equal the id of the request
//!    being answered — [`DecodeError::UnknownId`] (carrying the id found in the frame);
//! 5. `msg_size` is exactly the size of the message in the session's layout (variable messages:
//!    fixed part plus the declared length, with checked arithmetic) — [`DecodeError::BadSize`];
//! 6. reserved fields are zero — [`DecodeError::Reserved`]; enumerated fields and counts are in
//!    range — [`DecodeError::Range`].
//!
//! Encoding writes the header and exactly `msg_size` bytes, nothing past them (padding is the
//! bus's business). It refuses with [`EncodeError::Unrepresentable`] every value its decoder would
//! refuse, so what encodes also decodes to the same value; the one exception is the device UUID,
//! which the Dec-2025 GET_DEVICE_INFO cannot carry and which is dropped.

use core::mem::size_of;

use zerocopy::{
    FromBytes, Immutable, IntoBytes, KnownLayout,
    little_endian::{U16, U32, U64},
};

use crate::{
    Header, Layout,
    bus::{BusEvent, BusRequest, BusResponse, GetDevicesOrder},
    header::{HEADER_SIZE, TYPE_BUS, TYPE_RESPONSE},
    ids,
    transport::{
        DecodeError, DeviceEvent, DeviceInfo, EncodeError, FeatureBlocks, SET_VQUEUE_OP_ENABLE,
        TransportRequest, TransportResponse, VQUEUE_FLAG_ENABLED,
    },
};

#[cfg(test)]
mod tests;

/// Type byte of transport requests and of transport events (both directions).
pub(crate) const TYPE_TRANSPORT_REQUEST: u8 = 0;
/// Type byte of transport responses.
pub(crate) const TYPE_TRANSPORT_RESPONSE: u8 = TYPE_RESPONSE;
/// Type byte of bus requests and bus events.
pub(crate) const TYPE_BUS_REQUEST: u8 = TYPE_BUS;
/// Type byte of bus responses.
pub(crate) const TYPE_BUS_RESPONSE: u8 = TYPE_BUS | TYPE_RESPONSE;

// ---------------------------------------------------------------------------------------------
// Raw payload layouts: transport messages
// ---------------------------------------------------------------------------------------------

/// GET_DEVICE_INFO response payload, Dec-2025 layout (24 bytes, message 32).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct GetDeviceInfoRespPr28 {
    /// Offset 0, length 4: virtio device type.
    pub(crate) device_id: U32,
    /// Offset 4, length 4: vendor id.
    pub(crate) vendor_id: U32,
    /// Offset 8, length 4: number of feature bits (multiple of 32).
    pub(crate) num_feature_bits: U32,
    /// Offset 12, length 4: configuration space size in bytes.
    pub(crate) config_size: U32,
    /// Offset 16, length 4: number of virtqueues.
    pub(crate) max_virtqueues: U32,
    /// Offset 20, length 2: first admin virtqueue.
    pub(crate) admin_vq_start: U16,
    /// Offset 22, length 2: number of admin virtqueues.
    pub(crate) admin_vq_count: U16,
}
const _: () = assert!(size_of::<GetDeviceInfoRespPr28>() == 24);

/// GET_DEVICE_INFO response payload, 2026 layout (44 bytes, message 52).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct GetDeviceInfoRespV1Review {
    /// Offset 0, length 4: virtio device type.
    pub(crate) device_id: U32,
    /// Offset 4, length 4: vendor id.
    pub(crate) vendor_id: U32,
    /// Offset 8, length 16: device UUID (nil if none).
    pub(crate) device_uuid: [u8; 16],
    /// Offset 24, length 4: number of 32-bit feature blocks.
    pub(crate) num_feature_blocks: U32,
    /// Offset 28, length 4: configuration space size in bytes.
    pub(crate) config_size: U32,
    /// Offset 32, length 4: number of virtqueues, admin queues included.
    pub(crate) max_virtqueues: U32,
    /// Offset 36, length 4: first admin virtqueue.
    pub(crate) admin_vq_start: U32,
    /// Offset 40, length 4: number of admin virtqueues.
    pub(crate) admin_vq_count: U32,
}
const _: () = assert!(size_of::<GetDeviceInfoRespV1Review>() == 44);

/// GET_DEVICE_FEATURES request payload (8 bytes, message 16).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct GetDeviceFeaturesReq {
    /// Offset 0, length 4: first block.
    pub(crate) block_index: U32,
    /// Offset 4, length 4: number of blocks wanted.
    pub(crate) num_blocks: U32,
}
const _: () = assert!(size_of::<GetDeviceFeaturesReq>() == 8);

/// Fixed part of the GET_DEVICE_FEATURES response and the SET_DRIVER_FEATURES request
/// (8 bytes), followed by `num_blocks` little-endian 32-bit feature words at offset 8.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct FeatureBlocksFixed {
    /// Offset 0, length 4: first block.
    pub(crate) block_index: U32,
    /// Offset 4, length 4: number of blocks that follow.
    pub(crate) num_blocks: U32,
}
const _: () = assert!(size_of::<FeatureBlocksFixed>() == 8);

/// GET_CONFIG request payload (8 bytes, message 16).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct GetConfigReq {
    /// Offset 0, length 4: byte offset into the configuration space.
    pub(crate) offset: U32,
    /// Offset 4, length 4: bytes wanted (0 = generation only).
    pub(crate) length: U32,
}
const _: () = assert!(size_of::<GetConfigReq>() == 8);

/// Fixed part of the GET_CONFIG response, the SET_CONFIG request and the SET_CONFIG response
/// (12 bytes), followed by `length` data bytes at offset 12 (optional echo in the SET_CONFIG
/// response).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct ConfigFixed {
    /// Offset 0, length 4: generation.
    pub(crate) generation: U32,
    /// Offset 4, length 4: byte offset into the configuration space.
    pub(crate) offset: U32,
    /// Offset 8, length 4: data length.
    pub(crate) length: U32,
}
const _: () = assert!(size_of::<ConfigFixed>() == 12);

/// Payload of GET_DEVICE_STATUS response, SET_DEVICE_STATUS request and response (4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct DeviceStatusMsg {
    /// Offset 0, length 4: device status.
    pub(crate) status: U32,
}
const _: () = assert!(size_of::<DeviceStatusMsg>() == 4);

/// Payload of GET_VQUEUE, RESET_VQUEUE and GET_SHM requests and of EVENT_USED (4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct IndexMsg {
    /// Offset 0, length 4: queue index or shared memory region id.
    pub(crate) index: U32,
}
const _: () = assert!(size_of::<IndexMsg>() == 4);

/// GET_VQUEUE response payload, both layouts (40 bytes, message 48).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct GetVqueueResp {
    /// Offset 0, length 4: queue index.
    pub(crate) index: U32,
    /// Offset 4, length 4: maximum size (0 = no such queue).
    pub(crate) max_size: U32,
    /// Offset 8, length 4: current size (0 = not configured).
    pub(crate) cur_size: U32,
    /// Offset 12, length 4: 2026 flags (bit 0 ENABLED); reserved (zero) in Dec-2025.
    pub(crate) flags: U32,
    /// Offset 16, length 8: descriptor area address.
    pub(crate) desc_addr: U64,
    /// Offset 24, length 8: driver area address.
    pub(crate) driver_addr: U64,
    /// Offset 32, length 8: device area address.
    pub(crate) device_addr: U64,
}
const _: () = assert!(size_of::<GetVqueueResp>() == 40);

/// SET_VQUEUE request payload, 2026 layout and the 48-byte Dec-2025 form (40 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct SetVqueueReq {
    /// Offset 0, length 4: queue index.
    pub(crate) index: U32,
    /// Offset 4, length 4: 2026 flags (0 or 1 = ENABLE); reserved (zero) in Dec-2025.
    pub(crate) flags: U32,
    /// Offset 8, length 4: queue size.
    pub(crate) size: U32,
    /// Offset 12, length 4: reserved, zero.
    pub(crate) reserved: U32,
    /// Offset 16, length 8: descriptor area address.
    pub(crate) desc_addr: U64,
    /// Offset 24, length 8: driver area address.
    pub(crate) driver_addr: U64,
    /// Offset 32, length 8: device area address.
    pub(crate) device_addr: U64,
}
const _: () = assert!(size_of::<SetVqueueReq>() == 40);

/// SET_VQUEUE request payload, the 44-byte Dec-2025 form some G2 kernels send (36 bytes): no
/// reserved word at offset 12, so the addresses sit 4 bytes lower.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct SetVqueueReqShort {
    /// Offset 0, length 4: queue index.
    pub(crate) index: U32,
    /// Offset 4, length 4: reserved, zero.
    pub(crate) reserved: U32,
    /// Offset 8, length 4: queue size.
    pub(crate) size: U32,
    /// Offset 12, length 8: descriptor area address.
    pub(crate) desc_addr: U64,
    /// Offset 20, length 8: driver area address.
    pub(crate) driver_addr: U64,
    /// Offset 28, length 8: device area address.
    pub(crate) device_addr: U64,
}
const _: () = assert!(size_of::<SetVqueueReqShort>() == 36);

/// GET_SHM response payload, Dec-2025 layout (12 bytes, message 20).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct GetShmRespPr28 {
    /// Offset 0, length 4: region id.
    pub(crate) index: U32,
    /// Offset 4, length 4: region length (0 = no such region).
    pub(crate) length: U32,
    /// Offset 8, length 4: region address.
    pub(crate) address: U32,
}
const _: () = assert!(size_of::<GetShmRespPr28>() == 12);

/// GET_SHM response payload, 2026 layout (24 bytes, message 32).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct GetShmRespV1Review {
    /// Offset 0, length 4: region id.
    pub(crate) shmid: U32,
    /// Offset 4, length 4: reserved, zero.
    pub(crate) reserved: U32,
    /// Offset 8, length 8: region length (0 = no such region).
    pub(crate) length: U64,
    /// Offset 16, length 8: region address.
    pub(crate) address: U64,
}
const _: () = assert!(size_of::<GetShmRespV1Review>() == 24);

/// Fixed part of EVENT_CONFIG (16 bytes), followed by `length` data bytes at offset 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct EventConfigFixed {
    /// Offset 0, length 4: device status.
    pub(crate) device_status: U32,
    /// Offset 4, length 4: generation.
    pub(crate) generation: U32,
    /// Offset 8, length 4: offset of the changed bytes.
    pub(crate) offset: U32,
    /// Offset 12, length 4: number of data bytes that follow (0 = refetch).
    pub(crate) length: U32,
}
const _: () = assert!(size_of::<EventConfigFixed>() == 16);

/// EVENT_AVAIL payload (8 bytes, message 16).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct EventAvail {
    /// Offset 0, length 4: queue index.
    pub(crate) vq_index: U32,
    /// Offset 4, length 4: bits 30..0 offset, bit 31 wrap.
    pub(crate) next_offset: U32,
}
const _: () = assert!(size_of::<EventAvail>() == 8);

// ---------------------------------------------------------------------------------------------
// Raw payload layouts: bus messages
// ---------------------------------------------------------------------------------------------

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

/// Fixed part of the GET_DEVICES response, [`GetDevicesOrder::CountThenNext`] (6 bytes),
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

/// Fixed part of the GET_DEVICES response, [`GetDevicesOrder::NextThenCount`] (6 bytes),
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

// ---------------------------------------------------------------------------------------------
// Decoding helpers
// ---------------------------------------------------------------------------------------------

/// Parses the header, checks the type byte and returns the header and the payload.
fn open(frame: &[u8], want_type: u8) -> Result<(Header, &[u8]), DecodeError> {
    let header = Header::parse(frame)?;
    if header.msg_type != want_type {
        return Err(DecodeError::BadType(header.msg_type));
    }
    Ok((header, header.payload(frame)))
}

/// Opens a bus frame: type as [`open`], then `dev_num` must be 0.
fn open_bus(frame: &[u8], want_type: u8) -> Result<(Header, &[u8]), DecodeError> {
    let (header, payload) = open(frame, want_type)?;
    if header.dev_num != 0 {
        return Err(DecodeError::Range);
    }
    Ok((header, payload))
}

/// The size error for `payload` when the payload should be `need_payload` bytes.
fn bad_size(payload: &[u8], need_payload: usize) -> DecodeError {
    DecodeError::BadSize {
        got: HEADER_SIZE.saturating_add(payload.len()),
        need: HEADER_SIZE.saturating_add(need_payload),
    }
}

/// The payload must be empty.
fn empty(payload: &[u8]) -> Result<(), DecodeError> {
    if payload.is_empty() {
        Ok(())
    } else {
        Err(bad_size(payload, 0))
    }
}

/// The payload must be exactly one `T`.
fn exact<T: FromBytes + KnownLayout + Immutable>(payload: &[u8]) -> Result<&T, DecodeError> {
    T::ref_from_bytes(payload).map_err(|_| bad_size(payload, size_of::<T>()))
}

/// The payload must be a `T` followed by exactly `tail_len(t)` bytes (`None` = the declared
/// length overflows). Returns the fixed part and the tail.
fn with_tail<T: FromBytes + KnownLayout + Immutable>(
    payload: &[u8],
    tail_len: impl FnOnce(&T) -> Option<usize>,
) -> Result<(&T, &[u8]), DecodeError> {
    let (fixed, tail) =
        T::ref_from_prefix(payload).map_err(|_| bad_size(payload, size_of::<T>()))?;
    let need = tail_len(fixed).and_then(|n| n.checked_add(size_of::<T>()));
    match need {
        Some(need) if need == payload.len() => Ok((fixed, tail)),
        Some(need) => Err(bad_size(payload, need)),
        None => Err(bad_size(payload, usize::MAX)),
    }
}

/// A byte count from a 32-bit wire field.
fn byte_len(n: U32) -> Option<usize> {
    usize::try_from(n.get()).ok()
}

/// The byte length of `n` feature blocks.
fn blocks_len(n: U32) -> Option<usize> {
    byte_len(n)?.checked_mul(4)
}

/// The bitmap length for a GET_DEVICES window of `count` device numbers.
fn bitmap_len(count: u16) -> usize {
    usize::from(count).div_ceil(8)
}

/// A reserved field must be zero.
fn reserved_zero(value: u32) -> Result<(), DecodeError> {
    if value == 0 {
        Ok(())
    } else {
        Err(DecodeError::Reserved)
    }
}

/// Feature words validated by [`with_tail`] (always a multiple of 4 bytes).
fn feature_blocks(tail: &[u8]) -> Result<FeatureBlocks<'_>, DecodeError> {
    FeatureBlocks::from_le_bytes(tail).ok_or(DecodeError::Range)
}

// ---------------------------------------------------------------------------------------------
// Encoding helpers
// ---------------------------------------------------------------------------------------------

/// Writes a frame: `header` (its `msg_size` is replaced by the real size) followed by `parts`.
/// Fails with [`EncodeError::TooBig`] if the frame exceeds `out` or `u16::MAX` bytes.
fn emit(out: &mut [u8], mut header: Header, parts: &[&[u8]]) -> Result<usize, EncodeError> {
    let need = parts
        .iter()
        .try_fold(HEADER_SIZE, |acc, part| acc.checked_add(part.len()))
        .ok_or(EncodeError::TooBig { need: usize::MAX })?;
    header.msg_size = u16::try_from(need).map_err(|_| EncodeError::TooBig { need })?;
    let frame = out.get_mut(..need).ok_or(EncodeError::TooBig { need })?;
    let (head, mut rest) = frame
        .split_at_mut_checked(HEADER_SIZE)
        .ok_or(EncodeError::TooBig { need })?;
    header.write(head).ok_or(EncodeError::TooBig { need })?;
    for part in parts {
        let (dst, tail) = core::mem::take(&mut rest)
            .split_at_mut_checked(part.len())
            .ok_or(EncodeError::TooBig { need })?;
        dst.copy_from_slice(part);
        rest = tail;
    }
    Ok(need)
}

/// A header for [`emit`] (`msg_size` filled in there).
fn head(msg_type: u8, msg_id: u8, dev_num: u16, token: u16) -> Header {
    Header {
        msg_type,
        msg_id,
        dev_num,
        token,
        msg_size: 0,
    }
}

/// A length for a 32-bit wire field; anything wider cannot fit a frame anyway.
fn wire_len(len: usize) -> Result<U32, EncodeError> {
    u32::try_from(len)
        .map(U32::new)
        .map_err(|_| EncodeError::TooBig { need: len })
}

/// A value for a narrower wire field, or [`EncodeError::Unrepresentable`].
fn narrow<T: TryFrom<V>, V>(value: V) -> Result<T, EncodeError> {
    T::try_from(value).map_err(|_| EncodeError::Unrepresentable)
}

/// Fails with [`EncodeError::Unrepresentable`] unless `ok`.
fn representable(ok: bool) -> Result<(), EncodeError> {
    if ok {
        Ok(())
    } else {
        Err(EncodeError::Unrepresentable)
    }
}

// ---------------------------------------------------------------------------------------------
// Transport requests (driver → device, type 0x00)
// ---------------------------------------------------------------------------------------------

/// The message id of `req`.
pub(crate) fn request_id(req: &TransportRequest<'_>) -> u8 {
    use ids::transport as id;
    match req {
        TransportRequest::GetDeviceInfo => id::GET_DEVICE_INFO,
        TransportRequest::GetDeviceFeatures { .. } => id::GET_DEVICE_FEATURES,
        TransportRequest::SetDriverFeatures { .. } => id::SET_DRIVER_FEATURES,
        TransportRequest::GetConfig { .. } => id::GET_CONFIG,
        TransportRequest::SetConfig { .. } => id::SET_CONFIG,
        TransportRequest::GetDeviceStatus => id::GET_DEVICE_STATUS,
        TransportRequest::SetDeviceStatus { .. } => id::SET_DEVICE_STATUS,
        TransportRequest::GetVqueue { .. } => id::GET_VQUEUE,
        TransportRequest::SetVqueue { .. } => id::SET_VQUEUE,
        TransportRequest::ResetVqueue { .. } => id::RESET_VQUEUE,
        TransportRequest::GetShm { .. } => id::GET_SHM,
        TransportRequest::EventAvail { .. } => id::EVENT_AVAIL,
    }
}

/// Decodes a driver→device frame: one of the 11 requests or EVENT_AVAIL.
pub(crate) fn decode_request(
    frame: &[u8],
    layout: Layout,
) -> Result<(Header, TransportRequest<'_>), DecodeError> {
    let (header, p) = open(frame, TYPE_TRANSPORT_REQUEST)?;
    Ok((header, decode_request_payload(&header, p, layout)?))
}

/// [`decode_request`] for a frame whose header was parsed already: `p` is its payload (bytes
/// 8..msg_size). Checks rules 2, 4, 5 and 6.
pub(crate) fn decode_request_payload<'a>(
    header: &Header,
    p: &'a [u8],
    layout: Layout,
) -> Result<TransportRequest<'a>, DecodeError> {
    use ids::transport as id;
    if header.msg_type != TYPE_TRANSPORT_REQUEST {
        return Err(DecodeError::BadType(header.msg_type));
    }
    let req = match header.msg_id {
        id::GET_DEVICE_INFO => {
            empty(p)?;
            TransportRequest::GetDeviceInfo
        }
        id::GET_DEVICE_FEATURES => {
            let raw: &GetDeviceFeaturesReq = exact(p)?;
            TransportRequest::GetDeviceFeatures {
                block_index: raw.block_index.get(),
                num_blocks: raw.num_blocks.get(),
            }
        }
        id::SET_DRIVER_FEATURES => {
            let (raw, tail) = with_tail(p, |r: &FeatureBlocksFixed| blocks_len(r.num_blocks))?;
            TransportRequest::SetDriverFeatures {
                block_index: raw.block_index.get(),
                blocks: feature_blocks(tail)?,
            }
        }
        id::GET_CONFIG => {
            let raw: &GetConfigReq = exact(p)?;
            TransportRequest::GetConfig {
                offset: raw.offset.get(),
                length: raw.length.get(),
            }
        }
        id::SET_CONFIG => {
            let (raw, data) = with_tail(p, |r: &ConfigFixed| byte_len(r.length))?;
            TransportRequest::SetConfig {
                generation: raw.generation.get(),
                offset: raw.offset.get(),
                data,
            }
        }
        id::GET_DEVICE_STATUS => {
            empty(p)?;
            TransportRequest::GetDeviceStatus
        }
        id::SET_DEVICE_STATUS => TransportRequest::SetDeviceStatus {
            status: exact::<DeviceStatusMsg>(p)?.status.get(),
        },
        id::GET_VQUEUE => TransportRequest::GetVqueue {
            index: exact::<IndexMsg>(p)?.index.get(),
        },
        id::SET_VQUEUE => decode_set_vqueue(p, layout)?,
        id::RESET_VQUEUE => TransportRequest::ResetVqueue {
            index: exact::<IndexMsg>(p)?.index.get(),
        },
        id::GET_SHM => TransportRequest::GetShm {
            index: exact::<IndexMsg>(p)?.index.get(),
        },
        id::EVENT_AVAIL => {
            let raw: &EventAvail = exact(p)?;
            TransportRequest::EventAvail {
                vq_index: raw.vq_index.get(),
                next_offset: raw.next_offset.get(),
            }
        }
        other => return Err(DecodeError::UnknownId(other)),
    };
    Ok(req)
}

/// SET_VQUEUE payload: 40 bytes in both layouts; Dec-2025 also accepts the 36-byte G2 form.
fn decode_set_vqueue(p: &[u8], layout: Layout) -> Result<TransportRequest<'_>, DecodeError> {
    if layout == Layout::Pr28 && p.len() == size_of::<SetVqueueReqShort>() {
        let raw: &SetVqueueReqShort = exact(p)?;
        reserved_zero(raw.reserved.get())?;
        return Ok(TransportRequest::SetVqueue {
            index: raw.index.get(),
            flags: 0,
            size: raw.size.get(),
            desc_addr: raw.desc_addr.get(),
            driver_addr: raw.driver_addr.get(),
            device_addr: raw.device_addr.get(),
        });
    }
    let raw: &SetVqueueReq = exact(p)?;
    reserved_zero(raw.reserved.get())?;
    let flags = raw.flags.get();
    match layout {
        Layout::Pr28 => reserved_zero(flags)?,
        Layout::V1Review if flags > SET_VQUEUE_OP_ENABLE => return Err(DecodeError::Range),
        Layout::V1Review => {}
    }
    Ok(TransportRequest::SetVqueue {
        index: raw.index.get(),
        flags,
        size: raw.size.get(),
        desc_addr: raw.desc_addr.get(),
        driver_addr: raw.driver_addr.get(),
        device_addr: raw.device_addr.get(),
    })
}

/// Encodes a driver→device frame. Dec-2025 SET_VQUEUE is written in the 48-byte form.
pub(crate) fn encode_request(
    req: &TransportRequest<'_>,
    layout: Layout,
    dev_num: u16,
    token: u16,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let h = head(TYPE_TRANSPORT_REQUEST, request_id(req), dev_num, token);
    match *req {
        TransportRequest::GetDeviceInfo | TransportRequest::GetDeviceStatus => emit(out, h, &[]),
        TransportRequest::GetDeviceFeatures {
            block_index,
            num_blocks,
        } => {
            let raw = GetDeviceFeaturesReq {
                block_index: block_index.into(),
                num_blocks: num_blocks.into(),
            };
            emit(out, h, &[raw.as_bytes()])
        }
        TransportRequest::SetDriverFeatures {
            block_index,
            blocks,
        } => {
            let raw = FeatureBlocksFixed {
                block_index: block_index.into(),
                num_blocks: wire_len(blocks.len())?,
            };
            emit(out, h, &[raw.as_bytes(), blocks.as_bytes()])
        }
        TransportRequest::GetConfig { offset, length } => {
            let raw = GetConfigReq {
                offset: offset.into(),
                length: length.into(),
            };
            emit(out, h, &[raw.as_bytes()])
        }
        TransportRequest::SetConfig {
            generation,
            offset,
            data,
        } => {
            let raw = ConfigFixed {
                generation: generation.into(),
                offset: offset.into(),
                length: wire_len(data.len())?,
            };
            emit(out, h, &[raw.as_bytes(), data])
        }
        TransportRequest::SetDeviceStatus { status } => {
            let raw = DeviceStatusMsg {
                status: status.into(),
            };
            emit(out, h, &[raw.as_bytes()])
        }
        TransportRequest::GetVqueue { index }
        | TransportRequest::ResetVqueue { index }
        | TransportRequest::GetShm { index } => {
            let raw = IndexMsg {
                index: index.into(),
            };
            emit(out, h, &[raw.as_bytes()])
        }
        TransportRequest::SetVqueue {
            index,
            flags,
            size,
            desc_addr,
            driver_addr,
            device_addr,
        } => {
            representable(match layout {
                Layout::V1Review => flags <= SET_VQUEUE_OP_ENABLE,
                Layout::Pr28 => flags == 0,
            })?;
            let raw = SetVqueueReq {
                index: index.into(),
                flags: flags.into(),
                size: size.into(),
                reserved: 0.into(),
                desc_addr: desc_addr.into(),
                driver_addr: driver_addr.into(),
                device_addr: device_addr.into(),
            };
            emit(out, h, &[raw.as_bytes()])
        }
        TransportRequest::EventAvail {
            vq_index,
            next_offset,
        } => {
            let raw = EventAvail {
                vq_index: vq_index.into(),
                next_offset: next_offset.into(),
            };
            emit(out, h, &[raw.as_bytes()])
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Transport responses (device → driver, type 0x01)
// ---------------------------------------------------------------------------------------------

/// The request id a response variant answers.
fn response_id(resp: &TransportResponse<'_>) -> u8 {
    use ids::transport as id;
    match resp {
        TransportResponse::DeviceInfo(_) => id::GET_DEVICE_INFO,
        TransportResponse::DeviceFeatures { .. } => id::GET_DEVICE_FEATURES,
        TransportResponse::SetDriverFeatures => id::SET_DRIVER_FEATURES,
        TransportResponse::Config { .. } => id::GET_CONFIG,
        TransportResponse::SetConfig { .. } => id::SET_CONFIG,
        TransportResponse::DeviceStatus { .. } => id::GET_DEVICE_STATUS,
        TransportResponse::SetDeviceStatus { .. } => id::SET_DEVICE_STATUS,
        TransportResponse::Vqueue { .. } => id::GET_VQUEUE,
        TransportResponse::SetVqueue => id::SET_VQUEUE,
        TransportResponse::ResetVqueue => id::RESET_VQUEUE,
        TransportResponse::Shm { .. } => id::GET_SHM,
    }
}

/// Decodes a device→driver response to the request with id `request_id`. A response whose
/// `msg_id` differs from `request_id` is refused with [`DecodeError::UnknownId`] carrying the id
/// found; so is a `request_id` that has no response (e.g. EVENT_AVAIL).
pub(crate) fn decode_response(
    frame: &[u8],
    layout: Layout,
    request_id: u8,
) -> Result<(Header, TransportResponse<'_>), DecodeError> {
    use ids::transport as id;
    let (header, p) = open(frame, TYPE_TRANSPORT_RESPONSE)?;
    if header.msg_id != request_id {
        return Err(DecodeError::UnknownId(header.msg_id));
    }
    let resp = match request_id {
        id::GET_DEVICE_INFO => TransportResponse::DeviceInfo(decode_device_info(p, layout)?),
        id::GET_DEVICE_FEATURES => {
            let (raw, tail) = with_tail(p, |r: &FeatureBlocksFixed| blocks_len(r.num_blocks))?;
            TransportResponse::DeviceFeatures {
                block_index: raw.block_index.get(),
                blocks: feature_blocks(tail)?,
            }
        }
        id::SET_DRIVER_FEATURES => {
            empty(p)?;
            TransportResponse::SetDriverFeatures
        }
        id::GET_CONFIG => {
            let (raw, data) = with_tail(p, |r: &ConfigFixed| byte_len(r.length))?;
            TransportResponse::Config {
                generation: raw.generation.get(),
                offset: raw.offset.get(),
                data,
            }
        }
        id::SET_CONFIG => {
            // 12 bytes, or 12 plus an echo of exactly `length` bytes (the echo is not kept).
            let (raw, echo) = ConfigFixed::ref_from_prefix(p)
                .map_err(|_| bad_size(p, size_of::<ConfigFixed>()))?;
            if !echo.is_empty() {
                with_tail(p, |r: &ConfigFixed| byte_len(r.length))?;
            }
            TransportResponse::SetConfig {
                generation: raw.generation.get(),
                offset: raw.offset.get(),
                length: raw.length.get(),
            }
        }
        id::GET_DEVICE_STATUS => TransportResponse::DeviceStatus {
            status: exact::<DeviceStatusMsg>(p)?.status.get(),
        },
        id::SET_DEVICE_STATUS => TransportResponse::SetDeviceStatus {
            status: exact::<DeviceStatusMsg>(p)?.status.get(),
        },
        id::GET_VQUEUE => {
            let raw: &GetVqueueResp = exact(p)?;
            let flags = raw.flags.get();
            match layout {
                Layout::Pr28 => reserved_zero(flags)?,
                Layout::V1Review if flags & !VQUEUE_FLAG_ENABLED != 0 => {
                    return Err(DecodeError::Range);
                }
                Layout::V1Review => {}
            }
            TransportResponse::Vqueue {
                index: raw.index.get(),
                max_size: raw.max_size.get(),
                cur_size: raw.cur_size.get(),
                flags,
                desc_addr: raw.desc_addr.get(),
                driver_addr: raw.driver_addr.get(),
                device_addr: raw.device_addr.get(),
            }
        }
        id::SET_VQUEUE => {
            empty(p)?;
            TransportResponse::SetVqueue
        }
        id::RESET_VQUEUE => {
            empty(p)?;
            TransportResponse::ResetVqueue
        }
        id::GET_SHM => match layout {
            Layout::Pr28 => {
                let raw: &GetShmRespPr28 = exact(p)?;
                TransportResponse::Shm {
                    index: raw.index.get(),
                    length: u64::from(raw.length.get()),
                    address: u64::from(raw.address.get()),
                }
            }
            Layout::V1Review => {
                let raw: &GetShmRespV1Review = exact(p)?;
                reserved_zero(raw.reserved.get())?;
                TransportResponse::Shm {
                    index: raw.shmid.get(),
                    length: raw.length.get(),
                    address: raw.address.get(),
                }
            }
        },
        other => return Err(DecodeError::UnknownId(other)),
    };
    Ok((header, resp))
}

/// GET_DEVICE_INFO response payload in `layout`.
fn decode_device_info(p: &[u8], layout: Layout) -> Result<DeviceInfo, DecodeError> {
    match layout {
        Layout::Pr28 => {
            let raw: &GetDeviceInfoRespPr28 = exact(p)?;
            let num_feature_bits = raw.num_feature_bits.get();
            if !num_feature_bits.is_multiple_of(32) {
                return Err(DecodeError::Range);
            }
            Ok(DeviceInfo {
                device_id: raw.device_id.get(),
                vendor_id: raw.vendor_id.get(),
                device_uuid: [0; 16],
                num_feature_bits,
                config_size: raw.config_size.get(),
                max_virtqueues: raw.max_virtqueues.get(),
                admin_vq_start: u32::from(raw.admin_vq_start.get()),
                admin_vq_count: u32::from(raw.admin_vq_count.get()),
            })
        }
        Layout::V1Review => {
            let raw: &GetDeviceInfoRespV1Review = exact(p)?;
            Ok(DeviceInfo {
                device_id: raw.device_id.get(),
                vendor_id: raw.vendor_id.get(),
                device_uuid: raw.device_uuid,
                num_feature_bits: raw
                    .num_feature_blocks
                    .get()
                    .checked_mul(32)
                    .ok_or(DecodeError::Range)?,
                config_size: raw.config_size.get(),
                max_virtqueues: raw.max_virtqueues.get(),
                admin_vq_start: raw.admin_vq_start.get(),
                admin_vq_count: raw.admin_vq_count.get(),
            })
        }
    }
}

/// Encodes the response to `request`: type 0x01, with `msg_id`, `dev_num` and `token` echoed.
/// A response variant that does not answer `request.msg_id` is
/// [`EncodeError::Unrepresentable`].
pub(crate) fn encode_response(
    resp: &TransportResponse<'_>,
    layout: Layout,
    request: &Header,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    representable(response_id(resp) == request.msg_id)?;
    let h = head(
        TYPE_TRANSPORT_RESPONSE,
        request.msg_id,
        request.dev_num,
        request.token,
    );
    match *resp {
        TransportResponse::DeviceInfo(ref info) => encode_device_info(info, layout, h, out),
        TransportResponse::DeviceFeatures {
            block_index,
            blocks,
        } => {
            let raw = FeatureBlocksFixed {
                block_index: block_index.into(),
                num_blocks: wire_len(blocks.len())?,
            };
            emit(out, h, &[raw.as_bytes(), blocks.as_bytes()])
        }
        TransportResponse::SetDriverFeatures
        | TransportResponse::SetVqueue
        | TransportResponse::ResetVqueue => emit(out, h, &[]),
        TransportResponse::Config {
            generation,
            offset,
            data,
        } => {
            let raw = ConfigFixed {
                generation: generation.into(),
                offset: offset.into(),
                length: wire_len(data.len())?,
            };
            emit(out, h, &[raw.as_bytes(), data])
        }
        TransportResponse::SetConfig {
            generation,
            offset,
            length,
        } => {
            let raw = ConfigFixed {
                generation: generation.into(),
                offset: offset.into(),
                length: length.into(),
            };
            emit(out, h, &[raw.as_bytes()])
        }
        TransportResponse::DeviceStatus { status }
        | TransportResponse::SetDeviceStatus { status } => {
            let raw = DeviceStatusMsg {
                status: status.into(),
            };
            emit(out, h, &[raw.as_bytes()])
        }
        TransportResponse::Vqueue {
            index,
            max_size,
            cur_size,
            flags,
            desc_addr,
            driver_addr,
            device_addr,
        } => {
            representable(match layout {
                Layout::V1Review => flags & !VQUEUE_FLAG_ENABLED == 0,
                Layout::Pr28 => flags == 0,
            })?;
            let raw = GetVqueueResp {
                index: index.into(),
                max_size: max_size.into(),
                cur_size: cur_size.into(),
                flags: flags.into(),
                desc_addr: desc_addr.into(),
                driver_addr: driver_addr.into(),
                device_addr: device_addr.into(),
            };
            emit(out, h, &[raw.as_bytes()])
        }
        TransportResponse::Shm {
            index,
            length,
            address,
        } => match layout {
            Layout::Pr28 => {
                let raw = GetShmRespPr28 {
                    index: index.into(),
                    length: U32::new(narrow(length)?),
                    address: U32::new(narrow(address)?),
                };
                emit(out, h, &[raw.as_bytes()])
            }
            Layout::V1Review => {
                let raw = GetShmRespV1Review {
                    shmid: index.into(),
                    reserved: 0.into(),
                    length: length.into(),
                    address: address.into(),
                };
                emit(out, h, &[raw.as_bytes()])
            }
        },
    }
}

/// GET_DEVICE_INFO response in `layout`. The Dec-2025 layout drops the UUID and needs the admin
/// fields to fit 16 bits; both layouts need a multiple of 32 feature bits.
fn encode_device_info(
    info: &DeviceInfo,
    layout: Layout,
    h: Header,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    representable(info.num_feature_bits.is_multiple_of(32))?;
    match layout {
        Layout::Pr28 => {
            let raw = GetDeviceInfoRespPr28 {
                device_id: info.device_id.into(),
                vendor_id: info.vendor_id.into(),
                num_feature_bits: info.num_feature_bits.into(),
                config_size: info.config_size.into(),
                max_virtqueues: info.max_virtqueues.into(),
                admin_vq_start: U16::new(narrow(info.admin_vq_start)?),
                admin_vq_count: U16::new(narrow(info.admin_vq_count)?),
            };
            emit(out, h, &[raw.as_bytes()])
        }
        Layout::V1Review => {
            let raw = GetDeviceInfoRespV1Review {
                device_id: info.device_id.into(),
                vendor_id: info.vendor_id.into(),
                device_uuid: info.device_uuid,
                num_feature_blocks: (info.num_feature_bits / 32).into(),
                config_size: info.config_size.into(),
                max_virtqueues: info.max_virtqueues.into(),
                admin_vq_start: info.admin_vq_start.into(),
                admin_vq_count: info.admin_vq_count.into(),
            };
            emit(out, h, &[raw.as_bytes()])
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Transport events (device → driver, type 0x00)
// ---------------------------------------------------------------------------------------------

/// Decodes a device→driver event: EVENT_CONFIG or EVENT_USED (same in both layouts).
pub(crate) fn decode_event(frame: &[u8]) -> Result<(Header, DeviceEvent<'_>), DecodeError> {
    let (header, p) = open(frame, TYPE_TRANSPORT_REQUEST)?;
    let event = match header.msg_id {
        ids::transport::EVENT_CONFIG => {
            let (raw, data) = with_tail(p, |r: &EventConfigFixed| byte_len(r.length))?;
            DeviceEvent::Config {
                device_status: raw.device_status.get(),
                generation: raw.generation.get(),
                offset: raw.offset.get(),
                data,
            }
        }
        ids::transport::EVENT_USED => DeviceEvent::Used {
            vq_index: exact::<IndexMsg>(p)?.index.get(),
        },
        other => return Err(DecodeError::UnknownId(other)),
    };
    Ok((header, event))
}

/// Encodes a device→driver event for `dev_num`, token 0.
pub(crate) fn encode_event(
    ev: &DeviceEvent<'_>,
    dev_num: u16,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    match *ev {
        DeviceEvent::Config {
            device_status,
            generation,
            offset,
            data,
        } => {
            let raw = EventConfigFixed {
                device_status: device_status.into(),
                generation: generation.into(),
                offset: offset.into(),
                length: wire_len(data.len())?,
            };
            let h = head(
                TYPE_TRANSPORT_REQUEST,
                ids::transport::EVENT_CONFIG,
                dev_num,
                0,
            );
            emit(out, h, &[raw.as_bytes(), data])
        }
        DeviceEvent::Used { vq_index } => {
            let raw = IndexMsg {
                index: vq_index.into(),
            };
            let h = head(
                TYPE_TRANSPORT_REQUEST,
                ids::transport::EVENT_USED,
                dev_num,
                0,
            );
            emit(out, h, &[raw.as_bytes()])
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bus messages (type 0x02 / 0x03, dev_num 0)
// ---------------------------------------------------------------------------------------------

/// Decodes a standard bus request: GET_DEVICES or PING. The GET_DEVICES window is not checked
/// for alignment (the bus layer decides; G2 asks for 255 devices).
pub(crate) fn decode_bus_request(frame: &[u8]) -> Result<(Header, BusRequest), DecodeError> {
    let (header, p) = open_bus(frame, TYPE_BUS_REQUEST)?;
    Ok((header, decode_bus_request_payload(&header, p)?))
}

/// [`decode_bus_request`] for a frame whose header was parsed already: `p` is its payload
/// (bytes 8..msg_size). Checks rules 2 to 5.
pub(crate) fn decode_bus_request_payload(
    header: &Header,
    p: &[u8],
) -> Result<BusRequest, DecodeError> {
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
