//! virtio-blk (block device, device id 2; virtio 1.2 §5.2) over a [`BlockStore`].
//!
//! One request queue (index 0, [`QUEUE_MAX_SIZE`] descriptors at most). Each request is one
//! descriptor chain: the 16-byte header `struct virtio_blk_req {le32 type; le32 reserved; le64
//! sector}` at the start of the device-readable buffers (it may span descriptors), then the
//! data (device-readable for a write, device-writable for a read), then a 1-byte status in the
//! last device-writable byte. The used length is the number of bytes the device wrote into the
//! writable buffers: the data it filled plus the status byte.
//!
//! Features offered besides `VIRTIO_F_VERSION_1` and `VIRTIO_F_ACCESS_PLATFORM`: SIZE_MAX,
//! SEG_MAX, BLK_SIZE, FLUSH, DISCARD, WRITE_ZEROES, RO when the store is read-only, and the
//! ring features `VIRTIO_F_INDIRECT_DESC` (a request may be one indirect table: header, data
//! segments and status in one descriptor of the queue) and `VIRTIO_F_EVENT_IDX`, honoured by
//! [`SplitQueue`] when accepted.
//! Requests: IN, OUT, FLUSH, GET_ID, DISCARD and WRITE_ZEROES (the last two only when the
//! driver accepted their feature); every other type completes with `VIRTIO_BLK_S_UNSUPP`.
//!
//! A hostile driver gets the protocol's answer, never a reset: every malformed request —
//! short header, data in the wrong direction, a length that is not a multiple of 512, a range
//! past the capacity or wrapping 64 bits, a GET_ID buffer other than 20 bytes, more data than
//! [`MAX_REQUEST_BYTES`], a data buffer the device cannot reach, a write to a read-only
//! store — completes with `VIRTIO_BLK_S_IOERR` (or `UNSUPP`, see [`RequestError`]) and the
//! device goes on with the next chain. A chain without a device-writable byte has nowhere to
//! put a status: it is returned with used length 0 and nothing done. Only what breaks the
//! queue itself (a bad ring or descriptor, see [`SplitQueue`]) or an unreachable status byte
//! is a [`DeviceError`], which sets DEVICE_NEEDS_RESET.
//!
//! Bounds: one notify serves at most `size` chains and none once its [`Budget`] is spent
//! (each chain spends the bytes it moved or zeroed); a chain moves at most
//! [`MAX_REQUEST_BYTES`] (`seg_max * size_max`, what the configuration tells the driver), so a
//! started chain overruns the budget by a bounded amount. Data passes in [`CHUNK`]-byte pieces
//! through a buffer kept with the device between driver memory and the store: nothing is allocated per
//! request beyond the chain's buffer list that [`SplitQueue::pop`] builds.
//!
//! Where the spec leaves room, this device is strict about what a driver MUST do and lenient
//! about what it SHOULD do: GET_ID data must be exactly 20 bytes ("MUST be 20 bytes", §5.2.6.2;
//! shorter or longer is IOERR); a FLUSH's `sector` and any data buffers it carries are ignored
//! ("MUST set sector to 0", "SHOULD NOT include any data": neither harms the device).

use core::mem::offset_of;

use virtio_msg::{
    MemError, SharedMem,
    device::{
        Budget, DeviceError, QueueConfig, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_EVENT_IDX,
        VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1, VirtioDevice,
    },
};
use zerocopy::{
    FromBytes, Immutable, IntoBytes, KnownLayout,
    little_endian::{U16, U32, U64},
};

use crate::virtqueue::{DescChain, MAX_INDIRECT_DESCS, SplitQueue};

pub mod ram;

/// Virtio device id of the block device.
pub const DEVICE_ID: u32 = 2;
/// Largest request-queue size the device accepts.
pub const QUEUE_MAX_SIZE: u16 = 128;
// An indirect table as long as the queue fits the queue's local copy.
const _: () = assert!(QUEUE_MAX_SIZE <= MAX_INDIRECT_DESCS);
/// Bytes per sector: the unit of `capacity`, `sector` and every length in the protocol.
pub const SECTOR_SIZE: u32 = 512;
/// Size of the device ID string of GET_ID (`VIRTIO_BLK_ID_BYTES`).
pub const ID_BYTES: usize = 20;

