//! Tests of the device-side split queue against a hand-written driver in a `VecMem`.

use virtio_msg::{
    MemError,
    device::{DeviceError, QueueConfig},
    mem::VecMem,
};

use super::*;

const BASE: u64 = 1 << 48;
const DESC: u64 = BASE;
const AVAIL: u64 = BASE + 0x1000;
const USED: u64 = BASE + 0x2000;
/// Indirect tables (up to 128 entries: 2 KiB).
const TABLE: u64 = BASE + 0x3000;
const BUF: u64 = BASE + 0x4000;
const MEM_LEN: usize = 0x8000;

fn config(size: u16) -> QueueConfig {
    QueueConfig {
        size,
        desc_addr: DESC,
        driver_addr: AVAIL,
        device_addr: USED,
    }
}

fn setup(size: u16) -> (VecMem, SplitQueue) {
    (
        VecMem::new(BASE, MEM_LEN),
        SplitQueue::new(config(size)).unwrap(),
    )
}

fn put(mem: &mut VecMem, addr: u64, data: &[u8]) {
    mem.write(addr, data).unwrap();
}

fn get16(mem: &VecMem, addr: u64) -> u16 {
    let mut b = [0; 2];
    mem.read(addr, &mut b).unwrap();
    u16::from_le_bytes(b)
}

fn get32(mem: &VecMem, addr: u64) -> u32 {
    let mut b = [0; 4];
    mem.read(addr, &mut b).unwrap();
    u32::from_le_bytes(b)
}

fn raw_desc(addr: u64, len: u32, flags: u16, next: u16) -> [u8; 16] {
    let mut raw = [0u8; 16];
    raw[0..8].copy_from_slice(&addr.to_le_bytes());
    raw[8..12].copy_from_slice(&len.to_le_bytes());
    raw[12..14].copy_from_slice(&flags.to_le_bytes());
    raw[14..16].copy_from_slice(&next.to_le_bytes());
    raw
}

fn desc(mem: &mut VecMem, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
    put(
        mem,
        DESC + 16 * u64::from(i),
        &raw_desc(addr, len, flags, next),
    );
}

/// An indirect table entry: (addr, len, flags, next).
type Entry = (u64, u32, u16, u16);

/// Writes the indirect table `entries` at `TABLE`; returns its length in bytes.
fn table(mem: &mut VecMem, entries: &[Entry]) -> u32 {
    for (i, &(addr, len, flags, next)) in entries.iter().enumerate() {
        put(
            mem,
            TABLE + 16 * i as u64,
            &raw_desc(addr, len, flags, next),
        );
    }
    u32::try_from(16 * entries.len()).unwrap()
}

/// A table of `n` entries chained in order, each one device-writable byte.
fn chained(n: u16) -> Vec<Entry> {
    (0..n)
        .map(|i| {
            let flags = if i + 1 < n {
                VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT
            } else {
                VIRTQ_DESC_F_WRITE
            };
            (BUF + u64::from(i), 1, flags, i + 1)
        })
        .collect()
}

/// Puts `head` in avail slot `idx % size` and publishes `idx + 1`.
fn offer(mem: &mut VecMem, size: u16, idx: u16, head: u16) {
    put(
        mem,
        AVAIL + 4 + 2 * u64::from(idx % size),
        &head.to_le_bytes(),
    );
    put(mem, AVAIL + 2, &idx.wrapping_add(1).to_le_bytes());
}

fn used_elem(mem: &VecMem, size: u16, idx: u16) -> (u32, u32) {
    let at = USED + 4 + 8 * u64::from(idx % size);
    (get32(mem, at), get32(mem, at + 4))
}

#[test]
fn new_rejects_bad_configs() {
    for size in [0, 3, 6, 65535, 40000] {
        assert_eq!(
            SplitQueue::new(config(size)),
            Err(DeviceError::Queue),
            "size {size}"
        );
    }
    assert!(SplitQueue::new(config(32768)).is_ok());
    assert!(SplitQueue::new(config(1)).is_ok());
    let bad = [
        QueueConfig {
            desc_addr: DESC + 8,
            ..config(8)
        },
        QueueConfig {
            driver_addr: AVAIL + 1,
            ..config(8)
        },
        QueueConfig {
            device_addr: USED + 2,
            ..config(8)
        },
        QueueConfig {
            desc_addr: u64::MAX - 15,
            ..config(8)
        },
        QueueConfig {
            driver_addr: u64::MAX - 19,
            ..config(8)
        },
        QueueConfig {
            device_addr: u64::MAX - 67,
            ..config(8)
        },
    ];
    for c in bad {
        assert_eq!(SplitQueue::new(c), Err(DeviceError::Queue), "{c:?}");
    }
}

#[test]
fn nothing_pending_is_none() {
    let (mut mem, mut q) = setup(8);
    assert_eq!(q.pop(&mut mem).unwrap(), None);
    assert_eq!(q.last_avail_idx(), 0);
}

#[test]
fn single_chain_split_into_readable_and_writable() {
    let (mut mem, mut q) = setup(8);
    desc(&mut mem, 5, BUF, 16, VIRTQ_DESC_F_NEXT, 2);
    desc(&mut mem, 2, BUF + 0x100, 4, VIRTQ_DESC_F_NEXT, 7);
    desc(
        &mut mem,
        7,
        BUF + 0x200,
        512,
        VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
        0,
    );
    desc(&mut mem, 0, BUF + 0x400, 1, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, 8, 0, 5);
    let chain = q.pop(&mut mem).unwrap().unwrap();
    assert_eq!(
        chain,
        DescChain {
            head: 5,
            readable: vec![(BUF, 16), (BUF + 0x100, 4)],
            writable: vec![(BUF + 0x200, 512), (BUF + 0x400, 1)],
        }
    );
    assert_eq!((chain.readable_len(), chain.writable_len()), (20, 513));
    assert_eq!(q.pop(&mut mem).unwrap(), None);

    q.push_used(&mut mem, 5, 300).unwrap();
    assert_eq!(used_elem(&mem, 8, 0), (5, 300));
    assert_eq!(get16(&mem, USED + 2), 1);
    assert_eq!(q.used_idx(), 1);
    // The used flags and the other elements are left alone.
    assert_eq!(get16(&mem, USED), 0);
    assert_eq!(used_elem(&mem, 8, 1), (0, 0));
}

