//! Tests of the virtio-vsock model against a hand-written driver in a `VecMem`: the connection
//! state machine (connect, data both ways, credit, shutdown, RST), the limits (connections,
//! buffers, the pending queue, the budget) and malformed packets, each followed by a good
//! request that is served.

use std::collections::BTreeMap;

use virtio_msg::{
    SharedMem,
    device::{Budget, QueueConfig, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1, VirtioDevice},
    mem::VecMem,
};

use super::*;
use crate::virtqueue::{VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};

const BASE: u64 = 2 << 48;
const SIZE: u16 = 16;
/// Queue `q`'s rings at `BASE + q * 0x4000`.
const fn qbase(q: u32) -> u64 {
    BASE + q as u64 * 0x4000
}
/// Each descriptor of each queue has a buffer of its own of `SLOT` bytes from `BUFS` on.
const BUFS: u64 = BASE + 0x10000;
const SLOT: u64 = 0x1400;
const MEM_LEN: usize = 0x10000 + 3 * 16 * 0x1400;
const _: () = assert!(SIZE == 16 && SLOT == 0x1400);
/// The header size as a descriptor length.
const HDR: u32 = 44;
/// [`MAX_CONNECTIONS`] as a port count.
const CONNS: u32 = 8;
const _: () = assert!(HDR as usize == HDR_LEN && CONNS as usize == MAX_CONNECTIONS);

/// A chain's descriptors: (index, address, length) of each.
type Chain = Vec<(u16, u64, u32)>;
/// An address no area covers.
const OUTSIDE: u64 = 7 << 48;

fn config(q: u32) -> QueueConfig {
    QueueConfig {
        size: SIZE,
        desc_addr: qbase(q),
        driver_addr: qbase(q) + 0x1000,
        device_addr: qbase(q) + 0x2000,
    }
}

/// A driver port's header to the partition's `port`.
fn hdr(op: Op, from: u32, port: u32) -> Header {
    Header {
        src_cid: GUEST_CID,
        dst_cid: HOST_CID,
        src_port: from,
        dst_port: port,
        len: 0,
        socket_type: TYPE_STREAM,
        op,
        flags: 0,
        buf_alloc: 64 * 1024,
        fwd_cnt: 0,
    }
}

/// One buffer of a chain the driver offers.
#[derive(Clone)]
enum Buf {
    /// Device-readable, with these bytes.
    Read(Vec<u8>),
    /// Device-readable, `len` bytes at an address outside shared memory.
    ReadOutside(u32),
    /// Device-writable, `len` bytes.
    Write(u32),
}

/// A hand-written driver: three queues, a descriptor free list per queue, a buffer per
/// descriptor.
struct Driver {
    mem: VecMem,
    free: [Vec<u16>; 3],
    avail: [u16; 3],
    used_seen: [u16; 3],
    /// Per queue, per offered head: the chain's descriptors and buffers.
    chains: [BTreeMap<u16, Chain>; 3],
}

impl Driver {
    fn new() -> Self {
        Self {
            mem: VecMem::new(BASE, MEM_LEN),
            free: std::array::from_fn(|_| (0..SIZE).rev().collect()),
            avail: [0; 3],
            used_seen: [0; 3],
            chains: Default::default(),
        }
    }

    fn buf_addr(q: u32, desc: u16) -> u64 {
        BUFS + (u64::from(q) * u64::from(SIZE) + u64::from(desc)) * SLOT
    }

