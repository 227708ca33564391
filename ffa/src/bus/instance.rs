//! One bus instance: the state the partition keeps for one driver endpoint, and the dispatch of
//! each incoming frame to the concern that serves it (negotiation, areas, events, routing).

use alloc::{boxed::Box, sync::Arc, vec::Vec};

use virtio_msg::{
    Layout,
    device::{Budget, DeviceTransport, EndpointStats, VirtioDevice},
    header::TYPE_BUS,
    ids,
};

use super::{
    area::AreaTable,
    area_share,
    config::{BusConfig, Endpoint},
    dialect::Dialect,
    events::Events,
    frame::{self, Frame, MAX_MSG_SIZE, MAX_MSG_SIZE_U16, Reply},
    lifecycle::Lifecycle,
    msg,
    negotiation::{self, Negotiation},
    routing,
    services::BusServices,
};

/// The state the partition keeps for one driver endpoint (a VM, or the host OS).
pub struct BusInstance {
    vm: u16,
    config: BusConfig,
    negotiation: Negotiation,
    devices: Vec<DeviceTransport>,
    areas: AreaTable,
    events: Events,
    /// The memory-lifecycle log (rate-limited).
    log: Lifecycle,
    /// The last area whose pending relinquish was retried.
    retry_cursor: u16,
    /// Where the endpoint's messages and its devices' work are counted.
    stats: Option<Arc<EndpointStats>>,
}

impl BusInstance {
    /// A fresh instance for endpoint `vm` serving `devices` (device number = index).
    pub fn new(vm: u16, devices: Vec<Box<dyn VirtioDevice + Send>>, config: BusConfig) -> Self {
        // The partition's own devices, not normal-world input; saturating keeps the bound
        // (it could only saturate beyond what memory holds).
        let queues = devices
            .iter()
            .map(|d| usize::try_from(d.num_queues()).unwrap_or(0))
            .fold(0usize, usize::saturating_add);
        let capacity = queues
            .saturating_add(devices.len().saturating_mul(2))
            .saturating_add(usize::from(config.max_areas))
            .saturating_add(8);
        Self {
            vm,
            config,
            negotiation: Negotiation::new(),
            devices: devices
                .into_iter()
                .map(|d| DeviceTransport::new(d, Layout::V1Review).with_max_size(MAX_MSG_SIZE_U16))
                .collect(),
            areas: AreaTable::new(),
            events: Events::new(capacity),
            log: Lifecycle::new(vm),
            retry_cursor: 0,
            stats: None,
        }
    }

    /// The same, counting the endpoint's messages and its devices' work in `stats`.
    pub fn with_stats(mut self, stats: Arc<EndpointStats>) -> Self {
        for (dev, d) in self.devices.iter_mut().enumerate() {
            d.count_into(Arc::clone(&stats), dev);
        }
        self.stats = Some(stats);
        self
    }

    /// The endpoint this instance serves.
    pub fn vm(&self) -> u16 {
        self.vm
    }

    /// The dialect latched so far.
    pub fn dialect(&self) -> Option<Dialect> {
        self.negotiation.dialect()
    }

    /// The shared areas (usable, and those whose relinquish is pending).
    pub fn areas(&self) -> &AreaTable {
        &self.areas
    }

