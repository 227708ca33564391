//! Driver-side queue tests, alone and against the partition's device-side `SplitQueue` and
//! virtio-rng model.

use std::cell::RefCell;

use sp::{
    devices::rng::{CountingEntropy, Rng},
    virtqueue::SplitQueue,
};
use virtio_msg::{
    SharedMem,
    device::{Budget, QueueConfig, VIRTIO_F_VERSION_1, VirtioDevice},
    mem::VecMem,
};

use super::*;

/// Where the driver sees the area.
const PA: u64 = 0x8000_0000;
/// Where the device sees it (area 3 on the FF-A bus).
const BUS: u64 = 3 << 48;
const LEN: usize = 0x10000;
/// Buffers start at this offset in the area.
const BUF_OFF: u64 = 0x8000;

/// One shared area, reachable by driver address (`DriverMem`) and by bus address (the
/// `VecMem` inside, as the device's `SharedMem`).
struct Area(RefCell<VecMem>);

impl Area {
    fn new() -> Self {
        Self(RefCell::new(VecMem::new(BUS, LEN)))
    }
    fn to_bus(pa: u64) -> Result<u64, MemError> {
        pa.checked_sub(PA)
            .map(|off| BUS + off)
            .ok_or(MemError::OutOfBounds { addr: pa, len: 0 })
    }
    fn bytes(&self, off: u64, len: usize) -> Vec<u8> {
        let start = usize::try_from(off).unwrap();
        self.0.borrow().bytes[start..start + len].to_vec()
    }
    fn poke(&self, off: u64, data: &[u8]) {
        self.0.borrow_mut().write(BUS + off, data).unwrap();
    }
}

impl DriverMem for Area {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.0.borrow().read(Self::to_bus(addr)?, buf)
    }
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MemError> {
        self.0.borrow_mut().write(Self::to_bus(addr)?, data)
    }
}

fn u16_at(area: &Area, off: u64) -> u16 {
    u16::from_le_bytes(area.bytes(off, 2).try_into().unwrap())
}

#[test]
fn layout_offsets() {
    let l = DriverQueue::layout(8).unwrap();
    assert_eq!((l.desc, l.avail, l.used, l.total), (0, 128, 152, 222));
    let l = DriverQueue::layout(1).unwrap();
    assert_eq!((l.desc, l.avail, l.used, l.total), (0, 16, 24, 38));
    let l = DriverQueue::layout(32768).unwrap();
    assert_eq!((l.avail, l.used), (524_288, 589_832));
    assert_eq!(l.total, 589_832 + 6 + 8 * 32768);
    for size in [0, 3, 100, 65535] {
        assert_eq!(DriverQueue::layout(size), Err(QueueError::BadSize(size)));
    }
}

#[test]
fn new_checks_bases_and_zeroes_the_ring() {
    let area = Area::new();
    area.poke(0, &[0xff; 300]);
    assert_eq!(
        DriverQueue::new(&area, 8, PA + 8, BUS).unwrap_err(),
        QueueError::BadBase(PA + 8)
    );
    assert_eq!(
        DriverQueue::new(&area, 8, PA, BUS + 4).unwrap_err(),
        QueueError::BadBase(BUS + 4)
    );
    assert_eq!(
        DriverQueue::new(&area, 8, PA, u64::MAX - 15).unwrap_err(),
        QueueError::BadBase(u64::MAX - 15)
    );
    let q = DriverQueue::new(&area, 8, PA, BUS).unwrap();
    assert!(area.bytes(0, 222).iter().all(|&b| b == 0));
    assert_eq!(area.bytes(222, 78), vec![0xff; 78]);
    assert_eq!(
        q.queue_config(),
        QueueConfig {
            size: 8,
            desc_addr: BUS,
            driver_addr: BUS + 128,
            device_addr: BUS + 152,
        }
    );
    assert_eq!(q.num_free(), 8);
}

