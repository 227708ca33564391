//! Tests of the virtio-blk model against a hand-written driver in a `VecMem`.

use virtio_msg::{
    SharedMem,
    device::{
        Budget, DeviceError, QueueConfig, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_EVENT_IDX,
        VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1, VirtioDevice,
    },
    mem::VecMem,
};

use super::{ram::RamStore, *};
use crate::virtqueue::{VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};

const BASE: u64 = 2 << 48;
const DESC: u64 = BASE;
const AVAIL: u64 = BASE + 0x1000;
const USED: u64 = BASE + 0x2000;
/// Indirect tables: 256 bytes (16 entries, the queue size) for each head.
const TABLES: u64 = BASE + 0x3000;
/// Request headers and segments.
const HDR: u64 = BASE + 0x4000;
/// Status bytes.
const STATUS: u64 = BASE + 0x5000;
/// Data buffers.
const DATA: u64 = BASE + 0x8000;
const MEM_LEN: usize = 0x40000;
const GUARD: u8 = 0xee;
const QSIZE: u16 = 16;
/// Sectors of the test disk (32 KiB).
const SECTORS: u64 = 64;
const ID: [u8; 20] = *b"test-disk\0\0\0\0\0\0\0\0\0\0\0";
/// Every feature a writable device offers.
const ALL: u64 = VIRTIO_F_VERSION_1
    | VIRTIO_F_ACCESS_PLATFORM
    | VIRTIO_BLK_F_SIZE_MAX
    | VIRTIO_BLK_F_SEG_MAX
    | VIRTIO_BLK_F_BLK_SIZE
    | VIRTIO_BLK_F_FLUSH
    | VIRTIO_BLK_F_DISCARD
    | VIRTIO_BLK_F_WRITE_ZEROES;
/// The ring features every device offers besides: the tests above negotiate them only where
/// they say so.
const RING: u64 = VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX;

/// `u as T`, checked.
fn cast<T: TryFrom<U>, U>(u: U) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(u).unwrap()
}

fn config(size: u16) -> QueueConfig {
    QueueConfig {
        size,
        desc_addr: DESC,
        driver_addr: AVAIL,
        device_addr: USED,
    }
}

/// A disk whose sector `s` is full of the byte `s + 1`.
fn disk() -> RamStore {
    let mut store = RamStore::new(cast::<usize, _>(SECTORS) * 512, ID).unwrap();
    for (i, sector) in store.bytes_mut().chunks_mut(512).enumerate() {
        sector.fill(cast::<u8, _>(i) + 1);
    }
    store
}

/// A buffer of a chain: (address, length, device-writable).
type Buf = (u64, u32, bool);

fn r(addr: u64, len: u32) -> Buf {
    (addr, len, false)
}

fn w(addr: u64, len: u32) -> Buf {
    (addr, len, true)
}

/// The driver side: puts chains in the descriptor table and the available ring, reads the
/// used ring. With `VIRTIO_F_INDIRECT_DESC` among its features each chain is one indirect
/// descriptor naming a table of its buffers; with `VIRTIO_F_EVENT_IDX` it asks for a
/// notification of the next used entry each time it consumes one, as Linux does.
struct Rig<B: BlockStore> {
    mem: VecMem,
    blk: Blk<B>,
    next_desc: u16,
    avail: u16,
    /// Used entries consumed so far.
    used: u16,
    /// The ring features negotiated.
    ring: u64,
}

impl<B: BlockStore> Rig<B> {
    /// Memory full of guard bytes past the rings, and an active device with all `features`.
    fn with(store: B, features: u64) -> Self {
        let mut mem = VecMem::new(BASE, MEM_LEN);
        mem.bytes[0x4000..].fill(GUARD);
        let mut blk = Blk::new(store);
        blk.activate(features, &[Some(config(QSIZE))]).unwrap();
        Self {
            mem,
            blk,
            next_desc: 0,
            avail: 0,
            used: 0,
            ring: features & RING,
        }
    }

    /// Resets the device and the rings, and starts the device again (DRIVER_OK) with the
    /// same features.
    fn restart(&mut self) {
        self.blk.reset();
        self.mem.bytes[0x1000..0x3000].fill(0);
        (self.next_desc, self.avail, self.used) = (0, 0, 0);
        let features = ALL | self.ring;
        self.blk.activate(features, &[Some(config(QSIZE))]).unwrap();
    }

    /// Writes a descriptor at bus address `at`.
    fn desc(&mut self, at: u64, addr: u64, len: u32, flags: u16, next: u16) {
        let mut raw = [0u8; 16];
        raw[0..8].copy_from_slice(&addr.to_le_bytes());
        raw[8..12].copy_from_slice(&len.to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..16].copy_from_slice(&next.to_le_bytes());
        self.mem.write(at, &raw).unwrap();
    }