    /// Offers a chain of `bufs` on queue `q`; returns its head.
    fn offer(&mut self, q: u32, bufs: &[Buf]) -> u16 {
        let qi = q as usize;
        let descs: Vec<u16> = (0..bufs.len())
            .map(|_| self.free[qi].pop().expect("a free descriptor"))
            .collect();
        let mut list = Vec::new();
        for (k, buf) in bufs.iter().enumerate() {
            let d = descs[k];
            let (addr, len, mut flags) = match buf {
                Buf::Read(bytes) => {
                    assert!(bytes.len() as u64 <= SLOT);
                    let addr = Self::buf_addr(q, d);
                    self.mem.write(addr, bytes).unwrap();
                    (addr, u32::try_from(bytes.len()).unwrap(), 0)
                }
                Buf::ReadOutside(len) => (OUTSIDE, *len, 0),
                Buf::Write(len) => {
                    assert!(u64::from(*len) <= SLOT);
                    (Self::buf_addr(q, d), *len, VIRTQ_DESC_F_WRITE)
                }
            };
            let next = descs.get(k + 1).copied().unwrap_or(0);
            if k + 1 < bufs.len() {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            let mut raw = [0u8; 16];
            raw[0..8].copy_from_slice(&addr.to_le_bytes());
            raw[8..12].copy_from_slice(&len.to_le_bytes());
            raw[12..14].copy_from_slice(&flags.to_le_bytes());
            raw[14..16].copy_from_slice(&next.to_le_bytes());
            self.mem
                .write(config(q).desc_addr + 16 * u64::from(d), &raw)
                .unwrap();
            list.push((d, addr, len));
        }
        let head = descs[0];
        self.chains[qi].insert(head, list);
        let idx = self.avail[qi];
        let avail = config(q).driver_addr;
        self.mem
            .write(avail + 4 + 2 * u64::from(idx % SIZE), &head.to_le_bytes())
            .unwrap();
        self.avail[qi] = idx.wrapping_add(1);
        self.mem
            .write(avail + 2, &self.avail[qi].to_le_bytes())
            .unwrap();
        head
    }

    /// Sends one packet in one buffer.
    fn send(&mut self, h: Header, payload: &[u8]) {
        let mut bytes = h.encode().to_vec();
        bytes.extend_from_slice(payload);
        self.offer(TXQ, &[Buf::Read(bytes)]);
    }

    /// Sends an RW of `payload`.
    fn send_rw(&mut self, from: u32, port: u32, payload: &[u8]) {
        let h = Header {
            len: u32::try_from(payload.len()).unwrap(),
            ..hdr(Op::Rw, from, port)
        };
        self.send(h, payload);
    }

    /// Posts `n` receive buffers of `len` bytes.
    fn post_rx(&mut self, n: usize, len: u32) {
        for _ in 0..n {
            self.offer(RXQ, &[Buf::Write(len)]);
        }
    }

    fn used_idx(&self, q: u32) -> u16 {
        let mut b = [0; 2];
        self.mem.read(config(q).device_addr + 2, &mut b).unwrap();
        u16::from_le_bytes(b)
    }

    /// The used elements of `q` not seen yet, as (head, len, the chain's buffers); their
    /// descriptors go back to the free list.
    fn take_used(&mut self, q: u32) -> Vec<(u16, u32, Chain)> {
        let qi = q as usize;
        let mut out = Vec::new();
        let idx = self.used_idx(q);
        while self.used_seen[qi] != idx {
            let mut b = [0; 8];
            let at = config(q).device_addr + 4 + 8 * u64::from(self.used_seen[qi] % SIZE);
            self.mem.read(at, &mut b).unwrap();
            let head = u16::try_from(u32::from_le_bytes(b[..4].try_into().unwrap())).unwrap();
            let len = u32::from_le_bytes(b[4..].try_into().unwrap());
            let chain = self.chains[qi].remove(&head).expect("a chain we offered");
            for &(d, _, _) in &chain {
                self.free[qi].push(d);
            }
            out.push((head, len, chain));
            self.used_seen[qi] = self.used_seen[qi].wrapping_add(1);
        }
        out
    }

    /// The tx chains returned since the last look: each must have used length 0.
    fn tx_returned(&mut self) -> usize {
        let used = self.take_used(TXQ);
        assert!(used.iter().all(|u| u.1 == 0), "tx used lengths: {:?}", used);
        used.len()
    }

    /// The packets the device wrote into rx buffers since the last look (a returned buffer
    /// with used length 0 is listed as `None`).
    fn received_raw(&mut self) -> Vec<Option<(Header, Vec<u8>)>> {
        let mut out = Vec::new();
        for (_, len, chain) in self.take_used(RXQ) {
            if len == 0 {
                out.push(None);
                continue;
            }
            let mut bytes = Vec::new();
            for &(_, addr, blen) in &chain {
                let mut b = vec![0u8; blen as usize];
                self.mem.read(addr, &mut b).unwrap();
                bytes.extend_from_slice(&b);
            }
            bytes.truncate(len as usize);
            assert!(bytes.len() >= HDR_LEN, "a packet of {} bytes", bytes.len());
            let h = Header::decode(bytes[..HDR_LEN].try_into().unwrap());
            assert_eq!(
                bytes.len(),
                HDR_LEN + h.len as usize,
                "used length and len agree"
            );
            out.push(Some((h, bytes[HDR_LEN..].to_vec())));
        }
        out
    }

    /// The packets received, every returned buffer holding one.
    fn received(&mut self) -> Vec<(Header, Vec<u8>)> {
        self.received_raw()
            .into_iter()
            .map(|p| p.expect("a packet in every returned rx buffer"))
            .collect()
    }
}

type Dev = Vsock<StandardServices>;

fn device() -> Dev {
    let mut dev = Vsock::new(StandardServices::new("0 test-device"));
    dev.activate(
        VIRTIO_F_VERSION_1 | VIRTIO_VSOCK_F_STREAM,
        &[Some(config(0)), Some(config(1)), Some(config(2))],
    )
    .unwrap();
    dev
}

/// Notifies `q` with an unlimited budget; returns (used on `q`, used elsewhere).
fn notify(dev: &mut Dev, drv: &mut Driver, q: u32) -> (bool, u64) {
    let used = dev
        .notify(q, &mut drv.mem, &mut Budget::unlimited())
        .unwrap();
    (used, dev.take_used_elsewhere())
}

/// Asserts `p` is the packet `op` from partition port `port` to driver port `to`, with the
/// device's buf_alloc and the fields every device packet has.
fn assert_packet(p: &(Header, Vec<u8>), op: Op, port: u32, to: u32) {
    let h = &p.0;
    assert_eq!(h.op, op, "{h:?}");
    assert_eq!((h.src_cid, h.dst_cid), (HOST_CID, GUEST_CID), "{h:?}");
    assert_eq!((h.src_port, h.dst_port), (port, to), "{h:?}");
    assert_eq!(h.socket_type, TYPE_STREAM, "{h:?}");
    assert_eq!(h.buf_alloc, 1024, "{h:?}");
    assert_eq!(h.len as usize, p.1.len());
}

/// Connects driver port `from` to partition port `port` and checks the RESPONSE (and, for the
/// shell, the prompt after it).
fn connect(dev: &mut Dev, drv: &mut Driver, from: u32, port: u32) {
    drv.tx_returned();
    drv.post_rx(if port == SHELL_PORT { 2 } else { 1 }, 256);
    drv.send(hdr(Op::Request, from, port), &[]);
    notify(dev, drv, TXQ);
    assert_eq!(drv.tx_returned(), 1);
    let got = drv.received();
    assert_packet(&got[0], Op::Response, port, from);
    assert_eq!(got[0].0.fwd_cnt, 0);
    if port == SHELL_PORT {
        assert_eq!(got.len(), 2, "{got:?}");
        assert_packet(&got[1], Op::Rw, port, from);
        assert_eq!(got[1].1, b"> ");
    } else {
        assert_eq!(got.len(), 1, "{got:?}");
    }
}

/// Sends an RW and returns the packets it got back (with rx buffers of 256 bytes posted).
fn exchange(
    dev: &mut Dev,
    drv: &mut Driver,
    from: u32,
    port: u32,
    data: &[u8],
) -> Vec<(Header, Vec<u8>)> {
    drv.tx_returned();
    drv.send_rw(from, port, data);
    notify(dev, drv, TXQ);
    assert_eq!(drv.tx_returned(), 1);
    drv.received()
}

/// A REQUEST from a fresh port is answered with RESPONSE: the device still serves.
fn still_serves(dev: &mut Dev, drv: &mut Driver, from: u32) {
    drv.tx_returned();
    drv.post_rx(1, 64);
    drv.send(hdr(Op::Request, from, ECHO_PORT), &[]);
    notify(dev, drv, TXQ);
    assert_eq!(drv.tx_returned(), 1);
    let got = drv.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_packet(&got[0], Op::Response, ECHO_PORT, from);
    drv.send(hdr(Op::Rst, from, ECHO_PORT), &[]);
    notify(dev, drv, TXQ);
    drv.tx_returned();
}

#[test]
fn identity_configuration_and_queues() {
    let dev = Vsock::new(StandardServices::new(""));
    assert!(
        !dev.holds_buffers(),
        "nothing allocated before a connection"
    );
    assert_eq!(dev.device_id(), 19);
    assert_eq!(
        dev.features(),
        VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM | VIRTIO_VSOCK_F_STREAM
    );
    assert_eq!(dev.config_size(), 8);
    let mut cid = [0xffu8; 8];
    dev.read_config(0, &mut cid);
    assert_eq!(u64::from_le_bytes(cid), GUEST_CID);
    // guest_cid_low and guest_cid_high, as virtio-drivers reads them.
    let mut half = [0xffu8; 4];
    dev.read_config(0, &mut half);
    assert_eq!(u32::from_le_bytes(half), 3);
    dev.read_config(4, &mut half);
    assert_eq!(half, [0; 4]);
    assert_eq!(dev.num_queues(), 3);
    for q in 0..3 {
        assert_eq!(dev.queue_max_size(q), QUEUE_MAX_SIZE);
    }
    assert_eq!(dev.queue_max_size(3), 0);
    let mut big = Vsock::new(StandardServices::new(""));
    let mut cfg = config(2);
    cfg.size = 128;
    assert_eq!(
        big.activate(0, &[Some(config(0)), Some(config(1)), Some(cfg)]),
        Err(DeviceError::Queue),
        "an oversized event queue is refused as well"
    );
    assert_eq!(big.activate_queue(3, config(0)), Err(DeviceError::Queue));
    assert_eq!(big.activate_queue(EVENTQ, config(2)), Ok(()));
}

#[test]
fn header_round_trip_keeps_every_field_and_unknown_ops() {
    let h = Header {
        src_cid: 0x1122_3344_5566_7788,
        dst_cid: 2,
        src_port: 0xdead_beef,
        dst_port: 7,
        len: 5,
        socket_type: 9,
        op: Op::Unknown(0x1234),
        flags: 3,
        buf_alloc: 0x8000,
        fwd_cnt: 0xffff_fff0,
    };
    let bytes = h.encode();
    assert_eq!(&bytes[0..8], &0x1122_3344_5566_7788u64.to_le_bytes());
    assert_eq!(&bytes[28..30], &9u16.to_le_bytes());
    assert_eq!(&bytes[30..32], &0x1234u16.to_le_bytes());
    assert_eq!(&bytes[40..44], &0xffff_fff0u32.to_le_bytes());
    assert_eq!(Header::decode(&bytes), h);
    for v in 0..10u16 {
        assert_eq!(u16::from(Op::from(v)), v);
    }
    assert_eq!(Op::from(5), Op::Rw);
    assert_eq!(Op::from(8), Op::Unknown(8));
}

#[test]
fn connect_and_echo_both_ways() {
    let mut drv = Driver::new();
    let mut dev = device();
    connect(&mut dev, &mut drv, 1000, ECHO_PORT);
    assert_eq!(
        dev.connections().collect::<Vec<_>>(),
        vec![(1000, ECHO_PORT)]
    );
    assert_eq!(dev.stats().accepted, 1);
    drv.post_rx(2, 256);
    let got = exchange(&mut dev, &mut drv, 1000, ECHO_PORT, b"hello, vsock");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_packet(&got[0], Op::Rw, ECHO_PORT, 1000);
    assert_eq!(got[0].1, b"hello, vsock");
    // Our fwd_cnt counts what the echo took.
    assert_eq!(got[0].0.fwd_cnt, 12);
    let got = exchange(&mut dev, &mut drv, 1000, ECHO_PORT, b"again");
    assert_eq!(got[0].1, b"again");
    assert_eq!(got[0].0.fwd_cnt, 17);
    // The answer went to rx during a tx notify: the engine is told.
    drv.post_rx(1, 256);
    drv.send_rw(1000, ECHO_PORT, b"x");
    assert_eq!(notify(&mut dev, &mut drv, TXQ), (true, 1 << RXQ));
    drv.received();
    drv.tx_returned();
    // RW with len 0 is fine and answered by nothing.
    let got = exchange(&mut dev, &mut drv, 1000, ECHO_PORT, b"");
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn the_shell_on_its_port() {
    let mut drv = Driver::new();
    let mut dev = device();
    connect(&mut dev, &mut drv, 5, SHELL_PORT);
    drv.post_rx(4, 256);
    let got = exchange(&mut dev, &mut drv, 5, SHELL_PORT, b"help\n");
    let text: Vec<u8> = got.iter().flat_map(|p| p.1.clone()).collect();
    assert_eq!(text, b"commands: help, version, devices, stats, log\n> ");
    let got = exchange(&mut dev, &mut drv, 5, SHELL_PORT, b"devices\r\nbogus\n");
    let text: Vec<u8> = got.iter().flat_map(|p| p.1.clone()).collect();
    assert_eq!(text, b"0 test-device\n> unknown command\n> ");
    // Each connection has a shell of its own: a half line on one is not seen on another.
    let got = exchange(&mut dev, &mut drv, 5, SHELL_PORT, b"hel");
    assert!(got.is_empty());
    connect(&mut dev, &mut drv, 6, SHELL_PORT);
    drv.post_rx(2, 256);
    let got = exchange(&mut dev, &mut drv, 6, SHELL_PORT, b"p\n");
    assert_eq!(got[0].1, b"unknown command\n> ");
    let got = exchange(&mut dev, &mut drv, 5, SHELL_PORT, b"p\n");
    assert_eq!(
        got[0].1,
        b"commands: help, version, devices, stats, log\n> "
    );
}

#[test]
fn nothing_listening_is_refused_with_rst() {
    let mut drv = Driver::new();
    let mut dev = device();
    drv.post_rx(1, 64);
    drv.send(hdr(Op::Request, 1234, 99), &[]);
    notify(&mut dev, &mut drv, TXQ);
    let got = drv.received();
    assert_eq!(got.len(), 1);
    assert_packet(&got[0], Op::Rst, 99, 1234);
    assert_eq!(dev.connections().count(), 0);
    assert_eq!(dev.stats().refused, 1);
    assert_eq!(dev.stats().resets_sent, 1);
    assert!(!dev.holds_buffers(), "a refused REQUEST allocates nothing");
    still_serves(&mut dev, &mut drv, 1235);
}

#[test]
fn the_ninth_connection_is_refused_and_a_closed_slot_is_reused() {
    let mut drv = Driver::new();
    let mut dev = device();
    for port in 0..CONNS {
        connect(&mut dev, &mut drv, 100 + port, ECHO_PORT);
    }
    assert_eq!(dev.connections().count(), MAX_CONNECTIONS);
    drv.post_rx(1, 64);
    drv.send(hdr(Op::Request, 200, ECHO_PORT), &[]);
    notify(&mut dev, &mut drv, TXQ);
    let got = drv.received();
    assert_packet(&got[0], Op::Rst, ECHO_PORT, 200);
    assert_eq!(dev.connections().count(), MAX_CONNECTIONS);
    assert_eq!(dev.stats().refused, 1);
    // The open connections still work.
    drv.post_rx(1, 64);
    assert_eq!(
        exchange(&mut dev, &mut drv, 103, ECHO_PORT, b"ok")[0].1,
        b"ok"
    );
    // An RST from the driver closes one (unanswered); the next REQUEST gets its slot.
    drv.send(hdr(Op::Rst, 103, ECHO_PORT), &[]);
    notify(&mut dev, &mut drv, TXQ);
    assert!(drv.received().is_empty());
    assert_eq!(dev.connections().count(), MAX_CONNECTIONS - 1);
    connect(&mut dev, &mut drv, 200, ECHO_PORT);
    assert_eq!(dev.connections().count(), MAX_CONNECTIONS);
}

#[test]
fn the_device_sends_only_within_the_drivers_credit() {
    let mut drv = Driver::new();
    let mut dev = device();
    drv.post_rx(1, 64);
    drv.send(
        Header {
            buf_alloc: 10,
            ..hdr(Op::Request, 1, ECHO_PORT)
        },
        &[],
    );
    notify(&mut dev, &mut drv, TXQ);
    drv.received();
    // 30 bytes in, 10 of credit: 10 out, then a CREDIT_REQUEST (data waits, no credit).
    drv.post_rx(4, 256);
    let data: Vec<u8> = (0..30).collect();
    drv.send(
        Header {
            buf_alloc: 10,
            len: 30,
            ..hdr(Op::Rw, 1, ECHO_PORT)
        },
        &data,
    );
    notify(&mut dev, &mut drv, TXQ);
    let got = drv.received();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0.op, Op::Rw);
    assert_eq!(got[0].1, &data[..10]);
    assert_packet(&got[1], Op::CreditRequest, ECHO_PORT, 1);
    assert_eq!(dev.buffered(1, ECHO_PORT), Some((0, 20)));
    // An unchanged credit (the buffers still full) asks nothing again and sends nothing.
    let mut same = hdr(Op::CreditUpdate, 1, ECHO_PORT);
    same.buf_alloc = 10;
    drv.send(same, &[]);
    notify(&mut dev, &mut drv, TXQ);
    assert!(drv.received().is_empty());
    // The driver forwarded 4 bytes: 4 more go out.
    drv.send(
        Header {
            buf_alloc: 10,
            fwd_cnt: 4,
            ..hdr(Op::CreditUpdate, 1, ECHO_PORT)
        },
        &[],
    );
    notify(&mut dev, &mut drv, TXQ);
    let got = drv.received();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].1, &data[10..14]);
    assert_eq!(got[1].0.op, Op::CreditRequest);
    // A bigger buffer and everything forwarded: the rest.
    drv.post_rx(2, 256);
    drv.send(
        Header {
            buf_alloc: 1000,
            fwd_cnt: 14,
            ..hdr(Op::CreditUpdate, 1, ECHO_PORT)
        },
        &[],
    );
    notify(&mut dev, &mut drv, TXQ);
    let got = drv.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, &data[14..]);
    assert_eq!(dev.buffered(1, ECHO_PORT), Some((0, 0)));
    // A driver claiming to have forwarded more than it was sent has no credit at all.
    drv.post_rx(2, 256);
    drv.send(
        Header {
            buf_alloc: 1000,
            fwd_cnt: 100,
            len: 3,
            ..hdr(Op::Rw, 1, ECHO_PORT)
        },
        b"abc",
    );
    notify(&mut dev, &mut drv, TXQ);
    let got = drv.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0.op, Op::CreditRequest);
    assert_eq!(dev.buffered(1, ECHO_PORT), Some((0, 3)));
}

