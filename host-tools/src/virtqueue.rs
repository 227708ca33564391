//! The driver side of a virtio 1.x split virtqueue, laid out in memory the caller provides.
//!
//! The driver reaches the ring through [`DriverMem`] at its own (physical) addresses; the
//! device reaches the same bytes at bus addresses (on the virtio-msg FF-A bus, `area_id << 48 |
//! offset` of the area the ring lives in). A [`DriverQueue`] knows both bases: it writes at
//! `ring_pa + offset` and tells the device `ring_bus + offset` (SET_VQUEUE). Buffer addresses
//! handed to [`DriverQueue::add`] are bus addresses already.
//!
//! Layout (virtio 1.x §2.7), at offsets from the ring base (see [`RingLayout`]): the descriptor
//! table (16 bytes per descriptor, aligned 16), the available ring (`flags, idx, ring[size],
//! used_event`, aligned 2) right after it, and the used ring (`flags, idx, {id, len}[size],
//! avail_event`) at the next multiple of 4.
//!
//! The ring features, used when the device offered them and the driver accepted them
//! ([`DriverQueue::with_features`]):
//! - `VIRTIO_F_INDIRECT_DESC`: [`DriverQueue::add_indirect`] writes a chain's buffers into a
//!   table in memory the caller provides and puts one descriptor naming it in the ring;
//! - `VIRTIO_F_EVENT_IDX`: [`DriverQueue::publish`] says whether the device's `avail_event`
//!   asks for a notification, and [`DriverQueue::prepare_wait`] sets `used_event` to the next
//!   used entry just before the driver waits for one (and looks at the used ring once more), so
//!   the device notifies only for what the driver is waiting for.
//!
//! Without `VIRTIO_F_EVENT_IDX` the driver notifies at every publish and the device at every
//! used buffer; the rings' flags are left 0.
//!
//! Nothing the device writes is trusted: used ids must name a chain in flight, used lengths
//! must fit that chain's writable buffers, and the used index may not run ahead by more than
//! the queue size. Descriptors are never read back from shared memory: the free list and each
//! chain's shape are kept in private memory.

use alloc::{vec, vec::Vec};
use core::sync::atomic::{Ordering, fence};

use virtio_msg::{
    MemError,
    device::{QueueConfig, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, need_event},
};

/// `VIRTQ_DESC_F_NEXT`.
const DESC_F_NEXT: u16 = 1;
/// `VIRTQ_DESC_F_WRITE`.
const DESC_F_WRITE: u16 = 2;
/// `VIRTQ_DESC_F_INDIRECT`.
const DESC_F_INDIRECT: u16 = 4;
/// Largest split-queue size.
const MAX_SIZE: u16 = 32768;

/// Memory the driver reaches at its own (physical) addresses. Shared memory is written behind
/// a shared reference because the device writes it too.
pub trait DriverMem {
    /// Copies `buf.len()` bytes at driver address `addr` into `buf`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError>;
    /// Copies `data` to driver address `addr`.
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MemError>;
}

impl<T: DriverMem + ?Sized> DriverMem for &T {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        (**self).read(addr, buf)
    }
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MemError> {
        (**self).write(addr, data)
    }
}

/// What went wrong with a driver-side queue operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The queue size is not a power of two in 1..=32768.
    #[error("queue size {0} is not a power of two in 1..=32768")]
    BadSize(u16),
    /// The ring base (driver or bus address) is not 16-byte aligned, or the ring wraps.
    #[error("ring base {0:#x} misaligned or ring wraps the address space")]
    BadBase(u64),
    /// A request needs at least one buffer.
    #[error("request without buffers")]
    Empty,
    /// An indirect table without `VIRTIO_F_INDIRECT_DESC`.
    #[error("indirect descriptors were not negotiated")]
    NoIndirect,
    /// A chain longer than the queue (virtio 1.2 §2.7.5.3.1: the driver MUST NOT make one).
    #[error("chain of {need} buffers in a queue of {size}")]
    TooLong {
        /// Buffers in the chain.
        need: usize,
        /// The queue size.
        size: u16,
    },
    /// Not enough free descriptors for the request.
    #[error("request needs {need} descriptors, {free} free")]
    Full {
        /// Descriptors the request needs.
        need: usize,
        /// Descriptors free.
        free: u16,
    },
    /// The ring memory could not be accessed.
    #[error("ring memory: {0}")]
    Memory(#[from] MemError),
    /// The device's used index ran more than the queue size ahead.
    #[error("device used index {used_idx} is {ahead} entries ahead (queue size {size})")]
    UsedIndex {
        /// The index the device published.
        used_idx: u16,
        /// How far past our last seen entry it is.
        ahead: u16,
        /// The queue size.
        size: u16,
    },
    /// The device returned an id that is no chain in flight.
    #[error("device returned id {0}, which is not a chain in flight")]
    UsedId(u32),
    /// The device claimed to write more than the chain's writable buffers hold.
    #[error("device returned length {len} for head {head}, which has {writable} writable bytes")]
    UsedLen {
        /// The chain's head.
        head: u16,
        /// The length the device returned.
        len: u32,
        /// The chain's writable bytes.
        writable: u64,
    },
}

