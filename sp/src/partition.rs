//! The partition core: per-endpoint bus instances, the device registry and the message loop.
//!
//! The same code runs in the real partition (over `smc`) and in the simulated FF-A world: it
//! only talks FF-A through [`ffa::Ffa`] and reaches normal-world memory through an
//! [`ffa::memory::NsMapper`].

use alloc::{sync::Arc, vec::Vec};

use virtio_msg::device::EndpointStats;

use zerocopy::IntoBytes;

use crate::{
    quota::{EndpointQuota, QuotaMapper},
    registry::DeviceFactory,
};
use ffa::{
    Conduit, Ffa, VIRTIO_MSG_DEVICE_UUID,
    arm_ffa::{
        Interface,
        interface_args::{DirectMsg2Args, DirectMsgArgs, VmAvailabilityStatus},
    },
    bus::{self, BusConfig, BusInstance, BusServices, FfaServices, MAX_MSG_SIZE, Reply},
    indirect,
    memory::{MapError, NsMapper},
};

/// Most driver endpoints served at once (Hafnium supports 16 VMs).
///
/// Slot policy: an endpoint gets a slot (a bus instance) with its first request. When all are
/// taken, the slot of the least recently served endpoint that holds nothing — no shared area
/// and every device reset (status 0) — is given to the newcomer (that endpoint starts afresh
/// if it comes back); if every endpoint holds something, the newcomer is refused with the
/// ERROR frame. A VM-destroyed message frees a slot at once.
pub const MAX_ENDPOINTS: usize = 16;

// Every endpoint's share of the mapping window fits beside all the others'.
const _: () = assert!(
    crate::quota::ENDPOINT_MAX_BYTES * MAX_ENDPOINTS as u64 <= crate::mmu::NS_WINDOW_SIZE as u64
        && crate::quota::ENDPOINT_MAX_MAPPINGS * MAX_ENDPOINTS <= crate::mmu::MAX_NS_MAPPINGS
);

pub use crate::headroom::ENDPOINT_HEAP_BYTES;

/// The stage-1 mapper shared by the partition's execution contexts: mapping and unmapping
/// take it exclusively, reads and writes of mapped memory share it (so that contexts copy in
/// parallel). Used as `&SharedMapper`, which is an [`NsMapper`].
pub struct SharedMapper<M>(spin::RwLock<M>);

impl<M> SharedMapper<M> {
    /// Shares `mapper`.
    pub fn new(mapper: M) -> Self {
        Self(spin::RwLock::new(mapper))
    }
}

impl<M: NsMapper> NsMapper for &SharedMapper<M> {
    fn map(&mut self, range: ffa::memory::MemRange, writable: bool) -> Result<u64, MapError> {
        self.0.write().map(range, writable)
    }
    fn unmap(&mut self, base: u64, page_count: u32) {
        self.0.write().unmap(base, page_count);
    }
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MapError> {
        self.0.read().read(addr, buf)
    }
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MapError> {
        self.0.read().write(addr, data)
    }
}

/// One endpoint's state: its bus instance, its share of the mapping window, and how many
/// requests it sent by indirect message.
struct Endpoint {
    instance: BusInstance,
    quota: EndpointQuota,
    /// Requests it sent by FFA_MSG_SEND2 (the first is logged).
    indirect_requests: u64,
    /// Push attempts in a row that left events waiting (its driver's RX buffer full): what
    /// the retry timer backs off by, and stops at ([`MAX_PUSH_RETRIES`]).
    push_retries: u8,
    /// Times the retry timer was armed for it (the first is logged).
    timer_arms: u64,
}

impl Endpoint {
    /// Holds nothing worth keeping: no area, every device reset.
    fn holds_nothing(&self) -> bool {
        self.instance.areas().is_empty()
            && (0..self.instance.device_count()).all(|d| {
                u16::try_from(d)
                    .ok()
                    .and_then(|d| self.instance.device(d))
                    .is_none_or(|t| t.status() == 0)
            })
    }
}

/// Which endpoint each slot serves, and when each was last served (the clock of the slot
/// policy). Locked only to find or assign a slot, never while a request is served.
#[derive(Default)]
struct SlotTable {
    vm: [Option<u16>; MAX_ENDPOINTS],
    last_served: [u64; MAX_ENDPOINTS],
    /// Requests routed so far.
    served: u64,
}

impl SlotTable {
    fn find(&self, vm: u16) -> Option<usize> {
        self.vm.iter().position(|v| *v == Some(vm))
    }
}

/// A slot's lock, held while its endpoint is served.
type SlotGuard<'a> = spin::MutexGuard<'a, Option<Endpoint>>;

/// The partition: one [`BusInstance`] per calling endpoint, created on first contact, shared
/// by the partition's execution contexts (one per CPU in an MP partition).
///
/// Locking: each endpoint slot has its own lock, held while one of its requests is served, so
/// that contexts serving different endpoints run in parallel and a second CPU of the same
/// endpoint waits for the first (it never gets BUSY). The slot table is locked only to find or
/// assign a slot, the RX/TX buffers ([`bus::Mailbox`]) only for each exchange that uses them.
/// Order: slot table, then a slot, then the mailbox, then the mapper; a context never waits for
/// the table while it holds a slot.
pub struct Partition<F: DeviceFactory> {
    own_id: u16,
    factory: spin::Mutex<F>,
    config: BusConfig,
    table: spin::Mutex<SlotTable>,
    /// [`MAX_ENDPOINTS`] slots, made at construction, so that admitting an endpoint never
    /// grows anything.
    slots: Vec<spin::Mutex<Option<Endpoint>>>,
    /// Instances of destroyed endpoints that still hold memory whose relinquish failed: kept
    /// (never forgotten while retrieved) and retried with every message until empty.
    draining: spin::Mutex<Vec<BusInstance>>,
    /// The RX/TX buffers, and an indirect message set aside while a retrieve needed them.
    mailbox: bus::Mailbox,
}

/// Most indirect messages served from the stash after one request.
const MAX_STASHED: usize = 4;

/// Times a request looks its endpoint's slot up again when the slot changed hands between
/// the lookup and the lock (another context gave it to a newcomer meanwhile).
const ROUTE_TRIES: usize = 4;

impl<F: DeviceFactory> Partition<F> {
    /// A partition with endpoint id `own_id` whose devices come from `factory`.
    pub fn new(own_id: u16, factory: F, config: BusConfig) -> Self {
        Self {
            own_id,
            factory: spin::Mutex::new(factory),
            config,
            table: spin::Mutex::new(SlotTable::default()),
            slots: (0..MAX_ENDPOINTS).map(|_| spin::Mutex::new(None)).collect(),
            draining: spin::Mutex::new(Vec::with_capacity(MAX_ENDPOINTS)),
            mailbox: bus::Mailbox::default(),
        }
    }

