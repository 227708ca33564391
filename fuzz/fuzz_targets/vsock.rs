//! The virtio-vsock model (`sp::devices::vsock::Vsock` over the standard echo and shell)
//! against packets and chains the fuzzer builds on all three queues: packets with any op, port,
//! CID, type, length, credit and shutdown flags (mostly well-formed enough to open
//! connections), header and payload split over descriptors, raw buffers in any direction
//! inside, across and outside the one shared region, rx buffers of any size, notifies of any
//! queue in any order with any budget, device and queue resets. Serving never panics; tx
//! chains come back with used length 0 and in order; an rx chain's used length is 0 or one
//! whole packet within its writable bytes, from CID 2 to CID 3, stream, advertising the
//! device's 1 KiB, with no payload on control ops and at most 1 KiB on RW; every packet but an
//! RST is for a connection whose RESPONSE came first (and no RST since); connections, pending
//! RSTs and each connection's buffers stay within their bounds; no chain starts once the
//! budget is spent.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use sp::devices::vsock::{
    CONN_RX_BYTES, CONN_TX_BYTES, ECHO_PORT, GUEST_CID, HDR_LEN, HOST_CID, Header, MAX_CONNECTIONS,
    Op, PENDING_MAX, SHELL_PORT, StandardServices, TYPE_STREAM, Vsock,
};
use virtio_msg::{
    SharedMem,
    device::{Budget, QueueConfig, VirtioDevice},
    mem::VecMem,
};

/// Where the region sits on the bus.
const BASE: u64 = 1 << 48;
const QSIZE: u16 = 16;
/// Each queue's rings at `BASE + q * 0x3000`; descriptor `d` of queue `q` owns a buffer of
/// `SLOT` bytes at `BUFS + (q * QSIZE + d) * SLOT`.
const BUFS: u64 = 0x9000;
const SLOT: u64 = 0x800;
const LEN: usize = 0x9000 + 3 * 16 * 0x800;

#[derive(Arbitrary, Debug)]
struct Buffer {
    /// Offset from the descriptor's own buffer (past the region for large values).
    offset: u32,
    len: u16,
    writable: bool,
    data: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// A packet on tx.
    Packet {
        op: u8,
        from: u8,
        port: u8,
        bad_cid: u8,
        bad_type: bool,
        /// Added to the payload length for `len` (a lie when not 0).
        len_delta: i8,
        flags: u8,
        buf_alloc: u16,
        fwd_cnt: u16,
        payload: Vec<u8>,
        /// Where the bytes are split into two descriptors (0: one descriptor).
        split: u8,
    },
    /// A chain of raw buffers on queue `queue % 3`.
    Raw { queue: u8, buffers: Vec<Buffer> },
    /// `count % 5` rx buffers of `len % 2048` bytes.
    Rx { count: u8, len: u16 },
    /// Notify queue `queue % 3` with `budget` bytes.
    Notify { queue: u8, budget: u16 },
    /// Reset the device and start it again.
    Reset,
    /// Reset queue `queue % 3` and set it up again.
    ResetQueue { queue: u8 },
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

/// Driver-side bookkeeping of one queue.
#[derive(Default)]
struct Queue {
    free: Vec<u16>,
    avail: u16,
    seen: u16,
    /// Offered chains in order: (head, descriptors, writable bytes, has readable buffers).
    offered: Vec<(u16, Vec<u16>, u64, bool)>,
    /// The chains' buffers, by head: (address, length, writable).
    bufs: BTreeMap<u16, Vec<(u64, u32, bool)>>,
}

impl Queue {
    fn fresh() -> Self {
        Self {
            free: (0..QSIZE).rev().collect(),
            ..Self::default()
        }
    }
}

struct World {
    mem: VecMem,
    dev: Vsock<StandardServices>,
    queues: Vec<Queue>,
    /// Connections the device answered with RESPONSE and has not reset since:
    /// (driver port, partition port).
    open: BTreeSet<(u32, u32)>,
}

impl World {
    fn start(&mut self) {
        self.queues = (0..3).map(|_| Queue::fresh()).collect();
        self.open.clear();
        self.mem.bytes.fill(0);
        self.dev
            .activate(0, &[Some(config(0)), Some(config(1)), Some(config(2))])
            .unwrap();
    }