#[test]
fn packets_fit_the_rx_buffers() {
    let mut drv = Driver::new();
    let mut dev = device();
    connect(&mut dev, &mut drv, 1, ECHO_PORT);
    // Buffers with room for 5 payload bytes each: 12 bytes come back as 5 + 5 + 2.
    drv.post_rx(3, HDR + 5);
    let got = exchange(&mut dev, &mut drv, 1, ECHO_PORT, b"0123456789ab");
    let pieces: Vec<&[u8]> = got.iter().map(|p| p.1.as_slice()).collect();
    assert_eq!(pieces, vec![&b"01234"[..], b"56789", b"ab"]);
    // A header-sized buffer takes a control packet but no data: it comes back empty while
    // only data waits, and the data waits for the next buffer.
    drv.post_rx(1, HDR);
    drv.send_rw(1, ECHO_PORT, b"xyz");
    notify(&mut dev, &mut drv, TXQ);
    assert_eq!(drv.received_raw(), vec![None]);
    drv.tx_returned();
    drv.post_rx(1, 64);
    notify(&mut dev, &mut drv, RXQ);
    assert_eq!(drv.received()[0].1, b"xyz");
    // Linux's older layout: the header in one descriptor, the payload in the next.
    drv.offer(RXQ, &[Buf::Write(HDR), Buf::Write(100)]);
    let got = exchange(&mut dev, &mut drv, 1, ECHO_PORT, b"split");
    assert_eq!(got[0].1, b"split");
    // Buffers in the wrong direction or too small for a header come back unused.
    drv.offer(RXQ, &[Buf::Read(vec![1, 2, 3]), Buf::Write(64)]);
    drv.offer(RXQ, &[Buf::Write(43)]);
    drv.post_rx(1, 64);
    drv.send_rw(1, ECHO_PORT, b"ok");
    notify(&mut dev, &mut drv, TXQ);
    let got = drv.received_raw();
    assert_eq!(got.len(), 3);
    assert!(got[0].is_none() && got[1].is_none());
    assert_eq!(got[2].as_ref().unwrap().1, b"ok");
    assert_eq!(dev.stats().bad_rx_buffers, 2);
}

