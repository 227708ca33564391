//! Tests of the virtio-rng model against a hand-written driver in a `VecMem`.

use virtio_msg::{
    SharedMem,
    device::{
        Budget, DeviceError, QueueConfig, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1,
        VirtioDevice,
    },
    mem::VecMem,
};

use super::*;
use crate::virtqueue::{VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};

const BASE: u64 = 2 << 48;
const DESC: u64 = BASE;
const AVAIL: u64 = BASE + 0x1000;
const USED: u64 = BASE + 0x2000;
const BUF: u64 = BASE + 0x4000;
const MEM_LEN: usize = 0x40000;
const GUARD: u8 = 0xee;

fn config(size: u16) -> QueueConfig {
    QueueConfig {
        size,
        desc_addr: DESC,
        driver_addr: AVAIL,
        device_addr: USED,
    }
}

/// Memory with the buffer area full of guard bytes, and an active device with an 8-entry queue.
fn setup() -> (VecMem, Rng<CountingEntropy>) {
    let mut mem = VecMem::new(BASE, MEM_LEN);
    mem.bytes[0x4000..].fill(GUARD);
    let mut rng = Rng::new(CountingEntropy::default());
    rng.activate(VIRTIO_F_VERSION_1, &[Some(config(8))])
        .unwrap();
    (mem, rng)
}

fn desc(mem: &mut VecMem, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
    let mut raw = [0u8; 16];
    raw[0..8].copy_from_slice(&addr.to_le_bytes());
    raw[8..12].copy_from_slice(&len.to_le_bytes());
    raw[12..14].copy_from_slice(&flags.to_le_bytes());
    raw[14..16].copy_from_slice(&next.to_le_bytes());
    mem.write(DESC + 16 * u64::from(i), &raw).unwrap();
}

fn offer(mem: &mut VecMem, idx: u16, head: u16) {
    mem.write(AVAIL + 4 + 2 * u64::from(idx % 8), &head.to_le_bytes())
        .unwrap();
    mem.write(AVAIL + 2, &idx.wrapping_add(1).to_le_bytes())
        .unwrap();
}

fn used_idx(mem: &VecMem) -> u16 {
    let mut b = [0; 2];
    mem.read(USED + 2, &mut b).unwrap();
    u16::from_le_bytes(b)
}

fn used_elem(mem: &VecMem, idx: u16) -> (u32, u32) {
    let mut b = [0; 8];
    mem.read(USED + 4 + 8 * u64::from(idx % 8), &mut b).unwrap();
    (
        u32::from_le_bytes(b[..4].try_into().unwrap()),
        u32::from_le_bytes(b[4..].try_into().unwrap()),
    )
}

fn bytes(mem: &VecMem, addr: u64, len: usize) -> &[u8] {
    let start = usize::try_from(addr - BASE).unwrap();
    &mem.bytes[start..start + len]
}

/// The counting stream from position `from`, `len` bytes.
fn stream(from: u64, len: usize) -> Vec<u8> {
    (from..from + len as u64)
        .map(CountingEntropy::byte_at)
        .collect()
}

#[test]
fn identity() {
    let rng = Rng::new(CountingEntropy::default());
    assert_eq!(rng.device_id(), 4);
    assert_eq!(
        rng.features(),
        VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX
    );
    assert_eq!(rng.config_size(), 0);
    assert_eq!(rng.num_queues(), 1);
    assert_eq!(rng.queue_max_size(0), QUEUE_MAX_SIZE);
    assert_eq!(rng.queue_max_size(1), 0);
}

#[test]
fn activate_refuses_oversized_queue() {
    let mut rng = Rng::new(CountingEntropy::default());
    assert_eq!(
        rng.activate(0, &[Some(config(QUEUE_MAX_SIZE * 2))]),
        Err(DeviceError::Queue)
    );
    assert_eq!(rng.activate_queue(0, config(3)), Err(DeviceError::Queue));
    assert_eq!(rng.activate_queue(1, config(8)), Err(DeviceError::Queue));
}

#[test]
fn nothing_pending_is_false() {
    let (mut mem, mut rng) = setup();
    assert_eq!(rng.notify(0, &mut mem, &mut Budget::unlimited()), Ok(false));
    assert_eq!(used_idx(&mem), 0);
    // No queue configured at all.
    let mut idle = Rng::new(CountingEntropy::default());
    idle.activate(0, &[None]).unwrap();
    assert_eq!(
        idle.notify(0, &mut mem, &mut Budget::unlimited()),
        Ok(false)
    );
}

