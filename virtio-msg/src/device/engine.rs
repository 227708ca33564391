//! The device-side transport engine: one virtio-msg state machine per device.
//!
//! [`DeviceTransport`] owns a [`VirtioDevice`] and answers the driver's transport requests for
//! it: device info, feature negotiation, the status sequence and reset, configuration space
//! with its generation count, virtqueue setup and reset, SHM regions and EVENT_AVAIL.
//!
//! It works on typed values ([`TransportRequest`] in, [`TransportResponse`] out, see
//! [`DeviceTransport::handle`]); [`DeviceTransport::handle_frame`] adds the encoding. Events
//! for the driver (EVENT_USED, EVENT_CONFIG) are reported to the caller as [`Event`]s through a
//! callback; the bus decides how to deliver and coalesce them.
//! The virtqueue and SHM requests are answered in the child module `queues`.
//!
//! Decisions where the specs leave room or disagree (see `shared/spec/virtio-msg.md`):
//! - Rejected SET_VQUEUE: there is no status field, so the engine replies with the empty
//!   response and leaves the queue unconfigured (cur_size 0, addresses 0, not enabled); the
//!   driver sees it on GET_VQUEUE read-back. A live queue is left as it is.
//! - SET_CONFIG generation: the Dec-2025 text wants stale generations rejected, the 2026
//!   baseline profile says the device ignores the field. Both Linux drivers we pair with follow
//!   the latter (G2 sends its tracked value and ignores the reply, G3 sends 0), so the field is
//!   **not** checked.
//! - SET_CONFIG is all or nothing: applied fully (length echoed) or not at all (length 0).
//! - Malformed requests the decoder let through but the engine cannot answer (GET_CONFIG out
//!   of range or too long for the message size) get no response; the bus turns that into its
//!   own error answer.
//! - Driver-caused changes (SET_DEVICE_STATUS, SET_CONFIG) raise no EVENT_CONFIG (the response
//!   carries the result, as the 2026 text says); device-caused ones do
//!   ([`DeviceTransport::config_changed`], DEVICE_NEEDS_RESET).
//! - A driver the bus will not serve (it hands memory the device may not touch, see
//!   [`DeviceTransport::refuse_driver`]) must fail at probe, not hang: the engine refuses
//!   FEATURES_OK (virtio core re-reads the status after setting it and fails the probe with
//!   -ENODEV, `virtio_features_ok`), and refuses DRIVER_OK with DEVICE_NEEDS_RESET set. A
//!   refused SET_VQUEUE leaves the queue unconfigured, which the 2026 driver sees on its
//!   GET_VQUEUE read-back (`virtio_msg_vq_confirm`) and fails the probe.
//! - Buffers sized by the driver's requests (config reads, feature blocks) are bounded by the
//!   message size and reserved fallibly: an allocation failure gets the "no response" answer,
//!   never an abort.

mod queues;

use alloc::{boxed::Box, sync::Arc, vec, vec::Vec};

use super::{
    model::{Budget, QueueConfig, VIRTIO_F_VERSION_1, VirtioDevice},
    stats::EndpointStats,
};
use crate::{
    header::Header,
    layout::Layout,
    mem::SharedMem,
    transport::{
        DeviceEvent, DeviceInfo, FeatureBlocks, TransportRequest, TransportResponse, status,
    },
};

/// The maximum message size the engine assumes until told otherwise (the size the spec says a
/// bus should not exceed: 256 payload bytes + the header).
pub const DEFAULT_MAX_SIZE: u16 = 264;

/// Most virtqueues the engine serves per device (the 2026 limit on `max_virtqueues`).
pub const MAX_QUEUES: u32 = 65536;

/// Feature bits the engine reports (two 32-bit blocks; devices offer bits 0..63).
const NUM_FEATURE_BITS: u32 = 64;
/// GET_DEVICE_FEATURES response bytes besides the blocks: header, block_index, num_blocks.
const FEATURES_RESPONSE_OVERHEAD: usize = 16;
/// GET_CONFIG response bytes besides the data: header, generation, offset, length.
const CONFIG_RESPONSE_OVERHEAD: usize = 20;

