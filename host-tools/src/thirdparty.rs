//! The third-party `virtio-drivers` crate (rcore-os) as a driver for our devices: its
//! [`Transport`] over the driver-side virtio-msg client ([`VmsgTransport`], one device of one
//! bus session) and its [`Hal`] over memory shared with the partition ([`VmsgHal`]).
//!
//! ```no_run
//! # use vmsg_host::{sim::inline::InlineSystem, thirdparty::{ThirdParty, VmsgHal}};
//! # use vmsg_host::thirdparty::virtio_drivers::device::blk::VirtIOBlk;
//! let sys = InlineSystem::start()?;
//! let tp = ThirdParty::inline(&sys, 1, ffa::bus::Dialect::G3, false)?;
//! let mut blk = VirtIOBlk::<VmsgHal, _>::new(tp.transport(1)?).expect("probe");
//! let mut sector = [0u8; 512];
//! blk.read_blocks(0, &mut sector).expect("read");
//! # Ok::<(), vmsg_host::HostError>(())
//! ```
//!
//! # Memory, and why copying keeps it coherent
//!
//! The partition reaches normal-world memory only through the simulator, and only the pages it
//! was shared (FFA_MEM_SHARE + AREA_SHARE, at bus addresses `area_id << 48 | offset`); the
//! third-party driver reaches its DMA memory only through host pointers. So every DMA region
//! lives twice: as host pages (what [`Hal::dma_alloc`] hands the driver, and the bounce
//! buffers [`Hal::share`] copies driver buffers into) and as simulator pages shared as an area
//! of their own, whose bus address is the region's [`PhysAddr`]. The two copies are made equal
//! at every world switch: the endpoint's conduit ([`CoherentConduit`]) copies every live
//! region host → simulator before each direct request it sends to the partition, and simulator
//! → host after the answer.
//!
//! That is enough because the two sides never run at once, and every switch between them is
//! one of those calls:
//! - the partition touches an endpoint's memory only while it serves a direct request from
//!   that endpoint (the inline world runs it on this thread inside the call; work a device
//!   left at its budget is resumed at the endpoint's *next* message, not in between);
//! - the driver runs only outside those calls: one thread drives the session, and a call does
//!   not return before the partition's answer.
//!
//! So at each switch the side about to run gets everything the other wrote, and a byte neither
//! side wrote since the last switch is copied back unchanged. The driver's own buffers never
//! become shared memory: `share` copies a device-readable buffer into a fresh bounce region,
//! `unshare` copies a device-writable one back, after the answer that completed it (the last
//! switch). The copies go through raw pointers: no reference into driver memory is made.
//!
//! What this assumes: one thread (the [`Hal`] has no `self`, so it finds its session through
//! a thread-local: the session is bound to the thread that opened it, one at a time); the
//! driver holds no reference into DMA memory across a transport call (virtio-drivers reaches
//! it through raw pointers, one access at a time); and every direct request of the endpoint
//! goes through this session's conduit (use [`ThirdParty::with_connection`]). It copies every
//! live region in full at every message: right for tests, not for speed.
//!
//! # Where the trait gives no error path
//!
//! Most [`Transport`] methods cannot fail. A failed exchange (or a device refusal the driver
//! would not notice, such as FEATURES_OK not taken, which `begin_init` never re-reads) is
//! logged and kept as a [`Failure`] ([`ThirdParty::failures`]), and the transport turns
//! *broken*: it then reports every queue as unusable (`max_queue_size` 0), so the driver's
//! probe fails with an error instead of using a device that is not there.
//! [`Transport::notify`] panics if the device returns nothing after `MAX_WAITS` (64) waits:
//! virtio-drivers spins on its used ring after a notify and would otherwise never return. It
//! does not wait on a queue whose buffers the device keeps until it has something to put there
//! (vsock's rx and event queues, the console's receiveq: virtio-drivers posts them, notifies,
//! and polls later).

use std::{
    cell::{Cell, RefCell},
    collections::BTreeMap,
    fmt,
    ptr::{self, NonNull},
    rc::Rc,
};

use ffa::{Conduit, bus::Dialect, sim::VmEndpoint};
use virtio_drivers::{
    BufferDirection, Hal, PhysAddr,
    transport::{DeviceStatus, DeviceType, InterruptStatus, Transport},
};
use virtio_msg::{
    device::{QueueConfig, VIRTIO_F_ACCESS_PLATFORM},
    driver::{Channel, ChannelError, DeviceClient, DriverError},
};
use zerocopy::{FromBytes, Immutable, IntoBytes};

pub use virtio_drivers;

use crate::{
    connection::{Connection, DeviceSummary, HostError},
    driver::{self, MAX_WAITS},
    platform::Platform,
    session::{BusInfo, BusSession, Event, SharedArea},
    sim::inline::{DIRECT_REQUESTS, InlineConduit, InlineSystem},
};

