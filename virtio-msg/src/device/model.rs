//! What a device model implements ([`VirtioDevice`]), the errors it returns, the queue
//! configuration it is given and the transport feature bits it offers.

use crate::mem::{MemError, SharedMem};

/// VIRTIO_F_INDIRECT_DESC (feature bit 28): descriptors may point to a table of descriptors
/// (virtio 1.2 §2.7.5.3).
pub const VIRTIO_F_INDIRECT_DESC: u64 = 1 << 28;
/// VIRTIO_F_EVENT_IDX (feature bit 29): the rings' `used_event` and `avail_event` fields
/// suppress notifications (virtio 1.2 §2.7.7, §2.7.10).
pub const VIRTIO_F_EVENT_IDX: u64 = 1 << 29;

/// `vring_need_event` (virtio 1.2 §2.7.7.2, §2.7.10.1), the EVENT_IDX rule both sides apply:
/// whether moving an index from `old` to `new` passed `event`, i.e. `event` is one of
/// `old..new`, in u16 arithmetic that wraps.
pub fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}
/// VIRTIO_F_VERSION_1 (feature bit 32).
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// VIRTIO_F_ACCESS_PLATFORM (feature bit 33).
pub const VIRTIO_F_ACCESS_PLATFORM: u64 = 1 << 33;
/// VIRTIO_F_RING_PACKED (feature bit 34).
pub const VIRTIO_F_RING_PACKED: u64 = 1 << 34;
/// VIRTIO_F_RING_RESET (feature bit 40).
pub const VIRTIO_F_RING_RESET: u64 = 1 << 40;

/// A configured split virtqueue, as SET_VQUEUE gave it (bus addresses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueConfig {
    /// Number of descriptors (a power of two, at most the queue's maximum).
    pub size: u16,
    /// Descriptor table bus address.
    pub desc_addr: u64,
    /// Driver (available) ring bus address.
    pub driver_addr: u64,
    /// Device (used) ring bus address.
    pub device_addr: u64,
}

/// How much work one notification may do: the bound that keeps one driver's kick from holding
/// the partition (and so every other driver) for as long as the driver likes.
///
/// The bus gives each incoming message one budget, counted in bytes of device work (bytes
/// moved, plus [`Budget::CHAIN_COST`] for each chain's walk). A device spends it as it serves
/// chains and stops *before* a chain once it is spent (a started chain is finished, so one
/// chain may overrun it by up to its own cost). Work it left is not lost: the engine marks the
/// queue pending and the bus resumes it, with a new budget, at the driver's next message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    left: u64,
    /// Chains spent so far, and the bytes they moved (what the counters report).
    chains: u64,
    moved: u64,
}

impl Budget {
    /// What taking one chain from the available ring and returning it costs besides its bytes
    /// (its descriptor walk and used-ring write), so that empty chains are not free.
    pub const CHAIN_COST: u64 = 64;

    /// A budget of `bytes`.
    pub const fn bytes(bytes: u64) -> Self {
        Self {
            left: bytes,
            chains: 0,
            moved: 0,
        }
    }

    /// A budget that is never spent (tests, and device-initiated work with no driver waiting).
    pub const fn unlimited() -> Self {
        Self::bytes(u64::MAX)
    }

    /// Spends `bytes` (saturating at zero).
    pub fn spend(&mut self, bytes: u64) {
        self.left = self.left.saturating_sub(bytes);
    }

    /// Spends one chain that moved `bytes`.
    pub fn spend_chain(&mut self, bytes: u64) {
        self.spend(bytes.saturating_add(Self::CHAIN_COST));
        self.chains = self.chains.saturating_add(1);
        self.moved = self.moved.saturating_add(bytes);
    }

    /// Chains spent so far and the bytes they moved.
    pub fn chains_and_bytes(&self) -> (u64, u64) {
        (self.chains, self.moved)
    }

    /// Whether nothing is left: the device must not start another chain.
    pub fn is_spent(&self) -> bool {
        self.left == 0
    }

    /// What is left.
    pub fn left(&self) -> u64 {
        self.left
    }
}

/// A device's fatal error: the transport sets DEVICE_NEEDS_RESET and reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// Driver memory could not be accessed (bad address in a ring or descriptor).
    #[error("shared memory access failed: {0}")]
    Memory(#[from] MemError),
    /// The driver broke the virtqueue rules (bad descriptor chain, index out of range, …).
    #[error("virtqueue protocol violation")]
    Queue,
    /// The device backend failed.
    #[error("device backend failure")]
    Backend,
}