    /// Makes the chain `bufs` available; returns its head.
    fn submit(&mut self, bufs: &[Buf]) -> u16 {
        if self.ring & VIRTIO_F_INDIRECT_DESC != 0 {
            return self.submit_indirect(bufs, 0);
        }
        let head = self.next_desc;
        for (k, &(addr, len, writable)) in bufs.iter().enumerate() {
            let i = (head + cast::<u16, _>(k)) % QSIZE;
            let mut flags = if writable { VIRTQ_DESC_F_WRITE } else { 0 };
            if k + 1 < bufs.len() {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            let mut raw = [0u8; 16];
            raw[0..8].copy_from_slice(&addr.to_le_bytes());
            raw[8..12].copy_from_slice(&len.to_le_bytes());
            raw[12..14].copy_from_slice(&flags.to_le_bytes());
            raw[14..16].copy_from_slice(&((i + 1) % QSIZE).to_le_bytes());
            self.mem.write(DESC + 16 * u64::from(i), &raw).unwrap();
        }
        self.next_desc = (head + cast::<u16, _>(bufs.len())) % QSIZE;
        self.make_available(head)
    }

    /// Makes the chain `bufs` available as one descriptor naming an indirect table of them
    /// (entries in order, `extra` flags on the last); returns its head.
    fn submit_indirect(&mut self, bufs: &[Buf], extra: u16) -> u16 {
        let head = self.next_desc;
        let table = TABLES + 256 * u64::from(head);
        for (k, &(addr, len, writable)) in bufs.iter().enumerate() {
            let mut flags = if writable { VIRTQ_DESC_F_WRITE } else { 0 };
            if k + 1 < bufs.len() {
                flags |= VIRTQ_DESC_F_NEXT;
            } else {
                flags |= extra;
            }
            self.desc(table + 16 * k as u64, addr, len, flags, cast(k + 1));
        }
        let len = cast(16 * bufs.len());
        self.desc(
            DESC + 16 * u64::from(head),
            table,
            len,
            VIRTQ_DESC_F_INDIRECT,
            0,
        );
        self.next_desc = (head + 1) % QSIZE;
        self.make_available(head)
    }

    /// Puts `head` in the available ring and publishes it.
    fn make_available(&mut self, head: u16) -> u16 {
        self.mem
            .write(
                AVAIL + 4 + 2 * u64::from(self.avail % QSIZE),
                &head.to_le_bytes(),
            )
            .unwrap();
        self.avail = self.avail.wrapping_add(1);
        self.mem
            .write(AVAIL + 2, &self.avail.to_le_bytes())
            .unwrap();
        head
    }

    fn notify(&mut self, budget: &mut Budget) -> Result<bool, DeviceError> {
        self.blk.notify(0, &mut self.mem, budget)
    }

    fn used_idx(&self) -> u16 {
        let mut b = [0; 2];
        self.mem.read(USED + 2, &mut b).unwrap();
        u16::from_le_bytes(b)
    }

    /// The next used entry: (head, length).
    fn next_used(&mut self) -> (u16, u32) {
        assert_ne!(self.used, self.used_idx(), "no used entry pending");
        let mut b = [0; 8];
        self.mem
            .read(USED + 4 + 8 * u64::from(self.used % QSIZE), &mut b)
            .unwrap();
        self.used = self.used.wrapping_add(1);
        if self.ring & VIRTIO_F_EVENT_IDX != 0 {
            // used_event: notify me when you return the entry after this one.
            self.mem
                .write(AVAIL + 4 + 2 * u64::from(QSIZE), &self.used.to_le_bytes())
                .unwrap();
        }
        (
            cast(u32::from_le_bytes(b[..4].try_into().unwrap())),
            u32::from_le_bytes(b[4..].try_into().unwrap()),
        )
    }

    /// Submits `bufs`, serves it with an unlimited budget, and returns its used length.
    fn run(&mut self, bufs: &[Buf]) -> u32 {
        let head = self.submit(bufs);
        assert_eq!(self.notify(&mut Budget::unlimited()), Ok(true));
        let (id, len) = self.next_used();
        assert_eq!(id, head);
        assert_eq!(self.used, self.used_idx(), "one chain, one used entry");
        len
    }

    fn put(&mut self, addr: u64, data: &[u8]) {
        self.mem.write(addr, data).unwrap();
    }

    fn bytes(&self, addr: u64, len: usize) -> &[u8] {
        let start = usize::try_from(addr - BASE).unwrap();
        &self.mem.bytes[start..start + len]
    }

    fn status(&self) -> u8 {
        self.bytes(STATUS, 1)[0]
    }

    /// Writes a request header at `HDR`.
    fn header(&mut self, kind: u32, sector: u64) {
        let mut raw = [0u8; 16];
        raw[0..4].copy_from_slice(&kind.to_le_bytes());
        raw[4..8].copy_from_slice(&0xdead_beefu32.to_le_bytes()); // reserved: ignored
        raw[8..16].copy_from_slice(&sector.to_le_bytes());
        self.put(HDR, &raw);
    }

    /// Writes a discard / write-zeroes segment right after the header.
    fn segment(&mut self, sector: u64, num_sectors: u32, flags: u32) {
        let mut raw = [0u8; 16];
        raw[0..8].copy_from_slice(&sector.to_le_bytes());
        raw[8..12].copy_from_slice(&num_sectors.to_le_bytes());
        raw[12..16].copy_from_slice(&flags.to_le_bytes());
        self.put(HDR + 16, &raw);
    }

    /// IN of `len` bytes from `sector` in one data buffer: (status, used length).
    fn read(&mut self, sector: u64, len: u32) -> (u8, u32) {
        self.header(VIRTIO_BLK_T_IN, sector);
        let used = self.run(&[r(HDR, 16), w(DATA, len), w(STATUS, 1)]);
        (self.status(), used)
    }

    /// OUT of `data` at `sector` in one data buffer: (status, used length).
    fn write(&mut self, sector: u64, data: &[u8]) -> (u8, u32) {
        self.header(VIRTIO_BLK_T_OUT, sector);
        self.put(DATA, data);
        let used = self.run(&[r(HDR, 16), r(DATA, cast(data.len())), w(STATUS, 1)]);
        (self.status(), used)
    }

    /// A header-and-status-only request of `kind`: (status, used length).
    fn bare(&mut self, kind: u32) -> (u8, u32) {
        self.header(kind, 0);
        let used = self.run(&[r(HDR, 16), w(STATUS, 1)]);
        (self.status(), used)
    }

    /// DISCARD or WRITE_ZEROES of one segment: (status, used length).
    fn zeroes(&mut self, kind: u32, sector: u64, num_sectors: u32, flags: u32) -> (u8, u32) {
        self.header(kind, 0);
        self.segment(sector, num_sectors, flags);
        let used = self.run(&[r(HDR, 32), w(STATUS, 1)]);
        (self.status(), used)
    }

    /// A good read after a refused request: the device goes on serving.
    fn still_serves(&mut self) {
        assert_eq!(self.read(5, 512), (VIRTIO_BLK_S_OK, 513));
        assert!(self.bytes(DATA, 512).iter().all(|&b| b == 6));
    }
}

fn rig() -> Rig<RamStore> {
    Rig::with(disk(), ALL)
}

/// The disk's content in sectors `from..from + count`.
fn sectors(store: &RamStore, from: u64, count: u64) -> &[u8] {
    &store.bytes()[cast::<usize, _>(from) * 512..cast::<usize, _>(from + count) * 512]
}

/// A store for the paths a RAM disk does not take: a capacity as large as asked without the
/// memory (reads give zeroes), failures on demand, and the trait's default discard and
/// write zeroes.
#[derive(Default)]
struct FakeStore {
    capacity: u64,
    read_only: bool,
    fail: bool,
    /// Every write: (sector, length, all zero).
    writes: Vec<(u64, usize, bool)>,
    flushes: usize,
}

impl BlockStore for FakeStore {
    fn capacity_sectors(&self) -> u64 {
        self.capacity
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn id(&self) -> [u8; ID_BYTES] {
        *b"fake-store-id-twenty"
    }
    fn read(&mut self, _sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        if self.fail {
            return Err(BlockError::Io);
        }
        buf.fill(0);
        Ok(())
    }
    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), BlockError> {
        if self.fail {
            return Err(BlockError::Io);
        }
        self.writes
            .push((sector, data.len(), data.iter().all(|&b| b == 0)));
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        if self.fail {
            return Err(BlockError::Io);
        }
        self.flushes += 1;
        Ok(())
    }
}

#[test]
fn identity() {
    let blk = Blk::new(disk());
    assert_eq!(blk.device_id(), 2);
    assert_eq!(blk.features(), ALL | RING);
    assert_eq!(blk.features() & VIRTIO_BLK_F_RO, 0);
    assert_eq!(blk.config_size(), 60);
    assert_eq!(blk.num_queues(), 1);
    assert_eq!(blk.queue_max_size(0), 128);
    assert_eq!(blk.queue_max_size(1), 0);
    let ro = Blk::new(disk().with_read_only(true));
    assert_eq!(ro.features(), ALL | RING | VIRTIO_BLK_F_RO);
    // The feature bits by number, as virtio 1.2 §5.2.3 numbers them.
    for bit in [1, 2, 6, 9, 13, 14, 28, 29, 32, 33] {
        assert_ne!(blk.features() & (1 << bit), 0, "bit {bit}");
    }
    assert_eq!(ro.features() & (1 << 5), 1 << 5);
}

#[test]
fn configuration_layout() {
    let blk = Blk::new(disk());
    let mut c = [0xffu8; 60];
    blk.read_config(0, &mut c);
    let le32 = |o: usize| u32::from_le_bytes(c[o..o + 4].try_into().unwrap());
    assert_eq!(u64::from_le_bytes(c[0..8].try_into().unwrap()), SECTORS);
    assert_eq!(le32(8), SIZE_MAX, "size_max");
    assert_eq!(le32(8), 64 * 1024);
    assert_eq!(le32(12), SEG_MAX, "seg_max");
    assert_eq!(le32(16), 0, "geometry");
    assert_eq!(le32(20), 512, "blk_size");
    assert_eq!(&c[24..32], &[0; 8], "topology");
    assert_eq!(c[32], 0, "writeback");
    assert_eq!(c[33], 0, "unused0");
    assert_eq!(u16::from_le_bytes([c[34], c[35]]), 1, "num_queues");
    assert_eq!(le32(36), MAX_ZEROES_SECTORS, "max_discard_sectors");
    assert_eq!(le32(40), 1, "max_discard_seg");
    assert_eq!(le32(44), 1, "discard_sector_alignment");
    assert_eq!(le32(48), MAX_ZEROES_SECTORS, "max_write_zeroes_sectors");
    assert_eq!(le32(52), 1, "max_write_zeroes_seg");
    assert_eq!(&c[56..60], &[0; 4], "write_zeroes_may_unmap, unused1");
    assert_eq!(MAX_ZEROES_SECTORS, 2048);
    assert_eq!(MAX_REQUEST_BYTES, SEG_MAX * SIZE_MAX);

    // Partial reads at any offset see the same bytes.
    for offset in 0..60u32 {
        for len in 1..=(60 - offset).min(8) {
            let mut part = vec![0xffu8; len as usize];
            blk.read_config(offset, &mut part);
            assert_eq!(part, c[offset as usize..(offset + len) as usize]);
        }
    }
    // Outside the space (the engine never asks): zeroes, no panic.
    let mut out = [0xffu8; 4];
    blk.read_config(58, &mut out);
    assert_eq!(out, [0; 4]);
    blk.read_config(u32::MAX, &mut out);
    assert_eq!(out, [0; 4]);
    // The capacity is the store's.
    let big = Blk::new(FakeStore {
        capacity: 0x1234_5678_9abc,
        ..FakeStore::default()
    });
    let mut cap = [0u8; 8];
    big.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 0x1234_5678_9abc);
}

