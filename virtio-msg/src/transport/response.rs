//! The codec of the device→driver transport responses ([`TransportResponse`], type 0x01), in
//! both wire layouts.

use core::mem::size_of;

use zerocopy::{
    FromBytes, IntoBytes,
    little_endian::{U16, U32},
};

use super::{
    raw::{
        ConfigFixed, DeviceStatusMsg, FeatureBlocksFixed, GetDeviceInfoRespPr28,
        GetDeviceInfoRespV1Review, GetShmRespPr28, GetShmRespV1Review, GetVqueueResp,
    },
    request::{blocks_len, feature_blocks},
    values::{DeviceInfo, TransportResponse, VQUEUE_FLAG_ENABLED},
};
use crate::{
    error::{DecodeError, EncodeError},
    frame::{
        bad_size, byte_len, emit, empty, exact, head, narrow, open, representable, reserved_zero,
        wire_len, with_tail,
    },
    header::{Header, TYPE_TRANSPORT_RESPONSE},
    ids,
    layout::Layout,
};

impl<'a> TransportResponse<'a> {
    /// Decodes a device→driver response frame (type 0x01) answering `request_id`.
    pub fn decode(
        frame: &'a [u8],
        layout: Layout,
        request_id: u8,
    ) -> Result<(Header, Self), DecodeError> {
        decode_response(frame, layout, request_id)
    }

    /// Encodes the response to `request` (its header's dev_num, msg_id and token are echoed)
    /// into `out`; returns its length.
    pub fn encode(
        &self,
        layout: Layout,
        request: &Header,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        encode_response(self, layout, request, out)
    }
}

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