/// `size_max`: the largest segment (descriptor) the driver should use. At least any Linux
/// page size (Linux refuses a maximum segment size below `PAGE_SIZE`, up to 64 KiB on arm64).
pub const SIZE_MAX: u32 = 64 * 1024;
/// `seg_max`: the most data segments in one request. With the header and the status a request
/// takes `SEG_MAX + 2` descriptors (direct, or entries of one indirect table), well inside a
/// queue of [`QUEUE_MAX_SIZE`].
pub const SEG_MAX: u32 = 16;
/// Most data bytes one IN or OUT request may carry (`seg_max * size_max`); more is IOERR.
/// The bound on the work one chain does, however the driver splits it into descriptors.
pub const MAX_REQUEST_BYTES: u32 = SEG_MAX * SIZE_MAX;
/// `max_discard_sectors` and `max_write_zeroes_sectors`: as many sectors as the largest
/// read or write, so a zeroing request costs no more than a data request.
pub const MAX_ZEROES_SECTORS: u32 = MAX_REQUEST_BYTES / SECTOR_SIZE;
/// `max_discard_seg` and `max_write_zeroes_seg`: one segment per request.
pub const MAX_ZEROES_SEGMENTS: u32 = 1;
/// Size of the buffer data passes through (a whole number of sectors; a page, so that a 4 KiB
/// request is one copy each way).
pub const CHUNK: usize = 4096;
const _: () = assert!(CHUNK.is_multiple_of(SECTOR_SIZE as usize) && CHUNK > 0);
/// Sectors in one [`CHUNK`].
const SECTORS_PER_CHUNK: u64 = (CHUNK / SECTOR_SIZE as usize) as u64;

/// `VIRTIO_BLK_F_SIZE_MAX` (bit 1): `size_max` is valid.
pub const VIRTIO_BLK_F_SIZE_MAX: u64 = 1 << 1;
/// `VIRTIO_BLK_F_SEG_MAX` (bit 2): `seg_max` is valid.
pub const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
/// `VIRTIO_BLK_F_RO` (bit 5): the device is read-only.
pub const VIRTIO_BLK_F_RO: u64 = 1 << 5;
/// `VIRTIO_BLK_F_BLK_SIZE` (bit 6): `blk_size` is valid.
pub const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
/// `VIRTIO_BLK_F_FLUSH` (bit 9): FLUSH is supported.
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;
/// `VIRTIO_BLK_F_DISCARD` (bit 13): DISCARD is supported, limits in the configuration.
pub const VIRTIO_BLK_F_DISCARD: u64 = 1 << 13;
/// `VIRTIO_BLK_F_WRITE_ZEROES` (bit 14): WRITE_ZEROES is supported, limits in the configuration.
pub const VIRTIO_BLK_F_WRITE_ZEROES: u64 = 1 << 14;

/// `VIRTIO_BLK_T_IN`: read sectors into the writable data.
pub const VIRTIO_BLK_T_IN: u32 = 0;
/// `VIRTIO_BLK_T_OUT`: write the readable data to sectors.
pub const VIRTIO_BLK_T_OUT: u32 = 1;
/// `VIRTIO_BLK_T_FLUSH`: make completed writes stable.
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
/// `VIRTIO_BLK_T_GET_ID`: the 20-byte device ID string into the writable data.
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;
/// `VIRTIO_BLK_T_DISCARD`: the sectors of the readable segment may be deallocated.
pub const VIRTIO_BLK_T_DISCARD: u32 = 11;
/// `VIRTIO_BLK_T_WRITE_ZEROES`: the sectors of the readable segment read as zeroes after.
pub const VIRTIO_BLK_T_WRITE_ZEROES: u32 = 13;

/// `VIRTIO_BLK_S_OK`.
pub const VIRTIO_BLK_S_OK: u8 = 0;
/// `VIRTIO_BLK_S_IOERR`: a device or driver error.
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// `VIRTIO_BLK_S_UNSUPP`: a request the device does not support.
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// `VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP`: the only defined segment flag (bit 0 of `flags`).
pub const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP: u32 = 1;

/// Every feature the device offers whatever its store.
const FEATURES: u64 = VIRTIO_F_VERSION_1
    | VIRTIO_F_ACCESS_PLATFORM
    | VIRTIO_F_INDIRECT_DESC
    | VIRTIO_F_EVENT_IDX
    | VIRTIO_BLK_F_SIZE_MAX
    | VIRTIO_BLK_F_SEG_MAX
    | VIRTIO_BLK_F_BLK_SIZE
    | VIRTIO_BLK_F_FLUSH
    | VIRTIO_BLK_F_DISCARD
    | VIRTIO_BLK_F_WRITE_ZEROES;

/// Why a block store could not do what it was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The sectors asked for are not all inside the store, or a length is not whole sectors.
    #[error("sector range outside the store")]
    OutOfRange,
    /// The store is read-only.
    #[error("store is read-only")]
    ReadOnly,
    /// The store's memory could not be allocated.
    #[error("no memory for the store")]
    NoMemory,
    /// The medium failed.
    #[error("store I/O failure")]
    Io,
}

