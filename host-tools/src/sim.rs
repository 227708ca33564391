//! The default backend: the simulated FF-A world with the partition core running in this
//! process, on its own thread, exactly as it runs under an SPMC ([`SimSystem`]); or, for the
//! fuzzer and for counting, on the caller's thread ([`inline::InlineSystem`]).

use std::time::Duration;

use ffa::{
    Ffa, VIRTIO_MSG_DEVICE_UUID,
    bus::{BusConfig, Dialect},
    sim::{Fault, SimConduit, SpHandle, SpInfo, VmEndpoint, World, props},
};
use sp::{registry::DiskProvider, startup::StartError};

use virtio_msg::MemError;

use crate::{
    connection::Connection,
    platform::Platform,
    session::{BusSession, Modes, SessionError},
    virtqueue::DriverMem,
};

pub mod disk;
pub mod inline;
pub mod partition;
pub mod partition_log;

use partition::{HostPartition, PackageHead};

/// Endpoint id the simulated partition gets (the first SP id under Hafnium).
pub const SP_ID: u16 = 0x8001;

/// The partition as the simulated SPMC knows it (what its manifest says): id [`SP_ID`], the
/// virtio-msg device UUID, indirect messages, VM created/destroyed messages, and RX/TX buffers
/// the SPMC maps at boot (the manifest's `rx_tx-info`).
fn partition_info() -> SpInfo {
    let mut info = SpInfo::new(SP_ID, vec![VIRTIO_MSG_DEVICE_UUID]);
    info.properties |= props::INDIRECT_MSG | props::VM_CREATED | props::VM_DESTROYED;
    info.rxtx_premapped = true;
    info
}

/// A simulated FF-A world with the virtio-msg partition running in it.
pub struct SimSystem {
    world: World,
    sp: Option<SpHandle>,
}

impl SimSystem {
    /// Starts the world and boots the partition with its standard devices (virtio-rng fed by
    /// the operating system's entropy).
    pub fn start() -> Result<Self, SessionError> {
        Self::start_with(BusConfig::default())
    }

    /// Starts the world with a given bus configuration.
    pub fn start_with(config: BusConfig) -> Result<Self, SessionError> {
        Self::start_entering(config, || {})
    }

    /// Starts the world with a given bus configuration, running `enter` first on the
    /// partition's own thread (a test marks the thread with it, to fail the partition's heap
    /// allocations and nobody else's).
    pub fn start_entering(config: BusConfig, enter: fn()) -> Result<Self, SessionError> {
        Self::start_partition(config, 1, enter, None)
    }

    /// Starts the world with a given bus configuration, the block device of the endpoint
    /// `disk` names over its host file instead of a RAM disk (once: see
    /// [`disk`](self::disk)).
    pub fn start_with_disk(config: BusConfig, disk: disk::HostDisk) -> Result<Self, SessionError> {
        Self::start_partition(config, 1, || {}, Some(Box::new(disk)))
    }

    /// Starts the world with an MP partition of `contexts` execution contexts (one per CPU:
    /// a driver calling from CPU `k` is served by context `k`), as its manifest's
    /// `execution-ctx-count` says; 1 is the standard UP partition.
    pub fn start_with_contexts(config: BusConfig, contexts: u16) -> Result<Self, SessionError> {
        Self::start_partition(config, contexts, || {}, None)
    }

    fn start_partition(
        config: BusConfig,
        contexts: u16,
        enter: fn(),
        disks: Option<Box<dyn DiskProvider>>,
    ) -> Result<Self, SessionError> {
        let world = World::new();
        let mut info = partition_info();
        info.exec_ctx_count = contexts;
        // The same start-up as the image's, over the simulated conduit and mapper, with boot
        // info and a manifest as Hafnium hands them over.
        let sp = world.spawn_sp(info, move |conduit: SimConduit, mapper| {
            enter();
            let launcher = conduit.contexts();
            let starter = Box::new(move |ec, entry: Box<dyn FnOnce(SimConduit) + Send>| {
                launcher.start(ec, entry).map(drop)
            });
            let mut platform =
                HostPartition::new(conduit, mapper, PackageHead::with_contexts(contexts))
                    .with_contexts(starter);
            if let Some(disks) = disks {
                platform = platform.with_disks(disks);
            }
            match sp::startup::start(&mut platform, config) {
                // The world shut down: the partition's next call failed.
                StartError::Loop(_) => {}
                e => log::error!("partition stopped: {e}"),
            }
        });
        Ok(Self {
            world,
            sp: Some(sp),
        })
    }

