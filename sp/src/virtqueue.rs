//! The device side of a virtio 1.x split virtqueue, reached only through [`SharedMem`].
//!
//! Layout (virtio 1.2 §2.7): a descriptor table of `size` 16-byte descriptors
//! `{le64 addr, le32 len, le16 flags, le16 next}` (aligned 16); the available ring
//! `{le16 flags, le16 idx, le16 ring[size], le16 used_event}` (aligned 2); the used ring
//! `{le16 flags, le16 idx, {le32 id, le32 len}[size], le16 avail_event}` (aligned 4).
//!
//! Everything in those areas is written by the driver, which is hostile: every index is
//! range-checked, every chain walk is bounded, and the available index is read once per
//! [`SplitQueue::pop`] (twice when the ring looked empty under `VIRTIO_F_EVENT_IDX`, see
//! below) so a driver moving it under our feet changes nothing.
//!
//! Two ring features, each honoured exactly when the driver accepted it
//! ([`SplitQueue::with_features`]; every device here offers both):
//! - `VIRTIO_F_INDIRECT_DESC` (§2.7.5.3): a chain of zero or more direct descriptors may end
//!   with one descriptor flagged `VIRTQ_DESC_F_INDIRECT`, whose buffer is a table of
//!   descriptors walked from entry 0 by `next` (an index into the table). The table is copied
//!   with one read of shared memory into a local buffer of [`MAX_INDIRECT_DESCS`] entries on
//!   the stack (nothing is allocated) and walked there: no entry is read from shared memory
//!   twice. The WRITE flag of the descriptor naming the table is ignored, as §2.7.5.3.2
//!   requires.
//! - `VIRTIO_F_EVENT_IDX` (§2.7.7, §2.7.10): whenever [`SplitQueue::pop`] sees a new available
//!   index it writes it to `avail_event` ("notify me once you make a buffer available past
//!   this"), then, if nothing was pending, reads the index once more, so that a buffer the
//!   driver added before it could see the new `avail_event` (and so did not notify for) is
//!   not left behind. At the end of a serving pass [`SplitQueue::notify_due`] reads
//!   `used_event` and asks for a used-buffer notification only if the driver's `used_event`
//!   lies among the entries returned since the last decision (`vring_need_event`, u16
//!   arithmetic that wraps), and always for the first pass after the queue starts.
//!
//! Without `VIRTIO_F_EVENT_IDX` neither field is read or written, and every pass that
//! returned buffers asks for a notification: `VIRTQ_AVAIL_F_NO_INTERRUPT` is not looked at
//! (the device "SHOULD NOT" notify then, §2.7.7.2; notifying anyway costs the driver a
//! spurious EVENT_USED, never a lost one), and the used ring's flags stay 0 (the device always
//! wants notifications: it serves a queue only when notified or resumed).
//!
//! Rules this queue enforces (a violation is [`DeviceError::Queue`]):
//! - at most `size` entries pending (`avail_idx - last_avail_idx`);
//! - head and `next` indices below `size`; at most `size` direct descriptors in a chain (so no
//!   loop goes on) and at most [`MAX_INDIRECT_DESCS`] entries in its table, so at most
//!   `size - 1 + MAX_INDIRECT_DESCS` buffers in all;
//! - `addr + len` does not wrap the 64-bit bus address space (buffers and tables);
//! - no device-readable descriptor after a device-writable one, across the direct part and
//!   the table;
//! - no undefined flag bits; `VIRTQ_DESC_F_INDIRECT` only when `VIRTIO_F_INDIRECT_DESC` was
//!   negotiated, never together with `VIRTQ_DESC_F_NEXT`, never inside a table (§2.7.5.3.1);
//! - an indirect table of a non-zero multiple of 16 bytes, at most [`MAX_INDIRECT_DESCS`]
//!   entries, every `next` inside it, a walk of at most its entries.
//!
//! The table's bound is the local copy's, not the queue size: a driver "MUST NOT create a
//! descriptor chain longer than the Queue Size" (§2.7.5.3.1), but Linux's virtio_ring makes a
//! table of as many entries as a request has segments, whatever the queue size (QEMU and vhost
//! accept that too), so the queue does not refuse what it can hold. Every device here has
//! queues of at most [`MAX_INDIRECT_DESCS`] entries, so a driver that keeps the rule is never
//! refused.
//!
//! A ring or indirect table outside shared memory (an unknown area, or past an area's end) is
//! [`DeviceError::Memory`], from [`SharedMem`]'s own check.
//!
//! A refused chain is not taken: [`SplitQueue::pop`] consumes nothing and returns the error.
//! The devices pass it on from `notify`, and the transport engine sets DEVICE_NEEDS_RESET
//! (virtio 1.2 §2.1.2: the device is in an error state only a reset ends) and serves the
//! device no more until the driver resets it (device reset, or RESET_VQUEUE of that queue);
//! after that good chains are served as ever. The rule is the same for direct and indirect
//! chains, and for broken rings: the driver broke the queue itself, and no used element can be
//! trusted to describe what it meant. A well-formed chain whose *request* the device cannot
//! carry out (virtio-blk: a sector past the disk, a data buffer outside shared memory) is
//! answered by the device model with the protocol's status instead, and the queue goes on.