    /// Offers a chain on `q` of `(address or own buffer, length, writable, data)`.
    fn offer(&mut self, q: u32, bufs: &[(Option<u64>, u32, bool, &[u8])]) {
        let state = &mut self.queues[q as usize];
        if bufs.is_empty()
            || bufs.len() > state.free.len()
            || state.offered.len() >= usize::from(QSIZE)
        {
            return;
        }
        let descs: Vec<u16> = (0..bufs.len()).map(|_| state.free.pop().unwrap()).collect();
        let mut list = Vec::new();
        let (mut writable, mut readable) = (0u64, false);
        for (k, &(addr, len, w, data)) in bufs.iter().enumerate() {
            let d = descs[k];
            let own = BASE + BUFS + (u64::from(q) * u64::from(QSIZE) + u64::from(d)) * SLOT;
            let addr = addr.unwrap_or(own);
            let mut flags = if w { 2u16 } else { 0 };
            if k + 1 < bufs.len() {
                flags |= 1;
            }
            if w {
                writable += u64::from(len);
            } else {
                readable = true;
            }
            let next = descs.get(k + 1).copied().unwrap_or(0);
            let mut raw = [0u8; 16];
            raw[0..8].copy_from_slice(&addr.to_le_bytes());
            raw[8..12].copy_from_slice(&len.to_le_bytes());
            raw[12..14].copy_from_slice(&flags.to_le_bytes());
            raw[14..16].copy_from_slice(&next.to_le_bytes());
            self.mem
                .write(config(q).desc_addr + 16 * u64::from(d), &raw)
                .unwrap();
            let _ = self.mem.write(addr, &data[..data.len().min(len as usize)]);
            list.push((addr, len, w));
        }
        let head = descs[0];
        let slot = u64::from(state.avail % QSIZE);
        self.mem
            .write(config(q).driver_addr + 4 + 2 * slot, &head.to_le_bytes())
            .unwrap();
        state.avail = state.avail.wrapping_add(1);
        self.mem
            .write(config(q).driver_addr + 2, &state.avail.to_le_bytes())
            .unwrap();
        state.offered.push((head, descs, writable, readable));
        state.bufs.insert(head, list);
    }

