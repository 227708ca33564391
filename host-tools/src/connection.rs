//! A connection to the partition: an open bus session and the platform whose memory it
//! shares; what a tool asks of it (the device list, a device's driver).

use alloc::vec::Vec;

use ffa::{bus::Dialect, conduit::Conduit};
use virtio_msg::{
    device::{VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC},
    driver::DeviceClient,
    transport::DeviceInfo,
};

use crate::{
    platform::Platform,
    session::{self, BusSession, SharedArea},
    virtqueue,
};

/// Pages of the DMA pool a G2 connection shares ([`Connection::share_dma_pool`]).
pub const G2_POOL_PAGES: u32 = 1;

/// Virtio device type ids.
pub mod virtio_ids {
    /// Network card.
    pub const NET: u32 = 1;
    /// Block device.
    pub const BLOCK: u32 = 2;
    /// Console.
    pub const CONSOLE: u32 = 3;
    /// Entropy source.
    pub const ENTROPY: u32 = 4;
    /// Socket (vsock).
    pub const VSOCK: u32 = 19;
}

/// A short name for virtio device type `id`.
pub fn device_name(id: u32) -> &'static str {
    match id {
        virtio_ids::NET => "net",
        virtio_ids::BLOCK => "block",
        virtio_ids::CONSOLE => "console",
        virtio_ids::ENTROPY => "entropy",
        virtio_ids::VSOCK => "vsock",
        _ => "unknown",
    }
}

/// A device the partition offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceSummary {
    /// Device number on the bus.
    pub dev_num: u16,
    /// What GET_DEVICE_INFO said.
    pub info: DeviceInfo,
}

/// Why a host operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A bus operation failed.
    #[error("bus: {0}")]
    Session(#[from] session::SessionError),
    /// A transport operation failed.
    #[error("transport: {0}")]
    Driver(#[from] virtio_msg::driver::DriverError),
    /// A virtqueue operation failed.
    #[error("virtqueue: {0}")]
    Queue(#[from] virtqueue::QueueError),
    /// Driver memory could not be accessed.
    #[error("memory: {0}")]
    Memory(#[from] virtio_msg::MemError),
    /// The device misbehaved or is missing.
    #[error("device: {0}")]
    Device(&'static str),
    /// A block request completed with this status byte (1: I/O error, 2: unsupported).
    #[error("block request status {0}")]
    BlockStatus(u8),
}

/// A normal-world endpoint's connection to the partition: its bus session and its platform
/// (memory, doorbell).
pub struct Connection<C: Conduit, P: Platform> {
    session: BusSession<C>,
    platform: P,
    /// The G2 DMA pool, once shared.
    pool: Option<SharedArea>,
    /// Ring features the drivers accept when the device offers them.
    ring: u64,
}

impl<C: Conduit, P: Platform> Connection<C, P> {
    /// Wraps an open bus session and the platform whose memory it shares.
    pub fn new(session: BusSession<C>, platform: P) -> Self {
        Self {
            session,
            platform,
            pool: None,
            ring: 0,
        }
    }

    /// The ring features the drivers opened from now on accept when their device offers them:
    /// `VIRTIO_F_INDIRECT_DESC` (virtio-blk then sends each request as one indirect table, its
    /// data in page-sized segments) and `VIRTIO_F_EVENT_IDX` (both sides notify only when the
    /// other asks); other bits are ignored. None by default: the drivers then use neither.
    pub fn set_ring_features(&mut self, features: u64) {
        self.ring = features & (VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX);
    }

    /// The ring features set with [`set_ring_features`](Self::set_ring_features).
    pub fn ring_features(&self) -> u64 {
        self.ring
    }

    /// G2: shares the connection's DMA pool, once, as the Linux G2 driver shares its
    /// restricted-dma-pool at bus probe before it sets up any device. The partition refuses
    /// FEATURES_OK to a G2 endpoint that has shared no memory (its rings could only be raw
    /// physical addresses), so call this before a device's status sequence. The drivers here
    /// still share their rings and buffers as areas of their own; the pool stands in for the
    /// Linux pool's place in the order. G3 shares memory per allocation: nothing to do.
    pub fn share_dma_pool(&mut self) -> Result<(), HostError> {
        if self.session.info().dialect != Dialect::G2 || self.pool.is_some() {
            return Ok(());
        }
        let pa = self
            .platform
            .alloc_pages(G2_POOL_PAGES)
            .ok_or(HostError::Device("out of driver memory"))?;
        match self.session.share(pa, G2_POOL_PAGES) {
            Ok(area) => {
                self.pool = Some(area);
                Ok(())
            }
            Err(e) => {
                self.platform.free_pages(pa, G2_POOL_PAGES);
                Err(e.into())
            }
        }
    }

    /// The G2 DMA pool, if [`share_dma_pool`](Self::share_dma_pool) shared one.
    pub fn dma_pool(&self) -> Option<SharedArea> {
        self.pool
    }

    /// The bus session.
    pub fn session(&mut self) -> &mut BusSession<C> {
        &mut self.session
    }

    /// Ends the connection, giving the bus session back.
    pub fn into_session(self) -> BusSession<C> {
        self.session
    }

    /// The platform.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The bus session and the platform together (a driver uses both at once).
    pub fn parts(&mut self) -> (&mut BusSession<C>, &P) {
        (&mut self.session, &self.platform)
    }

    /// Enumerates the partition's devices (GET_DEVICES, then GET_DEVICE_INFO for each).
    pub fn list_devices(&mut self) -> Result<Vec<DeviceSummary>, HostError> {
        let numbers = self.session.devices()?;
        let layout = self.session.info().dialect.layout();
        let mut out = Vec::with_capacity(numbers.len());
        for dev_num in numbers {
            let mut client = DeviceClient::new(&mut self.session, dev_num, layout)?;
            let info = client.get_device_info()?;
            out.push(DeviceSummary { dev_num, info });
        }
        Ok(out)
    }
}