use alloc::vec::Vec;

use core::sync::atomic::{Ordering, fence};

use virtio_msg::{
    SharedMem,
    device::{
        Budget, DeviceError, QueueConfig, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, need_event,
    },
};
use zerocopy::{
    FromBytes, Immutable, IntoBytes, KnownLayout,
    little_endian::{U16, U32, U64},
};

/// `VIRTQ_DESC_F_NEXT`: the chain continues at `next`.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// `VIRTQ_DESC_F_WRITE`: the buffer is device-writable.
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// `VIRTQ_DESC_F_INDIRECT`: the buffer is a table of descriptors (with
/// `VIRTIO_F_INDIRECT_DESC` only, see the module docs).
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;

/// Largest split-queue size virtio allows.
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// Most entries of an indirect table: the size of the local copy (16 bytes each, 2 KiB, on
/// the stack while a chain is walked). At least the largest queue of every device here (each
/// checks that at compile time), so a table no longer than its queue, as the spec has it, is
/// never refused for its length (see the module docs for longer ones).
pub const MAX_INDIRECT_DESCS: u16 = 128;
/// Bytes of the local copy of an indirect table.
const MAX_INDIRECT_BYTES: usize = MAX_INDIRECT_DESCS as usize * DESC_BYTES;
/// Bytes of one descriptor.
const DESC_BYTES: usize = 16;
/// The same, as a descriptor length.
const DESC_LEN: u32 = 16;

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
const _: () = assert!(size_of::<VirtqDesc>() == DESC_BYTES);

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
/// device-readable ones and the device-writable ones that follow them, direct and indirect
/// alike (a chain that ends in an indirect table lists the table's buffers, not the table).
/// Each buffer is `(bus address, length)`; `addr + len` does not overflow. A chain has at
/// most `size - 1 + MAX_INDIRECT_DESCS` buffers in all (`size` the queue size), so its memory
/// is bounded by the queue the device allows.
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

