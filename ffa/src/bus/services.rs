//! What the bus needs from the partition runtime: memory retrieval, mapping and doorbells.

use alloc::vec::Vec;

use crate::{
    calls::Ffa,
    conduit::Conduit,
    memory::{DataAccess, MapError, MemTransaction, NsMapper, Receiver, ShareKind},
};

/// One mapped constituent of an area: `len` bytes accessible at `base` through the services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Address to use with [`BusServices::read`] / [`BusServices::write`].
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
}

/// Memory the partition retrieved and mapped for one area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrievedArea {
    /// FF-A memory handle.
    pub handle: u64,
    /// Mapped constituents in order; byte `offset` of the area is in the segment that covers it.
    pub segments: Vec<Segment>,
    /// Total length in bytes.
    pub len: u64,
    /// Whether the partition may write it.
    pub writable: bool,
    /// Number of 4 KiB pages retrieved.
    pub pages: u64,
}

/// A failed service request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The SPMC is busy; the request may be retried.
    #[error("busy")]
    Busy,
    /// The SPMC or the partition refused it.
    #[error("refused")]
    Refused,
    /// The partition has no room (mapping space, memory).
    #[error("no space")]
    NoSpace,
}

/// Services the bus uses while handling a frame. The partition runtime implements them over
/// FF-A ([`FfaServices`]); tests may fake them.
pub trait BusServices {
    /// Retrieves the memory `handle` shared by `owner` with `tag` and maps it.
    fn retrieve(
        &mut self,
        owner: u16,
        handle: u64,
        tag: u64,
        kind: ShareKind,
    ) -> Result<RetrievedArea, ServiceError>;
    /// Unmaps and relinquishes an area retrieved by [`BusServices::retrieve`].
    fn relinquish(&mut self, area: &RetrievedArea) -> Result<(), ServiceError>;
    /// Reads mapped memory (inside one segment).
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MapError>;
    /// Writes mapped memory (inside one segment).
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MapError>;
    /// Rings FF-A notification `notif_id` of endpoint `vm`.
    fn notify(&mut self, vm: u16, notif_id: u16) -> Result<(), ServiceError>;
}

/// [`BusServices`] over this partition's FF-A interface and its mapper.
pub struct FfaServices<'a, C: Conduit, M: NsMapper> {
    /// The partition's FF-A interface (its RX/TX buffers carry the descriptors).
    pub ffa: &'a mut Ffa<C>,
    /// Maps retrieved memory.
    pub mapper: &'a mut M,
    /// This partition's endpoint id.
    pub own_id: u16,
}

fn service_error(e: crate::calls::Error) -> ServiceError {
    match e {
        crate::calls::Error::Ffa(arm_ffa::FfaError::Busy | arm_ffa::FfaError::Retry) => {
            ServiceError::Busy
        }
        crate::calls::Error::Ffa(arm_ffa::FfaError::NoMemory) => ServiceError::NoSpace,
        _ => ServiceError::Refused,
    }
}

impl<C: Conduit, M: NsMapper> FfaServices<'_, C, M> {
    fn unmap_all(&mut self, mapped: &[(Segment, u32)]) {
        for (seg, pages) in mapped {
            self.mapper.unmap(seg.base, *pages);
        }
    }
}

impl<C: Conduit, M: NsMapper> BusServices for FfaServices<'_, C, M> {
    fn retrieve(
        &mut self,
        owner: u16,
        handle: u64,
        tag: u64,
        kind: ShareKind,
    ) -> Result<RetrievedArea, ServiceError> {
        let request = MemTransaction::retrieve_request(
            owner,
            handle,
            tag,
            kind,
            Receiver {
                endpoint: self.own_id,
                access: DataAccess::ReadWrite,
                executable: false,
            },
        );
        let response = self.ffa.mem_retrieve(&request).map_err(|e| {
            log::warn!("FFA_MEM_RETRIEVE_REQ of handle {handle:#x} from {owner:#x} failed: {e}");
            service_error(e)
        })?;
        let me = response
            .receivers
            .iter()
            .find(|r| r.endpoint == self.own_id)
            .copied();
        let valid = response.handle == handle
            && response.sender == owner
            && me.is_some()
            && !response.ranges.is_empty();
        let writable = me.is_some_and(|r| r.access == DataAccess::ReadWrite);
        if !valid {
            log::warn!("retrieve response for handle {handle:#x} does not match the request");
            let _ = self.ffa.mem_relinquish(handle, self.own_id);
            return Err(ServiceError::Refused);
        }
        // One entry per constituent of the driver's share: reserved fallibly.
        let mut mapped: Vec<(Segment, u32)> = Vec::new();
        let mut segments: Vec<Segment> = Vec::new();
        if mapped.try_reserve_exact(response.ranges.len()).is_err()
            || segments.try_reserve_exact(response.ranges.len()).is_err()
        {
            log::warn!(
                "retrieve of handle {handle:#x}: no memory for {} ranges",
                response.ranges.len()
            );
            let _ = self.ffa.mem_relinquish(handle, self.own_id);
            return Err(ServiceError::NoSpace);
        }
        for range in &response.ranges {
            match self.mapper.map(*range, writable) {
                Ok(base) => mapped.push((
                    Segment {
                        base,
                        len: u64::from(range.page_count) * crate::memory::PAGE_SIZE,
                    },
                    range.page_count,
                )),
                Err(e) => {
                    log::warn!(
                        "mapping {} pages at {:#x} of handle {handle:#x} failed: {e}",
                        range.page_count,
                        range.address
                    );
                    self.unmap_all(&mapped);
                    let _ = self.ffa.mem_relinquish(handle, self.own_id);
                    return Err(ServiceError::NoSpace);
                }
            }
        }
        let len = mapped.iter().map(|(s, _)| s.len).sum();
        segments.extend(mapped.iter().map(|(s, _)| *s));
        Ok(RetrievedArea {
            handle,
            segments,
            len,
            writable,
            pages: response.total_pages(),
        })
    }

    fn relinquish(&mut self, area: &RetrievedArea) -> Result<(), ServiceError> {
        for seg in &area.segments {
            let pages = u32::try_from(seg.len / crate::memory::PAGE_SIZE).unwrap_or(u32::MAX);
            self.mapper.unmap(seg.base, pages);
        }
        self.ffa
            .mem_relinquish(area.handle, self.own_id)
            .map_err(|e| {
                log::warn!(
                    "FFA_MEM_RELINQUISH of handle {:#x} failed: {e}",
                    area.handle
                );
                service_error(e)
            })
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MapError> {
        self.mapper.read(addr, buf)
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MapError> {
        self.mapper.write(addr, data)
    }

    fn notify(&mut self, vm: u16, notif_id: u16) -> Result<(), ServiceError> {
        let bit = 1u64
            .checked_shl(u32::from(notif_id))
            .ok_or(ServiceError::Refused)?;
        self.ffa
            .notification_set(self.own_id, vm, bit)
            .map_err(service_error)
    }
}
