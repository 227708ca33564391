//! FF-A memory management: transaction descriptors (FF-A v1.1 and v1.2 layouts) and how a
//! partition maps what it retrieved.
//!
//! `arm-ffa` 0.5.0 only knows the v1.1 layout (16-byte endpoint memory access descriptors);
//! an SPMC speaking v1.2 (Hafnium) uses 32-byte ones (with an impdef field). This module
//! packs and unpacks both, selected by the negotiated version.
// Placeholder signatures: being written.
#![allow(clippy::todo, unused_variables)]

use alloc::vec::Vec;

use arm_ffa::Version;

/// Size of a 4 KiB FF-A page.
pub const PAGE_SIZE: u64 = 4096;

/// A physically contiguous run of pages (a constituent memory region).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRange {
    /// Base address (page aligned).
    pub address: u64,
    /// Number of 4 KiB pages.
    pub page_count: u32,
}

/// The kind of memory transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareKind {
    /// FFA_MEM_SHARE.
    Share,
    /// FFA_MEM_LEND.
    Lend,
    /// FFA_MEM_DONATE.
    Donate,
}

/// Data access permission in an endpoint memory access descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataAccess {
    /// Not specified (retrieve requests may leave it to the sender's choice).
    NotSpecified,
    /// Read-only.
    ReadOnly,
    /// Read-write.
    ReadWrite,
}

/// One receiver of a memory transaction (an endpoint memory access descriptor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receiver {
    /// Receiver endpoint id.
    pub endpoint: u16,
    /// Data access permission.
    pub access: DataAccess,
    /// Instruction access: `true` = executable (the bus never asks for this).
    pub executable: bool,
}

/// A memory transaction descriptor (`FFA_MEM_SHARE/LEND` request, retrieve request and
/// retrieve response all share this format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemTransaction {
    /// Owner (sender) endpoint id.
    pub sender: u16,
    /// Memory region attributes byte (bits as in FF-A: type, cacheability, shareability).
    pub attributes: u16,
    /// Transaction flags word.
    pub flags: u32,
    /// Handle (0 in share requests; set in retrieve requests and responses).
    pub handle: u64,
    /// Tag.
    pub tag: u64,
    /// Receivers.
    pub receivers: Vec<Receiver>,
    /// Constituent ranges (empty for a retrieve request without a composite descriptor).
    pub ranges: Vec<MemRange>,
}

/// Why a descriptor could not be packed or unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    /// The buffer is too small.
    #[error("buffer too small")]
    TooSmall,
    /// An offset, count or size field is inconsistent or out of range.
    #[error("malformed descriptor")]
    Malformed,
    /// The version has no known descriptor layout.
    #[error("unsupported FF-A version for memory descriptors")]
    Version,
}

impl MemTransaction {
    /// Packs the descriptor for FF-A `version` (1.1 or 1.2 layout) into `buf`; returns its length.
    pub fn pack(&self, version: Version, buf: &mut [u8]) -> Result<usize, DescriptorError> {
        todo!()
    }

    /// Unpacks a descriptor written for FF-A `version`; every offset and count is checked
    /// against `buf`.
    pub fn unpack(version: Version, buf: &[u8]) -> Result<Self, DescriptorError> {
        todo!()
    }

    /// Total pages over all ranges (saturating).
    pub fn total_pages(&self) -> u64 {
        self.ranges.iter().map(|r| u64::from(r.page_count)).sum()
    }
}

/// Maps memory retrieved from another endpoint into this partition and gives byte access to
/// it. The real partition maps it into its stage-1 tables (non-secure, non-executable); the
/// simulated world checks every access against what the endpoint retrieved.
pub trait NsMapper {
    /// Makes `range` accessible; returns the base address to use with `read`/`write` for it.
    fn map(&mut self, range: MemRange, writable: bool) -> Result<u64, MapError>;
    /// Removes a mapping made by `map` (same base and page count).
    fn unmap(&mut self, base: u64, page_count: u32);
    /// Copies from mapped memory at `addr`. The caller keeps the access inside one mapping.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MapError>;
    /// Copies to mapped memory at `addr`. The caller keeps the access inside one mapping.
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MapError>;
}

/// A mapping or access failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// No room left to map (tables or address space exhausted).
    #[error("no room to map")]
    NoSpace,
    /// The address is not mapped (or not writable for a write).
    #[error("address not mapped")]
    NotMapped,
}