/// Where a split ring's three areas sit, as offsets from the ring base, and its total size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    /// Offset of the descriptor table.
    pub desc: u64,
    /// Offset of the available (driver) ring.
    pub avail: u64,
    /// Offset of the used (device) ring.
    pub used: u64,
    /// Bytes the whole ring occupies.
    pub total: u64,
}

impl RingLayout {
    /// The layout of a ring of `size` descriptors.
    pub fn new(size: u16) -> Result<Self, QueueError> {
        if size == 0 || size > MAX_SIZE || !size.is_power_of_two() {
            return Err(QueueError::BadSize(size));
        }
        let n = u64::from(size);
        let avail = 16 * n;
        let used = (avail + 6 + 2 * n).next_multiple_of(4);
        Ok(Self {
            desc: 0,
            avail,
            used,
            total: used + 6 + 8 * n,
        })
    }
}

/// Driver-side bookkeeping for one descriptor.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Next descriptor: in the free list when free, in the chain when in use.
    next: u16,
    /// For a chain head in flight: descriptors in the chain (0 otherwise).
    chain_len: u16,
    /// For a chain head in flight: bytes of its device-writable buffers.
    writable: u64,
}

/// A split virtqueue as the driver runs it.
#[derive(Debug)]
pub struct DriverQueue {
    size: u16,
    ring_pa: u64,
    ring_bus: u64,
    layout: RingLayout,
    slots: Vec<Slot>,
    free_head: u16,
    num_free: u16,
    /// Next avail-ring entry to fill (free-running); published by [`publish`](Self::publish).
    avail_idx: u16,
    /// Next used-ring entry to consume (free-running).
    last_used: u16,
    /// `VIRTIO_F_INDIRECT_DESC` was negotiated.
    indirect: bool,
    /// `VIRTIO_F_EVENT_IDX` was negotiated.
    event_idx: bool,
    /// The available index at the last [`publish`](Self::publish).
    published: u16,
}

impl DriverQueue {
    /// Offsets and size of a ring of `size` descriptors (see [`RingLayout`]).
    pub fn layout(size: u16) -> Result<RingLayout, QueueError> {
        RingLayout::new(size)
    }

    /// A queue of `size` descriptors whose ring the driver reaches at `ring_pa` and the device
    /// at `ring_bus` (both 16-byte aligned, [`layout`](Self::layout)`.total` bytes). Zeroes
    /// the ring.
    pub fn new<M: DriverMem + ?Sized>(
        mem: &M,
        size: u16,
        ring_pa: u64,
        ring_bus: u64,
    ) -> Result<Self, QueueError> {
        let layout = RingLayout::new(size)?;
        for base in [ring_pa, ring_bus] {
            if base % 16 != 0 || base.checked_add(layout.total).is_none() {
                return Err(QueueError::BadBase(base));
            }
        }
        let mut queue = Self {
            size,
            ring_pa,
            ring_bus,
            layout,
            slots: Vec::new(),
            free_head: 0,
            num_free: 0,
            avail_idx: 0,
            last_used: 0,
            indirect: false,
            event_idx: false,
            published: 0,
        };
        queue.reset(mem)?;
        Ok(queue)
    }