/// Bytes per page (virtio-drivers' `PAGE_SIZE`, the FF-A page).
const PAGE: usize = virtio_drivers::PAGE_SIZE;
const _: () = assert!(PAGE as u64 == ffa::memory::PAGE_SIZE);

/// One page of host DMA memory: the alignment [`Hal::dma_alloc`] promises.
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Page([u8; PAGE]);
const _: () = assert!(align_of::<Page>() == PAGE && size_of::<Page>() == PAGE);

thread_local! {
    /// The session the [`VmsgHal`] of this thread works for.
    static PORT: RefCell<Option<Rc<dyn Port>>> = const { RefCell::new(None) };
}

/// A failure the adapter met where virtio-drivers' traits give it no way to return one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What was being done (the trait method, or the coherence copy).
    pub op: &'static str,
    /// Why it failed.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.detail)
    }
}

/// One DMA region: host pages and the simulator pages shared as an area.
struct Region {
    /// The host pages (a leaked `Box<[Page]>`, taken back when the region is freed).
    host: NonNull<[Page]>,
    /// The area holding the simulator copy.
    area: SharedArea,
    /// A bounce buffer of [`Hal::share`] (not a [`Hal::dma_alloc`] region).
    bounce: bool,
}

impl Region {
    fn len(&self) -> usize {
        self.host.len() * PAGE
    }
}

/// The bookkeeping the conduit, the [`Hal`] and the transports share: every live region, and
/// the failures met.
struct Ledger {
    endpoint: VmEndpoint,
    /// Live regions by the bus address of their first byte.
    regions: RefCell<BTreeMap<u64, Region>>,
    failures: RefCell<Vec<Failure>>,
    scratch: RefCell<Vec<u8>>,
}

impl Ledger {
    fn fail(&self, op: &'static str, detail: impl fmt::Display) {
        let failure = Failure {
            op,
            detail: detail.to_string(),
        };
        log::warn!("virtio-drivers adapter: {failure}");
        self.failures.borrow_mut().push(failure);
    }

    /// Copies every live region host → simulator (before the partition runs).
    fn copy_to_device(&self) {
        let regions = self.regions.borrow();
        let mut scratch = self.scratch.borrow_mut();
        for region in regions.values() {
            scratch.resize(region.len(), 0);
            // SAFETY: `region.host` is a live allocation of `region.len()` bytes (regions leave
            // the ledger before they are freed), `scratch` holds as many and is a separate
            // allocation. The driver does not run during this call (one thread, inside a
            // conduit call) and holds no reference into the region, so nothing else accesses
            // it meanwhile.
            unsafe {
                ptr::copy_nonoverlapping(
                    region.host.cast::<u8>().as_ptr(),
                    scratch.as_mut_ptr(),
                    region.len(),
                );
            }
            if let Err(f) = self.endpoint.write(region.area.pa, &scratch) {
                drop(scratch);
                drop(regions);
                self.fail("copy to the partition", f);
                return;
            }
        }
    }

    /// Copies every live region simulator → host (after the partition answered).
    fn copy_from_device(&self) {
        let regions = self.regions.borrow();
        let mut scratch = self.scratch.borrow_mut();
        for region in regions.values() {
            scratch.resize(region.len(), 0);
            if let Err(f) = self.endpoint.read(region.area.pa, &mut scratch) {
                drop(scratch);
                drop(regions);
                self.fail("copy from the partition", f);
                return;
            }
            // SAFETY: as in `copy_to_device`: a live allocation of `region.len()` bytes that nothing
            // else accesses during this call, and a separate source of as many bytes.
            unsafe {
                ptr::copy_nonoverlapping(
                    scratch.as_ptr(),
                    region.host.cast::<u8>().as_ptr(),
                    region.len(),
                );
            }
        }
    }

    /// The simulator address of `len` bytes at bus address `bus`, if one live region holds
    /// them all.
    fn sim_address(&self, bus: u64, len: usize) -> Option<u64> {
        let regions = self.regions.borrow();
        let (&start, region) = regions.range(..=bus).next_back()?;
        let offset = bus - start;
        let end = offset.checked_add(u64::try_from(len).ok()?)?;
        (end <= u64::try_from(region.len()).ok()?).then_some(region.area.pa + offset)
    }

    /// The host pages of the region starting at bus address `bus`, if it holds `len` bytes.
    fn host_of(&self, bus: u64, len: usize) -> Option<NonNull<u8>> {
        let regions = self.regions.borrow();
        let region = regions.get(&bus)?;
        (len <= region.len()).then_some(region.host.cast())
    }
}

/// The endpoint's conduit with the coherence copies (see the [module docs](self)): every live
/// DMA region is copied host → simulator before each direct request to the partition, and
/// simulator → host after the answer. Every other call goes straight through.
pub struct CoherentConduit<C> {
    inner: C,
    sp_id: u16,
    ledger: Rc<Ledger>,
}