    /// The simulated world (for fault and console inspection).
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The partition's endpoint id.
    pub fn sp_id(&self) -> u16 {
        SP_ID
    }

    /// Accesses the partition made outside what it had retrieved (must stay empty).
    pub fn faults(&self) -> Vec<Fault> {
        self.world.faults()
    }

    /// Adds a normal-world endpoint `vm` and opens a bus session from it.
    pub fn connect(
        &self,
        vm: u16,
        dialect: Dialect,
        notify: bool,
    ) -> Result<SimConnection, SessionError> {
        open(self.world.add_vm(vm), SP_ID, dialect, notify)
    }

    /// [`connect`](Self::connect) with messaging and event modes.
    pub fn connect_modes(
        &self,
        vm: u16,
        dialect: Dialect,
        modes: Modes,
    ) -> Result<SimConnection, SessionError> {
        open_modes(self.world.add_vm(vm), SP_ID, dialect, modes)
    }
}

impl Drop for SimSystem {
    fn drop(&mut self) {
        self.world.shutdown();
        if let Some(sp) = self.sp.take() {
            let _ = sp.join();
        }
    }
}

/// A connection from a simulated normal-world endpoint.
pub type SimConnection = Connection<SimConduit, VmEndpoint>;

/// Opens a session from `endpoint`: FFA_VERSION, RX/TX buffers from its own pages, its
/// notification bitmap, then the bus negotiation (direct messages; events by notification
/// when `notify`, else polled).
pub fn open(
    endpoint: VmEndpoint,
    sp_id: u16,
    dialect: Dialect,
    notify: bool,
) -> Result<SimConnection, SessionError> {
    open_modes(
        endpoint,
        sp_id,
        dialect,
        Modes::from_notify(dialect, notify),
    )
}

/// [`open`] with messaging and event modes.
pub fn open_modes(
    endpoint: VmEndpoint,
    sp_id: u16,
    dialect: Dialect,
    modes: Modes,
) -> Result<SimConnection, SessionError> {
    let conduit = endpoint.conduit();
    open_over(conduit, endpoint, sp_id, dialect, modes)
}

/// [`open_modes`] over `conduit` (the endpoint's own, or one that wraps it).
pub fn open_over<C: ffa::Conduit>(
    conduit: C,
    endpoint: VmEndpoint,
    sp_id: u16,
    dialect: Dialect,
    modes: Modes,
) -> Result<Connection<C, VmEndpoint>, SessionError> {
    let mut ffa = Ffa::new(conduit);
    ffa.version(ffa::FFA_VERSION)?;
    let buffers = endpoint.alloc(2);
    ffa.rxtx_map(buffers, buffers + ffa::memory::PAGE_SIZE, 1)?;
    // Without a hypervisor the endpoint creates its own notification bitmap (as Linux does):
    // notifications and the RX-full framework notification of indirect messages need it.
    ffa.notification_bitmap_create(endpoint.id(), 1)?;
    let session = BusSession::connect_modes(ffa, endpoint.id(), sp_id, dialect, modes)?;
    Ok(Connection::new(session, endpoint))
}

impl Platform for VmEndpoint {
    fn alloc_pages(&self, pages: u32) -> Option<u64> {
        Some(VmEndpoint::alloc(self, pages))
    }

    fn free_pages(&self, pa: u64, pages: u32) {
        if let Err(f) = VmEndpoint::free(self, pa, pages) {
            log::warn!("freeing {pages} pages at {pa:#x}: {f}");
        }
    }

    fn wait_notification(&self, timeout_ms: u32) -> bool {
        VmEndpoint::wait_notification(self, Duration::from_millis(u64::from(timeout_ms)))
    }
}

impl DriverMem for VmEndpoint {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        VmEndpoint::read(self, pa, buf).map_err(|f| fault(&f))
    }

    fn write(&self, pa: u64, data: &[u8]) -> Result<(), MemError> {
        VmEndpoint::write(self, pa, data).map_err(|f| fault(&f))
    }
}

fn fault(f: &Fault) -> MemError {
    MemError::Fault { addr: f.addr }
}
