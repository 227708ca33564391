//! Tests of the virtio-console model against a hand-written driver in a `VecMem`.

use virtio_msg::{
    SharedMem,
    device::{Budget, QueueConfig, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1, VirtioDevice},
    mem::VecMem,
};

use super::*;
use crate::virtqueue::{VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};

const BASE: u64 = 2 << 48;
const SIZE: u16 = 8;
/// Per queue: descriptors, available ring, used ring; queue `q` at `BASE + q * 0x4000`.
const fn qbase(q: u32) -> u64 {
    BASE + q as u64 * 0x4000
}
const BUF: u64 = BASE + 0x10000;
const MEM_LEN: usize = 0x40000;
const GUARD: u8 = 0xee;

fn config(q: u32) -> QueueConfig {
    QueueConfig {
        size: SIZE,
        desc_addr: qbase(q),
        driver_addr: qbase(q) + 0x1000,
        device_addr: qbase(q) + 0x2000,
    }
}

/// A hand-written driver: both queues, buffers handed out from `BUF` on.
struct Driver {
    mem: VecMem,
    avail: [u16; 2],
    used_seen: [u16; 2],
    next_buf: u64,
}

impl Driver {
    fn new() -> Self {
        let mut mem = VecMem::new(BASE, MEM_LEN);
        mem.bytes[0x10000..].fill(GUARD);
        Self {
            mem,
            avail: [0; 2],
            used_seen: [0; 2],
            next_buf: BUF,
        }
    }

    fn desc(&mut self, q: u32, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut raw = [0u8; 16];
        raw[0..8].copy_from_slice(&addr.to_le_bytes());
        raw[8..12].copy_from_slice(&len.to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..16].copy_from_slice(&next.to_le_bytes());
        self.mem
            .write(config(q).desc_addr + 16 * u64::from(i), &raw)
            .unwrap();
    }

    fn alloc(&mut self, len: u32) -> u64 {
        let at = self.next_buf;
        self.next_buf += u64::from(len).next_multiple_of(16);
        at
    }

    /// Offers a chain on `q` of buffers `(len, flags)` starting at descriptor `first`
    /// (consecutive), filled with `data` pieces for readable ones; returns their addresses.
    fn offer(&mut self, q: u32, first: u16, bufs: &[(u32, u16)], data: &[&[u8]]) -> Vec<u64> {
        let mut addrs = Vec::new();
        for (k, &(len, flags)) in bufs.iter().enumerate() {
            let addr = self.alloc(len);
            if let Some(d) = data.get(k) {
                self.mem.write(addr, d).unwrap();
            }
            let i = (first + u16::try_from(k).unwrap()) % SIZE;
            let last = k + 1 == bufs.len();
            let flags = if last {
                flags
            } else {
                flags | VIRTQ_DESC_F_NEXT
            };
            self.desc(q, i, addr, len, flags, (i + 1) % SIZE);
            addrs.push(addr);
        }
        let qi = q as usize;
        let idx = self.avail[qi];
        let avail = config(q).driver_addr;
        self.mem
            .write(avail + 4 + 2 * u64::from(idx % SIZE), &first.to_le_bytes())
            .unwrap();
        self.avail[qi] = idx.wrapping_add(1);
        self.mem
            .write(avail + 2, &self.avail[qi].to_le_bytes())
            .unwrap();
        addrs
    }

    /// Sends `text` as one one-buffer chain on transmitq at descriptor `first`.
    fn send(&mut self, first: u16, text: &[u8]) {
        self.offer(
            TRANSMITQ,
            first,
            &[(u32::try_from(text.len()).unwrap(), 0)],
            &[text],
        );
    }

    /// Offers one `len`-byte receive buffer at descriptor `first`.
    fn recv_buf(&mut self, first: u16, len: u32) -> u64 {
        self.offer(RECEIVEQ, first, &[(len, VIRTQ_DESC_F_WRITE)], &[])[0]
    }