    /// This partition's endpoint id.
    pub fn own_id(&self) -> u16 {
        self.own_id
    }

    /// The RX/TX buffers' lock (see [`bus::Mailbox`]).
    pub fn mailbox(&self) -> &bus::Mailbox {
        &self.mailbox
    }

    /// Runs `f` on the bus instance of endpoint `vm`, if it has talked to us (waits while
    /// another context serves it).
    pub fn with_instance<R>(&self, vm: u16, f: impl FnOnce(&BusInstance) -> R) -> Option<R> {
        self.with_endpoint(vm, |e| f(&e.instance))
    }

    /// What endpoint `vm` has mapped now (bytes, mappings), if it has talked to us.
    pub fn mapped(&self, vm: u16) -> Option<(u64, usize)> {
        self.with_endpoint(vm, |e| (e.quota.bytes(), e.quota.mappings()))
    }

    /// Runs `f` on the state of endpoint `vm`, if it has talked to us (waits while another
    /// context serves it).
    fn with_endpoint<R>(&self, vm: u16, f: impl FnOnce(&Endpoint) -> R) -> Option<R> {
        let slot = self.table.lock().find(vm)?;
        let guard = self.slots.get(slot)?.lock();
        guard.as_ref().filter(|e| e.instance.vm() == vm).map(f)
    }

    /// The slot of endpoint `src`, locked, for a request for service `uuid`; or the answer
    /// refusing it (another service; no slot).
    fn route(
        &self,
        src: u16,
        uuid: ffa::arm_ffa::Uuid,
        frame: &[u8],
    ) -> Result<SlotGuard<'_>, [u64; bus::PAYLOAD_REGS]> {
        if uuid != VIRTIO_MSG_DEVICE_UUID && !uuid.is_nil() {
            log::debug!("direct request from {src:#x} for unknown service {uuid}");
            return Err(bus::refusal(frame));
        }
        self.admit(src).ok_or_else(|| bus::refusal(frame))
    }

    /// The slot of `src`, locked, made on first contact (see [`MAX_ENDPOINTS`] for the slot
    /// policy); `None` if there is no slot for it.
    fn admit(&self, src: u16) -> Option<SlotGuard<'_>> {
        for _ in 0..ROUTE_TRIES {
            let slot = {
                let mut table = self.table.lock();
                table.served = table.served.wrapping_add(1);
                let served = table.served;
                let slot = match table.find(src) {
                    Some(slot) => slot,
                    None => return self.new_slot(&mut table, src),
                };
                if let Some(t) = table.last_served.get_mut(slot) {
                    *t = served;
                }
                slot
            };
            // The table is not held while waiting for the slot: another context may be
            // serving this endpoint (its other CPU).
            let guard = self.slots.get(slot)?.lock();
            if guard.as_ref().is_some_and(|e| e.instance.vm() == src) {
                return Some(guard);
            }
        }
        log::warn!("endpoint {src:#x}: its slot kept changing hands; refused");
        None
    }

    /// Makes a slot for newcomer `src` (see [`MAX_ENDPOINTS`]) and returns it locked; `None`
    /// if there is no free slot, no idle one to take over, or no heap for its instance.
    fn new_slot(&self, table: &mut SlotTable, src: u16) -> Option<SlotGuard<'_>> {
        // A free slot: nobody's in the table and nothing in it (a destroyed endpoint's slot
        // holds its instance until the instance is dealt with).
        let free = (0..MAX_ENDPOINTS).find_map(|i| {
            if table.vm.get(i).copied().flatten().is_some() {
                return None;
            }
            let guard = self.slots.get(i)?.try_lock()?;
            guard.is_none().then_some((i, guard))
        });
        let (slot, mut guard) = match free {
            Some(found) => found,
            None => {
                // The least recently served endpoint holding nothing, and not being served.
                let idle = (0..MAX_ENDPOINTS)
                    .filter(|&i| {
                        self.slots
                            .get(i)
                            .and_then(|s| s.try_lock())
                            .is_some_and(|g| g.as_ref().is_some_and(Endpoint::holds_nothing))
                    })
                    .min_by_key(|&i| table.last_served.get(i).copied().unwrap_or(0));
                let taken = idle.and_then(|i| {
                    let guard = self.slots.get(i)?.try_lock()?;
                    guard
                        .as_ref()
                        .is_some_and(Endpoint::holds_nothing)
                        .then_some((i, guard))
                });
                let Some((slot, mut guard)) = taken else {
                    log::warn!("no room for a bus instance for endpoint {src:#x}");
                    return None;
                };
                if let Some(gone) = guard.take() {
                    log::info!(
                        "endpoint {:#x} holds nothing: its slot goes to {src:#x}",
                        gone.instance.vm()
                    );
                }
                if let Some(v) = table.vm.get_mut(slot) {
                    *v = None;
                }
                (slot, guard)
            }
        };
        if !crate::headroom::available(ENDPOINT_HEAP_BYTES) {
            log::warn!("no heap for a bus instance for endpoint {src:#x}: refused");
            return None;
        }
        let stats = Arc::new(EndpointStats::new());
        let devices = self.factory.lock().create(src, &stats);
        log::info!(
            "endpoint {src:#x}: new bus instance with {} devices",
            devices.len()
        );
        *guard = Some(Endpoint {
            instance: BusInstance::new(src, devices, self.config).with_stats(stats),
            quota: EndpointQuota::default(),
            indirect_requests: 0,
            push_retries: 0,
            timer_arms: 0,
        });
        let served = table.served;
        if let (Some(v), Some(t)) = (table.vm.get_mut(slot), table.last_served.get_mut(slot)) {
            *v = Some(src);
            *t = served;
        }
        Some(guard)
    }

    /// Number of endpoints with state here.
    pub fn endpoints(&self) -> usize {
        self.table.lock().vm.iter().flatten().count()
    }

    /// Handles one FFA_MSG_SEND_DIRECT_REQ2 payload from `src` for service `uuid`; returns
    /// the DIRECT_RESP2 payload. Every request gets one: a request for another service, or
    /// from an endpoint beyond [`MAX_ENDPOINTS`], gets the bus ERROR frame
    /// ([`bus::refusal`]), never the busy sentinel (which would have a G3 driver retry
    /// forever).
    pub fn handle_req2(
        &self,
        src: u16,
        uuid: ffa::arm_ffa::Uuid,
        payload: &[u64; bus::PAYLOAD_REGS],
        services: &mut dyn BusServices,
    ) -> [u64; bus::PAYLOAD_REGS] {
        let frame = bus::regs_to_frame(payload);
        match self.route(src, uuid, &frame) {
            Ok(mut slot) => match slot.as_mut() {
                Some(endpoint) => answer_frame(&mut endpoint.instance, &frame, services),
                None => bus::refusal(&frame),
            },
            Err(refusal) => refusal,
        }
    }

    /// [`handle_req2`](Self::handle_req2) with the FF-A services of the message loop, the
    /// mapper limited to the endpoint's share of the mapping window ([`crate::quota`]).
    pub fn serve<C: Conduit, M: NsMapper>(
        &self,
        src: u16,
        uuid: ffa::arm_ffa::Uuid,
        payload: &[u64; bus::PAYLOAD_REGS],
        ffa: &mut Ffa<C>,
        mapper: &mut M,
    ) -> [u64; bus::PAYLOAD_REGS] {
        let frame = bus::regs_to_frame(payload);
        let mut slot = match self.route(src, uuid, &frame) {
            Ok(slot) => slot,
            Err(refusal) => return refusal,
        };
        let Some(endpoint) = slot.as_mut() else {
            return bus::refusal(&frame);
        };
        let mut quota_mapper = QuotaMapper {
            inner: &mut *mapper,
            quota: &mut endpoint.quota,
        };
        let mut services = FfaServices {
            ffa: &mut *ffa,
            mapper: &mut quota_mapper,
            own_id: self.own_id,
            mailbox: &self.mailbox,
        };
        let answer = answer_frame(&mut endpoint.instance, &frame, &mut services);
        // A message from the driver starts the attempts in a row again: each of its messages
        // buys at most MAX_PUSH_RETRIES timer retries.
        endpoint.push_retries = 0;
        if endpoint.instance.awaits_push() {
            arm_push_retry(endpoint, ffa);
        }
        drop(slot);
        self.serve_stashed(ffa, mapper);
        answer
    }

    /// Serves the indirect messages set aside while a retrieve needed the RX buffer (see
    /// [`bus::Stash`]), a bounded number of times (each may set another aside).
    fn serve_stashed<C: Conduit, M: NsMapper>(&self, ffa: &mut Ffa<C>, mapper: &mut M) {
        for _ in 0..MAX_STASHED {
            let mut copy = [0u8; INDIRECT_MAX];
            let Some(n) = self.mailbox.lock().take().map(|m| {
                let n = m.len().min(copy.len());
                if let Some(src) = m.get(..n) {
                    // Never refused: `n` is at most `copy.len()`.
                    let _ = src.write_to_prefix(&mut copy);
                }
                n
            }) else {
                return;
            };
            self.serve_indirect(copy.get(..n).unwrap_or_default(), ffa, mapper);
        }
    }

    /// Endpoint `vm` is gone: reset its devices, relinquish its memory, forget it.
    pub fn endpoint_destroyed(&self, vm: u16, services: &mut dyn BusServices) {
        // Out of the table first (no request finds it any more); its slot is not free while
        // the instance is still in it.
        let Some(slot) = ({
            let mut table = self.table.lock();
            let slot = table.find(vm);
            if let Some(v) = slot.and_then(|i| table.vm.get_mut(i)) {
                *v = None;
            }
            slot
        }) else {
            return;
        };
        let Some(mut guard) = self.slots.get(slot).map(|s| s.lock()) else {
            return;
        };
        if guard.as_ref().is_none_or(|e| e.instance.vm() != vm) {
            return;
        }
        log::info!("endpoint {vm:#x} destroyed: dropping its bus instance");
        let pending = guard.as_mut().map_or(0, |e| e.instance.reset(services));
        if pending == 0 {
            *guard = None;
            return;
        }
        let mut draining = self.draining.lock();
        if draining.try_reserve(1).is_ok() {
            log::warn!("endpoint {vm:#x}: memory not relinquished yet; retried later");
            if let Some(gone) = guard.take() {
                draining.push(gone.instance);
            }
            return;
        }
        drop(draining);
        // Never dropped while it holds memory: it keeps its slot (which the slot policy does
        // not take from an endpoint holding memory) until a reset succeeds.
        log::error!("endpoint {vm:#x}: memory not relinquished and no heap to track it");
        drop(guard);
        let mut table = self.table.lock();
        if table.find(vm).is_none()
            && let Some(v) = table.vm.get_mut(slot)
            && v.is_none()
        {
            *v = Some(vm);
        }
    }

    /// Instances of destroyed endpoints still holding memory (see
    /// [`endpoint_destroyed`](Self::endpoint_destroyed)).
    pub fn draining(&self) -> usize {
        self.draining.lock().len()
    }

    /// Retries the relinquish of what destroyed endpoints still hold; forgets an instance only
    /// once it holds nothing. Skipped while another context is at it.
    pub fn retry_draining(&self, services: &mut dyn BusServices) {
        if let Some(mut draining) = self.draining.try_lock() {
            draining.retain_mut(|instance| instance.reset(services) > 0);
        }
    }
}

