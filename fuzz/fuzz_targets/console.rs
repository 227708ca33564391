//! The virtio-console model (`sp::devices::console::Console` over the `Shell` or `Echo`)
//! against chains the fuzzer builds on both queues: any bytes, buffer lengths and directions,
//! buffers inside, across and outside the one shared region, notifies of either queue in any
//! order, any budget. Serving never panics; transmit chains come back with used length 0;
//! a receive chain's used length is at most its writable bytes, and 0 when it has readable
//! buffers; the outbox never holds more than its bound; no chain starts once the budget is
//! spent.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use sp::devices::console::{Console, ConsoleSink, Echo, OUTBOX_BYTES, Shell};
use virtio_msg::{
    SharedMem,
    device::{Budget, QueueConfig, VIRTIO_F_EVENT_IDX, VirtioDevice},
    mem::VecMem,
};

/// Where the region sits on the bus.
const BASE: u64 = 1 << 48;
/// Size of the shared region.
const LEN: usize = 64 * 1024;
/// Queue `q`'s rings at `BASE + q * 0x3000`; buffers after both.
const BUFFERS: u64 = 0x6000;
const QSIZE: u16 = 16;

#[derive(Arbitrary, Debug)]
struct Buffer {
    /// Offset in the buffer area (past the end of the region for large values).
    offset: u16,
    len: u16,
    writable: bool,
    /// Written at the buffer first.
    data: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Offer a chain on queue `queue & 1`.
    Offer { queue: u8, buffers: Vec<Buffer> },
    /// Notify queue `queue & 1` with `budget` bytes.
    Notify { queue: u8, budget: u16 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    echo: bool,
    /// Negotiate VIRTIO_F_EVENT_IDX (used_event stays 0: most passes are not notified).
    event_idx: bool,
    ops: Vec<Op>,
}

fn config(q: u32) -> QueueConfig {
    let base = BASE + u64::from(q) * 0x3000;
    QueueConfig {
        size: QSIZE,
        desc_addr: base,
        driver_addr: base + 0x1000,
        device_addr: base + 0x2000,
    }
}

struct Queue {
    next_desc: u16,
    avail: u16,
    seen: u16,
    /// Per offered chain, by head: (writable bytes, has readable buffers).
    chains: Vec<(u16, u64, bool)>,
}

fn run<S: ConsoleSink>(sink: S, features: u64, ops: &[Op]) {
    // The one shared region: every access outside it is refused.
    let mut region = VecMem::new(BASE, LEN);
    let mut console = Console::new(sink);
    console
        .activate(features, &[Some(config(0)), Some(config(1))])
        .unwrap();
    let mut queues: Vec<Queue> = (0..2)
        .map(|_| Queue {
            next_desc: 0,
            avail: 0,
            seen: 0,
            chains: Vec::new(),
        })
        .collect();
    for op in ops.iter().take(64) {
        match op {
            Op::Offer { queue, buffers } => {
                let q = u32::from(queue & 1);
                let state = &mut queues[q as usize];
                let n = buffers.len().clamp(1, 4) as u16;
                // Descriptors are not reused: a chain fits the table, or none is offered.
                if state.next_desc + n > QSIZE || state.avail.wrapping_sub(state.seen) >= QSIZE {
                    continue;
                }
                let head = state.next_desc;
                let (mut writable, mut readable) = (0u64, false);
                for (k, buf) in buffers.iter().take(usize::from(n)).enumerate() {
                    let i = head + k as u16;
                    let addr = BASE + BUFFERS + u64::from(buf.offset);
                    let mut flags = if buf.writable { 2u16 } else { 0 };
                    if (k as u16) + 1 < n {
                        flags |= 1;
                    }
                    if buf.writable {
                        writable += u64::from(buf.len);
                    } else {
                        readable = true;
                    }
                    let mut raw = [0u8; 16];
                    raw[0..8].copy_from_slice(&addr.to_le_bytes());
                    raw[8..12].copy_from_slice(&u32::from(buf.len).to_le_bytes());
                    raw[12..14].copy_from_slice(&flags.to_le_bytes());
                    raw[14..16].copy_from_slice(&(i + 1).to_le_bytes());
                    let _ = region.write(config(q).desc_addr + 16 * u64::from(i), &raw);
                    let data = &buf.data[..buf.data.len().min(usize::from(buf.len))];
                    let _ = region.write(addr, data);
                }
                let slot = u64::from(state.avail % QSIZE);
                let _ = region.write(config(q).driver_addr + 4 + 2 * slot, &head.to_le_bytes());
                state.avail = state.avail.wrapping_add(1);
                let _ = region.write(config(q).driver_addr + 2, &state.avail.to_le_bytes());
                state.chains.push((head, writable, readable));
                state.next_desc += n;
            }
            Op::Notify { queue, budget } => {
                let q = u32::from(queue & 1);
                let mut budget = Budget::bytes(u64::from(*budget));
                let spent = budget.is_spent();
                let result = console.notify(q, &mut region, &mut budget);
                let _ = console.take_used_elsewhere();
                assert!(console.outbox().len() <= OUTBOX_BYTES);
                if result.is_err() {
                    return;
                }
                for (qi, state) in queues.iter_mut().enumerate() {
                    let mut idx = [0u8; 2];
                    region
                        .read(config(qi as u32).device_addr + 2, &mut idx)
                        .unwrap();
                    let used = u16::from_le_bytes(idx);
                    assert!(used.wrapping_sub(state.seen) <= state.avail.wrapping_sub(state.seen));
                    if spent {
                        assert_eq!(used, state.seen, "a chain started on a spent budget");
                    }
                    while state.seen != used {
                        let mut elem = [0u8; 8];
                        let at =
                            config(qi as u32).device_addr + 4 + 8 * u64::from(state.seen % QSIZE);
                        region.read(at, &mut elem).unwrap();
                        let id = u32::from_le_bytes(elem[..4].try_into().unwrap());
                        let len = u32::from_le_bytes(elem[4..].try_into().unwrap());
                        let (head, writable, readable) = state.chains[usize::from(state.seen)];
                        assert_eq!(id, u32::from(head), "chains come back in order");
                        if qi == 1 || readable {
                            assert_eq!(len, 0, "queue {qi}: used {len}");
                        } else {
                            assert!(
                                u64::from(len) <= writable,
                                "used {len} > writable {writable}"
                            );
                        }
                        state.seen = state.seen.wrapping_add(1);
                    }
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(input) = Input::arbitrary(&mut u) else {
        return;
    };
    let features = if input.event_idx {
        VIRTIO_F_EVENT_IDX
    } else {
        0
    };
    if input.echo {
        run(Echo, features, &input.ops);
    } else {
        run(Shell::new("0 fuzz"), features, &input.ops);
    }
});
