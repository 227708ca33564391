//! A configurable mock [`VirtioDevice`] for tests: its state sits behind a shared handle, so a
//! test keeps a [`MockDevice`] clone and inspects what the engine did after handing the other
//! clone to a [`DeviceTransport`](super::DeviceTransport).

use alloc::{vec, vec::Vec};
use core::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::model::{
    Budget, ConfigRejected, DeviceError, QueueConfig, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1,
    VirtioDevice,
};
use crate::mem::SharedMem;

/// What the mock reports and records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockState {
    /// Device type.
    pub device_id: u32,
    /// Vendor id.
    pub vendor_id: u32,
    /// Device UUID.
    pub uuid: [u8; 16],
    /// Offered features.
    pub features: u64,
    /// The configuration space (its length is `config_size`).
    pub config: Vec<u8>,
    /// Config bytes the driver may write; writes touching anything else are refused.
    pub writable: Range<u32>,
    /// Maximum size of each queue (its length is `num_queues`).
    pub queue_max: Vec<u16>,
    /// SHM regions: (id, address, length).
    pub shm: Vec<(u32, u64, u64)>,
    /// Whether `activate_queue` (late queues) is accepted.
    pub late_queues: bool,
    /// Whether `activate` fails.
    pub fail_activate: bool,
    /// What `notify` returns.
    pub notify_result: Result<bool, DeviceError>,
    /// On `notify`, write these bytes at this address through the shared memory first.
    pub notify_write: Option<(u64, Vec<u8>)>,
    /// Budget bytes one `notify` spends (0: none).
    pub notify_cost: u64,
    /// What `take_used_elsewhere` returns (then cleared).
    pub used_elsewhere: u64,
    /// Record: the last successful `activate` (features, queues).
    pub activated: Option<(u64, Vec<Option<QueueConfig>>)>,
    /// Record: number of `activate` calls.
    pub activations: u32,
    /// Record: number of `reset` calls.
    pub resets: u32,
    /// Record: `reset_queue` calls.
    pub queue_resets: Vec<u32>,
    /// Record: accepted `activate_queue` calls.
    pub late_activated: Vec<(u32, QueueConfig)>,
    /// Record: `notify` calls.
    pub notifies: Vec<u32>,
    /// Record: accepted `write_config` calls (offset, data).
    pub config_writes: Vec<(u32, Vec<u8>)>,
}

impl Default for MockState {
    /// An entropy-like device: id 4, VERSION_1 | ACCESS_PLATFORM | bit 0, 16 config bytes
    /// (bytes 8..16 writable), two queues of max size 256 and 64, no SHM.
    fn default() -> Self {
        Self {
            device_id: 4,
            vendor_id: 0x1AF4,
            uuid: [0x11; 16],
            features: VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM | 1,
            config: (0..16).collect(),
            writable: 8..16,
            queue_max: vec![256, 64],
            shm: Vec::new(),
            late_queues: false,
            fail_activate: false,
            notify_result: Ok(true),
            notify_write: None,
            notify_cost: 0,
            used_elsewhere: 0,
            activated: None,
            activations: 0,
            resets: 0,
            queue_resets: Vec::new(),
            late_activated: Vec::new(),
            notifies: Vec::new(),
            config_writes: Vec::new(),
        }
    }
}

/// The mock device; clones share one [`MockState`].
#[derive(Clone, Debug, Default)]
pub struct MockDevice {
    state: Arc<Mutex<MockState>>,
}

impl MockDevice {
    /// A mock with `state`.
    pub fn new(state: MockState) -> Self {
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// The shared state (for inspection and reconfiguration).
    pub fn state(&self) -> MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl VirtioDevice for MockDevice {
    fn device_id(&self) -> u32 {
        self.state().device_id
    }
    fn vendor_id(&self) -> u32 {
        self.state().vendor_id
    }
    fn device_uuid(&self) -> [u8; 16] {
        self.state().uuid
    }
    fn features(&self) -> u64 {
        self.state().features
    }
    fn config_size(&self) -> u32 {
        u32::try_from(self.state().config.len()).unwrap_or(u32::MAX)
    }
    fn read_config(&self, offset: u32, buf: &mut [u8]) {
        let state = self.state();
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let src = start
            .checked_add(buf.len())
            .and_then(|end| state.config.get(start..end));
        match src {
            // Cannot panic: `src` is `start..start + buf.len()`.
            Some(src) => buf.copy_from_slice(src),
            None => buf.fill(0xEE),
        }
    }
    fn write_config(&mut self, offset: u32, data: &[u8]) -> Result<bool, ConfigRejected> {
        let mut state = self.state();
        let len = u32::try_from(data.len()).map_err(|_| ConfigRejected)?;
        let end = offset.checked_add(len).ok_or(ConfigRejected)?;
        if offset < state.writable.start || end > state.writable.end {
            return Err(ConfigRejected);
        }
        let (start, end) = (
            usize::try_from(offset).map_err(|_| ConfigRejected)?,
            usize::try_from(end).map_err(|_| ConfigRejected)?,
        );
        let dst = state.config.get_mut(start..end).ok_or(ConfigRejected)?;
        let changed = dst != data;
        // Cannot panic: `end - start` is `len`, the length of `data`.
        dst.copy_from_slice(data);
        state.config_writes.push((offset, data.to_vec()));
        Ok(changed)
    }
    fn num_queues(&self) -> u32 {
        u32::try_from(self.state().queue_max.len()).unwrap_or(u32::MAX)
    }
    fn queue_max_size(&self, index: u32) -> u16 {
        let state = self.state();
        usize::try_from(index)
            .ok()
            .and_then(|i| state.queue_max.get(i).copied())
            .unwrap_or(0)
    }
    fn activate(
        &mut self,
        features: u64,
        queues: &[Option<QueueConfig>],
    ) -> Result<(), DeviceError> {
        let mut state = self.state();
        state.activations = state.activations.saturating_add(1);
        if state.fail_activate {
            return Err(DeviceError::Backend);
        }
        state.activated = Some((features, queues.to_vec()));
        Ok(())
    }
    fn activate_queue(&mut self, index: u32, config: QueueConfig) -> Result<(), DeviceError> {
        let mut state = self.state();
        if !state.late_queues {
            return Err(DeviceError::Backend);
        }
        state.late_activated.push((index, config));
        Ok(())
    }
    fn reset(&mut self) {
        let mut state = self.state();
        state.resets = state.resets.saturating_add(1);
        state.activated = None;
    }
    fn reset_queue(&mut self, index: u32) {
        self.state().queue_resets.push(index);
    }
    fn notify(
        &mut self,
        index: u32,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
    ) -> Result<bool, DeviceError> {
        let mut state = self.state();
        state.notifies.push(index);
        budget.spend(state.notify_cost);
        if let Some((addr, bytes)) = &state.notify_write {
            mem.write(*addr, bytes)?;
        }
        state.notify_result
    }
    fn take_used_elsewhere(&mut self) -> u64 {
        core::mem::take(&mut self.state().used_elsewhere)
    }
    fn shm_region(&self, id: u32) -> Option<(u64, u64)> {
        self.state()
            .shm
            .iter()
            .find(|(i, _, _)| *i == id)
            .map(|&(_, addr, len)| (addr, len))
    }
}