/// The DIRECT_RESP2 payload `instance` answers `frame` with. Events the endpoint takes pushed
/// (indirect messages) go out before the response, while the partition still runs.
fn answer_frame(
    instance: &mut BusInstance,
    frame: &[u8],
    services: &mut dyn BusServices,
) -> [u64; bus::PAYLOAD_REGS] {
    let mut out = [0u8; MAX_MSG_SIZE];
    let reply = instance.handle(frame, &mut out, services);
    instance.push_events(services);
    match reply {
        Reply::Frame(n) => bus::frame_to_regs(out.get(..n).unwrap_or_default()),
        Reply::Busy => [0; bus::PAYLOAD_REGS],
    }
}

/// Largest indirect message the partition reads: the header and one bus frame.
const INDIRECT_MAX: usize = indirect::HEADER_SIZE + MAX_MSG_SIZE;

impl<F: DeviceFactory> Partition<F> {
    /// The partition was run (FFA_RUN) by the normal-world scheduler: if an indirect message
    /// waits in its RX buffer, serve it and answer with an indirect message to its sender;
    /// then push what events the endpoints' drivers take that way.
    ///
    /// The message is copied out of the RX buffer once, the buffer released, and only the copy
    /// is parsed (`ffa::indirect::parse`): a header whose offset overlaps it, whose size runs
    /// past what arrived or past one bus frame, or that is not for this partition, is dropped
    /// (logged): there is no request to answer. A request for another service gets the bus
    /// ERROR frame, as over direct messages. Events the driver sends (EVENT_AVAIL) get no
    /// answer: over indirect messages the driver expects none (the 8-byte acknowledgement
    /// exists because a direct request must have a response), and what they cause comes as
    /// pushed EVENT_USED. An answer the driver's RX buffer cannot take after
    /// [`bus::SEND_RETRIES`] tries is dropped (logged): the driver times out; the partition
    /// goes on.
    pub fn serve_run<C: Conduit, M: NsMapper>(&self, ffa: &mut Ffa<C>, mapper: &mut M) {
        let own_id = self.own_id;
        let mut copy = [0u8; INDIRECT_MAX];
        let taken = {
            let _mailbox = self.mailbox.lock();
            match ffa.rx_full_get(own_id, true) {
                Ok(true) => ffa.take_indirect(&mut copy).map(Some),
                Ok(false) => Ok(None),
                Err(e) => {
                    log::warn!("run: FFA_NOTIFICATION_GET of the framework bitmaps failed: {e}");
                    Ok(None)
                }
            }
        };
        match taken {
            Ok(Some(n)) => self.serve_indirect(copy.get(..n).unwrap_or_default(), ffa, mapper),
            Ok(None) => {}
            Err(e) => log::warn!("run: indirect message not taken: {e}"),
        }
        // Every endpoint's pushed events get another chance (a driver's RX buffer may be free
        // again); an endpoint another context is serving pushes its own after its answer.
        for slot in &self.slots {
            if let Some(mut guard) = slot.try_lock()
                && let Some(endpoint) = guard.as_mut()
            {
                push_for(endpoint, ffa, mapper, own_id, &self.mailbox);
            }
        }
        // A message that arrived while a retrieve needed the RX buffer.
        self.serve_stashed(ffa, mapper);
    }

