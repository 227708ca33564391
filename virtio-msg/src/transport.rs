//! Transport messages (driver ⇄ device), as validated typed values.
//!
//! Decoding is strict: the header's `msg_size` must equal the frame length the bus delivered (bus
//! padding excluded) and the exact size the message needs in the session's [`Layout`] (variable
//! messages: their fixed part plus the length they declare), reserved fields must be zero,
//! lengths and counts must fit. Encoding writes a complete frame (header included) and returns
//! its length; it never writes past the buffer.
//!
//! Payload offsets and sizes are documented on the raw wire structs in `wire`.

use crate::{Header, Layout};

/// Virtio device status bits (the 32-bit `status` field).
pub mod status {
    /// ACKNOWLEDGE.
    pub const ACKNOWLEDGE: u32 = 1;
    /// DRIVER.
    pub const DRIVER: u32 = 2;
    /// DRIVER_OK.
    pub const DRIVER_OK: u32 = 4;
    /// FEATURES_OK.
    pub const FEATURES_OK: u32 = 8;
    /// DEVICE_NEEDS_RESET.
    pub const DEVICE_NEEDS_RESET: u32 = 0x40;
    /// FAILED.
    pub const FAILED: u32 = 0x80;
}

/// GET_VQUEUE response flag (2026 layout): the queue is enabled.
pub const VQUEUE_FLAG_ENABLED: u32 = 1;
/// SET_VQUEUE request flag (2026 layout): configure and enable the queue.
pub const SET_VQUEUE_OP_ENABLE: u32 = 1;

/// What GET_DEVICE_INFO returns, in layout-independent form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Virtio device type (0 = no device).
    pub device_id: u32,
    /// Vendor id.
    pub vendor_id: u32,
    /// Device UUID (2026 layout only; nil when absent).
    pub device_uuid: [u8; 16],
    /// Number of feature bits, a multiple of 32 (the 2026 layout carries it as 32-bit blocks).
    pub num_feature_bits: u32,
    /// Size of the device configuration space in bytes.
    pub config_size: u32,
    /// Number of virtqueues, admin queues included.
    pub max_virtqueues: u32,
    /// First admin virtqueue (16 bits wide in the Dec-2025 layout).
    pub admin_vq_start: u32,
    /// Number of admin virtqueues (16 bits wide in the Dec-2025 layout).
    pub admin_vq_count: u32,
}

/// A run of 32-bit feature blocks as carried on the wire (little-endian words), borrowed from a
/// frame or from the encoder's caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureBlocks<'a> {
    bytes: &'a [u8],
}

impl<'a> FeatureBlocks<'a> {
    /// Wraps little-endian words; `None` if the length is not a multiple of 4.
    pub fn from_le_bytes(bytes: &'a [u8]) -> Option<Self> {
        bytes.len().is_multiple_of(4).then_some(Self { bytes })
    }

    /// The raw little-endian bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.bytes.len() / 4
    }

    /// Whether there are no blocks.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Block `i`, if present.
    pub fn get(&self, i: usize) -> Option<u32> {
        let start = i.checked_mul(4)?;
        let word = self.bytes.get(start..start.checked_add(4)?)?;
        Some(u32::from_le_bytes(word.try_into().ok()?))
    }

    /// Iterates over the blocks.
    pub fn iter(&self) -> impl Iterator<Item = u32> + 'a {
        self.bytes
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes(w.try_into().unwrap_or([0; 4])))
    }
}

