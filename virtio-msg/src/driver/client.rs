//! [`DeviceClient`]: the driver for one device number, its error type and the validated values
//! it returns.

use alloc::{vec, vec::Vec};

use crate::{
    device::{QueueConfig, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1},
    error::{DecodeError, EncodeError},
    header::HEADER_SIZE,
    layout::Layout,
    transport::{
        DeviceInfo, FeatureBlocks, SET_VQUEUE_OP_ENABLE, TransportRequest, TransportResponse,
        VQUEUE_FLAG_ENABLED, status,
    },
};

use super::channel::{Channel, ChannelError};

#[cfg(test)]
mod tests;

/// GET/SET_CONFIG bytes besides the data: header, generation, offset, length.
const CONFIG_OVERHEAD: usize = 20;
/// GET/SET feature messages' bytes besides the blocks: header, block_index, num_blocks.
const FEATURES_OVERHEAD: usize = 16;
/// Multi-chunk config reads retried this often when the generation moves.
pub const CONFIG_READ_ATTEMPTS: u32 = 5;
/// GET_DEVICE_STATUS polls after a reset before giving up.
pub const RESET_POLLS: u32 = 100;

/// Why a client operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The channel failed.
    #[error("channel: {0}")]
    Channel(#[from] ChannelError),
    /// A request could not be encoded (e.g. it does not fit the maximum size).
    #[error("encoding: {0}")]
    Encode(#[from] EncodeError),
    /// The response did not decode as the answer to the request.
    #[error("bad response: {0}")]
    Decode(#[from] DecodeError),
    /// The bus's maximum message size is below what the layout needs.
    #[error("maximum message size {0} is below the layout's minimum")]
    MaxSizeTooSmall(usize),
    /// The response decoded but a header or echoed field is wrong.
    #[error("response field `{0}` does not match the request")]
    Mismatch(&'static str),
    /// The response is self-contradictory (e.g. GET_VQUEUE sentinels).
    #[error("inconsistent response: {0}")]
    Inconsistent(&'static str),
    /// GET_DEVICE_INFO reported device id 0.
    #[error("no device at this number")]
    NoDevice,
    /// A config access outside `config_size`.
    #[error("config access {offset:#x}+{len:#x} outside the configuration space")]
    ConfigOutOfRange {
        /// Offset asked for.
        offset: u32,
        /// Length asked for.
        len: usize,
    },
    /// The generation kept changing during a multi-chunk config read.
    #[error("configuration generation unstable")]
    GenerationUnstable,
    /// SET_CONFIG answered length 0.
    #[error("config write at {offset:#x} rejected")]
    ConfigRejected {
        /// Offset of the refused chunk.
        offset: u32,
    },
    /// The device does not offer VERSION_1 (legacy devices are not supported).
    #[error("device does not offer VIRTIO_F_VERSION_1")]
    NoVersion1,
    /// FEATURES_OK did not stick.
    #[error("device refused the feature set")]
    FeaturesRejected,
    /// The status did not read 0 after a reset.
    #[error("device did not complete reset")]
    ResetTimeout,
    /// DEVICE_NEEDS_RESET is set.
    #[error("device needs a reset")]
    NeedsReset,
    /// The queue does not exist (max size 0), or the wanted size is 0 or above its maximum.
    #[error("queue {index}: does not exist or size not allowed")]
    QueueInvalid {
        /// Queue index.
        index: u32,
    },
    /// GET_VQUEUE read-back after SET_VQUEUE did not show the configuration.
    #[error("queue {index}: device did not take the configuration")]
    QueueRejected {
        /// Queue index.
        index: u32,
    },
}

/// GET_VQUEUE, validated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VqueueInfo {
    /// Maximum size; 0 = the queue does not exist.
    pub max_size: u32,
    /// Current size; 0 = not configured.
    pub cur_size: u32,
    /// ENABLED flag (2026 layout; in Dec-2025 it equals `cur_size != 0`).
    pub enabled: bool,
    /// Descriptor area address.
    pub desc_addr: u64,
    /// Driver area address.
    pub driver_addr: u64,
    /// Device area address.
    pub device_addr: u64,
}

/// A device SHM region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmRegion {
    /// Bus address.
    pub address: u64,
    /// Length in bytes (never 0).
    pub length: u64,
}

/// A virtio-msg driver for one device number.
#[derive(Debug)]
pub struct DeviceClient<C: Channel> {
    channel: C,
    dev_num: u16,
    layout: Layout,
    max_size: usize,
    token: u16,
    generation: u32,
    config_size: Option<u32>,
    request: Vec<u8>,
    response: Vec<u8>,
}

impl<C: Channel> DeviceClient<C> {
    /// A client for device `dev_num` over `channel`, speaking `layout`. Fails if the channel's
    /// maximum size is below the layout's minimum.
    pub fn new(channel: C, dev_num: u16, layout: Layout) -> Result<Self, DriverError> {
        let max_size = channel.max_size().min(usize::from(u16::MAX));
        if max_size < usize::from(layout.min_max_size()) {
            return Err(DriverError::MaxSizeTooSmall(max_size));
        }
        Ok(Self {
            channel,
            dev_num,
            layout,
            max_size,
            token: 0,
            generation: 0,
            config_size: None,
            request: vec![0; max_size],
            response: vec![0; max_size],
        })
    }

    /// The channel.
    pub fn channel(&mut self) -> &mut C {
        &mut self.channel
    }

    /// Gives the channel back.
    pub fn into_channel(self) -> C {
        self.channel
    }

    /// The device number.
    pub fn dev_num(&self) -> u16 {
        self.dev_num
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The latest configuration generation seen.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    fn next_token(&mut self) -> u16 {
        self.token = self.token.wrapping_add(1).max(1);
        self.token
    }

    /// One request/response exchange, with the header checks.
    fn transact(
        &mut self,
        req: &TransportRequest<'_>,
    ) -> Result<TransportResponse<'_>, DriverError> {
        let token = self.next_token();
        let n = req.encode(self.layout, self.dev_num, token, &mut self.request)?;
        let frame = self
            .request
            .get(..n)
            .ok_or(EncodeError::TooBig { need: n })?;
        let got = self.channel.exchange(frame, &mut self.response)?;
        let frame = self
            .response
            .get(..got)
            .ok_or(DecodeError::BadSize { got, need: 0 })?;
        let (header, response) = TransportResponse::decode(frame, self.layout, req.msg_id())?;
        if header.dev_num != self.dev_num {
            return Err(DriverError::Mismatch("dev_num"));
        }
        if header.token != token {
            return Err(DriverError::Mismatch("token"));
        }
        Ok(response)
    }

    /// GET_DEVICE_INFO (send it first). Fails with [`DriverError::NoDevice`] for device id 0.
    pub fn get_device_info(&mut self) -> Result<DeviceInfo, DriverError> {
        let info = match self.transact(&TransportRequest::GetDeviceInfo)? {
            TransportResponse::DeviceInfo(info) => info,
            _ => return Err(DriverError::Mismatch("message")),
        };
        if info.device_id == 0 {
            return Err(DriverError::NoDevice);
        }
        if info.num_feature_bits % 32 != 0 {
            return Err(DriverError::Inconsistent(
                "num_feature_bits not a multiple of 32",
            ));
        }
        let admin_end = info.admin_vq_start.checked_add(info.admin_vq_count);
        if info.admin_vq_count != 0 && admin_end.is_none_or(|end| end > info.max_virtqueues) {
            return Err(DriverError::Inconsistent(
                "admin queues beyond max_virtqueues",
            ));
        }
        self.config_size = Some(info.config_size);
        Ok(info)
    }

    /// GET_DEVICE_FEATURES for `out.len()` blocks from `block_index` (in as many messages as
    /// the maximum size needs).
    pub fn get_features(&mut self, block_index: u32, out: &mut [u32]) -> Result<(), DriverError> {
        let per_message = self.max_size.saturating_sub(FEATURES_OVERHEAD) / 4;
        let mut index = block_index;
        // Cannot panic: the chunk size is at least 1.
        for chunk in out.chunks_mut(per_message.max(1)) {
            let n = u32::try_from(chunk.len()).map_err(|_| EncodeError::Unrepresentable)?;
            let req = TransportRequest::GetDeviceFeatures {
                block_index: index,
                num_blocks: n,
            };
            let TransportResponse::DeviceFeatures {
                block_index: echo,
                blocks,
            } = self.transact(&req)?
            else {
                return Err(DriverError::Mismatch("message"));
            };
            if echo != index {
                return Err(DriverError::Mismatch("block_index"));
            }
            if blocks.len() != chunk.len() {
                return Err(DriverError::Mismatch("num_blocks"));
            }
            for (dst, word) in chunk.iter_mut().zip(blocks.iter()) {
                *dst = word;
            }
            index = index.checked_add(n).ok_or(EncodeError::Unrepresentable)?;
        }
        Ok(())
    }

    /// The device's feature bits 0..63.
    pub fn device_features(&mut self) -> Result<u64, DriverError> {
        let mut blocks = [0u32; 2];
        self.get_features(0, &mut blocks)?;
        Ok(u64::from(blocks[0]) | (u64::from(blocks[1]) << 32))
    }

    /// SET_DRIVER_FEATURES of `blocks` from `block_index` (chunked to the maximum size).
    pub fn set_features(&mut self, block_index: u32, blocks: &[u32]) -> Result<(), DriverError> {
        let per_message = self.max_size.saturating_sub(FEATURES_OVERHEAD) / 4;
        let mut index = block_index;
        // Cannot panic: the chunk size is at least 1.
        for chunk in blocks.chunks(per_message.max(1)) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|w| w.to_le_bytes()).collect();
            let blocks =
                FeatureBlocks::from_le_bytes(&bytes).ok_or(EncodeError::Unrepresentable)?;
            let req = TransportRequest::SetDriverFeatures {
                block_index: index,
                blocks,
            };
            match self.transact(&req)? {
                TransportResponse::SetDriverFeatures => {}
                _ => return Err(DriverError::Mismatch("message")),
            }
            let n = u32::try_from(chunk.len()).map_err(|_| EncodeError::Unrepresentable)?;
            index = index.checked_add(n).ok_or(EncodeError::Unrepresentable)?;
        }
        Ok(())
    }

    /// Writes feature bits 0..63.
    pub fn set_driver_features(&mut self, features: u64) -> Result<(), DriverError> {
        let [b0, b1, b2, b3, b4, b5, b6, b7] = features.to_le_bytes();
        self.set_features(
            0,
            &[
                u32::from_le_bytes([b0, b1, b2, b3]),
                u32::from_le_bytes([b4, b5, b6, b7]),
            ],
        )
    }

    fn check_config_range(&self, offset: u32, len: usize) -> Result<(), DriverError> {
        let out = DriverError::ConfigOutOfRange { offset, len };
        let Some(size) = self.config_size else {
            return Ok(());
        };
        let len32 = u32::try_from(len).map_err(|_| out)?;
        match offset.checked_add(len32) {
            Some(end) if end <= size => Ok(()),
            _ => Err(out),
        }
    }

    /// One GET_CONFIG; returns the generation and copies the data into `buf`.
    fn get_config_chunk(&mut self, offset: u32, buf: &mut [u8]) -> Result<u32, DriverError> {
        let length = u32::try_from(buf.len()).map_err(|_| EncodeError::Unrepresentable)?;
        let TransportResponse::Config {
            generation,
            offset: echo,
            data,
        } = self.transact(&TransportRequest::GetConfig { offset, length })?
        else {
            return Err(DriverError::Mismatch("message"));
        };
        if echo != offset {
            return Err(DriverError::Mismatch("offset"));
        }
        if data.len() != buf.len() {
            return Err(DriverError::Mismatch("length"));
        }
        // Cannot panic: the lengths were compared above.
        buf.copy_from_slice(data);
        Ok(generation)
    }

    /// Reads `buf.len()` config bytes at `offset`, in chunks that fit the maximum size. If the
    /// generation changes between chunks the read starts over (at most
    /// [`CONFIG_READ_ATTEMPTS`] times). An empty `buf` reads only the generation. Returns the
    /// generation the bytes belong to.
    pub fn get_config(&mut self, offset: u32, buf: &mut [u8]) -> Result<u32, DriverError> {
        self.check_config_range(offset, buf.len())?;
        if buf.is_empty() {
            let generation = self.get_config_chunk(offset, buf)?;
            self.generation = generation;
            return Ok(generation);
        }
        let per_message = self.max_size.saturating_sub(CONFIG_OVERHEAD).max(1);
        'attempt: for _ in 0..CONFIG_READ_ATTEMPTS {
            let mut first = None;
            let mut at = offset;
            // Cannot panic: `per_message` is at least 1.
            for chunk in buf.chunks_mut(per_message) {
                let generation = self.get_config_chunk(at, chunk)?;
                if *first.get_or_insert(generation) != generation {
                    continue 'attempt;
                }
                let n = u32::try_from(chunk.len()).map_err(|_| EncodeError::Unrepresentable)?;
                at = at.checked_add(n).ok_or(EncodeError::Unrepresentable)?;
            }
            if let Some(generation) = first {
                self.generation = generation;
                return Ok(generation);
            }
        }
        Err(DriverError::GenerationUnstable)
    }

    /// Writes `data` at config `offset`, in chunks that fit the maximum size (a multi-chunk
    /// write is not atomic). Each SET_CONFIG carries the tracked generation in the Dec-2025
    /// layout and 0 in the 2026 layout (its baseline profile). A chunk answered with length 0
    /// fails with [`DriverError::ConfigRejected`]; earlier chunks stay written.
    pub fn set_config(&mut self, offset: u32, data: &[u8]) -> Result<(), DriverError> {
        self.check_config_range(offset, data.len())?;
        let per_message = self.max_size.saturating_sub(CONFIG_OVERHEAD).max(1);
        let mut at = offset;
        // Cannot panic: `per_message` is at least 1.
        for chunk in data.chunks(per_message) {
            let generation = match self.layout {
                Layout::Pr28 => self.generation,
                Layout::V1Review => 0,
            };
            let length = u32::try_from(chunk.len()).map_err(|_| EncodeError::Unrepresentable)?;
            let req = TransportRequest::SetConfig {
                generation,
                offset: at,
                data: chunk,
            };
            let TransportResponse::SetConfig {
                generation,
                offset: echo,
                length: applied,
            } = self.transact(&req)?
            else {
                return Err(DriverError::Mismatch("message"));
            };
            if echo != at {
                return Err(DriverError::Mismatch("offset"));
            }
            self.generation = generation;
            if applied == 0 {
                return Err(DriverError::ConfigRejected { offset: at });
            }
            if applied != length {
                return Err(DriverError::Mismatch("length"));
            }
            at = at.checked_add(length).ok_or(EncodeError::Unrepresentable)?;
        }
        Ok(())
    }

    /// GET_DEVICE_STATUS.
    pub fn get_status(&mut self) -> Result<u32, DriverError> {
        match self.transact(&TransportRequest::GetDeviceStatus)? {
            TransportResponse::DeviceStatus { status } => Ok(status),
            _ => Err(DriverError::Mismatch("message")),
        }
    }

    /// SET_DEVICE_STATUS; returns the resulting status the device reports.
    pub fn set_status(&mut self, status: u32) -> Result<u32, DriverError> {
        match self.transact(&TransportRequest::SetDeviceStatus { status })? {
            TransportResponse::SetDeviceStatus { status } => Ok(status),
            _ => Err(DriverError::Mismatch("message")),
        }
    }

    /// Adds status `bits` as Linux does: GET_DEVICE_STATUS, then SET with the OR. Returns the
    /// resulting status.
    pub fn add_status(&mut self, bits: u32) -> Result<u32, DriverError> {
        let current = self.get_status()?;
        self.set_status(current | bits)
    }

    /// Resets the device: writes 0, then reads the status until it is 0 (at most
    /// [`RESET_POLLS`] reads).
    pub fn reset(&mut self) -> Result<(), DriverError> {
        self.set_status(0)?;
        for _ in 0..RESET_POLLS {
            if self.get_status()? == 0 {
                return Ok(());
            }
        }
        Err(DriverError::ResetTimeout)
    }

    /// The Linux initialization sequence up to FEATURES_OK: GET_DEVICE_INFO, reset,
    /// ACKNOWLEDGE, DRIVER, feature negotiation (device ∩ `wanted`, plus VERSION_1 and
    /// ACCESS_PLATFORM whenever the device offers them), FEATURES_OK and its check. On a
    /// refusal FAILED is set (best effort). Returns the negotiated features; set up queues
    /// next, then call [`driver_ok`](Self::driver_ok).
    pub fn initialize(&mut self, wanted: u64) -> Result<u64, DriverError> {
        self.get_device_info()?;
        self.reset()?;
        self.add_status(status::ACKNOWLEDGE)?;
        self.add_status(status::DRIVER)?;
        let offered = self.device_features()?;
        if offered & VIRTIO_F_VERSION_1 == 0 {
            self.fail();
            return Err(DriverError::NoVersion1);
        }
        let negotiated =
            (offered & wanted) | (offered & (VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM));
        self.set_driver_features(negotiated)?;
        let reported = self.add_status(status::FEATURES_OK)?;
        let confirmed = self.get_status()?;
        if reported & status::FEATURES_OK == 0 || confirmed & status::FEATURES_OK == 0 {
            self.fail();
            return Err(DriverError::FeaturesRejected);
        }
        Ok(negotiated)
    }

    /// Sets DRIVER_OK; fails if the device reports DEVICE_NEEDS_RESET or did not take it.
    pub fn driver_ok(&mut self) -> Result<u32, DriverError> {
        let status = self.add_status(status::DRIVER_OK)?;
        if status & status::DEVICE_NEEDS_RESET != 0 {
            return Err(DriverError::NeedsReset);
        }
        if status & status::DRIVER_OK == 0 {
            return Err(DriverError::Mismatch("status"));
        }
        Ok(status)
    }

    /// Sets FAILED, ignoring errors (the caller is already failing).
    fn fail(&mut self) {
        if let Err(e) = self.add_status(status::FAILED) {
            log::debug!("setting FAILED failed: {e}");
        }
    }

    /// GET_VQUEUE, with the sentinel rules checked: max 0 ⇒ all zero; cur ≤ max; cur 0 ⇒
    /// addresses 0 and not enabled; cur ≠ 0 ⇒ addresses non-zero; no unknown flags.
    pub fn get_vqueue(&mut self, index: u32) -> Result<VqueueInfo, DriverError> {
        let layout = self.layout;
        let TransportResponse::Vqueue {
            index: echo,
            max_size,
            cur_size,
            flags,
            desc_addr,
            driver_addr,
            device_addr,
        } = self.transact(&TransportRequest::GetVqueue { index })?
        else {
            return Err(DriverError::Mismatch("message"));
        };
        if echo != index {
            return Err(DriverError::Mismatch("index"));
        }
        let known_flags = match layout {
            Layout::V1Review => VQUEUE_FLAG_ENABLED,
            Layout::Pr28 => 0,
        };
        if flags & !known_flags != 0 {
            return Err(DriverError::Inconsistent("unknown GET_VQUEUE flags"));
        }
        let info = VqueueInfo {
            max_size,
            cur_size,
            enabled: match layout {
                Layout::V1Review => flags & VQUEUE_FLAG_ENABLED != 0,
                Layout::Pr28 => cur_size != 0,
            },
            desc_addr,
            driver_addr,
            device_addr,
        };
        let addrs = [desc_addr, driver_addr, device_addr];
        if max_size == 0 && info != VqueueInfo::default() {
            return Err(DriverError::Inconsistent(
                "missing queue with non-zero fields",
            ));
        }
        if cur_size > max_size {
            return Err(DriverError::Inconsistent("cur_size above max_size"));
        }
        if cur_size == 0 && (info.enabled || addrs.iter().any(|&a| a != 0)) {
            return Err(DriverError::Inconsistent(
                "unconfigured queue with addresses",
            ));
        }
        if cur_size != 0 && addrs.contains(&0) {
            return Err(DriverError::Inconsistent(
                "configured queue with a zero address",
            ));
        }
        Ok(info)
    }

    /// Configures queue `index`: GET_VQUEUE (the queue must exist and `config.size` fit its
    /// maximum), SET_VQUEUE (2026: with the ENABLE flag), then GET_VQUEUE read-back, which
    /// must show the size, the addresses and (2026) ENABLED; else
    /// [`DriverError::QueueRejected`].
    pub fn set_vqueue(&mut self, index: u32, config: QueueConfig) -> Result<(), DriverError> {
        let before = self.get_vqueue(index)?;
        let size = u32::from(config.size);
        if before.max_size == 0 || size == 0 || size > before.max_size {
            return Err(DriverError::QueueInvalid { index });
        }
        let flags = match self.layout {
            Layout::V1Review => SET_VQUEUE_OP_ENABLE,
            Layout::Pr28 => 0,
        };
        let req = TransportRequest::SetVqueue {
            index,
            flags,
            size,
            desc_addr: config.desc_addr,
            driver_addr: config.driver_addr,
            device_addr: config.device_addr,
        };
        match self.transact(&req)? {
            TransportResponse::SetVqueue => {}
            _ => return Err(DriverError::Mismatch("message")),
        }
        let after = self.get_vqueue(index)?;
        let taken = after.cur_size == size
            && after.enabled
            && after.desc_addr == config.desc_addr
            && after.driver_addr == config.driver_addr
            && after.device_addr == config.device_addr;
        if taken {
            Ok(())
        } else {
            Err(DriverError::QueueRejected { index })
        }
    }

    /// RESET_VQUEUE (use only with VIRTIO_F_RING_RESET negotiated, or on teardown).
    pub fn reset_vqueue(&mut self, index: u32) -> Result<(), DriverError> {
        match self.transact(&TransportRequest::ResetVqueue { index })? {
            TransportResponse::ResetVqueue => Ok(()),
            _ => Err(DriverError::Mismatch("message")),
        }
    }

    /// GET_SHM: the region, or `None` (length 0).
    pub fn get_shm(&mut self, id: u32) -> Result<Option<ShmRegion>, DriverError> {
        let TransportResponse::Shm {
            index,
            length,
            address,
        } = self.transact(&TransportRequest::GetShm { index: id })?
        else {
            return Err(DriverError::Mismatch("message"));
        };
        if index != id {
            return Err(DriverError::Mismatch("index"));
        }
        Ok((length != 0).then_some(ShmRegion { address, length }))
    }

    /// Sends EVENT_AVAIL for queue `vq` (token 0, next_offset 0: NOTIFICATION_DATA is not
    /// used).
    pub fn notify_avail(&mut self, vq: u32) -> Result<(), DriverError> {
        let event = TransportRequest::EventAvail {
            vq_index: vq,
            next_offset: 0,
        };
        let mut frame = [0u8; HEADER_SIZE + 8];
        let n = event.encode(self.layout, self.dev_num, 0, &mut frame)?;
        let frame = frame.get(..n).ok_or(EncodeError::TooBig { need: n })?;
        self.channel.notify(frame)?;
        Ok(())
    }
}
