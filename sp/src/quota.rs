//! Per-endpoint shares of what the partition has for all endpoints together, so that one VM
//! cannot starve the others.
//!
//! The stage-1 window for normal-world memory ([`crate::mmu::NS_WINDOW_SIZE`], 256 MiB) and its
//! mapping slots ([`crate::mmu::MAX_NS_MAPPINGS`], 4096) are split evenly between the
//! [`MAX_ENDPOINTS`](crate::partition::MAX_ENDPOINTS) endpoints the partition serves: each endpoint may hold at most
//! [`ENDPOINT_MAX_BYTES`] (16 MiB) in at most [`ENDPOINT_MAX_MAPPINGS`] (256) mappings, and
//! beyond that its AREA_SHARE is refused (the FF-A memory is relinquished and the driver gets
//! the refusal), whatever the others hold. So every endpoint always finds its share free.

use alloc::vec::Vec;

use ffa::memory::{MapError, MemRange, NsMapper, PAGE_SIZE};

/// Most normal-world memory one endpoint may have mapped at once.
pub const ENDPOINT_MAX_BYTES: u64 = 16 << 20;
/// Most mappings one endpoint may hold at once (an area takes one per FF-A address range).
pub const ENDPOINT_MAX_MAPPINGS: usize = 256;

/// What one endpoint has mapped: (base, page count), sorted by base (at most
/// [`ENDPOINT_MAX_MAPPINGS`]; grown fallibly before a mapping is made).
#[derive(Debug, Default)]
pub struct EndpointQuota {
    held: Vec<(u64, u32)>,
    bytes: u64,
}

impl EndpointQuota {
    /// Bytes mapped for this endpoint now.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Mappings held for this endpoint now.
    pub fn mappings(&self) -> usize {
        self.held.len()
    }
}

/// An [`NsMapper`] that maps for one endpoint, within its [`EndpointQuota`].
pub struct QuotaMapper<'a, M: NsMapper + ?Sized> {
    /// The partition's mapper.
    pub inner: &'a mut M,
    /// The endpoint's quota.
    pub quota: &'a mut EndpointQuota,
}

impl<M: NsMapper + ?Sized> NsMapper for QuotaMapper<'_, M> {
    fn map(&mut self, range: MemRange, writable: bool) -> Result<u64, MapError> {
        let len = u64::from(range.page_count)
            .checked_mul(PAGE_SIZE)
            .ok_or(MapError::NoSpace)?;
        let bytes = self.quota.bytes.checked_add(len).ok_or(MapError::NoSpace)?;
        if bytes > ENDPOINT_MAX_BYTES || self.quota.held.len() >= ENDPOINT_MAX_MAPPINGS {
            log::warn!(
                "endpoint quota: {} KiB in {} mappings held, {} KiB more refused",
                self.quota.bytes / 1024,
                self.quota.held.len(),
                len / 1024
            );
            return Err(MapError::NoSpace);
        }
        // Room for the entry first: once mapped, it must be recorded.
        self.quota
            .held
            .try_reserve(1)
            .map_err(|_| MapError::NoSpace)?;
        let base = self.inner.map(range, writable)?;
        let at = self.quota.held.partition_point(|&(b, _)| b < base);
        self.quota.held.insert(at, (base, range.page_count));
        self.quota.bytes = bytes;
        Ok(base)
    }

    fn unmap(&mut self, base: u64, page_count: u32) {
        // Only what this endpoint mapped is unmapped for it (and counted back).
        let at = match self.quota.held.binary_search_by_key(&base, |&(b, _)| b) {
            Ok(at) if self.quota.held.get(at) == Some(&(base, page_count)) => at,
            _ => {
                log::warn!(
                    "endpoint quota: unmap of {page_count} pages at {base:#x} it never mapped"
                );
                return;
            }
        };
        self.inner.unmap(base, page_count);
        // The row is still at `at`; tested, so that `remove` has no panic path.
        if at < self.quota.held.len() {
            self.quota.held.remove(at);
        }
        self.quota.bytes = self
            .quota
            .bytes
            .saturating_sub(u64::from(page_count) * PAGE_SIZE);
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MapError> {
        self.inner.read(addr, buf)
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MapError> {
        self.inner.write(addr, data)
    }
}

#[cfg(test)]
mod tests;