#[test]
fn activate_refuses_oversized_queue() {
    let mut blk = Blk::new(disk());
    assert_eq!(
        blk.activate(ALL, &[Some(config(256))]),
        Err(DeviceError::Queue)
    );
    assert_eq!(blk.activate_queue(0, config(3)), Err(DeviceError::Queue));
    assert_eq!(blk.activate_queue(1, config(8)), Err(DeviceError::Queue));
    assert_eq!(blk.activate_queue(0, config(128)), Ok(()));
}

#[test]
fn nothing_pending_or_no_queue_is_false() {
    let mut rig = rig();
    assert_eq!(rig.notify(&mut Budget::unlimited()), Ok(false));
    assert_eq!(
        rig.blk.notify(1, &mut rig.mem, &mut Budget::unlimited()),
        Ok(false)
    );
    let mut idle = Blk::new(disk());
    idle.activate(ALL, &[None]).unwrap();
    assert_eq!(
        idle.notify(0, &mut rig.mem, &mut Budget::unlimited()),
        Ok(false)
    );
}

#[test]
fn write_then_read_round_trip() {
    let mut rig = rig();
    let data: Vec<u8> = (0..1024u32)
        .map(|i| cast::<u8, _>((i * 7 + 3) % 256))
        .collect();
    assert_eq!(rig.write(3, &data), (VIRTIO_BLK_S_OK, 1));
    assert_eq!(sectors(rig.blk.store(), 3, 2), &data[..]);
    // The neighbours are untouched.
    assert!(sectors(rig.blk.store(), 2, 1).iter().all(|&b| b == 3));
    assert!(sectors(rig.blk.store(), 5, 1).iter().all(|&b| b == 6));

    rig.mem.bytes[0x8000..].fill(GUARD);
    assert_eq!(rig.read(3, 1024), (VIRTIO_BLK_S_OK, 1025));
    assert_eq!(rig.bytes(DATA, 1024), &data[..]);
    assert!(rig.bytes(DATA + 1024, 0x100).iter().all(|&b| b == GUARD));
    // A read of the whole disk, last sector included.
    assert_eq!(
        rig.read(0, cast::<u32, _>(SECTORS) * 512),
        (VIRTIO_BLK_S_OK, 32 * 1024 + 1)
    );
    assert_eq!(rig.bytes(DATA, 32 * 1024), rig.blk.store().bytes());
    // A zero-length read is a read of nothing.
    assert_eq!(rig.read(SECTORS, 0), (VIRTIO_BLK_S_OK, 1));
}

#[test]
fn header_and_data_may_span_descriptors() {
    let mut rig = rig();
    // Header in two pieces (5 + 11 bytes, the second elsewhere), data in three odd pieces
    // crossing sector and chunk boundaries, status alone.
    let data: Vec<u8> = (0..2048u32).map(|i| cast::<u8, _>(i % 251)).collect();
    let mut raw = [0u8; 16];
    raw[0..4].copy_from_slice(&VIRTIO_BLK_T_OUT.to_le_bytes());
    raw[8..16].copy_from_slice(&10u64.to_le_bytes());
    rig.put(HDR, &raw[..5]);
    rig.put(HDR + 0x100, &raw[5..]);
    rig.put(DATA, &data[..100]);
    rig.put(DATA + 0x1000, &data[100..1124]);
    rig.put(DATA + 0x3000, &data[1124..]);
    let used = rig.run(&[
        r(HDR, 5),
        r(HDR + 0x100, 11),
        r(DATA, 100),
        r(DATA + 0x1000, 1024),
        r(DATA + 0x3000, 924),
        w(STATUS, 1),
    ]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_OK, 1));
    assert_eq!(sectors(rig.blk.store(), 10, 4), &data[..]);

    // Read it back the same way; the status is the last byte of the last data buffer, and
    // a zero-length descriptor sits in the middle.
    rig.header(VIRTIO_BLK_T_IN, 10);
    let used = rig.run(&[
        r(HDR, 16),
        w(DATA + 0x8000, 700),
        w(DATA + 0x9000, 0),
        w(DATA + 0xa000, 1000),
        w(DATA + 0xc000, 349),
    ]);
    assert_eq!(used, 2049);
    assert_eq!(rig.bytes(DATA + 0x8000, 700), &data[..700]);
    assert_eq!(rig.bytes(DATA + 0xa000, 1000), &data[700..1700]);
    assert_eq!(rig.bytes(DATA + 0xc000, 348), &data[1700..]);
    assert_eq!(rig.bytes(DATA + 0xc000 + 348, 1), &[VIRTIO_BLK_S_OK]);
    assert!(
        rig.bytes(DATA + 0xc000 + 349, 16)
            .iter()
            .all(|&b| b == GUARD)
    );

    // Header and data in one readable buffer, data and status in one writable buffer.
    let mut joined = raw.to_vec();
    joined[0..4].copy_from_slice(&VIRTIO_BLK_T_OUT.to_le_bytes());
    joined[8..16].copy_from_slice(&20u64.to_le_bytes());
    joined.extend(std::iter::repeat_n(0x5a, 512));
    rig.put(HDR, &joined);
    assert_eq!(rig.run(&[r(HDR, 528), w(STATUS, 1)]), 1);
    assert_eq!(rig.status(), VIRTIO_BLK_S_OK);
    assert!(sectors(rig.blk.store(), 20, 1).iter().all(|&b| b == 0x5a));
    rig.header(VIRTIO_BLK_T_IN, 20);
    assert_eq!(rig.run(&[r(HDR, 16), w(DATA, 513)]), 513);
    assert!(rig.bytes(DATA, 512).iter().all(|&b| b == 0x5a));
    assert_eq!(rig.bytes(DATA + 512, 1), &[VIRTIO_BLK_S_OK]);
}

#[test]
fn flush_completes_and_reaches_the_store() {
    let mut rig = Rig::with(
        FakeStore {
            capacity: 8,
            ..FakeStore::default()
        },
        ALL,
    );
    assert_eq!(rig.bare(VIRTIO_BLK_T_FLUSH), (VIRTIO_BLK_S_OK, 1));
    assert_eq!(rig.blk.store().flushes, 1);
    // A sector and data buffers (which a driver SHOULD NOT send) are ignored.
    rig.header(VIRTIO_BLK_T_FLUSH, 99);
    let used = rig.run(&[
        r(HDR, 16),
        r(DATA, 512),
        w(DATA + 0x1000, 512),
        w(STATUS, 1),
    ]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_OK, 1));
    assert!(rig.bytes(DATA + 0x1000, 512).iter().all(|&b| b == GUARD));
    assert_eq!(rig.blk.store().flushes, 2);
    assert!(rig.blk.store().writes.is_empty());
    // On a RAM disk too.
    assert_eq!(rig_bare_flush(), (VIRTIO_BLK_S_OK, 1));
}

fn rig_bare_flush() -> (u8, u32) {
    rig().bare(VIRTIO_BLK_T_FLUSH)
}

