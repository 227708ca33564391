//! One bus instance: everything the partition keeps for one driver endpoint.

use alloc::{boxed::Box, vec::Vec};

use virtio_msg::{
    Header, Layout,
    bus::{BusRequest, BusResponse},
    device::{DeviceTransport, Event as EngineEvent, VirtioDevice},
    header::HEADER_SIZE,
    ids,
    transport::{DeviceEvent, TransportRequest},
};
use zerocopy::IntoBytes;

use super::{
    AreaMem, AreaTable, BusServices, EventQueue, PendingEvent,
    config::BusConfig,
    dialect::{DeviceListing, Dialect, Handshake},
    frame::{self, MAX_MSG_SIZE, MAX_MSG_SIZE_U16, Reply},
    msg::{self, attrs, event_method, features},
};
use crate::memory::ShareKind;

/// Event delivery configured by EVENT_CONFIGURE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    Poll,
    Notify(u16),
}

/// G3 VERSION negotiation state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Negotiation {
    /// Nothing agreed yet.
    None,
    /// Version 1.0 / revision 1 agreed.
    Done,
}

/// The state the partition keeps for one driver endpoint (a VM, or the host OS).
pub struct BusInstance {
    vm: u16,
    config: BusConfig,
    dialect: Option<Dialect>,
    negotiation: Negotiation,
    delivery: Option<Delivery>,
    devices: Vec<DeviceTransport>,
    areas: AreaTable,
    events: EventQueue,
}

/// Most device numbers one GET_DEVICES response can describe within the bus's size limit:
/// (104 - 8 header - 6 fields) bytes of bitmap.
const MAX_WINDOW: u16 = 720;
const _: () = assert!(MAX_WINDOW as usize == (MAX_MSG_SIZE - HEADER_SIZE - 6) * 8);

impl BusInstance {
    /// A fresh instance for endpoint `vm` serving `devices` (device number = index).
    pub fn new(vm: u16, devices: Vec<Box<dyn VirtioDevice + Send>>, config: BusConfig) -> Self {
        let queues: usize = devices
            .iter()
            .map(|d| usize::try_from(d.num_queues()).unwrap_or(0))
            .sum();
        let capacity = queues + 2 * devices.len() + usize::from(config.max_areas) + 8;
        Self {
            vm,
            config,
            dialect: None,
            negotiation: Negotiation::None,
            delivery: None,
            devices: devices
                .into_iter()
                .map(|d| DeviceTransport::new(d, Layout::V1Review).with_max_size(MAX_MSG_SIZE_U16))
                .collect(),
            areas: AreaTable::new(),
            events: EventQueue::new(capacity),
        }
    }

    /// The endpoint this instance serves.
    pub fn vm(&self) -> u16 {
        self.vm
    }

    /// The dialect latched so far.
    pub fn dialect(&self) -> Option<Dialect> {
        self.dialect
    }

    /// The shared areas.
    pub fn areas(&self) -> &AreaTable {
        &self.areas
    }

    /// Number of devices.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Device `dev`'s transport state.
    pub fn device(&self, dev: u16) -> Option<&DeviceTransport> {
        self.devices.get(usize::from(dev))
    }

    /// Pending events.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Handles one frame from the endpoint and writes the answer frame into `out`.
    pub fn handle(
        &mut self,
        frame: &[u8],
        out: &mut [u8; MAX_MSG_SIZE],
        services: &mut dyn BusServices,
    ) -> Reply {
        out.fill(0);
        let Some(frame) = frame.get(..frame.len().min(MAX_MSG_SIZE)) else {
            return Reply::Busy;
        };
        let header = match Header::parse(frame) {
            Ok(h) if !h.is_response() => h,
            Ok(h) => {
                log::debug!(
                    "vm {:#x}: response frame (id {:#04x}) where a request was due",
                    self.vm,
                    h.msg_id
                );
                return frame::error(&h, out);
            }
            Err(e) => {
                log::debug!("vm {:#x}: undecodable frame: {e}", self.vm);
                return frame::error_raw(frame, out);
            }
        };
        if header.is_bus() {
            self.handle_bus(&header, frame, out, services)
        } else {
            self.handle_transport(&header, frame, out, services)
        }
    }

