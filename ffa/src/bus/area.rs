//! Shared-memory areas of one bus instance: the area table, bus addresses
//! (`area_id << 48 | offset`) and the [`SharedMem`] view through them that devices use.
//! AREA_SHARE and AREA_UNSHARE, which fill and empty the table, are in `area_share`.

use core::cell::Cell;

use virtio_msg::{MemError, SharedMem};

use super::services::{BusServices, RetrievedArea};

/// Bit position of the area id in a bus address.
pub const AREA_SHIFT: u32 = 48;
/// Mask of the byte offset in a bus address.
pub const AREA_OFFSET_MASK: u64 = (1 << AREA_SHIFT) - 1;

/// Builds the bus address of byte `offset` of area `area_id`.
pub const fn bus_address(area_id: u16, offset: u64) -> u64 {
    ((area_id as u64) << AREA_SHIFT) | (offset & AREA_OFFSET_MASK)
}

/// What the bus may do with an area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AreaState {
    /// Retrieved and mapped; devices may use it.
    Live,
    /// Its relinquish failed: the memory is still retrieved (and mapped, if it ever was), so it
    /// stays in the table, its id stays taken and it counts against the endpoint's quota, but
    /// no device may use it (no new I/O, no new queue setup). It is relinquished later, exactly
    /// once; see `area_share`.
    RelinquishPending {
        /// Whether the driver was answered BUSY and repeats AREA_UNSHARE (G3): the retry then
        /// comes with that repeat. Otherwise the partition retries on its own.
        driver_retries: bool,
    },
}

/// One row of the table.
#[derive(Debug)]
struct Entry {
    area: RetrievedArea,
    state: AreaState,
}

/// The areas one driver endpoint has shared, by area id: every area the partition holds
/// (retrieved and not yet relinquished), usable or not. It agrees with the mappings at every
/// step: an area leaves the table only once its relinquish succeeded and it was unmapped.
///
/// Rows are kept sorted by id in a vector whose room is reserved *before* the memory is
/// retrieved ([`AreaTable::try_reserve_one`]), so that recording a retrieved area never
/// allocates: with the heap exhausted an AREA_SHARE is refused up front, and an area the
/// partition holds is never lost for want of a table row.
#[derive(Debug, Default)]
pub struct AreaTable {
    areas: alloc::vec::Vec<(u16, Entry)>,
}

