//! [`SimMapper`]: a partition's view of the normal-world memory it retrieved, the sim's
//! [`NsMapper`] (the stage-1 mapping a partition makes after FFA_MEM_RETRIEVE_RESP; not an
//! FF-A ABI itself).

use std::sync::Arc;

use super::{
    ns_memory::to_u64,
    state::{Inner, Mapping},
    types::{Fault, simulating},
};
use crate::memory::{MapError, MemRange, NsMapper, PAGE_SIZE};

/// Base of the virtual addresses handed out for mappings. Deliberately far from the
/// normal-world physical addresses, so a partition that uses a physical address where it
/// should use the mapped one faults.
const VA_BASE: u64 = 0x7f00_0000_0000;

/// Most mappings a partition may hold at once (its translation tables are finite).
pub const MAX_MAPPINGS: usize = 1024;

/// Implements [`NsMapper`] for one secure partition of a `World`.
///
/// `map` succeeds only for a range the partition currently has retrieved (writable only if
/// retrieved read-write) and hands out a fresh virtual base (followed by an unmapped guard
/// page). Every `read`/`write` must lie inside one mapping and is checked again against the
/// partition's retrievals, so an access after FFA_MEM_RELINQUISH faults even if the mapping
/// was left in place. Every refused access is recorded as a [`Fault`].
pub struct SimMapper {
    inner: Arc<Inner>,
    id: u16,
}

impl SimMapper {
    pub(super) fn new(inner: Arc<Inner>, id: u16) -> Self {
        Self { inner, id }
    }

    /// The partition this mapper belongs to.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Checks an access of `len` bytes at `addr` and, if allowed, runs `copy` on the
    /// physical address under the same lock.
    fn access(
        &self,
        addr: u64,
        len: usize,
        write: bool,
        copy: impl FnOnce(&mut super::ns_memory::Memory, u64),
    ) -> Result<(), MapError> {
        let mut st = self.inner.lock();
        let fault = |reason| Fault {
            endpoint: self.id,
            addr,
            len: to_u64(len),
            write,
            reason,
        };
        let Some(sp) = st.sp_mut(self.id) else {
            return Err(MapError::NotMapped);
        };
        let len64 = to_u64(len);
        let end = addr.checked_add(len64);
        let found = sp
            .mappings
            .iter()
            .find(|m| addr >= m.va && end.is_some_and(|end| end <= m.va.saturating_add(m.len())));
        let checked = match found {
            None if sp
                .mappings
                .iter()
                .any(|m| addr >= m.va && addr < m.va.saturating_add(m.len())) =>
            {
                Err("access straddles the end of a mapping")
            }
            None => Err("access to an address that is not mapped"),
            Some(m) if write && !m.writable => Err("write to a read-only mapping"),
            Some(m) => {
                let pa = m.pa + (addr - m.va);
                st.mem
                    .check_retrieved(self.id, pa, len64, write)
                    .map(|()| pa)
            }
        };
        match checked {
            Ok(pa) => {
                copy(&mut st.mem, pa);
                Ok(())
            }
            Err(reason) => {
                st.fault(fault(reason));
                Err(MapError::NotMapped)
            }
        }
    }
}

impl NsMapper for SimMapper {
    // Out of line: the benchmark takes the simulator's cost out by function.
    #[inline(never)]
    fn map(&mut self, range: MemRange, writable: bool) -> Result<u64, MapError> {
        simulating(|| self.map_range(range, writable))
    }

    // Out of line: the benchmark takes the simulator's cost out by function.
    #[inline(never)]
    fn unmap(&mut self, base: u64, page_count: u32) {
        simulating(|| self.unmap_range(base, page_count));
    }

    // Out of line: the benchmark takes the simulator's cost out by function.
    #[inline(never)]
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MapError> {
        simulating(|| self.access(addr, buf.len(), false, |mem, pa| mem.copy_out(pa, buf)))
    }

    // Out of line: the benchmark takes the simulator's cost out by function.
    #[inline(never)]
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MapError> {
        simulating(|| self.access(addr, data.len(), true, |mem, pa| mem.copy_in(pa, data)))
    }
}

impl SimMapper {
    fn map_range(&mut self, range: MemRange, writable: bool) -> Result<u64, MapError> {
        let mut st = self.inner.lock();
        let len = u64::from(range.page_count) * PAGE_SIZE;
        let fault = |reason| Fault {
            endpoint: self.id,
            addr: range.address,
            len,
            write: writable,
            reason,
        };
        let checked = if range.page_count == 0 || !range.address.is_multiple_of(PAGE_SIZE) {
            Err("map of an empty or misaligned range")
        } else {
            st.mem
                .check_retrieved(self.id, range.address, len, writable)
        };
        if let Err(reason) = checked {
            st.fault(fault(reason));
            return Err(MapError::NotMapped);
        }
        let Some(sp) = st.sp_mut(self.id) else {
            return Err(MapError::NotMapped);
        };
        if sp.mappings.len() >= MAX_MAPPINGS {
            return Err(MapError::NoSpace);
        }
        let va = VA_BASE.saturating_add(sp.next_va);
        let Some(next) = sp.next_va.checked_add(len + PAGE_SIZE) else {
            return Err(MapError::NoSpace);
        };
        sp.next_va = next;
        sp.mappings.push(Mapping {
            va,
            pa: range.address,
            pages: range.page_count,
            writable,
        });
        Ok(va)
    }

    fn unmap_range(&mut self, base: u64, page_count: u32) {
        let mut st = self.inner.lock();
        let Some(sp) = st.sp_mut(self.id) else { return };
        if let Some(i) = sp
            .mappings
            .iter()
            .position(|m| m.va == base && m.pages == page_count)
        {
            sp.mappings.swap_remove(i);
        } else {
            st.fault(Fault {
                endpoint: self.id,
                addr: base,
                len: u64::from(page_count) * PAGE_SIZE,
                write: false,
                reason: "unmap of a range that is not a mapping",
            });
        }
    }
}