#[test]
fn several_chains_in_order_and_out_of_order_completion() {
    let (mut mem, mut q) = setup(4);
    for i in 0..4u16 {
        desc(
            &mut mem,
            i,
            BUF + 0x100 * u64::from(i),
            8 + u32::from(i),
            VIRTQ_DESC_F_WRITE,
            0,
        );
    }
    // Publish three at once.
    put(&mut mem, AVAIL + 4, &3u16.to_le_bytes());
    put(&mut mem, AVAIL + 6, &1u16.to_le_bytes());
    put(&mut mem, AVAIL + 8, &2u16.to_le_bytes());
    put(&mut mem, AVAIL + 2, &3u16.to_le_bytes());
    let heads: Vec<_> = core::iter::from_fn(|| q.pop(&mut mem).unwrap())
        .map(|c| c.head)
        .collect();
    assert_eq!(heads, [3, 1, 2]);
    q.push_used(&mut mem, 2, 10).unwrap();
    q.push_used(&mut mem, 3, 11).unwrap();
    q.push_used(&mut mem, 1, 9).unwrap();
    assert_eq!(used_elem(&mem, 4, 0), (2, 10));
    assert_eq!(used_elem(&mem, 4, 1), (3, 11));
    assert_eq!(used_elem(&mem, 4, 2), (1, 9));
    assert_eq!(get16(&mem, USED + 2), 3);
    // Nothing more in flight.
    assert_eq!(q.push_used(&mut mem, 0, 0), Err(DeviceError::Queue));
}

#[test]
fn indices_wrap_around_16_bits() {
    let (mut mem, mut q) = setup(4);
    desc(&mut mem, 0, BUF, 4, VIRTQ_DESC_F_WRITE, 0);
    desc(&mut mem, 1, BUF + 4, 4, VIRTQ_DESC_F_WRITE, 0);
    for n in 0..70_000u32 {
        let idx = u16::try_from(n % 65536).unwrap();
        let head = u16::try_from(n % 2).unwrap();
        offer(&mut mem, 4, idx, head);
        let chain = q.pop(&mut mem).unwrap().unwrap();
        assert_eq!(chain.head, head);
        assert_eq!(chain.writable, [(BUF + 4 * u64::from(head), 4)]);
        q.push_used(&mut mem, head, n).unwrap();
        assert_eq!(used_elem(&mem, 4, idx), (u32::from(head), n));
        assert_eq!(get16(&mem, USED + 2), idx.wrapping_add(1));
    }
    assert_eq!(q.last_avail_idx(), u16::try_from(70_000 % 65536).unwrap());
    assert_eq!(q.used_idx(), q.last_avail_idx());
}

#[test]
fn full_ring_across_the_wrap_is_accepted() {
    let (mut mem, mut q) = setup(4);
    for i in 0..4 {
        desc(&mut mem, i, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
    }
    // Move both indices to 65534 by a round of single requests.
    for idx in 0..65534u16 {
        offer(&mut mem, 4, idx, 0);
        let c = q.pop(&mut mem).unwrap().unwrap();
        q.push_used(&mut mem, c.head, 0).unwrap();
    }
    // Four at once: 65534, 65535, 0, 1 — avail idx becomes 2, pending = size exactly.
    for (k, idx) in [65534u16, 65535, 0, 1].into_iter().enumerate() {
        offer(&mut mem, 4, idx, u16::try_from(k).unwrap());
    }
    assert_eq!(get16(&mem, AVAIL + 2), 2);
    let heads: Vec<_> = core::iter::from_fn(|| q.pop(&mut mem).unwrap())
        .map(|c| c.head)
        .collect();
    assert_eq!(heads, [0, 1, 2, 3]);
}

#[test]
fn chain_of_exactly_size_descriptors_is_accepted() {
    let (mut mem, mut q) = setup(8);
    for i in 0..8u16 {
        let last = i == 7;
        let flags = if last {
            VIRTQ_DESC_F_WRITE
        } else {
            VIRTQ_DESC_F_NEXT
        };
        desc(&mut mem, i, BUF, 1, flags, i + 1);
    }
    offer(&mut mem, 8, 0, 0);
    let chain = q.pop(&mut mem).unwrap().unwrap();
    assert_eq!((chain.readable.len(), chain.writable.len()), (7, 1));
}

#[test]
fn zero_length_and_readable_only_chains() {
    let (mut mem, mut q) = setup(2);
    desc(&mut mem, 0, BUF, 0, 0, 0);
    offer(&mut mem, 2, 0, 0);
    let chain = q.pop(&mut mem).unwrap().unwrap();
    assert_eq!(chain.readable, [(BUF, 0)]);
    assert!(chain.writable.is_empty());
}

/// Pops once, expects `err`, and checks nothing was consumed (an `avail_event` written under
/// EVENT_IDX is no consumption).
fn expect_err(mem: &mut VecMem, q: &mut SplitQueue, err: DeviceError) {
    let progress = |q: &SplitQueue| (q.last_avail_idx, q.used_idx, q.in_flight);
    let before = progress(q);
    assert_eq!(q.pop(mem), Err(err));
    assert_eq!(progress(q), before, "a failed pop consumes nothing");
}

#[test]
fn avail_idx_jump_beyond_size_is_refused() {
    let (mut mem, mut q) = setup(8);
    desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
    put(&mut mem, AVAIL + 2, &9u16.to_le_bytes());
    expect_err(&mut mem, &mut q, DeviceError::Queue);
    // Moving backwards looks like a huge jump too.
    put(&mut mem, AVAIL + 2, &0xffffu16.to_le_bytes());
    expect_err(&mut mem, &mut q, DeviceError::Queue);
    // Exactly size pending is fine.
    put(&mut mem, AVAIL + 2, &8u16.to_le_bytes());
    assert!(q.pop(&mut mem).unwrap().is_some());
}

#[test]
fn head_out_of_range_is_refused() {
    let (mut mem, mut q) = setup(8);
    offer(&mut mem, 8, 0, 8);
    expect_err(&mut mem, &mut q, DeviceError::Queue);
    offer(&mut mem, 8, 0, 0xffff);
    expect_err(&mut mem, &mut q, DeviceError::Queue);
}

#[test]
fn next_out_of_range_is_refused() {
    let (mut mem, mut q) = setup(8);
    desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 8);
    offer(&mut mem, 8, 0, 0);
    expect_err(&mut mem, &mut q, DeviceError::Queue);
    // Without NEXT, `next` is not looked at.
    desc(&mut mem, 0, BUF, 1, 0, 8);
    assert!(q.pop(&mut mem).unwrap().is_some());
}