    /// Serves one indirect message (a copy of the RX buffer's), see [`serve_run`].
    fn serve_indirect<C: Conduit, M: NsMapper>(
        &self,
        received: &[u8],
        ffa: &mut Ffa<C>,
        mapper: &mut M,
    ) {
        let own_id = self.own_id;
        let msg = match indirect::parse(received, MAX_MSG_SIZE) {
            Ok(m) if m.receiver == own_id => m,
            Ok(m) => {
                log::warn!(
                    "indirect message for {:#x}, not for us: dropped",
                    m.receiver
                );
                return;
            }
            Err(e) => {
                log::warn!("indirect message dropped: {e}");
                return;
            }
        };
        let src = msg.sender;
        let frame = msg.payload;
        let is_event = frame
            .get(1)
            .is_some_and(|id| virtio_msg::ids::is_event(*id));
        let mut routed = self.route(src, msg.uuid, frame);
        let (answer, uuid) = match routed.as_mut().map(|slot| slot.as_mut()) {
            Ok(Some(endpoint)) => {
                if endpoint.indirect_requests == 0 {
                    log::info!(
                        "vm {src:#x}: requests by FFA_MSG_SEND2 (run by FFA_RUN), answered by \
                         FFA_MSG_SEND2"
                    );
                }
                endpoint.indirect_requests = endpoint.indirect_requests.saturating_add(1);
                let mut mapper = QuotaMapper {
                    inner: &mut *mapper,
                    quota: &mut endpoint.quota,
                };
                let mut services = FfaServices {
                    ffa: &mut *ffa,
                    mapper: &mut mapper,
                    own_id,
                    mailbox: &self.mailbox,
                };
                let mut out = [0u8; MAX_MSG_SIZE];
                let reply = endpoint.instance.handle(frame, &mut out, &mut services);
                let uuid = endpoint
                    .instance
                    .indirect_uuid()
                    .unwrap_or(ffa::VIRTIO_MSG_DRIVER_UUID);
                match reply {
                    Reply::Frame(n) if !is_event => (Some((out, n)), uuid),
                    Reply::Frame(_) => (None, uuid),
                    // The busy sentinel is an all-zero direct response; an indirect message
                    // cannot carry it, so the driver is told the request failed instead.
                    Reply::Busy => (Some(refusal_frame(frame)), uuid),
                }
            }
            Ok(None) | Err(_) => (Some(refusal_frame(frame)), ffa::VIRTIO_MSG_DRIVER_UUID),
        };
        if let Some((out, n)) = answer {
            let mut services = FfaServices {
                ffa: &mut *ffa,
                mapper: &mut *mapper,
                own_id,
                mailbox: &self.mailbox,
            };
            if let Err(e) = services.send_indirect(src, uuid, out.get(..n).unwrap_or_default()) {
                log::warn!("answer to {src:#x} not sent ({e}): dropped");
            }
        }
        if let Ok(slot) = routed.as_mut()
            && let Some(endpoint) = slot.as_mut()
        {
            push_for(endpoint, ffa, mapper, own_id, &self.mailbox);
        }
    }
}

/// The bus ERROR frame refusing `frame`, as bytes.
fn refusal_frame(frame: &[u8]) -> ([u8; MAX_MSG_SIZE], usize) {
    let regs = bus::refusal(frame);
    let bytes = bus::regs_to_frame(&regs);
    let mut out = [0u8; MAX_MSG_SIZE];
    let n = virtio_msg::Header::parse(&bytes).map_or(0, |h| usize::from(h.msg_size));
    if let Some(src) = bytes.get(..n) {
        // Refused only past MAX_MSG_SIZE, as `get_mut(..n)` would be.
        let _ = src.write_to_prefix(&mut out);
    }
    (out, n.min(MAX_MSG_SIZE))
}

/// Pushes `endpoint`'s pending events (those its driver takes as indirect messages).
fn push_for<C: Conduit, M: NsMapper>(
    endpoint: &mut Endpoint,
    ffa: &mut Ffa<C>,
    mapper: &mut M,
    own_id: u16,
    mailbox: &bus::Mailbox,
) {
    if endpoint.instance.pending_events() == 0 {
        return;
    }
    let mut mapper = QuotaMapper {
        inner: mapper,
        quota: &mut endpoint.quota,
    };
    let mut services = FfaServices {
        ffa: &mut *ffa,
        mapper: &mut mapper,
        own_id,
        mailbox,
    };
    endpoint.instance.push_events(&mut services);
    retry_pushes_later(endpoint, ffa);
}

/// Push attempts in a row without progress after which an endpoint's events wait for its
/// next message instead of the retry timer (a driver that never releases its RX buffer costs
/// the partition this many timer interrupts, over about a quarter of a second, per message it
/// sends, and no more).
pub const MAX_PUSH_RETRIES: u8 = 32;
/// The retry timer's first delay, in microseconds; it doubles with every attempt in a row...
pub const PUSH_RETRY_FIRST_US: u32 = 100;
/// ... up to this.
pub const PUSH_RETRY_MAX_US: u32 = 10_000;

/// The delay before push retry `n` (0 = the first): [`PUSH_RETRY_FIRST_US`] doubled `n`
/// times, at most [`PUSH_RETRY_MAX_US`].
pub fn push_retry_delay_us(n: u8) -> u32 {
    PUSH_RETRY_FIRST_US
        .checked_shl(u32::from(n))
        .filter(|d| *d >> u32::from(n) == PUSH_RETRY_FIRST_US)
        .map_or(PUSH_RETRY_MAX_US, |d| d.min(PUSH_RETRY_MAX_US))
}