#[test]
fn get_id_fills_twenty_bytes() {
    let mut rig = rig();
    rig.header(VIRTIO_BLK_T_GET_ID, 0);
    let used = rig.run(&[r(HDR, 16), w(DATA, 20), w(STATUS, 1)]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_OK, 21));
    assert_eq!(rig.bytes(DATA, 20), &ID);
    // Split over two buffers, status in the second.
    rig.mem.bytes[0x8000..].fill(GUARD);
    let used = rig.run(&[r(HDR, 16), w(DATA, 7), w(DATA + 0x100, 14)]);
    assert_eq!(used, 21);
    assert_eq!(rig.bytes(DATA, 7), &ID[..7]);
    assert_eq!(rig.bytes(DATA + 0x100, 13), &ID[7..]);
    assert_eq!(rig.bytes(DATA + 0x100 + 13, 1), &[VIRTIO_BLK_S_OK]);
}

#[test]
fn get_id_of_another_length_is_an_io_error() {
    let mut rig = rig();
    for len in [0, 1, 19, 21, 512] {
        rig.mem.bytes[0x8000..].fill(GUARD);
        rig.header(VIRTIO_BLK_T_GET_ID, 0);
        let used = rig.run(&[r(HDR, 16), w(DATA, len), w(STATUS, 1)]);
        assert_eq!((rig.status(), used), (VIRTIO_BLK_S_IOERR, 1), "{len} bytes");
        assert!(
            rig.bytes(DATA, len as usize).iter().all(|&b| b == GUARD),
            "nothing written into {len} bytes"
        );
    }
    // Readable data with it: the wrong direction.
    rig.header(VIRTIO_BLK_T_GET_ID, 0);
    let used = rig.run(&[r(HDR, 16), r(DATA, 20), w(DATA + 0x100, 20), w(STATUS, 1)]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_IOERR, 1));
    rig.still_serves();
}

#[test]
fn discard_zeroes_the_range() {
    let mut rig = rig();
    assert_eq!(
        rig.zeroes(VIRTIO_BLK_T_DISCARD, 4, 3, 0),
        (VIRTIO_BLK_S_OK, 1)
    );
    assert!(sectors(rig.blk.store(), 4, 3).iter().all(|&b| b == 0));
    assert!(sectors(rig.blk.store(), 3, 1).iter().all(|&b| b == 4));
    assert!(sectors(rig.blk.store(), 7, 1).iter().all(|&b| b == 8));
    // The last sectors of the disk, and nothing at all.
    assert_eq!(
        rig.zeroes(VIRTIO_BLK_T_DISCARD, SECTORS - 2, 2, 0),
        (VIRTIO_BLK_S_OK, 1)
    );
    assert!(
        sectors(rig.blk.store(), SECTORS - 2, 2)
            .iter()
            .all(|&b| b == 0)
    );
    assert_eq!(
        rig.zeroes(VIRTIO_BLK_T_DISCARD, SECTORS, 0, 0),
        (VIRTIO_BLK_S_OK, 1)
    );
}

#[test]
fn discard_refusals() {
    let mut rig = rig();
    let before = rig.blk.store().bytes().to_vec();
    let discard = VIRTIO_BLK_T_DISCARD;
    // `unmap` is for write zeroes only, other flags are reserved: UNSUPP (§5.2.6.1).
    assert_eq!(rig.zeroes(discard, 0, 1, 1), (VIRTIO_BLK_S_UNSUPP, 1));
    assert_eq!(rig.zeroes(discard, 0, 1, 2), (VIRTIO_BLK_S_UNSUPP, 1));
    assert_eq!(rig.zeroes(discard, 0, 1, 1 << 31), (VIRTIO_BLK_S_UNSUPP, 1));
    // Too many sectors, past the end, wrapping: IOERR.
    assert_eq!(
        rig.zeroes(discard, 0, MAX_ZEROES_SECTORS + 1, 0),
        (VIRTIO_BLK_S_IOERR, 1)
    );
    assert_eq!(
        rig.zeroes(discard, SECTORS - 1, 2, 0),
        (VIRTIO_BLK_S_IOERR, 1)
    );
    assert_eq!(rig.zeroes(discard, SECTORS, 1, 0), (VIRTIO_BLK_S_IOERR, 1));
    assert_eq!(rig.zeroes(discard, u64::MAX, 2, 0), (VIRTIO_BLK_S_IOERR, 1));
    assert_eq!(rig.blk.store().bytes(), &before[..]);
    rig.still_serves();
}

#[test]
fn segment_count_and_length_are_checked() {
    let mut rig = rig();
    let before = rig.blk.store().bytes().to_vec();
    for kind in [VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES] {
        rig.header(kind, 0);
        rig.segment(0, 1, 0);
        // No segment; a partial one; one and a half: IOERR.
        for len in [16, 20, 40] {
            let used = rig.run(&[r(HDR, len), w(STATUS, 1)]);
            assert_eq!(
                (rig.status(), used),
                (VIRTIO_BLK_S_IOERR, 1),
                "{kind}: {len}"
            );
        }
        // Two whole segments: more than max_*_seg, UNSUPP.
        let segment = rig.bytes(HDR + 16, 16).to_vec();
        rig.put(HDR + 32, &segment);
        let used = rig.run(&[r(HDR, 48), w(STATUS, 1)]);
        assert_eq!((rig.status(), used), (VIRTIO_BLK_S_UNSUPP, 1), "{kind}");
        // Writable data: the wrong direction.
        let used = rig.run(&[r(HDR, 32), w(DATA, 512), w(STATUS, 1)]);
        assert_eq!((rig.status(), used), (VIRTIO_BLK_S_IOERR, 1), "{kind}");
    }
    assert_eq!(rig.blk.store().bytes(), &before[..]);
    rig.still_serves();
}

#[test]
fn write_zeroes_zeroes_with_or_without_unmap() {
    let mut rig = rig();
    let wz = VIRTIO_BLK_T_WRITE_ZEROES;
    assert_eq!(rig.zeroes(wz, 1, 2, 0), (VIRTIO_BLK_S_OK, 1));
    assert_eq!(
        rig.zeroes(wz, 10, 1, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP),
        (VIRTIO_BLK_S_OK, 1)
    );
    assert!(sectors(rig.blk.store(), 1, 2).iter().all(|&b| b == 0));
    assert!(sectors(rig.blk.store(), 10, 1).iter().all(|&b| b == 0));
    assert!(
        sectors(rig.blk.store(), 3, 7)
            .iter()
            .enumerate()
            .all(|(i, &b)| b == cast::<u8, _>(i / 512) + 4)
    );
    // The sectors read back as zeroes through the device.
    assert_eq!(rig.read(1, 1024), (VIRTIO_BLK_S_OK, 1025));
    assert!(rig.bytes(DATA, 1024).iter().all(|&b| b == 0));
    // Reserved flags: UNSUPP; too many sectors, out of range: IOERR.
    let before = rig.blk.store().bytes().to_vec();
    assert_eq!(rig.zeroes(wz, 0, 1, 2), (VIRTIO_BLK_S_UNSUPP, 1));
    assert_eq!(
        rig.zeroes(wz, 0, MAX_ZEROES_SECTORS + 1, 0),
        (VIRTIO_BLK_S_IOERR, 1)
    );
    assert_eq!(rig.zeroes(wz, SECTORS, 1, 0), (VIRTIO_BLK_S_IOERR, 1));
    assert_eq!(rig.zeroes(wz, u64::MAX, 1, 0), (VIRTIO_BLK_S_IOERR, 1));
    assert_eq!(rig.blk.store().bytes(), &before[..]);
    rig.still_serves();
}

