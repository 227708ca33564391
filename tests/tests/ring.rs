//! The ring features end to end in the simulated FF-A world: VIRTIO_F_INDIRECT_DESC and
//! VIRTIO_F_EVENT_IDX negotiated by the host drivers (`Connection::set_ring_features`) with
//! virtio-blk (each request one indirect table, its data in page-sized segments), virtio-rng
//! and virtio-console, in both dialects; fewer events with EVENT_IDX; and hostile indirect
//! tables (a table inside a table, one in an unknown area, one past its area's end, one the
//! driver did not negotiate) refused with DEVICE_NEEDS_RESET, the partition touching nothing it
//! was not given, and the device serving good requests again after the driver's reset. Every
//! test ends with zero simulator faults.

use ffa::{Conduit, bus::Dialect, memory::PAGE_SIZE};
use virtio_msg::{
    device::{
        VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1,
    },
    driver::DeviceClient,
    transport::status,
};
use vmsg_host::{
    HostError, SimSystem,
    blk::{DATA_BYTES, S_OK, T_IN, T_OUT},
    session::{Event, SharedArea},
    virtqueue::{DriverMem, DriverQueue},
};
use vmsg_tests::drive::{Conn, share};

const RING: u64 = VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX;
/// Sectors of each endpoint's disk.
const SECTORS: u64 = (sp::registry::RAM_DISK_BYTES / 512) as u64;

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

#[test]
fn virtio_blk_in_indirect_tables_with_event_idx_in_both_dialects() {
    for (dialect, notify) in SESSIONS {
        let what = format!("{dialect:?} notify={notify}");
        let sys = SimSystem::start().unwrap();
        let mut conn = sys.connect(1, dialect, notify).unwrap();
        conn.set_ring_features(RING | 1 << 40);
        assert_eq!(
            conn.ring_features(),
            RING,
            "only the ring features are kept"
        );
        let mut blk = conn.blk().unwrap();
        assert_eq!(blk.features() & RING, RING, "{what}");
        // The whole disk in one request (16 data segments: 18 table entries), back again.
        let all = pattern(1, DATA_BYTES);
        blk.write(0, &all).unwrap();
        assert!(blk.read(0, DATA_BYTES).unwrap() == all, "{what}");
        // Requests that end inside a segment, and single sectors at both ends.
        let piece = pattern(2, 4096 + 1536);
        blk.write(9, &piece).unwrap();
        let around = blk.read(8, 4096 + 2560).unwrap();
        assert_eq!(&around[..512], &all[8 * 512..9 * 512], "{what}");
        assert_eq!(&around[512..512 + piece.len()], &piece[..], "{what}");
        for sector in [0, SECTORS - 1] {
            let one = pattern(3, 512);
            blk.write(sector, &one).unwrap();
            assert_eq!(blk.read(sector, 512).unwrap(), one, "{what}");
        }
        blk.flush().unwrap();
        blk.write_zeroes(20, 4, false).unwrap();
        blk.discard(24, 1).unwrap();
        assert!(blk.read(20, 5 * 512).unwrap().iter().all(|&b| b == 0));
        assert_eq!(blk.id().unwrap()[..9], *b"vmsg-ram-");
        // Refusals are statuses, and the device goes on.
        assert!(matches!(
            blk.read(SECTORS, 512),
            Err(HostError::BlockStatus(1))
        ));
        let done = blk.request(T_IN, 9, &[], 1024).unwrap();
        assert_eq!((done.status, done.used), (S_OK, 1025), "{what}");
        assert_eq!(done.data, &piece[..1024], "{what}");
        // 200 more requests of 1 to 9 sectors.
        let mut last = (0, Vec::new());
        for i in 0..200u64 {
            let len = 512 * (1 + usize::try_from(i % 9).unwrap());
            let data = pattern(u8::try_from(i % 200).unwrap(), len);
            let sector = (i * 7) % (SECTORS - 9);
            assert_eq!(blk.request(T_OUT, sector, &data, 0).unwrap().status, S_OK);
            assert!(blk.read(sector, data.len()).unwrap() == data, "{what} {i}");
            last = (sector, data);
        }
        drop(blk);
        // The same disk read by a driver that accepts neither feature.
        conn.set_ring_features(0);
        let mut plain = conn.blk().unwrap();
        assert_eq!(plain.features() & RING, 0, "{what}");
        assert!(
            plain.read(last.0, last.1.len()).unwrap() == last.1,
            "{what}"
        );
        drop(plain);
        assert!(sys.faults().is_empty(), "{what}: {:?}", sys.faults());
    }
}