/// What a virtio-blk device stores its sectors in. Every length is a whole number of
/// [`SECTOR_SIZE`]-byte sectors; the device checks ranges against
/// [`capacity_sectors`](Self::capacity_sectors) before it calls, and a store checks them again
/// (it never trusts its caller to stay inside it).
pub trait BlockStore {
    /// Size of the store in 512-byte sectors.
    fn capacity_sectors(&self) -> u64;
    /// Whether every write must fail (the device then offers `VIRTIO_BLK_F_RO`).
    fn read_only(&self) -> bool;
    /// The device ID string GET_ID returns: ASCII, NUL-padded when shorter than 20 bytes.
    fn id(&self) -> [u8; ID_BYTES];
    /// Reads `buf.len() / 512` sectors from `sector` into `buf`.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    /// Writes `data` (`data.len() / 512` sectors) at `sector`.
    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), BlockError>;
    /// Makes every completed write stable.
    fn flush(&mut self) -> Result<(), BlockError>;
    /// `count` sectors from `sector` are no longer needed: the store may deallocate them
    /// (their content is undefined after). The default keeps them as they are.
    fn discard(&mut self, sector: u64, count: u64) -> Result<(), BlockError> {
        let _ = (sector, count);
        if self.read_only() {
            return Err(BlockError::ReadOnly);
        }
        Ok(())
    }
    /// `count` sectors from `sector` read as zeroes after. The default writes zeroes,
    /// [`CHUNK`] bytes at a time.
    fn write_zeroes(&mut self, sector: u64, count: u64) -> Result<(), BlockError> {
        let zeroes = [0u8; CHUNK];
        let mut done = 0u64;
        while let Some(left) = count.checked_sub(done).filter(|&left| left > 0) {
            let n = left.min(SECTORS_PER_CHUNK);
            let bytes = usize::try_from(n)
                .ok()
                .and_then(|n| n.checked_mul(SECTOR_SIZE as usize))
                .and_then(|len| zeroes.get(..len))
                .ok_or(BlockError::OutOfRange)?;
            let at = sector.checked_add(done).ok_or(BlockError::OutOfRange)?;
            self.write(at, bytes)?;
            done = done.saturating_add(n);
        }
        Ok(())
    }
}

impl<B: BlockStore + ?Sized> BlockStore for &mut B {
    fn capacity_sectors(&self) -> u64 {
        (**self).capacity_sectors()
    }
    fn read_only(&self) -> bool {
        (**self).read_only()
    }
    fn id(&self) -> [u8; ID_BYTES] {
        (**self).id()
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        (**self).read(sector, buf)
    }
    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), BlockError> {
        (**self).write(sector, data)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        (**self).flush()
    }
    fn discard(&mut self, sector: u64, count: u64) -> Result<(), BlockError> {
        (**self).discard(sector, count)
    }
    fn write_zeroes(&mut self, sector: u64, count: u64) -> Result<(), BlockError> {
        (**self).write_zeroes(sector, count)
    }
}

/// `struct virtio_blk_config` (virtio 1.2 §5.2.4), the fields up to and including
/// `write_zeroes_may_unmap` and its padding: 60 bytes. The secure-erase and zoned fields that
/// follow in the spec belong to features this device does not offer, so the configuration
/// space ends here.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct VirtioBlkConfig {
    /// Offset 0, length 8: capacity in 512-byte sectors.
    capacity: U64,
    /// Offset 8, length 4: largest segment (`VIRTIO_BLK_F_SIZE_MAX`).
    size_max: U32,
    /// Offset 12, length 4: most segments per request (`VIRTIO_BLK_F_SEG_MAX`).
    seg_max: U32,
    /// Offset 16, length 2: `geometry.cylinders` (no `VIRTIO_BLK_F_GEOMETRY`: 0).
    cylinders: U16,
    /// Offset 18, length 1: `geometry.heads` (0).
    heads: u8,
    /// Offset 19, length 1: `geometry.sectors` (0).
    sectors: u8,
    /// Offset 20, length 4: block size (`VIRTIO_BLK_F_BLK_SIZE`).
    blk_size: U32,
    /// Offset 24, length 1: `topology.physical_block_exp` (no `VIRTIO_BLK_F_TOPOLOGY`: 0).
    physical_block_exp: u8,
    /// Offset 25, length 1: `topology.alignment_offset` (0).
    alignment_offset: u8,
    /// Offset 26, length 2: `topology.min_io_size` (0).
    min_io_size: U16,
    /// Offset 28, length 4: `topology.opt_io_size` (0).
    opt_io_size: U32,
    /// Offset 32, length 1: `writeback` (no `VIRTIO_BLK_F_CONFIG_WCE`: 0).
    writeback: u8,
    /// Offset 33, length 1: `unused0` (0).
    unused0: u8,
    /// Offset 34, length 2: `num_queues` (only meaningful with `VIRTIO_BLK_F_MQ`, which is not
    /// offered; 1, the one request queue there is).
    num_queues: U16,
    /// Offset 36, length 4: `max_discard_sectors` (`VIRTIO_BLK_F_DISCARD`).
    max_discard_sectors: U32,
    /// Offset 40, length 4: `max_discard_seg`.
    max_discard_seg: U32,
    /// Offset 44, length 4: `discard_sector_alignment`, in sectors.
    discard_sector_alignment: U32,
    /// Offset 48, length 4: `max_write_zeroes_sectors` (`VIRTIO_BLK_F_WRITE_ZEROES`).
    max_write_zeroes_sectors: U32,
    /// Offset 52, length 4: `max_write_zeroes_seg`.
    max_write_zeroes_seg: U32,
    /// Offset 56, length 1: `write_zeroes_may_unmap` (0: write zeroes never deallocates).
    write_zeroes_may_unmap: u8,
    /// Offset 57, length 3: `unused1` (0).
    unused1: [u8; 3],
}
const _: () = {
    assert!(size_of::<VirtioBlkConfig>() == 60);
    assert!(offset_of!(VirtioBlkConfig, size_max) == 8);
    assert!(offset_of!(VirtioBlkConfig, seg_max) == 12);
    assert!(offset_of!(VirtioBlkConfig, cylinders) == 16);
    assert!(offset_of!(VirtioBlkConfig, blk_size) == 20);
    assert!(offset_of!(VirtioBlkConfig, physical_block_exp) == 24);
    assert!(offset_of!(VirtioBlkConfig, opt_io_size) == 28);
    assert!(offset_of!(VirtioBlkConfig, writeback) == 32);
    assert!(offset_of!(VirtioBlkConfig, num_queues) == 34);
    assert!(offset_of!(VirtioBlkConfig, max_discard_sectors) == 36);
    assert!(offset_of!(VirtioBlkConfig, max_discard_seg) == 40);
    assert!(offset_of!(VirtioBlkConfig, discard_sector_alignment) == 44);
    assert!(offset_of!(VirtioBlkConfig, max_write_zeroes_sectors) == 48);
    assert!(offset_of!(VirtioBlkConfig, max_write_zeroes_seg) == 52);
    assert!(offset_of!(VirtioBlkConfig, write_zeroes_may_unmap) == 56);
};