#[test]
fn header_and_payload_may_span_descriptors() {
    let mut drv = Driver::new();
    let mut dev = device();
    drv.post_rx(2, 128);
    let request = hdr(Op::Request, 9, ECHO_PORT).encode();
    drv.offer(
        TXQ,
        &[
            Buf::Read(request[..10].to_vec()),
            Buf::Read(request[10..30].to_vec()),
            Buf::Read(request[30..].to_vec()),
        ],
    );
    notify(&mut dev, &mut drv, TXQ);
    assert_eq!(drv.received()[0].0.op, Op::Response);
    let mut rw = Header {
        len: 7,
        ..hdr(Op::Rw, 9, ECHO_PORT)
    }
    .encode()
    .to_vec();
    rw.extend_from_slice(b"abc");
    // Header and the first payload bytes together, the rest in two more descriptors, and
    // bytes past `len` that are ignored.
    drv.offer(
        TXQ,
        &[
            Buf::Read(rw),
            Buf::Read(b"de".to_vec()),
            Buf::Read(b"fgXXX".to_vec()),
        ],
    );
    notify(&mut dev, &mut drv, TXQ);
    assert_eq!(drv.received()[0].1, b"abcdefg");
}

#[test]
fn credit_updates_when_the_drivers_view_runs_low_and_on_request() {
    let mut drv = Driver::new();
    let mut dev = device();
    connect(&mut dev, &mut drv, 1, SHELL_PORT);
    drv.post_rx(2, 256);
    // 100 bytes of a line the shell keeps quiet about: the driver's view is still 924 of 1024.
    assert!(exchange(&mut dev, &mut drv, 1, SHELL_PORT, &[b'a'; 100]).is_empty());
    // 500 more: its view falls to 424, below half: a CREDIT_UPDATE with all 600 forwarded.
    let got = exchange(&mut dev, &mut drv, 1, SHELL_PORT, &[b'a'; 500]);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_packet(&got[0], Op::CreditUpdate, SHELL_PORT, 1);
    assert_eq!(got[0].0.fwd_cnt, 600);
    // Asked, the device answers even when nothing changed.
    drv.send(hdr(Op::CreditRequest, 1, SHELL_PORT), &[]);
    notify(&mut dev, &mut drv, TXQ);
    let got = drv.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_packet(&got[0], Op::CreditUpdate, SHELL_PORT, 1);
    assert_eq!(got[0].0.fwd_cnt, 600);
    // The line ends: its answer carries the count too.
    drv.post_rx(1, 256);
    let got = exchange(&mut dev, &mut drv, 1, SHELL_PORT, b"\n");
    assert_eq!(got[0].1, b"line too long\n> ");
    assert_eq!(got[0].0.fwd_cnt, 601);
}