#[test]
fn add_writes_descriptors_and_publish_writes_the_index() {
    let area = Area::new();
    let mut q = DriverQueue::new(&area, 8, PA, BUS).unwrap();
    let head = q
        .add(
            &area,
            &[(BUS + 0x8000, 16)],
            &[(BUS + 0x9000, 512), (BUS + 0xa000, 1)],
        )
        .unwrap();
    assert_eq!(head, 0);
    assert_eq!(q.num_free(), 5);
    let mut d = Vec::new();
    d.extend_from_slice(&(BUS + 0x8000).to_le_bytes());
    d.extend_from_slice(&16u32.to_le_bytes());
    d.extend_from_slice(&[1, 0, 1, 0]); // NEXT, next = 1
    d.extend_from_slice(&(BUS + 0x9000).to_le_bytes());
    d.extend_from_slice(&512u32.to_le_bytes());
    d.extend_from_slice(&[3, 0, 2, 0]); // NEXT | WRITE, next = 2
    d.extend_from_slice(&(BUS + 0xa000).to_le_bytes());
    d.extend_from_slice(&1u32.to_le_bytes());
    d.extend_from_slice(&[2, 0, 0, 0]); // WRITE
    assert_eq!(area.bytes(0, 48), d);
    // The ring entry is written, the index not yet.
    assert_eq!(u16_at(&area, 128 + 4), 0);
    assert_eq!(u16_at(&area, 128 + 2), 0);
    assert_eq!(q.add(&area, &[], &[(BUS, 1)]).unwrap(), 3);
    assert_eq!(u16_at(&area, 128 + 6), 3);
    assert_eq!(u16_at(&area, 128 + 2), 0);
    q.publish(&area).unwrap();
    assert_eq!(u16_at(&area, 128 + 2), 2);
}

#[test]
fn add_refuses_empty_and_oversized_requests() {
    let area = Area::new();
    let mut q = DriverQueue::new(&area, 4, PA, BUS).unwrap();
    assert_eq!(q.add(&area, &[], &[]), Err(QueueError::Empty));
    let five = [(BUS, 1); 5];
    assert_eq!(
        q.add(&area, &five, &[]),
        Err(QueueError::Full { need: 5, free: 4 })
    );
    q.add(&area, &five[..3], &[]).unwrap();
    assert_eq!(
        q.add(&area, &[], &five[..2]),
        Err(QueueError::Full { need: 2, free: 1 })
    );
    q.add(&area, &[], &five[..1]).unwrap();
    assert_eq!(q.num_free(), 0);
}

/// Driver and device queues over one area; the device pops with the partition's `SplitQueue`.
fn pair(size: u16) -> (Area, DriverQueue, SplitQueue) {
    let area = Area::new();
    let q = DriverQueue::new(&area, size, PA, BUS).unwrap();
    let dev = SplitQueue::new(q.queue_config()).unwrap();
    (area, q, dev)
}