/// Size of the configuration space: through `write_zeroes_may_unmap` and its padding.
pub const CONFIG_SIZE: u32 = 60;
const _: () = assert!(size_of::<VirtioBlkConfig>() == CONFIG_SIZE as usize);

/// The header of `struct virtio_blk_req` (virtio 1.2 §5.2.6), 16 bytes.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct VirtioBlkReqHeader {
    /// Offset 0, length 4: `VIRTIO_BLK_T_*`.
    kind: U32,
    /// Offset 4, length 4: `reserved` (formerly `ioprio`), ignored.
    reserved: U32,
    /// Offset 8, length 8: first sector of a read or write.
    sector: U64,
}
/// Length of the request header.
pub const HEADER_BYTES: u64 = 16;
const _: () = assert!(size_of::<VirtioBlkReqHeader>() as u64 == HEADER_BYTES);

/// `struct virtio_blk_discard_write_zeroes` (virtio 1.2 §5.2.6), 16 bytes.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct VirtioBlkDiscardWriteZeroes {
    /// Offset 0, length 8: first sector.
    sector: U64,
    /// Offset 8, length 4: number of sectors.
    num_sectors: U32,
    /// Offset 12, length 4: bit 0 `unmap`, bits 1..31 reserved.
    flags: U32,
}
/// Length of one discard / write-zeroes segment.
pub const SEGMENT_BYTES: u64 = 16;
const _: () = assert!(size_of::<VirtioBlkDiscardWriteZeroes>() as u64 == SEGMENT_BYTES);

/// A request type as the header names it; unknown values are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestType {
    /// `VIRTIO_BLK_T_IN`.
    In,
    /// `VIRTIO_BLK_T_OUT`.
    Out,
    /// `VIRTIO_BLK_T_FLUSH`.
    Flush,
    /// `VIRTIO_BLK_T_GET_ID`.
    GetId,
    /// `VIRTIO_BLK_T_DISCARD`.
    Discard,
    /// `VIRTIO_BLK_T_WRITE_ZEROES`.
    WriteZeroes,
    /// Anything else (SCSI, GET_LIFETIME, SECURE_ERASE, zoned, …): `VIRTIO_BLK_S_UNSUPP`.
    Unsupported(u32),
}

impl From<u32> for RequestType {
    fn from(kind: u32) -> Self {
        match kind {
            VIRTIO_BLK_T_IN => Self::In,
            VIRTIO_BLK_T_OUT => Self::Out,
            VIRTIO_BLK_T_FLUSH => Self::Flush,
            VIRTIO_BLK_T_GET_ID => Self::GetId,
            VIRTIO_BLK_T_DISCARD => Self::Discard,
            VIRTIO_BLK_T_WRITE_ZEROES => Self::WriteZeroes,
            other => Self::Unsupported(other),
        }
    }
}