#[test]
fn a_driver_ignoring_credit_is_reset_and_the_buffers_never_grow() {
    let mut drv = Driver::new();
    let mut dev = device();
    // The driver gives no credit (buf_alloc 0), so the echo's answers cannot leave.
    drv.post_rx(1, 64);
    drv.send(
        Header {
            buf_alloc: 0,
            ..hdr(Op::Request, 1, ECHO_PORT)
        },
        &[],
    );
    notify(&mut dev, &mut drv, TXQ);
    drv.received();
    // 1024 bytes: the echo takes them all into its transmit buffer.
    let starved = |len: usize| Header {
        buf_alloc: 0,
        len: u32::try_from(len).unwrap(),
        ..hdr(Op::Rw, 1, ECHO_PORT)
    };
    let chunk = vec![b'z'; 1024];
    drv.send(starved(1024), &chunk);
    notify(&mut dev, &mut drv, TXQ);
    assert_eq!(dev.buffered(1, ECHO_PORT), Some((0, 1024)));
    // 1024 more: the receive buffer holds them, the echo cannot take them.
    drv.send(starved(1024), &chunk);
    notify(&mut dev, &mut drv, TXQ);
    assert_eq!(dev.buffered(1, ECHO_PORT), Some((1024, 1024)));
    // One byte past the advertised buffer: RST, the connection and its buffers gone.
    drv.post_rx(3, 64);
    drv.send(starved(1), b"!");
    notify(&mut dev, &mut drv, TXQ);
    let got = drv.received();
    // What waited goes first: the count of what the echo took (which gives the driver no
    // credit: the receive buffer is full), a request for credit for the echo's output; then
    // the RST.
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].0.op, Op::CreditUpdate);
    assert_eq!((got[0].0.buf_alloc, got[0].0.fwd_cnt), (1024, 1024));
    assert_eq!(got[1].0.op, Op::CreditRequest);
    assert_packet(&got[2], Op::Rst, ECHO_PORT, 1);
    assert_eq!(dev.buffered(1, ECHO_PORT), None);
    assert_eq!(dev.stats().credit_violations, 1);
    // One packet bigger than the whole buffer at once: the same.
    drv.post_rx(2, 64);
    drv.send(hdr(Op::Request, 2, ECHO_PORT), &[]);
    drv.send_rw(2, ECHO_PORT, &vec![0u8; 1025]);
    notify(&mut dev, &mut drv, TXQ);
    // Reset before its RESPONSE went out: the driver sees the connection aborted.
    let got = drv.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_packet(&got[0], Op::Rst, ECHO_PORT, 2);
    assert_eq!(dev.stats().credit_violations, 2);
    assert_eq!(dev.connections().count(), 0);
    still_serves(&mut dev, &mut drv, 3);
}

#[test]
fn shutdown_both_ways_is_answered_with_rst() {
    let mut drv = Driver::new();
    let mut dev = device();
    connect(&mut dev, &mut drv, 1, ECHO_PORT);
    drv.post_rx(1, 64);
    drv.send(
        Header {
            flags: SHUTDOWN_RCV | SHUTDOWN_SEND,
            ..hdr(Op::Shutdown, 1, ECHO_PORT)
        },
        &[],
    );
    notify(&mut dev, &mut drv, TXQ);
    let got = drv.received();
    assert_eq!(got.len(), 1);
    assert_packet(&got[0], Op::Rst, ECHO_PORT, 1);
    assert_eq!(dev.connections().count(), 0);
    // The hints add up: RCV, then SEND, is both.
    connect(&mut dev, &mut drv, 2, ECHO_PORT);
    for flags in [SHUTDOWN_RCV, SHUTDOWN_SEND] {
        drv.send(
            Header {
                flags,
                ..hdr(Op::Shutdown, 2, ECHO_PORT)
            },
            &[],
        );
    }
    drv.post_rx(1, 64);
    notify(&mut dev, &mut drv, TXQ);
    let got = drv.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_packet(&got[0], Op::Rst, ECHO_PORT, 2);
    assert_eq!(dev.connections().count(), 0);
}