impl AreaTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of areas held (usable or relinquish pending).
    pub fn len(&self) -> usize {
        self.areas.len()
    }

    /// Whether no area is held.
    pub fn is_empty(&self) -> bool {
        self.areas.is_empty()
    }

    fn entry(&self, id: u16) -> Option<&Entry> {
        let i = self.areas.binary_search_by_key(&id, |(k, _)| *k).ok()?;
        self.areas.get(i).map(|(_, e)| e)
    }

    fn entry_mut(&mut self, id: u16) -> Option<&mut Entry> {
        let i = self.areas.binary_search_by_key(&id, |(k, _)| *k).ok()?;
        self.areas.get_mut(i).map(|(_, e)| e)
    }

    /// Whether area `id` is held (in any state).
    pub fn contains(&self, id: u16) -> bool {
        self.entry(id).is_some()
    }

    /// The state of area `id`, if held.
    pub fn state(&self, id: u16) -> Option<AreaState> {
        self.entry(id).map(|e| e.state)
    }

    /// Number of areas whose relinquish is pending.
    pub fn pending(&self) -> usize {
        self.areas
            .iter()
            .filter(|(_, e)| e.state != AreaState::Live)
            .count()
    }

    /// Makes room for one more row without allocating later; false if the heap has none.
    pub(crate) fn try_reserve_one(&mut self) -> bool {
        self.areas.try_reserve(1).is_ok()
    }

    /// Records area `id` (replacing a row with the same id). Call
    /// [`try_reserve_one`](Self::try_reserve_one) first: then this never allocates.
    pub(crate) fn insert(&mut self, id: u16, area: RetrievedArea, state: AreaState) {
        let entry = Entry { area, state };
        match self.areas.binary_search_by_key(&id, |(k, _)| *k) {
            Ok(i) => {
                if let Some(row) = self.areas.get_mut(i) {
                    row.1 = entry;
                }
            }
            // Cannot panic: an insertion point from `binary_search` is at most `len`.
            Err(i) => self.areas.insert(i, (id, entry)),
        }
    }

    /// Sets the state of area `id` (if held).
    pub(crate) fn set_state(&mut self, id: u16, state: AreaState) {
        if let Some(e) = self.entry_mut(id) {
            e.state = state;
        }
    }

    /// Forgets area `id` (after its relinquish succeeded); returns it.
    pub(crate) fn remove(&mut self, id: u16) -> Option<RetrievedArea> {
        let i = self.areas.binary_search_by_key(&id, |(k, _)| *k).ok()?;
        // Cannot panic: `i` is the index `binary_search` found the row at, below `len`.
        Some(self.areas.remove(i).1.area)
    }

    /// The first id held above `after` (all ids from the lowest with `None`), in order.
    pub(crate) fn next_id(&self, after: Option<u16>) -> Option<u16> {
        self.areas
            .iter()
            .map(|(id, _)| *id)
            .find(|&id| after.is_none_or(|a| id > a))
    }

    /// The first area after `after` (wrapping) whose relinquish the partition retries itself.
    pub(crate) fn next_self_retry(&self, after: u16) -> Option<u16> {
        let self_retry = |(id, e): &(u16, Entry)| {
            (e.state
                == AreaState::RelinquishPending {
                    driver_retries: false,
                })
            .then_some(*id)
        };
        let split = self.areas.partition_point(|(id, _)| *id <= after);
        let (low, high) = self.areas.split_at_checked(split)?;
        high.iter()
            .find_map(self_retry)
            .or_else(|| low.iter().find_map(self_retry))
    }

    /// Area `id`, whatever its state.
    pub fn get(&self, id: u16) -> Option<&RetrievedArea> {
        self.entry(id).map(|e| &e.area)
    }

    /// Whether `[addr, addr + len)` lies inside one usable area (and is writable if `write`).
    pub fn covers(&self, addr: u64, len: u64, write: bool) -> bool {
        self.locate(addr, len)
            .is_some_and(|(area, _)| !write || area.writable)
    }

    /// The usable area holding `[addr, addr + len)` and the offset of `addr` in it.
    fn locate(&self, addr: u64, len: u64) -> Option<(&RetrievedArea, u64)> {
        let (id, offset) = split_address(addr)?;
        within(self.live(id)?, offset, len)
    }

    /// Area `id` if it is usable.
    fn live(&self, id: u16) -> Option<&RetrievedArea> {
        self.entry(id)
            .filter(|e| e.state == AreaState::Live)
            .map(|e| &e.area)
    }
}

/// The area id and the offset in it of bus address `addr`.
fn split_address(addr: u64) -> Option<(u16, u64)> {
    Some((
        u16::try_from(addr >> AREA_SHIFT).ok()?,
        addr & AREA_OFFSET_MASK,
    ))
}

/// `(area, offset)` if `[offset, offset + len)` lies inside `area`.
fn within(area: &RetrievedArea, offset: u64, len: u64) -> Option<(&RetrievedArea, u64)> {
    let end = offset.checked_add(len)?;
    (end <= area.len).then_some((area, offset))
}

