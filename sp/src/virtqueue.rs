//! The device side of a virtio 1.x split virtqueue, reached only through [`SharedMem`].
//!
//! Layout (virtio 1.x §2.7): a descriptor table of `size` 16-byte descriptors
//! `{le64 addr, le32 len, le16 flags, le16 next}` (aligned 16); the available ring
//! `{le16 flags, le16 idx, le16 ring[size], le16 used_event}` (aligned 2); the used ring
//! `{le16 flags, le16 idx, {le32 id, le32 len}[size], le16 avail_event}` (aligned 4).
//!
//! Everything in those areas is written by the driver, which is hostile: every index is
//! range-checked, every chain walk is bounded by the queue size, and the available index is read
//! once per [`SplitQueue::pop`] so a driver moving it under our feet changes nothing.
//!
//! Rules this queue enforces (a violation is [`DeviceError::Queue`]):
//! - at most `size` entries pending (`avail_idx - last_avail_idx`);
//! - head and `next` indices below `size`; a chain of at most `size` descriptors (so no loops);
//! - `addr + len` does not wrap the 64-bit bus address space;
//! - no device-readable descriptor after a device-writable one;
//! - no `VIRTQ_DESC_F_INDIRECT`: our devices never offer `VIRTIO_F_INDIRECT_DESC`, so a driver
//!   using indirect descriptors is broken (virtio 1.x §2.7.5.3.1); no undefined flag bits.
//!
//! The devices offer neither `VIRTIO_F_EVENT_IDX` nor read `used_event`/write `avail_event`.

use alloc::vec::Vec;

use virtio_msg::{
    SharedMem,
    device::{Budget, DeviceError, QueueConfig},
};
use zerocopy::{
    FromBytes, Immutable, IntoBytes, KnownLayout,
    little_endian::{U16, U32, U64},
};

/// `VIRTQ_DESC_F_NEXT`: the chain continues at `next`.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// `VIRTQ_DESC_F_WRITE`: the buffer is device-writable.
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// `VIRTQ_DESC_F_INDIRECT`: the buffer is a table of descriptors (refused, see module docs).
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;

/// Largest split-queue size virtio allows.
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// `struct virtq_desc` (virtio 1.x §2.7.5), 16 bytes.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct VirtqDesc {
    /// Offset 0, length 8: buffer bus address.
    addr: U64,
    /// Offset 8, length 4: buffer length.
    len: U32,
    /// Offset 12, length 2: `VIRTQ_DESC_F_*`.
    flags: U16,
    /// Offset 14, length 2: next descriptor when `VIRTQ_DESC_F_NEXT`.
    next: U16,
}
const _: () = assert!(size_of::<VirtqDesc>() == 16);

/// `struct virtq_used_elem` (virtio 1.x §2.7.8), 8 bytes.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct VirtqUsedElem {
    /// Offset 0, length 4: head index of the returned chain.
    id: U32,
    /// Offset 4, length 4: bytes written into the chain's device-writable buffers.
    len: U32,
}
const _: () = assert!(size_of::<VirtqUsedElem>() == 8);

/// Offset of `idx` in both rings.
const RING_IDX_OFFSET: u64 = 2;
/// Offset of `ring[0]` in both rings.
const RING_ENTRIES_OFFSET: u64 = 4;

/// A descriptor chain taken from the available ring: its head and its buffers, split into the
/// device-readable ones and the device-writable ones that follow them. Each buffer is
/// `(bus address, length)`; `addr + len` does not overflow. A chain has at most `size`
/// buffers in all (the queue size), so its memory is bounded by the queue the device allows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DescChain {
    /// Descriptor index of the chain's head: the id to hand back to [`SplitQueue::push_used`].
    pub head: u16,
    /// Device-readable buffers, in chain order.
    pub readable: Vec<(u64, u32)>,
    /// Device-writable buffers, in chain order.
    pub writable: Vec<(u64, u32)>,
}

impl DescChain {
    /// Total length of the device-readable buffers.
    pub fn readable_len(&self) -> u64 {
        total_len(&self.readable)
    }

    /// Total length of the device-writable buffers.
    pub fn writable_len(&self) -> u64 {
        total_len(&self.writable)
    }
}

/// Sum of the lengths of `buffers`: at most 32768 buffers of below 2^32 bytes (see
/// [`DescChain`]), so it never saturates; saturating anyway rather than overflowing.
fn total_len(buffers: &[(u64, u32)]) -> u64 {
    buffers
        .iter()
        .fold(0, |sum, &(_, len)| sum.saturating_add(u64::from(len)))
}

/// Device-side state of one split virtqueue: where its areas are and how far the device got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitQueue {
    config: QueueConfig,
    /// Next available-ring entry the device will take (free-running, wraps at 2^16).
    last_avail_idx: u16,
    /// Next used-ring entry the device will write (free-running, wraps at 2^16).
    used_idx: u16,
    /// Chains popped and not yet returned.
    in_flight: u16,
}