    /// Checks what came back on every queue after a notify.
    fn check_used(&mut self, spent: bool) {
        for q in 0..3u32 {
            let mut idx = [0u8; 2];
            self.mem.read(config(q).device_addr + 2, &mut idx).unwrap();
            let used = u16::from_le_bytes(idx);
            let state = &mut self.queues[q as usize];
            assert!(
                used.wrapping_sub(state.seen) as usize <= state.offered.len(),
                "queue {q}: more used than offered"
            );
            if spent {
                assert_eq!(
                    used, state.seen,
                    "queue {q}: a chain started on a spent budget"
                );
            }
            assert!(q != 2 || used == state.seen, "event buffers are never used");
            while state.seen != used {
                let mut elem = [0u8; 8];
                let at = config(q).device_addr + 4 + 8 * u64::from(state.seen % QSIZE);
                self.mem.read(at, &mut elem).unwrap();
                let id = u32::from_le_bytes(elem[..4].try_into().unwrap());
                let len = u32::from_le_bytes(elem[4..].try_into().unwrap());
                let (head, descs, writable, readable) = state.offered.remove(0);
                assert_eq!(id, u32::from(head), "queue {q}: chains come back in order");
                let bufs = state.bufs.remove(&head).unwrap();
                state.free.extend(descs);
                state.seen = state.seen.wrapping_add(1);
                if q == 1 || readable {
                    assert_eq!(len, 0, "queue {q}: used {len}");
                    continue;
                }
                assert!(
                    u64::from(len) <= writable,
                    "used {len} > writable {writable}"
                );
                if len == 0 {
                    continue;
                }
                // One whole packet, read back from the chain's buffers.
                // (Only the bytes it wrote: a later buffer may lie outside memory.)
                let mut bytes = Vec::new();
                for (addr, blen, _) in bufs {
                    let want = (len as usize - bytes.len()).min(blen as usize);
                    if want == 0 {
                        break;
                    }
                    let mut b = vec![0u8; want];
                    self.mem.read(addr, &mut b).expect("the device wrote it");
                    bytes.extend_from_slice(&b);
                }
                assert!(bytes.len() >= HDR_LEN, "a {len}-byte packet");
                let h = Header::decode(bytes[..HDR_LEN].try_into().unwrap());
                assert_eq!(bytes.len(), HDR_LEN + h.len as usize, "{h:?}");
                assert_eq!((h.src_cid, h.dst_cid), (HOST_CID, GUEST_CID), "{h:?}");
                assert_eq!(h.socket_type, TYPE_STREAM, "{h:?}");
                assert_eq!(h.buf_alloc as usize, CONN_RX_BYTES, "{h:?}");
                let key = (h.dst_port, h.src_port);
                match h.op {
                    Op::Rst => {
                        assert_eq!(h.len, 0);
                        self.open.remove(&key);
                    }
                    Op::Response => {
                        assert_eq!(h.len, 0);
                        self.open.insert(key);
                    }
                    Op::Rw => {
                        assert!(h.len as usize <= CONN_TX_BYTES, "{h:?}");
                        assert!(self.open.contains(&key), "RW before RESPONSE: {h:?}");
                    }
                    Op::CreditUpdate | Op::CreditRequest | Op::Shutdown => {
                        assert_eq!(h.len, 0);
                        assert!(self.open.contains(&key), "{h:?} before RESPONSE");
                    }
                    other => panic!("the device sent {other:?}"),
                }
            }
        }
        assert!(self.dev.connections().count() <= MAX_CONNECTIONS);
        assert!(self.dev.pending_resets() <= PENDING_MAX);
        let conns: Vec<_> = self.dev.connections().collect();
        for (g, l) in conns {
            let (rx, tx) = self.dev.buffered(g, l).unwrap();
            assert!(rx <= CONN_RX_BYTES && tx <= CONN_TX_BYTES);
        }
    }
}

fn packet(step: &Step) -> Option<Vec<u8>> {
    let Step::Packet {
        op,
        from,
        port,
        bad_cid,
        bad_type,
        len_delta,
        flags,
        buf_alloc,
        fwd_cnt,
        payload,
        ..
    } = step
    else {
        return None;
    };
    let payload = &payload[..payload.len().min(1100)];
    let len = i64::try_from(payload.len()).unwrap() + i64::from(*len_delta);
    let h = Header {
        src_cid: if bad_cid & 1 != 0 { 4 } else { GUEST_CID },
        dst_cid: if bad_cid & 2 != 0 {
            GUEST_CID
        } else {
            HOST_CID
        },
        src_port: 1000 + u32::from(from % 4),
        dst_port: [ECHO_PORT, SHELL_PORT, 99][usize::from(port % 3)],
        len: u32::try_from(len.max(0)).unwrap(),
        socket_type: if *bad_type { 2 } else { TYPE_STREAM },
        op: Op::from(u16::from(op % 9)),
        flags: u32::from(flags % 4),
        buf_alloc: u32::from(*buf_alloc),
        fwd_cnt: u32::from(*fwd_cnt),
    };
    let mut bytes = h.encode().to_vec();
    bytes.extend_from_slice(payload);
    Some(bytes)
}

fn run(steps: &[Step]) {
    let mut world = World {
        mem: VecMem::new(BASE, LEN),
        dev: Vsock::new(StandardServices::new("0 fuzz")),
        queues: Vec::new(),
        open: BTreeSet::new(),
    };
    world.start();
    for step in steps.iter().take(96) {
        match step {
            Step::Packet { split, .. } => {
                let bytes = packet(step).unwrap();
                let cut = usize::from(*split).min(bytes.len());
                let (a, b) = bytes.split_at(cut);
                let mut chain: Vec<(Option<u64>, u32, bool, &[u8])> = Vec::new();
                for piece in [a, b] {
                    if !piece.is_empty() && piece.len() as u64 <= SLOT {
                        chain.push((None, piece.len() as u32, false, piece));
                    }
                }
                world.offer(1, &chain);
            }
            Step::Raw { queue, buffers } => {
                let q = u32::from(queue % 3);
                let chain: Vec<(Option<u64>, u32, bool, &[u8])> = buffers
                    .iter()
                    .take(4)
                    .map(|b| {
                        let addr = (b.offset != 0).then(|| BASE + BUFS + u64::from(b.offset));
                        (
                            addr,
                            u32::from(b.len.min(SLOT as u16)),
                            b.writable,
                            &b.data[..],
                        )
                    })
                    .collect();
                world.offer(q, &chain);
            }
            Step::Rx { count, len } => {
                for _ in 0..count % 5 {
                    world.offer(0, &[(None, u32::from(len % 2048), true, &[])]);
                }
            }
            Step::Notify { queue, budget } => {
                let q = u32::from(queue % 3);
                let mut budget = Budget::bytes(u64::from(*budget));
                let spent = budget.is_spent();
                let result = world.dev.notify(q, &mut world.mem, &mut budget);
                let _ = world.dev.take_used_elsewhere();
                if result.is_err() {
                    // Only a broken ring or an rx buffer outside memory gets here: the
                    // transport would set DEVICE_NEEDS_RESET. Start over.
                    world.dev.reset();
                    world.start();
                    continue;
                }
                world.check_used(spent);
            }
            Step::Reset => {
                world.dev.reset();
                assert_eq!(world.dev.connections().count(), 0);
                world.start();
            }
            Step::ResetQueue { queue } => {
                let q = u32::from(queue % 3);
                world.dev.reset_queue(q);
                if q != 2 {
                    assert_eq!(world.dev.connections().count(), 0);
                    world.open.clear();
                }
                world.queues[q as usize] = Queue::fresh();
                let cfg = config(q);
                let ring_len = 0x3000usize;
                let start = (cfg.desc_addr - BASE) as usize;
                world.mem.bytes[start..start + ring_len].fill(0);
                world.dev.activate_queue(q, cfg).unwrap();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(steps) = Vec::<Step>::arbitrary(&mut u) else {
        return;
    };
    run(&steps);
});
