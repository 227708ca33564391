//! The codec of the driver→device transport frames ([`TransportRequest`]: the 11 requests and
//! EVENT_AVAIL, type 0x00).

use core::mem::size_of;

use zerocopy::{IntoBytes, little_endian::U32};

use super::{
    raw::{
        ConfigFixed, DeviceStatusMsg, EventAvail, FeatureBlocksFixed, GetConfigReq,
        GetDeviceFeaturesReq, IndexMsg, SetVqueueReq, SetVqueueReqShort,
    },
    values::{FeatureBlocks, SET_VQUEUE_OP_ENABLE, TransportRequest},
};
use crate::{
    error::{DecodeError, EncodeError},
    frame::{
        byte_len, emit, empty, exact, head, open, representable, reserved_zero, wire_len, with_tail,
    },
    header::{Header, TYPE_TRANSPORT_REQUEST},
    ids,
    layout::Layout,
};

impl<'a> TransportRequest<'a> {
    /// Decodes a driver→device transport frame (type 0x00, request or event). The header is
    /// returned too, for the response's echo of `dev_num`, `msg_id` and `token`.
    pub fn decode(frame: &'a [u8], layout: Layout) -> Result<(Header, Self), DecodeError> {
        decode_request(frame, layout)
    }

    /// [`TransportRequest::decode`] for a frame whose header the bus parsed already: `payload`
    /// is that frame's bytes 8..msg_size ([`Header::payload`]). The header is not parsed again.
    pub fn decode_payload(
        header: &Header,
        payload: &'a [u8],
        layout: Layout,
    ) -> Result<Self, DecodeError> {
        decode_request_payload(header, payload, layout)
    }

    /// Encodes the frame (header: type, msg_id and msg_size filled in here; dev_num and token
    /// from the arguments) into `out`; returns its length.
    pub fn encode(
        &self,
        layout: Layout,
        dev_num: u16,
        token: u16,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        encode_request(self, layout, dev_num, token, out)
    }

    /// The message id of this request.
    pub fn msg_id(&self) -> u8 {
        request_id(self)
    }
}

/// The byte length of `n` feature blocks.
pub(super) fn blocks_len(n: U32) -> Option<usize> {
    byte_len(n)?.checked_mul(4)
}

/// Feature words validated by [`with_tail`] (always a multiple of 4 bytes).
pub(super) fn feature_blocks(tail: &[u8]) -> Result<FeatureBlocks<'_>, DecodeError> {
    FeatureBlocks::from_le_bytes(tail).ok_or(DecodeError::Range)
}

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
/// 8..msg_size).
fn decode_request_payload<'a>(
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
