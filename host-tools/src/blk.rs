//! A virtio-blk driver over the virtio-msg FF-A bus, initialised like the rng driver: reset,
//! ACKNOWLEDGE, DRIVER, features, FEATURES_OK, the queue's rings and one request buffer each
//! shared with FFA_MEM_SHARE + AREA_SHARE, SET_VQUEUE with bus addresses, DRIVER_OK.
//!
//! One request at a time, as three descriptors the way Linux builds them: the 16-byte header
//! (device-readable), the data in one buffer (readable for a write, writable for a read) and
//! the status byte (writable). With `VIRTIO_F_INDIRECT_DESC` (see
//! [`Connection::set_ring_features`]) a request is instead one indirect table in the request
//! buffer, its data split into page-sized segments as a block layer hands them over.
//! [`BlkDriver::request`] sends any request and returns the status byte the device wrote; the
//! other methods check it.

use alloc::vec::Vec;

use ffa::{conduit::Conduit, memory::PAGE_SIZE};
use virtio_msg::{
    device::{VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1},
    driver::DeviceClient,
};

use crate::{
    connection::{Connection, HostError, virtio_ids},
    driver::{DeviceMemory, MAX_WAITS, close_device, open_device, queue0_size, wait_used},
    platform::Platform,
    session::BusSession,
    virtqueue::{DriverMem, DriverQueue},
};

/// Most data bytes one request carries (one data descriptor, or page-sized segments of an
/// indirect table).
pub const DATA_BYTES: usize = 64 * 1024;
/// Queue size the driver asks for (at most the device's maximum): room for the longest
/// indirect table (header, [`DATA_BYTES`] in page-sized segments, status), which may be no
/// longer than the queue.
pub const QUEUE_SIZE: u16 = 32;
/// The data segment size of an indirect request (a page).
const SEGMENT: usize = 4096;
const _: () = assert!(SEGMENT as u64 == PAGE_SIZE);
const _: () = assert!(DATA_BYTES / SEGMENT + 2 <= QUEUE_SIZE as usize);
/// Bytes per sector.
pub const SECTOR: usize = 512;

/// `VIRTIO_BLK_F_SIZE_MAX`.
pub const VIRTIO_BLK_F_SIZE_MAX: u64 = 1 << 1;
/// `VIRTIO_BLK_F_SEG_MAX`.
pub const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
/// `VIRTIO_BLK_F_RO`.
pub const VIRTIO_BLK_F_RO: u64 = 1 << 5;
/// `VIRTIO_BLK_F_BLK_SIZE`.
pub const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
/// `VIRTIO_BLK_F_FLUSH`.
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;
/// `VIRTIO_BLK_F_DISCARD`.
pub const VIRTIO_BLK_F_DISCARD: u64 = 1 << 13;
/// `VIRTIO_BLK_F_WRITE_ZEROES`.
pub const VIRTIO_BLK_F_WRITE_ZEROES: u64 = 1 << 14;
/// The features this driver accepts when offered.
pub const WANTED: u64 = VIRTIO_F_VERSION_1
    | VIRTIO_F_ACCESS_PLATFORM
    | VIRTIO_BLK_F_SIZE_MAX
    | VIRTIO_BLK_F_SEG_MAX
    | VIRTIO_BLK_F_RO
    | VIRTIO_BLK_F_BLK_SIZE
    | VIRTIO_BLK_F_FLUSH
    | VIRTIO_BLK_F_DISCARD
    | VIRTIO_BLK_F_WRITE_ZEROES;

/// `VIRTIO_BLK_T_IN`.
pub const T_IN: u32 = 0;
/// `VIRTIO_BLK_T_OUT`.
pub const T_OUT: u32 = 1;
/// `VIRTIO_BLK_T_FLUSH`.
pub const T_FLUSH: u32 = 4;
/// `VIRTIO_BLK_T_GET_ID`.
pub const T_GET_ID: u32 = 8;
/// `VIRTIO_BLK_T_DISCARD`.
pub const T_DISCARD: u32 = 11;
/// `VIRTIO_BLK_T_WRITE_ZEROES`.
pub const T_WRITE_ZEROES: u32 = 13;
/// `VIRTIO_BLK_S_OK`.
pub const S_OK: u8 = 0;