#[test]
fn fills_writable_segments_exactly() {
    let (mut mem, mut rng) = setup();
    // Two segments, the second larger than the chunk buffer and of odd length.
    let long = u32::try_from(CHUNK).unwrap() + 701;
    desc(
        &mut mem,
        3,
        BUF + 0x10,
        10,
        VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
        6,
    );
    desc(&mut mem, 6, BUF + 0x100, long, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, 0, 3);
    assert_eq!(rng.notify(0, &mut mem, &mut Budget::unlimited()), Ok(true));
    assert_eq!(used_idx(&mem), 1);
    assert_eq!(used_elem(&mem, 0), (3, 10 + long));
    assert_eq!(bytes(&mem, BUF + 0x10, 10), stream(0, 10));
    assert_eq!(
        bytes(&mem, BUF + 0x100, long as usize),
        stream(10, long as usize)
    );
    // Bytes around the buffers are untouched.
    assert!(bytes(&mem, BUF, 0x10).iter().all(|&b| b == GUARD));
    assert!(
        bytes(&mem, BUF + 0x1a, 0x100 - 0x1a)
            .iter()
            .all(|&b| b == GUARD)
    );
    assert!(
        bytes(&mem, BUF + 0x100 + u64::from(long), 0x1000)
            .iter()
            .all(|&b| b == GUARD)
    );
    assert_eq!(rng.source().produced, u64::from(10 + long));
}

#[test]
fn readable_segments_are_ignored() {
    let (mut mem, mut rng) = setup();
    desc(&mut mem, 0, BUF, 32, VIRTQ_DESC_F_NEXT, 1);
    desc(&mut mem, 1, BUF + 0x100, 16, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, 0, 0);
    assert_eq!(rng.notify(0, &mut mem, &mut Budget::unlimited()), Ok(true));
    assert_eq!(used_elem(&mem, 0), (0, 16));
    assert!(bytes(&mem, BUF, 32).iter().all(|&b| b == GUARD));
    assert_eq!(bytes(&mem, BUF + 0x100, 16), stream(0, 16));
}

#[test]
fn chain_without_writable_returns_zero() {
    let (mut mem, mut rng) = setup();
    desc(&mut mem, 2, BUF, 32, 0, 0);
    offer(&mut mem, 0, 2);
    assert_eq!(rng.notify(0, &mut mem, &mut Budget::unlimited()), Ok(true));
    assert_eq!(used_elem(&mem, 0), (2, 0));
    assert_eq!(rng.source().produced, 0);
}

#[test]
fn serves_every_pending_chain() {
    let (mut mem, mut rng) = setup();
    for i in 0..8u16 {
        desc(
            &mut mem,
            i,
            BUF + 0x40 * u64::from(i),
            64,
            VIRTQ_DESC_F_WRITE,
            0,
        );
        offer(&mut mem, i, 7 - i);
    }
    assert_eq!(rng.notify(0, &mut mem, &mut Budget::unlimited()), Ok(true));
    assert_eq!(used_idx(&mem), 8);
    for i in 0..8u16 {
        assert_eq!(used_elem(&mem, i), (u32::from(7 - i), 64));
    }
    assert_eq!(rng.notify(0, &mut mem, &mut Budget::unlimited()), Ok(false));
}

#[test]
fn a_notify_stops_when_its_budget_is_spent_and_the_next_one_goes_on() {
    let (mut mem, mut rng) = setup();
    for i in 0..8u16 {
        desc(
            &mut mem,
            i,
            BUF + 0x40 * u64::from(i),
            64,
            VIRTQ_DESC_F_WRITE,
            0,
        );
        offer(&mut mem, i, i);
    }
    // Three chains cost 3 * (64 + CHAIN_COST) = 384: a budget of 300 stops after the third.
    let mut budget = Budget::bytes(300);
    assert_eq!(rng.notify(0, &mut mem, &mut budget), Ok(true));
    assert!(budget.is_spent());
    assert_eq!(used_idx(&mem), 3);
    // A spent budget serves nothing.
    assert_eq!(rng.notify(0, &mut mem, &mut budget), Ok(false));
    assert_eq!(used_idx(&mem), 3);
    // The next budget takes the rest, in ring order, with the stream going on.
    let mut budget = Budget::bytes(10_000);
    assert_eq!(rng.notify(0, &mut mem, &mut budget), Ok(true));
    assert_eq!(used_idx(&mem), 8);
    assert_eq!(budget.left(), 10_000 - 5 * (64 + Budget::CHAIN_COST));
    for i in 0..8u16 {
        assert_eq!(used_elem(&mem, i), (u32::from(i), 64));
        assert_eq!(
            bytes(&mem, BUF + 0x40 * u64::from(i), 64),
            stream(64 * u64::from(i), 64)
        );
    }
}

