//! The codec of the device→driver transport events ([`DeviceEvent`]: EVENT_CONFIG and
//! EVENT_USED, type 0x00, the same in both layouts).

use zerocopy::IntoBytes;

use super::{
    raw::{EventConfigFixed, IndexMsg},
    values::DeviceEvent,
};
use crate::{
    error::{DecodeError, EncodeError},
    frame::{byte_len, emit, exact, head, open, wire_len, with_tail},
    header::{Header, TYPE_TRANSPORT_REQUEST},
    ids,
};

impl<'a> DeviceEvent<'a> {
    /// Decodes a device→driver event frame (type 0x00, id 0x40 or 0x42).
    pub fn decode(frame: &'a [u8]) -> Result<(Header, Self), DecodeError> {
        decode_event(frame)
    }

    /// Encodes the event for device `dev_num` with token 0; returns its length.
    pub fn encode(&self, dev_num: u16, out: &mut [u8]) -> Result<usize, EncodeError> {
        encode_event(self, dev_num, out)
    }
}

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