impl<C: Conduit> Conduit for CoherentConduit<C> {
    fn call(&mut self, regs: [u64; 18]) -> [u64; 18] {
        let fid = ffa::conduit::low32(regs[0]);
        let dst = ffa::conduit::low32(regs[1]) & 0xffff;
        let to_partition = DIRECT_REQUESTS.contains(&fid) && dst == u32::from(self.sp_id);
        if to_partition {
            self.ledger.copy_to_device();
        }
        let answer = self.inner.call(regs);
        if to_partition {
            self.ledger.copy_from_device();
        }
        answer
    }

    fn tx(&mut self) -> &mut [u8] {
        self.inner.tx()
    }

    fn rx(&self) -> &[u8] {
        self.inner.rx()
    }
}

/// A connection whose direct requests keep the DMA regions coherent.
pub type CoherentConnection<C> = Connection<CoherentConduit<C>, VmEndpoint>;

/// What the [`VmsgHal`] needs of the session it works for (the session's conduit type erased).
trait Port {
    /// A new region of `pages` zeroed pages (a bounce buffer if `bounce`): its bus address and
    /// its host pages.
    fn alloc(&self, pages: usize, bounce: bool) -> Option<(u64, NonNull<u8>)>;
    /// Frees the region at bus address `bus` (host pages `host`, `pages` pages): unshares
    /// the area and gives the host pages back. Returns whether it was a live region.
    fn free(&self, bus: u64, host: NonNull<u8>, pages: usize) -> bool;
    /// The bookkeeping.
    fn ledger(&self) -> &Ledger;
}

/// What a session's handles ([`ThirdParty`], its transports) and the [`VmsgHal`] share.
struct Shared<C: Conduit> {
    conn: RefCell<CoherentConnection<C>>,
    ledger: Rc<Ledger>,
    info: BusInfo,
    /// Events fetched and not yet taken by their device's transport (G3).
    pending: RefCell<Vec<Event>>,
    /// Handles alive ([`ThirdParty`] and transports): with no handle and no region left the
    /// thread's [`VmsgHal`] lets go of the session.
    handles: Cell<usize>,
    /// The features each device's driver last wrote (SET_DRIVER_FEATURES), by device number.
    written: RefCell<BTreeMap<u16, u64>>,
}

impl<C: Conduit> Shared<C> {
    /// Keeps `events` for their transports (at most one of each).
    fn stash(&self, events: Vec<Event>) {
        let mut pending = self.pending.borrow_mut();
        for e in events {
            if !pending.contains(&e) {
                pending.push(e);
            }
        }
    }

    /// One handle fewer.
    fn leave(&self) {
        self.handles.set(self.handles.get().saturating_sub(1));
        self.release_if_idle();
    }

    /// Lets go of the thread's [`VmsgHal`] binding (if it is this session's) once nothing
    /// needs it.
    fn release_if_idle(&self) {
        if self.handles.get() != 0 || !self.ledger.regions.borrow().is_empty() {
            return;
        }
        // Taken out inside, dropped after the borrow of the cell ended.
        let port = PORT.with(|p| {
            let mut bound = p.borrow_mut();
            let ours = bound
                .as_ref()
                .is_some_and(|port| ptr::addr_eq(Rc::as_ptr(port), ptr::from_ref(self)));
            if ours { bound.take() } else { None }
        });
        drop(port);
    }
}

impl<C: Conduit> Port for Shared<C> {
    fn alloc(&self, pages: usize, bounce: bool) -> Option<(u64, NonNull<u8>)> {
        let Some(count) = u32::try_from(pages).ok().filter(|&n| n > 0) else {
            self.ledger
                .fail("dma_alloc", format_args!("{pages} pages asked for"));
            return None;
        };
        let area = {
            let Ok(mut conn) = self.conn.try_borrow_mut() else {
                self.ledger
                    .fail("dma_alloc", "called inside a transport call");
                return None;
            };
            let (session, platform) = conn.parts();
            driver::share_pages(session, platform, count)
        };
        let area = match area {
            Ok(area) => area,
            Err(e) => {
                self.ledger.fail("dma_alloc", e);
                return None;
            }
        };
        let host = NonNull::from(Box::leak(vec![Page([0; PAGE]); pages].into_boxed_slice()));
        let bus = area.bus(0);
        self.ledger
            .regions
            .borrow_mut()
            .insert(bus, Region { host, area, bounce });
        Some((bus, host.cast()))
    }

