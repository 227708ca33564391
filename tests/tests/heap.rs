//! Heap exhaustion in a live partition (issue 10, item 3): the partition's own allocations
//! start failing while endpoints are being served (all of them, then only large ones: vsock's
//! connection buffers). Whatever a driver then asks — a new
//! endpoint, AREA_SHARE, queue setup, I/O — is refused by the protocol, never an abort (an
//! infallible allocation that fails aborts this whole test process); once memory is back,
//! everything works again. Zero simulator faults throughout.
//!
//! The allocator below fails allocations only on the partition's thread (marked by
//! `SimSystem::start_entering`) and only while armed, so the simulator and the drivers keep
//! their memory.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
};

use ffa::bus::{BusConfig, Dialect};
use vmsg_host::{
    SimConnection, SimSystem,
    session::{BusSession, SharedArea},
};

thread_local! {
    static PARTITION_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// While set, the partition's allocations fail.
static EXHAUSTED: AtomicBool = AtomicBool::new(false);
/// Partition allocations refused so far.
static REFUSED: AtomicUsize = AtomicUsize::new(0);
/// The partition's allocations of at least this many bytes fail (a heap with only small
/// blocks left).
static FAIL_FROM: AtomicUsize = AtomicUsize::new(usize::MAX);

struct PartitionHeap;

// SAFETY: forwards to the system allocator, or returns null (allowed: "allocation failed").
unsafe impl GlobalAlloc for PartitionHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if (EXHAUSTED.load(Ordering::Relaxed) || layout.size() >= FAIL_FROM.load(Ordering::Relaxed))
            && PARTITION_THREAD.with(Cell::get)
            && !ffa::sim::in_simulator()
        {
            REFUSED.fetch_add(1, Ordering::Relaxed);
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: PartitionHeap = PartitionHeap;

fn mark_partition_thread() {
    PARTITION_THREAD.with(|p| p.set(true));
}

fn share(
    conn: &mut SimConnection,
    pages: u32,
) -> Result<SharedArea, vmsg_host::session::SessionError> {
    let pa = conn.platform().alloc(pages);
    conn.session().share(pa, pages)
}

/// One test: the allocator state is process-wide.
#[test]
fn the_partition_refuses_what_it_cannot_allocate_and_recovers() {
    let sys = SimSystem::start_entering(BusConfig::default(), mark_partition_thread).unwrap();
    let mut served = sys.connect(1, Dialect::G3, false).unwrap();
    // A block device set up, and never used, on another endpoint.
    let mut cold = sys.connect(7, Dialect::G3, false).unwrap();
    let mut blk = cold.blk().unwrap();
    let mut rng = served.rng().unwrap();
    assert_eq!(rng.read(4096).unwrap().len(), 4096);

    EXHAUSTED.store(true, Ordering::Relaxed);
    // I/O on the running device allocates nothing once its queue has served a chain of the
    // same shape (the chain lists are kept for the next chain): it goes on with no memory.
    assert_eq!(rng.read(4096).unwrap().len(), 4096, "I/O with no memory");
    drop(rng);
    // A queue's first chain needs its lists: the device fails the request (DEVICE_NEEDS_RESET)
    // and the driver sees an error, not a hang.
    assert!(
        blk.read(0, 512).is_err(),
        "first I/O succeeded with no memory"
    );
    drop(blk);
    // A new area needs a table row.
    assert!(share(&mut served, 1).is_err(), "AREA_SHARE with no memory");
    // A new endpoint needs its bus instance and devices: refused, in either dialect.
    for (vm, dialect) in [(2, Dialect::G3), (3, Dialect::G2)] {
        assert!(
            sys.connect(vm, dialect, false).is_err(),
            "vm {vm}: a session opened with no memory for it"
        );
    }
    // RESET relinquishes every area with no heap at all.
    let handles: Vec<u64> = sys.world().outstanding_handles();
    served.session().reset().expect("RESET answered");
    for h in handles {
        assert!(
            !sys.world().is_retrieved(h, sys.sp_id()),
            "handle {h:#x} kept"
        );
    }
    assert!(sys.world().sp_alive(sys.sp_id()), "the partition stopped");
    let refused = REFUSED.load(Ordering::Relaxed);
    assert!(refused > 0, "nothing tried to allocate");
    EXHAUSTED.store(false, Ordering::Relaxed);

    // Memory is back: the reset endpoint negotiates again and is served, and so are
    // newcomers.
    let ffa = served.into_session().into_ffa();
    let mut again = BusSession::connect(ffa, 1, sys.sp_id(), Dialect::G3, false).unwrap();
    assert_eq!(again.devices().unwrap(), vec![0, 1, 2, 3]);
    assert_eq!(again.ping(5).unwrap(), 5);
    for (vm, dialect) in [(4, Dialect::G3), (5, Dialect::G2)] {
        let mut conn = sys.connect(vm, dialect, false).unwrap();
        let mut rng = conn.rng().unwrap();
        assert_eq!(rng.read(8192).unwrap().len(), 8192, "vm {vm}");
    }

    // Only small blocks left: the vsock connection buffers (16 KiB, at the first connection)
    // cannot be had, so a REQUEST is refused with an RST; the device goes on, and connects
    // once the heap has room again.
    let mut conn = sys.connect(6, Dialect::G3, false).unwrap();
    let mut vsock = conn.vsock().unwrap();
    FAIL_FROM.store(sp::devices::vsock::BUFFER_BYTES, Ordering::Relaxed);
    assert!(
        vsock.connect(sp::devices::vsock::ECHO_PORT).is_err(),
        "a connection without its buffers"
    );
    FAIL_FROM.store(usize::MAX, Ordering::Relaxed);
    let echo = vsock.connect(sp::devices::vsock::ECHO_PORT).unwrap();
    vsock.send(echo, b"room again").unwrap();
    assert_eq!(vsock.read_exact(echo, 10).unwrap(), b"room again");
    vsock.close().unwrap();
    drop(vsock);
    assert!(sys.faults().is_empty(), "faults: {:?}", sys.faults());
    eprintln!("partition allocations refused: {refused}");
}
