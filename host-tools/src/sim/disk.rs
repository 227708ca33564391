//! A host file as the block store of the simulated partition ([`FileStore`]), and the
//! [`DiskProvider`] that gives it to one endpoint ([`HostDisk`]): what `vmsg --disk PATH` uses.
//!
//! # Whose disk it is
//!
//! A VM's disk must never be another VM's. The RAM disk of each endpoint is born and dies with
//! it; a file outlives both, so it is handed out **once**: to the endpoint named when the
//! world starts, when that endpoint is admitted. Every other endpoint gets its RAM disk as
//! usual, and so does the named one if it is admitted again (after VM-destroyed, or after its
//! idle slot went to another endpoint): an FF-A VM id may be reused by another VM, so the id
//! alone does not prove it is the same VM. The file is closed when the device that holds it
//! is dropped. One file, one endpoint, one admission; a second file for a second endpoint
//! would be a second [`HostDisk`].

use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use sp::{
    devices::blk::{Blk, BlockError, BlockStore, ID_BYTES, SECTOR_SIZE},
    registry::DiskProvider,
};
use virtio_msg::device::VirtioDevice;

/// Bytes of zeroes one write of [`BlockStore::write_zeroes`] moves.
const ZEROES: usize = 64 * 1024;

/// Why a file cannot be a disk.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// Opening the file or reading its length failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// Not a regular file (a directory, a device node: no length to size the disk by).
    #[error("{}: not a regular file", .0.display())]
    NotAFile(PathBuf),
    /// A length that is not a positive whole number of 512-byte sectors.
    #[error(
        "{}: {len} bytes is not a positive whole number of 512-byte sectors \
         (make one with e.g. `truncate -s 64M {}`)",
        path.display(),
        path.display()
    )]
    NotSectors {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
}

/// A disk in a host file: its length (a positive whole number of 512-byte sectors, fixed when
/// it is opened) is the capacity. Reads and writes go to the file at `sector * 512`; FLUSH is
/// `sync_data`; WRITE_ZEROES writes zeroes; DISCARD keeps the sectors as they are (the trait
/// allows it, and a file has no portable way to punch holes). Read-only if opened so: every
/// write, discard and write zeroes is refused and the device offers `VIRTIO_BLK_F_RO`. Every
/// failure — a range outside the disk, the file shorter than it was, an I/O error — is a
/// [`BlockError`] (the device's IOERR), logged with its detail, never a panic.
#[derive(Debug)]
pub struct FileStore {
    file: File,
    sectors: u64,
    read_only: bool,
    id: [u8; ID_BYTES],
}

impl FileStore {
    /// Opens `path` as a disk, read-only or for reading and writing; the GET_ID string is
    /// `vmsg-file`.
    pub fn open(path: &Path, read_only: bool) -> Result<Self, DiskError> {
        let io = |source| DiskError::Io {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(DiskError::NotAFile(path.to_owned()));
        }
        let len = meta.len();
        if len == 0 || !len.is_multiple_of(u64::from(SECTOR_SIZE)) {
            return Err(DiskError::NotSectors {
                path: path.to_owned(),
                len,
            });
        }
        Ok(Self {
            file,
            sectors: len / u64::from(SECTOR_SIZE),
            read_only,
            id: id(b"vmsg-file"),
        })
    }

    /// The same store with GET_ID string `id` (at most 20 bytes are kept).
    pub fn with_id(mut self, id_string: &[u8]) -> Self {
        self.id = id(id_string);
        self
    }

    /// The byte offset of `len` bytes (whole sectors) from `sector`, if inside the disk.
    fn offset(&self, sector: u64, len: u64) -> Result<u64, BlockError> {
        let sector_size = u64::from(SECTOR_SIZE);
        if !len.is_multiple_of(sector_size) {
            return Err(BlockError::OutOfRange);
        }
        let end = sector
            .checked_add(len / sector_size)
            .ok_or(BlockError::OutOfRange)?;
        if end > self.sectors {
            return Err(BlockError::OutOfRange);
        }
        sector
            .checked_mul(sector_size)
            .ok_or(BlockError::OutOfRange)
    }

    /// The byte offset of `count` sectors from `sector` on a writable disk.
    fn writable(&self, sector: u64, count: u64) -> Result<u64, BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let len = count
            .checked_mul(u64::from(SECTOR_SIZE))
            .ok_or(BlockError::OutOfRange)?;
        self.offset(sector, len)
    }

    /// Writes `data` at byte `at`.
    fn put(&mut self, at: u64, data: &[u8]) -> Result<(), BlockError> {
        self.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.file.write_all(data))
            .map_err(|e| io_error("write", at, &e))
    }
}