    fn free(&self, bus: u64, host: NonNull<u8>, pages: usize) -> bool {
        let region = {
            let mut regions = self.ledger.regions.borrow_mut();
            match regions.get(&bus) {
                Some(r) if r.host.cast::<u8>() == host && r.host.len() == pages => {
                    regions.remove(&bus)
                }
                _ => None,
            }
        };
        let Some(region) = region else {
            self.ledger.fail(
                "dma free",
                format_args!("no region at bus address {bus:#x}"),
            );
            return false;
        };
        // The region is out of the ledger: the copies no longer touch either side of it.
        let unshared = match self.conn.try_borrow_mut() {
            Ok(mut conn) => {
                let (session, platform) = conn.parts();
                session.unshare(&region.area).map(|()| {
                    platform.free_pages(region.area.pa, region.area.pages);
                })
            }
            Err(_) => {
                self.ledger
                    .fail("dma free", "called inside a transport call");
                Ok(())
            }
        };
        if let Err(e) = unshared {
            self.ledger
                .fail("dma free", format_args!("area {}: {e}", region.area.id));
        }
        // SAFETY: `region.host` came from `Box::leak` of a `Box<[Page]>` in `alloc`, is taken
        // back once (it just left the ledger, so no copy reaches it any more), and the driver
        // gave it up: `dma_dealloc` and `unshare` are called with memory it no longer uses.
        drop(unsafe { Box::from_raw(region.host.as_ptr()) });
        self.release_if_idle();
        true
    }

    fn ledger(&self) -> &Ledger {
        &self.ledger
    }
}

/// A bus session that runs virtio-drivers' drivers: hands out [`VmsgTransport`]s for its
/// devices and binds this thread's [`VmsgHal`] to its memory. Open one per thread at a time.
pub struct ThirdParty<C: Conduit + 'static> {
    shared: Rc<Shared<C>>,
}

impl ThirdParty<InlineConduit> {
    /// Opens a session from a new endpoint `vm` of `sys` (see [`open`](Self::open)).
    pub fn inline(
        sys: &InlineSystem,
        vm: u16,
        dialect: Dialect,
        notify: bool,
    ) -> Result<Self, HostError> {
        let endpoint = sys.world().add_vm(vm);
        let conduit = sys.conduit(&endpoint);
        Self::open(conduit, endpoint, sys.sp_id(), dialect, notify)
    }
}

impl<C: Conduit + 'static> ThirdParty<C> {
    /// Opens a bus session from `endpoint` over `conduit` to partition `sp_id` and binds this
    /// thread's [`VmsgHal`] to it. A G2 session shares its DMA pool first, as the G2 Linux
    /// driver does at bus probe. Fails if another session is bound on this thread.
    pub fn open(
        conduit: C,
        endpoint: VmEndpoint,
        sp_id: u16,
        dialect: Dialect,
        notify: bool,
    ) -> Result<Self, HostError> {
        Self::open_with(conduit, endpoint, sp_id, dialect, notify, true)
    }

    /// The same without the G2 DMA pool: the G2 Linux driver built without it, whose rings
    /// could only be raw physical addresses. The partition refuses its FEATURES_OK.
    pub fn open_unpooled(
        conduit: C,
        endpoint: VmEndpoint,
        sp_id: u16,
        dialect: Dialect,
        notify: bool,
    ) -> Result<Self, HostError> {
        Self::open_with(conduit, endpoint, sp_id, dialect, notify, false)
    }

    fn open_with(
        conduit: C,
        endpoint: VmEndpoint,
        sp_id: u16,
        dialect: Dialect,
        notify: bool,
        pool: bool,
    ) -> Result<Self, HostError> {
        if PORT.with(|p| p.borrow().is_some()) {
            return Err(HostError::Device(
                "another third-party session is bound to this thread",
            ));
        }
        let ledger = Rc::new(Ledger {
            endpoint: endpoint.clone(),
            regions: RefCell::new(BTreeMap::new()),
            failures: RefCell::new(Vec::new()),
            scratch: RefCell::new(Vec::new()),
        });
        let conduit = CoherentConduit {
            inner: conduit,
            sp_id,
            ledger: ledger.clone(),
        };
        let mut conn = crate::sim::open_over(
            conduit,
            endpoint,
            sp_id,
            dialect,
            crate::session::Modes::from_notify(dialect, notify),
        )?;
        if pool {
            conn.share_dma_pool()?;
        }
        let info = conn.session().info();
        let shared = Rc::new(Shared {
            conn: RefCell::new(conn),
            ledger,
            info,
            pending: RefCell::new(Vec::new()),
            handles: Cell::new(1),
            written: RefCell::new(BTreeMap::new()),
        });
        let port: Rc<dyn Port> = shared.clone();
        PORT.with(|p| *p.borrow_mut() = Some(port));
        Ok(Self { shared })
    }

    /// The devices the partition offers.
    pub fn devices(&self) -> Result<Vec<DeviceSummary>, HostError> {
        self.with_connection(|conn| conn.list_devices())
    }

    /// A transport for device `dev_num` (after GET_DEVICE_INFO): hand it to a virtio-drivers
    /// driver with [`VmsgHal`].
    pub fn transport(&self, dev_num: u16) -> Result<VmsgTransport<C>, HostError> {
        let layout = self.shared.info.dialect.layout();
        let max_size = self.with_connection(|conn| Channel::max_size(&*conn.session()));
        let channel = SharedChannel {
            shared: self.shared.clone(),
            max_size,
        };
        let mut client = DeviceClient::new(channel, dev_num, layout)?;
        let info = client.get_device_info()?;
        let device_type = DeviceType::try_from(info.device_id)
            .map_err(|_| HostError::Device("a device type virtio-drivers does not know"))?;
        self.shared.handles.set(self.shared.handles.get() + 1);
        Ok(VmsgTransport {
            shared: self.shared.clone(),
            client: RefCell::new(client),
            dev_num,
            device_type,
            config_size: info.config_size,
            offered: 0,
            used_rings: BTreeMap::new(),
            broken: Cell::new(false),
        })
    }

    /// Runs `f` on the connection (its direct requests keep the regions coherent).
    pub fn with_connection<R>(&self, f: impl FnOnce(&mut CoherentConnection<C>) -> R) -> R {
        f(&mut self.shared.conn.borrow_mut())
    }

    /// Every failure met so far where a trait gave no error path (should stay empty).
    pub fn failures(&self) -> Vec<Failure> {
        self.shared.ledger.failures.borrow().clone()
    }

    /// DMA regions and bounce buffers alive (each one a shared area).
    pub fn live_regions(&self) -> usize {
        self.shared.ledger.regions.borrow().len()
    }

    /// Frees the bounce buffers no driver will unshare: virtio-drivers drops a queue with its
    /// buffers still in it (a vsock rx queue always has some) without unsharing them. Call it
    /// once every driver of the session is dropped (their devices reset, so nothing uses the
    /// buffers any more); with a transport alive it frees nothing. Returns how many it freed.
    pub fn free_stranded_bounce_buffers(&self) -> usize {
        if self.shared.handles.get() != 1 {
            return 0;
        }
        let stranded: Vec<(u64, NonNull<u8>, usize)> = self
            .shared
            .ledger
            .regions
            .borrow()
            .iter()
            .filter(|(_, r)| r.bounce)
            .map(|(&bus, r)| (bus, r.host.cast::<u8>(), r.host.len()))
            .collect();
        stranded
            .into_iter()
            .filter(|&(bus, host, pages)| self.shared.free(bus, host, pages))
            .count()
    }

    /// The negotiated bus parameters.
    pub fn info(&self) -> BusInfo {
        self.shared.info
    }

    /// The features the driver of device `dev_num` last wrote (SET_DRIVER_FEATURES, with the
    /// ACCESS_PLATFORM bit the adapter adds), if it wrote any: which ring features
    /// virtio-drivers took up.
    pub fn driver_features(&self, dev_num: u16) -> Option<u64> {
        self.shared.written.borrow().get(&dev_num).copied()
    }
}

