//! [`RamStore`]: a fixed-size disk in memory, allocated once, fallibly, when it is made.

use alloc::vec::Vec;
use core::ops::Range;

use zerocopy::IntoBytes;

use super::{BlockError, BlockStore, ID_BYTES, SECTOR_SIZE};

/// A disk of a fixed number of sectors held in one heap block, zeroed at construction. Its
/// content lives as long as the store; nothing is allocated after construction.
#[derive(Clone, Debug)]
pub struct RamStore {
    bytes: Vec<u8>,
    read_only: bool,
    id: [u8; ID_BYTES],
}

impl RamStore {
    /// A zeroed, writable disk of `bytes` bytes (a positive whole number of sectors) whose
    /// GET_ID string is `id`. The memory is reserved fallibly: [`BlockError::NoMemory`] when
    /// the heap has no block that large, [`BlockError::OutOfRange`] for a size that is not
    /// whole sectors.
    pub fn new(bytes: usize, id: [u8; ID_BYTES]) -> Result<Self, BlockError> {
        if bytes == 0 || !bytes.is_multiple_of(SECTOR_SIZE as usize) {
            return Err(BlockError::OutOfRange);
        }
        let mut memory = Vec::new();
        memory
            .try_reserve_exact(bytes)
            .map_err(|_| BlockError::NoMemory)?;
        // The capacity is there: this fills it without allocating.
        memory.resize(bytes, 0);
        Ok(Self {
            bytes: memory,
            read_only: false,
            id,
        })
    }

    /// The same disk, read-only (every write, discard and write zeroes fails) or writable.
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The disk's content.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The disk's content, mutably (to preload an image, or in tests).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// The byte range of `len` bytes (whole sectors) from `sector`, if inside the disk.
    fn range(&self, sector: u64, len: usize) -> Result<Range<usize>, BlockError> {
        if !len.is_multiple_of(SECTOR_SIZE as usize) {
            return Err(BlockError::OutOfRange);
        }
        let start = sector
            .checked_mul(u64::from(SECTOR_SIZE))
            .and_then(|start| usize::try_from(start).ok())
            .ok_or(BlockError::OutOfRange)?;
        let end = start.checked_add(len).ok_or(BlockError::OutOfRange)?;
        if end > self.bytes.len() {
            return Err(BlockError::OutOfRange);
        }
        Ok(start..end)
    }

    /// The byte range of `count` sectors from `sector`, if inside the disk.
    fn sectors(&self, sector: u64, count: u64) -> Result<Range<usize>, BlockError> {
        let len = count
            .checked_mul(u64::from(SECTOR_SIZE))
            .and_then(|len| usize::try_from(len).ok())
            .ok_or(BlockError::OutOfRange)?;
        self.range(sector, len)
    }

    /// The bytes of `count` sectors from `sector`, for zeroing, on a writable disk.
    fn zero(&mut self, sector: u64, count: u64) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let range = self.sectors(sector, count)?;
        self.bytes
            .get_mut(range)
            .ok_or(BlockError::OutOfRange)?
            .fill(0);
        Ok(())
    }
}

impl BlockStore for RamStore {
    fn capacity_sectors(&self) -> u64 {
        // A usize always fits a u64 on the targets this builds for.
        u64::try_from(self.bytes.len())
            .ok()
            .and_then(|len| len.checked_div(u64::from(SECTOR_SIZE)))
            .unwrap_or(0)
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn id(&self) -> [u8; ID_BYTES] {
        self.id
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let range = self.range(sector, buf.len())?;
        self.bytes
            .get(range)
            .and_then(|bytes| bytes.write_to(buf).ok())
            .ok_or(BlockError::OutOfRange)?;
        Ok(())
    }

    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let range = self.range(sector, data.len())?;
        self.bytes
            .get_mut(range)
            .and_then(|bytes| data.write_to(bytes).ok())
            .ok_or(BlockError::OutOfRange)?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        // Memory has no cache to write back: every completed write is as stable as it gets.
        Ok(())
    }

    /// Discarded sectors are zeroed, so that they never read as anything but what the driver
    /// wrote or zeroes.
    fn discard(&mut self, sector: u64, count: u64) -> Result<(), BlockError> {
        self.zero(sector, count)
    }

    fn write_zeroes(&mut self, sector: u64, count: u64) -> Result<(), BlockError> {
        self.zero(sector, count)
    }
}