    /// Forgets the endpoint: resets every device, relinquishes every area, drops events and
    /// negotiation (RESET, or the endpoint was destroyed).
    pub fn reset(&mut self, services: &mut dyn BusServices) {
        for dev in &mut self.devices {
            dev.reset();
        }
        for (id, area) in self.areas.drain() {
            if let Err(e) = services.relinquish(&area) {
                log::warn!("vm {:#x}: relinquish of area {id} failed: {e}", self.vm);
            }
        }
        self.events.clear();
        self.delivery = None;
        self.negotiation = Negotiation::None;
        self.dialect = None;
    }

    fn layout(&self) -> Layout {
        self.dialect.map_or(Layout::V1Review, Dialect::layout)
    }

    /// Latches `dialect`; a different one from before means a new driver: start over.
    fn latch(&mut self, dialect: Dialect, services: &mut dyn BusServices) {
        if self.dialect.is_some_and(|d| d != dialect) {
            log::info!(
                "vm {:#x}: driver changed dialect to {dialect:?}; resetting the bus instance",
                self.vm
            );
            self.reset(services);
        }
        if self.dialect.is_none() {
            self.dialect = Some(dialect);
            for dev in &mut self.devices {
                dev.set_layout(dialect.layout());
            }
        }
    }

    fn negotiated(&self) -> bool {
        self.dialect.is_some_and(|d| {
            !d.handshake().needs_agreement() || self.negotiation == Negotiation::Done
        })
    }

    // ---- bus messages ----------------------------------------------------------------------

    fn handle_bus(
        &mut self,
        header: &Header,
        frame: &[u8],
        out: &mut [u8; MAX_MSG_SIZE],
        services: &mut dyn BusServices,
    ) -> Reply {
        if header.dev_num != 0 || ids::is_event(header.msg_id) {
            return frame::error(header, out);
        }
        match header.msg_id {
            msg::VERSION => return self.version(header, frame, out, services),
            msg::RESET => return self.bus_reset(header, out, services),
            _ => {}
        }
        if !self.negotiated() {
            log::debug!(
                "vm {:#x}: bus message {:#04x} before VERSION",
                self.vm,
                header.msg_id
            );
            return frame::error(header, out);
        }
        match header.msg_id {
            ids::bus::GET_DEVICES => self.get_devices(header, frame, out),
            ids::bus::PING => match BusRequest::decode(frame) {
                Ok((_, BusRequest::Ping { data })) => {
                    frame::bus_response(header, &data.to_le_bytes(), out)
                }
                _ => frame::error(header, out),
            },
            msg::AREA_SHARE => self.area_share(header, frame, out, services),
            msg::AREA_UNSHARE => self.area_unshare(header, frame, out, services),
            msg::EVENT_CONFIGURE => self.event_configure(header, frame, out),
            msg::EVENT_POLL if self.dialect.is_some_and(Dialect::serves_event_poll) => {
                if usize::from(header.msg_size) != HEADER_SIZE {
                    return frame::error(header, out);
                }
                self.event_poll(header, out)
            }
            _ => frame::error(header, out),
        }
    }