impl SplitQueue {
    /// [`new`](Self::new) for a device whose queue holds at most `max` entries: a bigger
    /// `config.size` is refused.
    pub fn with_max(config: QueueConfig, max: u16) -> Result<Self, DeviceError> {
        if config.size > max {
            return Err(DeviceError::Queue);
        }
        Self::new(config)
    }

    /// A queue over the areas `config` names. Checks what the transport engine already
    /// checked (size a power of two up to 32768, areas aligned and not wrapping the address
    /// space), so the queue never relies on its caller for its own safety.
    pub fn new(config: QueueConfig) -> Result<Self, DeviceError> {
        let size = config.size;
        if size == 0 || size > MAX_QUEUE_SIZE || !size.is_power_of_two() {
            return Err(DeviceError::Queue);
        }
        // `n` is at most 32768, so no length comes near saturating; if one did, the wrap check
        // below would refuse it.
        let n = u64::from(size);
        let areas = [
            (config.desc_addr, 16, 16 * n),
            (config.driver_addr, 2, (2 * n).saturating_add(6)),
            (config.device_addr, 4, (8 * n).saturating_add(6)),
        ];
        for (addr, align, len) in areas {
            if !addr.is_multiple_of(align) || addr.checked_add(len).is_none() {
                return Err(DeviceError::Queue);
            }
        }
        Ok(Self {
            config,
            last_avail_idx: 0,
            used_idx: 0,
            in_flight: 0,
        })
    }

    /// The areas this queue serves.
    pub fn config(&self) -> QueueConfig {
        self.config
    }

    /// Number of descriptors.
    pub fn size(&self) -> u16 {
        self.config.size
    }

    /// Next available-ring index the device will consume.
    pub fn last_avail_idx(&self) -> u16 {
        self.last_avail_idx
    }

    /// The used index the device last published.
    pub fn used_idx(&self) -> u16 {
        self.used_idx
    }

    /// Forgets all progress, as after a queue reset (the driver re-initialises the rings).
    pub fn reset(&mut self) {
        self.last_avail_idx = 0;
        self.used_idx = 0;
        self.in_flight = 0;
    }

    /// Takes the next available chain, or `None` when the driver has made nothing new
    /// available. On error nothing is consumed.
    pub fn pop<M: SharedMem + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<Option<DescChain>, DeviceError> {
        let size = self.config.size;
        // One snapshot of the driver's index: later reads never re-read it.
        let avail_idx = read_u16(
            mem,
            element(self.config.driver_addr, RING_IDX_OFFSET, 0, 0)?,
        )?;
        let pending = avail_idx.wrapping_sub(self.last_avail_idx);
        if pending == 0 {
            return Ok(None);
        }
        if pending > size {
            log::debug!(
                "virtqueue: avail idx {avail_idx} is {pending} ahead of {} (size {size})",
                self.last_avail_idx
            );
            return Err(DeviceError::Queue);
        }
        // Real hardware: the ring entry and descriptors must be read after the index
        // (load-acquire order), or we may see stale entries the driver published just now.
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);