/// Where the header, the status byte, the indirect table and the data sit in the request
/// buffer.
const HEADER_AT: u64 = 0;
const STATUS_AT: u64 = 64;
const TABLE_AT: u64 = 128;
const DATA_AT: u64 = PAGE_SIZE;
const _: () = assert!(TABLE_AT + 16 * (DATA_BYTES / SEGMENT + 2) as u64 <= DATA_AT);
/// Pages of the request buffer: one for header and status, then the data.
const BUFFER_PAGES: u32 = 17;
const _: () = assert!(BUFFER_PAGES as u64 * PAGE_SIZE == DATA_AT + DATA_BYTES as u64);
/// What the status byte holds before the device writes it (no status has this value).
const STATUS_UNWRITTEN: u8 = 0xff;

impl<C: Conduit, P: Platform> Connection<C, P> {
    /// Opens the first block device.
    pub fn blk(&mut self) -> Result<BlkDriver<'_, C, P>, HostError> {
        let dev = self
            .list_devices()?
            .into_iter()
            .find(|d| d.info.device_id == virtio_ids::BLOCK)
            .ok_or(HostError::Device("no block device"))?;
        BlkDriver::open(self, dev.dev_num)
    }
}

/// What a request came back with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The status byte.
    pub status: u8,
    /// The used length the device reported.
    pub used: u32,
    /// The data the device wrote (a read's `in_len` bytes).
    pub data: Vec<u8>,
}

/// An initialised virtio-blk device.
pub struct BlkDriver<'c, C: Conduit, P: Platform> {
    session: &'c mut BusSession<C>,
    platform: &'c P,
    dev_num: u16,
    queue: DriverQueue,
    memory: DeviceMemory,
    features: u64,
    capacity: u64,
    closed: bool,
}

impl<'c, C: Conduit, P: Platform> BlkDriver<'c, C, P> {
    /// Initialises device `dev_num` of `conn` as a block device.
    pub fn open(conn: &'c mut Connection<C, P>, dev_num: u16) -> Result<Self, HostError> {
        let ring = conn.ring_features();
        let (session, platform) = conn.parts();
        let ring_len = DriverQueue::layout(QUEUE_SIZE)?.total;
        let ring_pages = u32::try_from(ring_len.div_ceil(PAGE_SIZE)).unwrap_or(u32::MAX);
        let (memory, (queue, features, capacity)) = open_device(
            session,
            platform,
            dev_num,
            (virtio_ids::BLOCK, "not a block device"),
            (ring_pages, BUFFER_PAGES),
            |client, memory| {
                let features = client.initialize(WANTED | ring)?;
                let mut capacity = [0u8; 8];
                client.get_config(0, &mut capacity)?;
                let size = queue0_size(client, QUEUE_SIZE)?;
                let queue = DriverQueue::new(platform, size, memory.ring.pa, memory.ring.bus(0))?
                    .with_features(features);
                client.set_vqueue(0, queue.queue_config())?;
                client.driver_ok()?;
                Ok((queue, features, u64::from_le_bytes(capacity)))
            },
        )?;
        Ok(Self {
            session,
            platform,
            dev_num,
            queue,
            memory,
            features,
            capacity,
            closed: false,
        })
    }

    /// The negotiated features (the ring features among them, see
    /// [`Connection::set_ring_features`]).
    pub fn features(&self) -> u64 {
        self.features
    }

