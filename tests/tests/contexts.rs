//! A partition with one execution context per CPU serves every CPU at once (issue 8, item 5):
//! drivers on four CPUs, each its own VM, read from their rng devices at the same time and
//! none of their FF-A calls is answered BUSY; every byte arrives, no access faults, and every
//! area is returned.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use ffa::{
    Conduit,
    arm_ffa::{FfaError, FuncId},
    bus::{BusConfig, Dialect},
    sim::SimConduit,
};
use vmsg_host::{
    SimSystem,
    session::Modes,
    sim::{SP_ID, open_over},
};

/// Counts the FFA_ERROR(BUSY) answers its calls get.
struct BusyCounter {
    inner: SimConduit,
    busy: Arc<AtomicU64>,
}

impl Conduit for BusyCounter {
    fn call(&mut self, regs: [u64; 18]) -> [u64; 18] {
        let answer = self.inner.call(regs);
        if answer[0] == u64::from(u32::from(FuncId::Error32))
            && ffa::conduit::smccc_status(answer[2]) == i32::from(FfaError::Busy)
        {
            self.busy.fetch_add(1, Ordering::Relaxed);
        }
        answer
    }
    fn tx(&mut self) -> &mut [u8] {
        self.inner.tx()
    }
    fn rx(&self) -> &[u8] {
        self.inner.rx()
    }
    fn interrupt_get(&mut self) -> Option<u32> {
        self.inner.interrupt_get()
    }
}

/// Reads `rounds` × 16 KiB from the rng of VM `vm` calling on CPU `cpu`; returns the bytes
/// read.
fn reader(
    sys: &SimSystem,
    vm: u16,
    cpu: u16,
    busy: Arc<AtomicU64>,
) -> impl FnOnce() -> usize + Send + 'static {
    let endpoint = sys.world().add_vm(vm);
    let conduit = BusyCounter {
        inner: endpoint.conduit_on(cpu),
        busy,
    };
    move || {
        let dialect = if vm.is_multiple_of(2) {
            Dialect::G2
        } else {
            Dialect::G3
        };
        let modes = Modes::from_notify(dialect, true);
        let mut conn = open_over(conduit, endpoint, SP_ID, dialect, modes).unwrap();
        let mut total = 0;
        {
            let mut rng = conn.rng().unwrap();
            for _ in 0..64 {
                total += rng.read(16 * 1024).unwrap().len();
            }
            rng.close().unwrap();
        }
        total
    }
}

/// Four VMs on four CPUs against a partition with `contexts` execution contexts; returns the
/// BUSY answers their calls got.
fn four_cpus(contexts: u16) -> u64 {
    let sys = SimSystem::start_with_contexts(BusConfig::default(), contexts).unwrap();
    let busy = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..4u16)
        .map(|cpu| reader(&sys, cpu + 1, cpu, busy.clone()))
        .collect();
    let threads: Vec<_> = readers.into_iter().map(std::thread::spawn).collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 64 * 16 * 1024);
    }
    sys.world().assert_no_faults();
    assert!(
        sys.world().outstanding_handles().is_empty(),
        "every area returned"
    );
    busy.load(Ordering::Relaxed)
}

#[test]
fn four_contexts_serve_four_cpus_without_busy() {
    assert_eq!(four_cpus(4), 0, "FFA_ERROR(BUSY) answers");
}

#[test]
fn a_cpu_without_a_context_is_refused_and_the_others_go_on() {
    // Two contexts, a driver on CPU 2: the SPMC has no context of the partition to run there.
    let sys = SimSystem::start_with_contexts(BusConfig::default(), 2).unwrap();
    let endpoint = sys.world().add_vm(7);
    let conduit = endpoint.conduit_on(2);
    let refused = open_over(
        conduit,
        endpoint,
        SP_ID,
        Dialect::G3,
        Modes::from_notify(Dialect::G3, false),
    );
    assert!(refused.is_err());
    let busy = Arc::new(AtomicU64::new(0));
    let read = reader(&sys, 8, 1, busy.clone())();
    assert_eq!(read, 64 * 16 * 1024);
    assert_eq!(busy.load(Ordering::Relaxed), 0);
}

#[test]
fn four_cpus_share_and_unshare_at_once_through_the_one_rx_tx_pair() {
    // Every AREA_SHARE is a retrieve through the partition's one RX/TX pair (request in TX,
    // response in RX, FFA_RX_RELEASE): four contexts doing it at once must take turns, or the
    // SPMC answers a retrieve BUSY while another context's response holds the RX buffer.
    let sys = SimSystem::start_with_contexts(BusConfig::default(), 4).unwrap();
    let threads: Vec<_> = (0..4u16)
        .map(|cpu| {
            let endpoint = sys.world().add_vm(20 + cpu);
            let conduit = endpoint.conduit_on(cpu);
            std::thread::spawn(move || {
                let modes = Modes::from_notify(Dialect::G3, false);
                let mut conn = open_over(conduit, endpoint, SP_ID, Dialect::G3, modes).unwrap();
                let pa = conn.platform().alloc(1);
                for _ in 0..300 {
                    let area = conn.session().share(pa, 1).unwrap();
                    conn.session().unshare(&area).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    sys.world().assert_no_faults();
    assert!(sys.world().outstanding_handles().is_empty());
}