#[test]
fn shutdown_send_gets_the_answers_then_the_devices_shutdown() {
    let mut drv = Driver::new();
    let mut dev = device();
    connect(&mut dev, &mut drv, 1, SHELL_PORT);
    // "help" and the driver's SHUTDOWN(SEND) before any rx buffer: the answer waits.
    drv.send_rw(1, SHELL_PORT, b"help\n");
    drv.send(
        Header {
            flags: SHUTDOWN_SEND,
            ..hdr(Op::Shutdown, 1, SHELL_PORT)
        },
        &[],
    );
    notify(&mut dev, &mut drv, TXQ);
    assert_eq!(drv.tx_returned(), 2);
    drv.post_rx(3, 256);
    notify(&mut dev, &mut drv, RXQ);
    let got = drv.received();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[0].1,
        b"commands: help, version, devices, stats, log\n> "
    );
    assert_packet(&got[1], Op::Shutdown, SHELL_PORT, 1);
    assert_eq!(got[1].0.flags, SHUTDOWN_RCV | SHUTDOWN_SEND);
    // Data after the driver said it sends no more is a protocol error.
    drv.send_rw(1, SHELL_PORT, b"x");
    notify(&mut dev, &mut drv, TXQ);
    assert_packet(&drv.received()[0], Op::Rst, SHELL_PORT, 1);
    assert_eq!(dev.connections().count(), 0);
    // The clean end: the driver's RST after the device's SHUTDOWN frees the slot.
    connect(&mut dev, &mut drv, 2, ECHO_PORT);
    drv.send(
        Header {
            flags: SHUTDOWN_SEND,
            ..hdr(Op::Shutdown, 2, ECHO_PORT)
        },
        &[],
    );
    drv.post_rx(1, 64);
    notify(&mut dev, &mut drv, TXQ);
    assert_eq!(drv.received()[0].0.op, Op::Shutdown);
    assert_eq!(dev.connections().count(), 1, "waits for the driver's RST");
    drv.send(hdr(Op::Rst, 2, ECHO_PORT), &[]);
    notify(&mut dev, &mut drv, TXQ);
    assert!(drv.received().is_empty(), "an RST is never answered");
    assert_eq!(dev.connections().count(), 0);
}

#[test]
fn shutdown_rcv_drops_the_output() {
    let mut drv = Driver::new();
    let mut dev = device();
    connect(&mut dev, &mut drv, 1, ECHO_PORT);
    drv.send(
        Header {
            flags: SHUTDOWN_RCV,
            ..hdr(Op::Shutdown, 1, ECHO_PORT)
        },
        &[],
    );
    notify(&mut dev, &mut drv, TXQ);
    drv.post_rx(2, 64);
    let got = exchange(&mut dev, &mut drv, 1, ECHO_PORT, &[b'q'; 700]);
    // The echo took the input (counted) but nothing goes to a driver that receives no more;
    // the driver's view fell below half, so it hears the count.
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0.op, Op::CreditUpdate);
    assert_eq!(got[0].0.fwd_cnt, 700);
    assert_eq!(dev.buffered(1, ECHO_PORT), Some((0, 0)));
}

#[test]
fn a_closing_slot_is_given_up_for_a_new_connection() {
    let mut drv = Driver::new();
    let mut dev = device();
    for port in 0..CONNS {
        connect(&mut dev, &mut drv, port, ECHO_PORT);
    }
    // Connection 3 half-closes; the device's SHUTDOWN goes out and it waits for an RST that
    // never comes.
    drv.send(
        Header {
            flags: SHUTDOWN_SEND,
            ..hdr(Op::Shutdown, 3, ECHO_PORT)
        },
        &[],
    );
    drv.post_rx(1, 64);
    notify(&mut dev, &mut drv, TXQ);
    assert_eq!(drv.received()[0].0.op, Op::Shutdown);
    // A ninth connection takes its slot: RST for the old one, RESPONSE for the new.
    drv.post_rx(2, 64);
    drv.send(hdr(Op::Request, 50, ECHO_PORT), &[]);
    notify(&mut dev, &mut drv, TXQ);
    let got = drv.received();
    assert_packet(&got[0], Op::Rst, ECHO_PORT, 3);
    assert_packet(&got[1], Op::Response, ECHO_PORT, 50);
    assert!(dev.connections().any(|c| c == (50, ECHO_PORT)));
    assert!(!dev.connections().any(|c| c == (3, ECHO_PORT)));
}