/// A transport request or event sent by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportRequest<'a> {
    /// GET_DEVICE_INFO (0x02).
    GetDeviceInfo,
    /// GET_DEVICE_FEATURES (0x03).
    GetDeviceFeatures {
        /// First block (block k = feature bits 32k..32k+31).
        block_index: u32,
        /// Number of blocks wanted.
        num_blocks: u32,
    },
    /// SET_DRIVER_FEATURES (0x04).
    SetDriverFeatures {
        /// First block.
        block_index: u32,
        /// The driver's blocks (`num_blocks` on the wire = `blocks.len()`).
        blocks: FeatureBlocks<'a>,
    },
    /// GET_CONFIG (0x05).
    GetConfig {
        /// Byte offset into the configuration space.
        offset: u32,
        /// Bytes wanted (0 reads only the generation).
        length: u32,
    },
    /// SET_CONFIG (0x06).
    SetConfig {
        /// The driver's view of the generation.
        generation: u32,
        /// Byte offset into the configuration space.
        offset: u32,
        /// Bytes to write (`length` on the wire = `data.len()`).
        data: &'a [u8],
    },
    /// GET_DEVICE_STATUS (0x07).
    GetDeviceStatus,
    /// SET_DEVICE_STATUS (0x08); 0 resets the device.
    SetDeviceStatus {
        /// New status.
        status: u32,
    },
    /// GET_VQUEUE (0x09).
    GetVqueue {
        /// Queue index.
        index: u32,
    },
    /// SET_VQUEUE (0x0A).
    SetVqueue {
        /// Queue index.
        index: u32,
        /// 2026: [`SET_VQUEUE_OP_ENABLE`] or 0; always 0 in the Dec-2025 layout (reserved).
        flags: u32,
        /// Queue size.
        size: u32,
        /// Descriptor area bus address.
        desc_addr: u64,
        /// Driver (available) area bus address.
        driver_addr: u64,
        /// Device (used) area bus address.
        device_addr: u64,
    },
    /// RESET_VQUEUE (0x0B).
    ResetVqueue {
        /// Queue index.
        index: u32,
    },
    /// GET_SHM (0x0C).
    GetShm {
        /// Shared memory region id.
        index: u32,
    },
    /// EVENT_AVAIL (0x41), an event: it gets no transport response.
    EventAvail {
        /// Queue index.
        vq_index: u32,
        /// bits[30:0] offset, bit 31 wrap; 0 unless VIRTIO_F_NOTIFICATION_DATA.
        next_offset: u32,
    },
}

/// A transport response sent by the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportResponse<'a> {
    /// GET_DEVICE_INFO response.
    DeviceInfo(DeviceInfo),
    /// GET_DEVICE_FEATURES response.
    DeviceFeatures {
        /// Echo of the first block.
        block_index: u32,
        /// The blocks (`num_blocks` on the wire = `blocks.len()`).
        blocks: FeatureBlocks<'a>,
    },
    /// SET_DRIVER_FEATURES response (empty).
    SetDriverFeatures,
    /// GET_CONFIG response.
    Config {
        /// Current generation.
        generation: u32,
        /// Echo of the offset.
        offset: u32,
        /// The bytes read (`length` on the wire = `data.len()`).
        data: &'a [u8],
    },
    /// SET_CONFIG response.
    SetConfig {
        /// Resulting generation.
        generation: u32,
        /// Echo of the offset.
        offset: u32,
        /// Bytes applied: the requested length, or 0 = rejected.
        length: u32,
    },
    /// GET_DEVICE_STATUS response.
    DeviceStatus {
        /// Current status.
        status: u32,
    },
    /// SET_DEVICE_STATUS response.
    SetDeviceStatus {
        /// Resulting status.
        status: u32,
    },
    /// GET_VQUEUE response.
    Vqueue {
        /// Queue index.
        index: u32,
        /// Maximum size; 0 = the queue does not exist (then every other field is 0).
        max_size: u32,
        /// Current size; 0 = not configured (then the addresses are 0 and not enabled).
        cur_size: u32,
        /// 2026: [`VQUEUE_FLAG_ENABLED`] or 0; always 0 in the Dec-2025 layout (reserved).
        flags: u32,
        /// Descriptor area bus address.
        desc_addr: u64,
        /// Driver area bus address.
        driver_addr: u64,
        /// Device area bus address.
        device_addr: u64,
    },
    /// SET_VQUEUE response (empty).
    SetVqueue,
    /// RESET_VQUEUE response (empty).
    ResetVqueue,
    /// GET_SHM response; `length` 0 = no such region.
    Shm {
        /// Echo of the region id.
        index: u32,
        /// Region length (32 bits wide in the Dec-2025 layout).
        length: u64,
        /// Region address (32 bits wide in the Dec-2025 layout).
        address: u64,
    },
}

