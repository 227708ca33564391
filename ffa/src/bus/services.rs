//! What the bus needs from the partition runtime: memory retrieval, mapping and doorbells.

use alloc::vec::Vec;

use super::frame::MAX_MSG_SIZE;
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

impl RetrievedArea {
    /// Memory `handle`, retrieved but not mapped (see [`ServiceError::StillRetrieved`]): only
    /// good for relinquishing it.
    pub fn unmapped(handle: u64) -> Self {
        Self {
            handle,
            segments: Vec::new(),
            len: 0,
            writable: false,
            pages: 0,
        }
    }
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
    /// The memory was retrieved but could not be used (response mismatch, mapping failed), and
    /// relinquishing it failed as well: the partition still holds it, unmapped, and must
    /// relinquish it later ([`RetrievedArea::unmapped`]).
    #[error("retrieved, unusable, relinquish failed")]
    StillRetrieved,
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
    /// Relinquishes an area retrieved by [`BusServices::retrieve`], then unmaps it. On error the
    /// memory is still the partition's and stays mapped (the caller keeps the area and retries):
    /// [`ServiceError::Busy`] and [`ServiceError::NoSpace`] are transient, [`ServiceError::Refused`]
    /// is what the SPMC says it will keep saying.
    fn relinquish(&mut self, area: &RetrievedArea) -> Result<(), ServiceError>;
    /// Reads mapped memory (inside one segment).
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MapError>;
    /// Writes mapped memory (inside one segment).
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MapError>;
    /// Rings FF-A notification `notif_id` of endpoint `vm`.
    fn notify(&mut self, vm: u16, notif_id: u16) -> Result<(), ServiceError>;
    /// Sends `frame` to endpoint `vm` as an indirect message for service `uuid`
    /// (FFA_MSG_SEND2). [`ServiceError::Busy`]: `vm` still owns its RX buffer after a few
    /// tries; the caller keeps what it wanted to send, or drops it.
    fn send_indirect(
        &mut self,
        vm: u16,
        uuid: uuid::Uuid,
        frame: &[u8],
    ) -> Result<(), ServiceError>;
    /// [`send_indirect`](Self::send_indirect) tried once: for pushed events, whose refusal
    /// the partition's retry timer covers (a try again at once finds the buffer as full, and
    /// each costs an FF-A call and, under Hafnium, an error line on its console).
    fn push_indirect(
        &mut self,
        vm: u16,
        uuid: uuid::Uuid,
        frame: &[u8],
    ) -> Result<(), ServiceError> {
        self.send_indirect(vm, uuid, frame)
    }
}

/// Times [`FfaServices::send_indirect`] tries FFA_MSG_SEND2 while the receiver's RX buffer is
/// busy. The receiver releases it on another CPU, or never: on one CPU, retrying only costs
/// calls, so the bound is small; what could not be sent stays queued for the next message.
pub const SEND_RETRIES: u32 = 4;

/// [`BusServices`] over this partition's FF-A interface and its mapper.
pub struct FfaServices<'a, C: Conduit, M: NsMapper> {
    /// The partition's FF-A interface (its RX/TX buffers carry the descriptors).
    pub ffa: &'a mut Ffa<C>,
    /// Maps retrieved memory.
    pub mapper: &'a mut M,
    /// This partition's endpoint id.
    pub own_id: u16,
    /// The partition's RX/TX buffers, held for each exchange that uses them (see [`Mailbox`]).
    pub mailbox: &'a Mailbox,
}

/// The partition's one RX/TX buffer pair, shared by its execution contexts, and what was set
/// aside from its RX buffer ([`Stash`]). Every FF-A exchange that uses the buffers — a memory
/// retrieve (request in TX, response in RX, FFA_RX_RELEASE), a relinquish (TX), an indirect
/// message sent (TX) or taken (RX) — holds the lock from the first buffer access to the last,
/// so that two contexts never interleave in the buffers. The lock is taken before the
/// mapper's (never the other way), and never across a whole request.
#[derive(Default)]
pub struct Mailbox(spin::Mutex<Stash>);

impl Mailbox {
    /// Holds the buffers (and the stash) until the guard drops.
    pub fn lock(&self) -> spin::MutexGuard<'_, Stash> {
        self.0.lock()
    }
}

/// Room for one indirect message taken out of the partition's RX buffer so that a memory
/// retrieve can use the buffer: the SPMC answers FFA_MEM_RETRIEVE_REQ with BUSY while the
/// receiver's RX buffer holds anything (Hafnium `api_ffa_mem_retrieve_req`), and an indirect
/// message from one VM may wait there — until the scheduler runs the partition — while another
/// VM's AREA_SHARE is served. Without the stash that VM's share would fail for as long as the
/// first one's message waits. One slot: a second message arriving meanwhile makes the retrieve
/// BUSY, as before.
pub struct Stash {
    bytes: [u8; crate::indirect::HEADER_SIZE + MAX_MSG_SIZE],
    len: Option<usize>,
}

impl Default for Stash {
    fn default() -> Self {
        Self {
            bytes: [0; crate::indirect::HEADER_SIZE + MAX_MSG_SIZE],
            len: None,
        }
    }
}

impl Stash {
    /// Whether a message is held.
    pub fn is_full(&self) -> bool {
        self.len.is_some()
    }

    /// The held message (header and payload, as [`Ffa::take_indirect`] copied it), emptying
    /// the stash.
    pub fn take(&mut self) -> Option<&[u8]> {
        let n = self.len.take()?;
        self.bytes.get(..n)
    }
}