    /// The same queue using the ring features in `features` (the negotiated set; other bits
    /// are ignored): `VIRTIO_F_INDIRECT_DESC` and `VIRTIO_F_EVENT_IDX`.
    #[must_use]
    pub fn with_features(mut self, features: u64) -> Self {
        self.indirect = features & VIRTIO_F_INDIRECT_DESC != 0;
        self.event_idx = features & VIRTIO_F_EVENT_IDX != 0;
        self
    }

    /// The ring features this queue uses.
    pub fn features(&self) -> u64 {
        let mut features = 0;
        if self.indirect {
            features |= VIRTIO_F_INDIRECT_DESC;
        }
        if self.event_idx {
            features |= VIRTIO_F_EVENT_IDX;
        }
        features
    }

    /// Zeroes the ring and forgets every request, as after a queue or device reset.
    pub fn reset<M: DriverMem + ?Sized>(&mut self, mem: &M) -> Result<(), QueueError> {
        let total =
            usize::try_from(self.layout.total).map_err(|_| QueueError::BadSize(self.size))?;
        mem.write(self.ring_pa, &vec![0; total])?;
        self.slots = (1..=self.size)
            .map(|next| Slot {
                next: next % self.size,
                ..Slot::default()
            })
            .collect();
        self.free_head = 0;
        self.num_free = self.size;
        self.avail_idx = 0;
        self.last_used = 0;
        self.published = 0;
        Ok(())
    }

    /// Number of descriptors.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Descriptors free for new requests.
    pub fn num_free(&self) -> u16 {
        self.num_free
    }

    /// The ring's layout.
    pub fn ring_layout(&self) -> RingLayout {
        self.layout
    }

    /// Bus address of the descriptor table.
    pub fn desc_bus(&self) -> u64 {
        self.ring_bus + self.layout.desc
    }

    /// Bus address of the available (driver) ring.
    pub fn avail_bus(&self) -> u64 {
        self.ring_bus + self.layout.avail
    }

    /// Bus address of the used (device) ring.
    pub fn used_bus(&self) -> u64 {
        self.ring_bus + self.layout.used
    }

    /// The queue as SET_VQUEUE describes it.
    pub fn queue_config(&self) -> QueueConfig {
        QueueConfig {
            size: self.size,
            desc_addr: self.desc_bus(),
            driver_addr: self.avail_bus(),
            device_addr: self.used_bus(),
        }
    }

    /// Writes a chain of the device-readable buffers `readable` followed by the
    /// device-writable buffers `writable` (each `(bus address, length)`) and puts its head in
    /// the available ring. The device sees it after [`publish`](Self::publish). Returns the
    /// head, which [`pop_used`](Self::pop_used) reports when the device is done.
    pub fn add<M: DriverMem + ?Sized>(
        &mut self,
        mem: &M,
        readable: &[(u64, u32)],
        writable: &[(u64, u32)],
    ) -> Result<u16, QueueError> {
        let need = readable.len() + writable.len();
        if need == 0 {
            return Err(QueueError::Empty);
        }
        let full = QueueError::Full {
            need,
            free: self.num_free,
        };
        let chain_len = u16::try_from(need).map_err(|_| full)?;
        if chain_len > self.num_free {
            return Err(full);
        }
        let buffers = readable.iter().map(|&(addr, len)| (addr, len, 0)).chain(
            writable
                .iter()
                .map(|&(addr, len)| (addr, len, DESC_F_WRITE)),
        );
        let head = self.free_head;
        let mut index = head;
        for (k, (addr, len, flags)) in buffers.enumerate() {
            let next = self.slot(index)?.next;
            let last = k + 1 == need;
            let (flags, next_field) = if last {
                (flags, 0)
            } else {
                (flags | DESC_F_NEXT, next)
            };
            mem.write(
                self.pa(self.layout.desc + 16 * u64::from(index)),
                &desc_bytes(addr, len, flags, next_field),
            )?;
            if !last {
                index = next;
            }
        }
        // `index` is the chain's last descriptor; the free list continues after it.
        let after = self.slot(index)?.next;
        self.make_available(mem, head, chain_len, after, writable)
    }