/// An event sent by the device (no response expected).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceEvent<'a> {
    /// EVENT_CONFIG (0x40).
    Config {
        /// Current device status.
        device_status: u32,
        /// Generation after the change.
        generation: u32,
        /// Offset of the changed bytes.
        offset: u32,
        /// The changed bytes, if carried (`length` on the wire = `data.len()`, 0 = refetch).
        data: &'a [u8],
    },
    /// EVENT_USED (0x42).
    Used {
        /// Queue index.
        vq_index: u32,
    },
}

/// Why a frame was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is shorter than the 8-byte header.
    #[error("frame shorter than the header")]
    Truncated,
    /// `msg_size` disagrees with the frame or with what the message needs.
    #[error("bad msg_size {got} (need {need})")]
    BadSize {
        /// Size found.
        got: usize,
        /// Size needed (smallest size for variable messages).
        need: usize,
    },
    /// The type byte does not match what was expected (request vs response, transport vs bus).
    #[error("unexpected type byte {0:#04x}")]
    BadType(u8),
    /// The message id is not known (or not allowed in this direction).
    #[error("unknown message id {0:#04x}")]
    UnknownId(u8),
    /// A reserved field or bit is not zero.
    #[error("reserved field not zero")]
    Reserved,
    /// A field is out of its allowed range.
    #[error("field out of range")]
    Range,
}

/// Why a frame could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The buffer is too small or the message exceeds the maximum size.
    #[error("message does not fit: {need} bytes")]
    TooBig {
        /// Bytes the message needs.
        need: usize,
    },
    /// A value cannot be represented in this layout (e.g. a 64-bit SHM length in Dec-2025).
    #[error("value not representable in this layout")]
    Unrepresentable,
}

impl<'a> TransportRequest<'a> {
    /// Decodes a driver→device transport frame (type 0x00, request or event). The header is
    /// returned too, for the response's echo of `dev_num`, `msg_id` and `token`.
    pub fn decode(frame: &'a [u8], layout: Layout) -> Result<(Header, Self), DecodeError> {
        crate::wire::decode_request(frame, layout)
    }

    /// [`TransportRequest::decode`] for a frame whose header the bus parsed already: `payload`
    /// is that frame's bytes 8..msg_size ([`Header::payload`]). The header is not parsed again.
    pub fn decode_payload(
        header: &Header,
        payload: &'a [u8],
        layout: Layout,
    ) -> Result<Self, DecodeError> {
        crate::wire::decode_request_payload(header, payload, layout)
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
        crate::wire::encode_request(self, layout, dev_num, token, out)
    }

    /// The message id of this request.
    pub fn msg_id(&self) -> u8 {
        crate::wire::request_id(self)
    }
}

impl<'a> TransportResponse<'a> {
    /// Decodes a device→driver response frame (type 0x01) answering `request_id`.
    pub fn decode(
        frame: &'a [u8],
        layout: Layout,
        request_id: u8,
    ) -> Result<(Header, Self), DecodeError> {
        crate::wire::decode_response(frame, layout, request_id)
    }

    /// Encodes the response to `request` (its header's dev_num, msg_id and token are echoed)
    /// into `out`; returns its length.
    pub fn encode(
        &self,
        layout: Layout,
        request: &Header,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        crate::wire::encode_response(self, layout, request, out)
    }
}

impl<'a> DeviceEvent<'a> {
    /// Decodes a device→driver event frame (type 0x00, id 0x40 or 0x42).
    pub fn decode(frame: &'a [u8]) -> Result<(Header, Self), DecodeError> {
        crate::wire::decode_event(frame)
    }

    /// Encodes the event for device `dev_num` with token 0; returns its length.
    pub fn encode(&self, dev_num: u16, out: &mut [u8]) -> Result<usize, EncodeError> {
        crate::wire::encode_event(self, dev_num, out)
    }
}