#[test]
fn big_buffers_are_capped() {
    let (mut mem, mut rng) = setup();
    let big = u32::try_from(MEM_LEN - 0x4000).unwrap(); // 0x3c000, larger than the cap
    desc(
        &mut mem,
        0,
        BUF,
        0x100,
        VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
        1,
    );
    desc(&mut mem, 1, BUF + 0x100, big - 0x100, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, 0, 0);
    assert_eq!(rng.notify(0, &mut mem, &mut Budget::unlimited()), Ok(true));
    let cap = usize::try_from(MAX_BYTES_PER_REQUEST).unwrap();
    assert_eq!(used_elem(&mem, 0), (0, MAX_BYTES_PER_REQUEST));
    assert_eq!(bytes(&mem, BUF, cap), stream(0, cap));
    assert!(
        bytes(&mem, BUF + cap as u64, 0x100)
            .iter()
            .all(|&b| b == GUARD)
    );
}

#[test]
fn cap_reached_exactly_at_a_segment_end_skips_the_rest() {
    let (mut mem, mut rng) = setup();
    desc(
        &mut mem,
        0,
        BUF,
        MAX_BYTES_PER_REQUEST,
        VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
        1,
    );
    desc(&mut mem, 1, BUF + 0x20000, 16, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, 0, 0);
    assert_eq!(rng.notify(0, &mut mem, &mut Budget::unlimited()), Ok(true));
    assert_eq!(used_elem(&mem, 0), (0, MAX_BYTES_PER_REQUEST));
    assert!(bytes(&mem, BUF + 0x20000, 16).iter().all(|&b| b == GUARD));
}

#[test]
fn entropy_failure_is_a_backend_error_without_used_entry() {
    let mut mem = VecMem::new(BASE, MEM_LEN);
    let mut rng = Rng::new(FailingEntropy { budget: 16 });
    rng.activate(0, &[Some(config(8))]).unwrap();
    desc(&mut mem, 0, BUF, 16, VIRTQ_DESC_F_WRITE, 0);
    desc(&mut mem, 1, BUF + 0x100, 16, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, 0, 0);
    offer(&mut mem, 1, 1);
    // The first chain fits the budget and is returned; the second fails.
    assert_eq!(
        rng.notify(0, &mut mem, &mut Budget::unlimited()),
        Err(DeviceError::Backend)
    );
    assert_eq!(used_idx(&mem), 1);
    assert_eq!(used_elem(&mem, 0), (0, 16));
    assert_eq!(used_elem(&mem, 1), (0, 0));
    assert!(bytes(&mem, BUF + 0x100, 16).iter().all(|&b| b == 0));

    let mut rng = Rng::new(FailingEntropy { budget: 0 });
    rng.activate(0, &[Some(config(8))]).unwrap();
    let mut mem = VecMem::new(BASE, MEM_LEN);
    desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, 0, 0);
    assert_eq!(
        rng.notify(0, &mut mem, &mut Budget::unlimited()),
        Err(DeviceError::Backend)
    );
    assert_eq!(used_idx(&mem), 0);
}

#[test]
fn buffer_outside_memory_is_a_memory_error() {
    let (mut mem, mut rng) = setup();
    // Starts inside, runs off the end.
    desc(
        &mut mem,
        0,
        BASE + MEM_LEN as u64 - 8,
        16,
        VIRTQ_DESC_F_WRITE,
        0,
    );
    offer(&mut mem, 0, 0);
    assert!(matches!(
        rng.notify(0, &mut mem, &mut Budget::unlimited()),
        Err(DeviceError::Memory(_))
    ));
    assert_eq!(used_idx(&mem), 0);
}