#[test]
fn descriptor_loops_are_refused() {
    let (mut mem, mut q) = setup(8);
    desc(&mut mem, 3, BUF, 1, VIRTQ_DESC_F_NEXT, 3);
    offer(&mut mem, 8, 0, 3);
    expect_err(&mut mem, &mut q, DeviceError::Queue);
    desc(&mut mem, 3, BUF, 1, VIRTQ_DESC_F_NEXT, 4);
    desc(&mut mem, 4, BUF, 1, VIRTQ_DESC_F_NEXT, 5);
    desc(&mut mem, 5, BUF, 1, VIRTQ_DESC_F_NEXT, 3);
    expect_err(&mut mem, &mut q, DeviceError::Queue);
}

#[test]
fn readable_after_writable_is_refused() {
    let (mut mem, mut q) = setup(8);
    desc(
        &mut mem,
        0,
        BUF,
        1,
        VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
        1,
    );
    desc(&mut mem, 1, BUF, 1, 0, 0);
    offer(&mut mem, 8, 0, 0);
    expect_err(&mut mem, &mut q, DeviceError::Queue);
}

#[test]
fn indirect_without_the_feature_and_undefined_flags_are_refused() {
    let (mut mem, mut q) = setup(8);
    // A well-formed table: only the missing feature is wrong.
    table(&mut mem, &[(BUF, 8, VIRTQ_DESC_F_WRITE, 0)]);
    offer(&mut mem, 8, 0, 0);
    for flags in [
        VIRTQ_DESC_F_INDIRECT,
        VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE,
        8,
        0x8000,
    ] {
        desc(&mut mem, 0, TABLE, 16, flags, 0);
        expect_err(&mut mem, &mut q, DeviceError::Queue);
    }
    // Also deep in a chain.
    desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
    desc(&mut mem, 1, TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
    expect_err(&mut mem, &mut q, DeviceError::Queue);
    still_serves(&mut mem, &mut q, 8);
    // The same queue honouring VIRTIO_F_INDIRECT_DESC takes the table.
    let (mut mem, q) = setup(8);
    let mut q = q.with_features(VIRTIO_F_INDIRECT_DESC);
    table(&mut mem, &[(BUF, 8, VIRTQ_DESC_F_WRITE, 0)]);
    desc(&mut mem, 0, TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
    offer(&mut mem, 8, 0, 0);
    assert_eq!(q.pop(&mut mem).unwrap().unwrap().writable, [(BUF, 8)]);
}

#[test]
fn address_overflow_is_refused() {
    let (mut mem, mut q) = setup(8);
    desc(&mut mem, 0, u64::MAX - 3, 4, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, 8, 0, 0);
    expect_err(&mut mem, &mut q, DeviceError::Queue);
    // One byte less ends exactly at the top: not an overflow.
    desc(&mut mem, 0, u64::MAX - 3, 3, VIRTQ_DESC_F_WRITE, 0);
    assert!(q.pop(&mut mem).unwrap().is_some());
}

#[test]
fn rings_outside_memory_are_memory_errors() {
    let mut mem = VecMem::new(BASE, MEM_LEN);
    let far = BASE + 0x10_0000;
    let mut q = SplitQueue::new(QueueConfig {
        driver_addr: far,
        ..config(8)
    })
    .unwrap();
    assert!(matches!(
        q.pop(&mut mem),
        Err(DeviceError::Memory(MemError::OutOfBounds { .. }))
    ));

    // Descriptor table outside memory.
    let mut q = SplitQueue::new(QueueConfig {
        desc_addr: far,
        ..config(8)
    })
    .unwrap();
    offer(&mut mem, 8, 0, 0);
    assert!(matches!(q.pop(&mut mem), Err(DeviceError::Memory(_))));
    assert_eq!(q.last_avail_idx(), 0);

    // Used ring outside memory.
    desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
    let mut q = SplitQueue::new(QueueConfig {
        device_addr: far,
        ..config(8)
    })
    .unwrap();
    let c = q.pop(&mut mem).unwrap().unwrap();
    assert!(matches!(
        q.push_used(&mut mem, c.head, 1),
        Err(DeviceError::Memory(_))
    ));
    assert_eq!(q.used_idx(), 0);
}

#[test]
fn push_used_checks_head() {
    let (mut mem, mut q) = setup(8);
    desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, 8, 0, 0);
    q.pop(&mut mem).unwrap().unwrap();
    assert_eq!(q.push_used(&mut mem, 8, 0), Err(DeviceError::Queue));
    assert_eq!(get16(&mem, USED + 2), 0);
    q.push_used(&mut mem, 0, 1).unwrap();
}

#[test]
fn reset_starts_over() {
    let (mut mem, mut q) = setup(8);
    desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, 8, 0, 0);
    q.pop(&mut mem).unwrap().unwrap();
    q.reset();
    assert_eq!((q.last_avail_idx(), q.used_idx()), (0, 0));
    assert!(q.pop(&mut mem).unwrap().is_some());
}

/// After a refused chain: nothing was consumed, so the refused entry is still next in the
/// available ring; a good chain the driver puts in its place is served and returned (the queue
/// itself is intact; the device would also serve it after the reset the refusal calls for, see
/// `a_refused_chain_then_a_reset_then_good_chains`).
fn still_serves(mem: &mut VecMem, q: &mut SplitQueue, size: u16) {
    let good = size - 1;
    desc(mem, good, BUF + 0x100, 64, VIRTQ_DESC_F_WRITE, 0);
    let idx = q.last_avail_idx();
    offer(mem, size, idx, good);
    let chain = q.pop(mem).unwrap().expect("the good chain is served");
    assert_eq!(chain.head, good);
    assert_eq!(chain.writable, [(BUF + 0x100, 64)]);
    assert!(chain.readable.is_empty());
    q.push_used(mem, good, 64).unwrap();
    assert_eq!(
        used_elem(mem, size, q.used_idx().wrapping_sub(1)),
        (u32::from(good), 64)
    );
}