    /// Writes the chain of the device-readable buffers `readable` followed by the
    /// device-writable buffers `writable` as an indirect table at `table` (its driver and bus
    /// addresses; `16 * (readable.len() + writable.len())` bytes the device can read, left
    /// untouched until [`pop_used`](Self::pop_used) returns the chain), and puts one
    /// descriptor naming it in the ring: a chain of any length (up to the queue size) takes one
    /// descriptor. Needs `VIRTIO_F_INDIRECT_DESC`. Returns the head, as [`add`](Self::add).
    pub fn add_indirect<M: DriverMem + ?Sized>(
        &mut self,
        mem: &M,
        (table_pa, table_bus): (u64, u64),
        readable: &[(u64, u32)],
        writable: &[(u64, u32)],
    ) -> Result<u16, QueueError> {
        if !self.indirect {
            return Err(QueueError::NoIndirect);
        }
        let need = readable.len() + writable.len();
        if need == 0 {
            return Err(QueueError::Empty);
        }
        if need > usize::from(self.size) {
            return Err(QueueError::TooLong {
                need,
                size: self.size,
            });
        }
        if self.num_free == 0 {
            return Err(QueueError::Full { need: 1, free: 0 });
        }
        let buffers = readable.iter().map(|&(addr, len)| (addr, len, 0)).chain(
            writable
                .iter()
                .map(|&(addr, len)| (addr, len, DESC_F_WRITE)),
        );
        for (k, (addr, len, flags)) in buffers.enumerate() {
            let (flags, next) = if k + 1 == need {
                (flags, 0)
            } else {
                (flags | DESC_F_NEXT, k + 1)
            };
            let next = u16::try_from(next).map_err(|_| QueueError::TooLong {
                need,
                size: self.size,
            })?;
            mem.write(
                table_pa + 16 * k as u64,
                &desc_bytes(addr, len, flags, next),
            )?;
        }
        let head = self.free_head;
        let table_len = u32::try_from(16 * need).map_err(|_| QueueError::TooLong {
            need,
            size: self.size,
        })?;
        mem.write(
            self.pa(self.layout.desc + 16 * u64::from(head)),
            &desc_bytes(table_bus, table_len, DESC_F_INDIRECT, 0),
        )?;
        let after = self.slot(head)?.next;
        self.make_available(mem, head, 1, after, writable)
    }

    /// Puts chain `head` (`chain_len` descriptors of the ring, then the free list goes on at
    /// `after`; device-writable buffers `writable`) in the available ring and books it.
    fn make_available<M: DriverMem + ?Sized>(
        &mut self,
        mem: &M,
        head: u16,
        chain_len: u16,
        after: u16,
        writable: &[(u64, u32)],
    ) -> Result<u16, QueueError> {
        let slot = self.avail_idx % self.size;
        mem.write(
            self.pa(self.layout.avail + 4 + 2 * u64::from(slot)),
            &head.to_le_bytes(),
        )?;
        let writable_len = writable.iter().map(|&(_, len)| u64::from(len)).sum();
        let head_slot = self.slot_mut(head)?;
        head_slot.chain_len = chain_len;
        head_slot.writable = writable_len;
        self.free_head = after;
        self.num_free -= chain_len;
        self.avail_idx = self.avail_idx.wrapping_add(1);
        Ok(head)
    }

    /// Makes every chain added so far visible to the device (writes the available index).
    /// Returns whether to notify the device (EVENT_AVAIL) now: always without
    /// `VIRTIO_F_EVENT_IDX`; with it, when the chains published pass the device's
    /// `avail_event` (virtio 1.2 §2.7.10).
    pub fn publish<M: DriverMem + ?Sized>(&mut self, mem: &M) -> Result<bool, QueueError> {
        // The ring entries and descriptors must be visible before the index.
        fence(Ordering::Release);
        mem.write(
            self.pa(self.layout.avail + 2),
            &self.avail_idx.to_le_bytes(),
        )?;
        let old = core::mem::replace(&mut self.published, self.avail_idx);
        if !self.event_idx {
            return Ok(true);
        }
        // The index must be visible before avail_event is read (a store, then a load).
        fence(Ordering::SeqCst);
        let avail_event = self.read_u16(mem, self.layout.used + 4 + 8 * u64::from(self.size))?;
        Ok(need_event(avail_event, self.avail_idx, old))
    }