/// After a push attempt for `endpoint`: if events still wait for its driver's RX buffer
/// (FFA_MSG_SEND2 was BUSY), arms this execution context's timer, whose interrupt retries
/// every endpoint's pushes ([`handle_message`] on FFA_INTERRUPT); otherwise the attempts in a
/// row start again from zero.
///
/// Without it a driver that takes events only pushed (G2 over FF-A, G3 with EVENT_CONFIGURE
/// INDIRECT) can wait forever: its RX buffer holds one message until its FF-A core fetches
/// it, so of two events raised by one message (a console kick returns buffers on both its
/// queues) the second finds the buffer full, and nothing else brings the partition back if
/// the driver sends nothing until it sees that event. Hafnium tells no sender when a
/// receiver releases its RX buffer, so the partition looks again after a while: 100 µs, then
/// twice as long each time up to 10 ms, [`MAX_PUSH_RETRIES`] times in a row at most.
#[inline(always)]
fn retry_pushes_later<C: Conduit>(endpoint: &mut Endpoint, ffa: &mut Ffa<C>) {
    if endpoint.instance.awaits_push() {
        arm_push_retry(endpoint, ffa);
    } else {
        endpoint.push_retries = 0;
    }
}

/// [`retry_pushes_later`] when events wait: out of the request path.
#[cold]
#[inline(never)]
fn arm_push_retry<C: Conduit>(endpoint: &mut Endpoint, ffa: &mut Ffa<C>) {
    let n = endpoint.push_retries;
    if n >= MAX_PUSH_RETRIES {
        return;
    }
    endpoint.push_retries = n.saturating_add(1);
    if endpoint.push_retries == MAX_PUSH_RETRIES {
        log::warn!(
            "vm {:#x}: its RX buffer stayed full through {MAX_PUSH_RETRIES} retries; its \
             events wait for its next message",
            endpoint.instance.vm()
        );
    }
    let conduit = ffa.conduit();
    // Enabled each time (Hafnium signals only an enabled interrupt): no per-context state,
    // and this path runs only when a driver's RX buffer is full.
    let armed = conduit.interrupt_enable(ffa::conduit::HF_VIRTUAL_TIMER_INTID)
        && conduit.timer_arm(push_retry_delay_us(n));
    if endpoint.timer_arms == 0 {
        let vm = endpoint.instance.vm();
        if armed {
            log::info!("vm {vm:#x}: RX buffer full; pushed events retried by the timer");
        } else {
            log::warn!("vm {vm:#x}: RX buffer full and no timer; events wait for its next message");
        }
    }
    endpoint.timer_arms = endpoint.timer_arms.saturating_add(1);
}

/// Consecutive failed FFA_MSG_WAIT calls after which the message loop gives up (the SPMC
/// never fails it in normal operation; the simulated world does once it shuts down).
pub const MAX_WAIT_FAILURES: u32 = 8;

/// The message loop: FFA_MSG_WAIT, then answer every message and wait for the next.
///
/// No failure on one message ends it: a response the SPMC refuses (the caller died or was
/// aborted while being served, or the SPMC disagrees with the answer) is logged and the
/// partition waits for the next message. Only FFA_MSG_WAIT failing [`MAX_WAIT_FAILURES`]
/// times in a row returns (with its last error).
///
/// Every request gets exactly one response, of the request's own ABI and width: DIRECT_REQ2
/// → DIRECT_RESP2 from this partition to the sender, a 32-bit DIRECT_REQ → a 32-bit
/// DIRECT_RESP, a 64-bit one → 64-bit, a framework message → its framework response.
pub fn run<C: Conduit, M: NsMapper, F: DeviceFactory>(
    ffa: &mut Ffa<C>,
    mapper: &mut M,
    partition: &Partition<F>,
) -> Result<(), ffa::Error> {
    let mut msg = wait(ffa)?;
    loop {
        let Some(answer) = handle_message(ffa, mapper, partition, &msg) else {
            // Nothing to answer (a run by the scheduler, served; or an unexpected message).
            msg = wait(ffa)?;
            continue;
        };
        msg = match ffa.call(&answer) {
            Ok(next) => next,
            Err(e) => {
                // While the request is still pending the SPMC refuses FFA_MSG_WAIT (Hafnium
                // answers DENIED), so first try the plainest answer of the request's own ABI.
                log::warn!("response refused by the SPMC ({e}); answering with a refusal");
                match fallback(partition.own_id(), &msg).map(|f| ffa.call(&f)) {
                    Some(Ok(next)) => next,
                    _ => {
                        log::warn!("refusal not taken either; waiting for the next message");
                        wait(ffa)?
                    }
                }
            }
        };
    }
}

/// The plainest response to request `msg` from this partition (`own_id`): for DIRECT_REQ2 the
/// bus ERROR frame, for DIRECT_REQ an all-zero payload of the request's width (an SPMC may
/// refuse a 64-bit answer to a 32-bit request; the simulated one does, as the FF-A rules say).
/// `None` if `msg` is not a request.
fn fallback(own_id: u16, msg: &Interface) -> Option<Interface> {
    match *msg {
        Interface::MsgSendDirectReq2 {
            src_id, ref args, ..
        } => Some(Interface::MsgSendDirectResp2 {
            src_id: own_id,
            dst_id: src_id,
            args: DirectMsg2Args(bus::refusal(&bus::regs_to_frame(&args.0))),
        }),
        Interface::MsgSendDirectReq {
            src_id, ref args, ..
        } => Some(Interface::MsgSendDirectResp {
            src_id: own_id,
            dst_id: src_id,
            args: match args {
                DirectMsgArgs::Args32(_) => DirectMsgArgs::Args32([0; 5]),
                _ => DirectMsgArgs::Args64([0; 15]),
            },
        }),
        _ => None,
    }
}

/// FFA_MSG_WAIT, retried up to [`MAX_WAIT_FAILURES`] times in a row.
fn wait<C: Conduit>(ffa: &mut Ffa<C>) -> Result<Interface, ffa::Error> {
    let mut failures = 0u32;
    loop {
        // The RX buffer is released where it is used (FFA_RX_RELEASE): a release here could
        // come under another execution context's retrieve.
        match ffa.msg_wait_retaining_rx() {
            Ok(msg) => return Ok(msg),
            Err(e) => {
                // Below MAX_WAIT_FAILURES before the increment: cannot saturate.
                failures = failures.saturating_add(1);
                if failures >= MAX_WAIT_FAILURES {
                    return Err(e);
                }
            }
        }
    }
}