/// [`SharedMem`] over an [`AreaTable`]: bus address `area << 48 | offset` reaches byte
/// `offset` of that area, after a bounds check against the area, and through the services'
/// mapped segments only.
pub struct AreaMem<'a> {
    areas: &'a AreaTable,
    services: &'a dyn BusServices,
    /// The two areas most recently reached, most recent first (a queue's rings and its
    /// buffers are usually in two areas): found again without a table search. The table is
    /// borrowed for the view's lifetime, so what was usable stays usable.
    recent: [Cell<Option<(u16, &'a RetrievedArea)>>; 2],
}

impl<'a> AreaMem<'a> {
    /// A view of `areas` whose bytes are reached through `services`.
    pub fn new(areas: &'a AreaTable, services: &'a dyn BusServices) -> Self {
        Self {
            areas,
            services,
            recent: [Cell::new(None), Cell::new(None)],
        }
    }

    /// As [`AreaTable::locate`], through the two most recent areas first.
    fn locate(&self, addr: u64, len: u64) -> Option<(&'a RetrievedArea, u64)> {
        let (id, offset) = split_address(addr)?;
        let [first, second] = &self.recent;
        let area = match (first.get(), second.get()) {
            (Some((hit, area)), _) if hit == id => area,
            (recent, Some((hit, area))) if hit == id => {
                second.set(recent);
                first.set(Some((id, area)));
                area
            }
            (recent, _) => {
                let area = self.areas.live(id)?;
                second.set(recent);
                first.set(Some((id, area)));
                area
            }
        };
        within(area, offset, len)
    }

    /// Calls `f(segment address, start, end)` for each piece of `[addr, addr + len)`, where
    /// `start..end` is the part of the caller's buffer that piece covers.
    fn walk(
        &self,
        addr: u64,
        len: usize,
        write: bool,
        mut f: impl FnMut(u64, usize, usize) -> Result<(), MemError>,
    ) -> Result<(), MemError> {
        let oob = MemError::OutOfBounds {
            addr,
            len: len as u64,
        };
        let (area, mut offset) = self.locate(addr, len as u64).ok_or(oob)?;
        if write && !area.writable {
            return Err(MemError::ReadOnly { addr });
        }
        // Most accesses lie in an area's first segment (an area of one constituent, as a
        // driver's contiguous buffer is): one piece, found without the walk below. (An empty
        // access there is passed on as an empty piece, which the mappers accept anywhere in or
        // at the end of a mapping, as the walk's "nothing to do" is accepted.)
        if let Some(first) = area.segments.first()
            && offset
                .checked_add(len as u64)
                .is_some_and(|end| end <= first.len)
        {
            return f(first.base.checked_add(offset).ok_or(oob)?, 0, len);
        }
        let mut done = 0usize;
        let mut seg_start = 0u64;
        for seg in &area.segments {
            if done == len {
                break;
            }
            let seg_end = seg_start.checked_add(seg.len).ok_or(oob)?;
            if offset < seg_end {
                // Every subtraction and sum below stays in range (`seg_start <= offset <
                // seg_end`, `done <= len`); checked anyway, so a broken invariant refuses the
                // access instead of wrapping to another address.
                let in_seg = offset.checked_sub(seg_start).ok_or(oob)?;
                let room = seg.len.checked_sub(in_seg).ok_or(oob)?;
                let chunk = usize::try_from(room)
                    .unwrap_or(usize::MAX)
                    .min(len.checked_sub(done).ok_or(oob)?);
                let end = done.checked_add(chunk).ok_or(oob)?;
                f(seg.base.checked_add(in_seg).ok_or(oob)?, done, end)?;
                done = end;
                offset = offset.checked_add(chunk as u64).ok_or(oob)?;
            }
            seg_start = seg_end;
        }
        if done == len { Ok(()) } else { Err(oob) }
    }
}

impl SharedMem for AreaMem<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let services = self.services;
        self.walk(addr, buf.len(), false, |at, start, end| {
            let part = buf.get_mut(start..end).ok_or(MemError::Fault { addr })?;
            services
                .read(at, part)
                .map_err(|_| MemError::Fault { addr })
        })
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), MemError> {
        let services = self.services;
        self.walk(addr, data.len(), true, |at, start, end| {
            let part = data.get(start..end).ok_or(MemError::Fault { addr })?;
            services
                .write(at, part)
                .map_err(|_| MemError::Fault { addr })
        })
    }
}