        let slot = u64::from(ring_slot(self.last_avail_idx, size)?);
        let head = read_u16(
            mem,
            element(self.config.driver_addr, RING_ENTRIES_OFFSET, 2, slot)?,
        )?;
        let chain = self.walk(mem, head)?;
        self.last_avail_idx = self.last_avail_idx.wrapping_add(1);
        // `pending <= size` and each pop is matched by at most one push, so this stays <= size;
        // saturate anyway rather than trust that.
        self.in_flight = self.in_flight.saturating_add(1);
        Ok(Some(chain))
    }

    /// Reads and validates the chain starting at `head`.
    fn walk<M: SharedMem + ?Sized>(&self, mem: &M, head: u16) -> Result<DescChain, DeviceError> {
        let size = self.config.size;
        if head >= size {
            log::debug!("virtqueue: head {head} out of range (size {size})");
            return Err(DeviceError::Queue);
        }
        let mut chain = DescChain {
            head,
            ..DescChain::default()
        };
        let mut index = head;
        // A chain visits each descriptor at most once, so it has at most `size` of them; the
        // bound stops a looping chain.
        for _ in 0..size {
            let mut raw = [0u8; 16];
            mem.read(
                element(self.config.desc_addr, 0, 16, u64::from(index))?,
                &mut raw,
            )?;
            let desc = VirtqDesc::read_from_bytes(&raw).map_err(|_| DeviceError::Queue)?;
            let (addr, len, flags) = (desc.addr.get(), desc.len.get(), desc.flags.get());
            if flags & !(VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE) != 0 {
                log::debug!(
                    "virtqueue: descriptor {index} has flags {flags:#x} (indirect or undefined)"
                );
                return Err(DeviceError::Queue);
            }
            if addr.checked_add(u64::from(len)).is_none() {
                log::debug!("virtqueue: descriptor {index} wraps the address space");
                return Err(DeviceError::Queue);
            }
            if flags & VIRTQ_DESC_F_WRITE != 0 {
                push_buffer(&mut chain.writable, (addr, len))?;
            } else if chain.writable.is_empty() {
                push_buffer(&mut chain.readable, (addr, len))?;
            } else {
                log::debug!("virtqueue: readable descriptor {index} after a writable one");
                return Err(DeviceError::Queue);
            }
            if flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(chain);
            }
            index = desc.next.get();
            if index >= size {
                log::debug!("virtqueue: next {index} out of range (size {size})");
                return Err(DeviceError::Queue);
            }
        }
        log::debug!("virtqueue: chain from head {head} longer than the queue (a loop)");
        Err(DeviceError::Queue)
    }

    /// Returns chain `head` to the driver with `len` bytes written: writes the used element,
    /// then the used index. `head` must come from [`pop`](Self::pop) on this queue.
    pub fn push_used<M: SharedMem + ?Sized>(
        &mut self,
        mem: &mut M,
        head: u16,
        len: u32,
    ) -> Result<(), DeviceError> {
        let size = self.config.size;
        let Some(in_flight) = self.in_flight.checked_sub(1).filter(|_| head < size) else {
            log::warn!("virtqueue: push_used({head}) with nothing of that id in flight");
            return Err(DeviceError::Queue);
        };
        let slot = u64::from(ring_slot(self.used_idx, size)?);
        let elem = VirtqUsedElem {
            id: U32::new(u32::from(head)),
            len: U32::new(len),
        };
        mem.write(
            element(self.config.device_addr, RING_ENTRIES_OFFSET, 8, slot)?,
            elem.as_bytes(),
        )?;
        // Real hardware: the element must be visible before the index that publishes it
        // (store-release order).
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        let next = self.used_idx.wrapping_add(1);
        mem.write(
            element(self.config.device_addr, RING_IDX_OFFSET, 0, 0)?,
            &next.to_le_bytes(),
        )?;
        self.used_idx = next;
        self.in_flight = in_flight;
        Ok(())
    }

    /// Serves the available chains the way every device does: at most `size` of them whatever
    /// the available index says, and none once `budget` is spent (the engine resumes the rest,
    /// see [`Budget`]). `serve` handles one chain and returns its used length and the work it
    /// did (bytes, spent with [`Budget::spend_chain`]); its error stops the walk. Returns
    /// whether any chain went back to the driver.
    pub fn serve_chains<M: SharedMem + ?Sized>(
        &mut self,
        mem: &mut M,
        budget: &mut Budget,
        mut serve: impl FnMut(&mut M, &DescChain) -> Result<(u32, u64), DeviceError>,
    ) -> Result<bool, DeviceError> {
        let mut used = false;
        for _ in 0..self.size() {
            if budget.is_spent() {
                break;
            }
            let Some(chain) = self.pop(&*mem)? else {
                break;
            };
            let (len, work) = serve(mem, &chain)?;
            self.push_used(mem, chain.head, len)?;
            budget.spend_chain(work);
            used = true;
        }
        Ok(used)
    }
}

/// The ring entry a free-running index `idx` names in a ring of `size` entries (`size` is not
/// zero: [`SplitQueue::new`] refuses it).
fn ring_slot(idx: u16, size: u16) -> Result<u16, DeviceError> {
    idx.checked_rem(size).ok_or(DeviceError::Queue)
}

/// Bus address of element `index` (`stride` bytes each) of the array `offset` bytes into the
/// area at `base`. [`SplitQueue::new`] checked that no area wraps the address space, and every
/// caller passes an index below the queue size, so this does not fail; it is checked all the
/// same, so that a broken invariant refuses the request instead of reaching another address.
fn element(base: u64, offset: u64, stride: u64, index: u64) -> Result<u64, DeviceError> {
    stride
        .checked_mul(index)
        .and_then(|at| at.checked_add(offset))
        .and_then(|at| base.checked_add(at))
        .ok_or(DeviceError::Queue)
}

/// Reads a little-endian u16 at bus address `addr`.
fn read_u16<M: SharedMem + ?Sized>(mem: &M, addr: u64) -> Result<u16, DeviceError> {
    let mut raw = [0u8; 2];
    mem.read(addr, &mut raw)?;
    Ok(u16::from_le_bytes(raw))
}

#[cfg(test)]
mod tests;

/// Appends a buffer to a chain's list. The list grows with the driver's chain (up to the queue
/// size), so the memory is reserved fallibly: running out fails the request, not the image.
fn push_buffer(list: &mut Vec<(u64, u32)>, buffer: (u64, u32)) -> Result<(), DeviceError> {
    list.try_reserve(1).map_err(|_| {
        log::warn!(
            "virtqueue: out of memory for a chain of {} buffers",
            list.len().saturating_add(1)
        );
        DeviceError::Backend
    })?;
    list.push(buffer);
    Ok(())
}