/// `bytes` as a NUL-padded GET_ID string.
fn id(bytes: &[u8]) -> [u8; ID_BYTES] {
    let mut id = [0u8; ID_BYTES];
    for (slot, &byte) in id.iter_mut().zip(bytes) {
        *slot = byte;
    }
    id
}

/// Logs an I/O failure in detail; the driver gets only IOERR.
fn io_error(op: &str, at: u64, e: &io::Error) -> BlockError {
    log::warn!("host disk: {op} at byte {at}: {e}");
    BlockError::Io
}

/// A byte count as a `u64` (a `usize` always fits on the hosts this builds for).
fn len64(len: usize) -> Result<u64, BlockError> {
    u64::try_from(len).map_err(|_| BlockError::OutOfRange)
}

impl BlockStore for FileStore {
    fn capacity_sectors(&self) -> u64 {
        self.sectors
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn id(&self) -> [u8; ID_BYTES] {
        self.id
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let at = self.offset(sector, len64(buf.len())?)?;
        self.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.file.read_exact(buf))
            .map_err(|e| io_error("read", at, &e))
    }

    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let at = self.offset(sector, len64(data.len())?)?;
        self.put(at, data)
    }

    /// `sync_data`: every completed write is on the medium. A read-only disk wrote nothing.
    fn flush(&mut self) -> Result<(), BlockError> {
        if self.read_only {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| io_error("flush", 0, &e))
    }

    /// Checked like a write; the sectors keep their content (allowed: it is undefined after
    /// a discard).
    fn discard(&mut self, sector: u64, count: u64) -> Result<(), BlockError> {
        self.writable(sector, count).map(drop)
    }

    fn write_zeroes(&mut self, sector: u64, count: u64) -> Result<(), BlockError> {
        let mut at = self.writable(sector, count)?;
        let mut left = count
            .checked_mul(u64::from(SECTOR_SIZE))
            .ok_or(BlockError::OutOfRange)?;
        let zeroes = vec![0u8; ZEROES];
        while left > 0 {
            let n = left.min(len64(ZEROES)?);
            let piece = usize::try_from(n)
                .ok()
                .and_then(|n| zeroes.get(..n))
                .ok_or(BlockError::OutOfRange)?;
            self.put(at, piece)?;
            at = at.saturating_add(n);
            left -= n;
        }
        Ok(())
    }
}

/// Gives one endpoint, once, a virtio-blk device over a [`FileStore`] (see the
/// [module docs](self) for why once).
pub struct HostDisk {
    vm: u16,
    store: Option<FileStore>,
}

impl HostDisk {
    /// `store` for endpoint `vm`, at its first admission; its GET_ID string becomes
    /// `vmsg-file-` and the endpoint id in hex.
    pub fn new(vm: u16, store: FileStore) -> Self {
        let name = format!("vmsg-file-{vm:04x}");
        Self {
            vm,
            store: Some(store.with_id(name.as_bytes())),
        }
    }

    /// Whether the store is still to be handed out.
    pub fn pending(&self) -> bool {
        self.store.is_some()
    }
}