    fn version(
        &mut self,
        header: &Header,
        frame: &[u8],
        out: &mut [u8; MAX_MSG_SIZE],
        services: &mut dyn BusServices,
    ) -> Reply {
        let Some(dialect) = Dialect::of_version_request(header.msg_size) else {
            log::debug!(
                "vm {:#x}: VERSION of unsupported size {}",
                self.vm,
                header.msg_size
            );
            return frame::error(header, out);
        };
        self.latch(dialect, services);
        let notify = self.config.notifications && dialect.offers_notifications();
        let bus_features = features::DIRECT_RX
            | features::DIRECT_TX
            | if notify {
                features::NOTIF_RX | features::NOTIF_TX
            } else {
                0
            };
        if dialect.handshake() == Handshake::ProbeAndEcho
            && let Some(req) = msg::exact::<msg::VersionReqG3>(header, frame)
        {
            let (bus, rev) = (req.bus_version.get(), req.transport_revision.get());
            let supported = (msg::BUS_VERSION_1_0, msg::TRANSPORT_REVISION_1);
            let answer = if (bus, rev) == (0, 0) {
                // Probe: report what we support (or what was agreed).
                Some(supported)
            } else if self.negotiation == Negotiation::Done {
                ((bus, rev) == supported).then_some(supported)
            } else if (bus, rev) == supported {
                self.negotiation = Negotiation::Done;
                Some(supported)
            } else if (bus, rev) > supported {
                // Newer than ours: offer ours; the driver echoes it to commit.
                Some(supported)
            } else {
                None
            };
            let (bus, rev) = answer.unwrap_or((0, 0));
            let resp = msg::VersionRespG3 {
                bus_version: bus.into(),
                transport_revision: rev.into(),
                ffa_version: msg::FFA_VERSION_1_2.into(),
                feature_bits: 0.into(),
                bus_features: if answer.is_some() { bus_features } else { 0 }.into(),
                max_areas: if answer.is_some() {
                    self.config.max_areas
                } else {
                    0
                }
                .into(),
            };
            return frame::bus_response(header, resp.as_bytes(), out);
        }
        if dialect.handshake() == Handshake::Single
            && let Some(req) = msg::exact::<msg::VersionReqG2>(header, frame)
        {
            let ok = req.bus_version.get() == msg::BUS_VERSION_1_0
                && req.transport_revision.get() == msg::TRANSPORT_REVISION_1;
            if !ok {
                log::warn!(
                    "vm {:#x}: G2 VERSION {:#x}/{} not supported",
                    self.vm,
                    req.bus_version.get(),
                    req.transport_revision.get()
                );
            }
            let resp = msg::VersionRespG2 {
                bus_version: if ok { msg::BUS_VERSION_1_0 } else { 0 }.into(),
                transport_revision: if ok { msg::TRANSPORT_REVISION_1 } else { 0 }.into(),
                transport_features: 0.into(),
                bus_features: if ok { bus_features } else { 0 }.into(),
                area_num: if ok { self.config.max_areas } else { 0 }.into(),
            };
            return frame::bus_response(header, resp.as_bytes(), out);
        }
        frame::error(header, out)
    }

    fn bus_reset(
        &mut self,
        header: &Header,
        out: &mut [u8; MAX_MSG_SIZE],
        services: &mut dyn BusServices,
    ) -> Reply {
        if usize::from(header.msg_size) != HEADER_SIZE {
            return frame::error(header, out);
        }
        self.reset(services);
        self.latch(Dialect::of_reset(), services);
        let result = msg::Word16 {
            value: msg::RESULT_SUCCESS.into(),
        };
        frame::bus_response(header, result.as_bytes(), out)
    }

    fn get_devices(
        &mut self,
        header: &Header,
        frame: &[u8],
        out: &mut [u8; MAX_MSG_SIZE],
    ) -> Reply {
        let Ok((_, BusRequest::GetDevices { offset, count })) = BusRequest::decode(frame) else {
            return frame::error(header, out);
        };
        let ndev = self.devices.len();
        let Some(dialect) = self.dialect else {
            return frame::error(header, out);
        };
        let order = match dialect.device_listing() {
            DeviceListing::DeviceCount {
                addressable,
                bitmap_len,
            } => {
                if offset != 0 {
                    return frame::error(header, out);
                }
                let visible = ndev.min(addressable);
                if ndev > visible {
                    log::warn!(
                        "vm {:#x}: this driver can address only devices 0..{}",
                        self.vm,
                        addressable.saturating_sub(1)
                    );
                }
                let mut buf = [0u8; MAX_MSG_SIZE - HEADER_SIZE];
                let Some(payload) = buf.get_mut(..6 + bitmap_len) else {
                    return frame::error(header, out);
                };
                let count = u16::try_from(visible).unwrap_or(0);
                if let Some(field) = payload.get_mut(2..4) {
                    field.copy_from_slice(&count.to_le_bytes());
                }
                for n in 0..visible {
                    if let Some(b) = payload.get_mut(6 + n / 8) {
                        *b |= 1 << (n % 8);
                    }
                }
                return frame::bus_response(header, payload, out);
            }
            DeviceListing::Windows { order } => order,
        };
        // Windows: the answer covers min(count, what fits) device numbers from offset.
        let count = count.min(MAX_WINDOW);
        let mut bitmap = [0u8; (MAX_WINDOW as usize).div_ceil(8)];
        for n in 0..count {
            let dev = usize::from(offset) + usize::from(n);
            if dev < ndev
                && let Some(b) = bitmap.get_mut(usize::from(n / 8))
            {
                *b |= 1 << (n % 8);
            }
        }
        let end = usize::from(offset) + usize::from(count);
        let next_offset = if end < ndev {
            u16::try_from(end).unwrap_or(0)
        } else {
            0
        };
        let bitmap = bitmap
            .get(..usize::from(count).div_ceil(8))
            .unwrap_or_default();
        let resp = BusResponse::Devices {
            offset,
            count,
            next_offset,
            bitmap,
        };
        match resp.encode(order, header, out) {
            Ok(n) => Reply::Frame(n),
            Err(_) => frame::error(header, out),
        }
    }