fn indirect_queue(size: u16) -> (VecMem, SplitQueue) {
    let (mem, q) = setup(size);
    (mem, q.with_features(VIRTIO_F_INDIRECT_DESC))
}

/// Puts an indirect descriptor for the table at `TABLE` (`len` bytes, `flags` besides
/// INDIRECT) in descriptor 0 and offers it.
fn offer_table(mem: &mut VecMem, size: u16, len: u32, flags: u16) {
    desc(mem, 0, TABLE, len, VIRTQ_DESC_F_INDIRECT | flags, 0);
    offer(mem, size, 0, 0);
}

#[test]
fn features_are_honoured_only_when_given() {
    let (_, q) = setup(8);
    assert_eq!(q.features(), 0);
    let q = q.with_features(u64::MAX);
    assert_eq!(q.features(), VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX);
    assert_eq!(
        q.with_features(VIRTIO_F_EVENT_IDX).features(),
        VIRTIO_F_EVENT_IDX
    );
}

#[test]
fn an_indirect_table_is_walked_by_its_next_fields() {
    let (mut mem, mut q) = indirect_queue(8);
    let len = table(
        &mut mem,
        &[
            (BUF, 16, VIRTQ_DESC_F_NEXT, 2),
            (BUF + 0x200, 1, VIRTQ_DESC_F_WRITE, 0),
            (BUF + 0x100, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1),
        ],
    );
    desc(&mut mem, 3, TABLE, len, VIRTQ_DESC_F_INDIRECT, 0);
    offer(&mut mem, 8, 0, 3);
    let chain = q.pop(&mut mem).unwrap().unwrap();
    assert_eq!(
        chain,
        DescChain {
            head: 3,
            readable: vec![(BUF, 16)],
            writable: vec![(BUF + 0x100, 512), (BUF + 0x200, 1)],
        }
    );
    assert_eq!(q.pop(&mut mem).unwrap(), None);
    q.push_used(&mut mem, 3, 513).unwrap();
    assert_eq!(used_elem(&mem, 8, 0), (3, 513));
    assert_eq!(get16(&mem, USED + 2), 1);
}

#[test]
fn the_write_flag_of_the_table_descriptor_is_ignored() {
    // §2.7.5.3.2: "The device MUST ignore the write-only flag ... that refers to an indirect
    // table": the table's readable entry stays readable.
    let (mut mem, mut q) = indirect_queue(8);
    let len = table(
        &mut mem,
        &[
            (BUF, 16, VIRTQ_DESC_F_NEXT, 1),
            (BUF + 16, 1, VIRTQ_DESC_F_WRITE, 0),
        ],
    );
    offer_table(&mut mem, 8, len, VIRTQ_DESC_F_WRITE);
    let chain = q.pop(&mut mem).unwrap().unwrap();
    assert_eq!(
        (chain.readable, chain.writable),
        (vec![(BUF, 16)], vec![(BUF + 16, 1)])
    );
}

#[test]
fn direct_descriptors_may_precede_the_table() {
    // §2.7.5.3.2: "zero or more normal chained descriptors followed by a single descriptor
    // with flags&VIRTQ_DESC_F_INDIRECT".
    let (mut mem, mut q) = indirect_queue(8);
    let len = table(
        &mut mem,
        &[
            (BUF + 16, 32, VIRTQ_DESC_F_NEXT, 1),
            (BUF + 48, 4, VIRTQ_DESC_F_WRITE, 0),
        ],
    );
    desc(&mut mem, 5, BUF, 16, VIRTQ_DESC_F_NEXT, 6);
    desc(&mut mem, 6, TABLE, len, VIRTQ_DESC_F_INDIRECT, 0);
    offer(&mut mem, 8, 0, 5);
    let chain = q.pop(&mut mem).unwrap().unwrap();
    assert_eq!(chain.head, 5);
    assert_eq!(chain.readable, [(BUF, 16), (BUF + 16, 32)]);
    assert_eq!(chain.writable, [(BUF + 48, 4)]);
}

#[test]
fn tables_up_to_the_local_copy_are_accepted_whatever_the_queue_size() {
    // Linux's virtio_ring makes a table of as many entries as a request has segments, even
    // past a small queue's size: a queue of 8 takes a table of 8, 9 and MAX_INDIRECT_DESCS.
    for n in [1, 8, 9, MAX_INDIRECT_DESCS] {
        let (mut mem, mut q) = indirect_queue(8);
        let len = table(&mut mem, &chained(n));
        offer_table(&mut mem, 8, len, 0);
        let chain = q.pop(&mut mem).unwrap().unwrap();
        assert_eq!(chain.writable.len(), usize::from(n));
        q.push_used(&mut mem, 0, 0).unwrap();
    }
    // Seven direct descriptors before a table of MAX_INDIRECT_DESCS: the longest chain.
    let (mut mem, mut q) = indirect_queue(8);
    let len = table(&mut mem, &chained(MAX_INDIRECT_DESCS));
    for i in 0..7 {
        desc(&mut mem, i, BUF, 4, VIRTQ_DESC_F_NEXT, i + 1);
    }
    desc(&mut mem, 7, TABLE, len, VIRTQ_DESC_F_INDIRECT, 0);
    offer(&mut mem, 8, 0, 0);
    let chain = q.pop(&mut mem).unwrap().unwrap();
    assert_eq!(
        (chain.readable.len(), chain.writable.len()),
        (7, usize::from(MAX_INDIRECT_DESCS))
    );
}

#[test]
fn a_table_longer_than_the_local_copy_is_refused() {
    for size in [8, 256] {
        let (mut mem, mut q) = indirect_queue(size);
        // Even one whose walk would end at its first entry.
        let mut entries = chained(MAX_INDIRECT_DESCS + 1);
        entries[0].2 = VIRTQ_DESC_F_WRITE;
        let len = table(&mut mem, &entries);
        offer_table(&mut mem, size, len, 0);
        expect_err(&mut mem, &mut q, DeviceError::Queue);
        let len = table(&mut mem, &chained(MAX_INDIRECT_DESCS + 1));
        offer_table(&mut mem, size, len, 0);
        expect_err(&mut mem, &mut q, DeviceError::Queue);
        still_serves(&mut mem, &mut q, size);
    }
}