#[test]
fn virtio_rng_and_console_with_the_ring_features_in_both_dialects() {
    for (dialect, notify) in SESSIONS {
        let what = format!("{dialect:?} notify={notify}");
        let sys = SimSystem::start().unwrap();
        let mut conn = sys.connect(1, dialect, notify).unwrap();
        conn.set_ring_features(RING);
        {
            let mut rng = conn.rng().unwrap();
            assert_eq!(rng.ring_features(), RING, "{what}");
            // 1 MiB at depth 1, then at depth 32 (batches beyond one message's work budget:
            // the rest is resumed, and EVENT_IDX must not lose its notification).
            let mut total = 0;
            rng.read_with(1 << 20, |chunk| {
                total += chunk.len();
                Ok(())
            })
            .unwrap();
            rng.set_depth(32);
            rng.read_in_requests(1 << 20, 4096, |chunk| {
                total += chunk.len();
                Ok(())
            })
            .unwrap();
            assert_eq!(total, 2 << 20, "{what}");
        }
        let mut console = conn.console().unwrap();
        for _ in 0..3 {
            assert!(
                console.command("help").unwrap().contains("commands"),
                "{what}"
            );
        }
        drop(console);
        assert!(sys.faults().is_empty(), "{what}: {:?}", sys.faults());
    }
}

#[test]
fn with_event_idx_the_partition_raises_event_used_only_when_the_driver_asks() {
    // G3 polling, rng by hand: each request is posted, kicked and served within the kick,
    // then the endpoint's events are drained. Without EVENT_IDX every request raises an
    // EVENT_USED; with it only the first after DRIVER_OK and those the driver asked for with
    // used_event (`prepare_wait`, as before it waits).
    for features in [0, RING] {
        let sys = SimSystem::start().unwrap();
        let mut conn = sys.connect(1, Dialect::G3, false).unwrap();
        let platform = conn.platform().clone();
        let mut rig = rig(&mut conn, features);
        let mut seen = Vec::new();
        for i in 0..12u16 {
            let ask = i % 3 == 2;
            if ask {
                assert!(!rig.queue.prepare_wait(&platform).unwrap());
            }
            let head = rig
                .queue
                .add(&platform, &[], &[(rig.buffer.bus(0), 16)])
                .unwrap();
            assert!(
                rig.queue.publish(&platform).unwrap(),
                "the device asks for every kick"
            );
            assert_eq!(kick_and_status(&mut conn) & status::DEVICE_NEEDS_RESET, 0);
            assert_eq!(rig.queue.pop_used(&platform).unwrap(), Some((head, 16)));
            let used = conn
                .session()
                .drain_events()
                .unwrap()
                .iter()
                .filter(|e| matches!(e, Event::Used { dev: 0, vq: 0 }))
                .count();
            seen.push(used);
        }
        let expected: Vec<usize> = (0..12)
            .map(|i| usize::from(features == 0 || i == 0 || i % 3 == 2))
            .collect();
        assert_eq!(seen, expected, "features {features:#x}");
        assert!(sys.faults().is_empty(), "{:?}", sys.faults());
    }
}

/// Hand-driven rng (device 0): its queue (8 entries) and the areas of its rings and its data
/// (2 pages).
struct Rig {
    queue: DriverQueue,
    ring: SharedArea,
    buffer: SharedArea,
}

/// Resets device 0 and brings it up again with `features` accepted, in fresh areas.
fn rig<C: Conduit>(conn: &mut Conn<C>, features: u64) -> Rig {
    let ring = share(conn, 1);
    let buffer = share(conn, 2);
    let queue = DriverQueue::new(conn.platform(), 8, ring.pa, ring.bus(0))
        .unwrap()
        .with_features(features);
    let layout = conn.session().info().dialect.layout();
    let mut client = DeviceClient::new(conn.session(), 0, layout).unwrap();
    let negotiated = client
        .initialize(VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM | features)
        .unwrap();
    assert_eq!(negotiated & RING, features);
    client.set_vqueue(0, queue.queue_config()).unwrap();
    client.driver_ok().unwrap();
    Rig {
        queue,
        ring,
        buffer,
    }
}

/// Kicks device 0's queue 0; its status after.
fn kick_and_status<C: Conduit>(conn: &mut Conn<C>) -> u32 {
    let layout = conn.session().info().dialect.layout();
    let mut client = DeviceClient::new(conn.session(), 0, layout).unwrap();
    client.notify_avail(0).expect("EVENT_AVAIL acknowledged");
    client.get_status().unwrap()
}