#[test]
fn pop_used_refuses_a_lying_device() {
    let (area, mut q, mut dev) = pair(4);
    q.add(&area, &[], &[(BUS + BUF_OFF, 8)]).unwrap();
    q.publish(&area).unwrap();
    assert_eq!(q.pop_used(&area), Ok(None));
    let used = q.ring_layout().used;
    let chain = dev.pop(&mut *area.0.borrow_mut()).unwrap().unwrap();

    // Length beyond the writable bytes.
    dev.push_used(&mut *area.0.borrow_mut(), chain.head, 9)
        .unwrap();
    assert_eq!(
        q.pop_used(&area),
        Err(QueueError::UsedLen {
            head: 0,
            len: 9,
            writable: 8
        })
    );
    // Id out of range, id not in flight.
    area.poke(used + 4, &[4, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(q.pop_used(&area), Err(QueueError::UsedId(4)));
    area.poke(used + 4, &[1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(q.pop_used(&area), Err(QueueError::UsedId(1)));
    // Used index far ahead.
    area.poke(used + 2, &[9, 0]);
    assert!(matches!(
        q.pop_used(&area),
        Err(QueueError::UsedIndex { ahead: 9, .. })
    ));
    // An honest answer is still taken.
    area.poke(used + 2, &[1, 0]);
    area.poke(used + 4, &[0, 0, 0, 0, 8, 0, 0, 0]);
    assert_eq!(q.pop_used(&area), Ok(Some((0, 8))));
    assert_eq!(q.num_free(), 4);
}

type Segments = Vec<(u64, u32)>;

#[test]
fn round_trip_with_out_of_order_completion() {
    let (area, mut q, mut dev) = pair(8);
    let mut lcg: u32 = 12345;
    let mut rand = move |n: u32| {
        lcg = lcg.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (lcg >> 16) % n
    };
    // (head, readable, writable) of each chain in flight.
    let mut in_flight: Vec<(u16, Segments, Segments)> = Vec::new();
    for round in 0..3000u32 {
        // Add chains of 1..=3 buffers while they fit.
        loop {
            let nr = usize::try_from(rand(2)).unwrap();
            let nw = usize::try_from(rand(2)).unwrap() + 1;
            if nr + nw > usize::from(q.num_free()) {
                break;
            }
            let mk = |k: usize, w: u64| {
                (
                    BUS + BUF_OFF + 0x100 * w + 16 * k as u64,
                    u32::try_from(k + 1).unwrap() + round % 7,
                )
            };
            let r: Vec<_> = (0..nr).map(|k| mk(k, 0)).collect();
            let w: Vec<_> = (0..nw).map(|k| mk(k, 1)).collect();
            let head = q.add(&area, &r, &w).unwrap();
            assert!(
                in_flight.iter().all(|(h, ..)| *h != head),
                "head reused while in flight"
            );
            in_flight.push((head, r, w));
        }
        q.publish(&area).unwrap();
        // The device takes everything, checks the chains, and returns them in a random order.
        let mut taken = Vec::new();
        while let Some(chain) = dev.pop(&mut *area.0.borrow_mut()).unwrap() {
            let (_, r, w) = in_flight.iter().find(|(h, ..)| *h == chain.head).unwrap();
            assert_eq!((&chain.readable, &chain.writable), (r, w));
            taken.push(chain);
        }
        assert_eq!(taken.len(), in_flight.len());
        let mut expected = Vec::new();
        while !taken.is_empty() {
            let chain = taken
                .swap_remove(usize::try_from(rand(u32::try_from(taken.len()).unwrap())).unwrap());
            let len = u32::try_from(chain.writable_len()).unwrap() - 1;
            dev.push_used(&mut *area.0.borrow_mut(), chain.head, len)
                .unwrap();
            expected.push((chain.head, len));
        }
        let mut got = Vec::new();
        while let Some(used) = q.pop_used(&area).unwrap() {
            got.push(used);
        }
        assert_eq!(got, expected);
        assert_eq!(q.num_free(), 8);
        in_flight.clear();
    }
}

#[test]
fn rng_round_trip_over_70000_requests() {
    let (area, mut q, _) = pair(4);
    let mut rng = Rng::new(CountingEntropy::default());
    rng.activate(0, &[Some(q.queue_config())]).unwrap();
    let mut pos = 0u64;
    for n in 0..70_000u32 {
        // Alternate one and two requests in flight, with varying lengths.
        let batch = 1 + n % 2;
        let mut lens = Vec::new();
        for k in 0..batch {
            let len = 1 + (n + k) % 40;
            let off = BUF_OFF + 0x100 * u64::from(k);
            let head = q.add(&area, &[], &[(BUS + off, len)]).unwrap();
            lens.push((head, off, len));
        }
        q.publish(&area).unwrap();
        let mut mem = area.0.borrow_mut();
        assert!(
            rng.notify(0, &mut *mem as &mut dyn SharedMem, &mut Budget::unlimited())
                .unwrap()
        );
        drop(mem);
        for (head, off, len) in lens {
            assert_eq!(q.pop_used(&area).unwrap(), Some((head, len)));
            let want: Vec<u8> = (pos..pos + u64::from(len))
                .map(CountingEntropy::byte_at)
                .collect();
            assert_eq!(area.bytes(off, usize::try_from(len).unwrap()), want);
            pos += u64::from(len);
        }
        assert_eq!(q.pop_used(&area).unwrap(), None);
        assert_eq!(q.num_free(), 4);
    }
    // Both 16-bit indices wrapped: 105000 requests in all.
    let used_idx = u16_at(&area, q.ring_layout().used + 2);
    assert_eq!(used_idx, u16::try_from(105_000 % 65_536).unwrap());
    assert_eq!(u16_at(&area, q.ring_layout().avail + 2), used_idx);
}

#[test]
fn reset_starts_over() {
    let (area, mut q, _) = pair(4);
    q.add(&area, &[], &[(BUS, 1)]).unwrap();
    q.publish(&area).unwrap();
    q.reset(&area).unwrap();
    assert_eq!(q.num_free(), 4);
    assert_eq!(u16_at(&area, q.ring_layout().avail + 2), 0);
    assert_eq!(q.add(&area, &[], &[(BUS, 1)]).unwrap(), 0);
}

/// Where indirect tables go in the area.
const TABLE_OFF: u64 = 0x4000;

/// `pair` with the ring features `features` on both sides.
fn pair_with(size: u16, features: u64) -> (Area, DriverQueue, SplitQueue) {
    let (area, q, dev) = pair(size);
    (area, q.with_features(features), dev.with_features(features))
}

const RING: u64 = VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX;

#[test]
fn add_indirect_writes_a_table_and_one_descriptor() {
    let (area, mut q, mut dev) = pair_with(4, RING);
    assert_eq!(q.features(), RING);
    let table = (PA + TABLE_OFF, BUS + TABLE_OFF);
    let readable = [(BUS + 0x8000, 16)];
    let writable = [(BUS + 0x9000, 512), (BUS + 0xa000, 1)];
    let head = q.add_indirect(&area, table, &readable, &writable).unwrap();
    assert_eq!((head, q.num_free()), (0, 3));
    // The descriptor: the table's bus address, 3 entries, INDIRECT.
    let mut d = Vec::new();
    d.extend_from_slice(&(BUS + TABLE_OFF).to_le_bytes());
    d.extend_from_slice(&48u32.to_le_bytes());
    d.extend_from_slice(&[4, 0, 0, 0]);
    assert_eq!(area.bytes(0, 16), d);
    // The table: entries chained in order.
    let mut t = Vec::new();
    t.extend_from_slice(&(BUS + 0x8000).to_le_bytes());
    t.extend_from_slice(&16u32.to_le_bytes());
    t.extend_from_slice(&[1, 0, 1, 0]);
    t.extend_from_slice(&(BUS + 0x9000).to_le_bytes());
    t.extend_from_slice(&512u32.to_le_bytes());
    t.extend_from_slice(&[3, 0, 2, 0]);
    t.extend_from_slice(&(BUS + 0xa000).to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&[2, 0, 0, 0]);
    assert_eq!(area.bytes(TABLE_OFF, 48), t);
    assert!(q.publish(&area).unwrap());
    // The partition's queue walks it back into the same buffers.
    let chain = dev.pop(&mut *area.0.borrow_mut()).unwrap().unwrap();
    assert_eq!((chain.head, &chain.readable[..]), (0, &readable[..]));
    assert_eq!(chain.writable, writable);
    dev.push_used(&mut *area.0.borrow_mut(), 0, 513).unwrap();
    assert_eq!(q.pop_used(&area).unwrap(), Some((0, 513)));
    assert_eq!(q.num_free(), 4);
    // A direct chain next to it uses the descriptors as ever.
    assert_eq!(q.add(&area, &[], &[(BUS, 1); 4]).unwrap(), 0);
    assert_eq!(q.num_free(), 0);
}

#[test]
fn add_indirect_refusals() {
    let (area, mut q, _) = pair(4);
    let table = (PA + TABLE_OFF, BUS + TABLE_OFF);
    let one = [(BUS, 1)];
    assert_eq!(
        q.add_indirect(&area, table, &[], &one),
        Err(QueueError::NoIndirect)
    );
    let mut q = q.with_features(VIRTIO_F_INDIRECT_DESC);
    assert_eq!(
        q.add_indirect(&area, table, &[], &[]),
        Err(QueueError::Empty)
    );
    // No chain longer than the queue (§2.7.5.3.1), indirect or not.
    assert_eq!(
        q.add_indirect(&area, table, &[(BUS, 1); 3], &[(BUS, 1); 2]),
        Err(QueueError::TooLong { need: 5, size: 4 })
    );
    q.add_indirect(&area, table, &[(BUS, 1); 2], &[(BUS, 1); 2])
        .unwrap();
    q.add(&area, &[], &[(BUS, 1); 3]).unwrap();
    assert_eq!(
        q.add_indirect(&area, table, &[], &one),
        Err(QueueError::Full { need: 1, free: 0 })
    );
}

#[test]
fn publish_asks_for_a_notification_only_past_avail_event() {
    let (area, mut q, _) = pair_with(16, VIRTIO_F_EVENT_IDX);
    let avail_event = q.ring_layout().used + 4 + 8 * 16;
    let publish = |q: &mut DriverQueue, n: u16| {
        for _ in 0..n {
            q.add(&area, &[], &[(BUS, 1)]).unwrap();
        }
        q.publish(&area).unwrap()
    };
    // avail_event 0: the first buffer (index 0 -> 1) passes it.
    assert!(publish(&mut q, 1));
    // Still 0: 1 -> 3 does not pass it.
    assert!(!publish(&mut q, 2));
    // The device asks for index 4: 3 -> 4 does not reach it, 4 -> 6 passes it.
    area.poke(avail_event, &4u16.to_le_bytes());
    assert!(!publish(&mut q, 1));
    assert!(publish(&mut q, 2));
    // Across the 16-bit wrap: 65534 -> 1 passes 65535.
    area.poke(avail_event, &65535u16.to_le_bytes());
    (q.avail_idx, q.published) = (65534, 65534);
    assert!(publish(&mut q, 3));
    // Without EVENT_IDX: always.
    let (area, mut q, _) = pair(8);
    area.poke(q.ring_layout().used + 4 + 8 * 8, &0x4000u16.to_le_bytes());
    q.add(&area, &[], &[(BUS, 1)]).unwrap();
    assert!(q.publish(&area).unwrap());
    assert!(q.publish(&area).unwrap());
}

#[test]
fn prepare_wait_sets_used_event_and_sees_what_came_before() {
    let (area, mut q, mut dev) = pair_with(4, VIRTIO_F_EVENT_IDX);
    let used_event = q.ring_layout().avail + 4 + 2 * 4;
    q.add(&area, &[], &[(BUS, 1)]).unwrap();
    q.publish(&area).unwrap();
    area.poke(used_event, &0x1234u16.to_le_bytes());
    // Nothing returned yet: used_event is the next entry (0), and no need to look again.
    assert!(!q.prepare_wait(&area).unwrap());
    assert_eq!(u16_at(&area, used_event), 0);
    let c = dev.pop(&mut *area.0.borrow_mut()).unwrap().unwrap();
    dev.push_used(&mut *area.0.borrow_mut(), c.head, 1).unwrap();
    // Returned before the driver looked: it takes it instead of waiting.
    assert!(q.prepare_wait(&area).unwrap());
    assert_eq!(q.pop_used(&area).unwrap(), Some((0, 1)));
    assert!(!q.prepare_wait(&area).unwrap());
    assert_eq!(u16_at(&area, used_event), 1);
    // Without EVENT_IDX nothing is written.
    let (area, mut q, _) = pair(4);
    let used_event = q.ring_layout().avail + 4 + 2 * 4;
    area.poke(used_event, &0x1234u16.to_le_bytes());
    assert!(!q.prepare_wait(&area).unwrap());
    assert_eq!(u16_at(&area, used_event), 0x1234);
}

#[test]
fn rng_with_indirect_tables_and_event_idx_over_70000_requests() {
    // The driver arms used_event before every other kick: the device notifies exactly for
    // those, across the 16-bit wrap of every index; and it always asks to be notified.
    let (area, mut q, _) = pair_with(4, RING);
    let mut rng = Rng::new(CountingEntropy::default());
    rng.activate(VIRTIO_F_VERSION_1 | RING, &[Some(q.queue_config())])
        .unwrap();
    let table = (PA + TABLE_OFF, BUS + TABLE_OFF);
    let mut pos = 0u64;
    for n in 0..70_000u32 {
        let arm = n % 2 == 0;
        if arm {
            assert!(!q.prepare_wait(&area).unwrap());
        }
        // One buffer direct, or two in an indirect table.
        let (a, b) = (1 + n % 40, 1 + (n / 3) % 17);
        let (head, bufs) = if n % 3 == 0 {
            let bufs = vec![(BUF_OFF, a)];
            let head = q.add(&area, &[], &[(BUS + BUF_OFF, a)]).unwrap();
            (head, bufs)
        } else {
            let bufs = vec![(BUF_OFF, a), (BUF_OFF + 0x100, b)];
            let w = [(BUS + BUF_OFF, a), (BUS + BUF_OFF + 0x100, b)];
            (q.add_indirect(&area, table, &[], &w).unwrap(), bufs)
        };
        assert!(
            q.publish(&area).unwrap(),
            "request {n}: the device asks to be notified"
        );
        let mut mem = area.0.borrow_mut();
        let notified = rng
            .notify(0, &mut *mem as &mut dyn SharedMem, &mut Budget::unlimited())
            .unwrap();
        drop(mem);
        assert_eq!(notified, arm || n == 0, "request {n}");
        let total: u32 = bufs.iter().map(|&(_, len)| len).sum();
        assert_eq!(q.pop_used(&area).unwrap(), Some((head, total)));
        for (off, len) in bufs {
            let want: Vec<u8> = (pos..pos + u64::from(len))
                .map(CountingEntropy::byte_at)
                .collect();
            assert_eq!(area.bytes(off, usize::try_from(len).unwrap()), want);
            pos += u64::from(len);
        }
        assert_eq!(q.num_free(), 4);
    }
    assert_eq!(
        u16_at(&area, q.ring_layout().used + 2),
        u16::try_from(70_000 % 65_536).unwrap()
    );
}