#[test]
fn table_lengths_other_than_a_positive_multiple_of_16_are_refused() {
    let (mut mem, mut q) = indirect_queue(8);
    table(&mut mem, &chained(2));
    for len in [0, 1, 8, 15, 17, 24, 40, u32::MAX] {
        offer_table(&mut mem, 8, len, 0);
        expect_err(&mut mem, &mut q, DeviceError::Queue);
    }
    still_serves(&mut mem, &mut q, 8);
}

#[test]
fn indirect_together_with_next_is_refused() {
    let (mut mem, mut q) = indirect_queue(8);
    let len = table(&mut mem, &chained(2));
    desc(
        &mut mem,
        0,
        TABLE,
        len,
        VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT,
        1,
    );
    desc(&mut mem, 1, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, 8, 0, 0);
    expect_err(&mut mem, &mut q, DeviceError::Queue);
    still_serves(&mut mem, &mut q, 8);
}

#[test]
fn an_indirect_table_inside_an_indirect_table_is_refused() {
    let (mut mem, mut q) = indirect_queue(8);
    // Entry 1 names a table (itself, or any other): refused wherever it sits in the walk.
    for flags in [
        VIRTQ_DESC_F_INDIRECT,
        VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE,
    ] {
        let len = table(
            &mut mem,
            &[(BUF, 16, VIRTQ_DESC_F_NEXT, 1), (TABLE, 32, flags, 0)],
        );
        offer_table(&mut mem, 8, len, 0);
        expect_err(&mut mem, &mut q, DeviceError::Queue);
        let len = table(&mut mem, &[(TABLE, 16, flags, 0)]);
        offer_table(&mut mem, 8, len, 0);
        expect_err(&mut mem, &mut q, DeviceError::Queue);
    }
    still_serves(&mut mem, &mut q, 8);
}

#[test]
fn undefined_flags_in_a_table_are_refused() {
    let (mut mem, mut q) = indirect_queue(8);
    for flags in [8, 0x10, 0x8000, VIRTQ_DESC_F_WRITE | 0x100] {
        let len = table(&mut mem, &[(BUF, 16, flags, 0)]);
        offer_table(&mut mem, 8, len, 0);
        expect_err(&mut mem, &mut q, DeviceError::Queue);
    }
    // And on the descriptor naming the table.
    let len = table(&mut mem, &chained(1));
    offer_table(&mut mem, 8, len, 8);
    expect_err(&mut mem, &mut q, DeviceError::Queue);
    still_serves(&mut mem, &mut q, 8);
}

#[test]
fn a_table_next_outside_the_table_is_refused() {
    let (mut mem, mut q) = indirect_queue(8);
    // `next` is an index into the table (2 entries here), not into the queue's 8.
    for next in [2, 7, 8, 0xffff] {
        let len = table(
            &mut mem,
            &[
                (BUF, 16, VIRTQ_DESC_F_NEXT, next),
                (BUF, 1, VIRTQ_DESC_F_WRITE, 0),
            ],
        );
        offer_table(&mut mem, 8, len, 0);
        expect_err(&mut mem, &mut q, DeviceError::Queue);
    }
    // Without NEXT, `next` is not looked at.
    let len = table(&mut mem, &[(BUF, 1, VIRTQ_DESC_F_WRITE, 0xffff)]);
    offer_table(&mut mem, 8, len, 0);
    assert!(q.pop(&mut mem).unwrap().is_some());
    still_serves(&mut mem, &mut q, 8);
}

#[test]
fn loops_in_a_table_are_refused() {
    let (mut mem, mut q) = indirect_queue(8);
    let n = VIRTQ_DESC_F_NEXT;
    let loops: [&[Entry]; 3] = [
        &[(BUF, 1, n, 0)],
        &[(BUF, 1, n, 1), (BUF, 1, n, 0)],
        &[
            (BUF, 1, n, 1),
            (BUF, 1, n, 2),
            (BUF, 1, n, 1),
            (BUF, 1, 0, 0),
        ],
    ];
    for entries in loops {
        let len = table(&mut mem, entries);
        offer_table(&mut mem, 8, len, 0);
        expect_err(&mut mem, &mut q, DeviceError::Queue);
    }
    still_serves(&mut mem, &mut q, 8);
}

#[test]
fn readable_after_writable_is_refused_across_the_direct_part_and_the_table() {
    let (mut mem, mut q) = indirect_queue(8);
    // Inside the table.
    let len = table(
        &mut mem,
        &[
            (BUF, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1),
            (BUF, 1, 0, 0),
        ],
    );
    offer_table(&mut mem, 8, len, 0);
    expect_err(&mut mem, &mut q, DeviceError::Queue);
    // A writable direct descriptor, then a table that starts readable.
    let len = table(&mut mem, &[(BUF, 1, 0, 0)]);
    desc(
        &mut mem,
        1,
        BUF,
        1,
        VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
        2,
    );
    desc(&mut mem, 2, TABLE, len, VIRTQ_DESC_F_INDIRECT, 0);
    offer(&mut mem, 8, 0, 1);
    expect_err(&mut mem, &mut q, DeviceError::Queue);
    // ... a table of writables after it is fine.
    let len = table(&mut mem, &[(BUF, 1, VIRTQ_DESC_F_WRITE, 0)]);
    desc(&mut mem, 2, TABLE, len, VIRTQ_DESC_F_INDIRECT, 0);
    let chain = q.pop(&mut mem).unwrap().unwrap();
    assert_eq!(chain.writable, [(BUF, 1), (BUF, 1)]);
    q.push_used(&mut mem, 1, 2).unwrap();
    still_serves(&mut mem, &mut q, 8);
}

#[test]
fn wrapping_tables_and_entries_are_refused() {
    let (mut mem, mut q) = indirect_queue(8);
    desc(&mut mem, 0, u64::MAX - 15, 32, VIRTQ_DESC_F_INDIRECT, 0);
    offer(&mut mem, 8, 0, 0);
    expect_err(&mut mem, &mut q, DeviceError::Queue);
    let len = table(&mut mem, &[(u64::MAX - 3, 4, VIRTQ_DESC_F_WRITE, 0)]);
    offer_table(&mut mem, 8, len, 0);
    expect_err(&mut mem, &mut q, DeviceError::Queue);
    // One byte less ends exactly at the top: not a wrap.
    table(&mut mem, &[(u64::MAX - 3, 3, VIRTQ_DESC_F_WRITE, 0)]);
    assert_eq!(
        q.pop(&mut mem).unwrap().unwrap().writable,
        [(u64::MAX - 3, 3)]
    );
    q.push_used(&mut mem, 0, 0).unwrap();
    still_serves(&mut mem, &mut q, 8);
}