/// Where a case puts the table, and the flags of its first entry besides NEXT.
type Case = (&'static str, u64, fn(&Rig) -> u64, u16);

#[test]
fn hostile_indirect_tables_need_a_reset_and_touch_nothing() {
    const TABLE_AT: u64 = 0x800;
    let cases: [Case; 5] = [
        (
            "a table inside a table",
            RING,
            |r| r.buffer.bus(TABLE_AT),
            4,
        ),
        ("a loop in a table", RING, |r| r.buffer.bus(TABLE_AT), 0x100),
        ("a table in an unknown area", RING, |_| 0x7e << 48, 0),
        (
            "a table past its area's end",
            RING,
            |r| r.buffer.bus(2 * PAGE_SIZE - 16),
            0,
        ),
        (
            "a table not negotiated",
            VIRTIO_F_EVENT_IDX,
            |r| r.buffer.bus(TABLE_AT),
            0,
        ),
    ];
    for dialect in [Dialect::G3, Dialect::G2] {
        let sys = SimSystem::start().unwrap();
        let mut conn = sys.connect(1, dialect, false).unwrap();
        let platform = conn.platform().clone();
        for (what, features, at, flags) in cases {
            let what = format!("{dialect:?}: {what}");
            let mut rig = rig(&mut conn, features);
            // The driver builds an indirect table whatever was negotiated.
            rig.queue = rig.queue.with_features(RING);
            // Two writable buffers in a table at TABLE_AT of the data area; then the case's
            // change: the first entry's flags (0x100 stands for "next = 0", a loop), and the
            // table's address in the descriptor.
            let w = [(rig.buffer.bus(0), 64), (rig.buffer.bus(64), 64)];
            let table = (rig.buffer.pa + TABLE_AT, rig.buffer.bus(TABLE_AT));
            let head = rig.queue.add_indirect(&platform, table, &[], &w).unwrap();
            let mut entry = [0u8; 16];
            DriverMem::read(&platform, table.0, &mut entry).unwrap();
            if flags == 0x100 {
                entry[14..16].copy_from_slice(&0u16.to_le_bytes());
            } else {
                entry[12..14].copy_from_slice(&(flags | 1).to_le_bytes());
            }
            DriverMem::write(&platform, table.0, &entry).unwrap();
            let desc = rig.ring.pa + rig.queue.ring_layout().desc + 16 * u64::from(head);
            DriverMem::write(&platform, desc, &at(&rig).to_le_bytes()).unwrap();
            rig.queue.publish(&platform).unwrap();
            let status = kick_and_status(&mut conn);
            assert_ne!(
                status & status::DEVICE_NEEDS_RESET,
                0,
                "{what}: {status:#x}"
            );
            assert_eq!(rig.queue.pop_used(&platform).unwrap(), None, "{what}");
            assert!(sys.faults().is_empty(), "{what}: {:?}", sys.faults());
            // The driver resets the device and sets it up again: a good chain is served.
            let mut rig = self::rig(&mut conn, features);
            let head = if features & VIRTIO_F_INDIRECT_DESC != 0 {
                rig.queue.add_indirect(&platform, table, &[], &w).unwrap()
            } else {
                rig.queue.add(&platform, &[], &w).unwrap()
            };
            rig.queue.publish(&platform).unwrap();
            let status = kick_and_status(&mut conn);
            assert_eq!(status & status::DEVICE_NEEDS_RESET, 0, "{what}");
            assert_eq!(
                rig.queue.pop_used(&platform).unwrap(),
                Some((head, 128)),
                "{what}"
            );
        }
        let layout = conn.session().info().dialect.layout();
        DeviceClient::new(conn.session(), 0, layout)
            .unwrap()
            .reset()
            .unwrap();
        // The endpoint's other devices, and other endpoints, were never affected.
        let mut blk = conn.blk().unwrap();
        assert_eq!(blk.read(0, 512).unwrap().len(), 512);
        drop(blk);
        let mut other = sys.connect(2, Dialect::G3, false).unwrap();
        assert_eq!(other.rng().unwrap().read(64).unwrap().len(), 64);
        assert!(sys.faults().is_empty(), "{dialect:?}: {:?}", sys.faults());
        assert!(sys.world().sp_alive(sys.sp_id()));
    }
}