/// Sum of the lengths of `buffers`: fewer than 2^16 buffers of below 2^32 bytes (see
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
    /// `VIRTIO_F_INDIRECT_DESC` was negotiated: chains may end in an indirect table.
    indirect: bool,
    /// `VIRTIO_F_EVENT_IDX` was negotiated: `avail_event` and `used_event` are used.
    event_idx: bool,
    /// With `event_idx`: what the device last wrote to `avail_event` (`None`: nothing since
    /// the queue started).
    avail_event: Option<u16>,
    /// With `event_idx`: the used index at the last notification decision (`None`: none since
    /// the queue started, so the next one notifies).
    signalled_used: Option<u16>,
    /// The lists of the last chain [`serve_chains`](Self::serve_chains) served, emptied, kept
    /// for the next chain: once they have grown to the chains a driver sends, popping a chain
    /// allocates nothing.
    spare: DescChain,
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
            indirect: false,
            event_idx: false,
            avail_event: None,
            signalled_used: None,
            spare: DescChain::default(),
        })
    }

    /// The same queue honouring the ring features in `features` (the negotiated set; other
    /// bits are ignored): `VIRTIO_F_INDIRECT_DESC` and `VIRTIO_F_EVENT_IDX`. A queue made with
    /// [`new`](Self::new) alone honours neither: it refuses indirect descriptors and neither
    /// reads `used_event` nor writes `avail_event`.
    #[must_use]
    pub fn with_features(mut self, features: u64) -> Self {
        self.indirect = features & VIRTIO_F_INDIRECT_DESC != 0;
        self.event_idx = features & VIRTIO_F_EVENT_IDX != 0;
        self
    }

    /// The ring features this queue honours (`VIRTIO_F_INDIRECT_DESC`, `VIRTIO_F_EVENT_IDX`).
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
        self.avail_event = None;
        self.signalled_used = None;
    }

    /// Takes the next available chain, or `None` when the driver has made nothing new
    /// available. With `VIRTIO_F_EVENT_IDX`, a new available index is written to
    /// `avail_event` first (see the module docs). On error nothing is consumed.
    pub fn pop<M: SharedMem + ?Sized>(
        &mut self,
        mem: &mut M,
    ) -> Result<Option<DescChain>, DeviceError> {
        Ok(self.take(mem, None)?.map(|(chain, _)| chain))
    }

    /// [`pop`](Self::pop), from `known`, an available index read earlier in the same pass,
    /// while it still covers entries not taken (the driver published those before it was
    /// read); else from the index read now. Returns the chain and the index it came from.
    fn take<M: SharedMem + ?Sized>(
        &mut self,
        mem: &mut M,
        known: Option<u16>,
    ) -> Result<Option<(DescChain, u16)>, DeviceError> {
        let size = self.config.size;
        let (avail_idx, pending) = match known {
            Some(known) if known != self.last_avail_idx => (known, self.pending(known)?),
            _ => {
                // One snapshot of the driver's index (and, under EVENT_IDX, one more look
                // when it showed nothing): the chain is read from what that snapshot covers.
                let avail_idx = read_u16(
                    &*mem,
                    element(self.config.driver_addr, RING_IDX_OFFSET, 0, 0)?,
                )?;
                let mut pending = self.pending(avail_idx)?;
                if self.event_idx && self.avail_event != Some(avail_idx) {
                    pending = self.announce_avail(mem, avail_idx, pending)?;
                }
                (avail_idx, pending)
            }
        };
        if pending == 0 {
            return Ok(None);
        }
        // Real hardware: the ring entry and descriptors must be read after the index
        // (load-acquire order), or we may see stale entries the driver published just now.
        fence(Ordering::Acquire);

        let slot = u64::from(ring_slot(self.last_avail_idx, size)?);
        let head = read_u16(
            mem,
            element(self.config.driver_addr, RING_ENTRIES_OFFSET, 2, slot)?,
        )?;
        let mut spare = core::mem::take(&mut self.spare);
        spare.readable.clear();
        spare.writable.clear();
        let chain = self.walk(&*mem, head, spare)?;
        self.last_avail_idx = self.last_avail_idx.wrapping_add(1);
        // `pending <= size` and each pop is matched by at most one push, so this stays <= size;
        // saturate anyway rather than trust that.
        self.in_flight = self.in_flight.saturating_add(1);
        Ok(Some((chain, avail_idx)))
    }

    /// How many entries available index `avail_idx` makes pending: at most `size`.
    #[inline]
    fn pending(&self, avail_idx: u16) -> Result<u16, DeviceError> {
        let pending = avail_idx.wrapping_sub(self.last_avail_idx);
        if pending > self.config.size {
            log::debug!(
                "virtqueue: avail idx {avail_idx} is {pending} ahead of {} (size {})",
                self.last_avail_idx,
                self.config.size
            );
            return Err(DeviceError::Queue);
        }
        Ok(pending)
    }

    /// `VIRTIO_F_EVENT_IDX`, at a new available index `avail_idx` (`pending` entries): writes
    /// it to the used ring's `avail_event` (the driver is to notify once it makes available
    /// the entry at `avail_idx`); if nothing was pending, looks at the index once more (the
    /// driver may have made a buffer available after the snapshot and before it could see the
    /// new `avail_event`, and then it does not notify). Returns what is pending now. Out of
    /// line: the queue without the feature never comes here.
    #[inline(never)]
    fn announce_avail<M: SharedMem + ?Sized>(
        &mut self,
        mem: &mut M,
        avail_idx: u16,
        pending: u16,
    ) -> Result<u16, DeviceError> {
        let at = element(
            self.config.device_addr,
            RING_ENTRIES_OFFSET,
            8,
            u64::from(self.config.size),
        )?;
        mem.write(at, &avail_idx.to_le_bytes())?;
        self.avail_event = Some(avail_idx);
        // Real hardware: the write must be visible before the available index is read again,
        // here or at the next pop (a store followed by a load: a full barrier), as the driver
        // orders its index write before its read of `avail_event`.
        fence(Ordering::SeqCst);
        if pending != 0 {
            return Ok(pending);
        }
        let again = read_u16(
            &*mem,
            element(self.config.driver_addr, RING_IDX_OFFSET, 0, 0)?,
        )?;
        self.pending(again)
    }

    /// Reads and validates the chain starting at `head`.
    fn walk<M: SharedMem + ?Sized>(
        &self,
        mem: &M,
        head: u16,
        mut chain: DescChain,
    ) -> Result<DescChain, DeviceError> {
        let size = self.config.size;
        if head >= size {
            log::debug!("virtqueue: head {head} out of range (size {size})");
            return Err(DeviceError::Queue);
        }
        chain.head = head;
        let mut index = head;
        // A chain visits each descriptor at most once, so it has at most `size` of them; the
        // bound stops a looping chain.
        for _ in 0..size {
            let mut raw = [0u8; DESC_BYTES];
            mem.read(
                element(self.config.desc_addr, 0, 16, u64::from(index))?,
                &mut raw,
            )?;
            let desc = VirtqDesc::read_from_bytes(&raw).map_err(|_| DeviceError::Queue)?;
            let flags = desc.flags.get();
            if flags & !(VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE) != 0 {
                if flags & VIRTQ_DESC_F_INDIRECT != 0 {
                    // The last descriptor of the chain (it may not have NEXT).
                    return self.walk_indirect(mem, chain, index, &desc);
                }
                log::debug!("virtqueue: descriptor {index} has undefined flags {flags:#x}");
                return Err(DeviceError::Queue);
            }
            add_buffer(&mut chain, &desc, "descriptor", index)?;
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

    /// Ends `chain` with the indirect table that descriptor `index` (`desc`, flagged
    /// `VIRTQ_DESC_F_INDIRECT`) names: checks the descriptor, copies the table with one read
    /// and walks the copy. Out of line, so that a direct chain's walk does not carry the
    /// table's stack frame.
    #[inline(never)]
    fn walk_indirect<M: SharedMem + ?Sized>(
        &self,
        mem: &M,
        mut chain: DescChain,
        index: u16,
        desc: &VirtqDesc,
    ) -> Result<DescChain, DeviceError> {
        let (addr, len, flags) = (desc.addr.get(), desc.len.get(), desc.flags.get());
        if !self.indirect {
            log::debug!(
                "virtqueue: descriptor {index} is indirect, VIRTIO_F_INDIRECT_DESC not negotiated"
            );
            return Err(DeviceError::Queue);
        }
        // WRITE is ignored here (§2.7.5.3.2); NEXT and undefined bits are not.
        if flags & !(VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE) != 0 {
            log::debug!("virtqueue: indirect descriptor {index} has flags {flags:#x}");
            return Err(DeviceError::Queue);
        }
        let entries = len
            .is_multiple_of(DESC_LEN)
            .then(|| len.checked_div(DESC_LEN))
            .flatten()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|&n| n > 0 && n <= MAX_INDIRECT_DESCS);
        let Some(entries) = entries else {
            log::debug!(
                "virtqueue: indirect table of {len} bytes \
                 (a non-zero multiple of 16, at most {MAX_INDIRECT_DESCS} entries)"
            );
            return Err(DeviceError::Queue);
        };
        if addr.checked_add(u64::from(len)).is_none() {
            log::debug!("virtqueue: indirect table at {addr:#x}+{len:#x} wraps the address space");
            return Err(DeviceError::Queue);
        }
        // The one read of the table: everything below looks at this copy only.
        let mut copy = [0u8; MAX_INDIRECT_BYTES];
        let table = usize::try_from(len)
            .ok()
            .and_then(|len| copy.get_mut(..len))
            .ok_or(DeviceError::Queue)?;
        mem.read(addr, table)?;
        let table = <[VirtqDesc]>::ref_from_bytes(table).map_err(|_| DeviceError::Queue)?;
        let mut at: u16 = 0;
        // Each entry at most once: a walk longer than the table is a loop.
        for _ in 0..entries {
            let desc = table.get(usize::from(at)).ok_or(DeviceError::Queue)?;
            let flags = desc.flags.get();
            if flags & !(VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE) != 0 {
                log::debug!(
                    "virtqueue: indirect entry {at} has flags {flags:#x} \
                     (an indirect table may not hold another)"
                );
                return Err(DeviceError::Queue);
            }
            add_buffer(&mut chain, desc, "indirect entry", at)?;
            if flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(chain);
            }
            at = desc.next.get();
            if at >= entries {
                log::debug!("virtqueue: indirect next {at} out of the table ({entries} entries)");
                return Err(DeviceError::Queue);
            }
        }
        log::debug!("virtqueue: indirect walk longer than its table of {entries} (a loop)");
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
        fence(Ordering::Release);
        let next = self.used_idx.wrapping_add(1);
        mem.write(
            element(self.config.device_addr, RING_IDX_OFFSET, 0, 0)?,
            &next.to_le_bytes(),
        )?;
        self.used_idx = next;
        self.in_flight = in_flight;
        Ok(())
    }

    /// Ends a serving pass that returned buffers to the driver (`used`): whether the driver is
    /// to be notified (an EVENT_USED is due). Without `VIRTIO_F_EVENT_IDX`, whenever `used`;
    /// with it, when the driver's `used_event` lies among the used entries written since the
    /// last decision (`vring_need_event`), and always at the first decision after the queue
    /// started. Reads `used_event` only with `VIRTIO_F_EVENT_IDX` and `used`.
    #[inline]
    pub fn notify_due<M: SharedMem + ?Sized>(
        &mut self,
        mem: &M,
        used: bool,
    ) -> Result<bool, DeviceError> {
        if !used || !self.event_idx {
            return Ok(used);
        }
        self.used_event_passed(mem)
    }

    /// `VIRTIO_F_EVENT_IDX`: whether `used_event` lies among the used entries written since the
    /// last decision (always at the first). Out of line: the queue without the feature never
    /// comes here.
    #[inline(never)]
    fn used_event_passed<M: SharedMem + ?Sized>(&mut self, mem: &M) -> Result<bool, DeviceError> {
        // Real hardware: the used index must be visible before `used_event` is read (a store
        // followed by a load: a full barrier), as the driver writes `used_event` before it
        // looks at the used index again.
        fence(Ordering::SeqCst);
        let used_event = read_u16(
            mem,
            element(
                self.config.driver_addr,
                RING_ENTRIES_OFFSET,
                2,
                u64::from(self.config.size),
            )?,
        )?;
        let new = self.used_idx;
        Ok(match self.signalled_used.replace(new) {
            Some(old) => need_event(used_event, new, old),
            None => true,
        })
    }

    /// Serves the available chains the way every device does: at most `size` of them whatever
    /// the available index says, and none once `budget` is spent (the engine resumes the rest,
    /// see [`Budget`]). `serve` handles one chain and returns its used length and the work it
    /// did (bytes, spent with [`Budget::spend_chain`]); its error stops the walk. Returns
    /// whether the driver is to be notified of the chains that went back to it
    /// ([`notify_due`](Self::notify_due)).
    pub fn serve_chains<M: SharedMem + ?Sized>(
        &mut self,
        mem: &mut M,
        budget: &mut Budget,
        mut serve: impl FnMut(&mut M, &DescChain) -> Result<(u32, u64), DeviceError>,
    ) -> Result<bool, DeviceError> {
        let mut used = false;
        // The available index this pass read. Without EVENT_IDX, once its entries are taken
        // the pass ends without reading the index again: the device never suppresses
        // notifications then, so the driver notifies again for anything it made available
        // since (and that notification starts the next pass). Under EVENT_IDX the index is
        // read again (and `avail_event` written) as `pop` does.
        let mut known: Option<u16> = None;
        for _ in 0..self.size() {
            if budget.is_spent() {
                break;
            }
            if !self.event_idx && known == Some(self.last_avail_idx) {
                break;
            }
            let Some((chain, seen)) = self.take(mem, known)? else {
                break;
            };
            known = Some(seen);
            let (len, work) = serve(mem, &chain)?;
            self.push_used(mem, chain.head, len)?;
            self.spare = chain;
            budget.spend_chain(work);
            used = true;
        }
        self.notify_due(&*mem, used)
    }
}

/// Appends the buffer of descriptor `desc` (`what` `index`, for the log) to `chain`: refused if
/// it wraps the address space or is device-readable after a device-writable one.
fn add_buffer(
    chain: &mut DescChain,
    desc: &VirtqDesc,
    what: &str,
    index: u16,
) -> Result<(), DeviceError> {
    let (addr, len, flags) = (desc.addr.get(), desc.len.get(), desc.flags.get());
    if addr.checked_add(u64::from(len)).is_none() {
        log::debug!("virtqueue: {what} {index} wraps the address space");
        return Err(DeviceError::Queue);
    }
    if flags & VIRTQ_DESC_F_WRITE != 0 {
        push_buffer(&mut chain.writable, (addr, len))
    } else if chain.writable.is_empty() {
        push_buffer(&mut chain.readable, (addr, len))
    } else {
        log::debug!("virtqueue: readable {what} {index} after a writable one");
        Err(DeviceError::Queue)
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
