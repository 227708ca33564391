//! The device-side split virtqueue (`sp::virtqueue::SplitQueue`) over rings, descriptors and
//! indirect tables the fuzzer writes, with any of VIRTIO_F_INDIRECT_DESC and VIRTIO_F_EVENT_IDX
//! negotiated: random bytes everywhere, then chains built on top of them (direct descriptors,
//! an indirect table at the end, with any flags, lengths, `next` fields and addresses, inside
//! and outside the one region), the available index and `used_event` moved between passes,
//! any budget.
//!
//! Serving never panics and takes at most `size` chains per pass; every chain has between 1
//! and `size - 1 + MAX_INDIRECT_DESCS` buffers (at most `size` without indirect descriptors)
//! whose ends do not overflow. When the three ring areas do not overlap one another: without
//! EVENT_IDX every pass that returned a chain asks for a notification and `avail_event` is
//! never written; with it the decision is exactly "the first pass, or `used_event` among the
//! entries this pass returned" (counted entry by entry), and a pass that looked at the ring
//! and emptied it leaves `avail_event` at the available index. (Whether a buffer lies in shared memory is
//! checked where it is used: every access goes through `SharedMem`, which here refuses
//! anything outside the one region.)
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use sp::virtqueue::{
    MAX_INDIRECT_DESCS, SplitQueue, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
use virtio_msg::{
    SharedMem,
    device::{Budget, QueueConfig, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC},
    mem::VecMem,
};

/// Where the region sits on the bus (area 1, offset 0).
const BASE: u64 = 1 << 48;
/// Size of the shared region.
const LEN: usize = 16 * 1024;

/// One descriptor the fuzzer places, direct or in a table.
#[derive(Arbitrary, Debug)]
struct Desc {
    /// Offset of the buffer in the region (the top values land outside it).
    offset: u16,
    len: u16,
    /// Bit 1: WRITE; bits 2..=4 all set: INDIRECT; bits 5..=7 all set: an undefined flag;
    /// bits 0 and 6: NEXT to `next` (besides `chained`). Most descriptors are well-formed.
    flags: u8,
    next: u8,
    /// Chain the next entry in order (set NEXT and `next = i + 1`), as drivers do.
    chained: bool,
}

/// A chain: direct descriptors from `head` on, then maybe an indirect table.
#[derive(Arbitrary, Debug)]
struct Chain {
    head: u8,
    direct: Vec<Desc>,
    /// The table (at `offset` in the region, its entries) and the flags of the descriptor
    /// naming it besides INDIRECT; `len_skew` changes the length it claims.
    table: Option<(u16, Vec<Desc>, u8, i8)>,
}

#[derive(Arbitrary, Debug)]
struct Setup {
    size_log2: u8,
    desc: u16,
    driver: u16,
    device: u16,
    indirect: bool,
    event_idx: bool,
    /// Per pass: chains to add, how far to move the available index (usually their count),
    /// the driver's used_event offset from the used index, and the budget.
    passes: Vec<(Vec<Chain>, Option<u8>, u8, u16)>,
}

fn put_raw(region: &mut VecMem, at: u64, addr: u64, len: u32, flags: u16, next: u16) {
    let mut raw = [0u8; 16];
    raw[0..8].copy_from_slice(&addr.to_le_bytes());
    raw[8..12].copy_from_slice(&len.to_le_bytes());
    raw[12..14].copy_from_slice(&flags.to_le_bytes());
    raw[14..16].copy_from_slice(&next.to_le_bytes());
    let _ = region.write(at, &raw);
}

/// Writes `d` as descriptor `index` at `at`; `last` clears its chaining; `next` fields wrap
/// at `entries`.
/// The descriptor flags `bits` stand for (see [`Desc::flags`]).
fn desc_flags(bits: u8) -> u16 {
    let mut flags = u16::from(bits) & VIRTQ_DESC_F_WRITE;
    if bits & 0x1c == 0x1c {
        flags |= VIRTQ_DESC_F_INDIRECT;
    }
    if bits & 0xe0 == 0xe0 {
        flags |= 8;
    }
    if bits & 0x41 == 0x41 {
        flags |= VIRTQ_DESC_F_NEXT;
    }
    flags
}

fn put_desc(region: &mut VecMem, at: u64, d: &Desc, index: u16, entries: u16, last: bool) {
    let mut flags = desc_flags(d.flags);
    let mut next = u16::from(d.next) % entries.max(1);
    if d.chained && !last {
        flags |= VIRTQ_DESC_F_NEXT;
        next = index.wrapping_add(1);
    }
    put_raw(
        region,
        at,
        BASE + u64::from(d.offset),
        u32::from(d.len),
        flags,
        next,
    );
}

fn get16(region: &VecMem, at: u64) -> Option<u16> {
    let mut b = [0u8; 2];
    region.read(at, &mut b).ok()?;
    Some(u16::from_le_bytes(b))
}

fn put16(region: &mut VecMem, at: u64, v: u16) {
    let _ = region.write(at, &v.to_le_bytes());
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(setup) = Setup::arbitrary(&mut u) else {
        return;
    };
    // The one shared region: every access outside it is refused.
    let mut region = VecMem::new(BASE, LEN);
    let fill = u.take_rest();
    for (b, f) in region.bytes.iter_mut().zip(fill.iter().cycle()) {
        *b = *f;
    }
    let size = 1u16 << (setup.size_log2 % 16);
    let config = QueueConfig {
        size,
        desc_addr: BASE + u64::from(setup.desc & !15) % LEN as u64,
        driver_addr: BASE + u64::from(setup.driver & !1) % LEN as u64,
        device_addr: BASE + u64::from(setup.device & !3) % LEN as u64,
    };
    let mut features = 0;
    if setup.indirect {
        features |= VIRTIO_F_INDIRECT_DESC;
    }
    if setup.event_idx {
        features |= VIRTIO_F_EVENT_IDX;
    }
    let Ok(queue) = SplitQueue::new(config) else {
        return;
    };
    let mut queue = queue.with_features(features);
    let n = u64::from(size);
    let areas = [
        (config.desc_addr, 16 * n),
        (config.driver_addr, 6 + 2 * n),
        (config.device_addr, 6 + 8 * n),
    ];
    // The areas do not overlap one another, and all lie in the region: the device's writes
    // (used ring, avail_event) then never change what the driver wrote.
    let apart = |(a, l): (u64, u64), (b, m): (u64, u64)| a + l <= b || b + m <= a;
    let separate = areas.iter().all(|&(a, l)| a + l <= BASE + LEN as u64)
        && (0..3).all(|i| (0..3).all(|j| i == j || apart(areas[i], areas[j])));
    let avail_event_at = config.device_addr + 4 + 8 * n;
    let used_event_at = config.driver_addr + 4 + 2 * n;
    // No indirect table the driver writes lands on a ring either.
    let mut rings_intact = true;
    let avail_event_before = get16(&region, avail_event_at);
    let mut avail = get16(&region, config.driver_addr + 2).unwrap_or(0);
    let mut first = true;
    let max_buffers = if setup.indirect {
        usize::from(size) - 1 + usize::from(MAX_INDIRECT_DESCS)
    } else {
        usize::from(size)
    };

    for (chains, moved, event_offset, units) in setup.passes.iter().take(8) {
        // The driver writes its chains and makes them available.
        let mut added = 0u16;
        for chain in chains.iter().take(usize::from(size)) {
            let head = u16::from(chain.head) % size;
            let mut index = head;
            let direct = chain.direct.len().min(usize::from(size));
            for (k, d) in chain.direct.iter().take(direct).enumerate() {
                let last = k + 1 == direct && chain.table.is_none();
                let at = config.desc_addr + 16 * u64::from(index);
                put_desc(&mut region, at, d, index, size, last);
                index = index.wrapping_add(1) % size;
            }
            if let Some((offset, entries, flags, skew)) = &chain.table {
                let table = BASE + u64::from(*offset);
                let count = entries.len().min(usize::from(MAX_INDIRECT_DESCS) + 2);
                let entries_u16 = u16::try_from(count).unwrap_or(u16::MAX);
                for (i, e) in entries.iter().take(count).enumerate() {
                    let i = u16::try_from(i).unwrap_or(0);
                    let last = usize::from(i) + 1 == count;
                    put_desc(
                        &mut region,
                        table + 16 * u64::from(i),
                        e,
                        i,
                        entries_u16,
                        last,
                    );
                }
                let bytes = 16 * count as u64;
                let touched = areas
                    .iter()
                    .any(|&(a, l)| table < a + l && a < table + bytes)
                    || (table < avail_event_at + 2 && avail_event_at < table + bytes);
                rings_intact &= !touched;
                // Mostly the table's own length.
                let skew = if skew & 3 == 3 { i64::from(*skew) } else { 0 };
                let len = u32::try_from((16 * count as i64 + skew).max(0)).unwrap_or(0);
                // NEXT, WRITE (ignored on it) and an undefined bit may come along.
                let flags = desc_flags(*flags) | VIRTQ_DESC_F_INDIRECT;
                let at = config.desc_addr + 16 * u64::from(index);
                put_raw(
                    &mut region,
                    at,
                    table,
                    len,
                    flags,
                    index.wrapping_add(1) % size,
                );
            }
            let slot = avail.wrapping_add(added) % size;
            put16(
                &mut region,
                config.driver_addr + 4 + 2 * u64::from(slot),
                head,
            );
            added = added.wrapping_add(1);
        }
        avail = avail.wrapping_add(moved.map_or(added, u16::from));
        put16(&mut region, config.driver_addr + 2, avail);
        let used_event = queue.used_idx().wrapping_add(u16::from(*event_offset) % 8);
        put16(&mut region, used_event_at, used_event);

        // The device serves a pass.
        let old = queue.used_idx();
        let mut taken = 0usize;
        let mut budget = Budget::bytes(u64::from(*units) * 16);
        let result = queue.serve_chains(&mut region, &mut budget, |mem, chain| {
            taken += 1;
            let buffers = chain.readable.len() + chain.writable.len();
            assert!(buffers >= 1 && buffers <= max_buffers, "{buffers} buffers");
            for &(addr, len) in chain.readable.iter().chain(&chain.writable) {
                assert!(addr.checked_add(u64::from(len)).is_some());
                // Without indirect descriptors every buffer is one of the queue's own
                // descriptors (not an indirect descriptor, and not from a table).
                if !setup.indirect && size <= 64 {
                    let direct = (0..size).any(|i| {
                        let mut raw = [0u8; 16];
                        mem.read(config.desc_addr + 16 * u64::from(i), &mut raw)
                            .is_ok()
                            && raw[0..8] == addr.to_le_bytes()
                            && raw[8..12] == len.to_le_bytes()
                            && u16::from_le_bytes([raw[12], raw[13]]) & VIRTQ_DESC_F_INDIRECT == 0
                    });
                    assert!(direct, "buffer {addr:#x}+{len} is no direct descriptor");
                }
            }
            let written =
                u32::try_from(chain.writable_len().min(u64::from(u32::MAX))).unwrap_or(u32::MAX);
            Ok((
                written,
                chain.readable_len().saturating_add(chain.writable_len()),
            ))
        });
        assert!(
            taken <= usize::from(size),
            "more chains than the queue holds"
        );
        let Ok(notify) = result else {
            break;
        };
        let new = queue.used_idx();
        assert_eq!(usize::from(new.wrapping_sub(old)), taken);
        if separate && rings_intact {
            if setup.event_idx {
                let passed = (0..new.wrapping_sub(old)).any(|k| old.wrapping_add(k) == used_event);
                assert_eq!(
                    notify,
                    taken > 0 && (first || passed),
                    "used_event {used_event}"
                );
                if taken > 0 {
                    first = false;
                }
                let now = get16(&region, config.driver_addr + 2);
                // (A pass with no budget at all looks at nothing.)
                let looked = *units > 0;
                if looked && now == Some(queue.last_avail_idx()) && taken < usize::from(size) {
                    assert_eq!(get16(&region, avail_event_at), now, "avail_event");
                }
            } else {
                assert_eq!(notify, taken > 0);
                assert_eq!(get16(&region, avail_event_at), avail_event_before);
            }
        }
    }
});