    /// Whether the instance still holds normal-world memory (areas not yet relinquished). An
    /// instance that does must not be dropped: call [`BusInstance::reset`] again later.
    pub fn holds_memory(&self) -> bool {
        !self.areas.is_empty()
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

    /// Whether events wait to be pushed to the driver (the last
    /// [`push_events`](Self::push_events) stopped at one its busy RX buffer refused): it is to
    /// be tried again.
    #[inline]
    pub fn awaits_push(&self) -> bool {
        self.events.awaits_push()
    }

    /// Sends the endpoint's pending events as indirect messages if its driver takes them that
    /// way (EVENT_CONFIGURE INDIRECT, or G2 when indirect messaging is offered); returns how
    /// many went. Called once a message is answered; what the driver's busy RX buffer could not
    /// take stays queued for the next one.
    pub fn push_events(&mut self, services: &mut dyn BusServices) -> usize {
        match self.endpoint() {
            Some(endpoint) => self.events.push(&endpoint, &self.devices, services),
            None => 0,
        }
    }

    /// The service UUID of indirect messages to this endpoint's driver (by its dialect), once
    /// the dialect is latched.
    pub fn indirect_uuid(&self) -> Option<uuid::Uuid> {
        self.dialect().map(Dialect::indirect_uuid)
    }

    /// Whether a device has work that an earlier message's budget did not cover (it is
    /// resumed at the endpoint's next message).
    pub fn has_pending_work(&self) -> bool {
        self.devices.iter().any(DeviceTransport::has_pending_work)
    }

    /// Handles one frame from the endpoint and writes the answer frame into `out`. The header
    /// is parsed here, once; every handler gets the parsed frame (header and payload). The
    /// message gets one work budget ([`BusConfig::work_per_message`]): device work left by
    /// earlier messages is resumed first, then the frame is served with what is left. After
    /// the answer, one area whose relinquish is pending is retried.
    pub fn handle(
        &mut self,
        frame: &[u8],
        out: &mut [u8; MAX_MSG_SIZE],
        services: &mut dyn BusServices,
    ) -> Reply {
        self.log.tick();
        let mut budget = Budget::bytes(self.config.work_per_message);
        let endpoint = self.endpoint();
        if let Some(endpoint) = &endpoint {
            let ctx = routing::Devices {
                devices: &mut self.devices,
                areas: &self.areas,
                events: &mut self.events,
                endpoint,
                services,
            };
            routing::resume(ctx, &mut budget);
        }
        let reply = self.handle_frame(frame, out, services, &mut budget);
        let endpoint = self.endpoint();
        area_share::retry_pending(
            &mut self.areas,
            &mut self.retry_cursor,
            endpoint.as_ref(),
            &mut self.events,
            services,
            &mut self.log,
        );
        if let Some(stats) = &self.stats {
            let error = matches!(reply, Reply::Frame(_))
                && out.first().is_some_and(|t| t & TYPE_BUS != 0)
                && out.get(1) == Some(&msg::ERROR);
            stats.message(error, self.areas.len());
        }
        reply
    }

    fn handle_frame(
        &mut self,
        frame: &[u8],
        out: &mut [u8; MAX_MSG_SIZE],
        services: &mut dyn BusServices,
        budget: &mut Budget,
    ) -> Reply {
        out.fill(0);
        let bytes = frame.get(..MAX_MSG_SIZE).unwrap_or(frame);
        let frame = match Frame::parse(bytes) {
            Ok(f) if !f.header.is_response() => f,
            Ok(f) => {
                log::debug!(
                    "vm {:#x}: response frame (id {:#04x}) where a request was due",
                    self.vm,
                    f.header.msg_id
                );
                return frame::error(&f.header, out);
            }
            Err(e) => {
                log::debug!("vm {:#x}: undecodable frame: {e}", self.vm);
                return frame::error_raw(bytes, out);
            }
        };
        if frame.header.is_bus() {
            self.handle_bus(&frame, out, services)
        } else {
            self.handle_transport(&frame, out, services, budget)
        }
    }

    /// Forgets the endpoint: resets every device, relinquishes every area, drops events and
    /// negotiation (RESET, a change of dialect, or the endpoint was destroyed). Areas whose
    /// relinquish fails stay held, pending (see `area_share`); returns how many.
    pub fn reset(&mut self, services: &mut dyn BusServices) -> usize {
        for dev in &mut self.devices {
            dev.reset();
        }
        let (returned, pending) =
            area_share::relinquish_all(&mut self.areas, services, &mut self.log);
        self.log.line(format_args!(
            "reset: {returned} areas returned, {pending} pending"
        ));
        self.events.reset();
        self.negotiation.forget();
        pending
    }

    /// Latches `dialect`; a different one from before means a new driver: start over.
    fn latch(&mut self, dialect: Dialect, services: &mut dyn BusServices) {
        if self.negotiation.dialect().is_some_and(|d| d != dialect) {
            log::info!(
                "vm {:#x}: driver changed dialect to {}; resetting the bus instance",
                self.vm,
                dialect.name()
            );
            self.reset(services);
        }
        if self.negotiation.latch(dialect) {
            for dev in &mut self.devices {
                dev.set_layout(dialect.layout());
            }
        }
    }

    /// The endpoint as the handlers see it, once the bus is open (VERSION negotiated).
    fn endpoint(&self) -> Option<Endpoint> {
        Some(Endpoint {
            vm: self.vm,
            config: self.config,
            dialect: self.negotiation.negotiated()?,
        })
    }

    fn handle_bus(
        &mut self,
        frame: &Frame<'_>,
        out: &mut [u8; MAX_MSG_SIZE],
        services: &mut dyn BusServices,
    ) -> Reply {
        let header = &frame.header;
        if header.dev_num != 0 || ids::is_event(header.msg_id) {
            return frame::error(header, out);
        }
        match header.msg_id {
            msg::VERSION => return self.version(frame, out, services),
            msg::RESET => return self.bus_reset(frame, out, services),
            _ => {}
        }
        let Some(endpoint) = self.endpoint() else {
            log::debug!(
                "vm {:#x}: bus message {:#04x} before VERSION",
                self.vm,
                header.msg_id
            );
            return frame::error(header, out);
        };
        match header.msg_id {
            ids::bus::GET_DEVICES => {
                routing::get_devices(frame, self.devices.len(), &endpoint, out)
            }
            ids::bus::PING => routing::ping(frame, out),
            msg::AREA_SHARE => area_share::share(
                &mut self.areas,
                frame,
                &endpoint,
                services,
                &mut self.log,
                out,
            ),
            msg::AREA_UNSHARE => area_share::unshare(
                &mut self.areas,
                frame,
                &endpoint,
                services,
                &mut self.log,
                out,
            ),
            msg::EVENT_CONFIGURE => self.events.configure(frame, &endpoint, out),
            msg::EVENT_POLL => self.events.poll(frame, &endpoint, &self.devices, out),
            _ => frame::error(header, out),
        }
    }

    /// VERSION: its size shows the dialect, which is latched before the answer.
    fn version(
        &mut self,
        frame: &Frame<'_>,
        out: &mut [u8; MAX_MSG_SIZE],
        services: &mut dyn BusServices,
    ) -> Reply {
        let Some(dialect) = Dialect::of_version_request(frame.header.msg_size) else {
            log::debug!(
                "vm {:#x}: VERSION of unsupported size {}",
                self.vm,
                frame.header.msg_size
            );
            return frame::error(&frame.header, out);
        };
        if self.negotiation.negotiated() == Some(dialect) {
            self.log
                .line(format_args!("VERSION again ({})", dialect.name()));
        }
        self.latch(dialect, services);
        self.negotiation.version(frame, self.vm, self.config, out)
    }

    /// RESET: start over, as the dialect a RESET shows.
    fn bus_reset(
        &mut self,
        frame: &Frame<'_>,
        out: &mut [u8; MAX_MSG_SIZE],
        services: &mut dyn BusServices,
    ) -> Reply {
        if !frame.payload.is_empty() {
            return frame::error(&frame.header, out);
        }
        self.reset(services);
        self.latch(Dialect::of_reset(), services);
        negotiation::reset_done(&frame.header, out)
    }

    fn handle_transport(
        &mut self,
        frame: &Frame<'_>,
        out: &mut [u8; MAX_MSG_SIZE],
        services: &mut dyn BusServices,
        budget: &mut Budget,
    ) -> Reply {
        let Some(endpoint) = self.endpoint() else {
            return frame::error(&frame.header, out);
        };
        let ctx = routing::Devices {
            devices: &mut self.devices,
            areas: &self.areas,
            events: &mut self.events,
            endpoint: &endpoint,
            services,
        };
        routing::transport(frame, ctx, budget, out)
    }
}

impl Drop for BusInstance {
    fn drop(&mut self) {
        if self.holds_memory() {
            log::error!(
                "vm {:#x}: bus instance dropped holding {} areas; their memory stays retrieved",
                self.vm,
                self.areas.len()
            );
        }
    }
}
