//! The transport messages as validated typed values, and the constants their fields use.

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
        let (words, _) = self.bytes.as_chunks::<4>();
        words.iter().map(|w| u32::from_le_bytes(*w))
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