#[test]
fn malformed_packets_are_answered_and_the_next_request_is_served() {
    let mut drv = Driver::new();
    let mut dev = device();
    connect(&mut dev, &mut drv, 1, ECHO_PORT);
    let good = hdr(Op::Request, 0, ECHO_PORT);
    // (what, the chain, the answer: Some(RST to port) or None for dropped)
    let mut cases: Vec<(&str, Vec<Buf>, Option<u32>)> = vec![
        (
            "short header",
            vec![Buf::Read(good.encode()[..43].to_vec())],
            None,
        ),
        (
            "writable buffer on tx",
            vec![Buf::Read(good.encode().to_vec()), Buf::Write(16)],
            None,
        ),
        (
            "header outside shared memory",
            vec![Buf::ReadOutside(44)],
            None,
        ),
    ];
    let mut bad = |what: &'static str, h: Header, payload: &[u8], answer: Option<u32>| {
        let mut bytes = h.encode().to_vec();
        bytes.extend_from_slice(payload);
        cases.push((what, vec![Buf::Read(bytes)], answer));
    };
    bad("wrong source CID", Header { src_cid: 4, ..good }, &[], None);
    bad(
        "a reserved upper half of the source CID",
        Header {
            src_cid: GUEST_CID | 1 << 32,
            ..good
        },
        &[],
        None,
    );
    bad(
        "wrong destination CID",
        Header { dst_cid: 3, ..good },
        &[],
        None,
    );
    bad(
        "seqpacket type",
        Header {
            socket_type: 2,
            ..good
        },
        &[],
        Some(ECHO_PORT),
    );
    bad(
        "len past the buffer",
        Header {
            len: 10,
            ..hdr(Op::Rw, 0, ECHO_PORT)
        },
        b"12345",
        Some(ECHO_PORT),
    );
    bad(
        "payload on a REQUEST",
        Header { len: 2, ..good },
        b"hi",
        Some(ECHO_PORT),
    );
    bad(
        "op INVALID",
        hdr(Op::Invalid, 0, ECHO_PORT),
        &[],
        Some(ECHO_PORT),
    );
    bad(
        "unknown op",
        hdr(Op::Unknown(99), 0, ECHO_PORT),
        &[],
        Some(ECHO_PORT),
    );
    bad(
        "RESPONSE",
        hdr(Op::Response, 0, ECHO_PORT),
        &[],
        Some(ECHO_PORT),
    );
    bad(
        "RW without a connection",
        hdr(Op::Rw, 0, ECHO_PORT),
        &[],
        Some(ECHO_PORT),
    );
    bad(
        "CREDIT_UPDATE without a connection",
        hdr(Op::CreditUpdate, 0, 77),
        &[],
        Some(77),
    );
    bad(
        "SHUTDOWN without a connection",
        hdr(Op::Shutdown, 0, 77),
        &[],
        Some(77),
    );
    bad("RST without a connection", hdr(Op::Rst, 0, 77), &[], None);
    for (n, (what, chain, answer)) in cases.into_iter().enumerate() {
        drv.post_rx(1, 64);
        drv.offer(TXQ, &chain);
        let (used, _) = notify(&mut dev, &mut drv, TXQ);
        assert!(used, "{what}: the tx chain comes back");
        assert_eq!(drv.tx_returned(), 1, "{what}");
        let got = drv.received();
        match answer {
            Some(port) => {
                assert_eq!(got.len(), 1, "{what}: {got:?}");
                assert_packet(&got[0], Op::Rst, port, 0);
            }
            None => {
                assert!(got.is_empty(), "{what}: {got:?}");
                // The posted buffer is still there; take it back for the next case.
                drv.send(hdr(Op::Rst, 0, 0), &[]);
                notify(&mut dev, &mut drv, TXQ);
                drv.tx_returned();
            }
        }
        assert_eq!(
            dev.connections().collect::<Vec<_>>(),
            vec![(1, ECHO_PORT)],
            "{what}: the good connection stays"
        );
        still_serves(&mut dev, &mut drv, 5000 + u32::try_from(n).unwrap());
    }
    let stats = dev.stats();
    assert_eq!(stats.dropped, 6, "{stats:?}");
    assert_eq!(stats.malformed, 9, "{stats:?}");
    // The good connection still echoes.
    drv.post_rx(1, 64);
    assert_eq!(
        exchange(&mut dev, &mut drv, 1, ECHO_PORT, b"fine")[0].1,
        b"fine"
    );
}

#[test]
fn protocol_errors_on_a_connection_reset_it() {
    for (what, h, payload) in [
        (
            "a second REQUEST",
            hdr(Op::Request, 1, ECHO_PORT),
            Vec::new(),
        ),
        ("a RESPONSE", hdr(Op::Response, 1, ECHO_PORT), Vec::new()),
        (
            "an unknown type",
            Header {
                socket_type: 7,
                ..hdr(Op::CreditUpdate, 1, ECHO_PORT)
            },
            Vec::new(),
        ),
        (
            "payload on CREDIT_REQUEST",
            Header {
                len: 1,
                ..hdr(Op::CreditRequest, 1, ECHO_PORT)
            },
            vec![0],
        ),
        (
            "an unknown op",
            hdr(Op::Unknown(8), 1, ECHO_PORT),
            Vec::new(),
        ),
    ] {
        let mut drv = Driver::new();
        let mut dev = device();
        connect(&mut dev, &mut drv, 1, ECHO_PORT);
        drv.post_rx(1, 64);
        drv.send(h, &payload);
        notify(&mut dev, &mut drv, TXQ);
        let got = drv.received();
        assert_eq!(got.len(), 1, "{what}: {got:?}");
        assert_packet(&got[0], Op::Rst, ECHO_PORT, 1);
        assert_eq!(dev.connections().count(), 0, "{what}");
        still_serves(&mut dev, &mut drv, 2);
    }
}

#[test]
fn an_unreadable_payload_resets_its_connection() {
    let mut drv = Driver::new();
    let mut dev = device();
    connect(&mut dev, &mut drv, 1, ECHO_PORT);
    let h = Header {
        len: 600,
        ..hdr(Op::Rw, 1, ECHO_PORT)
    };
    // 520 bytes readable, the other 80 outside shared memory: nothing of it reaches the echo.
    let mut first = h.encode().to_vec();
    first.extend_from_slice(&[b'a'; 520]);
    drv.post_rx(1, 64);
    drv.offer(TXQ, &[Buf::Read(first), Buf::ReadOutside(80)]);
    notify(&mut dev, &mut drv, TXQ);
    assert_eq!(drv.tx_returned(), 1);
    let got = drv.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_packet(&got[0], Op::Rst, ECHO_PORT, 1);
    assert_eq!(dev.connections().count(), 0);
    still_serves(&mut dev, &mut drv, 2);
}

#[test]
fn without_rx_buffers_the_device_holds_a_bounded_number_of_resets() {
    let mut drv = Driver::new();
    let mut dev = device();
    // 12 REQUESTs to a closed port and no rx buffer: the device takes 8 and stops there.
    for from in 0..12 {
        drv.send(hdr(Op::Request, from, 99), &[]);
    }
    assert_eq!(notify(&mut dev, &mut drv, TXQ), (true, 0));
    assert_eq!(drv.tx_returned(), PENDING_MAX);
    assert_eq!(dev.pending_resets(), PENDING_MAX);
    assert!(dev.tx_stalled());
    // A second kick takes nothing more.
    assert_eq!(notify(&mut dev, &mut drv, TXQ), (false, 0));
    // Rx buffers: the 8 RSTs go out, then the other 4 packets are taken and answered in the
    // same notify, and tx is reported used as well.
    drv.post_rx(12, 64);
    assert_eq!(notify(&mut dev, &mut drv, RXQ), (true, 1 << TXQ));
    assert_eq!(drv.tx_returned(), 4);
    let got = drv.received();
    assert_eq!(got.len(), 12);
    for (from, p) in got.iter().enumerate() {
        assert_packet(p, Op::Rst, 99, u32::try_from(from).unwrap());
    }
    assert_eq!(dev.pending_resets(), 0);
    assert!(!dev.tx_stalled());
    assert_eq!(dev.stats().resets_lost, 0);
}