    fn used_idx(&self, q: u32) -> u16 {
        let mut b = [0; 2];
        self.mem.read(config(q).device_addr + 2, &mut b).unwrap();
        u16::from_le_bytes(b)
    }

    /// The used elements of `q` not seen yet: (head, len).
    fn take_used(&mut self, q: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let idx = self.used_idx(q);
        let qi = q as usize;
        while self.used_seen[qi] != idx {
            let mut b = [0; 8];
            let at = config(q).device_addr + 4 + 8 * u64::from(self.used_seen[qi] % SIZE);
            self.mem.read(at, &mut b).unwrap();
            out.push((
                u32::from_le_bytes(b[..4].try_into().unwrap()),
                u32::from_le_bytes(b[4..].try_into().unwrap()),
            ));
            self.used_seen[qi] = self.used_seen[qi].wrapping_add(1);
        }
        out
    }

    fn bytes(&self, addr: u64, len: usize) -> &[u8] {
        let start = usize::try_from(addr - BASE).unwrap();
        &self.mem.bytes[start..start + len]
    }

    /// EVENT_IDX: asks to hear of the next used entry of `q` (used_event = what was seen).
    fn ask(&mut self, q: u32) {
        let at = config(q).driver_addr + 4 + 2 * u64::from(SIZE);
        let seen = self.used_seen[q as usize];
        self.mem.write(at, &seen.to_le_bytes()).unwrap();
    }

    /// Offers on `q`, at descriptor `first`, one indirect descriptor naming a table of the
    /// buffers `(len, flags)` (filled with `data` pieces); returns their addresses.
    fn offer_indirect(&mut self, q: u32, first: u16, bufs: &[(u32, u16)], data: &[&[u8]]) {
        let table = self.alloc(16 * u32::try_from(bufs.len()).unwrap());
        for (k, &(len, flags)) in bufs.iter().enumerate() {
            let addr = self.alloc(len);
            if let Some(d) = data.get(k) {
                self.mem.write(addr, d).unwrap();
            }
            let next = u16::try_from(k + 1).unwrap();
            let flags = if k + 1 == bufs.len() {
                flags
            } else {
                flags | VIRTQ_DESC_F_NEXT
            };
            let mut raw = [0u8; 16];
            raw[0..8].copy_from_slice(&addr.to_le_bytes());
            raw[8..12].copy_from_slice(&len.to_le_bytes());
            raw[12..14].copy_from_slice(&flags.to_le_bytes());
            raw[14..16].copy_from_slice(&next.to_le_bytes());
            self.mem.write(table + 16 * k as u64, &raw).unwrap();
        }
        let len = 16 * u32::try_from(bufs.len()).unwrap();
        self.desc(q, first, table, len, VIRTQ_DESC_F_INDIRECT, 0);
        let qi = q as usize;
        let idx = self.avail[qi];
        let avail = config(q).driver_addr;
        self.mem
            .write(avail + 4 + 2 * u64::from(idx % SIZE), &first.to_le_bytes())
            .unwrap();
        self.avail[qi] = idx.wrapping_add(1);
        self.mem
            .write(avail + 2, &self.avail[qi].to_le_bytes())
            .unwrap();
    }
}

fn device<S: ConsoleSink>(sink: S) -> Console<S> {
    let mut console = Console::new(sink);
    console
        .activate(VIRTIO_F_VERSION_1, &[Some(config(0)), Some(config(1))])
        .unwrap();
    console
}

fn notify<S: ConsoleSink>(console: &mut Console<S>, drv: &mut Driver, q: u32) -> bool {
    console
        .notify(q, &mut drv.mem, &mut Budget::unlimited())
        .unwrap()
}

