//! The third-party `virtio-drivers` crate (rcore-os) as the driver of our devices, in the inline
//! simulated world: its `VirtIORng` on device 0, its `VirtIOBlk` on device 1, its
//! `VirtIOConsole` on device 2 and its `VirtIOSocket` with `VsockConnectionManager` on device 3,
//! over
//! `vmsg_host::thirdparty` (its `Transport` over the virtio-msg client, its `Hal` over shared
//! areas), in both driver dialects. Every test ends with zero simulator faults, no adapter
//! failure and every shared region given back.

use ffa::bus::Dialect;
use virtio_msg::device::{VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC};
use vmsg_host::{
    SimSystem,
    sim::inline::{InlineConduit, InlineSystem},
    thirdparty::{
        ThirdParty, VmsgHal,
        virtio_drivers::{
            Error,
            device::{
                blk::VirtIOBlk,
                common::Feature,
                console::VirtIOConsole,
                rng::VirtIORng,
                socket::{
                    DisconnectReason, VMADDR_CID_HOST, VirtIOSocket, VsockAddr,
                    VsockConnectionManager, VsockEvent, VsockEventType,
                },
            },
            queue::VirtQueue,
            transport::{DeviceType, InterruptStatus, Transport},
        },
    },
    virtio_ids,
};

/// Sectors of each endpoint's disk (`sp::registry::RAM_DISK_BYTES`).
const SECTORS: usize = sp::registry::RAM_DISK_BYTES / 512;

/// The sessions each test runs: G3 with a notification, G3 polling, G2.
const SESSIONS: [(Dialect, bool); 3] = [
    (Dialect::G3, true),
    (Dialect::G3, false),
    (Dialect::G2, false),
];

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 31 + usize::from(seed)) % 251).unwrap())
        .collect()
}

/// A world and a session from endpoint 1, with device `dev` checked to be of `id`.
fn open(
    dialect: Dialect,
    notify: bool,
    dev: u16,
    id: u32,
) -> (InlineSystem, ThirdParty<InlineConduit>) {
    let sys = InlineSystem::start().unwrap();
    let tp = ThirdParty::inline(&sys, 1, dialect, notify).unwrap();
    let devices = tp.devices().unwrap();
    let found = devices.iter().find(|d| d.dev_num == dev).unwrap();
    assert_eq!(found.info.device_id, id);
    (sys, tp)
}

/// What every test ends with: no adapter failure, every region unshared, no simulator fault.
fn assert_clean(sys: &InlineSystem, tp: &ThirdParty<InlineConduit>, what: &str) {
    assert!(tp.failures().is_empty(), "{what}: {:?}", tp.failures());
    assert_eq!(tp.live_regions(), 0, "{what}: regions left shared");
    assert!(sys.faults().is_empty(), "{what}: {:?}", sys.faults());
}

#[test]
fn virtio_rng_reads_random_bytes() {
    for (dialect, notify) in SESSIONS {
        let what = format!("{dialect:?} notify={notify}");
        let (sys, tp) = open(dialect, notify, 0, virtio_ids::ENTROPY);
        let transport = tp.transport(0).unwrap();
        assert_eq!(transport.device_type(), DeviceType::EntropySource);
        let mut rng = VirtIORng::<VmsgHal, _>::new(transport).unwrap();
        assert!(tp.failures().is_empty(), "{what}: {:?}", tp.failures());
        let ring = VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX;
        assert_eq!(tp.driver_features(0).unwrap() & ring, ring, "{what}");
        let mut seen = Vec::new();
        for len in [1, 16, 64, 4096, 5000, 65536] {
            let mut buf = vec![0u8; len];
            let n = rng.request_entropy(&mut buf).unwrap();
            assert!(n > 0 && n <= len, "{what}: {n} of {len} bytes");
            seen.push(buf[..n].to_vec());
        }
        // 64 KiB from an OS entropy source: neither zero nor repeated.
        let big = seen.last().unwrap();
        assert!(big.iter().any(|&b| b != 0), "{what}");
        let mut again = vec![0u8; big.len()];
        rng.request_entropy(&mut again).unwrap();
        assert_ne!(&again, big, "{what}");
        drop(rng);
        assert_clean(&sys, &tp, &what);
    }
}