/// Handles one message as the message loop does — first the relinquish retries of destroyed
/// endpoints' memory, then the message — and returns the response to send, or `None` if there
/// is nothing to answer (an FFA_RUN by the scheduler: what it brought is served and answered
/// with indirect messages, see [`Partition::serve_run`]; or not a request). [`run`] calls it for every message; a driver of the
/// partition that delivers messages itself (the simulated world's inline mode) calls it too.
pub fn handle_message<C: Conduit, M: NsMapper, F: DeviceFactory>(
    ffa: &mut Ffa<C>,
    mapper: &mut M,
    partition: &Partition<F>,
    msg: &Interface,
) -> Option<Interface> {
    if partition.draining() > 0 {
        let own_id = partition.own_id();
        let mut services = FfaServices {
            ffa: &mut *ffa,
            mapper: &mut *mapper,
            own_id,
            mailbox: partition.mailbox(),
        };
        partition.retry_draining(&mut services);
    }
    answer(ffa, mapper, partition, msg)
}

/// Most virtual interrupts taken at once (each HF_INTERRUPT_GET takes one).
const MAX_INTERRUPTS: usize = 16;

/// Takes the partition's pending virtual interrupts (Hafnium's HF_INTERRUPT_GET, which
/// acknowledges each); returns whether the notification pending interrupt or the push retry
/// timer's was among them (either means: serve the RX buffer and push what waits). The
/// partition handles no other interrupt: any other is logged and dropped.
fn take_interrupts<C: Conduit>(ffa: &mut Ffa<C>) -> bool {
    let mut wake = false;
    for _ in 0..MAX_INTERRUPTS {
        match ffa.conduit().interrupt_get() {
            None | Some(ffa::conduit::HF_INVALID_INTID) => break,
            Some(ffa::conduit::HF_NPI_INTID) => wake = true,
            Some(ffa::conduit::HF_VIRTUAL_TIMER_INTID) => {
                // The push retry timer ([`retry_pushes_later`]); stopped, or its level stays.
                ffa.conduit().timer_stop();
                wake = true;
            }
            Some(other) => log::warn!("virtual interrupt {other} not handled"),
        }
    }
    wake
}

/// The response to `msg`, or `None` if it is not a request (nothing to answer).
fn answer<C: Conduit, M: NsMapper, F: DeviceFactory>(
    ffa: &mut Ffa<C>,
    mapper: &mut M,
    partition: &Partition<F>,
    msg: &Interface,
) -> Option<Interface> {
    let own_id = partition.own_id();
    let answer = match *msg {
        Interface::MsgSendDirectReq2 {
            src_id,
            dst_id,
            uuid,
            ref args,
        } if dst_id == own_id => Interface::MsgSendDirectResp2 {
            src_id: own_id,
            dst_id: src_id,
            args: DirectMsg2Args(partition.serve(src_id, uuid, &args.0, ffa, mapper)),
        },
        Interface::MsgSendDirectReq2 { src_id, dst_id, .. } => {
            // Not for us (the SPMC should never deliver it): answered all the same, as every
            // request must be, with the ERROR frame.
            log::warn!("direct request from {src_id:#x} for {dst_id:#x}, not for us");
            return fallback(own_id, msg);
        }
        Interface::MsgSendDirectReq {
            src_id,
            dst_id: _,
            args: DirectMsgArgs::VmDestructed { vm_id, .. },
        } => {
            let mut services = FfaServices {
                ffa: &mut *ffa,
                mapper: &mut *mapper,
                own_id,
                mailbox: partition.mailbox(),
            };
            partition.endpoint_destroyed(vm_id, &mut services);
            Interface::MsgSendDirectResp {
                src_id: own_id,
                dst_id: src_id,
                args: DirectMsgArgs::VmDestructedAck {
                    sp_status: VmAvailabilityStatus::Success,
                },
            }
        }
        Interface::MsgSendDirectReq {
            src_id,
            args: DirectMsgArgs::VmCreated { .. },
            ..
        } => Interface::MsgSendDirectResp {
            src_id: own_id,
            dst_id: src_id,
            args: DirectMsgArgs::VmCreatedAck {
                sp_status: VmAvailabilityStatus::Success,
            },
        },
        Interface::MsgSendDirectReq { src_id, .. } => {
            log::warn!("direct request from {src_id:#x} not served (not a virtio-msg request)");
            return fallback(own_id, msg);
        }
        Interface::Run { .. } => {
            // Run with notifications pending, the partition has its notification pending
            // interrupt too: taken here, or every FFA_MSG_WAIT would return FFA_INTERRUPT.
            take_interrupts(ffa);
            partition.serve_run(ffa, mapper);
            return None;
        }
        Interface::Interrupt { .. } => {
            if take_interrupts(ffa) {
                partition.serve_run(ffa, mapper);
            }
            return None;
        }
        _ => {
            log::warn!(
                "unexpected message (function {:#x}); waiting for the next one",
                ffa.last_answer()[0]
            );
            return None;
        }
    };
    Some(answer)
}

#[cfg(test)]
mod tests {
    use ffa::{
        bus::{RetrievedArea, ServiceError, msg},
        memory::{MapError, ShareKind},
    };

    use super::*;
    use crate::{devices::rng::CountingEntropy, registry::StandardDevices};

    /// Services that refuse all memory (the tests here need none).
    struct NoMemory;

    impl BusServices for NoMemory {
        fn retrieve(
            &mut self,
            _: u16,
            _: u64,
            _: u64,
            _: ShareKind,
        ) -> Result<RetrievedArea, ServiceError> {
            Err(ServiceError::Refused)
        }
        fn relinquish(&mut self, _: &RetrievedArea) -> Result<(), ServiceError> {
            Ok(())
        }
        fn read(&self, _: u64, _: &mut [u8]) -> Result<(), MapError> {
            Err(MapError::NotMapped)
        }
        fn write(&self, _: u64, _: &[u8]) -> Result<(), MapError> {
            Err(MapError::NotMapped)
        }
        fn notify(&mut self, _: u16, _: u16) -> Result<(), ServiceError> {
            Ok(())
        }
        fn send_indirect(
            &mut self,
            _: u16,
            _: ffa::arm_ffa::Uuid,
            _: &[u8],
        ) -> Result<(), ServiceError> {
            Err(ServiceError::Refused)
        }
    }

    fn partition() -> Partition<StandardDevices<CountingEntropy>> {
        Partition::new(
            0x8001,
            StandardDevices::new(Some(CountingEntropy::default())),
            BusConfig::default(),
        )
    }

    /// A G2 VERSION request (16 bytes) as payload registers.
    fn g2_version() -> [u64; bus::PAYLOAD_REGS] {
        let mut frame = [0u8; 16];
        msg::write_bus_frame(
            &mut frame,
            false,
            msg::VERSION,
            0,
            1,
            &[0, 0, 1, 0, 1, 0, 0, 0],
        )
        .unwrap();
        bus::frame_to_regs(&frame)
    }

    /// The first two bytes of an answer: type and msg_id.
    fn kind(answer: &[u64; bus::PAYLOAD_REGS]) -> [u8; 2] {
        let frame = bus::regs_to_frame(answer);
        [frame[0], frame[1]]
    }