/// A virtio device model, driven by the transport engine.
///
/// The engine guarantees: config accesses are within `config_size`; `queue_*` indices are
/// below `num_queues`; `activate` is called once per reset cycle, at DRIVER_OK, with every
/// queue the driver configured; `notify` is called only between `activate` and the next
/// `reset`, and only for queues passed to `activate` or
/// [`activate_queue`](Self::activate_queue) and not reset by `reset_queue` since.
pub trait VirtioDevice {
    /// Virtio device type (e.g. 4 = entropy).
    fn device_id(&self) -> u32;
    /// Vendor id reported by GET_DEVICE_INFO.
    fn vendor_id(&self) -> u32 {
        0
    }
    /// Device UUID reported in the 2026 GET_DEVICE_INFO (nil by default).
    fn device_uuid(&self) -> [u8; 16] {
        [0; 16]
    }
    /// The feature bits the device offers (bits 0..63). Must include VIRTIO_F_VERSION_1 and
    /// VIRTIO_F_ACCESS_PLATFORM for the Linux drivers.
    fn features(&self) -> u64;
    /// Size of the configuration space in bytes.
    fn config_size(&self) -> u32;
    /// Reads configuration bytes at `offset` (within bounds).
    fn read_config(&self, offset: u32, buf: &mut [u8]);
    /// Writes configuration bytes, all or nothing. Returns whether the write was applied and
    /// changed the driver-visible configuration. The default refuses every write.
    fn write_config(&mut self, offset: u32, data: &[u8]) -> Result<bool, ConfigRejected> {
        let _ = (offset, data);
        Err(ConfigRejected)
    }
    /// Number of virtqueues.
    fn num_queues(&self) -> u32;
    /// Maximum size of queue `index`.
    fn queue_max_size(&self, index: u32) -> u16;
    /// The driver set DRIVER_OK: start serving with the negotiated `features` and the queues
    /// it configured (`queues[i]` is queue i, `None` if not configured).
    fn activate(
        &mut self,
        features: u64,
        queues: &[Option<QueueConfig>],
    ) -> Result<(), DeviceError>;
    /// After DRIVER_OK, the driver configured queue `index`, which was not handed to
    /// [`activate`](Self::activate) (an unused queue set up late, or one re-set after
    /// RESET_VQUEUE): start serving it. An error refuses the queue: the engine leaves it
    /// unconfigured (the driver sees that on GET_VQUEUE read-back) and the device stays up.
    /// The default refuses every late queue.
    fn activate_queue(&mut self, index: u32, config: QueueConfig) -> Result<(), DeviceError> {
        let _ = (index, config);
        Err(DeviceError::Backend)
    }
    /// Device reset: drop every queue and all in-flight state.
    fn reset(&mut self);
    /// Queue `index` was reset (RESET_VQUEUE) or re-configured: drop its state.
    fn reset_queue(&mut self, index: u32);
    /// The driver made buffers available on queue `index`: process them through `mem`, within
    /// `budget` (spend it per chain; start no chain once it is spent; the engine calls again
    /// later for the rest, see [`Budget`]). Returns whether the driver is to be notified of
    /// buffers returned to the used ring (an EVENT_USED is then due): whether any were
    /// returned, and, when VIRTIO_F_EVENT_IDX was negotiated, whether the ring's `used_event`
    /// asks for a notification for them (virtio 1.2 §2.7.10).
    fn notify(
        &mut self,
        index: u32,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
    ) -> Result<bool, DeviceError>;
    /// The queues other than the notified one to which the last [`notify`](Self::notify)
    /// returned buffers the driver is to be notified of (bit `i` for queue `i`; with
    /// VIRTIO_F_EVENT_IDX, as `notify`'s result), cleared by the call: the engine reports an
    /// EVENT_USED for each (a console answering on its receive queue what it got on its
    /// transmit queue). The default: none.
    fn take_used_elsewhere(&mut self) -> u64 {
        0
    }
    /// Shared memory region `id`: (address, length), if the device has one.
    fn shm_region(&self, id: u32) -> Option<(u64, u64)> {
        let _ = id;
        None
    }
}

/// A SET_CONFIG the device refuses (nothing was changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("configuration write rejected")]
pub struct ConfigRejected;