#[test]
fn hostile_ring_is_a_queue_error() {
    let (mut mem, mut rng) = setup();
    mem.write(AVAIL + 2, &100u16.to_le_bytes()).unwrap();
    assert_eq!(
        rng.notify(0, &mut mem, &mut Budget::unlimited()),
        Err(DeviceError::Queue)
    );
    assert_eq!(used_idx(&mem), 0);
}

#[test]
fn reset_and_late_queue() {
    let (mut mem, mut rng) = setup();
    desc(&mut mem, 0, BUF, 4, VIRTQ_DESC_F_WRITE, 0);
    offer(&mut mem, 0, 0);
    rng.reset_queue(0);
    assert_eq!(rng.notify(0, &mut mem, &mut Budget::unlimited()), Ok(false));
    // Re-set after RESET_VQUEUE: served from index 0 again.
    rng.activate_queue(0, config(8)).unwrap();
    assert_eq!(rng.notify(0, &mut mem, &mut Budget::unlimited()), Ok(true));
    assert_eq!(used_elem(&mem, 0), (0, 4));
    rng.reset();
    offer(&mut mem, 1, 0);
    assert_eq!(rng.notify(0, &mut mem, &mut Budget::unlimited()), Ok(false));
    assert_eq!(used_idx(&mem), 1);
}

#[test]
fn indirect_tables_and_event_idx_when_negotiated() {
    const TABLE: u64 = BASE + 0x3000;
    let features = VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX;
    let mut mem = VecMem::new(BASE, MEM_LEN);
    mem.bytes[0x4000..].fill(GUARD);
    let mut rng = Rng::new(CountingEntropy::default());
    rng.activate(features, &[Some(config(8))]).unwrap();
    let w = VIRTQ_DESC_F_WRITE;
    for (i, (addr, len, flags, next)) in [
        (BUF, 100, w | VIRTQ_DESC_F_NEXT, 1u16),
        (BUF + 0x1000, 50, w | VIRTQ_DESC_F_NEXT, 2),
        (BUF + 0x2000, 10, w, 0),
    ]
    .into_iter()
    .enumerate()
    {
        let mut raw = [0u8; 16];
        raw[0..8].copy_from_slice(&addr.to_le_bytes());
        raw[8..12].copy_from_slice(&u32::to_le_bytes(len));
        raw[12..14].copy_from_slice(&u16::to_le_bytes(flags));
        raw[14..16].copy_from_slice(&next.to_le_bytes());
        mem.write(TABLE + 16 * i as u64, &raw).unwrap();
    }
    desc(&mut mem, 0, TABLE, 48, VIRTQ_DESC_F_INDIRECT, 0);
    offer(&mut mem, 0, 0);
    let mut budget = Budget::unlimited();
    // The first pass after the queue starts notifies.
    assert_eq!(rng.notify(0, &mut mem, &mut budget), Ok(true));
    assert_eq!(used_elem(&mem, 0), (0, 160));
    assert_eq!(
        bytes(&mem, BUF, 101),
        [&stream(0, 100)[..], &[GUARD]].concat()
    );
    assert_eq!(bytes(&mem, BUF + 0x1000, 50), &stream(100, 50)[..]);
    assert_eq!(
        bytes(&mem, BUF + 0x2000, 11),
        [&stream(150, 10)[..], &[GUARD]].concat()
    );
    // The driver never moved used_event from 0: served, not notified.
    offer(&mut mem, 1, 0);
    assert_eq!(rng.notify(0, &mut mem, &mut budget), Ok(false));
    assert_eq!(used_idx(&mem), 2);
    // A queue set up again after RESET_VQUEUE keeps the negotiated features.
    rng.reset_queue(0);
    mem.bytes[0x1000..0x3000].fill(0);
    rng.activate_queue(0, config(8)).unwrap();
    offer(&mut mem, 0, 0);
    assert_eq!(rng.notify(0, &mut mem, &mut budget), Ok(true));
    assert_eq!(used_elem(&mem, 0), (0, 160));
    // After a device reset and a driver that accepts neither feature, the table is refused.
    rng.reset();
    mem.bytes[0x1000..0x3000].fill(0);
    rng.activate(VIRTIO_F_VERSION_1, &[Some(config(8))])
        .unwrap();
    offer(&mut mem, 0, 0);
    assert_eq!(
        rng.notify(0, &mut mem, &mut budget),
        Err(DeviceError::Queue)
    );
}
