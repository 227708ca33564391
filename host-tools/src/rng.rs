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
    driver::{DeviceMemory, MAX_WAITS, close_device, open_device, queue0_size, wait_used},
    platform::Platform,
    session::BusSession,
    virtqueue::{DriverMem, DriverQueue},
};

/// Largest request the driver makes.
pub const BUFFER_BYTES: usize = 64 * 1024;
/// Size of the data buffers shared with the device: the requests in flight at once share it.
pub const BUFFER_AREA_BYTES: usize = 128 * 1024;
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
    memory: DeviceMemory,
    closed: bool,
    /// Requests kept in flight at once.
    depth: u16,
    /// Requests completed so far.
    completed: u64,
}

impl<'c, C: Conduit, P: Platform> RngDriver<'c, C, P> {
    /// Initialises device `dev_num` of `conn` as an entropy device.
    pub fn open(conn: &'c mut Connection<C, P>, dev_num: u16) -> Result<Self, HostError> {
        let ring = conn.ring_features();
        let (session, platform) = conn.parts();
        // Rings sized for the largest queue asked for, and the data buffers.
        let ring_len = DriverQueue::layout(QUEUE_SIZE)?.total;
        let ring_pages = u32::try_from(ring_len.div_ceil(PAGE_SIZE)).unwrap_or(u32::MAX);
        let buffer_pages = u32::try_from(BUFFER_AREA_BYTES as u64 / PAGE_SIZE).unwrap_or(1);
        let (memory, queue) = open_device(
            session,
            platform,
            dev_num,
            (virtio_ids::ENTROPY, "not an entropy device"),
            (ring_pages, buffer_pages),
            |client, memory| {
                let features =
                    client.initialize(VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM | ring)?;
                let size = queue0_size(client, QUEUE_SIZE)?;
                let queue = DriverQueue::new(platform, size, memory.ring.pa, memory.ring.bus(0))?
                    .with_features(features);
                client.set_vqueue(0, queue.queue_config())?;
                client.driver_ok()?;
                Ok(queue)
            },
        )?;
        Ok(Self {
            session,
            platform,
            dev_num,
            queue,
            memory,
            closed: false,
            depth: 1,
            completed: 0,
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

    /// The ring features in use (`VIRTIO_F_INDIRECT_DESC`, `VIRTIO_F_EVENT_IDX`).
    pub fn ring_features(&self) -> u64 {
        self.queue.features()
    }

    /// Requests completed so far.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Requests the driver keeps in flight at once (1 by default, at most the queue size, and
    /// at most `BUFFER_AREA_BYTES / request` for requests of `request` bytes).
    pub fn set_depth(&mut self, depth: u16) {
        self.depth = depth.clamp(1, self.queue.size());
    }

    /// Reads `n` random bytes, handing them to `sink` as they come, in requests of at most
    /// [`BUFFER_BYTES`]: memory use does not grow with `n`.
    pub fn read_with(
        &mut self,
        n: usize,
        sink: impl FnMut(&[u8]) -> Result<(), HostError>,
    ) -> Result<(), HostError> {
        self.read_in_requests(n, BUFFER_BYTES, sink)
    }

    /// Reads `n` random bytes in requests of `request` bytes (the last may be shorter), up to
    /// the depth ([`set_depth`](Self::set_depth)) in flight at once: each batch is published
    /// together and kicked once, and the used ring is checked before any event is fetched
    /// (a device that completes within the kick costs no further call).
    pub fn read_in_requests(
        &mut self,
        n: usize,
        request: usize,
        mut sink: impl FnMut(&[u8]) -> Result<(), HostError>,
    ) -> Result<(), HostError> {
        let request = request.clamp(1, BUFFER_BYTES);
        let depth = usize::from(self.depth)
            .min(BUFFER_AREA_BYTES / request)
            .max(1);
        let mut chunk = alloc::vec![0u8; request.min(n)];
        let mut left = n;
        while left > 0 {
            // Post a batch: request i of the batch at offset i * request of the buffer area.
            let mut batch: Vec<(u16, u64, usize)> = Vec::new();
            let mut posted = 0usize;
            while batch.len() < depth && posted < left {
                let want = (left - posted).min(request);
                let offset = (batch.len() * request) as u64;
                let len = u32::try_from(want).unwrap_or(u32::MAX);
                let head =
                    self.queue
                        .add(self.platform, &[], &[(self.memory.buffer.bus(offset), len)])?;
                batch.push((head, offset, want));
                posted += want;
            }
            if self.queue.publish(self.platform)? {
                let layout = self.session.info().dialect.layout();
                DeviceClient::new(&mut *self.session, self.dev_num, layout)?.notify_avail(0)?;
            }
            let mut returned: Vec<(u16, u32)> = Vec::new();
            self.collect_used(&mut returned)?;
            // The device may leave part of a batch for later (its work per message is bounded):
            // it goes on at the driver's next message.
            for _ in 0..MAX_WAITS {
                if returned.len() >= batch.len() {
                    break;
                }
                if !self.queue.prepare_wait(self.platform)? {
                    wait_used(self.session, self.platform, self.dev_num)?;
                }
                self.collect_used(&mut returned)?;
            }
            if returned.len() < batch.len() {
                return Err(HostError::Device(
                    "not every buffer returned after EVENT_USED",
                ));
            }
            // Hand the bytes over in the order the requests were posted.
            for &(head, offset, want) in &batch {
                let written = returned
                    .iter()
                    .find(|&&(h, _)| h == head)
                    .map(|&(_, w)| w)
                    .ok_or(HostError::Device("device returned an unknown buffer"))?;
                if written == 0 {
                    return Err(HostError::Device("device returned no entropy"));
                }
                let got = usize::try_from(written).unwrap_or(0).min(want);
                let dst = chunk
                    .get_mut(..got)
                    .ok_or(HostError::Device("buffer accounting"))?;
                DriverMem::read(self.platform, self.memory.buffer.pa + offset, dst)?;
                sink(dst)?;
                left -= got;
                self.completed += 1;
            }
        }
        Ok(())
    }

    /// Takes every chain the device has returned so far.
    fn collect_used(&mut self, returned: &mut Vec<(u16, u32)>) -> Result<(), HostError> {
        while let Some(used) = self.queue.pop_used(self.platform)? {
            returned.push(used);
        }
        Ok(())
    }

    /// Resets the device and takes the shared memory back.
    pub fn close(&mut self) -> Result<(), HostError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        close_device(self.session, self.platform, self.dev_num, &self.memory)
    }
}

impl<C: Conduit, P: Platform> Drop for RngDriver<'_, C, P> {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("closing the rng device failed: {e}");
        }
    }
}