    fn area_share(
        &mut self,
        header: &Header,
        frame: &[u8],
        out: &mut [u8; MAX_MSG_SIZE],
        services: &mut dyn BusServices,
    ) -> Reply {
        let Some(req) = msg::exact::<msg::AreaShareReq>(header, frame) else {
            return frame::error(header, out);
        };
        let area_id = req.area_id.get();
        let result = match self.share(&req, services) {
            Ok(()) => msg::RESULT_SUCCESS,
            Err(ShareFailure::Busy) if self.dialect.is_some_and(Dialect::busy_allowed) => {
                return Reply::Busy;
            }
            Err(ShareFailure::Busy) => msg::RESULT_ERROR,
            Err(ShareFailure::Refused(why)) => {
                log::warn!(
                    "vm {:#x}: AREA_SHARE of area {area_id} refused: {why}",
                    self.vm
                );
                msg::RESULT_ERROR
            }
        };
        let resp = msg::AreaResp {
            area_id: area_id.into(),
            result: result.into(),
        };
        frame::bus_response(header, resp.as_bytes(), out)
    }

    fn share(
        &mut self,
        req: &msg::AreaShareReq,
        services: &mut dyn BusServices,
    ) -> Result<(), ShareFailure> {
        let area_id = req.area_id.get();
        let pages = req.page_count.get();
        let attrs = req.sharing_attrs.get();
        if area_id == 0 {
            return Err(ShareFailure::Refused("area id 0 is reserved"));
        }
        if self.areas.contains(area_id) {
            return Err(ShareFailure::Refused("area id already in use"));
        }
        if self.areas.len() >= usize::from(self.config.max_areas) {
            return Err(ShareFailure::Refused("too many areas"));
        }
        if pages == 0 || u64::from(pages) > self.config.max_area_pages {
            return Err(ShareFailure::Refused("page count out of range"));
        }
        let kind = self.check_attrs(attrs)?;
        let area = services
            .retrieve(self.vm, req.mem_handle.get(), req.mem_tag.get(), kind)
            .map_err(|e| match e {
                super::ServiceError::Busy => ShareFailure::Busy,
                _ => ShareFailure::Refused("memory retrieve failed"),
            })?;
        // The driver's page count must describe what was retrieved, in one of its page sizes.
        let scales = self.dialect.map_or(&[1u64][..], Dialect::area_page_sizes);
        let consistent = scales.iter().any(|s| u64::from(pages) * s == area.pages);
        if !consistent || !area.writable {
            let _ = services.relinquish(&area);
            return Err(ShareFailure::Refused(if consistent {
                "memory is not writable"
            } else {
                "page count does not match the retrieved memory"
            }));
        }
        self.areas.insert(area_id, area);
        Ok(())
    }