impl<C: Conduit + 'static> Drop for ThirdParty<C> {
    fn drop(&mut self) {
        self.shared.leave();
    }
}

/// The client's channel: the session, borrowed for each exchange.
struct SharedChannel<C: Conduit> {
    shared: Rc<Shared<C>>,
    max_size: usize,
}

impl<C: Conduit> SharedChannel<C> {
    fn with_session<R>(
        &self,
        f: impl FnOnce(&mut BusSession<CoherentConduit<C>>) -> Result<R, ChannelError>,
    ) -> Result<R, ChannelError> {
        let mut conn = self
            .shared
            .conn
            .try_borrow_mut()
            .map_err(|_| ChannelError::Failed)?;
        f(conn.session())
    }
}

impl<C: Conduit> Channel for SharedChannel<C> {
    fn exchange(&mut self, request: &[u8], response: &mut [u8]) -> Result<usize, ChannelError> {
        self.with_session(|s| Channel::exchange(s, request, response))
    }

    fn notify(&mut self, event: &[u8]) -> Result<(), ChannelError> {
        self.with_session(|s| Channel::notify(s, event))
    }

    fn max_size(&self) -> usize {
        self.max_size
    }
}

/// virtio-drivers' [`Transport`] for one device of a [`ThirdParty`] session, over the
/// virtio-msg client. Dropping it resets the device, so that the device stops using the
/// driver's memory before the driver frees it.
pub struct VmsgTransport<C: Conduit + 'static> {
    shared: Rc<Shared<C>>,
    client: RefCell<DeviceClient<SharedChannel<C>>>,
    dev_num: u16,
    device_type: DeviceType,
    /// Bytes of configuration space (GET_DEVICE_INFO).
    config_size: u32,
    /// What the device offered at the last read.
    offered: u64,
    /// Bus address of each configured queue's used ring.
    used_rings: BTreeMap<u16, u64>,
    /// A failure the driver could not be told of: the device is treated as gone.
    broken: Cell<bool>,
}

