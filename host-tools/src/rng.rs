//! A virtio-rng driver over the virtio-msg FF-A bus, initialised the way the Linux driver does
//! it: (G2: the connection's DMA pool shared first) reset, ACKNOWLEDGE, DRIVER, features
//! (VERSION_1 and ACCESS_PLATFORM), FEATURES_OK,
//! the queue's rings and a data buffer each shared with FFA_MEM_SHARE + AREA_SHARE,
//! SET_VQUEUE with bus addresses, DRIVER_OK.

use alloc::vec::Vec;

use ffa::{bus::Dialect, conduit::Conduit, memory::PAGE_SIZE};
use virtio_msg::{
    device::{VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1},
    driver::DeviceClient,
};

use crate::{
    connection::{Connection, HostError, virtio_ids},
    platform::Platform,
    session::{BusSession, Event, SharedArea},
    virtqueue::{DriverMem, DriverQueue},
};

/// Size of the data buffer shared with the device (one request at most).
pub const BUFFER_BYTES: usize = 64 * 1024;
/// Queue size the driver asks for (at most the device's maximum).
pub const QUEUE_SIZE: u16 = 64;
/// How long to wait for a completion notification, in milliseconds.
const NOTIFY_TIMEOUT_MS: u32 = 5000;

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

/// Allocates `pages` pages and shares them with the partition as a new area.
fn share_pages<C: Conduit, P: Platform>(
    session: &mut BusSession<C>,
    platform: &P,
    pages: u32,
) -> Result<SharedArea, HostError> {
    let pa = platform
        .alloc_pages(pages)
        .ok_or(HostError::Device("out of driver memory"))?;
    session.share(pa, pages).map_err(|e| {
        platform.free_pages(pa, pages);
        HostError::from(e)
    })
}

impl<'c, C: Conduit, P: Platform> RngDriver<'c, C, P> {
    /// Initialises device `dev_num` of `conn` as an entropy device.
    pub fn open(conn: &'c mut Connection<C, P>, dev_num: u16) -> Result<Self, HostError> {
        conn.share_dma_pool()?;
        let (session, platform) = conn.parts();
        let layout = session.info().dialect.layout();
        let mut client = DeviceClient::new(&mut *session, dev_num, layout)?;
        let info = client.get_device_info()?;
        if info.device_id != virtio_ids::ENTROPY {
            return Err(HostError::Device("not an entropy device"));
        }
        client.initialize(VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM)?;
        let vq = client.get_vqueue(0)?;
        let max = u16::try_from(vq.max_size).unwrap_or(u16::MAX);
        let size = QUEUE_SIZE.min(max);
        if size == 0 {
            return Err(HostError::Device("queue 0 does not exist"));
        }

        // Rings and data buffer: the endpoint's own pages, shared with the partition.
        let ring_len = DriverQueue::layout(size)?.total;
        let ring_pages = u32::try_from(ring_len.div_ceil(PAGE_SIZE)).unwrap_or(u32::MAX);
        let ring = share_pages(session, platform, ring_pages)?;
        let buffer_pages = u32::try_from(BUFFER_BYTES as u64 / PAGE_SIZE).unwrap_or(1);
        let buffer = share_pages(session, platform, buffer_pages)?;
        let queue = DriverQueue::new(platform, size, ring.pa, ring.bus(0))?;

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

    /// Reads `n` random bytes into memory. The buffer is reserved fallibly: a size the
    /// process cannot hold is refused, never an abort. For large amounts use
    /// [`read_to`](Self::read_to), which streams.
    pub fn read(&mut self, n: usize) -> Result<Vec<u8>, HostError> {
        let mut out = Vec::new();
        out.try_reserve_exact(n)
            .map_err(|_| HostError::Device("not enough memory for the requested bytes"))?;
        let total = u64::try_from(n).map_err(|_| HostError::Device("read size"))?;
        self.read_to(total, &mut |chunk| {
            out.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(out)
    }

    /// Reads `n` random bytes and hands them to `sink` as they arrive, one device request
    /// (at most [`BUFFER_BYTES`]) at a time, so memory use does not grow with `n`. Returns the
    /// number of bytes handed over (`n`, unless `sink` or the device failed first).
    pub fn read_to(
        &mut self,
        n: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), HostError>,
    ) -> Result<u64, HostError> {
        let mut chunk = Vec::new();
        chunk
            .try_reserve_exact(BUFFER_BYTES)
            .map_err(|_| HostError::Device("no memory for the read buffer"))?;
        let mut done: u64 = 0;
        while done < n {
            let want = usize::try_from(n - done).map_or(BUFFER_BYTES, |r| r.min(BUFFER_BYTES));
            let got = self.request(want, &mut chunk)?;
            sink(got)?;
            done += u64::try_from(got.len()).map_err(|_| HostError::Device("read size"))?;
        }
        Ok(done)
    }

    /// One device request for up to `want` (≤ [`BUFFER_BYTES`]) bytes, copied into `chunk`;
    /// returns the bytes the device wrote (at least one).
    fn request<'b>(&mut self, want: usize, chunk: &'b mut Vec<u8>) -> Result<&'b [u8], HostError> {
        let len = u32::try_from(want).unwrap_or(u32::MAX);
        let head = self
            .queue
            .add(self.platform, &[], &[(self.buffer.bus(0), len)])?;
        self.queue.publish(self.platform)?;
        let layout = self.session.info().dialect.layout();
        DeviceClient::new(&mut *self.session, self.dev_num, layout)?.notify_avail(0)?;
        self.wait_used()?;
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
        chunk.clear();
        chunk.resize(got, 0);
        DriverMem::read(self.platform, self.buffer.pa, chunk)?;
        Ok(chunk)
    }

    /// Waits for the device's EVENT_USED the way the dialect's driver does: G3 fetches events
    /// with EVENT_POLL (after the notification when one was configured); G2 has no event path
    /// and looks at the used ring directly.
    fn wait_used(&mut self) -> Result<(), HostError> {
        let info = self.session.info();
        if info.dialect == Dialect::G2 {
            return Ok(());
        }
        if info.notified {
            if !self.platform.wait_notification(NOTIFY_TIMEOUT_MS) {
                return Err(HostError::Device("no notification after EVENT_AVAIL"));
            }
            let own = self.session.own_id();
            self.session
                .ffa()
                .notification_get(own)
                .map_err(crate::session::SessionError::from)?;
        }
        let events = self.session.drain_events()?;
        if events.contains(&Event::Used {
            dev: self.dev_num,
            vq: 0,
        }) {
            Ok(())
        } else {
            Err(HostError::Device("no EVENT_USED for the request"))
        }
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