/// Offers one receive buffer of `len` at descriptor `first`, notifies receiveq and returns
/// what came back.
fn receive<S: ConsoleSink>(
    console: &mut Console<S>,
    drv: &mut Driver,
    first: u16,
    len: u32,
) -> Vec<u8> {
    let addr = drv.recv_buf(first, len);
    notify(console, drv, RECEIVEQ);
    let used = drv.take_used(RECEIVEQ);
    assert_eq!(used.len(), 1, "{used:?}");
    assert_eq!(used[0].0, u32::from(first));
    drv.bytes(addr, used[0].1 as usize).to_vec()
}

#[test]
fn identity_and_queues() {
    let console = Console::new(Echo);
    assert_eq!(console.device_id(), 3);
    assert_eq!(
        console.features(),
        VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX
    );
    assert_eq!(console.config_size(), 0);
    assert_eq!(console.num_queues(), 2);
    assert_eq!(console.queue_max_size(0), QUEUE_MAX_SIZE);
    assert_eq!(console.queue_max_size(1), QUEUE_MAX_SIZE);
    assert_eq!(console.queue_max_size(2), 0);
    let mut big = Console::new(Echo);
    let mut cfg = config(0);
    cfg.size = 128;
    assert_eq!(big.activate(0, &[Some(cfg), None]), Err(DeviceError::Queue));
    assert_eq!(big.activate_queue(2, config(0)), Err(DeviceError::Queue));
}

#[test]
fn echo_round_trip() {
    let mut drv = Driver::new();
    let mut console = device(Echo);
    drv.send(0, b"hello, world");
    assert!(notify(&mut console, &mut drv, TRANSMITQ));
    assert_eq!(drv.take_used(TRANSMITQ), vec![(0, 0)]);
    // No receive buffer yet: the bytes wait, nothing is announced elsewhere.
    assert_eq!(console.outbox().len(), 12);
    assert_eq!(console.take_used_elsewhere(), 0);
    assert_eq!(receive(&mut console, &mut drv, 0, 64), b"hello, world");
    assert!(console.outbox().is_empty());
    // With a receive buffer waiting, a transmit is answered at once and receiveq announced.
    let addr = drv.recv_buf(1, 64);
    assert!(
        !notify(&mut console, &mut drv, RECEIVEQ),
        "nothing to say yet"
    );
    drv.send(1, b"again");
    assert!(notify(&mut console, &mut drv, TRANSMITQ));
    assert_eq!(console.take_used_elsewhere(), 1 << RECEIVEQ);
    assert_eq!(console.take_used_elsewhere(), 0, "cleared by the call");
    assert_eq!(drv.take_used(RECEIVEQ), vec![(1, 5)]);
    assert_eq!(drv.bytes(addr, 6), b"again\xee");
}

#[test]
fn small_receive_buffers_take_the_outbox_in_pieces() {
    let mut drv = Driver::new();
    let mut console = device(Echo);
    drv.send(0, b"0123456789");
    notify(&mut console, &mut drv, TRANSMITQ);
    assert_eq!(receive(&mut console, &mut drv, 0, 4), b"0123");
    // A chain of two writable buffers is filled as one stream.
    let addrs = drv.offer(
        RECEIVEQ,
        1,
        &[(3, VIRTQ_DESC_F_WRITE), (8, VIRTQ_DESC_F_WRITE)],
        &[],
    );
    notify(&mut console, &mut drv, RECEIVEQ);
    assert_eq!(drv.take_used(RECEIVEQ), vec![(1, 6)]);
    assert_eq!(drv.bytes(addrs[0], 3), b"456");
    assert_eq!(drv.bytes(addrs[1], 4), b"789\xee");
    // Empty outbox: a further buffer is left available, not returned empty.
    drv.recv_buf(3, 16);
    assert!(!notify(&mut console, &mut drv, RECEIVEQ));
    assert!(drv.take_used(RECEIVEQ).is_empty());
    drv.send(4, b"x");
    notify(&mut console, &mut drv, TRANSMITQ);
    assert_eq!(drv.take_used(RECEIVEQ), vec![(3, 1)]);
}