    /// Before waiting for the device to return a chain: with `VIRTIO_F_EVENT_IDX`, asks it to
    /// notify when it returns the next used entry (`used_event`), then, in either case, looks at
    /// the used ring once more. Returns whether an entry is there already: then take it with
    /// [`pop_used`](Self::pop_used) instead of waiting (with EVENT_IDX the device may have
    /// returned it before it could see the new `used_event`, and then it does not notify).
    pub fn prepare_wait<M: DriverMem + ?Sized>(&mut self, mem: &M) -> Result<bool, QueueError> {
        if self.event_idx {
            mem.write(
                self.pa(self.layout.avail + 4 + 2 * u64::from(self.size)),
                &self.last_used.to_le_bytes(),
            )?;
            // used_event must be visible before the used index is read (a store, then a load).
            fence(Ordering::SeqCst);
        }
        Ok(self.read_u16(mem, self.layout.used + 2)? != self.last_used)
    }

    /// The little-endian u16 at ring offset `offset`.
    fn read_u16<M: DriverMem + ?Sized>(&self, mem: &M, offset: u64) -> Result<u16, QueueError> {
        let mut raw = [0u8; 2];
        mem.read(self.pa(offset), &mut raw)?;
        Ok(u16::from_le_bytes(raw))
    }

    /// Takes the next chain the device returned: `(head, bytes written)`, or `None` if the
    /// device has returned nothing new. The chain's descriptors become free.
    pub fn pop_used<M: DriverMem + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<Option<(u16, u32)>, QueueError> {
        let mut raw = [0u8; 2];
        mem.read(self.pa(self.layout.used + 2), &mut raw)?;
        let used_idx = u16::from_le_bytes(raw);
        let ahead = used_idx.wrapping_sub(self.last_used);
        if ahead == 0 {
            return Ok(None);
        }
        if ahead > self.size {
            return Err(QueueError::UsedIndex {
                used_idx,
                ahead,
                size: self.size,
            });
        }
        // The element must be read after the index.
        fence(Ordering::Acquire);
        let slot = self.last_used % self.size;
        let mut elem = [0u8; 8];
        mem.read(
            self.pa(self.layout.used + 4 + 8 * u64::from(slot)),
            &mut elem,
        )?;
        let [i0, i1, i2, i3, l0, l1, l2, l3] = elem;
        let id = u32::from_le_bytes([i0, i1, i2, i3]);
        let len = u32::from_le_bytes([l0, l1, l2, l3]);
        let head = u16::try_from(id)
            .ok()
            .filter(|&h| h < self.size)
            .ok_or(QueueError::UsedId(id))?;
        let Slot {
            chain_len,
            writable,
            ..
        } = *self.slot(head)?;
        if chain_len == 0 {
            return Err(QueueError::UsedId(id));
        }
        if u64::from(len) > writable {
            return Err(QueueError::UsedLen {
                head,
                len,
                writable,
            });
        }
        // Free the chain: find its tail and splice the chain onto the free list.
        let mut tail = head;
        for _ in 1..chain_len {
            tail = self.slot(tail)?.next;
        }
        let free_head = self.free_head;
        self.slot_mut(tail)?.next = free_head;
        let head_slot = self.slot_mut(head)?;
        head_slot.chain_len = 0;
        head_slot.writable = 0;
        self.free_head = head;
        self.num_free += chain_len;
        self.last_used = self.last_used.wrapping_add(1);
        Ok(Some((head, len)))
    }

    /// Driver address of ring offset `offset` (below `layout.total`, checked in `new`).
    fn pa(&self, offset: u64) -> u64 {
        self.ring_pa + offset
    }

    fn slot(&self, index: u16) -> Result<&Slot, QueueError> {
        self.slots
            .get(usize::from(index))
            .ok_or(QueueError::UsedId(u32::from(index)))
    }

    fn slot_mut(&mut self, index: u16) -> Result<&mut Slot, QueueError> {
        self.slots
            .get_mut(usize::from(index))
            .ok_or(QueueError::UsedId(u32::from(index)))
    }
}

/// The 16 bytes of `struct virtq_desc`.
fn desc_bytes(addr: u64, len: u32, flags: u16, next: u16) -> [u8; 16] {
    let mut raw = [0u8; 16];
    raw[0..8].copy_from_slice(&addr.to_le_bytes());
    raw[8..12].copy_from_slice(&len.to_le_bytes());
    raw[12..14].copy_from_slice(&flags.to_le_bytes());
    raw[14..16].copy_from_slice(&next.to_le_bytes());
    raw
}

#[cfg(test)]
mod tests;
