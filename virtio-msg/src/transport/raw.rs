//! The raw payload layouts of the transport messages, as zerocopy structs named after the
//! message they carry (payload offsets; the wire offset is 8 more).

use core::mem::size_of;

use zerocopy::{
    FromBytes, Immutable, IntoBytes, KnownLayout,
    little_endian::{U16, U32, U64},
};

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