/// Why one request failed: logged, and answered with the status byte of
/// [`RequestError::status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Fewer than 16 device-readable bytes: no header.
    #[error("header shorter than 16 bytes ({0} readable)")]
    ShortHeader(u64),
    /// A request type the device does not implement.
    #[error("request type {0} not supported")]
    Unsupported(u32),
    /// DISCARD or WRITE_ZEROES without its feature negotiated.
    #[error("request type {0} without its feature negotiated")]
    NotNegotiated(u32),
    /// Data buffers the request type does not have: readable data for a read or GET_ID,
    /// writable data for a write, discard or write zeroes.
    #[error("request type {0} with data in the wrong direction")]
    WrongDirection(u32),
    /// IN or OUT data that is not whole sectors.
    #[error("data length {0} is not a multiple of 512")]
    Unaligned(u64),
    /// More data than [`MAX_REQUEST_BYTES`].
    #[error("{0} data bytes: more than {MAX_REQUEST_BYTES}")]
    TooLong(u64),
    /// Sectors past the capacity, or a range that wraps 64 bits.
    #[error("sectors {sector}+{count} outside a disk of {capacity}")]
    OutOfRange {
        /// First sector.
        sector: u64,
        /// Number of sectors.
        count: u64,
        /// Capacity in sectors.
        capacity: u64,
    },
    /// A write, discard or write zeroes to a read-only store.
    #[error("write to a read-only disk")]
    ReadOnly,
    /// GET_ID data that is not exactly 20 bytes.
    #[error("GET_ID with {0} data bytes (20 required)")]
    IdLength(u64),
    /// DISCARD / WRITE_ZEROES data that is no segment or not whole segments.
    #[error("{0} segment bytes: not a positive multiple of 16")]
    SegmentLength(u64),
    /// More segments than the device supports.
    #[error("{0} segments: more than {MAX_ZEROES_SEGMENTS}")]
    TooManySegments(u64),
    /// Reserved segment flags, or `unmap` in a discard.
    #[error("segment flags {0:#x} not supported")]
    Flags(u32),
    /// A segment of more sectors than the configuration allows.
    #[error("{0} sectors in one segment: more than {MAX_ZEROES_SECTORS}")]
    TooManySectors(u32),
    /// A data buffer the device could not read or write.
    #[error("driver memory: {0}")]
    Memory(MemError),
    /// The chain ended before the bytes the request needs (a broken invariant, never a
    /// driver's doing: every length is checked first).
    #[error("chain shorter than its lengths")]
    Short,
    /// The store failed.
    #[error("block store: {0}")]
    Store(BlockError),
}

impl RequestError {
    /// The status byte the driver gets for this error.
    pub fn status(&self) -> u8 {
        match self {
            Self::Unsupported(_)
            | Self::NotNegotiated(_)
            | Self::TooManySegments(_)
            | Self::Flags(_) => VIRTIO_BLK_S_UNSUPP,
            _ => VIRTIO_BLK_S_IOERR,
        }
    }
}

/// What serving one request did, whatever its outcome.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    /// Data bytes written into the writable buffers (not counting the status byte).
    written: u32,
    /// Bytes moved or zeroed, for the budget.
    work: u64,
}

/// The virtio-blk device model over block store `B`.
pub struct Blk<B: BlockStore> {
    store: B,
    queue: Option<SplitQueue>,
    /// Features the driver accepted (set at activation).
    features: u64,
    /// Where data passes between driver memory and the store: kept with the device, so that no
    /// request pays for clearing it.
    scratch: [u8; CHUNK],
}

impl<B: BlockStore> Blk<B> {
    /// A reset device over `store`.
    pub fn new(store: B) -> Self {
        Self {
            store,
            queue: None,
            features: 0,
            scratch: [0; CHUNK],
        }
    }

    /// The store.
    pub fn store(&self) -> &B {
        &self.store
    }

    /// The store, mutably.
    pub fn store_mut(&mut self) -> &mut B {
        &mut self.store
    }

    /// The configuration space as the driver reads it now.
    fn config(&self) -> VirtioBlkConfig {
        VirtioBlkConfig {
            capacity: U64::new(self.store.capacity_sectors()),
            size_max: U32::new(SIZE_MAX),
            seg_max: U32::new(SEG_MAX),
            blk_size: U32::new(SECTOR_SIZE),
            num_queues: U16::new(1),
            max_discard_sectors: U32::new(MAX_ZEROES_SECTORS),
            max_discard_seg: U32::new(MAX_ZEROES_SEGMENTS),
            discard_sector_alignment: U32::new(1),
            max_write_zeroes_sectors: U32::new(MAX_ZEROES_SECTORS),
            max_write_zeroes_seg: U32::new(MAX_ZEROES_SEGMENTS),
            ..VirtioBlkConfig::default()
        }
    }

    /// The request queue over `config`, honouring the negotiated ring features.
    fn queue_for(&self, config: QueueConfig) -> Result<SplitQueue, DeviceError> {
        Ok(SplitQueue::with_max(config, QUEUE_MAX_SIZE)?.with_features(self.features))
    }

    /// Serves at most `size` available chains of `queue`, and none once `budget` is spent.
    fn serve(
        &mut self,
        queue: &mut SplitQueue,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
    ) -> Result<bool, DeviceError> {
        queue.serve_chains(mem, budget, |mem, chain| self.complete(mem, chain))
    }