#[test]
fn virtio_blk_capacity_writes_reads_and_flushes() {
    for (dialect, notify) in SESSIONS {
        let what = format!("{dialect:?} notify={notify}");
        let (sys, tp) = open(dialect, notify, 1, virtio_ids::BLOCK);
        let transport = tp.transport(1).unwrap();
        assert_eq!(transport.device_type(), DeviceType::Block);
        let mut blk = VirtIOBlk::<VmsgHal, _>::new(transport).unwrap();
        assert_eq!(blk.capacity(), SECTORS as u64, "{what}");
        assert!(!blk.readonly(), "{what}");
        // virtio-drivers takes both ring features up: every request below is one indirect
        // table (header, data, status), and it keeps used_event as it pops.
        let ring = VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX;
        assert_eq!(tp.driver_features(1).unwrap() & ring, ring, "{what}");

        let mut id = [0u8; 20];
        let n = blk.device_id(&mut id).unwrap();
        assert_eq!(&id[..n], b"vmsg-ram-0001", "{what}");

        // A fresh disk reads as zeroes; then the whole disk in one request, then pieces of it.
        let mut all = vec![0xa5u8; SECTORS * 512];
        blk.read_blocks(0, &mut all).unwrap();
        assert!(all.iter().all(|&b| b == 0), "{what}");
        let written = pattern(1, SECTORS * 512);
        blk.write_blocks(0, &written).unwrap();
        blk.read_blocks(0, &mut all).unwrap();
        assert_eq!(all, written, "{what}");
        let piece = pattern(2, 4 * 512);
        blk.write_blocks(100, &piece).unwrap();
        let mut around = vec![0u8; 8 * 512];
        blk.read_blocks(98, &mut around).unwrap();
        assert_eq!(&around[..1024], &written[98 * 512..100 * 512], "{what}");
        assert_eq!(&around[1024..3072], &piece[..], "{what}");
        assert_eq!(&around[3072..], &written[104 * 512..106 * 512], "{what}");
        for sector in [0, 1, SECTORS - 1] {
            let one = pattern(3 + u8::try_from(sector % 200).unwrap(), 512);
            blk.write_blocks(sector, &one).unwrap();
            let mut back = [0u8; 512];
            blk.read_blocks(sector, &mut back).unwrap();
            assert_eq!(&back[..], &one[..], "{what}: sector {sector}");
        }
        blk.flush().unwrap();

        assert!(tp.failures().is_empty(), "{what}: {:?}", tp.failures());
        drop(blk);
        assert_clean(&sys, &tp, &what);
    }
}

#[test]
fn virtio_blk_requests_past_the_end_are_errors_and_the_device_goes_on() {
    for (dialect, notify) in SESSIONS {
        let what = format!("{dialect:?} notify={notify}");
        let (sys, tp) = open(dialect, notify, 1, virtio_ids::BLOCK);
        let mut blk = VirtIOBlk::<VmsgHal, _>::new(tp.transport(1).unwrap()).unwrap();
        let mut buf = [0u8; 1024];
        // Past the end, and straddling it: the device's IOERR status, the crate's IoError.
        assert_eq!(
            blk.read_blocks(SECTORS, &mut buf[..512]),
            Err(Error::IoError),
            "{what}"
        );
        assert_eq!(
            blk.read_blocks(SECTORS - 1, &mut buf),
            Err(Error::IoError),
            "{what}"
        );
        assert_eq!(
            blk.write_blocks(SECTORS, &buf[..512]),
            Err(Error::IoError),
            "{what}"
        );
        assert_eq!(
            blk.write_blocks(usize::MAX, &buf[..512]),
            Err(Error::IoError),
            "{what}"
        );
        // The device serves the next request.
        let data = pattern(9, 1024);
        blk.write_blocks(SECTORS - 2, &data).unwrap();
        blk.read_blocks(SECTORS - 2, &mut buf).unwrap();
        assert_eq!(&buf[..], &data[..], "{what}");
        drop(blk);
        assert_clean(&sys, &tp, &what);
    }
}

