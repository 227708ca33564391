//! virtio-blk end to end in the simulated FF-A world: the host driver library's block driver
//! against the partition's RAM disks and a host file (`vmsg_host::sim::disk`), both dialects,
//! with zero simulator faults. Each endpoint has a disk of its own: no byte one VM writes
//! reaches another.

use ffa::bus::{BusConfig, Dialect};
use vmsg_host::{
    Connection, HostError, SimSystem,
    blk::{
        DATA_BYTES, S_OK, T_IN, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO,
        VIRTIO_BLK_F_WRITE_ZEROES,
    },
    session::BusSession,
    sim::disk::{FileStore, HostDisk},
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

/// A file of `len` bytes of `fill` in the temporary directory, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, len: usize, fill: u8) -> Self {
        let path = std::env::temp_dir().join(format!("vmsg-{name}-{}.img", std::process::id()));
        std::fs::write(&path, vec![fill; len]).unwrap();
        Self(path)
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_host_file_is_the_disk_of_its_endpoint_and_of_no_other() {
    for (dialect, notify) in [(Dialect::G3, true), (Dialect::G2, false)] {
        let file = TempFile::new(&format!("blk-e2e-{dialect:?}"), 1 << 20, 0xc3);
        let store = FileStore::open(&file.0, false).unwrap();
        let sys =
            SimSystem::start_with_disk(BusConfig::default(), HostDisk::new(1, store)).unwrap();
        // Endpoint 2 comes first: it still gets a RAM disk of its own.
        let mut two = sys.connect(2, dialect, notify).unwrap();
        let mut one = sys.connect(1, dialect, notify).unwrap();
        {
            let mut b = two.blk().unwrap();
            assert_eq!(b.capacity(), SECTORS, "{dialect:?}");
            assert_eq!(b.id().unwrap(), id(2));
            let mut a = one.blk().unwrap();
            assert_eq!(a.capacity(), 2048, "{dialect:?}: the file's length");
            assert_eq!(&a.id().unwrap()[..15], b"vmsg-file-0001\0");
            assert_eq!(a.features() & VIRTIO_BLK_F_RO, 0);
            assert!(a.read(2047, 512).unwrap().iter().all(|&x| x == 0xc3));
            let data = pattern(7, DATA_BYTES);
            a.write(1000, &data).unwrap();
            a.write_zeroes(10, 3, false).unwrap();
            a.flush().unwrap();
            b.write(0, &[0x55; DATA_BYTES]).unwrap();
            assert_eq!(a.read(1000, DATA_BYTES).unwrap(), data);
            // The bytes are in the file, where the sectors say, and nothing else changed.
            let on_disk = file.bytes();
            assert_eq!(on_disk.len(), 1 << 20);
            assert_eq!(&on_disk[1000 * 512..1000 * 512 + DATA_BYTES], &data[..]);
            assert!(on_disk[10 * 512..13 * 512].iter().all(|&x| x == 0));
            let untouched = on_disk[..10 * 512]
                .iter()
                .chain(&on_disk[13 * 512..1000 * 512])
                .chain(&on_disk[1000 * 512 + DATA_BYTES..]);
            assert!(untouched.into_iter().all(|&x| x == 0xc3), "{dialect:?}");
            // Past the file's end: IOERR, and the device goes on.
            assert!(matches!(a.read(2048, 512), Err(HostError::BlockStatus(1))));
            assert!(a.read(2047, 512).unwrap().iter().all(|&x| x == 0xc3));
        }
        assert!(sys.faults().is_empty(), "{dialect:?}: {:?}", sys.faults());

        // Endpoint 1 destroyed and admitted again: the file is not handed out twice (the id
        // may be another VM's by now); it gets a fresh RAM disk.
        let platform = one.platform().clone();
        let ffa = one.into_session().into_ffa();
        sys.world().send_vm_destroyed(sys.sp_id(), 1).unwrap();
        let session = BusSession::connect(ffa, 1, sys.sp_id(), dialect, notify).unwrap();
        let mut again = Connection::new(session, platform);
        let mut a = again.blk().unwrap();
        assert_eq!(a.capacity(), SECTORS, "{dialect:?}");
        assert!(a.read(0, DATA_BYTES).unwrap().iter().all(|&x| x == 0));
        drop(a);
        assert_eq!(
            &file.bytes()[1000 * 512..1000 * 512 + DATA_BYTES],
            &pattern(7, DATA_BYTES)[..]
        );
        assert!(sys.faults().is_empty(), "{dialect:?}: {:?}", sys.faults());
    }
}

#[test]
fn a_read_only_host_file_is_offered_read_only_and_never_written() {
    let file = TempFile::new("blk-e2e-ro", 64 * 512, 0x3c);
    let store = FileStore::open(&file.0, true).unwrap();
    let sys = SimSystem::start_with_disk(BusConfig::default(), HostDisk::new(1, store)).unwrap();
    let mut conn = sys.connect(1, Dialect::G3, false).unwrap();
    let mut blk = conn.blk().unwrap();
    assert_ne!(blk.features() & VIRTIO_BLK_F_RO, 0);
    assert!(matches!(
        blk.write(0, &[0; 512]),
        Err(HostError::BlockStatus(1))
    ));
    assert!(matches!(
        blk.write_zeroes(0, 1, false),
        Err(HostError::BlockStatus(1))
    ));
    assert!(blk.read(63, 512).unwrap().iter().all(|&x| x == 0x3c));
    drop(blk);
    assert!(file.bytes().iter().all(|&x| x == 0x3c));
    assert!(sys.faults().is_empty(), "{:?}", sys.faults());
}