    /// Executes the request in `chain` and writes its status byte; returns the used length
    /// and the work done. An error only when the status byte cannot be written.
    fn complete(
        &mut self,
        mem: &mut dyn SharedMem,
        chain: &DescChain,
    ) -> Result<(u32, u64), DeviceError> {
        let Some(status_at) = chain.writable_len().checked_sub(1) else {
            log::debug!(
                "virtio-blk: chain {} has no device-writable status byte: returned untouched",
                chain.head
            );
            return Ok((0, 0));
        };
        let mut progress = Progress::default();
        let status = match self.execute(mem, chain, status_at, &mut progress) {
            Ok(()) => VIRTIO_BLK_S_OK,
            Err(e) => {
                match e {
                    RequestError::Store(_) => log::warn!("virtio-blk: request failed: {e}"),
                    _ => log::debug!("virtio-blk: request refused: {e}"),
                }
                e.status()
            }
        };
        let mut cursor = Cursor::new(&chain.writable);
        if !cursor.skip(status_at) {
            return Err(DeviceError::Queue);
        }
        cursor.write(mem, &[status]).map_err(|e| match e {
            RequestError::Memory(e) => DeviceError::Memory(e),
            _ => DeviceError::Queue,
        })?;
        // `written` is at most MAX_REQUEST_BYTES (or the 20 ID bytes): no saturation.
        Ok((progress.written.saturating_add(1), progress.work))
    }

    /// Executes one request: header at the start of the readable buffers, data after it (or
    /// the writable buffers up to `status_at`). Records what it wrote in `progress`.
    fn execute(
        &mut self,
        mem: &mut dyn SharedMem,
        chain: &DescChain,
        status_at: u64,
        progress: &mut Progress,
    ) -> Result<(), RequestError> {
        let readable = chain.readable_len();
        let Some(readable_data) = readable.checked_sub(HEADER_BYTES) else {
            return Err(RequestError::ShortHeader(readable));
        };
        let mut input = Cursor::new(&chain.readable);
        let mut raw = [0u8; size_of::<VirtioBlkReqHeader>()];
        input.read(&*mem, &mut raw)?;
        let header = VirtioBlkReqHeader::read_from_bytes(&raw).map_err(|_| RequestError::Short)?;
        let kind = header.kind.get();
        // `status_at` is the length of the writable data before the status byte.
        let writable_data = status_at;
        match RequestType::from(kind) {
            RequestType::In => {
                if readable_data != 0 {
                    return Err(RequestError::WrongDirection(kind));
                }
                let count = self.data_sectors(header.sector.get(), writable_data)?;
                self.read_sectors(mem, chain, header.sector.get(), count, progress)
            }
            RequestType::Out => {
                if writable_data != 0 {
                    return Err(RequestError::WrongDirection(kind));
                }
                let count = self.data_sectors(header.sector.get(), readable_data)?;
                if self.store.read_only() {
                    return Err(RequestError::ReadOnly);
                }
                self.write_sectors(mem, input, header.sector.get(), count, progress)
            }
            RequestType::Flush => self.store.flush().map_err(RequestError::Store),
            RequestType::GetId => {
                if readable_data != 0 {
                    return Err(RequestError::WrongDirection(kind));
                }
                if writable_data != ID_BYTES as u64 {
                    return Err(RequestError::IdLength(writable_data));
                }
                let id = self.store.id();
                Cursor::new(&chain.writable).write(mem, &id)?;
                progress.written = u32::try_from(id.len()).map_err(|_| RequestError::Short)?;
                progress.work = u64::from(progress.written);
                Ok(())
            }
            RequestType::Discard | RequestType::WriteZeroes => {
                self.zeroes(mem, input, kind, readable_data, writable_data, progress)
            }
            RequestType::Unsupported(kind) => Err(RequestError::Unsupported(kind)),
        }
    }

    /// The number of sectors `len` data bytes from `sector` cover, if they are whole sectors,
    /// within [`MAX_REQUEST_BYTES`] and inside the store.
    fn data_sectors(&self, sector: u64, len: u64) -> Result<u64, RequestError> {
        if !len.is_multiple_of(u64::from(SECTOR_SIZE)) {
            return Err(RequestError::Unaligned(len));
        }
        if len > u64::from(MAX_REQUEST_BYTES) {
            return Err(RequestError::TooLong(len));
        }
        let count = len
            .checked_div(u64::from(SECTOR_SIZE))
            .ok_or(RequestError::Short)?;
        self.check_range(sector, count)?;
        Ok(count)
    }

    /// Whether sectors `sector..sector + count` lie inside the store (and do not wrap).
    fn check_range(&self, sector: u64, count: u64) -> Result<(), RequestError> {
        let capacity = self.store.capacity_sectors();
        match sector.checked_add(count) {
            Some(end) if end <= capacity => Ok(()),
            _ => Err(RequestError::OutOfRange {
                sector,
                count,
                capacity,
            }),
        }
    }