    /// Validates `sharing_attrs`; returns the transaction type to retrieve.
    fn check_attrs(&self, attrs: u32) -> Result<ShareKind, ShareFailure> {
        if attrs == 0 && self.dialect.is_some_and(Dialect::accepts_zero_share_attrs) {
            return Ok(ShareKind::Share);
        }
        let kind = match attrs & attrs::TYPE_MASK {
            0 => ShareKind::Share,
            1 => ShareKind::Lend,
            _ => return Err(ShareFailure::Refused("donation is not accepted")),
        };
        let field = |shift: u32| (attrs >> shift) & 0b11;
        let ok = attrs & attrs::MBZ_MASK == 0
            && attrs & attrs::WRITABLE != 0
            && attrs & attrs::EXECUTABLE == 0
            && matches!(field(attrs::SHAREABILITY_SHIFT), 2 | 3)
            && field(attrs::CACHEABILITY_SHIFT) == 3
            && field(attrs::MEM_TYPE_SHIFT) == 2
            && attrs & attrs::NON_SECURE != 0;
        if ok {
            Ok(kind)
        } else {
            Err(ShareFailure::Refused(
                "sharing attributes must be RW, XN, shareable, WB normal, NS",
            ))
        }
    }

    fn area_unshare(
        &mut self,
        header: &Header,
        frame: &[u8],
        out: &mut [u8; MAX_MSG_SIZE],
        services: &mut dyn BusServices,
    ) -> Reply {
        let Some(req) = msg::exact::<msg::Word16>(header, frame) else {
            return frame::error(header, out);
        };
        let area_id = req.value.get();
        let result = match self.areas.remove(area_id) {
            None => msg::RESULT_ERROR,
            Some(area) => match services.relinquish(&area) {
                Ok(()) => msg::RESULT_SUCCESS,
                Err(super::ServiceError::Busy) => {
                    // Keep it (unmapped pages are re-mapped on the next retrieve only; the
                    // driver retries the unshare).
                    self.areas.insert(area_id, area);
                    msg::RESULT_BUSY
                }
                Err(e) => {
                    log::warn!(
                        "vm {:#x}: relinquish of area {area_id} failed: {e}",
                        self.vm
                    );
                    msg::RESULT_ERROR
                }
            },
        };
        let result =
            if result == msg::RESULT_BUSY && !self.dialect.is_some_and(Dialect::busy_allowed) {
                msg::RESULT_ERROR
            } else {
                result
            };
        let resp = msg::AreaResp {
            area_id: area_id.into(),
            result: result.into(),
        };
        frame::bus_response(header, resp.as_bytes(), out)
    }

    fn event_configure(
        &mut self,
        header: &Header,
        frame: &[u8],
        out: &mut [u8; MAX_MSG_SIZE],
    ) -> Reply {
        let Some(req) = msg::exact::<msg::EventConfigureReq>(header, frame) else {
            return frame::error(header, out);
        };
        if req.reserved != 0 {
            return frame::error(header, out);
        }
        let result = if !self.dialect.is_some_and(Dialect::binds_event_delivery) {
            // Accept and ring nothing.
            msg::RESULT_SUCCESS
        } else if self.delivery.is_some() {
            return frame::error(header, out);
        } else {
            match req.method {
                event_method::POLL => {
                    self.delivery = Some(Delivery::Poll);
                    msg::RESULT_SUCCESS
                }
                event_method::NOTIF if self.config.notifications && req.notif_id.get() < 64 => {
                    self.delivery = Some(Delivery::Notify(req.notif_id.get()));
                    msg::RESULT_SUCCESS
                }
                _ => msg::RESULT_ERROR,
            }
        };
        let resp = msg::Word16 {
            value: result.into(),
        };
        frame::bus_response(header, resp.as_bytes(), out)
    }

    fn event_poll(&mut self, header: &Header, out: &mut [u8; MAX_MSG_SIZE]) -> Reply {
        while let Some(event) = self.events.pop() {
            if let Some(n) = self.encode_event(event, out) {
                return Reply::Frame(n);
            }
        }
        frame::bus_response(header, &[], out)
    }

