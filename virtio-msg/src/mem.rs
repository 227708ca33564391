//! Access to driver memory by bus address.

/// Why an access to shared memory failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemError {
    /// The address range is not inside memory the driver shared (and the device retrieved).
    #[error("address range {addr:#x}+{len:#x} is outside shared memory")]
    OutOfBounds {
        /// First bus address of the access.
        addr: u64,
        /// Length of the access in bytes.
        len: u64,
    },
    /// The range is shared read-only and the access was a write.
    #[error("address {addr:#x} is not writable")]
    ReadOnly {
        /// First bus address of the access.
        addr: u64,
    },
    /// The platform refused or failed the access.
    #[error("platform access failure at {addr:#x}")]
    Fault {
        /// First bus address of the access.
        addr: u64,
    },
}

/// Driver memory as the device sees it: every access names a bus address and a length, and is
/// checked against what was shared before a single byte moves.
///
/// Implementations must never touch memory outside the shared windows, whatever the address;
/// device code reaches driver memory only through this trait.
pub trait SharedMem {
    /// Copies `buf.len()` bytes from bus address `addr` into `buf`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError>;
    /// Copies `data` to bus address `addr`.
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), MemError>;
}

impl<T: SharedMem + ?Sized> SharedMem for &mut T {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        (**self).read(addr, buf)
    }
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), MemError> {
        (**self).write(addr, data)
    }
}

/// A [`SharedMem`] over a plain byte vector based at address `base`, for tests and fakes.
#[cfg(any(test, feature = "test-utils"))]
#[derive(Clone, Debug, Default)]
pub struct VecMem {
    /// Bus address of `bytes[0]`.
    pub base: u64,
    /// The memory.
    pub bytes: alloc::vec::Vec<u8>,
}

#[cfg(any(test, feature = "test-utils"))]
impl VecMem {
    /// Zeroed memory of `len` bytes at bus address `base`.
    pub fn new(base: u64, len: usize) -> Self {
        Self {
            base,
            bytes: alloc::vec![0; len],
        }
    }

    fn range(&self, addr: u64, len: usize) -> Result<core::ops::Range<usize>, MemError> {
        let oob = MemError::OutOfBounds {
            addr,
            len: len as u64,
        };
        let start = addr.checked_sub(self.base).ok_or(oob)?;
        let start = usize::try_from(start).map_err(|_| oob)?;
        let end = start.checked_add(len).ok_or(oob)?;
        if end > self.bytes.len() {
            return Err(oob);
        }
        Ok(start..end)
    }
}

#[cfg(any(test, feature = "test-utils"))]
impl SharedMem for VecMem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let r = self.range(addr, buf.len())?;
        // Cannot panic: `range` made `r` `buf.len()` long.
        buf.copy_from_slice(self.bytes.get(r).ok_or(MemError::Fault { addr })?);
        Ok(())
    }
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), MemError> {
        let r = self.range(addr, data.len())?;
        // Cannot panic: `range` made `r` `data.len()` long.
        self.bytes
            .get_mut(r)
            .ok_or(MemError::Fault { addr })?
            .copy_from_slice(data);
        Ok(())
    }
}