#[test]
fn default_write_zeroes_writes_zeroes_in_chunks() {
    let mut rig = Rig::with(
        FakeStore {
            capacity: 1 << 20,
            ..FakeStore::default()
        },
        ALL,
    );
    // Two whole chunks and half of one.
    let per = cast::<u64, _>(CHUNK / 512);
    assert_eq!(
        rig.zeroes(VIRTIO_BLK_T_WRITE_ZEROES, 100, cast(2 * per + per / 2), 0),
        (VIRTIO_BLK_S_OK, 1)
    );
    assert_eq!(
        rig.blk.store().writes,
        vec![
            (100, CHUNK, true),
            (100 + per, CHUNK, true),
            (100 + 2 * per, CHUNK / 2, true)
        ]
    );
    // The default discard leaves the sectors alone.
    assert_eq!(
        rig.zeroes(VIRTIO_BLK_T_DISCARD, 100, 5, 0),
        (VIRTIO_BLK_S_OK, 1)
    );
    assert_eq!(rig.blk.store().writes.len(), 3);
}

#[test]
fn discard_and_write_zeroes_need_their_features() {
    let mut rig = Rig::with(disk(), VIRTIO_F_VERSION_1);
    let before = rig.blk.store().bytes().to_vec();
    assert_eq!(
        rig.zeroes(VIRTIO_BLK_T_DISCARD, 0, 1, 0),
        (VIRTIO_BLK_S_UNSUPP, 1)
    );
    assert_eq!(
        rig.zeroes(VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0),
        (VIRTIO_BLK_S_UNSUPP, 1)
    );
    assert_eq!(rig.blk.store().bytes(), &before[..]);
    // Reads, writes, flush and GET_ID need none.
    assert_eq!(rig.bare(VIRTIO_BLK_T_FLUSH), (VIRTIO_BLK_S_OK, 1));
    assert_eq!(rig.write(0, &[9; 512]), (VIRTIO_BLK_S_OK, 1));
    rig.still_serves();
    // Each alone enables its own request only.
    let mut rig = Rig::with(disk(), VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_DISCARD);
    assert_eq!(
        rig.zeroes(VIRTIO_BLK_T_DISCARD, 0, 1, 0),
        (VIRTIO_BLK_S_OK, 1)
    );
    assert_eq!(
        rig.zeroes(VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0),
        (VIRTIO_BLK_S_UNSUPP, 1)
    );
}

#[test]
fn a_read_only_store_refuses_every_write() {
    let mut rig = Rig::with(disk().with_read_only(true), ALL | VIRTIO_BLK_F_RO);
    let before = rig.blk.store().bytes().to_vec();
    assert_eq!(rig.write(0, &[1; 1024]), (VIRTIO_BLK_S_IOERR, 1));
    assert_eq!(
        rig.zeroes(VIRTIO_BLK_T_DISCARD, 0, 1, 0),
        (VIRTIO_BLK_S_IOERR, 1)
    );
    assert_eq!(
        rig.zeroes(VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0),
        (VIRTIO_BLK_S_IOERR, 1)
    );
    assert_eq!(rig.blk.store().bytes(), &before[..]);
    // Reads, flush and GET_ID work.
    assert_eq!(rig.bare(VIRTIO_BLK_T_FLUSH), (VIRTIO_BLK_S_OK, 1));
    rig.header(VIRTIO_BLK_T_GET_ID, 0);
    assert_eq!(
        rig.run(&[r(HDR, 16), w(DATA + 0x1000, 20), w(STATUS, 1)]),
        21
    );
    rig.still_serves();
    // The store itself refuses too (the device checks first; a store never trusts it).
    let mut store = disk().with_read_only(true);
    assert_eq!(store.write(0, &[0; 512]), Err(BlockError::ReadOnly));
    assert_eq!(store.write_zeroes(0, 1), Err(BlockError::ReadOnly));
    assert_eq!(store.discard(0, 1), Err(BlockError::ReadOnly));
    let mut fake = FakeStore {
        capacity: 8,
        read_only: true,
        ..FakeStore::default()
    };
    assert_eq!(
        fake.discard(0, 1),
        Err(BlockError::ReadOnly),
        "default discard"
    );
}

#[test]
fn short_or_missing_header_is_an_io_error() {
    let mut rig = rig();
    rig.header(VIRTIO_BLK_T_IN, 0);
    for bufs in [
        &[r(HDR, 15), w(DATA, 512), w(STATUS, 1)][..],
        &[r(HDR, 8), r(HDR + 8, 7), w(STATUS, 1)],
        &[w(DATA, 512), w(STATUS, 1)],
        &[w(STATUS, 1)],
    ] {
        rig.mem.bytes[0x8000..].fill(GUARD);
        let used = rig.run(bufs);
        assert_eq!((rig.status(), used), (VIRTIO_BLK_S_IOERR, 1), "{bufs:?}");
        assert!(rig.bytes(DATA, 512).iter().all(|&b| b == GUARD));
    }
    rig.still_serves();
}

#[test]
fn a_chain_without_a_writable_byte_is_returned_untouched() {
    let mut rig = rig();
    let before = rig.blk.store().bytes().to_vec();
    rig.header(VIRTIO_BLK_T_OUT, 0);
    rig.put(DATA, &[7; 512]);
    rig.put(STATUS, &[GUARD]);
    // OUT with its "status" in a readable buffer; a header alone; a write-zeroes.
    assert_eq!(rig.run(&[r(HDR, 16), r(DATA, 512), r(STATUS, 1)]), 0);
    assert_eq!(rig.run(&[r(HDR, 16)]), 0);
    rig.header(VIRTIO_BLK_T_WRITE_ZEROES, 0);
    rig.segment(0, 4, 0);
    assert_eq!(rig.run(&[r(HDR, 32)]), 0);
    assert_eq!(rig.status(), GUARD, "nowhere to write a status");
    assert_eq!(rig.blk.store().bytes(), &before[..], "and nothing done");
    // A zero-length writable buffer is no status byte either.
    rig.header(VIRTIO_BLK_T_FLUSH, 0);
    assert_eq!(rig.run(&[r(HDR, 16), w(STATUS, 0)]), 0);
    assert_eq!(rig.status(), GUARD);
    rig.still_serves();
}

#[test]
fn data_that_is_not_whole_sectors_is_an_io_error() {
    let mut rig = rig();
    let before = rig.blk.store().bytes().to_vec();
    for len in [1, 511, 513, 1000] {
        rig.mem.bytes[0x8000..].fill(GUARD);
        assert_eq!(rig.read(0, len), (VIRTIO_BLK_S_IOERR, 1), "IN {len}");
        assert!(rig.bytes(DATA, len as usize).iter().all(|&b| b == GUARD));
        assert_eq!(
            rig.write(0, &vec![0x11; len as usize]),
            (VIRTIO_BLK_S_IOERR, 1),
            "OUT {len}"
        );
    }
    assert_eq!(rig.blk.store().bytes(), &before[..]);
    rig.still_serves();
}

#[test]
fn ranges_past_the_capacity_or_wrapping_are_io_errors() {
    let mut rig = rig();
    let before = rig.blk.store().bytes().to_vec();
    for (sector, len) in [
        (SECTORS, 512),
        (SECTORS - 1, 1024),
        (SECTORS + 1, 0),
        (u64::MAX, 512),
        (u64::MAX - 1, 1024),
        (1 << 55, 512), // sector * 512 wraps 64 bits
    ] {
        assert_eq!(
            rig.read(sector, len),
            (VIRTIO_BLK_S_IOERR, 1),
            "IN {sector}"
        );
        assert_eq!(
            rig.write(sector, &vec![0x22; len as usize]),
            (VIRTIO_BLK_S_IOERR, 1),
            "OUT {sector}"
        );
    }
    assert_eq!(rig.blk.store().bytes(), &before[..]);
    // The last sector itself is fine.
    assert_eq!(rig.write(SECTORS - 1, &[0x33; 512]), (VIRTIO_BLK_S_OK, 1));
    assert!(
        sectors(rig.blk.store(), SECTORS - 1, 1)
            .iter()
            .all(|&b| b == 0x33)
    );
    rig.still_serves();
}