#[test]
fn shell_prompts_and_answers() {
    let mut drv = Driver::new();
    let mut console = device(Shell::new("0 test-device"));
    // The prompt is waiting from DRIVER_OK on.
    assert_eq!(receive(&mut console, &mut drv, 0, 64), b"> ");
    drv.send(0, b"help\n");
    notify(&mut console, &mut drv, TRANSMITQ);
    assert_eq!(
        receive(&mut console, &mut drv, 1, 128),
        b"commands: help, version, devices, stats, log\n> "
    );
    drv.send(1, b"version\r\n");
    notify(&mut console, &mut drv, TRANSMITQ);
    let version = format!("vmsg-sp {}\n> ", env!("CARGO_PKG_VERSION"));
    assert_eq!(receive(&mut console, &mut drv, 2, 128), version.as_bytes());
    drv.send(2, b"  devices \n");
    notify(&mut console, &mut drv, TRANSMITQ);
    assert_eq!(
        receive(&mut console, &mut drv, 3, 128),
        b"0 test-device\n> "
    );
    drv.send(3, b"rm -rf /\n\n");
    notify(&mut console, &mut drv, TRANSMITQ);
    assert_eq!(
        receive(&mut console, &mut drv, 4, 128),
        b"unknown command\n> > "
    );
    // An overlong line is refused whole; the next one is served.
    let mut long = vec![b'a'; LINE_MAX + 10];
    long.extend_from_slice(b"\nhelp\n");
    drv.send(4, &long);
    notify(&mut console, &mut drv, TRANSMITQ);
    assert_eq!(
        receive(&mut console, &mut drv, 5, 128),
        b"line too long\n> commands: help, version, devices, stats, log\n> "
    );
}