    /// A bus ERROR frame (never the all-zero busy sentinel) echoing the G2 VERSION request.
    fn assert_refused(answer: &[u64; bus::PAYLOAD_REGS]) {
        let frame = bus::regs_to_frame(answer);
        assert_eq!(kind(answer), [0x03, msg::ERROR], "{frame:02x?}");
        assert_eq!(
            u16::from_le_bytes([frame[8], frame[9]]),
            u16::from(msg::VERSION)
        );
        assert_eq!(u16::from_le_bytes([frame[4], frame[5]]), 1, "token echoed");
    }

    /// A G2 SET_DEVICE_STATUS(ACKNOWLEDGE) for device 0: the endpoint then holds state.
    fn g2_acknowledge() -> [u64; bus::PAYLOAD_REGS] {
        let mut frame = [0u8; MAX_MSG_SIZE];
        let n = virtio_msg::transport::TransportRequest::SetDeviceStatus { status: 1 }
            .encode(virtio_msg::Layout::Pr28, 0, 1, &mut frame)
            .unwrap();
        bus::frame_to_regs(&frame[..n])
    }

    #[test]
    fn a_full_partition_gives_the_slot_of_an_endpoint_that_holds_nothing() {
        let p = partition();
        for vm in 0..u16::try_from(MAX_ENDPOINTS).unwrap() {
            p.handle_req2(vm, VIRTIO_MSG_DEVICE_UUID, &g2_version(), &mut NoMemory);
        }
        // Endpoint 0 is the least recently served one that holds nothing; endpoint 1 holds a
        // device past reset.
        p.handle_req2(1, VIRTIO_MSG_DEVICE_UUID, &g2_acknowledge(), &mut NoMemory);
        let answer = p.handle_req2(0x7000, VIRTIO_MSG_DEVICE_UUID, &g2_version(), &mut NoMemory);
        assert_eq!(kind(&answer), [0x03, msg::VERSION]);
        assert!(p.with_instance(0, |_| ()).is_none() && p.with_instance(0x7000, |_| ()).is_some());
        assert!(
            p.with_instance(1, |_| ()).is_some(),
            "an endpoint holding state keeps its slot"
        );
        assert_eq!(p.endpoints(), MAX_ENDPOINTS);
    }

    #[test]
    fn one_instance_per_endpoint_and_a_bound_on_endpoints() {
        let p = partition();
        for vm in 0..u16::try_from(MAX_ENDPOINTS).unwrap() {
            let answer = p.handle_req2(vm, VIRTIO_MSG_DEVICE_UUID, &g2_version(), &mut NoMemory);
            assert_eq!(kind(&answer), [0x03, msg::VERSION]);
            // virtio-rng, virtio-blk, virtio-console and virtio-vsock, each endpoint its own.
            assert_eq!(p.with_instance(vm, BusInstance::device_count).unwrap(), 4);
            // Each holds a device past reset: no slot can be given away.
            p.handle_req2(vm, VIRTIO_MSG_DEVICE_UUID, &g2_acknowledge(), &mut NoMemory);
        }
        assert_eq!(p.endpoints(), MAX_ENDPOINTS);
        // The 17th endpoint is refused with an ERROR frame, not the busy sentinel.
        assert_refused(&p.handle_req2(
            0x7000,
            VIRTIO_MSG_DEVICE_UUID,
            &g2_version(),
            &mut NoMemory,
        ));
        assert_eq!(p.endpoints(), MAX_ENDPOINTS);
        // Known endpoints are still served.
        let answer = p.handle_req2(3, VIRTIO_MSG_DEVICE_UUID, &g2_version(), &mut NoMemory);
        assert_eq!(kind(&answer), [0x03, msg::VERSION]);
        // A destroyed endpoint frees its slot.
        p.endpoint_destroyed(3, &mut NoMemory);
        assert!(p.with_instance(3, |_| ()).is_none());
        let answer = p.handle_req2(0x7000, VIRTIO_MSG_DEVICE_UUID, &g2_version(), &mut NoMemory);
        assert_eq!(kind(&answer), [0x03, msg::VERSION]);
    }

    #[test]
    fn other_services_are_refused_and_nil_uuid_accepted() {
        let p = partition();
        let other = ffa::arm_ffa::Uuid::from_u128(0x1234);
        assert_refused(&p.handle_req2(1, other, &g2_version(), &mut NoMemory));
        assert_eq!(p.endpoints(), 0);
        let answer = p.handle_req2(1, ffa::arm_ffa::Uuid::nil(), &g2_version(), &mut NoMemory);
        assert_eq!(kind(&answer), [0x03, msg::VERSION]);
    }

    #[test]
    fn no_entropy_no_rng() {
        let p = Partition::new(
            0x8001,
            StandardDevices::<CountingEntropy>::new(None),
            BusConfig::default(),
        );
        p.handle_req2(1, VIRTIO_MSG_DEVICE_UUID, &g2_version(), &mut NoMemory);
        assert_eq!(
            p.with_instance(1, device_ids).unwrap(),
            [2, 3, 19],
            "the block, console and vsock devices"
        );
        // Without a disk either, the endpoint is served with the console and vsock alone.
        let p = Partition::new(
            0x8001,
            StandardDevices::<CountingEntropy>::new(None).with_disk_bytes(0),
            BusConfig::default(),
        );
        p.handle_req2(1, VIRTIO_MSG_DEVICE_UUID, &g2_version(), &mut NoMemory);
        assert_eq!(p.with_instance(1, device_ids).unwrap(), [3, 19]);
    }

    /// The device ids of `instance`'s devices, in device-number order.
    fn device_ids(instance: &BusInstance) -> Vec<u32> {
        (0..instance.device_count())
            .filter_map(|d| {
                let t = instance.device(u16::try_from(d).ok()?)?;
                Some(t.device().device_id())
            })
            .collect()
    }

    /// The message loop against a scripted SPMC: each call of the partition gets the next
    /// scripted answer (FFA_ERROR(DENIED) when the script is out), and every call is recorded.
    mod message_loop {
        use alloc::{collections::VecDeque, vec::Vec};
        use std::sync::{Arc, Mutex};

        use ffa::{
            Ffa,
            arm_ffa::{
                FfaError, Version,
                interface_args::{DirectMsgArgs, TargetInfo},
            },
            conduit::low32,
        };

        use super::*;
        use crate::scripted::{NoMapper, Scripted};

        const MSG_WAIT: u32 = 0x8400_006b;
        const DIRECT_RESP_32: u32 = 0x8400_0070;
        const DIRECT_RESP2: u32 = 0xc400_008e;

        fn regs(iface: Interface) -> [u64; 18] {
            let mut r = [0; 18];
            iface.to_regs(Version(1, 2), &mut r);
            r
        }

