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

fn desc(mem: &mut VecMem, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
    let mut raw = [0u8; 16];
    raw[0..8].copy_from_slice(&addr.to_le_bytes());
    raw[8..12].copy_from_slice(&len.to_le_bytes());
    raw[12..14].copy_from_slice(&flags.to_le_bytes());
    raw[14..16].copy_from_slice(&next.to_le_bytes());
    put(mem, DESC + 16 * u64::from(i), &raw);
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
    let (mem, mut q) = setup(8);
    assert_eq!(q.pop(&mem).unwrap(), None);
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
    let chain = q.pop(&mem).unwrap().unwrap();
    assert_eq!(
        chain,
        DescChain {
            head: 5,
            readable: vec![(BUF, 16), (BUF + 0x100, 4)],
            writable: vec![(BUF + 0x200, 512), (BUF + 0x400, 1)],
        }
    );
    assert_eq!((chain.readable_len(), chain.writable_len()), (20, 513));
    assert_eq!(q.pop(&mem).unwrap(), None);

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
    let heads: Vec<_> = core::iter::from_fn(|| q.pop(&mem).unwrap())
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
        let chain = q.pop(&mem).unwrap().unwrap();
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
        let c = q.pop(&mem).unwrap().unwrap();
        q.push_used(&mut mem, c.head, 0).unwrap();
    }
    // Four at once: 65534, 65535, 0, 1 — avail idx becomes 2, pending = size exactly.
    for (k, idx) in [65534u16, 65535, 0, 1].into_iter().enumerate() {
        offer(&mut mem, 4, idx, u16::try_from(k).unwrap());
    }
    assert_eq!(get16(&mem, AVAIL + 2), 2);
    let heads: Vec<_> = core::iter::from_fn(|| q.pop(&mem).unwrap())
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
    let chain = q.pop(&mem).unwrap().unwrap();
    assert_eq!((chain.readable.len(), chain.writable.len()), (7, 1));
}

#[test]
fn zero_length_and_readable_only_chains() {
    let (mut mem, mut q) = setup(2);
    desc(&mut mem, 0, BUF, 0, 0, 0);
    offer(&mut mem, 2, 0, 0);
    let chain = q.pop(&mem).unwrap().unwrap();
    assert_eq!(chain.readable, [(BUF, 0)]);
    assert!(chain.writable.is_empty());
}

/// Pops once, expects `err`, and checks nothing was consumed.
fn expect_err(mem: &VecMem, q: &mut SplitQueue, err: DeviceError) {
    let before = q.clone();
    assert_eq!(q.pop(mem), Err(err));
    assert_eq!(*q, before, "a failed pop consumes nothing");
}

#[test]
fn avail_idx_jump_beyond_size_is_refused() {
    let (mut mem, mut q) = setup(8);
    desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
    put(&mut mem, AVAIL + 2, &9u16.to_le_bytes());
    expect_err(&mem, &mut q, DeviceError::Queue);
    // Moving backwards looks like a huge jump too.
    put(&mut mem, AVAIL + 2, &0xffffu16.to_le_bytes());
    expect_err(&mem, &mut q, DeviceError::Queue);
    // Exactly size pending is fine.
    put(&mut mem, AVAIL + 2, &8u16.to_le_bytes());
    assert!(q.pop(&mem).unwrap().is_some());
}

#[test]
fn head_out_of_range_is_refused() {
    let (mut mem, mut q) = setup(8);
    offer(&mut mem, 8, 0, 8);
    expect_err(&mem, &mut q, DeviceError::Queue);
    offer(&mut mem, 8, 0, 0xffff);
    expect_err(&mem, &mut q, DeviceError::Queue);
}

#[test]
fn next_out_of_range_is_refused() {
    let (mut mem, mut q) = setup(8);
    desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 8);
    offer(&mut mem, 8, 0, 0);
    expect_err(&mem, &mut q, DeviceError::Queue);
    // Without NEXT, `next` is not looked at.
    desc(&mut mem, 0, BUF, 1, 0, 8);
    assert!(q.pop(&mem).unwrap().is_some());
}

#[test]
fn descriptor_loops_are_refused() {
    let (mut mem, mut q) = setup(8);
    desc(&mut mem, 3, BUF, 1, VIRTQ_DESC_F_NEXT, 3);
    offer(&mut mem, 8, 0, 3);
    expect_err(&mem, &mut q, DeviceError::Queue);
    desc(&mut mem, 3, BUF, 1, VIRTQ_DESC_F_NEXT, 4);
    desc(&mut mem, 4, BUF, 1, VIRTQ_DESC_F_NEXT, 5);
    desc(&mut mem, 5, BUF, 1, VIRTQ_DESC_F_NEXT, 3);
    expect_err(&mem, &mut q, DeviceError::Queue);
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
    expect_err(&mem, &mut q, DeviceError::Queue);
}

#[test]
fn indirect_and_undefined_flags_are_refused() {
    let (mut mem, mut q) = setup(8);
    offer(&mut mem, 8, 0, 0);
    for flags in [
        VIRTQ_DESC_F_INDIRECT,
        VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE,
        8,
        0x8000,
    ] {
        desc(&mut mem, 0, BUF, 32, flags, 0);
        expect_err(&mem, &mut q, DeviceError::Queue);
    }
    // Also deep in a chain.
    desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
    desc(&mut mem, 1, BUF, 32, VIRTQ_DESC_F_INDIRECT, 0);
    expect_err(&mem, &mut q, DeviceError::Queue);
}

#[test]
fn address_overflow_is_refused() {
    let (mut mem, mut q) = setup(8);
    desc(&mut mem, 0, u64::MAX - 3, 4, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, 8, 0, 0);
    expect_err(&mem, &mut q, DeviceError::Queue);
    // One byte less ends exactly at the top: not an overflow.
    desc(&mut mem, 0, u64::MAX - 3, 3, VIRTQ_DESC_F_WRITE, 0);
    assert!(q.pop(&mem).unwrap().is_some());
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
        q.pop(&mem),
        Err(DeviceError::Memory(MemError::OutOfBounds { .. }))
    ));

    // Descriptor table outside memory.
    let mut q = SplitQueue::new(QueueConfig {
        desc_addr: far,
        ..config(8)
    })
    .unwrap();
    offer(&mut mem, 8, 0, 0);
    assert!(matches!(q.pop(&mem), Err(DeviceError::Memory(_))));
    assert_eq!(q.last_avail_idx(), 0);

    // Used ring outside memory.
    desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
    let mut q = SplitQueue::new(QueueConfig {
        device_addr: far,
        ..config(8)
    })
    .unwrap();
    let c = q.pop(&mem).unwrap().unwrap();
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
    q.pop(&mem).unwrap().unwrap();
    assert_eq!(q.push_used(&mut mem, 8, 0), Err(DeviceError::Queue));
    assert_eq!(get16(&mem, USED + 2), 0);
    q.push_used(&mut mem, 0, 1).unwrap();
}

#[test]
fn reset_starts_over() {
    let (mut mem, mut q) = setup(8);
    desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, 8, 0, 0);
    q.pop(&mem).unwrap().unwrap();
    q.reset();
    assert_eq!((q.last_avail_idx(), q.used_idx()), (0, 0));
    assert!(q.pop(&mem).unwrap().is_some());
}