#[test]
fn unknown_types_are_unsupported() {
    let mut rig = rig();
    // SCSI (2, 3), FLUSH_OUT (5, legacy), GET_LIFETIME (10), SECURE_ERASE (14), zoned (15..26),
    // barrier-flagged IN, anything.
    for kind in [
        2,
        3,
        5,
        6,
        7,
        9,
        10,
        12,
        14,
        15,
        16,
        24,
        0x8000_0000,
        u32::MAX,
    ] {
        rig.mem.bytes[0x8000..].fill(GUARD);
        rig.header(kind, 0);
        let used = rig.run(&[r(HDR, 16), w(DATA, 512), w(STATUS, 1)]);
        assert_eq!(
            (rig.status(), used),
            (VIRTIO_BLK_S_UNSUPP, 1),
            "type {kind}"
        );
        assert!(rig.bytes(DATA, 512).iter().all(|&b| b == GUARD));
    }
    assert_eq!(RequestType::from(14), RequestType::Unsupported(14));
    rig.still_serves();
}

#[test]
fn data_in_the_wrong_direction_is_an_io_error() {
    let mut rig = rig();
    let before = rig.blk.store().bytes().to_vec();
    // IN with readable data (and writable data too).
    rig.header(VIRTIO_BLK_T_IN, 0);
    rig.mem.bytes[0x8000..].fill(GUARD);
    let used = rig.run(&[
        r(HDR, 16),
        r(DATA, 512),
        w(DATA + 0x1000, 512),
        w(STATUS, 1),
    ]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_IOERR, 1));
    assert!(rig.bytes(DATA + 0x1000, 512).iter().all(|&b| b == GUARD));
    // IN with only readable data.
    let used = rig.run(&[r(HDR, 16), r(DATA, 512), w(STATUS, 1)]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_IOERR, 1));
    // OUT with writable data.
    rig.header(VIRTIO_BLK_T_OUT, 0);
    let used = rig.run(&[r(HDR, 16), w(DATA, 512), w(STATUS, 1)]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_IOERR, 1));
    assert!(rig.bytes(DATA, 512).iter().all(|&b| b == GUARD));
    let used = rig.run(&[
        r(HDR, 16),
        r(DATA, 512),
        w(DATA + 0x1000, 512),
        w(STATUS, 1),
    ]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_IOERR, 1));
    assert_eq!(rig.blk.store().bytes(), &before[..]);
    rig.still_serves();
}

#[test]
fn more_than_the_request_limit_is_an_io_error() {
    // A store large enough that only the limit refuses; memory for 1 MiB of data.
    let mut mem = VecMem::new(BASE, 0x4000 + 2 * MAX_REQUEST_BYTES as usize);
    let mut blk = Blk::new(FakeStore {
        capacity: 1 << 40,
        ..FakeStore::default()
    });
    blk.activate(ALL, &[Some(config(QSIZE))]).unwrap();
    let mut rig = Rig {
        mem: std::mem::take(&mut mem),
        blk,
        next_desc: 0,
        avail: 0,
        used: 0,
        ring: 0,
    };
    let max = MAX_REQUEST_BYTES;
    // Exactly the limit, in two buffers: served.
    rig.header(VIRTIO_BLK_T_IN, 7);
    let used = rig.run(&[
        r(HDR, 16),
        w(DATA, max / 2),
        w(DATA + 0x10_0000, max / 2),
        w(STATUS, 1),
    ]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_OK, max + 1));
    rig.header(VIRTIO_BLK_T_OUT, 7);
    let used = rig.run(&[r(HDR, 16), r(DATA, max), w(STATUS, 1)]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_OK, 1));
    assert_eq!(rig.blk.store().writes.len(), (max as usize) / CHUNK);
    // One sector more: refused, nothing read or written.
    rig.mem.bytes[0x8000..].fill(GUARD);
    rig.header(VIRTIO_BLK_T_IN, 7);
    let used = rig.run(&[
        r(HDR, 16),
        w(DATA, max),
        w(DATA + 0x10_0000, 512),
        w(STATUS, 1),
    ]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_IOERR, 1));
    assert!(rig.bytes(DATA, 4096).iter().all(|&b| b == GUARD));
    rig.header(VIRTIO_BLK_T_OUT, 7);
    let used = rig.run(&[r(HDR, 16), r(DATA, max + 512), w(STATUS, 1)]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_IOERR, 1));
    assert_eq!(rig.blk.store().writes.len(), (max as usize) / CHUNK);
}

#[test]
fn store_failures_are_io_errors() {
    let mut rig = Rig::with(
        FakeStore {
            capacity: 64,
            fail: true,
            ..FakeStore::default()
        },
        ALL,
    );
    assert_eq!(rig.read(0, 1024), (VIRTIO_BLK_S_IOERR, 1));
    assert_eq!(rig.write(0, &[0; 1024]), (VIRTIO_BLK_S_IOERR, 1));
    assert_eq!(rig.bare(VIRTIO_BLK_T_FLUSH), (VIRTIO_BLK_S_IOERR, 1));
    assert_eq!(
        rig.zeroes(VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0),
        (VIRTIO_BLK_S_IOERR, 1)
    );
    // The store recovers; so does the device.
    rig.blk.store_mut().fail = false;
    assert_eq!(rig.read(0, 1024), (VIRTIO_BLK_S_OK, 1025));
}

#[test]
fn a_store_failing_mid_read_reports_what_was_written() {
    /// Fails reads from sector 2 on.
    struct Torn(RamStore);
    impl BlockStore for Torn {
        fn capacity_sectors(&self) -> u64 {
            self.0.capacity_sectors()
        }
        fn read_only(&self) -> bool {
            false
        }
        fn id(&self) -> [u8; ID_BYTES] {
            ID
        }
        fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
            // Every chunk after the first fails.
            if sector >= cast::<u64, _>(CHUNK / 512) {
                return Err(BlockError::Io);
            }
            self.0.read(sector, buf)
        }
        fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), BlockError> {
            self.0.write(sector, data)
        }
        fn flush(&mut self) -> Result<(), BlockError> {
            Ok(())
        }
    }
    let mut rig = Rig::with(Torn(disk()), ALL);
    // The first chunk reaches the driver, the second fails.
    let chunk = cast::<u32, _>(CHUNK);
    assert_eq!(rig.read(0, 2 * chunk), (VIRTIO_BLK_S_IOERR, chunk + 1));
    assert!(rig.bytes(DATA, 512).iter().all(|&b| b == 1));
    assert!(rig.bytes(DATA + 512, 512).iter().all(|&b| b == 2));
    assert!(
        rig.bytes(DATA + u64::from(chunk), CHUNK)
            .iter()
            .all(|&b| b == GUARD)
    );
}

#[test]
fn data_outside_shared_memory_is_an_io_error() {
    let mut rig = rig();
    let before = rig.blk.store().bytes().to_vec();
    let outside = BASE + MEM_LEN as u64;
    // IN into a buffer past the end of memory; one that starts inside and runs off it.
    rig.header(VIRTIO_BLK_T_IN, 0);
    for at in [outside, outside - 256] {
        let used = rig.run(&[r(HDR, 16), w(at, 512), w(STATUS, 1)]);
        assert_eq!((rig.status(), used), (VIRTIO_BLK_S_IOERR, 1));
    }
    // OUT from outside: nothing reaches the store.
    rig.header(VIRTIO_BLK_T_OUT, 0);
    let used = rig.run(&[r(HDR, 16), r(outside, 512), w(STATUS, 1)]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_IOERR, 1));
    // A header outside: IOERR too.
    let used = rig.run(&[r(outside, 16), w(STATUS, 1)]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_IOERR, 1));
    // A GET_ID into memory that is not there.
    rig.header(VIRTIO_BLK_T_GET_ID, 0);
    let used = rig.run(&[r(HDR, 16), w(outside, 20), w(STATUS, 1)]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_IOERR, 1));
    assert_eq!(rig.blk.store().bytes(), &before[..]);
    rig.still_serves();
}