/// What an FF-A memory call's error means to the bus.
///
/// FFA_MEM_RELINQUISH under Hafnium (`src/api.c` `api_ffa_mem_relinquish`, `src/ffa_memory.c`
/// `ffa_memory_relinquish`, `ffa_relinquish_check_update`) answers:
/// - INVALID_PARAMETERS: no TX buffer, a malformed descriptor, an unknown handle, memory not
///   fully sent or retrieved, not a borrower, clear asked for shared memory: it will keep
///   saying so ([`ServiceError::Refused`]);
/// - DENIED: the pages are not in the borrowed state, or a read-only borrower asked to clear
///   ([`ServiceError::Refused`]);
/// - NO_MEMORY: the page-table pool ran out while preparing the unmap, or clearing failed; the
///   mapping was rolled back, so it may succeed later ([`ServiceError::NoSpace`]);
/// - ABORTED: copying the descriptor from the TX buffer faulted; transient
///   ([`ServiceError::Busy`]).
///
/// Hafnium never answers BUSY or RETRY to a relinquish; another SPMC may, and those are
/// transient too ([`ServiceError::Busy`]).
fn service_error(e: crate::calls::Error) -> ServiceError {
    match e {
        crate::calls::Error::Ffa(
            arm_ffa::FfaError::Busy | arm_ffa::FfaError::Retry | arm_ffa::FfaError::Aborted,
        ) => ServiceError::Busy,
        crate::calls::Error::Ffa(arm_ffa::FfaError::NoMemory) => ServiceError::NoSpace,
        _ => ServiceError::Refused,
    }
}

impl<C: Conduit, M: NsMapper> FfaServices<'_, C, M> {
    /// Moves an indirect message that holds the RX buffer into `stash` (see [`Stash`]; the
    /// caller holds the mailbox); returns whether the buffer is free now.
    fn stash_rx(&mut self, stash: &mut Stash) -> bool {
        if stash.is_full() {
            return false;
        }
        match self.ffa.rx_full_get(self.own_id, true) {
            Ok(true) => {}
            _ => return false,
        }
        match self.ffa.take_indirect(&mut stash.bytes) {
            Ok(n) => {
                log::info!("an indirect message held the RX buffer a retrieve needs: set aside");
                stash.len = Some(n);
                true
            }
            Err(e) => {
                log::warn!("indirect message in the RX buffer not taken: {e}");
                false
            }
        }
    }

    /// Relinquishes memory retrieved but not usable (nothing of it mapped; the caller holds
    /// the mailbox); returns `error`, or [`ServiceError::StillRetrieved`] if the relinquish
    /// failed.
    fn give_back(&mut self, handle: u64, error: ServiceError) -> ServiceError {
        match self.ffa.mem_relinquish(handle, self.own_id) {
            Ok(()) => error,
            Err(e) => {
                log::warn!("FFA_MEM_RELINQUISH of unusable handle {handle:#x} failed: {e}");
                ServiceError::StillRetrieved
            }
        }
    }

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
        )
        .map_err(|_| ServiceError::NoSpace)?;
        // Held until the area is mapped or given back: the response lives in the RX buffer.
        let mut stash = self.mailbox.lock();
        let response = match self.ffa.mem_retrieve(&request) {
            Err(crate::calls::Error::Ffa(arm_ffa::FfaError::Busy)) if self.stash_rx(&mut stash) => {
                self.ffa.mem_retrieve(&request)
            }
            other => other,
        };
        let response = response.map_err(|e| {
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
        // The area's length in bytes (`None` past 2^64: refused like a mismatch).
        let len = response.ranges.iter().try_fold(0u64, |sum, r| {
            sum.checked_add(u64::from(r.page_count) * crate::memory::PAGE_SIZE)
        });
        let Some(len) = len.filter(|_| valid) else {
            log::warn!("retrieve response for handle {handle:#x} does not match the request");
            return Err(self.give_back(handle, ServiceError::Refused));
        };
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
                    return Err(self.give_back(handle, ServiceError::NoSpace));
                }
            }
        }
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
        // Relinquish first: until the SPMC agrees, the memory is ours and stays mapped, so the
        // area table (which keeps the area) and the mappings still agree.
        let mailbox = self.mailbox.lock();
        self.ffa
            .mem_relinquish(area.handle, self.own_id)
            .map_err(|e| {
                log::warn!(
                    "FFA_MEM_RELINQUISH of handle {:#x} failed: {e}",
                    area.handle
                );
                service_error(e)
            })?;
        drop(mailbox);
        for seg in &area.segments {
            let pages = u32::try_from(seg.len / crate::memory::PAGE_SIZE).unwrap_or(u32::MAX);
            self.mapper.unmap(seg.base, pages);
        }
        Ok(())
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

    fn send_indirect(
        &mut self,
        vm: u16,
        uuid: uuid::Uuid,
        frame: &[u8],
    ) -> Result<(), ServiceError> {
        let mut result = Err(ServiceError::Busy);
        for _ in 0..SEND_RETRIES {
            result = self.push_indirect(vm, uuid, frame);
            if result != Err(ServiceError::Busy) {
                break;
            }
        }
        result
    }

    fn push_indirect(
        &mut self,
        vm: u16,
        uuid: uuid::Uuid,
        frame: &[u8],
    ) -> Result<(), ServiceError> {
        let _mailbox = self.mailbox.lock();
        self.ffa
            .send_indirect(self.own_id, vm, uuid, frame)
            .map_err(|e| match e {
                crate::calls::Error::Ffa(arm_ffa::FfaError::Busy) => ServiceError::Busy,
                _ => ServiceError::Refused,
            })
    }
}
