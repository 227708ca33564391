//! A virtio-rng driver over the virtio-msg FF-A bus, initialised the way the Linux driver does
//! it: reset, ACKNOWLEDGE, DRIVER, features (VERSION_1 and ACCESS_PLATFORM), FEATURES_OK,
//! the queue's rings and a data buffer each shared with FFA_MEM_SHARE + AREA_SHARE,
//! SET_VQUEUE with bus addresses, DRIVER_OK.

use alloc::vec::Vec;

use ffa::{conduit::Conduit, memory::PAGE_SIZE};
use virtio_msg::{
    device::{VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1},
    driver::DeviceClient,
};

use crate::{
    connection::{Connection, HostError, virtio_ids},
    driver::{release, share_pages, wait_used},
    platform::Platform,
    session::{BusSession, SharedArea},
    virtqueue::{DriverMem, DriverQueue},
};

/// Size of the data buffer shared with the device (one request at most).
pub const BUFFER_BYTES: usize = 64 * 1024;
/// Queue size the driver asks for (at most the device's maximum).
pub const QUEUE_SIZE: u16 = 64;

impl<C: Conduit, P: Platform> Connection<C, P> {
    /// Opens the first entropy device.
    pub fn rng(&mut self) -> Result<RngDriver<'_, C, P>, HostError> {
        let dev = self
            .list_devices()?
            .into_iter()
            .find(|d| d.info.device_id == virtio_ids::ENTROPY)
            .ok_or(HostError::Device("no entropy device"))?;
        RngDriver::open(self, dev.dev_num)
    }
}

/// An initialised virtio-rng device.
pub struct RngDriver<'c, C: Conduit, P: Platform> {
    session: &'c mut BusSession<C>,
    platform: &'c P,
    dev_num: u16,
    queue: DriverQueue,
    ring: SharedArea,
    buffer: SharedArea,
    closed: bool,
}

impl<'c, C: Conduit, P: Platform> RngDriver<'c, C, P> {
    /// Initialises device `dev_num` of `conn` as an entropy device.
    pub fn open(conn: &'c mut Connection<C, P>, dev_num: u16) -> Result<Self, HostError> {
        let (session, platform) = conn.parts();
        let layout = session.info().dialect.layout();
        let mut client = DeviceClient::new(&mut *session, dev_num, layout)?;
        let info = client.get_device_info()?;
        if info.device_id != virtio_ids::ENTROPY {
            return Err(HostError::Device("not an entropy device"));
        }
        drop(client);
        // Rings (sized for the largest queue asked for) and the data buffer: the endpoint's own
        // pages, shared with the partition before the device is initialised (so that a failed
        // initialisation gives them back in one place).
        let ring_len = DriverQueue::layout(QUEUE_SIZE)?.total;
        let ring_pages = u32::try_from(ring_len.div_ceil(PAGE_SIZE)).unwrap_or(u32::MAX);
        let ring = share_pages(session, platform, ring_pages)?;
        let buffer_pages = u32::try_from(BUFFER_BYTES as u64 / PAGE_SIZE).unwrap_or(1);
        let buffer = match share_pages(session, platform, buffer_pages) {
            Ok(b) => b,
            Err(e) => {
                release(session, platform, &ring);
                return Err(e);
            }
        };
        let queue = (|| {
            let mut client = DeviceClient::new(&mut *session, dev_num, layout)?;
            client.initialize(VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM)?;
            let vq = client.get_vqueue(0)?;
            let max = u16::try_from(vq.max_size).unwrap_or(u16::MAX);
            let size = QUEUE_SIZE.min(max);
            if size == 0 {
                return Err(HostError::Device("queue 0 does not exist"));
            }
            DriverQueue::new(platform, size, ring.pa, ring.bus(0)).map_err(HostError::from)
        })();
        let queue = match queue {
            Ok(q) => q,
            Err(e) => {
                release(session, platform, &buffer);
                release(session, platform, &ring);
                return Err(e);
            }
        };

        let mut client = DeviceClient::new(&mut *session, dev_num, layout)?;
        client.set_vqueue(0, queue.queue_config())?;
        client.driver_ok()?;
        Ok(Self {
            session,
            platform,
            dev_num,
            queue,
            ring,
            buffer,
            closed: false,
        })
    }

    /// Reads `n` random bytes into one buffer; refused (not aborted) if that much memory
    /// cannot be had. [`read_with`](Self::read_with) streams instead.
    pub fn read(&mut self, n: usize) -> Result<Vec<u8>, HostError> {
        let mut out = Vec::new();
        out.try_reserve_exact(n)
            .map_err(|_| HostError::Device("not enough memory for the bytes asked for"))?;
        self.read_with(n, |chunk| {
            out.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(out)
    }

    /// Reads `n` random bytes, handing them to `sink` as they come, one request at a time
    /// (at most [`BUFFER_BYTES`] each): memory use does not grow with `n`.
    pub fn read_with(
        &mut self,
        n: usize,
        mut sink: impl FnMut(&[u8]) -> Result<(), HostError>,
    ) -> Result<(), HostError> {
        let mut chunk = alloc::vec![0u8; n.min(BUFFER_BYTES)];
        let mut left = n;
        while left > 0 {
            let want = left.min(BUFFER_BYTES);
            let len = u32::try_from(want).unwrap_or(u32::MAX);
            let head = self
                .queue
                .add(self.platform, &[], &[(self.buffer.bus(0), len)])?;
            self.queue.publish(self.platform)?;
            let layout = self.session.info().dialect.layout();
            DeviceClient::new(&mut *self.session, self.dev_num, layout)?.notify_avail(0)?;
            wait_used(self.session, self.platform, self.dev_num)?;
            let (done, written) = self
                .queue
                .pop_used(self.platform)?
                .ok_or(HostError::Device("no buffer returned after EVENT_USED"))?;
            if done != head {
                return Err(HostError::Device("device returned an unknown buffer"));
            }
            if written == 0 {
                return Err(HostError::Device("device returned no entropy"));
            }
            let got = usize::try_from(written).unwrap_or(0).min(want);
            let dst = chunk
                .get_mut(..got)
                .ok_or(HostError::Device("buffer accounting"))?;
            DriverMem::read(self.platform, self.buffer.pa, dst)?;
            sink(dst)?;
            left -= got;
        }
        Ok(())
    }

    /// Resets the device and takes the shared memory back.
    pub fn close(&mut self) -> Result<(), HostError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let layout = self.session.info().dialect.layout();
        DeviceClient::new(&mut *self.session, self.dev_num, layout)?.reset()?;
        for area in [self.ring, self.buffer] {
            self.session.unshare(&area)?;
            self.platform.free_pages(area.pa, area.pages);
        }
        Ok(())
    }
}

impl<C: Conduit, P: Platform> Drop for RngDriver<'_, C, P> {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("closing the rng device failed: {e}");
        }
    }
}