#[test]
fn connections_take_turns_for_rx_buffers() {
    let mut drv = Driver::new();
    let mut dev = device();
    connect(&mut dev, &mut drv, 1, ECHO_PORT);
    connect(&mut dev, &mut drv, 2, ECHO_PORT);
    drv.send_rw(1, ECHO_PORT, &[b'1'; 600]);
    drv.send_rw(2, ECHO_PORT, &[b'2'; 600]);
    notify(&mut dev, &mut drv, TXQ);
    drv.tx_returned();
    // Buffers of 200 payload bytes, four at a time: 1, 2, 1, 2.
    drv.post_rx(4, HDR + 200);
    notify(&mut dev, &mut drv, RXQ);
    let order: Vec<u32> = drv.received().iter().map(|p| p.0.dst_port).collect();
    assert_eq!(order, vec![1, 2, 1, 2]);
}

#[test]
fn the_budget_bounds_each_notify() {
    let mut drv = Driver::new();
    let mut dev = device();
    drv.post_rx(4, 64);
    for from in 0..4 {
        drv.send(hdr(Op::Request, from, ECHO_PORT), &[]);
    }
    // A spent budget starts nothing.
    let mut spent = Budget::bytes(0);
    assert!(!dev.notify(TXQ, &mut drv.mem, &mut spent).unwrap());
    assert_eq!(drv.tx_returned(), 0);
    // One chain's worth: one tx chain, its answer waits for the next call.
    let mut one = Budget::bytes(1);
    assert!(dev.notify(TXQ, &mut drv.mem, &mut one).unwrap());
    assert!(one.is_spent());
    assert_eq!(drv.tx_returned(), 1);
    assert!(drv.received().is_empty());
    // The rest, with room to spare.
    let mut plenty = Budget::bytes(1 << 20);
    dev.notify(TXQ, &mut drv.mem, &mut plenty).unwrap();
    assert_eq!(drv.tx_returned(), 3);
    assert_eq!(drv.received().len(), 4);
    // Payload is spent as work: a 1000-byte RW costs its bytes.
    let mut budget = Budget::bytes(1 << 20);
    drv.send_rw(0, ECHO_PORT, &[0; 1000]);
    drv.post_rx(1, 2048);
    dev.notify(TXQ, &mut drv.mem, &mut budget).unwrap();
    assert_eq!(
        budget.left(),
        (1 << 20) - (1000 + Budget::CHAIN_COST) - (1044 + Budget::CHAIN_COST)
    );
}

#[test]
fn reset_and_queue_reset_drop_every_connection() {
    let mut drv = Driver::new();
    let mut dev = device();
    connect(&mut dev, &mut drv, 1, ECHO_PORT);
    drv.send(hdr(Op::Request, 2, 99), &[]);
    notify(&mut dev, &mut drv, TXQ);
    assert_eq!(dev.pending_resets(), 1);
    assert!(dev.holds_buffers());
    dev.reset();
    assert!(!dev.holds_buffers(), "the buffers go back to the heap");
    assert_eq!(dev.connections().count(), 0);
    assert_eq!(dev.pending_resets(), 0);
    assert!(
        !dev.notify(TXQ, &mut drv.mem, &mut Budget::unlimited())
            .unwrap(),
        "no queue after reset"
    );
    // A fresh start in fresh memory.
    let mut drv = Driver::new();
    dev.activate(0, &[Some(config(0)), Some(config(1)), None])
        .unwrap();
    connect(&mut dev, &mut drv, 1, ECHO_PORT);
    // A reset tx queue loses packets: no connection survives it.
    dev.reset_queue(TXQ);
    assert_eq!(dev.connections().count(), 0);
    dev.reset_queue(EVENTQ);
    dev.reset_queue(7);
    let mut drv = Driver::new();
    dev.activate_queue(TXQ, config(1)).unwrap();
    dev.reset_queue(RXQ);
    dev.activate_queue(RXQ, config(0)).unwrap();
    connect(&mut dev, &mut drv, 1, ECHO_PORT);
}

#[test]
fn notifies_of_the_event_queue_serve_the_others_and_leave_its_buffers() {
    let mut drv = Driver::new();
    let mut dev = device();
    drv.offer(EVENTQ, &[Buf::Write(4)]);
    drv.post_rx(1, 64);
    drv.send(hdr(Op::Request, 1, ECHO_PORT), &[]);
    assert_eq!(
        notify(&mut dev, &mut drv, EVENTQ),
        (false, 1 << RXQ | 1 << TXQ)
    );
    assert!(drv.take_used(EVENTQ).is_empty(), "event buffers are held");
    assert_eq!(drv.received()[0].0.op, Op::Response);
}

#[test]
fn a_failing_rx_buffer_needs_a_reset() {
    let mut drv = Driver::new();
    let mut dev = device();
    // An rx buffer outside shared memory: the device cannot deliver, and says so.
    let head = drv.offer(RXQ, &[Buf::Write(64)]);
    let d = drv.chains[RXQ as usize][&head][0].0;
    let mut raw = [0u8; 16];
    raw[0..8].copy_from_slice(&OUTSIDE.to_le_bytes());
    raw[8..12].copy_from_slice(&64u32.to_le_bytes());
    raw[12..14].copy_from_slice(&VIRTQ_DESC_F_WRITE.to_le_bytes());
    drv.mem
        .write(config(RXQ).desc_addr + 16 * u64::from(d), &raw)
        .unwrap();
    drv.send(hdr(Op::Request, 1, ECHO_PORT), &[]);
    assert!(matches!(
        dev.notify(TXQ, &mut drv.mem, &mut Budget::unlimited()),
        Err(DeviceError::Memory(_))
    ));
}