impl<C: Conduit + 'static> VmsgTransport<C> {
    /// The device number.
    pub fn dev_num(&self) -> u16 {
        self.dev_num
    }

    /// Whether a failure made the transport give up on the device.
    pub fn is_broken(&self) -> bool {
        self.broken.get()
    }

    fn fail(&self, op: &'static str, detail: impl fmt::Display) {
        self.broken.set(true);
        self.shared.ledger.fail(op, detail);
    }

    /// The used ring index of `queue` as the device last wrote it (its simulator copy).
    fn used_idx(&self, queue: u16) -> Option<u16> {
        let ring = *self.used_rings.get(&queue)?;
        let pa = self.shared.ledger.sim_address(ring + 2, 2)?;
        let mut idx = [0u8; 2];
        self.shared.ledger.endpoint.read(pa, &mut idx).ok()?;
        Some(u16::from_le_bytes(idx))
    }

    /// After a notify: waits the way the dialect's driver does until `queue`'s used index
    /// moves from `before`, at most [`MAX_WAITS`] times.
    fn wait_for_device(&self, queue: u16, before: u16) {
        for _ in 0..MAX_WAITS {
            if self.used_idx(queue) != Some(before) {
                return;
            }
            let waited = {
                let mut conn = self.shared.conn.borrow_mut();
                let (session, platform) = conn.parts();
                driver::wait_events(session, platform, self.dev_num, u32::from(queue))
            };
            match waited {
                Ok(events) => self.shared.stash(events),
                Err(e) => {
                    self.fail("notify", e);
                    break;
                }
            }
        }
        if self.used_idx(queue) == Some(before) {
            panic!(
                "virtio-msg device {} returned nothing on queue {queue} after {MAX_WAITS} waits \
                 (failures: {:?}); virtio-drivers would spin on its used ring for ever",
                self.dev_num,
                self.shared.ledger.failures.borrow()
            );
        }
    }
}

impl<C: Conduit + 'static> Drop for VmsgTransport<C> {
    fn drop(&mut self) {
        if let Err(e) = self.client.get_mut().reset() {
            self.shared.ledger.fail("reset on drop", e);
        }
        self.shared.leave();
    }
}

/// Whether queue `queue` of a `device_type` device is one whose buffers the device keeps until
/// it has something to put there (vsock's rx and event queues; the console's receiveq, which
/// `VirtIOConsole` refills whenever its buffer is used up): virtio-drivers posts them and
/// notifies without waiting, and the device rightly returns nothing, so a notify of such a
/// queue does not wait for the device either.
fn holds_buffers(device_type: DeviceType, queue: u16) -> bool {
    matches!(
        (device_type, queue),
        (DeviceType::Socket, 0 | 2) | (DeviceType::Console, 0)
    )
}

/// A config access error as virtio-drivers names it (`config_size` from GET_DEVICE_INFO).
fn config_error(e: DriverError, config_size: u32) -> virtio_drivers::Error {
    match e {
        DriverError::ConfigOutOfRange { .. } if config_size == 0 => {
            virtio_drivers::Error::ConfigSpaceMissing
        }
        DriverError::ConfigOutOfRange { .. } => virtio_drivers::Error::ConfigSpaceTooSmall,
        _ => virtio_drivers::Error::IoError,
    }
}