        fn denied() -> [u64; 18] {
            regs(Interface::Error {
                target_info: TargetInfo::default(),
                error_code: FfaError::Denied,
                error_arg: 0,
                is_32bit: true,
            })
        }

        fn req2(src: u16, dst: u16, payload: [u64; bus::PAYLOAD_REGS]) -> [u64; 18] {
            regs(Interface::MsgSendDirectReq2 {
                src_id: src,
                dst_id: dst,
                uuid: VIRTIO_MSG_DEVICE_UUID,
                args: DirectMsg2Args(payload),
            })
        }

        /// Runs the loop over `script`; returns every call the partition made.
        fn run_script(script: Vec<[u64; 18]>) -> Vec<[u64; 18]> {
            let script = Arc::new(Mutex::new(VecDeque::from(script)));
            let conduit =
                Scripted::new(move |_| script.lock().unwrap().pop_front().unwrap_or_else(denied));
            let mut ffa = Ffa::new(conduit.clone());
            let p = partition();
            let result = run(&mut ffa, &mut NoMapper, &p);
            assert!(
                result.is_err(),
                "the loop ends only when FFA_MSG_WAIT keeps failing"
            );
            conduit.calls()
        }

        #[test]
        fn a_refused_response_does_not_end_the_loop_and_widths_match() {
            let calls = run_script(vec![
                // FFA_MSG_WAIT → a 32-bit DIRECT_REQ that is not virtio-msg.
                regs(Interface::MsgSendDirectReq {
                    src_id: 1,
                    dst_id: 0x8001,
                    args: DirectMsgArgs::Args32([1, 2, 3, 4, 5]),
                }),
                // Its response is refused.
                denied(),
                // The fallback is taken → a virtio-msg request, which must still be served.
                req2(2, 0x8001, g2_version()),
            ]);
            let fids: Vec<u32> = calls.iter().map(|r| low32(r[0])).collect();
            // The refused 32-bit answer is followed by the 32-bit fallback, which the SPMC takes.
            assert_eq!(
                fids[..4],
                [MSG_WAIT, DIRECT_RESP_32, DIRECT_RESP_32, DIRECT_RESP2]
            );
            // The 32-bit response: ids swapped, zero payload.
            assert_eq!(calls[1][1], 0x8001 << 16 | 1);
            // FFA_MSG_WAIT keeps the RX buffer (w2 bit 0): it is released where it is used.
            assert_eq!(calls[0][2], 1, "retain RX buffer ownership");
            // The DIRECT_RESP2 answers endpoint 2 with its VERSION response.
            let answer: [u64; bus::PAYLOAD_REGS] = calls[3][4..18].try_into().unwrap();
            assert_eq!(calls[3][1], 0x8001 << 16 | 2);
            assert_eq!(&bus::regs_to_frame(&answer)[..2], &[0x03, msg::VERSION]);
            // Then the script is out: that answer is refused, so is its fallback, and
            // FFA_MSG_WAIT fails every time: bounded.
            assert_eq!(calls.len(), 5 + MAX_WAIT_FAILURES as usize);
        }

        #[test]
        fn a_refused_response_is_followed_by_a_refusal_before_waiting() {
            // The SPMC refuses the VERSION answer, takes the ERROR-frame fallback, then sends
            // nothing more.
            let calls = run_script(vec![
                req2(2, 0x8001, g2_version()),
                denied(),
                req2(3, 0x8001, g2_version()),
            ]);
            let fids: Vec<u32> = calls.iter().map(|r| low32(r[0])).collect();
            assert_eq!(
                fids[..4],
                [MSG_WAIT, DIRECT_RESP2, DIRECT_RESP2, DIRECT_RESP2]
            );
            let frame = |i: usize| bus::regs_to_frame(&calls[i][4..18].try_into().unwrap());
            assert_eq!(&frame(1)[..2], &[0x03, msg::VERSION]);
            assert_eq!(&frame(2)[..2], &[0x03, msg::ERROR], "the fallback");
            assert_eq!(calls[2][1], 0x8001 << 16 | 2, "to the same sender");
            assert_eq!(
                &frame(3)[..2],
                &[0x03, msg::VERSION],
                "the next request served"
            );
        }

        #[test]
        fn a_request_for_another_partition_is_answered_too() {
            let calls = run_script(vec![req2(2, 0x8002, g2_version())]);
            let fids: Vec<u32> = calls.iter().map(|r| low32(r[0])).collect();
            assert_eq!(fids[..2], [MSG_WAIT, DIRECT_RESP2]);
            assert_eq!(
                calls[1][1],
                0x8001 << 16 | 2,
                "from this partition to the sender"
            );
            let answer: [u64; bus::PAYLOAD_REGS] = calls[1][4..18].try_into().unwrap();
            assert_eq!(&bus::regs_to_frame(&answer)[..2], &[0x03, msg::ERROR]);
        }

        #[test]
        fn the_17th_endpoint_gets_an_error_frame_through_the_loop() {
            let mut script: Vec<[u64; 18]> = Vec::new();
            for vm in 0..u16::try_from(MAX_ENDPOINTS).unwrap() {
                script.push(req2(vm + 1, 0x8001, g2_version()));
                script.push(req2(vm + 1, 0x8001, g2_acknowledge()));
            }
            script.push(req2(0x7000, 0x8001, g2_version()));
            script.push(denied());
            let calls = run_script(script);
            let answers: Vec<[u8; 2]> = calls
                .iter()
                .filter(|r| low32(r[0]) == DIRECT_RESP2)
                .map(|r| {
                    let f = bus::regs_to_frame(&r[4..18].try_into().unwrap());
                    [f[0], f[1]]
                })
                .collect();
            // The last answer was refused (the script ends), then its fallback went out.
            assert_eq!(answers.len(), 2 * MAX_ENDPOINTS + 2);
            assert!(
                answers[..2 * MAX_ENDPOINTS]
                    .iter()
                    .step_by(2)
                    .all(|a| *a == [0x03, msg::VERSION])
            );
            assert_eq!(answers[2 * MAX_ENDPOINTS], [0x03, msg::ERROR]);
        }
    }

    #[test]
    fn push_retry_delays_double_from_100_us_to_10_ms() {
        let delays: Vec<u32> = (0..MAX_PUSH_RETRIES).map(push_retry_delay_us).collect();
        assert_eq!(
            delays[..9],
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
        );
        assert!(delays[9..].iter().all(|d| *d == PUSH_RETRY_MAX_US));
        // Shifts past the width saturate too.
        assert_eq!(push_retry_delay_us(40), PUSH_RETRY_MAX_US);
        assert_eq!(push_retry_delay_us(u8::MAX), PUSH_RETRY_MAX_US);
        // The whole back-off stays well under a second (a driver that never releases its RX
        // buffer costs at most this much timer work).
        let total: u32 = delays.iter().sum();
        assert_eq!(total, 262_700);
    }
}
