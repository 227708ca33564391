//! The machine the flow runs on: the SMC conduit, and driver memory from a fixed window of
//! non-secure DRAM (`DMA_BASE`, `DMA_SIZE`), identity-mapped normal memory.

use core::cell::RefCell;

use alloc::vec::Vec;

use nwd_payload::{
    DMA_BASE, DMA_SIZE,
    concurrent::{CpuCounts, CpuFailure, Job},
    flow::Machine,
    machine::CpuStart,
    pages::PageAllocator,
};
use virtio_msg::MemError;
use vmsg_host::{Platform, virtqueue::DriverMem};

use super::conduit::SmcConduit;

/// Driver memory: pages of the window, handed out by a [`PageAllocator`].
pub struct DmaWindow {
    pages: RefCell<PageAllocator>,
}

impl DmaWindow {
    /// The window from the layout constants; `None` if they are unusable.
    fn new() -> Option<Self> {
        Some(Self {
            pages: RefCell::new(PageAllocator::new(DMA_BASE, DMA_SIZE)?),
        })
    }

    /// Whether `[pa, pa + len)` lies in allocated pages of the window.
    fn check(&self, pa: u64, len: usize) -> Result<usize, MemError> {
        if self.pages.borrow().is_allocated(pa, len) {
            usize::try_from(pa).map_err(|_| MemError::Fault { addr: pa })
        } else {
            Err(MemError::Fault { addr: pa })
        }
    }
}

impl Platform for DmaWindow {
    fn alloc_pages(&self, pages: u32) -> Option<u64> {
        let pa = self.pages.borrow_mut().alloc(pages)?;
        let len = usize::try_from(u64::from(pages) * nwd_payload::pages::PAGE_SIZE).ok()?;
        let base = usize::try_from(pa).ok()?;
        // SAFETY: the pages were just allocated from the window, which is identity-mapped
        // normal read-write memory used by nothing but this allocator's clients, and they are
        // not shared yet: nobody else can access them.
        unsafe {
            core::ptr::write_bytes(core::ptr::with_exposed_provenance_mut::<u8>(base), 0, len)
        };
        Some(pa)
    }

    fn free_pages(&self, pa: u64, pages: u32) {
        if let Err(e) = self.pages.borrow_mut().free(pa, pages) {
            log::warn!("freeing {pages} pages at {pa:#x}: {e}");
        }
    }

    fn wait_notification(&self, _timeout_ms: u32) -> bool {
        // No interrupt handling in the payload: the driver polls.
        false
    }
}

impl DriverMem for DmaWindow {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let src = core::ptr::with_exposed_provenance::<u8>(self.check(addr, buf.len())?);
        // SAFETY: `[addr, addr + len)` lies in allocated pages of the window (checked above),
        // identity-mapped readable memory; the partition may write it concurrently (it is
        // shared), so it is read with volatile accesses and never through a reference.
        unsafe { ffa::arch::volatile::copy(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MemError> {
        let dst = core::ptr::with_exposed_provenance_mut::<u8>(self.check(addr, data.len())?);
        // SAFETY: `[addr, addr + len)` lies in allocated pages of the window (checked above),
        // identity-mapped read-write memory; the partition may access it concurrently, so it is
        // written with volatile accesses and never through a reference.
        unsafe { ffa::arch::volatile::copy(data.as_ptr(), dst, data.len()) };
        Ok(())
    }
}

/// The payload as a [`Machine`].
pub struct Payload {
    memory: DmaWindow,
}

impl Payload {
    /// The machine; `None` if the driver memory window is unusable.
    pub fn new() -> Option<Self> {
        Some(Self {
            memory: DmaWindow::new()?,
        })
    }
}

impl Machine for Payload {
    type Conduit = SmcConduit;
    type Platform = DmaWindow;

    fn conduit(&mut self) -> Option<SmcConduit> {
        SmcConduit::take()
    }

    fn rxtx(&self) -> (u64, u64, u32) {
        SmcConduit::buffer_addresses()
    }

    fn platform(&self) -> &DmaWindow {
        &self.memory
    }

    fn no_ffa_reason(&self) -> &'static str {
        if super::exceptions::smc_undefined() {
            "SMC is undefined at EL2: no EL3, or EL3 disabled SMC"
        } else {
            "SMCCC NOT_SUPPORTED: no SPMD at EL3 answers FF-A"
        }
    }

    fn start_cpus(&mut self, max: usize) -> CpuStart {
        super::smp::start(max)
    }

    fn run_on_cpus(&mut self, job: &Job) -> Vec<Result<CpuCounts, CpuFailure>> {
        super::smp::run(job)
    }
}