impl<C: Conduit + 'static> Transport for VmsgTransport<C> {
    fn device_type(&self) -> DeviceType {
        self.device_type
    }

    /// GET_DEVICE_FEATURES, blocks 0 and 1 (the trait carries 64 bits).
    fn read_device_features(&mut self) -> u64 {
        match self.client.get_mut().device_features() {
            Ok(f) => {
                self.offered = f;
                f
            }
            Err(e) => {
                self.fail("read_device_features", e);
                0
            }
        }
    }

    /// SET_DRIVER_FEATURES of the driver's features, plus VIRTIO_F_ACCESS_PLATFORM when the
    /// device offers it: virtio-drivers never accepts it, but the device sees bus addresses,
    /// not physical ones, and that is what the bit says (the virtio spec's driver SHOULD
    /// accept it when offered; Linux's transports keep it in `vring_transport_features`).
    fn write_driver_features(&mut self, driver_features: u64) {
        let features = driver_features | (self.offered & VIRTIO_F_ACCESS_PLATFORM);
        self.shared
            .written
            .borrow_mut()
            .insert(self.dev_num, features);
        if let Err(e) = self.client.get_mut().set_driver_features(features) {
            self.fail("write_driver_features", e);
        }
    }

    /// GET_VQUEUE's max size; 0 (no such queue) once the transport is broken.
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        if self.broken.get() {
            return 0;
        }
        match self.client.get_mut().get_vqueue(u32::from(queue)) {
            Ok(q) => q.max_size,
            Err(e) => {
                self.fail("max_queue_size", e);
                0
            }
        }
    }

    /// EVENT_AVAIL; then, if the device has not used a buffer yet, the dialect's wait (G3:
    /// EVENT_POLL, after the notification if one is configured; G2: another kick), until it
    /// has — except for a queue whose buffers the device holds until it has something to
    /// say (vsock's rx and event queues, the console's receiveq), where the driver does not
    /// wait either.
    ///
    /// # Panics
    ///
    /// If the device returns nothing after `MAX_WAITS` (64) waits: the driver would spin for
    /// ever.
    fn notify(&mut self, queue: u16) {
        let before = self.used_idx(queue);
        if let Err(e) = self.client.get_mut().notify_avail(u32::from(queue)) {
            self.fail("notify", e);
        }
        if holds_buffers(self.device_type, queue) {
            return;
        }
        if let Some(before) = before {
            self.wait_for_device(queue, before);
        }
    }

    fn get_status(&self) -> DeviceStatus {
        match self.client.borrow_mut().get_status() {
            Ok(s) => DeviceStatus::from_bits_retain(s),
            Err(e) => {
                self.fail("get_status", e);
                DeviceStatus::DEVICE_NEEDS_RESET
            }
        }
    }

    /// SET_DEVICE_STATUS. 0 is a reset, confirmed by reading the status until it is 0. Bits the
    /// device did not take (FEATURES_OK refused, DRIVER_OK refused) are a failure: the driver
    /// does not read the status back.
    fn set_status(&mut self, status: DeviceStatus) {
        let client = self.client.get_mut();
        if status.is_empty() {
            if let Err(e) = client.reset() {
                self.fail("reset", e);
            }
            return;
        }
        match client.set_status(status.bits()) {
            Ok(got) if got & status.bits() == status.bits() => {}
            Ok(got) => self.fail(
                "set_status",
                format_args!("asked for {:#x}, the device took {got:#x}", status.bits()),
            ),
            Err(e) => self.fail("set_status", e),
        }
    }

    fn set_guest_page_size(&mut self, _guest_page_size: u32) {}

    fn requires_legacy_layout(&self) -> bool {
        false
    }

    /// SET_VQUEUE with the rings' bus addresses, confirmed by GET_VQUEUE read-back.
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        let Ok(size) = u16::try_from(size) else {
            self.fail("queue_set", format_args!("queue size {size}"));
            return;
        };
        let config = QueueConfig {
            size,
            desc_addr: descriptors,
            driver_addr: driver_area,
            device_addr: device_area,
        };
        match self.client.get_mut().set_vqueue(u32::from(queue), config) {
            Ok(()) => {
                self.used_rings.insert(queue, device_area);
            }
            Err(e) => self.fail("queue_set", e),
        }
    }

    /// RESET_VQUEUE (virtio-drivers sends it on teardown, RING_RESET or not).
    fn queue_unset(&mut self, queue: u16) {
        self.used_rings.remove(&queue);
        if let Err(e) = self.client.get_mut().reset_vqueue(u32::from(queue)) {
            self.fail("queue_unset", e);
        }
    }

    /// GET_VQUEUE's enabled flag; in use once the transport is broken.
    fn queue_used(&mut self, queue: u16) -> bool {
        if self.broken.get() {
            return true;
        }
        match self.client.get_mut().get_vqueue(u32::from(queue)) {
            Ok(q) => q.enabled,
            Err(e) => {
                self.fail("queue_used", e);
                true
            }
        }
    }

    /// G3: EVENT_POLL until empty, and whether an EVENT_USED or EVENT_CONFIG for this device
    /// came (now or at an earlier wait). G2 has no event path: always "a queue interrupt", so
    /// the driver looks at its used ring.
    fn ack_interrupt(&mut self) -> InterruptStatus {
        if self.shared.info.dialect == Dialect::G2 {
            return InterruptStatus::QUEUE_INTERRUPT;
        }
        let drained = self.shared.conn.borrow_mut().session().drain_events();
        match drained {
            Ok(events) => self.shared.stash(events),
            Err(e) => self.fail("ack_interrupt", e),
        }
        let mut status = InterruptStatus::empty();
        self.shared.pending.borrow_mut().retain(|e| match *e {
            Event::Used { dev, .. } if dev == self.dev_num => {
                status |= InterruptStatus::QUEUE_INTERRUPT;
                false
            }
            Event::Config { dev, .. } if dev == self.dev_num => {
                status |= InterruptStatus::DEVICE_CONFIGURATION_INTERRUPT;
                false
            }
            _ => true,
        });
        status
    }

    /// The generation of a one-byte GET_CONFIG at offset 0 (virtio-msg has no message for the
    /// generation alone, and leaves a zero-length GET_CONFIG undefined); a device without
    /// configuration space has no generation to follow: the last one seen.
    fn read_config_generation(&self) -> u32 {
        let mut client = self.client.borrow_mut();
        if self.config_size == 0 {
            return client.generation();
        }
        match client.get_config(0, &mut [0u8]) {
            Ok(generation) => generation,
            Err(e) => {
                let last = client.generation();
                drop(client);
                self.fail("read_config_generation", e);
                last
            }
        }
    }

    fn read_config_space<T: FromBytes + IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<T> {
        let offset = u32::try_from(offset).map_err(|_| virtio_drivers::Error::InvalidParam)?;
        let mut value = T::new_zeroed();
        self.client
            .borrow_mut()
            .get_config(offset, value.as_mut_bytes())
            .map_err(|e| config_error(e, self.config_size))?;
        Ok(value)
    }

    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> virtio_drivers::Result<()> {
        let offset = u32::try_from(offset).map_err(|_| virtio_drivers::Error::InvalidParam)?;
        self.client
            .get_mut()
            .set_config(offset, value.as_bytes())
            .map_err(|e| config_error(e, self.config_size))
    }
}