#[test]
fn both_drivers_share_one_session_and_interrupts_name_their_device() {
    for (dialect, notify) in SESSIONS {
        let what = format!("{dialect:?} notify={notify}");
        let (sys, tp) = open(dialect, notify, 1, virtio_ids::BLOCK);
        let mut rng = VirtIORng::<VmsgHal, _>::new(tp.transport(0).unwrap()).unwrap();
        let mut blk = VirtIOBlk::<VmsgHal, _>::new(tp.transport(1).unwrap()).unwrap();
        // Nothing happened yet on either device: G3 reports no interrupt; G2 has no event path,
        // so it always says "look at the used ring".
        let idle = match dialect {
            Dialect::G3 => InterruptStatus::empty(),
            Dialect::G2 => InterruptStatus::QUEUE_INTERRUPT,
        };
        assert_eq!(rng.ack_interrupt().bits(), idle.bits(), "{what}");
        assert_eq!(blk.ack_interrupt().bits(), idle.bits(), "{what}");
        let data = pattern(4, 512);
        blk.write_blocks(7, &data).unwrap();
        let mut random = [0u8; 32];
        rng.request_entropy(&mut random).unwrap();
        // Each device's EVENT_USED reaches its own driver, once.
        assert_eq!(
            blk.ack_interrupt().bits(),
            InterruptStatus::QUEUE_INTERRUPT.bits(),
            "{what}"
        );
        assert_eq!(
            rng.ack_interrupt().bits(),
            InterruptStatus::QUEUE_INTERRUPT.bits(),
            "{what}"
        );
        assert_eq!(blk.ack_interrupt().bits(), idle.bits(), "{what}");
        assert_eq!(rng.ack_interrupt().bits(), idle.bits(), "{what}");
        let mut back = [0u8; 512];
        blk.read_blocks(7, &mut back).unwrap();
        assert_eq!(&back[..], &data[..], "{what}");
        // With EVENT_IDX too: virtio-drivers moves used_event on at every pop, so each later
        // request is announced again (and only to its device).
        for _ in 0..3 {
            blk.read_blocks(7, &mut back).unwrap();
            assert_eq!(
                blk.ack_interrupt().bits(),
                InterruptStatus::QUEUE_INTERRUPT.bits(),
                "{what}"
            );
            assert_eq!(rng.ack_interrupt().bits(), idle.bits(), "{what}");
        }
        drop(rng);
        drop(blk);
        assert_clean(&sys, &tp, &what);
    }
}

#[test]
fn a_g2_driver_without_its_dma_pool_fails_at_probe() {
    let sys = InlineSystem::start().unwrap();
    let endpoint = sys.world().add_vm(1);
    let conduit = sys.conduit(&endpoint);
    let tp = ThirdParty::open_unpooled(conduit, endpoint, sys.sp_id(), Dialect::G2, false).unwrap();
    // FEATURES_OK is refused (no memory shared by then); virtio-drivers does not read the
    // status back, so the transport gives up on the device and the probe fails, not hangs.
    let transport = tp.transport(1).unwrap();
    assert!(VirtIOBlk::<VmsgHal, _>::new(transport).is_err());
    let failures = tp.failures();
    assert!(
        failures.iter().any(|f| f.op == "set_status"),
        "{failures:?}"
    );
    assert_eq!(tp.live_regions(), 0);
    assert!(sys.faults().is_empty(), "{:?}", sys.faults());
}

#[test]
fn one_session_per_thread_and_the_hal_lets_go_when_it_ends() {
    let sys = InlineSystem::start().unwrap();
    let tp = ThirdParty::inline(&sys, 1, Dialect::G3, false).unwrap();
    assert!(ThirdParty::inline(&sys, 2, Dialect::G3, false).is_err());
    // The driver may outlive the session handle: its rings stay shared until it is dropped.
    let mut rng = VirtIORng::<VmsgHal, _>::new(tp.transport(0).unwrap()).unwrap();
    drop(tp);
    let mut buf = [0u8; 8];
    assert!(rng.request_entropy(&mut buf).unwrap() > 0);
    drop(rng);
    // Everything is given back: another session may bind the thread.
    let tp = ThirdParty::inline(&sys, 3, Dialect::G3, false).unwrap();
    let mut blk = VirtIOBlk::<VmsgHal, _>::new(tp.transport(1).unwrap()).unwrap();
    assert_eq!(blk.capacity(), SECTORS as u64);
    let mut sector = [0u8; 512];
    blk.read_blocks(0, &mut sector).unwrap();
    drop(blk);
    assert_clean(&sys, &tp, "second session");
}