/// Status bits the driver may write (DEVICE_NEEDS_RESET is the device's own).
const DRIVER_STATUS_BITS: u32 =
    status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK | status::FAILED;
/// Every status bit virtio defines.
const KNOWN_STATUS_BITS: u32 = DRIVER_STATUS_BITS | status::DEVICE_NEEDS_RESET;
/// The status sequence: each bit with the bit it needs first.
const STATUS_ORDER: [(u32, u32); 4] = [
    (status::ACKNOWLEDGE, 0),
    (status::DRIVER, status::ACKNOWLEDGE),
    (status::FEATURES_OK, status::DRIVER),
    (status::DRIVER_OK, status::FEATURES_OK),
];

/// An event the engine wants delivered to the driver. The bus builds the frame (for
/// [`Event::Config`] from [`DeviceTransport::config_event`]) and may coalesce repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// EVENT_USED: the device returned buffers to the used ring of queue `vq`.
    Used {
        /// Queue index.
        vq: u32,
    },
    /// EVENT_CONFIG: the configuration or the status changed on the device's initiative
    /// (new generation, or DEVICE_NEEDS_RESET set).
    Config,
}

/// For the log (`Debug`, derived, would put the formatting of its fields in the image).
impl core::fmt::Display for Event {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Used { vq } => write!(f, "EVENT_USED (vq {vq})"),
            Self::Config => f.write_str("EVENT_CONFIG"),
        }
    }
}

/// One virtqueue as the transport sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Queue {
    /// What SET_VQUEUE gave; `None` = not configured.
    config: Option<QueueConfig>,
    /// Handed to the device (by `activate` or `activate_queue`): notifications reach it.
    live: bool,
    /// The last notification ran out of budget: chains may be waiting (see [`Budget`]).
    pending: bool,
}

/// Why a SET_VQUEUE or a driver was refused (for the log).
pub type Refusal = &'static str;

/// The transport state machine of one device.
pub struct DeviceTransport {
    device: Box<dyn VirtioDevice + Send>,
    layout: Layout,
    max_size: u16,
    status: u32,
    driver_features: u64,
    /// The driver wrote a non-zero feature block beyond bit 63: FEATURES_OK must fail (until
    /// the next reset).
    unknown_features: bool,
    generation: u32,
    queues: Vec<Queue>,
    /// `activate` succeeded and no reset happened since.
    active: bool,
    /// The bus will not serve this driver (why); FEATURES_OK and DRIVER_OK are refused until
    /// the next reset.
    refused: Option<Refusal>,
    /// Backing store of responses that borrow bytes (config data, feature blocks).
    scratch: Vec<u8>,
    /// Where this device's work is counted: its endpoint's counters and its device number.
    stats: Option<(Arc<EndpointStats>, usize)>,
}