    /// IN: `count` sectors from `sector` into the writable buffers, [`CHUNK`] bytes at a time.
    fn read_sectors(
        &mut self,
        mem: &mut dyn SharedMem,
        chain: &DescChain,
        sector: u64,
        count: u64,
        progress: &mut Progress,
    ) -> Result<(), RequestError> {
        let buf = &mut self.scratch;
        let mut output = Cursor::new(&chain.writable);
        for_each_chunk(sector, count, |at, len| {
            let chunk = buf.get_mut(..len).ok_or(RequestError::Short)?;
            self.store.read(at, chunk).map_err(RequestError::Store)?;
            output.write(mem, chunk)?;
            // `len <= CHUNK` and the total is at most MAX_REQUEST_BYTES: no saturation.
            let len = u32::try_from(len).map_err(|_| RequestError::Short)?;
            progress.written = progress.written.saturating_add(len);
            progress.work = progress.work.saturating_add(u64::from(len));
            Ok(())
        })
    }

    /// OUT: `count` sectors at `sector` from the readable buffers after the header (`input`
    /// stands right after it), [`CHUNK`] bytes at a time.
    fn write_sectors(
        &mut self,
        mem: &mut dyn SharedMem,
        mut input: Cursor<'_>,
        sector: u64,
        count: u64,
        progress: &mut Progress,
    ) -> Result<(), RequestError> {
        let buf = &mut self.scratch;
        for_each_chunk(sector, count, |at, len| {
            let chunk = buf.get_mut(..len).ok_or(RequestError::Short)?;
            input.read(&*mem, chunk)?;
            self.store.write(at, chunk).map_err(RequestError::Store)?;
            progress.work = progress.work.saturating_add(len as u64);
            Ok(())
        })
    }

    /// DISCARD or WRITE_ZEROES (`kind`): one segment in the readable data after the header
    /// (`input` stands right after it), no writable data.
    fn zeroes(
        &mut self,
        mem: &mut dyn SharedMem,
        mut input: Cursor<'_>,
        kind: u32,
        readable_data: u64,
        writable_data: u64,
        progress: &mut Progress,
    ) -> Result<(), RequestError> {
        let discard = kind == VIRTIO_BLK_T_DISCARD;
        let feature = if discard {
            VIRTIO_BLK_F_DISCARD
        } else {
            VIRTIO_BLK_F_WRITE_ZEROES
        };
        if self.features & feature == 0 {
            return Err(RequestError::NotNegotiated(kind));
        }
        if writable_data != 0 {
            return Err(RequestError::WrongDirection(kind));
        }
        if readable_data == 0 || !readable_data.is_multiple_of(SEGMENT_BYTES) {
            return Err(RequestError::SegmentLength(readable_data));
        }
        let segments = readable_data / SEGMENT_BYTES;
        if segments > u64::from(MAX_ZEROES_SEGMENTS) {
            return Err(RequestError::TooManySegments(segments));
        }
        let mut raw = [0u8; size_of::<VirtioBlkDiscardWriteZeroes>()];
        input.read(&*mem, &mut raw)?;
        let segment =
            VirtioBlkDiscardWriteZeroes::read_from_bytes(&raw).map_err(|_| RequestError::Short)?;
        let flags = segment.flags.get();
        let allowed = if discard {
            0
        } else {
            VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP
        };
        if flags & !allowed != 0 {
            return Err(RequestError::Flags(flags));
        }
        let num_sectors = segment.num_sectors.get();
        if num_sectors > MAX_ZEROES_SECTORS {
            return Err(RequestError::TooManySectors(num_sectors));
        }
        let (sector, count) = (segment.sector.get(), u64::from(num_sectors));
        self.check_range(sector, count)?;
        if self.store.read_only() {
            return Err(RequestError::ReadOnly);
        }
        // `unmap` in a write zeroes allows deallocation; zeroes are written either way.
        let result = if discard {
            self.store.discard(sector, count)
        } else {
            self.store.write_zeroes(sector, count)
        };
        result.map_err(RequestError::Store)?;
        progress.work = count.saturating_mul(u64::from(SECTOR_SIZE));
        Ok(())
    }
}

/// Calls `f(sector, bytes)` for consecutive pieces of at most [`CHUNK`] bytes (whole sectors)
/// covering `count` sectors from `sector`; stops at the first error.
fn for_each_chunk(
    sector: u64,
    count: u64,
    mut f: impl FnMut(u64, usize) -> Result<(), RequestError>,
) -> Result<(), RequestError> {
    let mut done = 0u64;
    while let Some(left) = count.checked_sub(done).filter(|&left| left > 0) {
        let n = left.min(SECTORS_PER_CHUNK);
        // `n <= per_chunk`, so `n * 512 <= CHUNK`.
        let len = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(SECTOR_SIZE as usize))
            .ok_or(RequestError::Short)?;
        let at = sector.checked_add(done).ok_or(RequestError::Short)?;
        f(at, len)?;
        done = done.saturating_add(n);
    }
    Ok(())
}