#[test]
fn input_split_over_chains_and_descriptors() {
    let mut drv = Driver::new();
    let mut console = device(Shell::new("devs"));
    receive(&mut console, &mut drv, 0, 8); // the first prompt
    // "version\n" in three descriptors of one chain, then "hel" + "p\n" in two chains.
    drv.offer(
        TRANSMITQ,
        0,
        &[(3, 0), (2, 0), (3, 0)],
        &[b"ver", b"si", b"on\n"],
    );
    drv.offer(TRANSMITQ, 3, &[(3, 0)], &[b"hel"]);
    drv.offer(TRANSMITQ, 4, &[(2, 0)], &[b"p\n"]);
    assert!(notify(&mut console, &mut drv, TRANSMITQ));
    assert_eq!(drv.take_used(TRANSMITQ), vec![(0, 0), (3, 0), (4, 0)]);
    let expected = format!(
        "vmsg-sp {}\n> commands: help, version, devices, stats, log\n> ",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(receive(&mut console, &mut drv, 1, 256), expected.as_bytes());
}

#[test]
fn the_outbox_is_bounded_and_counts_what_it_drops() {
    let mut drv = Driver::new();
    let mut console = device(Echo);
    // 3 x 2 KiB of input, no receive buffer: 4 KiB kept, 2 KiB dropped and counted.
    for i in 0..3u8 {
        let data = vec![b'a' + i; 2048];
        drv.send(u16::from(i), &data);
    }
    notify(&mut console, &mut drv, TRANSMITQ);
    assert_eq!(drv.take_used(TRANSMITQ).len(), 3);
    assert_eq!(console.outbox().len(), OUTBOX_BYTES);
    assert_eq!(console.outbox().dropped(), 2048);
    let got = receive(&mut console, &mut drv, 0, 8192);
    assert_eq!(got.len(), OUTBOX_BYTES);
    assert!(got[..2048].iter().all(|&b| b == b'a'));
    assert!(got[2048..].iter().all(|&b| b == b'b'));
    // The ring wraps: more goes through after it was drained.
    drv.send(3, b"wrap");
    notify(&mut console, &mut drv, TRANSMITQ);
    assert_eq!(receive(&mut console, &mut drv, 1, 16), b"wrap");

    let mut outbox = Outbox::new();
    assert_eq!(outbox.push(&[1; 4000]), 4000);
    assert_eq!(outbox.push(&[2; 200]), 96);
    assert_eq!(outbox.dropped(), 104);
    let mut out = [0u8; 4000];
    assert_eq!(outbox.pop(&mut out), 4000);
    assert_eq!(outbox.push(&[3; 10]), 10);
    assert_eq!(outbox.pop(&mut out), 106);
    assert_eq!(&out[..96], &[2; 96]);
    assert_eq!(&out[96..106], &[3; 10]);
    assert!(outbox.is_empty());
}

#[test]
fn huge_transmit_buffers_are_read_only_to_the_bound() {
    let mut drv = Driver::new();
    let mut console = device(Echo);
    // 96 KiB in two descriptors: only the first 64 KiB reach the sink (the outbox keeps 4 KiB).
    drv.offer(TRANSMITQ, 0, &[(0xc000, 0), (0xc000, 0)], &[]);
    let mut budget = Budget::bytes(1 << 20);
    assert!(
        console
            .notify(TRANSMITQ, &mut drv.mem, &mut budget)
            .unwrap()
    );
    assert_eq!(drv.take_used(TRANSMITQ), vec![(0, 0)]);
    let fed = u64::from(MAX_BYTES_PER_CHAIN);
    assert_eq!(budget.left(), (1 << 20) - fed - Budget::CHAIN_COST);
    assert_eq!(
        console.outbox().len() as u64 + console.outbox().dropped(),
        fed
    );
}

#[test]
fn wrong_direction_chains_are_returned_untouched() {
    let mut drv = Driver::new();
    let mut console = device(Echo);
    // A writable buffer on transmitq: returned with 0, its bytes never read or written.
    let bad_tx = drv.offer(TRANSMITQ, 0, &[(4, 0), (4, VIRTQ_DESC_F_WRITE)], &[b"nope"]);
    drv.send(2, b"ok");
    assert!(notify(&mut console, &mut drv, TRANSMITQ));
    assert_eq!(drv.take_used(TRANSMITQ), vec![(0, 0), (2, 0)]);
    assert_eq!(drv.bytes(bad_tx[1], 4), &[GUARD; 4]);
    assert_eq!(console.outbox().len(), 2);
    // A readable buffer on receiveq: returned with 0, nothing written; the next one is served.
    let bad_rx = drv.offer(RECEIVEQ, 0, &[(4, 0), (4, VIRTQ_DESC_F_WRITE)], &[b"keep"]);
    let good = drv.recv_buf(2, 8);
    assert!(notify(&mut console, &mut drv, RECEIVEQ));
    assert_eq!(drv.take_used(RECEIVEQ), vec![(0, 0), (2, 2)]);
    assert_eq!(drv.bytes(bad_rx[0], 4), b"keep");
    assert_eq!(drv.bytes(bad_rx[1], 4), &[GUARD; 4]);
    assert_eq!(drv.bytes(good, 2), b"ok");
    assert_eq!(console.wrong_direction(), 2);
}

#[test]
fn a_spent_budget_starts_no_chain() {
    let mut drv = Driver::new();
    let mut console = device(Echo);
    for i in 0..3u16 {
        drv.send(i, b"abcd");
    }
    // Enough for one chain: the other two wait for the next call.
    let mut budget = Budget::bytes(1);
    assert!(
        console
            .notify(TRANSMITQ, &mut drv.mem, &mut budget)
            .unwrap()
    );
    assert!(budget.is_spent());
    assert_eq!(drv.take_used(TRANSMITQ), vec![(0, 0)]);
    let mut spent = Budget::bytes(0);
    assert!(!console.notify(TRANSMITQ, &mut drv.mem, &mut spent).unwrap());
    assert!(drv.take_used(TRANSMITQ).is_empty());
    assert!(notify(&mut console, &mut drv, TRANSMITQ));
    assert_eq!(drv.take_used(TRANSMITQ), vec![(1, 0), (2, 0)]);
    // Receive side: one chain per budget as well.
    drv.recv_buf(0, 4);
    drv.recv_buf(1, 4);
    let mut budget = Budget::bytes(1);
    assert!(console.notify(RECEIVEQ, &mut drv.mem, &mut budget).unwrap());
    assert_eq!(drv.take_used(RECEIVEQ), vec![(0, 4)]);
    assert!(notify(&mut console, &mut drv, RECEIVEQ));
    assert_eq!(drv.take_used(RECEIVEQ), vec![(1, 4)]);
    assert_eq!(console.outbox().len(), 4);
}

#[test]
fn reset_forgets_queues_and_waiting_output() {
    let mut drv = Driver::new();
    let mut console = device(Shell::new("d"));
    drv.send(0, b"hel");
    notify(&mut console, &mut drv, TRANSMITQ);
    console.reset();
    assert!(console.outbox().is_empty());
    assert!(
        !notify(&mut console, &mut drv, TRANSMITQ),
        "no queue after reset"
    );
    // A fresh start: the prompt, and the half line before the reset is gone.
    let mut drv = Driver::new();
    console
        .activate(VIRTIO_F_VERSION_1, &[Some(config(0)), Some(config(1))])
        .unwrap();
    drv.send(0, b"p\n");
    notify(&mut console, &mut drv, TRANSMITQ);
    assert_eq!(
        receive(&mut console, &mut drv, 0, 64),
        b"> unknown command\n> "
    );
}

#[test]
fn with_event_idx_receive_buffers_filled_elsewhere_are_announced_when_asked() {
    let mut drv = Driver::new();
    let mut console = Console::new(Echo);
    let features = VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC;
    console
        .activate(features, &[Some(config(0)), Some(config(1))])
        .unwrap();
    let first = drv.recv_buf(0, 64);
    assert!(!notify(&mut console, &mut drv, RECEIVEQ), "nothing to say");
    drv.send(0, b"one");
    // The first pass of each queue notifies.
    assert!(notify(&mut console, &mut drv, TRANSMITQ));
    assert_eq!(console.take_used_elsewhere(), 1 << RECEIVEQ);
    assert_eq!(drv.take_used(TRANSMITQ), vec![(0, 0)]);
    assert_eq!(drv.take_used(RECEIVEQ), vec![(0, 3)]);
    assert_eq!(drv.bytes(first, 3), b"one");
    // The driver does not ask again (used_event stays 0 on both): served, not announced.
    let second = drv.recv_buf(1, 64);
    drv.send(1, b"two");
    assert!(!notify(&mut console, &mut drv, TRANSMITQ));
    assert_eq!(console.take_used_elsewhere(), 0);
    assert_eq!(drv.take_used(TRANSMITQ), vec![(1, 0)]);
    assert_eq!(drv.take_used(RECEIVEQ), vec![(1, 3)]);
    assert_eq!(drv.bytes(second, 3), b"two");
    // It asks on receiveq only, and transmits through an indirect table of two buffers.
    drv.ask(RECEIVEQ);
    let third = drv.recv_buf(2, 64);
    drv.offer_indirect(TRANSMITQ, 2, &[(3, 0), (3, 0)], &[b"thr", b"ee!"]);
    assert!(!notify(&mut console, &mut drv, TRANSMITQ));
    assert_eq!(console.take_used_elsewhere(), 1 << RECEIVEQ);
    assert_eq!(drv.take_used(RECEIVEQ), vec![(2, 6)]);
    assert_eq!(drv.bytes(third, 6), b"three!");
    assert_eq!(drv.take_used(TRANSMITQ), vec![(2, 0)]);
    drv.ask(TRANSMITQ);
    drv.send(3, b"x");
    assert!(notify(&mut console, &mut drv, TRANSMITQ));
    assert_eq!(
        console.take_used_elsewhere(),
        0,
        "no receive buffer: nothing to announce"
    );
}