/// virtio-drivers' [`Hal`] over memory shared with the partition, for the [`ThirdParty`]
/// session open on this thread (see the [module docs](self)). Every region is host pages plus
/// simulator pages shared as an area of their own; the [`PhysAddr`] is the area's bus address.
pub struct VmsgHal;

/// The session this thread's [`VmsgHal`] works for.
fn port() -> Option<Rc<dyn Port>> {
    PORT.with(|p| p.borrow().clone())
}

// SAFETY: each method meets its "implementation safety" requirement, as its doc says.
unsafe impl Hal for VmsgHal {
    /// A new region: zeroed simulator pages shared as a new area (its bus address is the
    /// `PhysAddr`, never 0: area 0 is never shared), and zeroed host pages. `(0, dangling)` if
    /// that fails (virtio-drivers turns it into `DmaError`).
    ///
    /// # Implementation Safety
    ///
    /// The pointer is the start of a fresh `Box<[Page]>` of `pages` pages, leaked, so valid and
    /// aligned to 4096, zeroed, and aliased by nothing until `dma_dealloc` takes it back; the
    /// ledger keeps a copy only for the coherence copies, which run while the driver does not.
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        port()
            .and_then(|p| p.alloc(pages, false))
            .unwrap_or((0, NonNull::dangling()))
    }

    /// AREA_UNSHARE and FFA_MEM_RECLAIM of the region's area, then its host pages are freed.
    /// -1 for memory this Hal did not hand out.
    ///
    /// # Implementation Safety
    ///
    /// Frees only the region `dma_alloc` returned at `paddr` with `vaddr` and `pages`.
    unsafe fn dma_dealloc(paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        match port() {
            Some(p) if p.free(paddr, vaddr, pages) => 0,
            _ => -1,
        }
    }

    /// Never called: virtio-msg has no MMIO (only the PCI transport asks).
    ///
    /// # Implementation Safety
    ///
    /// Returns nothing: it panics.
    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        panic!("virtio-msg has no MMIO: asked for {size:#x} bytes at {paddr:#x}")
    }

    /// A bounce region of the buffer's size (rounded up to pages), with the buffer copied in
    /// when the device may read it; its bus address. 0 if that fails (the device then finds
    /// the buffer outside shared memory and fails the request).
    ///
    /// # Implementation Safety
    ///
    /// Reads `buffer` (valid, by the caller's contract) into memory of its own.
    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let Some(port) = port() else {
            log::warn!("virtio-drivers adapter: share with no session bound to this thread");
            return 0;
        };
        let len = buffer.len();
        let Some((bus, host)) = port.alloc(len.div_ceil(PAGE), true) else {
            return 0;
        };
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: the caller guarantees `buffer` is valid for `len` bytes and not accessed
            // by anyone else during this call; `host` is a fresh region of at least `len`
            // bytes (whole pages), a separate allocation.
            unsafe { ptr::copy_nonoverlapping(buffer.cast::<u8>().as_ptr(), host.as_ptr(), len) };
        }
        bus
    }

    /// Copies the bounce region back into the buffer when the device may have written it (its
    /// host copy holds what the device wrote: the answer that completed the buffer was the
    /// last switch), then frees the region as `dma_dealloc` does.
    ///
    /// # Implementation Safety
    ///
    /// Writes only `buffer` (valid, by the caller's contract), from memory of its own.
    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let Some(port) = port() else {
            log::warn!("virtio-drivers adapter: unshare with no session bound to this thread");
            return;
        };
        let len = buffer.len();
        let Some(host) = port.ledger().host_of(paddr, len) else {
            port.ledger()
                .fail("unshare", format_args!("no bounce region at {paddr:#x}"));
            return;
        };
        if direction != BufferDirection::DriverToDevice {
            // SAFETY: the caller guarantees `buffer` is valid for `len` bytes and not accessed
            // by anyone else during this call; `host` is a live region of at least `len` bytes
            // (checked by `host_of`), a separate allocation.
            unsafe { ptr::copy_nonoverlapping(host.as_ptr(), buffer.cast::<u8>().as_ptr(), len) };
        }
        port.free(paddr, host, len.div_ceil(PAGE));
    }
}