    /// Encodes a pending event as the frame the driver receives (events carry token 0).
    fn encode_event(&self, event: PendingEvent, out: &mut [u8; MAX_MSG_SIZE]) -> Option<usize> {
        let result = match event {
            PendingEvent::Used { dev, vq } => DeviceEvent::Used { vq_index: vq }.encode(dev, out),
            PendingEvent::Config { dev } => {
                let d = self.devices.get(usize::from(dev))?;
                DeviceEvent::Config {
                    device_status: d.status(),
                    generation: d.generation(),
                    offset: 0,
                    data: &[],
                }
                .encode(dev, out)
            }
            PendingEvent::Device { dev, state } => virtio_msg::bus::BusEvent::Device {
                dev_num: dev,
                state,
            }
            .encode(out),
            PendingEvent::AreaRelease { area } => {
                return msg::write_bus_frame(
                    out,
                    false,
                    msg::AREA_RELEASE,
                    0,
                    0,
                    &area.to_le_bytes(),
                );
            }
        };
        result.ok()
    }

    /// Queues `event` and rings the driver's doorbell if the queue just became non-empty.
    fn queue_event(&mut self, event: PendingEvent, services: &mut dyn BusServices) {
        if !self.dialect.is_some_and(Dialect::queues_events) {
            return;
        }
        if self.events.push(event)
            && let Some(Delivery::Notify(id)) = self.delivery
            && let Err(e) = services.notify(self.vm, id)
        {
            log::warn!("vm {:#x}: notification {id} failed: {e}", self.vm);
        }
    }

    // ---- transport messages -----------------------------------------------------------------

    fn handle_transport(
        &mut self,
        header: &Header,
        frame: &[u8],
        out: &mut [u8; MAX_MSG_SIZE],
        services: &mut dyn BusServices,
    ) -> Reply {
        if !self.negotiated() {
            return frame::error(header, out);
        }
        let layout = self.layout();
        let Ok((_, request)) = TransportRequest::decode(frame, layout) else {
            return frame::error(header, out);
        };
        let dev = header.dev_num;
        if usize::from(dev) >= self.devices.len() {
            return frame::error(header, out);
        }
        if let TransportRequest::SetVqueue {
            size,
            desc_addr,
            driver_addr,
            device_addr,
            ..
        } = request
            && !self.rings_in_areas(size, desc_addr, driver_addr, device_addr)
        {
            // Leave the queue unconfigured; the driver sees it on read-back.
            return frame::empty_transport_response(header, out);
        }
        let mem_services: &dyn BusServices = services;
        let mut mem = AreaMem::new(&self.areas, mem_services);
        let Some(engine) = self.devices.get_mut(usize::from(dev)) else {
            return frame::error(header, out);
        };
        let mut events = Vec::new();
        let written = engine.handle_frame(header, &request, &mut mem, out, &mut |e| events.push(e));
        for e in events {
            let pending = match e {
                EngineEvent::Used { vq } => PendingEvent::Used { dev, vq },
                EngineEvent::Config => PendingEvent::Config { dev },
            };
            self.queue_event(pending, services);
        }
        if matches!(request, TransportRequest::EventAvail { .. }) {
            // Events get the bare acknowledgement frame (type 0x03, id 0, dev_num 0, size 8).
            out.fill(0);
            return frame::bus_ack(msg::EVENT_ACK, header.token, out);
        }
        match written {
            Some(n) => Reply::Frame(n),
            None => frame::error(header, out),
        }
    }

    /// Whether the three rings of a `size`-entry split queue lie inside shared areas.
    fn rings_in_areas(&self, size: u32, desc: u64, driver: u64, device: u64) -> bool {
        let size = u64::from(size);
        let ok = self.areas.covers(desc, 16 * size, false)
            && self.areas.covers(driver, 6 + 2 * size, false)
            && self.areas.covers(device, 6 + 8 * size, true);
        if !ok && size != 0 {
            log::warn!(
                "vm {:#x}: SET_VQUEUE with rings outside every shared area (desc {desc:#x}, \
                 driver {driver:#x}, device {device:#x}). Raw physical addresses are never \
                 served: a G2 driver needs VIRTIO_MSG_FFA_DMA_OPS and a restricted-dma-pool",
                self.vm
            );
        }
        ok
    }
}

enum ShareFailure {
    Busy,
    Refused(&'static str),
}
