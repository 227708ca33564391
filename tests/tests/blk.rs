//! virtio-blk end to end in the simulated FF-A world: the host driver library's block driver
//! against the partition's RAM disks, both dialects, with zero simulator faults. Each endpoint
//! has a disk of its own: no byte one VM writes reaches another.

use ffa::bus::Dialect;
use vmsg_host::{
    Connection, HostError, SimSystem,
    blk::{
        DATA_BYTES, S_OK, T_IN, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO,
        VIRTIO_BLK_F_WRITE_ZEROES,
    },
    session::BusSession,
};

/// Sectors of each endpoint's disk (`sp::registry::RAM_DISK_BYTES`).
const SECTORS: u64 = (sp::registry::RAM_DISK_BYTES / 512) as u64;

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 31 + usize::from(seed)) % 251).unwrap())
        .collect()
}

fn id(vm: u16) -> [u8; 20] {
    let mut id = [0u8; 20];
    let name = format!("vmsg-ram-{vm:04x}");
    id[..name.len()].copy_from_slice(name.as_bytes());
    id
}

#[test]
fn reads_writes_and_the_rest_in_both_dialects() {
    for (dialect, notify) in [
        (Dialect::G3, true),
        (Dialect::G3, false),
        (Dialect::G2, false),
    ] {
        let sys = SimSystem::start().unwrap();
        let mut conn = sys.connect(1, dialect, notify).unwrap();
        let mut blk = conn.blk().unwrap();
        assert_eq!(blk.capacity(), SECTORS, "{dialect:?}");
        let wanted = VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES;
        assert_eq!(blk.features() & wanted, wanted);
        assert_eq!(blk.features() & VIRTIO_BLK_F_RO, 0);
        assert_eq!(blk.id().unwrap(), id(1));

        // A fresh disk reads as zeroes.
        assert!(blk.read(0, DATA_BYTES).unwrap().iter().all(|&b| b == 0));
        // The whole disk in one request, then pieces of it.
        let all = pattern(1, DATA_BYTES);
        blk.write(0, &all).unwrap();
        assert_eq!(blk.read(0, DATA_BYTES).unwrap(), all);
        let piece = pattern(2, 4 * 512);
        blk.write(100, &piece).unwrap();
        let around = blk.read(98, 8 * 512).unwrap();
        assert_eq!(&around[..1024], &all[98 * 512..100 * 512]);
        assert_eq!(&around[1024..3072], &piece[..]);
        assert_eq!(&around[3072..], &all[104 * 512..106 * 512]);
        blk.flush().unwrap();

        // Write zeroes and discard leave zeroes (the RAM disk zeroes discarded sectors).
        blk.write_zeroes(100, 2, false).unwrap();
        blk.discard(102, 1).unwrap();
        blk.write_zeroes(103, 1, true).unwrap();
        assert!(blk.read(100, 4 * 512).unwrap().iter().all(|&b| b == 0));
        assert_eq!(blk.read(99, 512).unwrap(), &all[99 * 512..100 * 512]);
        assert_eq!(blk.read(104, 512).unwrap(), &all[104 * 512..105 * 512]);

        // Refusals are statuses, and the device goes on.
        assert!(matches!(
            blk.read(SECTORS, 512),
            Err(HostError::BlockStatus(1))
        ));
        assert!(matches!(
            blk.read(SECTORS - 1, 1024),
            Err(HostError::BlockStatus(1))
        ));
        assert!(matches!(
            blk.write(u64::MAX, &[0; 512]),
            Err(HostError::BlockStatus(1))
        ));
        assert!(matches!(blk.read(0, 100), Err(HostError::BlockStatus(1))));
        assert!(matches!(
            blk.discard(0, 1 << 20),
            Err(HostError::BlockStatus(1))
        ));
        let odd = blk.request(99, 0, &[], 512).unwrap();
        assert_eq!((odd.status, odd.used), (2, 1), "unknown type: UNSUPP");
        let done = blk.request(T_IN, 0, &[], 1024).unwrap();
        assert_eq!((done.status, done.used), (S_OK, 1025));
        assert_eq!(done.data, &all[..1024]);

        // The disk outlives a device reset.
        blk.close().unwrap();
        drop(blk);
        let mut blk = conn.blk().unwrap();
        assert_eq!(
            blk.read(0, DATA_BYTES).unwrap()[..98 * 512],
            all[..98 * 512]
        );
        drop(blk);
        assert!(sys.faults().is_empty(), "{dialect:?}: {:?}", sys.faults());
    }
}

#[test]
fn each_endpoint_has_its_own_disk() {
    let sys = SimSystem::start().unwrap();
    let mut one = sys.connect(1, Dialect::G3, false).unwrap();
    let mut two = sys.connect(2, Dialect::G2, false).unwrap();
    let mut three = sys.connect(3, Dialect::G3, true).unwrap();
    {
        let mut a = one.blk().unwrap();
        let mut b = two.blk().unwrap();
        let mut c = three.blk().unwrap();
        assert_eq!(a.id().unwrap(), id(1));
        assert_eq!(b.id().unwrap(), id(2));
        assert_eq!(c.id().unwrap(), id(3));
        a.write(0, &[0xaa; DATA_BYTES]).unwrap();
        assert!(b.read(0, DATA_BYTES).unwrap().iter().all(|&x| x == 0));
        b.write(0, &[0x55; DATA_BYTES]).unwrap();
        assert!(a.read(0, DATA_BYTES).unwrap().iter().all(|&x| x == 0xaa));
        assert!(c.read(0, DATA_BYTES).unwrap().iter().all(|&x| x == 0));
    }
    assert!(sys.faults().is_empty(), "{:?}", sys.faults());

    // A destroyed endpoint's disk goes with it: the endpoint comes back to a fresh one.
    let platform = one.platform().clone();
    let ffa = one.into_session().into_ffa();
    sys.world().send_vm_destroyed(sys.sp_id(), 1).unwrap();
    let session = BusSession::connect(ffa, 1, sys.sp_id(), Dialect::G3, false).unwrap();
    let mut again = Connection::new(session, platform);
    let mut a = again.blk().unwrap();
    assert!(a.read(0, DATA_BYTES).unwrap().iter().all(|&x| x == 0));
    drop(a);
    let mut b = two.blk().unwrap();
    assert!(b.read(0, DATA_BYTES).unwrap().iter().all(|&x| x == 0x55));
    drop(b);
    assert!(sys.faults().is_empty(), "{:?}", sys.faults());
}