#[test]
fn a_status_byte_outside_shared_memory_is_a_device_error() {
    let mut rig = rig();
    rig.header(VIRTIO_BLK_T_FLUSH, 0);
    rig.submit(&[r(HDR, 16), w(BASE + MEM_LEN as u64, 1)]);
    assert!(matches!(
        rig.notify(&mut Budget::unlimited()),
        Err(DeviceError::Memory(_))
    ));
    assert_eq!(rig.used_idx(), 0, "no used entry for it");
}

#[test]
fn hostile_ring_is_a_queue_error() {
    let mut rig = rig();
    rig.mem.write(AVAIL + 2, &100u16.to_le_bytes()).unwrap();
    assert_eq!(
        rig.notify(&mut Budget::unlimited()),
        Err(DeviceError::Queue)
    );
    assert_eq!(rig.used_idx(), 0);
}

#[test]
fn a_notify_stops_when_its_budget_is_spent_and_the_next_one_goes_on() {
    let mut rig = rig();
    for i in 0..5u64 {
        rig.header(VIRTIO_BLK_T_IN, 0);
        let mut raw = rig.bytes(HDR, 16).to_vec();
        raw[8..16].copy_from_slice(&(2 * i).to_le_bytes());
        rig.put(HDR + 0x100 * i, &raw);
        rig.submit(&[
            r(HDR + 0x100 * i, 16),
            w(DATA + 0x1000 * i, 1024),
            w(STATUS + i, 1),
        ]);
    }
    // Each chain costs 1024 + CHAIN_COST = 1088: a budget of 2000 is spent by the second.
    let mut budget = Budget::bytes(2000);
    assert_eq!(rig.notify(&mut budget), Ok(true));
    assert!(budget.is_spent());
    assert_eq!(rig.used_idx(), 2);
    // A spent budget serves nothing.
    assert_eq!(rig.notify(&mut budget), Ok(false));
    assert_eq!(rig.used_idx(), 2);
    // The next budget takes the rest, in ring order.
    let mut budget = Budget::bytes(10_000);
    assert_eq!(rig.notify(&mut budget), Ok(true));
    assert_eq!(rig.used_idx(), 5);
    assert_eq!(budget.left(), 10_000 - 3 * (1024 + Budget::CHAIN_COST));
    for i in 0..5u64 {
        assert_eq!(rig.next_used(), (3 * cast::<u16, _>(i), 1025));
        assert_eq!(rig.bytes(STATUS + i, 1), &[VIRTIO_BLK_S_OK]);
        assert!(
            rig.bytes(DATA + 0x1000 * i, 512)
                .iter()
                .all(|&b| b == 2 * cast::<u8, _>(i) + 1)
        );
        assert!(
            rig.bytes(DATA + 0x1000 * i + 512, 512)
                .iter()
                .all(|&b| b == 2 * cast::<u8, _>(i) + 2)
        );
    }
}

#[test]
fn every_request_spends_what_it_moved() {
    let cost = |f: &mut dyn FnMut(&mut Rig<RamStore>)| {
        let mut rig = rig();
        f(&mut rig);
        let mut budget = Budget::bytes(1 << 30);
        assert_eq!(rig.notify(&mut budget), Ok(true));
        (1 << 30) - budget.left() - Budget::CHAIN_COST
    };
    let submit = |rig: &mut Rig<RamStore>, bufs: &[Buf]| {
        rig.submit(bufs);
    };
    assert_eq!(
        cost(&mut |rig| {
            rig.header(VIRTIO_BLK_T_IN, 0);
            submit(rig, &[r(HDR, 16), w(DATA, 2048), w(STATUS, 1)]);
        }),
        2048
    );
    assert_eq!(
        cost(&mut |rig| {
            rig.header(VIRTIO_BLK_T_OUT, 0);
            submit(rig, &[r(HDR, 16), r(DATA, 1536), w(STATUS, 1)]);
        }),
        1536
    );
    assert_eq!(
        cost(&mut |rig| {
            rig.header(VIRTIO_BLK_T_WRITE_ZEROES, 0);
            rig.segment(0, 40, 0);
            submit(rig, &[r(HDR, 32), w(STATUS, 1)]);
        }),
        40 * 512
    );
    assert_eq!(
        cost(&mut |rig| {
            rig.header(VIRTIO_BLK_T_GET_ID, 0);
            submit(rig, &[r(HDR, 16), w(DATA, 20), w(STATUS, 1)]);
        }),
        20
    );
    // A refused request moves nothing.
    assert_eq!(
        cost(&mut |rig| {
            rig.header(7, 0);
            submit(rig, &[r(HDR, 16), w(DATA, 2048), w(STATUS, 1)]);
        }),
        0
    );
}

#[test]
fn reset_and_late_queue() {
    let mut rig = rig();
    rig.header(VIRTIO_BLK_T_FLUSH, 0);
    rig.submit(&[r(HDR, 16), w(STATUS, 1)]);
    rig.blk.reset_queue(0);
    assert_eq!(rig.notify(&mut Budget::unlimited()), Ok(false));
    // Re-set after RESET_VQUEUE: served from index 0 again.
    rig.blk.activate_queue(0, config(QSIZE)).unwrap();
    assert_eq!(rig.notify(&mut Budget::unlimited()), Ok(true));
    assert_eq!(rig.next_used(), (0, 1));
    // A device reset forgets the queue and the features, but not the disk.
    rig.write(0, &[0x44; 512]);
    rig.blk.reset();
    rig.submit(&[r(HDR, 16), w(STATUS, 1)]);
    assert_eq!(rig.notify(&mut Budget::unlimited()), Ok(false));
    assert!(sectors(rig.blk.store(), 0, 1).iter().all(|&b| b == 0x44));
    let mut again = Rig::with(
        std::mem::replace(rig.blk.store_mut(), disk()),
        VIRTIO_F_VERSION_1,
    );
    assert_eq!(
        again.zeroes(VIRTIO_BLK_T_DISCARD, 0, 1, 0),
        (VIRTIO_BLK_S_UNSUPP, 1),
        "features renegotiated"
    );
    assert_eq!(again.read(0, 512), (VIRTIO_BLK_S_OK, 513));
    assert!(again.bytes(DATA, 512).iter().all(|&b| b == 0x44));
}

#[test]
fn ram_store_construction_and_bounds() {
    assert_eq!(RamStore::new(0, ID).unwrap_err(), BlockError::OutOfRange);
    assert_eq!(RamStore::new(1000, ID).unwrap_err(), BlockError::OutOfRange);
    assert_eq!(
        RamStore::new(usize::MAX & !511, ID).unwrap_err(),
        BlockError::NoMemory,
        "refused, not aborted"
    );
    let mut store = RamStore::new(4096, ID).unwrap();
    assert_eq!(store.capacity_sectors(), 8);
    assert!(store.bytes().iter().all(|&b| b == 0), "zeroed");
    assert!(!store.read_only());
    assert_eq!(store.id(), ID);
    let mut buf = [0u8; 1024];
    assert_eq!(store.read(7, &mut buf), Err(BlockError::OutOfRange));
    assert_eq!(store.read(u64::MAX, &mut buf), Err(BlockError::OutOfRange));
    assert_eq!(store.read(0, &mut buf[..100]), Err(BlockError::OutOfRange));
    assert_eq!(store.write(8, &[0; 512]), Err(BlockError::OutOfRange));
    assert_eq!(store.write(1 << 60, &[0; 512]), Err(BlockError::OutOfRange));
    assert_eq!(store.write_zeroes(4, 5), Err(BlockError::OutOfRange));
    assert_eq!(
        store.discard(u64::MAX, u64::MAX),
        Err(BlockError::OutOfRange)
    );
    assert_eq!(store.write(6, &[3; 1024]), Ok(()));
    assert_eq!(store.read(6, &mut buf), Ok(()));
    assert!(buf.iter().all(|&b| b == 3));
    assert_eq!(store.flush(), Ok(()));
}