impl core::fmt::Debug for DeviceTransport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceTransport")
            .field("device_id", &self.device.device_id())
            .field("layout", &self.layout)
            .field("status", &self.status)
            .field("driver_features", &self.driver_features)
            .field("generation", &self.generation)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl DeviceTransport {
    /// A transport for `device`, speaking `layout`, in the reset state (status 0, generation 0,
    /// [`DEFAULT_MAX_SIZE`]). The device's queue count is read once here (at most
    /// [`MAX_QUEUES`]).
    pub fn new(device: Box<dyn VirtioDevice + Send>, layout: Layout) -> Self {
        let num_queues = device.num_queues().min(MAX_QUEUES);
        let num_queues = usize::try_from(num_queues).unwrap_or(0);
        Self {
            device,
            layout,
            max_size: DEFAULT_MAX_SIZE,
            status: 0,
            driver_features: 0,
            unknown_features: false,
            generation: 0,
            queues: vec![Queue::default(); num_queues],
            active: false,
            refused: None,
            scratch: Vec::new(),
            stats: None,
        }
    }

    /// Counts its messages and work as device `dev` in `stats` from now on.
    pub fn count_into(&mut self, stats: Arc<EndpointStats>, dev: usize) {
        self.stats = Some((stats, dev));
    }

    /// The same, with the bus's maximum message size set.
    pub fn with_max_size(mut self, max_size: u16) -> Self {
        self.max_size = max_size;
        self
    }

    /// Sets the wire layout (the bus latches it per session).
    pub fn set_layout(&mut self, layout: Layout) {
        self.layout = layout;
    }

    /// The wire layout in use.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Sets the bus's maximum message size (header included) that responses must fit.
    pub fn set_max_size(&mut self, max_size: u16) {
        self.max_size = max_size;
    }

    /// The maximum message size responses are kept within.
    pub fn max_size(&self) -> u16 {
        self.max_size
    }

    /// The device model.
    pub fn device(&self) -> &(dyn VirtioDevice + Send) {
        &*self.device
    }

    /// The device model, mutably (for device-initiated work; call
    /// [`config_changed`](Self::config_changed) if it changes the configuration).
    pub fn device_mut(&mut self) -> &mut (dyn VirtioDevice + Send) {
        &mut *self.device
    }

    /// The device status as the driver reads it.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The configuration generation count.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The feature bits the driver wrote (as acknowledged so far).
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    /// Whether the device was activated (DRIVER_OK accepted) and serves its queues.
    pub fn is_active(&self) -> bool {
        self.active && self.status & status::DEVICE_NEEDS_RESET == 0
    }

    /// The configuration of queue `index`, if the driver configured it.
    pub fn queue(&self, index: u32) -> Option<QueueConfig> {
        self.queues.get(usize::try_from(index).ok()?)?.config
    }

    /// Full device reset, as SET_DEVICE_STATUS(0) does: the device is reset, queues and
    /// features are forgotten, status becomes 0. The generation count is kept (it must never
    /// go back, so that a driver cannot mistake old configuration for new).
    pub fn reset(&mut self) {
        self.device.reset();
        self.queues.fill(Queue::default());
        self.driver_features = 0;
        self.unknown_features = false;
        self.status = 0;
        self.active = false;
        self.refused = None;
    }

    /// The bus will not serve the driver of this device (`why`: it hands memory the device may
    /// not touch, such as raw physical addresses). Until the next reset FEATURES_OK and
    /// DRIVER_OK are refused, so that the driver fails at probe instead of waiting forever;
    /// a device already running gets DEVICE_NEEDS_RESET (and EVENT_CONFIG). Returns whether
    /// this is news (not refused already since the last reset), for the caller to log once.
    pub fn refuse_driver(&mut self, why: Refusal, events: &mut dyn FnMut(Event)) -> bool {
        if self.refused.is_some() {
            return false;
        }
        self.refused = Some(why);
        if self.status & status::DRIVER_OK != 0 {
            self.needs_reset(events);
        }
        true
    }

    /// Why the driver is refused, if [`refuse_driver`](Self::refuse_driver) was called since
    /// the last reset.
    pub fn refusal(&self) -> Option<Refusal> {
        self.refused
    }

    /// The bus refused a SET_VQUEUE for queue `index` (its rings are outside the memory the
    /// driver shared): the queue is left unconfigured (a live one is left as it is, as for
    /// any refused SET_VQUEUE) and the driver is refused ([`refuse_driver`](Self::refuse_driver),
    /// whose result this returns).
    pub fn refuse_vqueue(
        &mut self,
        index: u32,
        why: Refusal,
        events: &mut dyn FnMut(Event),
    ) -> bool {
        if let Some(q) = usize::try_from(index)
            .ok()
            .and_then(|i| self.queues.get_mut(i))
            .filter(|q| !q.live)
        {
            *q = Queue::default();
        }
        self.refuse_driver(why, events)
    }

    /// The device changed its configuration on its own: bumps the generation and returns the
    /// EVENT_CONFIG to deliver. Call it in the same turn as the change, before the driver can
    /// send another request (the driver must see the new generation with the new bytes).
    #[must_use = "the returned EVENT_CONFIG must be delivered to the driver"]
    pub fn config_changed(&mut self) -> Event {
        self.generation = self.generation.wrapping_add(1);
        Event::Config
    }

    /// The EVENT_CONFIG describing the current state (status and generation, no data: the
    /// driver re-reads with GET_CONFIG).
    pub fn config_event(&self) -> DeviceEvent<'static> {
        DeviceEvent::Config {
            device_status: self.status,
            generation: self.generation,
            offset: 0,
            data: &[],
        }
    }

    /// Whether a queue's last notification ran out of budget, so that chains may still wait
    /// for [`resume`](Self::resume).
    pub fn has_pending_work(&self) -> bool {
        self.is_active() && self.queues.iter().any(|q| q.live && q.pending)
    }

    /// Serves the queues whose last notification ran out of budget, in queue order, while
    /// `budget` lasts; a queue that runs out again stays pending. The bus calls it at each
    /// message from the driver, before the message itself, so that work left by one kick is
    /// done before newer work and never waits for more than the driver's next message.
    pub fn resume(
        &mut self,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
        events: &mut dyn FnMut(Event),
    ) {
        if !self.is_active() {
            return;
        }
        for i in 0..self.queues.len() {
            if budget.is_spent() {
                return;
            }
            let pending = self.queues.get(i).is_some_and(|q| q.live && q.pending);
            if pending && let Ok(index) = u32::try_from(i) {
                self.kick(index, mem, budget, events);
            }
        }
    }

    /// Services queue `index` as an EVENT_AVAIL would, within `budget` (what the budget did not
    /// cover stays pending for [`resume`](Self::resume)); also for device-initiated work (a
    /// backend has input, or the bus polls). Ignored unless the device is active and the queue
    /// live.
    pub fn kick(
        &mut self,
        index: u32,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
        events: &mut dyn FnMut(Event),
    ) {
        if !self.is_active() {
            log::debug!("queue {index} notified while the device is not running: ignored");
            return;
        }
        let Some(queue) = usize::try_from(index)
            .ok()
            .and_then(|i| self.queues.get_mut(i))
            .filter(|q| q.live)
        else {
            log::debug!("queue {index} notified but not configured: ignored");
            return;
        };
        // A notification with nothing left to spend serves nothing: the queue waits.
        queue.pending = true;
        if budget.is_spent() {
            return;
        }
        let before = budget.chains_and_bytes();
        let result = self.device.notify(index, mem, budget);
        if let Some((stats, dev)) = &self.stats {
            let (chains, bytes) = budget.chains_and_bytes();
            stats.device_work(
                *dev,
                chains.saturating_sub(before.0),
                bytes.saturating_sub(before.1),
                result.is_err(),
            );
        }
        if let Some(queue) = usize::try_from(index)
            .ok()
            .and_then(|i| self.queues.get_mut(i))
        {
            queue.pending = result.is_ok() && budget.is_spent();
        }
        let others = if result.is_ok() {
            self.device.take_used_elsewhere()
        } else {
            0
        };
        if others != 0 {
            // Only queues the device has and the driver set up (a device's stray bit is
            // not passed on).
            for (i, queue) in self.queues.iter().enumerate().take(64) {
                let Ok(vq) = u32::try_from(i) else { break };
                let bit = others.checked_shr(vq).is_some_and(|b| b & 1 == 1);
                if bit && vq != index && queue.live {
                    events(Event::Used { vq });
                }
            }
        }
        match result {
            Ok(true) => events(Event::Used { vq: index }),
            Ok(false) => {}
            Err(e) => {
                log::warn!("device failed on queue {index}: {e}; DEVICE_NEEDS_RESET set");
                self.needs_reset(events);
            }
        }
    }

    /// Handles one transport request. Returns the response (borrowing the engine's scratch
    /// buffer for data), or `None` when there is none: EVENT_AVAIL (an event), or a request
    /// the engine discards (see the module docs). Responses fit [`max_size`](Self::max_size).
    pub fn handle(
        &mut self,
        request: &TransportRequest<'_>,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
        events: &mut dyn FnMut(Event),
    ) -> Option<TransportResponse<'_>> {
        let limit = usize::from(self.max_size);
        self.dispatch(request, mem, budget, events, limit)
    }

    /// [`handle`](Self::handle), then encodes the response to `request` (whose header it
    /// echoes) into `out`. Responses are kept within `min(max_size, out.len())`. Returns the
    /// frame length, or `None` when there is no response.
    pub fn handle_frame(
        &mut self,
        request_header: &Header,
        request: &TransportRequest<'_>,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
        out: &mut [u8],
        events: &mut dyn FnMut(Event),
    ) -> Option<usize> {
        let limit = usize::from(self.max_size).min(out.len());
        let layout = self.layout;
        let response = self.dispatch(request, mem, budget, events, limit)?;
        let out = out.get_mut(..limit)?;
        match response.encode(layout, request_header, out) {
            Ok(n) => Some(n),
            Err(e) => {
                log::warn!(
                    "response to message {:#04x} not encodable: {e}",
                    request_header.msg_id
                );
                None
            }
        }
    }

    fn dispatch(
        &mut self,
        request: &TransportRequest<'_>,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
        events: &mut dyn FnMut(Event),
        limit: usize,
    ) -> Option<TransportResponse<'_>> {
        if let Some((stats, dev)) = &self.stats {
            stats.device_message(*dev);
        }
        match *request {
            TransportRequest::GetDeviceInfo => Some(TransportResponse::DeviceInfo(self.info())),
            TransportRequest::GetDeviceFeatures {
                block_index,
                num_blocks,
            } => self.device_features(block_index, num_blocks, limit),
            TransportRequest::SetDriverFeatures {
                block_index,
                blocks,
            } => {
                self.set_driver_features(block_index, blocks);
                Some(TransportResponse::SetDriverFeatures)
            }
            TransportRequest::GetConfig { offset, length } => {
                self.read_config(offset, length, limit)
            }
            TransportRequest::SetConfig {
                generation: _,
                offset,
                data,
            } => Some(self.write_config(offset, data)),
            TransportRequest::GetDeviceStatus => Some(TransportResponse::DeviceStatus {
                status: self.status,
            }),
            TransportRequest::SetDeviceStatus { status } => {
                self.set_status(status, events);
                Some(TransportResponse::SetDeviceStatus {
                    status: self.status,
                })
            }
            TransportRequest::GetVqueue { index } => Some(self.vqueue(index)),
            TransportRequest::SetVqueue {
                index,
                flags,
                size,
                desc_addr,
                driver_addr,
                device_addr,
            } => {
                self.set_vqueue(index, flags, size, [desc_addr, driver_addr, device_addr]);
                Some(TransportResponse::SetVqueue)
            }
            TransportRequest::ResetVqueue { index } => {
                self.reset_vqueue(index);
                Some(TransportResponse::ResetVqueue)
            }
            TransportRequest::GetShm { index } => Some(self.shm(index)),
            TransportRequest::EventAvail { vq_index, .. } => {
                self.kick(vq_index, mem, budget, events);
                None
            }
        }
    }

    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            device_id: self.device.device_id(),
            vendor_id: self.device.vendor_id(),
            device_uuid: self.device.device_uuid(),
            num_feature_bits: NUM_FEATURE_BITS,
            config_size: self.device.config_size(),
            max_virtqueues: u32::try_from(self.queues.len()).unwrap_or(0),
            admin_vq_start: 0,
            admin_vq_count: 0,
        }
    }

    fn device_features(
        &mut self,
        block_index: u32,
        num_blocks: u32,
        limit: usize,
    ) -> Option<TransportResponse<'_>> {
        // Answer as many blocks as fit the message; the echoed count says how many.
        let fit = limit.saturating_sub(FEATURES_RESPONSE_OVERHEAD) / 4;
        let n = usize::try_from(num_blocks).unwrap_or(usize::MAX).min(fit);
        let features = self.device.features();
        self.scratch.clear();
        if self.scratch.try_reserve(n.saturating_mul(4)).is_err() {
            log::warn!("GET_DEVICE_FEATURES: no memory for {n} blocks");
            return None;
        }
        let mut block = u64::from(block_index);
        for _ in 0..n {
            self.scratch
                .extend_from_slice(&feature_block(features, block).to_le_bytes());
            block = block.saturating_add(1);
        }
        let blocks = FeatureBlocks::from_le_bytes(&self.scratch)?;
        Some(TransportResponse::DeviceFeatures {
            block_index,
            blocks,
        })
    }

    /// SET_DRIVER_FEATURES: accepted only between DRIVER and FEATURES_OK (the virtio status
    /// sequence); at any other time it is ignored and the acknowledged set stays as it was.
    fn set_driver_features(&mut self, block_index: u32, blocks: FeatureBlocks<'_>) {
        let writable = self.status & status::DRIVER != 0
            && self.status & (status::FEATURES_OK | status::DEVICE_NEEDS_RESET) == 0;
        if !writable {
            log::debug!("SET_DRIVER_FEATURES in status {:#x}: ignored", self.status);
            return;
        }
        let mut block = u64::from(block_index);
        for word in blocks.iter() {
            match block {
                0 => self.driver_features = (self.driver_features & !0xFFFF_FFFF) | u64::from(word),
                1 => {
                    self.driver_features =
                        (self.driver_features & 0xFFFF_FFFF) | (u64::from(word) << 32);
                }
                _ if word != 0 => self.unknown_features = true,
                _ => {}
            }
            block = block.saturating_add(1);
        }
    }

    /// Whether `start..start+len` lies inside the configuration space.
    fn config_range_ok(&self, offset: u32, len: u32) -> bool {
        offset
            .checked_add(len)
            .is_some_and(|end| end <= self.device.config_size())
    }

    fn read_config(
        &mut self,
        offset: u32,
        length: u32,
        limit: usize,
    ) -> Option<TransportResponse<'_>> {
        let len = usize::try_from(length).ok()?;
        if !self.config_range_ok(offset, length) {
            log::debug!("GET_CONFIG {offset:#x}+{length:#x} outside the configuration space");
            return None;
        }
        if len > limit.saturating_sub(CONFIG_RESPONSE_OVERHEAD) {
            log::debug!("GET_CONFIG of {length} bytes does not fit a {limit}-byte message");
            return None;
        }
        self.scratch.clear();
        if self.scratch.try_reserve(len).is_err() {
            log::warn!("GET_CONFIG: no memory for {len} bytes");
            return None;
        }
        self.scratch.resize(len, 0);
        if len > 0 {
            self.device.read_config(offset, &mut self.scratch);
        }
        Some(TransportResponse::Config {
            generation: self.generation,
            offset,
            data: &self.scratch,
        })
    }

    fn write_config(&mut self, offset: u32, data: &[u8]) -> TransportResponse<'static> {
        let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let applied = if data.is_empty() {
            false
        } else if !self.config_range_ok(offset, length) {
            log::debug!("SET_CONFIG {offset:#x}+{length:#x} outside the configuration space");
            false
        } else {
            match self.device.write_config(offset, data) {
                Ok(changed) => {
                    if changed {
                        // Nothing of the change is visible before this response, which
                        // already carries the new generation.
                        self.generation = self.generation.wrapping_add(1);
                    }
                    true
                }
                Err(e) => {
                    log::debug!("SET_CONFIG {offset:#x}+{length:#x}: {e}");
                    false
                }
            }
        };
        TransportResponse::SetConfig {
            generation: self.generation,
            offset,
            length: if applied { length } else { 0 },
        }
    }

    /// SET_DEVICE_STATUS. 0 resets. Otherwise the status only grows: a write that clears a
    /// driver bit or carries unknown bits is ignored; new bits are taken in the virtio order
    /// (ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK), each only if the one before is set, and
    /// the first out-of-order bit ends the update. FEATURES_OK is refused (left clear) unless
    /// the driver's features are a subset of the device's and include VERSION_1. DRIVER_OK
    /// activates the device; if that fails DEVICE_NEEDS_RESET is set and EVENT_CONFIG raised.
    /// While the driver is refused ([`refuse_driver`](Self::refuse_driver)) FEATURES_OK is not
    /// taken, and DRIVER_OK is not taken but sets DEVICE_NEEDS_RESET (the device cannot go
    /// live). FAILED is accepted at any time. While DEVICE_NEEDS_RESET is set only FAILED and reset
    /// are taken. The response reports the resulting status.
    fn set_status(&mut self, new: u32, events: &mut dyn FnMut(Event)) {
        if new == 0 {
            self.reset();
            return;
        }
        if new & !KNOWN_STATUS_BITS != 0 {
            log::debug!("SET_DEVICE_STATUS {new:#x} has unknown bits: ignored");
            return;
        }
        let cleared = self.status & DRIVER_STATUS_BITS & !new;
        if cleared != 0 {
            log::debug!(
                "SET_DEVICE_STATUS {new:#x} clears {cleared:#x} (only 0 may clear): ignored"
            );
            return;
        }
        let added = new & DRIVER_STATUS_BITS & !self.status;
        if added & status::FAILED != 0 {
            log::info!("driver set FAILED");
            self.status |= status::FAILED;
        }
        if self.status & status::DEVICE_NEEDS_RESET != 0 {
            return;
        }
        for (bit, needs) in STATUS_ORDER {
            if added & bit == 0 {
                continue;
            }
            if self.status & needs != needs {
                log::debug!(
                    "SET_DEVICE_STATUS {new:#x}: bit {bit:#x} before {needs:#x}: not taken"
                );
                return;
            }
            if bit == status::FEATURES_OK && !self.features_acceptable() {
                log::info!(
                    "features {:#x} refused (device offers {:#x}); FEATURES_OK stays clear",
                    self.driver_features,
                    self.device.features()
                );
                return;
            }
            if let Some(why) = self.refused
                && (bit == status::FEATURES_OK || bit == status::DRIVER_OK)
            {
                log::info!("SET_DEVICE_STATUS {new:#x}: driver not served ({why}): not taken");
                if bit == status::DRIVER_OK {
                    self.needs_reset(events);
                }
                return;
            }
            self.status |= bit;
            if bit == status::DRIVER_OK {
                self.activate(events);
            }
        }
    }

    fn features_acceptable(&self) -> bool {
        !self.unknown_features
            && self.driver_features & !self.device.features() == 0
            && self.driver_features & VIRTIO_F_VERSION_1 != 0
    }

    fn activate(&mut self, events: &mut dyn FnMut(Event)) {
        let mut queues: Vec<Option<QueueConfig>> = Vec::new();
        if queues.try_reserve_exact(self.queues.len()).is_err() {
            log::warn!("device activation: out of memory; DEVICE_NEEDS_RESET set");
            self.needs_reset(events);
            return;
        }
        queues.extend(self.queues.iter().map(|q| q.config));
        match self.device.activate(self.driver_features, &queues) {
            Ok(()) => {
                self.active = true;
                for q in &mut self.queues {
                    q.live = q.config.is_some();
                }
            }
            Err(e) => {
                log::warn!("device activation failed: {e}; DEVICE_NEEDS_RESET set");
                self.needs_reset(events);
            }
        }
    }

    fn needs_reset(&mut self, events: &mut dyn FnMut(Event)) {
        if self.status & status::DEVICE_NEEDS_RESET == 0 {
            self.status |= status::DEVICE_NEEDS_RESET;
            events(Event::Config);
        }
    }
}

/// Feature block `block` (bits 32·block..32·block+31) of `features` (0 beyond bit 63).
fn feature_block(features: u64, block: u64) -> u32 {
    let [b0, b1, b2, b3, b4, b5, b6, b7] = features.to_le_bytes();
    match block {
        0 => u32::from_le_bytes([b0, b1, b2, b3]),
        1 => u32::from_le_bytes([b4, b5, b6, b7]),
        _ => 0,
    }
}