    /// The capacity in sectors, as the configuration space gave it at open.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Sends one request: header (`kind`, `sector`), then `out` as device-readable data (if
    /// any), `in_len` bytes of device-writable data (if any), and the status byte. Both data
    /// lengths are at most [`DATA_BYTES`], and only one of them may be non-zero.
    pub fn request(
        &mut self,
        kind: u32,
        sector: u64,
        out: &[u8],
        in_len: usize,
    ) -> Result<Completion, HostError> {
        if out.len() > DATA_BYTES || in_len > DATA_BYTES || (!out.is_empty() && in_len > 0) {
            return Err(HostError::Device("request data does not fit the buffer"));
        }
        let mut header = [0u8; 16];
        header[..4].copy_from_slice(&kind.to_le_bytes());
        header[8..].copy_from_slice(&sector.to_le_bytes());
        let pa = self.memory.buffer.pa;
        DriverMem::write(self.platform, pa + HEADER_AT, &header)?;
        DriverMem::write(self.platform, pa + STATUS_AT, &[STATUS_UNWRITTEN])?;
        DriverMem::write(self.platform, pa + DATA_AT, out)?;
        let bus = |offset| self.memory.buffer.bus(offset);
        let indirect = self.queue.features() & VIRTIO_F_INDIRECT_DESC != 0;
        // Direct: the data in one buffer; indirect: in page-sized segments.
        let segment = if indirect { SEGMENT } else { DATA_BYTES };
        let data = |len: usize| {
            (0..len)
                .step_by(segment)
                .map(move |at| {
                    let n = (len - at).min(segment);
                    (
                        bus(DATA_AT + at as u64),
                        u32::try_from(n).unwrap_or(u32::MAX),
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut readable = alloc::vec![(bus(HEADER_AT), 16)];
        readable.extend(data(out.len()));
        let mut writable = data(in_len);
        writable.push((bus(STATUS_AT), 1));
        let head = if indirect {
            let table = (pa + TABLE_AT, bus(TABLE_AT));
            self.queue
                .add_indirect(self.platform, table, &readable, &writable)?
        } else {
            self.queue.add(self.platform, &readable, &writable)?
        };
        if self.queue.publish(self.platform)? {
            let layout = self.session.info().dialect.layout();
            DeviceClient::new(&mut *self.session, self.dev_num, layout)?.notify_avail(0)?;
        }
        // The device usually completes within the kick: look at the used ring first.
        let mut returned = self.queue.pop_used(self.platform)?;
        for _ in 0..MAX_WAITS {
            if returned.is_some() {
                break;
            }
            if !self.queue.prepare_wait(self.platform)? {
                wait_used(self.session, self.platform, self.dev_num)?;
            }
            returned = self.queue.pop_used(self.platform)?;
        }
        let (done, used) =
            returned.ok_or(HostError::Device("no buffer returned after EVENT_USED"))?;
        if done != head {
            return Err(HostError::Device("device returned an unknown buffer"));
        }
        let mut status = [0u8];
        DriverMem::read(self.platform, pa + STATUS_AT, &mut status)?;
        let mut data = alloc::vec![0u8; in_len];
        DriverMem::read(self.platform, pa + DATA_AT, &mut data)?;
        Ok(Completion {
            status: status[0],
            used,
            data,
        })
    }

    /// A request that must succeed.
    fn ok(
        &mut self,
        kind: u32,
        sector: u64,
        out: &[u8],
        in_len: usize,
    ) -> Result<Vec<u8>, HostError> {
        let done = self.request(kind, sector, out, in_len)?;
        match done.status {
            S_OK => Ok(done.data),
            STATUS_UNWRITTEN => Err(HostError::Device("the device wrote no status")),
            status => Err(HostError::BlockStatus(status)),
        }
    }

    /// Reads `len` bytes (whole sectors, at most [`DATA_BYTES`]) from `sector`.
    pub fn read(&mut self, sector: u64, len: usize) -> Result<Vec<u8>, HostError> {
        self.ok(T_IN, sector, &[], len)
    }

    /// Writes `data` (whole sectors, at most [`DATA_BYTES`]) at `sector`.
    pub fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), HostError> {
        self.ok(T_OUT, sector, data, 0).map(drop)
    }

    /// Flushes the device's write cache.
    pub fn flush(&mut self) -> Result<(), HostError> {
        self.ok(T_FLUSH, 0, &[], 0).map(drop)
    }

    /// The device ID string (20 bytes, NUL-padded).
    pub fn id(&mut self) -> Result<[u8; 20], HostError> {
        let data = self.ok(T_GET_ID, 0, &[], 20)?;
        data.try_into()
            .map_err(|_| HostError::Device("GET_ID length"))
    }

    /// DISCARD (`unmap` false) or WRITE_ZEROES of `count` sectors from `sector`.
    fn zeroes(&mut self, kind: u32, sector: u64, count: u32, unmap: bool) -> Result<(), HostError> {
        let mut segment = [0u8; 16];
        segment[..8].copy_from_slice(&sector.to_le_bytes());
        segment[8..12].copy_from_slice(&count.to_le_bytes());
        segment[12..].copy_from_slice(&u32::from(unmap).to_le_bytes());
        self.ok(kind, 0, &segment, 0).map(drop)
    }

    /// DISCARD of `count` sectors from `sector`.
    pub fn discard(&mut self, sector: u64, count: u32) -> Result<(), HostError> {
        self.zeroes(T_DISCARD, sector, count, false)
    }

    /// WRITE_ZEROES of `count` sectors from `sector`, allowing deallocation if `unmap`.
    pub fn write_zeroes(&mut self, sector: u64, count: u32, unmap: bool) -> Result<(), HostError> {
        self.zeroes(T_WRITE_ZEROES, sector, count, unmap)
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

impl<C: Conduit, P: Platform> Drop for BlkDriver<'_, C, P> {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("closing the block device failed: {e}");
        }
    }
}