#[test]
fn the_threaded_world_keeps_the_same_coherence() {
    // The partition on its own thread: it still runs only while a direct request of ours is
    // outstanding, so the copies at each call keep both sides coherent.
    for (dialect, notify) in SESSIONS {
        let what = format!("{dialect:?} notify={notify}");
        let sys = SimSystem::start().unwrap();
        let endpoint = sys.world().add_vm(1);
        let conduit = endpoint.conduit();
        let tp = ThirdParty::open(conduit, endpoint, sys.sp_id(), dialect, notify).unwrap();
        let mut blk = VirtIOBlk::<VmsgHal, _>::new(tp.transport(1).unwrap()).unwrap();
        assert_eq!(blk.capacity(), SECTORS as u64, "{what}");
        let data = pattern(5, 8 * 512);
        blk.write_blocks(3, &data).unwrap();
        let mut back = vec![0u8; data.len()];
        blk.read_blocks(3, &mut back).unwrap();
        assert_eq!(back, data, "{what}");
        let mut rng = VirtIORng::<VmsgHal, _>::new(tp.transport(0).unwrap()).unwrap();
        let mut random = [0u8; 256];
        assert!(rng.request_entropy(&mut random).unwrap() > 0, "{what}");
        drop(rng);
        drop(blk);
        assert!(tp.failures().is_empty(), "{what}: {:?}", tp.failures());
        assert_eq!(tp.live_regions(), 0, "{what}");
        assert!(sys.faults().is_empty(), "{what}: {:?}", sys.faults());
    }
}

#[test]
#[should_panic(expected = "returned nothing on queue 0")]
fn a_device_that_never_uses_the_buffer_panics_instead_of_hanging() {
    let sys = InlineSystem::start().unwrap();
    let tp = ThirdParty::inline(&sys, 1, Dialect::G3, false).unwrap();
    let mut transport = tp.transport(0).unwrap();
    // Features and the queue, but no DRIVER_OK: the device serves no queue, and
    // virtio-drivers would spin on its used ring after the notify.
    transport.begin_init(Feature::VERSION_1);
    let mut queue = VirtQueue::<VmsgHal, 8>::new(&mut transport, 0, false, false).unwrap();
    let mut buf = [0u8; 16];
    let _ = queue.add_notify_wait_pop(&[], &mut [&mut buf], &mut transport);
}

/// The connection manager's next event, letting the partition run between polls: a PING is a
/// direct request, around which the adapter makes the DMA regions coherent (the partition
/// answers within the request that brought it what to answer, so one is plenty).
fn next_event<T: Transport>(
    mgr: &mut VsockConnectionManager<VmsgHal, T>,
    tp: &ThirdParty<InlineConduit>,
) -> VsockEvent {
    for _ in 0..16 {
        if let Some(event) = mgr.poll().unwrap() {
            return event;
        }
        tp.with_connection(|c| c.session().ping(0)).unwrap();
    }
    panic!("no vsock event");
}

#[test]
fn virtio_socket_echoes_shuts_down_and_is_refused_on_an_unknown_port() {
    for (dialect, notify) in SESSIONS {
        let what = format!("{dialect:?} notify={notify}");
        let (sys, tp) = open(dialect, notify, 3, virtio_ids::VSOCK);
        let transport = tp.transport(3).unwrap();
        assert_eq!(transport.device_type(), DeviceType::Socket);
        let socket = VirtIOSocket::<VmsgHal, _>::new(transport).unwrap();
        assert_eq!(socket.guest_cid(), 3, "{what}");
        // A 100-byte buffer per connection: the device may send no more than that before the
        // driver has forwarded it; it asks with CREDIT_REQUEST, which the connection manager
        // answers with the bytes the test took.
        let mut mgr = VsockConnectionManager::new_with_capacity(socket, 100);
        let echo = VsockAddr {
            cid: VMADDR_CID_HOST,
            port: 7,
        };
        mgr.connect(echo, 1234).unwrap();
        let event = next_event(&mut mgr, &tp);
        assert_eq!(event.event_type, VsockEventType::Connected, "{what}");
        assert_eq!(event.source, echo, "{what}");
        assert_eq!((event.destination.cid, event.destination.port), (3, 1234));

        // A message, then 1000 bytes: ten times the driver's buffer, so they come back in
        // pieces, each within the credit the driver gave (a piece past it would not fit the
        // manager's buffer and fail its poll).
        for message in [&b"hello from virtio-drivers"[..], &pattern(4, 1000)] {
            mgr.send(echo, 1234, message).unwrap();
            let mut back = Vec::new();
            while back.len() < message.len() {
                let event = next_event(&mut mgr, &tp);
                let VsockEventType::Received { length } = event.event_type else {
                    panic!("{what}: {event:?}");
                };
                let mut buf = vec![0u8; length];
                assert_eq!(mgr.recv(echo, 1234, &mut buf).unwrap(), length);
                back.extend_from_slice(&buf);
            }
            assert_eq!(back, message, "{what}");
        }

        // The clean end: the driver's SHUTDOWN, the device's RST.
        mgr.shutdown(echo, 1234).unwrap();
        let event = next_event(&mut mgr, &tp);
        assert_eq!(
            event.event_type,
            VsockEventType::Disconnected {
                reason: DisconnectReason::Reset
            },
            "{what}"
        );

        // Nothing listens on port 99: the device refuses with an RST.
        let nobody = VsockAddr {
            cid: VMADDR_CID_HOST,
            port: 99,
        };
        mgr.connect(nobody, 1235).unwrap();
        let event = next_event(&mut mgr, &tp);
        assert_eq!(event.source, nobody, "{what}");
        assert_eq!(
            event.event_type,
            VsockEventType::Disconnected {
                reason: DisconnectReason::Reset
            },
            "{what}"
        );
        // And the device goes on.
        mgr.connect(echo, 1236).unwrap();
        assert_eq!(
            next_event(&mut mgr, &tp).event_type,
            VsockEventType::Connected,
            "{what}"
        );
        mgr.send(echo, 1236, b"again").unwrap();
        assert!(matches!(
            next_event(&mut mgr, &tp).event_type,
            VsockEventType::Received { length: 5 }
        ));

        assert!(tp.failures().is_empty(), "{what}: {:?}", tp.failures());
        drop(mgr);
        // virtio-drivers drops its rx queue with its eight buffers still posted, never
        // unsharing them; the device was reset with the transport, so they are freed here.
        assert_eq!(tp.free_stranded_bounce_buffers(), 8, "{what}");
        assert_clean(&sys, &tp, &what);
    }
}