#[test]
fn tables_outside_shared_memory_are_memory_errors() {
    let (mut mem, mut q) = indirect_queue(8);
    let end = BASE + MEM_LEN as u64;
    // An unknown area, the end of the area straddled, and just past its end.
    for (at, len) in [
        (2 << 48, 16),
        (BASE + 0x10_0000, 32),
        (end - 16, 32),
        (end, 16),
    ] {
        desc(&mut mem, 0, at, len, VIRTQ_DESC_F_INDIRECT, 0);
        offer(&mut mem, 8, 0, 0);
        let before = (q.last_avail_idx(), q.used_idx());
        assert!(
            matches!(
                q.pop(&mut mem),
                Err(DeviceError::Memory(MemError::OutOfBounds { .. }))
            ),
            "{at:#x}+{len}"
        );
        assert_eq!((q.last_avail_idx(), q.used_idx()), before);
    }
    // The last 16 bytes of the area are a table like any other.
    put(&mut mem, end - 16, &raw_desc(BUF, 2, VIRTQ_DESC_F_WRITE, 0));
    desc(&mut mem, 0, end - 16, 16, VIRTQ_DESC_F_INDIRECT, 0);
    assert_eq!(q.pop(&mut mem).unwrap().unwrap().writable, [(BUF, 2)]);
    q.push_used(&mut mem, 0, 0).unwrap();
    still_serves(&mut mem, &mut q, 8);
}

/// A `SharedMem` that records every read.
struct Recorded {
    mem: VecMem,
    reads: std::cell::RefCell<Vec<(u64, usize)>>,
}

impl SharedMem for Recorded {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.reads.borrow_mut().push((addr, buf.len()));
        self.mem.read(addr, buf)
    }
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), MemError> {
        self.mem.write(addr, data)
    }
}

#[test]
fn the_table_is_read_from_shared_memory_once() {
    let (mut mem, mut q) = indirect_queue(8);
    // Entries visited out of order (0, 3, 1, 2), so a walk reading entry by entry would
    // read four times.
    let len = table(
        &mut mem,
        &[
            (BUF, 16, VIRTQ_DESC_F_NEXT, 3),
            (BUF + 32, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2),
            (BUF + 48, 1, VIRTQ_DESC_F_WRITE, 0),
            (BUF + 16, 16, VIRTQ_DESC_F_NEXT, 1),
        ],
    );
    offer_table(&mut mem, 8, len, 0);
    let mut rec = Recorded {
        mem,
        reads: Default::default(),
    };
    let chain = q.pop(&mut rec).unwrap().unwrap();
    assert_eq!(chain.readable, [(BUF, 16), (BUF + 16, 16)]);
    assert_eq!(chain.writable, [(BUF + 32, 8), (BUF + 48, 1)]);
    let table_end = TABLE + u64::from(len);
    let touching: Vec<_> = rec
        .reads
        .borrow()
        .iter()
        .copied()
        .filter(|&(addr, n)| addr < table_end && addr + n as u64 > TABLE)
        .collect();
    assert_eq!(touching, [(TABLE, 64)]);
}

#[test]
fn a_refused_chain_then_a_reset_then_good_chains() {
    // The refusal is the device's DEVICE_NEEDS_RESET (the engine's policy for every
    // DeviceError); after the driver's reset the queue serves direct and indirect chains.
    let (mut mem, mut q) = indirect_queue(8);
    let len = table(&mut mem, &[(TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0)]);
    offer_table(&mut mem, 8, len, 0);
    expect_err(&mut mem, &mut q, DeviceError::Queue);
    q.reset();
    put(&mut mem, AVAIL, &[0; 4]);
    put(&mut mem, USED, &[0; 4]);
    let len = table(&mut mem, &chained(3));
    offer_table(&mut mem, 8, len, 0);
    desc(&mut mem, 1, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, 8, 1, 1);
    let first = q.pop(&mut mem).unwrap().unwrap();
    assert_eq!(first.writable.len(), 3);
    let second = q.pop(&mut mem).unwrap().unwrap();
    assert_eq!(second.writable, [(BUF, 8)]);
    q.push_used(&mut mem, 0, 3).unwrap();
    q.push_used(&mut mem, 1, 8).unwrap();
    assert_eq!(get16(&mem, USED + 2), 2);
}

/// Bus address of `avail_event` (after the used ring) and `used_event` (after the available
/// ring) in a queue of `size`.
fn avail_event_at(size: u16) -> u64 {
    USED + 4 + 8 * u64::from(size)
}
fn used_event_at(size: u16) -> u64 {
    AVAIL + 4 + 2 * u64::from(size)
}

fn event_queue(size: u16) -> (VecMem, SplitQueue) {
    let (mem, q) = setup(size);
    (mem, q.with_features(VIRTIO_F_EVENT_IDX))
}

/// Serves every available chain of `q` (each returned with used length 0); whether the driver
/// is to be notified.
fn serve_all(mem: &mut VecMem, q: &mut SplitQueue) -> bool {
    q.serve_chains(mem, &mut Budget::unlimited(), |_, _| Ok((0, 0)))
        .unwrap()
}

#[test]
fn need_event_is_the_spec_rule_in_wrapping_u16() {
    // (event, new, old, notify): `event` in old..new, with the indices wrapping at 2^16.
    let cases = [
        (0, 1, 0, true),
        (1, 1, 0, false),
        (0, 2, 1, false),
        (5, 7, 4, true),
        (4, 7, 4, true),
        (7, 7, 4, false),
        (3, 7, 4, false),
        (65535, 0, 65535, true),
        (65535, 1, 65534, true),
        (0, 1, 65534, true),
        (1, 1, 65534, false),
        (65533, 1, 65534, false),
        (65534, 2, 65534, true),
        (0, 0, 0, false),
        (100, 99, 100, true), // a whole lap: every event is passed
    ];
    for (event, new, old, notify) in cases {
        assert_eq!(need_event(event, new, old), notify, "{event} {new} {old}");
    }
}