/// A position in a list of buffers `(bus address, length)` read or written as one byte
/// stream: a request's header, data and status may each span descriptors.
struct Cursor<'a> {
    rest: core::slice::Iter<'a, (u64, u32)>,
    /// What is left of the current buffer.
    current: (u64, u32),
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buffers`.
    fn new(buffers: &'a [(u64, u32)]) -> Self {
        Self {
            rest: buffers.iter(),
            current: (0, 0),
        }
    }

    /// The next contiguous piece of at most `max` bytes, consumed; `None` at the end.
    fn next_piece(&mut self, max: u64) -> Option<(u64, u32)> {
        while self.current.1 == 0 {
            self.current = *self.rest.next()?;
        }
        let (addr, len) = self.current;
        let n = u32::try_from(max).map_or(len, |max| max.min(len));
        // `n <= len`, and `addr + len` does not wrap (the queue checked every buffer).
        self.current = (addr.checked_add(u64::from(n))?, len.checked_sub(n)?);
        Some((addr, n))
    }

    /// Moves `n` bytes on; false if the buffers end first.
    fn skip(&mut self, mut n: u64) -> bool {
        while n > 0 {
            let Some((_, len)) = self.next_piece(n) else {
                return false;
            };
            n = n.saturating_sub(u64::from(len));
        }
        true
    }

    /// Reads `out.len()` bytes from the stream into `out`.
    fn read(&mut self, mem: &dyn SharedMem, mut out: &mut [u8]) -> Result<(), RequestError> {
        while !out.is_empty() {
            let (addr, n) = self
                .next_piece(out.len() as u64)
                .ok_or(RequestError::Short)?;
            let n = usize::try_from(n).map_err(|_| RequestError::Short)?;
            let (piece, rest) = out.split_at_mut_checked(n).ok_or(RequestError::Short)?;
            mem.read(addr, piece).map_err(RequestError::Memory)?;
            out = rest;
        }
        Ok(())
    }

    /// Writes `data` into the stream.
    fn write(&mut self, mem: &mut dyn SharedMem, mut data: &[u8]) -> Result<(), RequestError> {
        while !data.is_empty() {
            let (addr, n) = self
                .next_piece(data.len() as u64)
                .ok_or(RequestError::Short)?;
            let n = usize::try_from(n).map_err(|_| RequestError::Short)?;
            let (piece, rest) = data.split_at_checked(n).ok_or(RequestError::Short)?;
            mem.write(addr, piece).map_err(RequestError::Memory)?;
            data = rest;
        }
        Ok(())
    }
}

impl<B: BlockStore> VirtioDevice for Blk<B> {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        if self.store.read_only() {
            FEATURES | VIRTIO_BLK_F_RO
        } else {
            FEATURES
        }
    }

    fn config_size(&self) -> u32 {
        CONFIG_SIZE
    }

    fn read_config(&self, offset: u32, buf: &mut [u8]) {
        let config = self.config();
        let bytes = usize::try_from(offset)
            .ok()
            .and_then(|start| Some(start..start.checked_add(buf.len())?))
            .and_then(|range| config.as_bytes().get(range));
        match bytes {
            Some(bytes) => {
                // Never refused: `bytes` is `buf.len()` long.
                let _ = bytes.write_to(buf);
            }
            // The engine keeps reads inside `config_size`; zeroes otherwise.
            None => buf.fill(0),
        }
    }

    fn num_queues(&self) -> u32 {
        1
    }

    fn queue_max_size(&self, index: u32) -> u16 {
        if index == 0 { QUEUE_MAX_SIZE } else { 0 }
    }

    fn activate(
        &mut self,
        features: u64,
        queues: &[Option<QueueConfig>],
    ) -> Result<(), DeviceError> {
        self.features = features;
        self.queue = match queues.first().copied().flatten() {
            Some(config) => Some(self.queue_for(config)?),
            None => None,
        };
        Ok(())
    }

    fn activate_queue(&mut self, index: u32, config: QueueConfig) -> Result<(), DeviceError> {
        if index != 0 {
            return Err(DeviceError::Queue);
        }
        self.queue = Some(self.queue_for(config)?);
        Ok(())
    }

    fn reset(&mut self) {
        // The disk keeps its content across a device reset, as a disk does.
        self.queue = None;
        self.features = 0;
    }

    fn reset_queue(&mut self, index: u32) {
        if index == 0 {
            self.queue = None;
        }
    }

    fn notify(
        &mut self,
        index: u32,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
    ) -> Result<bool, DeviceError> {
        if index != 0 {
            return Ok(false);
        }
        // Take the queue out while serving so `self.store` can be borrowed alongside it.
        let Some(mut queue) = self.queue.take() else {
            return Ok(false);
        };
        let result = self.serve(&mut queue, mem, budget);
        self.queue = Some(queue);
        result
    }
}

#[cfg(test)]
mod tests;