/// Everything the console has for the driver now: the bytes `recv` returns until it has none.
/// Each call of `recv` looks at the receive buffer; once one is used up, virtio-drivers posts
/// the next and notifies, and the partition fills it at once from its outbox if the outbox
/// holds more (the answer to a line comes within the transmit request that carried it).
fn drain_console<T: Transport>(console: &mut VirtIOConsole<VmsgHal, T>) -> Vec<u8> {
    let mut got = Vec::new();
    while let Some(byte) = console.recv(true).unwrap() {
        got.push(byte);
        assert!(got.len() <= 8192, "the console never stops: {got:?}");
    }
    got
}

#[test]
fn virtio_console_runs_the_partition_shell() {
    let version = format!("vmsg-sp {}\n> ", env!("CARGO_PKG_VERSION"));
    let lines: [(&[u8], &[u8]); 5] = [
        (
            b"help\n",
            b"commands: help, version, devices, stats, log\n> ",
        ),
        (b"version\n", version.as_bytes()),
        (
            b"devices\n",
            b"0 virtio-rng (id 4)\n1 virtio-blk (id 2)\n2 virtio-console (id 3)\n\
              3 virtio-vsock (id 19)\n> ",
        ),
        (b"what\n", b"unknown command\n> "),
        // A line in two writes, ended by CR LF: one answer.
        (b"hel", b""),
    ];
    for (dialect, notify) in SESSIONS {
        let what = format!("{dialect:?} notify={notify}");
        let (sys, tp) = open(dialect, notify, 2, virtio_ids::CONSOLE);
        let transport = tp.transport(2).unwrap();
        assert_eq!(transport.device_type(), DeviceType::Console, "{what}");
        let mut console = VirtIOConsole::<VmsgHal, _>::new(transport).unwrap();
        // No SIZE feature: the device has no configuration space.
        assert_eq!(console.size(), Ok(None), "{what}");
        let ring = VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX;
        assert_eq!(tp.driver_features(2).unwrap() & ring, ring, "{what}");
        // The shell greets a started device with its prompt, received by the buffer
        // virtio-drivers posted at probe.
        assert_eq!(drain_console(&mut console), b"> ", "{what}");
        for (line, answer) in lines {
            console.send_bytes(line).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&drain_console(&mut console)),
                String::from_utf8_lossy(answer),
                "{what}: {:?}",
                String::from_utf8_lossy(line)
            );
        }
        // The rest of the split line, a byte at a time (`send`), then CR LF.
        for &byte in b"p\r\n" {
            console.send(byte).unwrap();
        }
        assert_eq!(
            drain_console(&mut console),
            b"commands: help, version, devices, stats, log\n> ",
            "{what}"
        );
        // Nothing more to say: no byte, and the receive buffer stays posted.
        assert_eq!(console.recv(true).unwrap(), None, "{what}");
        assert!(tp.failures().is_empty(), "{what}: {:?}", tp.failures());
        drop(console);
        // virtio-drivers drops the console with its receive buffer still posted, never
        // unsharing it; the device was reset with the transport, so it is freed here.
        assert_eq!(tp.free_stranded_bounce_buffers(), 1, "{what}");
        assert_clean(&sys, &tp, &what);
    }
}