#[test]
fn without_event_idx_neither_event_field_is_touched() {
    let (mut mem, mut q) = setup(4);
    put(&mut mem, avail_event_at(4), &0xdeadu16.to_le_bytes());
    // A used_event that, were it read, would suppress every notification.
    put(&mut mem, used_event_at(4), &0x8000u16.to_le_bytes());
    for i in 0..4u16 {
        desc(&mut mem, i, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
    }
    for idx in 0..10u16 {
        offer(&mut mem, 4, idx, idx % 4);
        assert!(
            serve_all(&mut mem, &mut q),
            "every pass that returned buffers notifies"
        );
        assert!(
            !serve_all(&mut mem, &mut q),
            "nothing returned: nothing to notify"
        );
    }
    assert_eq!(get16(&mem, avail_event_at(4)), 0xdead);
}

#[test]
fn avail_event_follows_the_available_index() {
    let (mut mem, mut q) = event_queue(8);
    put(&mut mem, avail_event_at(8), &0xdeadu16.to_le_bytes());
    for i in 0..3 {
        desc(&mut mem, i, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
    }
    // Nothing available: the device says "notify me at entry 0".
    assert_eq!(q.pop(&mut mem).unwrap(), None);
    assert_eq!(get16(&mem, avail_event_at(8)), 0);
    offer(&mut mem, 8, 0, 0);
    offer(&mut mem, 8, 1, 1);
    assert!(q.pop(&mut mem).unwrap().is_some());
    assert_eq!(get16(&mem, avail_event_at(8)), 2);
    assert!(q.pop(&mut mem).unwrap().is_some());
    assert_eq!(q.pop(&mut mem).unwrap(), None);
    assert_eq!(get16(&mem, avail_event_at(8)), 2);
    offer(&mut mem, 8, 2, 2);
    assert!(q.pop(&mut mem).unwrap().is_some());
    assert_eq!(get16(&mem, avail_event_at(8)), 3);
    // A refused index is not echoed.
    put(&mut mem, AVAIL + 2, &100u16.to_le_bytes());
    expect_err(&mut mem, &mut q, DeviceError::Queue);
    assert_eq!(get16(&mem, avail_event_at(8)), 3);
}

/// Memory whose driver makes one more chain available the moment the device writes
/// `avail_event`: what a driver on another CPU can do between the device's look at the
/// available index and its write.
struct Racing {
    mem: VecMem,
    size: u16,
    raced: bool,
}

impl SharedMem for Racing {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.mem.read(addr, buf)
    }
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), MemError> {
        self.mem.write(addr, data)?;
        if addr == avail_event_at(self.size) && !self.raced {
            self.raced = true;
            let idx = get16(&self.mem, AVAIL + 2);
            offer(&mut self.mem, self.size, idx, 1);
        }
        Ok(())
    }
}

#[test]
fn a_buffer_made_available_while_avail_event_is_written_is_served() {
    let (mut mem, q) = event_queue(4);
    desc(&mut mem, 1, BUF, 4, VIRTQ_DESC_F_WRITE, 0);
    let mut mem = Racing {
        mem,
        size: 4,
        raced: false,
    };
    let mut q = q;
    // The ring looked empty; the driver added a chain before it could see `avail_event`
    // (so it would not notify): the same pop finds it.
    let chain = q.pop(&mut mem).unwrap().unwrap();
    assert!(mem.raced);
    assert_eq!(chain.head, 1);
    // Without EVENT_IDX nothing is written, so nothing races, and the second look is not made.
    let (mem, mut q) = setup(4);
    let mut mem = Racing {
        mem,
        size: 4,
        raced: false,
    };
    assert_eq!(q.pop(&mut mem).unwrap(), None);
    assert!(!mem.raced);
}