impl DiskProvider for HostDisk {
    fn blk(&mut self, vm: u16) -> Option<Box<dyn VirtioDevice + Send>> {
        if vm != self.vm {
            return None;
        }
        let store = self.store.take()?;
        log::info!(
            "endpoint {vm:#x}: virtio-blk over the host file ({} sectors{})",
            store.sectors,
            if store.read_only { ", read-only" } else { "" }
        );
        Some(Box::new(Blk::new(store)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A file of `len` bytes (filled with `fill`) in the temporary directory, removed when
    /// dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(len: usize, fill: u8) -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                "vmsg-disk-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let path = std::env::temp_dir().join(name);
            std::fs::write(&path, vec![fill; len]).unwrap();
            Self(path)
        }

        fn bytes(&self) -> Vec<u8> {
            std::fs::read(&self.0).unwrap()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn reads_and_writes_land_in_the_file() {
        let file = TempFile::new(16 * 512, 0xee);
        let mut store = FileStore::open(&file.0, false).unwrap();
        assert_eq!(store.capacity_sectors(), 16);
        assert!(!store.read_only());
        assert_eq!(&store.id(), b"vmsg-file\0\0\0\0\0\0\0\0\0\0\0");
        let mut sector = [0u8; 512];
        store.read(3, &mut sector).unwrap();
        assert!(sector.iter().all(|&b| b == 0xee));
        let data: Vec<u8> = (0..1024u16)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        store.write(14, &data).unwrap();
        store.flush().unwrap();
        let on_disk = file.bytes();
        assert_eq!(on_disk.len(), 16 * 512, "the file keeps its size");
        assert_eq!(&on_disk[14 * 512..], &data[..]);
        assert!(on_disk[..14 * 512].iter().all(|&b| b == 0xee));
        let mut back = vec![0u8; 1024];
        store.read(14, &mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn ranges_outside_the_disk_are_refused_and_nothing_is_touched() {
        let file = TempFile::new(8 * 512, 0x11);
        let mut store = FileStore::open(&file.0, false).unwrap();
        let mut buf = [0u8; 1024];
        for (sector, len) in [(8, 512), (7, 1024), (u64::MAX, 512), (0, 100), (0, 513)] {
            assert_eq!(
                store.read(sector, &mut buf[..len]),
                Err(BlockError::OutOfRange)
            );
            assert_eq!(
                store.write(sector, &buf[..len]),
                Err(BlockError::OutOfRange)
            );
        }
        for (sector, count) in [(8, 1), (7, 2), (u64::MAX, 1), (1, u64::MAX)] {
            assert_eq!(store.discard(sector, count), Err(BlockError::OutOfRange));
            assert_eq!(
                store.write_zeroes(sector, count),
                Err(BlockError::OutOfRange)
            );
        }
        assert!(file.bytes().iter().all(|&b| b == 0x11));
        assert_eq!(file.bytes().len(), 8 * 512, "nothing written past the end");
    }

    #[test]
    fn write_zeroes_zeroes_and_discard_keeps() {
        let file = TempFile::new(300 * 512, 0x5a);
        let mut store = FileStore::open(&file.0, false).unwrap();
        // More than one 64 KiB piece of zeroes.
        store.write_zeroes(10, 200).unwrap();
        store.discard(250, 10).unwrap();
        let bytes = file.bytes();
        assert!(bytes[..10 * 512].iter().all(|&b| b == 0x5a));
        assert!(bytes[10 * 512..210 * 512].iter().all(|&b| b == 0));
        assert!(bytes[210 * 512..].iter().all(|&b| b == 0x5a));
        store.write_zeroes(0, 0).unwrap();
    }

    #[test]
    fn a_read_only_disk_refuses_every_write() {
        let file = TempFile::new(4 * 512, 0x77);
        let mut store = FileStore::open(&file.0, true).unwrap();
        assert!(store.read_only());
        assert_eq!(store.write(0, &[0u8; 512]), Err(BlockError::ReadOnly));
        assert_eq!(store.discard(0, 1), Err(BlockError::ReadOnly));
        assert_eq!(store.write_zeroes(0, 1), Err(BlockError::ReadOnly));
        store.flush().unwrap();
        let mut sector = [0u8; 512];
        store.read(3, &mut sector).unwrap();
        assert!(sector.iter().all(|&b| b == 0x77));
        assert!(file.bytes().iter().all(|&b| b == 0x77));
    }

    #[test]
    fn files_that_are_no_disk_are_refused_clearly() {
        for len in [0, 1000, 512 * 3 + 1] {
            let file = TempFile::new(len, 0);
            let err = FileStore::open(&file.0, false).unwrap_err();
            assert!(matches!(err, DiskError::NotSectors { len: l, .. } if l == len as u64));
            assert!(err.to_string().contains("512-byte sectors"), "{err}");
        }
        let missing = std::env::temp_dir().join("vmsg-disk-test-no-such-file");
        let err = FileStore::open(&missing, false).unwrap_err();
        assert!(matches!(err, DiskError::Io { .. }), "{err}");
        assert!(
            err.to_string().contains("vmsg-disk-test-no-such-file"),
            "{err}"
        );
        let err = FileStore::open(&std::env::temp_dir(), true).unwrap_err();
        assert!(matches!(err, DiskError::NotAFile(_)), "{err}");
    }

    #[test]
    fn a_file_that_shrank_is_an_io_error_not_a_panic() {
        let file = TempFile::new(8 * 512, 0x33);
        let mut store = FileStore::open(&file.0, false).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file.0)
            .unwrap()
            .set_len(512)
            .unwrap();
        let mut sector = [0u8; 512];
        assert_eq!(store.read(4, &mut sector), Err(BlockError::Io));
        store.read(0, &mut sector).unwrap();
    }

    #[test]
    fn the_file_goes_to_its_endpoint_once() {
        let file = TempFile::new(4 * 512, 0);
        let mut disk = HostDisk::new(7, FileStore::open(&file.0, false).unwrap());
        assert!(disk.blk(1).is_none(), "another endpoint never gets it");
        assert!(disk.pending());
        let device = disk.blk(7).unwrap();
        assert_eq!(device.device_id(), sp::devices::blk::DEVICE_ID);
        let mut capacity = [0u8; 8];
        device.read_config(0, &mut capacity);
        assert_eq!(u64::from_le_bytes(capacity), 4);
        assert!(!disk.pending());
        assert!(disk.blk(7).is_none(), "nor the same id admitted again");
    }
}