#[test]
fn a_device_over_a_borrowed_store() {
    let mut store = disk();
    {
        let mut rig = Rig::with(&mut store, ALL);
        assert_eq!(rig.blk.features(), ALL | RING);
        assert_eq!(rig.write(0, &[0x55; 512]), (VIRTIO_BLK_S_OK, 1));
        assert_eq!(
            rig.zeroes(VIRTIO_BLK_T_WRITE_ZEROES, 1, 1, 0),
            (VIRTIO_BLK_S_OK, 1)
        );
        assert_eq!(
            rig.zeroes(VIRTIO_BLK_T_DISCARD, 2, 1, 0),
            (VIRTIO_BLK_S_OK, 1)
        );
        assert_eq!(rig.bare(VIRTIO_BLK_T_FLUSH), (VIRTIO_BLK_S_OK, 1));
        rig.header(VIRTIO_BLK_T_GET_ID, 0);
        assert_eq!(rig.run(&[r(HDR, 16), w(DATA, 20), w(STATUS, 1)]), 21);
        assert_eq!(rig.bytes(DATA, 20), &ID);
        rig.still_serves();
    }
    assert!(sectors(&store, 0, 1).iter().all(|&b| b == 0x55));
    assert!(sectors(&store, 1, 2).iter().all(|&b| b == 0));
    assert!(sectors(&store, 3, 1).iter().all(|&b| b == 4));
}

/// A rig whose driver accepted the ring features: every chain is one indirect table, and
/// used_event is kept one past what it consumed.
fn ring_rig() -> Rig<RamStore> {
    Rig::with(disk(), ALL | RING)
}

#[test]
fn requests_in_indirect_tables_are_served_with_event_idx() {
    let mut rig = ring_rig();
    assert_eq!(rig.blk.queue.as_ref().map(SplitQueue::features), Some(RING));
    // A write of three segments (one of them not page aligned), then a read of it back into
    // four: each request one descriptor of the queue, header to status in its table.
    let data: Vec<u8> = (0..3 * 1024).map(|i| cast::<u8, _>(i % 251)).collect();
    rig.header(VIRTIO_BLK_T_OUT, 10);
    rig.put(DATA, &data[..1024]);
    rig.put(DATA + 0x2000, &data[1024..1536]);
    rig.put(DATA + 0x3100, &data[1536..]);
    let used = rig.run(&[
        r(HDR, 16),
        r(DATA, 1024),
        r(DATA + 0x2000, 512),
        r(DATA + 0x3100, 1536),
        w(STATUS, 1),
    ]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_OK, 1));
    assert_eq!(sectors(rig.blk.store(), 10, 6), &data[..]);
    rig.header(VIRTIO_BLK_T_IN, 10);
    let used = rig.run(&[
        r(HDR, 16),
        w(DATA + 0x10000, 512),
        w(DATA + 0x11000, 1024),
        w(DATA + 0x12000, 512),
        w(DATA + 0x13000, 1024),
        w(STATUS, 1),
    ]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_OK, 3 * 1024 + 1));
    assert_eq!(rig.bytes(DATA + 0x10000, 512), &data[..512]);
    assert_eq!(rig.bytes(DATA + 0x11000, 1024), &data[512..1536]);
    assert_eq!(rig.bytes(DATA + 0x12000, 512), &data[1536..2048]);
    assert_eq!(rig.bytes(DATA + 0x13000, 1024), &data[2048..]);
    // Header and status split over entries too, and the other request types.
    rig.header(VIRTIO_BLK_T_IN, 10);
    let used = rig.run(&[r(HDR, 4), r(HDR + 4, 12), w(DATA, 512), w(STATUS, 1)]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_OK, 513));
    assert_eq!(rig.bare(VIRTIO_BLK_T_FLUSH), (VIRTIO_BLK_S_OK, 1));
    assert_eq!(
        rig.zeroes(VIRTIO_BLK_T_WRITE_ZEROES, 10, 1, 0),
        (VIRTIO_BLK_S_OK, 1)
    );
    assert!(sectors(rig.blk.store(), 10, 1).iter().all(|&b| b == 0));
    rig.header(VIRTIO_BLK_T_GET_ID, 0);
    let used = rig.run(&[r(HDR, 16), w(DATA, 20), w(STATUS, 1)]);
    assert_eq!((rig.status(), used), (VIRTIO_BLK_S_OK, 21));
    assert_eq!(rig.bytes(DATA, 20), &ID);
    // A request the device refuses is a status as ever, and the next one is served.
    assert_eq!(rig.read(SECTORS, 512), (VIRTIO_BLK_S_IOERR, 1));
    rig.still_serves();
    // Across the 16-bit wrap of the available, used and event indices.
    let before = rig.used;
    for _ in 0..66_000 {
        rig.still_serves();
    }
    assert_eq!(rig.used, before.wrapping_add(cast(66_000 - 65_536)));
    assert_eq!(rig.used_idx(), rig.used);
}

#[test]
fn indirect_tables_without_the_feature_need_a_reset() {
    // The driver did not accept VIRTIO_F_INDIRECT_DESC and sends a table anyway.
    let mut rig = rig();
    rig.header(VIRTIO_BLK_T_IN, 5);
    rig.submit_indirect(&[r(HDR, 16), w(DATA, 512), w(STATUS, 1)], 0);
    assert_eq!(
        rig.notify(&mut Budget::unlimited()),
        Err(DeviceError::Queue)
    );
    assert_eq!(rig.used_idx(), 0, "nothing returned");
    assert_eq!(rig.status(), GUARD, "nothing executed");
    // The engine sets DEVICE_NEEDS_RESET; after the driver's reset the device serves again.
    rig.restart();
    rig.still_serves();
}

#[test]
fn a_table_inside_a_table_needs_a_reset_then_the_device_serves_again() {
    let mut rig = ring_rig();
    rig.still_serves();
    rig.header(VIRTIO_BLK_T_IN, 5);
    // The status entry also names a table.
    rig.submit_indirect(
        &[r(HDR, 16), w(DATA, 512), w(STATUS, 1)],
        VIRTQ_DESC_F_INDIRECT,
    );
    assert_eq!(
        rig.notify(&mut Budget::unlimited()),
        Err(DeviceError::Queue)
    );
    assert_eq!(rig.used_idx(), 1, "nothing more returned");
    rig.restart();
    rig.still_serves();
    rig.still_serves();
}

#[test]
fn with_event_idx_a_driver_that_does_not_ask_is_not_notified() {
    let mut rig = Rig::with(disk(), ALL | VIRTIO_F_EVENT_IDX);
    assert_eq!(rig.read(1, 512), (VIRTIO_BLK_S_OK, 513));
    // used_event is 1 now (the rig asked for the next entry). A driver that does not move it
    // again gets its buffers, and no notification.
    for _ in 0..3 {
        rig.header(VIRTIO_BLK_T_IN, 1);
        rig.submit(&[r(HDR, 16), w(DATA, 512), w(STATUS, 1)]);
    }
    rig.mem
        .write(AVAIL + 4 + 2 * u64::from(QSIZE), &2u16.to_le_bytes())
        .unwrap();
    // The driver asks to hear of entry 2: entries 1, 2 and 3 go back in one pass, which
    // passes it: one notification.
    assert_eq!(rig.notify(&mut Budget::unlimited()), Ok(true));
    assert_eq!(rig.used_idx(), 4);
    rig.header(VIRTIO_BLK_T_IN, 1);
    rig.submit(&[r(HDR, 16), w(DATA, 512), w(STATUS, 1)]);
    assert_eq!(rig.notify(&mut Budget::unlimited()), Ok(false));
    assert_eq!(rig.used_idx(), 5, "served all the same");
    // avail_event tells the driver to notify at its next buffer.
    let mut b = [0; 2];
    rig.mem
        .read(USED + 4 + 8 * u64::from(QSIZE), &mut b)
        .unwrap();
    assert_eq!(u16::from_le_bytes(b), 5);
}