#[test]
fn used_event_suppresses_notifications_until_the_driver_asks() {
    let (mut mem, mut q) = event_queue(8);
    for i in 0..8 {
        desc(&mut mem, i, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
    }
    let mut idx = 0u16;
    let mut offer_n = |mem: &mut VecMem, n: u16| {
        for _ in 0..n {
            offer(mem, 8, idx, idx % 8);
            idx = idx.wrapping_add(1);
        }
    };
    // The first pass after the queue starts notifies whatever used_event says.
    put(&mut mem, used_event_at(8), &0x4000u16.to_le_bytes());
    offer_n(&mut mem, 1);
    assert!(serve_all(&mut mem, &mut q));
    // The driver did not ask again (used_event = 0x4000, far ahead): suppressed.
    offer_n(&mut mem, 1);
    assert!(!serve_all(&mut mem, &mut q));
    // It asks to hear of the next used entry (index 2): notified.
    put(&mut mem, used_event_at(8), &2u16.to_le_bytes());
    offer_n(&mut mem, 1);
    assert!(serve_all(&mut mem, &mut q));
    // It asks to hear once entry 5 is used: not at 3, not at 4, yes when 5 and 6 go back.
    put(&mut mem, used_event_at(8), &5u16.to_le_bytes());
    offer_n(&mut mem, 1);
    assert!(!serve_all(&mut mem, &mut q));
    offer_n(&mut mem, 1);
    assert!(!serve_all(&mut mem, &mut q));
    offer_n(&mut mem, 2);
    assert!(serve_all(&mut mem, &mut q));
    // A used_event left behind (already passed) suppresses until moved.
    offer_n(&mut mem, 3);
    assert!(!serve_all(&mut mem, &mut q));
    assert_eq!(q.used_idx(), 10);
    // A pass that returned nothing never notifies.
    put(&mut mem, used_event_at(8), &10u16.to_le_bytes());
    assert!(!serve_all(&mut mem, &mut q));
}

#[test]
fn event_indices_wrap_at_16_bits() {
    // 70 000 chains in passes of 1 to 3, the driver moving used_event by a pseudo-random
    // step: each decision is checked against "used_event is one of the entries this pass
    // returned", counted entry by entry (no modular arithmetic), across the 2^16 wrap.
    let (mut mem, mut q) = event_queue(4);
    for i in 0..4 {
        desc(&mut mem, i, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
    }
    let (mut avail, mut seed, mut served) = (0u16, 12345u32, 0u32);
    let mut first = true;
    let mut wrapped = (false, false);
    while served < 70_000 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let n = u16::try_from(seed >> 16).unwrap() % 3 + 1;
        let event = q.used_idx().wrapping_add(u16::try_from(seed % 5).unwrap());
        put(&mut mem, used_event_at(4), &event.to_le_bytes());
        let old = q.used_idx();
        for _ in 0..n {
            offer(&mut mem, 4, avail, avail % 4);
            avail = avail.wrapping_add(1);
        }
        let notified = serve_all(&mut mem, &mut q);
        let new = q.used_idx();
        let passed = (0..n).any(|k| old.wrapping_add(k) == event);
        assert_eq!(notified, first || passed, "event {event}, {old} -> {new}");
        assert_eq!(get16(&mem, avail_event_at(4)), avail, "avail_event");
        wrapped.0 |= new < old;
        wrapped.1 |= passed && event < old;
        first = false;
        served += u32::from(n);
    }
    assert_eq!(
        wrapped,
        (true, true),
        "the wrap was crossed, and notified across"
    );
}

#[test]
fn a_pass_stopped_by_its_budget_asks_for_a_notification_at_the_next_buffer() {
    let (mut mem, mut q) = event_queue(8);
    for i in 0..4u16 {
        desc(&mut mem, i, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
        offer(&mut mem, 8, i, i);
    }
    let mut budget = Budget::bytes(1);
    let notify = q
        .serve_chains(&mut mem, &mut budget, |_, _| Ok((0, 0)))
        .unwrap();
    assert!(notify);
    assert_eq!(q.last_avail_idx(), 1);
    // avail_event is the index the device saw (4), so the driver's next buffer (index 4,
    // moving its index from 4 to 5) is notified for, and that notification resumes the rest.
    let avail_event = get16(&mem, avail_event_at(8));
    assert_eq!(avail_event, 4);
    assert!(need_event(avail_event, 5, 4));
}

#[test]
fn reset_forgets_the_event_state() {
    let (mut mem, mut q) = event_queue(4);
    desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, 4, 0, 0);
    assert!(serve_all(&mut mem, &mut q));
    offer(&mut mem, 4, 1, 0);
    assert!(!serve_all(&mut mem, &mut q));
    q.reset();
    mem.bytes[0x1000..0x3000].fill(0);
    // A used_event that would suppress this pass were the state before the reset kept
    // (entry 1, which the pass returns as its last: "passed" only from 0..2, not 2..2).
    put(&mut mem, used_event_at(4), &1u16.to_le_bytes());
    offer(&mut mem, 4, 0, 0);
    offer(&mut mem, 4, 1, 0);
    // The first pass after the reset notifies again, and avail_event is written again (the
    // available index, 2, is the one last written before the reset).
    assert!(serve_all(&mut mem, &mut q));
    assert_eq!(get16(&mem, avail_event_at(4)), 2);
    assert_eq!(q.features(), VIRTIO_F_EVENT_IDX, "features outlive a reset");
}

#[test]
fn used_event_outside_shared_memory_is_a_memory_error() {
    // A driver ring that ends before `used_event`: the used element went back, the decision
    // cannot be made, and the error is the device's (DEVICE_NEEDS_RESET).
    let size = 4;
    let mut mem = VecMem::new(BASE, 0x1000 + 4 + 2 * usize::from(size));
    let mut q = SplitQueue::new(QueueConfig {
        size,
        desc_addr: DESC,
        driver_addr: AVAIL,
        device_addr: DESC + 0x100,
    })
    .unwrap()
    .with_features(VIRTIO_F_EVENT_IDX);
    desc(&mut mem, 0, DESC + 0x200, 1, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, size, 0, 0);
    assert!(matches!(
        q.serve_chains(&mut mem, &mut Budget::unlimited(), |_, _| Ok((1, 1))),
        Err(DeviceError::Memory(MemError::OutOfBounds { .. }))
    ));
    assert_eq!(q.used_idx(), 1);
}

/// Counts the reads of one address (the available ring's index).
struct CountingMem {
    inner: VecMem,
    watched: u64,
    reads: core::cell::Cell<u32>,
}

impl SharedMem for CountingMem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        if addr == self.watched {
            self.reads.set(self.reads.get() + 1);
        }
        self.inner.read(addr, buf)
    }
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), MemError> {
        self.inner.write(addr, data)
    }
}

#[test]
fn a_pass_reads_the_available_index_once_without_event_idx() {
    let size = 8;
    let (mut inner, mut q) = setup(size);
    for i in 0..3 {
        desc(
            &mut inner,
            i,
            BUF + 64 * u64::from(i),
            64,
            VIRTQ_DESC_F_WRITE,
            0,
        );
        offer(&mut inner, size, i, i);
    }
    let mut mem = CountingMem {
        inner,
        watched: AVAIL + 2,
        reads: core::cell::Cell::new(0),
    };
    let mut served = 0;
    q.serve_chains(&mut mem, &mut Budget::unlimited(), |_, _| {
        served += 1;
        Ok((64, 64))
    })
    .unwrap();
    assert_eq!(served, 3);
    assert_eq!(mem.reads.get(), 1, "one look at avail idx for three chains");
    // What the driver makes available later comes with its own notification: the next pass.
    desc(&mut mem.inner, 3, BUF + 192, 64, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem.inner, size, 3, 3);
    q.serve_chains(&mut mem, &mut Budget::unlimited(), |_, _| {
        served += 1;
        Ok((64, 64))
    })
    .unwrap();
    assert_eq!((served, mem.reads.get()), (4, 2));
    assert_eq!(used_elem(&mem.inner, size, 3), (3, 64));
    // Under EVENT_IDX the pass looks again once the snapshot is taken (and announces it).
    let (mut inner, q) = setup(size);
    let mut q = q.with_features(VIRTIO_F_EVENT_IDX);
    desc(&mut inner, 0, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut inner, size, 0, 0);
    let mut mem = CountingMem {
        inner,
        watched: AVAIL + 2,
        reads: core::cell::Cell::new(0),
    };
    q.serve_chains(&mut mem, &mut Budget::unlimited(), |_, _| Ok((64, 64)))
        .unwrap();
    assert!(mem.reads.get() >= 2, "{} reads", mem.reads.get());
}
