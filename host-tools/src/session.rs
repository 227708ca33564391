//! The driver side of the virtio-msg FF-A bus: one session between this normal-world endpoint
//! and the partition, over FFA_MSG_SEND_DIRECT_REQ2.

use alloc::{collections::VecDeque, vec, vec::Vec};

use ffa::{
    Conduit, Ffa, VIRTIO_MSG_DEVICE_UUID,
    bus::{self, Dialect, MAX_MSG_SIZE, bus_address, msg},
    memory::{DataAccess, MemRange, MemTransaction, Receiver, ShareKind},
};
use virtio_msg::{
    Header,
    bus::{BusEvent, BusRequest, BusResponse, GetDevicesOrder},
    header::HEADER_SIZE,
    ids,
    transport::DeviceEvent,
};
use zerocopy::IntoBytes;

/// Times a G3 request is retried when the partition answers with the busy sentinel (as the
/// Linux G3 driver does).
pub const BUSY_RETRIES: usize = 3;
/// Most pushed events a session keeps for waiters.
pub const MAX_PUSHED: usize = 64;
/// Times a request is retried when the SPMC reports the partition busy (FFA_ERROR(BUSY)).
pub const FFA_BUSY_RETRIES: usize = 10_000;

/// A failed bus operation.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// An FF-A call failed.
    #[error("FF-A: {0}")]
    Ffa(#[from] ffa::Error),
    /// The partition stayed busy.
    #[error("partition busy")]
    Busy,
    /// The partition answered with an ERROR frame for this message id.
    #[error("partition answered ERROR for message {0:#04x}")]
    ErrorFrame(u16),
    /// The answer broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// The partition refused (result code in the answer).
    #[error("refused with result {0}")]
    Refused(u16),
}

/// A memory area shared with the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedArea {
    /// Area id on the bus.
    pub id: u16,
    /// FF-A memory handle.
    pub handle: u64,
    /// Physical address of the first byte.
    pub pa: u64,
    /// Size in 4 KiB pages.
    pub pages: u32,
}

impl SharedArea {
    /// Bus address of byte `offset` of the area.
    pub fn bus(&self, offset: u64) -> u64 {
        bus_address(self.id, offset)
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        u64::from(self.pages) * ffa::memory::PAGE_SIZE
    }

    /// Whether the area is empty (never: areas have at least one page).
    pub fn is_empty(&self) -> bool {
        self.pages == 0
    }
}

/// An event fetched with EVENT_POLL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// EVENT_USED for a device's queue.
    Used {
        /// Device number.
        dev: u16,
        /// Queue index.
        vq: u32,
    },
    /// EVENT_CONFIG for a device.
    Config {
        /// Device number.
        dev: u16,
        /// Device status.
        status: u32,
        /// Configuration generation.
        generation: u32,
    },
    /// EVENT_DEVICE.
    Device {
        /// Device number.
        dev: u16,
        /// New bus state.
        state: u16,
    },
    /// AREA_RELEASE: the partition dropped an area.
    AreaRelease {
        /// Area id.
        area: u16,
    },
}

/// How requests reach the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Messaging {
    /// FFA_MSG_SEND_DIRECT_REQ2 / RESP2: one round trip per request.
    #[default]
    Direct,
    /// FFA_MSG_SEND2 to the partition, FFA_RUN to give it the CPU, the answer by FFA_MSG_SEND2
    /// back (G3 only: the G2 driver sends direct requests whenever the partition takes them).
    Indirect,
}

/// How device → driver events reach this driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Events {
    /// G3: EVENT_POLL when waiting. G2: the used rings are looked at (the G2 driver's kthread),
    /// which is what a G2 session does whenever the partition does not offer indirect
    /// messaging (and pushed events whenever it does: the G2 driver has no choice).
    #[default]
    Poll,
    /// G3: an FF-A notification, then EVENT_POLL.
    Notify,
    /// Events pushed by the partition as indirect messages (G3: EVENT_CONFIGURE INDIRECT; G2:
    /// what its driver does when the partition offers indirect messaging).
    Indirect,
}

/// The messaging and event modes of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Modes {
    /// How requests go.
    pub messaging: Messaging,
    /// How events come.
    pub events: Events,
}

impl Modes {
    /// Direct requests; events by notification when `notify`, else polled.
    pub fn direct(notify: bool) -> Self {
        Self {
            messaging: Messaging::Direct,
            events: if notify { Events::Notify } else { Events::Poll },
        }
    }

    /// What the older `notify` flag meant in `dialect`: direct requests; G3 events by
    /// notification when `notify`, else polled; G2 whatever its driver does (the flag is
    /// ignored, as it always was).
    pub fn from_notify(dialect: Dialect, notify: bool) -> Self {
        Self::direct(notify && dialect == Dialect::G3)
    }

    /// Whether `dialect` defines these modes; the reason if not.
    pub fn check(self, dialect: Dialect) -> Result<(), &'static str> {
        match (dialect, self.messaging, self.events) {
            (Dialect::G2, Messaging::Indirect, _) => Err(
                "G2 drivers send direct requests (the partition takes them): no indirect messaging",
            ),
            (Dialect::G2, _, Events::Notify) => {
                Err("G2 drivers have no notification path: events are polled or pushed")
            }
            (Dialect::G3, Messaging::Indirect, Events::Poll | Events::Notify) => Err(
                "indirect messaging pushes the answers: take the events that way too (indirect)",
            ),
            _ => Ok(()),
        }
    }
}

/// Negotiated bus parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusInfo {
    /// Dialect spoken.
    pub dialect: Dialect,
    /// Bus feature bits the partition offered.
    pub bus_features: u32,
    /// Areas the partition accepts at once.
    pub max_areas: u16,
    /// The partition's FF-A version (G3 only; 0 for G2).
    pub ffa_version: u32,
    /// Whether events come with an FF-A notification (else: poll).
    pub notified: bool,
    /// The modes in use.
    pub modes: Modes,
}

/// A driver-side bus session with the partition `sp_id`.
pub struct BusSession<C: Conduit> {
    ffa: Ffa<C>,
    own_id: u16,
    sp_id: u16,
    info: BusInfo,
    token: u16,
    next_area: u16,
    /// Notification bit bound for events, if any.
    notif_id: Option<u16>,
    /// Events pushed by the partition (indirect messages) not yet taken by a waiter.
    pushed: VecDeque<Event>,
    /// Indirect messages received that were neither answers nor events (dropped, counted).
    stray: u64,
    /// Kicks sent only because a pushed event did not come (see [`kicks_for_pushed`](Self::kicks_for_pushed)).
    kicks_for_pushed: u64,
}

impl<C: Conduit> BusSession<C> {
    /// Opens a session: VERSION negotiation (G3: probe and echo; G2: one round trip) and
    /// EVENT_CONFIGURE (G3: a notification when the partition offers it and `notify` is
    /// set, else polling).
    pub fn connect(
        ffa: Ffa<C>,
        own_id: u16,
        sp_id: u16,
        dialect: Dialect,
        notify: bool,
    ) -> Result<Self, SessionError> {
        Self::connect_modes(
            ffa,
            own_id,
            sp_id,
            dialect,
            Modes::from_notify(dialect, notify),
        )
    }

    /// Opens a session with the given messaging and event modes (see [`Modes::check`]):
    /// VERSION and EVENT_CONFIGURE go by direct messages, then requests go the way `modes`
    /// says. Pushed events and indirect answers need the endpoint's notification bitmap (for
    /// the RX-full framework notification) and RX/TX buffers.
    pub fn connect_modes(
        ffa: Ffa<C>,
        own_id: u16,
        sp_id: u16,
        dialect: Dialect,
        modes: Modes,
    ) -> Result<Self, SessionError> {
        modes.check(dialect).map_err(SessionError::Protocol)?;
        let notify = modes.events == Events::Notify;
        let mut s = Self {
            ffa,
            own_id,
            sp_id,
            info: BusInfo {
                dialect,
                bus_features: 0,
                max_areas: 0,
                ffa_version: 0,
                notified: false,
                modes: Modes::default(),
            },
            token: 0,
            next_area: 1,
            notif_id: None,
            pushed: VecDeque::new(),
            stray: 0,
            kicks_for_pushed: 0,
        };
        match dialect {
            Dialect::G3 => s.negotiate_g3(notify, modes.events == Events::Indirect)?,
            Dialect::G2 => s.negotiate_g2()?,
        }
        let indirect = msg::features::INDIRECT_RX | msg::features::INDIRECT_TX;
        let offered = s.info.bus_features & indirect == indirect;
        let wants_indirect =
            modes.messaging == Messaging::Indirect || modes.events == Events::Indirect;
        if wants_indirect && !offered {
            return Err(SessionError::Protocol(
                "partition does not offer indirect messaging",
            ));
        }
        s.info.modes = Modes {
            messaging: modes.messaging,
            events: match dialect {
                _ if s.info.notified => Events::Notify,
                // The G2 driver has no choice: pushed events when the partition offers
                // indirect messaging (its polling kthread is off), else the used rings.
                Dialect::G2 if offered => Events::Indirect,
                Dialect::G2 => Events::Poll,
                Dialect::G3 => modes.events,
            },
        };
        Ok(s)
    }

    /// Negotiated parameters.
    pub fn info(&self) -> BusInfo {
        self.info
    }

    /// The FF-A interface (for memory sharing by callers).
    pub fn ffa(&mut self) -> &mut Ffa<C> {
        &mut self.ffa
    }

    /// Ends the session, giving the FF-A interface back.
    pub fn into_ffa(self) -> Ffa<C> {
        self.ffa
    }

    /// This endpoint's id.
    pub fn own_id(&self) -> u16 {
        self.own_id
    }

    /// The partition's id.
    pub fn sp_id(&self) -> u16 {
        self.sp_id
    }

    /// The next request token (G2 always uses 1, as its driver does).
    pub fn next_token(&mut self) -> u16 {
        if self.info.dialect == Dialect::G2 {
            return 1;
        }
        self.token = self.token.wrapping_add(1).max(1);
        self.token
    }

    /// Sends one frame and returns the answer frame (busy answers are retried for G3).
    pub fn exchange(&mut self, frame: &[u8]) -> Result<([u8; MAX_MSG_SIZE], usize), SessionError> {
        if frame.len() > MAX_MSG_SIZE {
            return Err(SessionError::Protocol("request larger than the bus allows"));
        }
        if self.info.modes.messaging == Messaging::Indirect {
            return self.exchange_indirect(frame);
        }
        let payload = bus::frame_to_regs(frame);
        for _ in 0..=BUSY_RETRIES {
            let regs = self.direct_req2(payload)?;
            let bytes = bus::regs_to_frame(&regs);
            if bytes.iter().all(|b| *b == 0) {
                if self.info.dialect == Dialect::G2 {
                    return Err(SessionError::Protocol("empty answer"));
                }
                continue;
            }
            let mut out = [0u8; MAX_MSG_SIZE];
            out.copy_from_slice(&bytes[..MAX_MSG_SIZE]);
            let header = Header::parse(&out).map_err(|_| SessionError::Protocol("bad header"))?;
            let n = usize::from(header.msg_size);
            refused(&header, &out)?;
            return Ok((out, n));
        }
        Err(SessionError::Busy)
    }

    /// Sends an event frame (EVENT_AVAIL). Over direct messages it is a request like any other
    /// and its answer (the acknowledgement) is returned; over indirect messages the partition
    /// answers nothing, and `None` is returned once it has run.
    pub fn send_event(
        &mut self,
        frame: &[u8],
    ) -> Result<Option<([u8; MAX_MSG_SIZE], usize)>, SessionError> {
        if self.info.modes.messaging == Messaging::Direct {
            let answer = self.exchange(frame)?;
            if self.info.modes.events == Events::Indirect {
                // What the partition pushed while it served the event (as the driver's RX
                // callback would take it).
                self.take_pushed()?;
            }
            return Ok(Some(answer));
        }
        self.send2(frame)?;
        self.run_partition()?;
        self.take_pushed()?;
        Ok(None)
    }

    /// FFA_MSG_SEND2 of `frame` to the partition, retried (bounded) while its RX buffer is busy.
    fn send2(&mut self, frame: &[u8]) -> Result<(), SessionError> {
        for _ in 0..FFA_BUSY_RETRIES {
            match self
                .ffa
                .send_indirect(self.own_id, self.sp_id, VIRTIO_MSG_DEVICE_UUID, frame)
            {
                Err(ffa::Error::Ffa(ffa::arm_ffa::FfaError::Busy)) => {
                    // The partition still holds an earlier message: let it run.
                    self.run_partition()?;
                }
                other => return Ok(other?),
            }
        }
        Err(SessionError::Busy)
    }

    /// FFA_RUN of the partition (vCPU 0), as the normal-world scheduler does after sending it a
    /// message; retried (bounded) while it runs for another endpoint.
    fn run_partition(&mut self) -> Result<(), SessionError> {
        for _ in 0..FFA_BUSY_RETRIES {
            match self.ffa.run(self.sp_id, 0) {
                Err(ffa::Error::Ffa(ffa::arm_ffa::FfaError::Busy)) => core::hint::spin_loop(),
                Ok(_) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        Err(SessionError::Busy)
    }

    /// Takes the indirect message in the RX buffer, if the RX-full notification says one is
    /// there: its frame, or `None`. Messages from anyone but the partition are dropped.
    fn take_indirect(&mut self) -> Result<Option<([u8; MAX_MSG_SIZE], usize)>, SessionError> {
        if !self.ffa.rx_full_get(self.own_id, false)? {
            return Ok(None);
        }
        let mut copy = [0u8; ffa::indirect::HEADER_SIZE + MAX_MSG_SIZE];
        let n = self.ffa.take_indirect(&mut copy)?;
        let m = ffa::indirect::parse(&copy[..n], MAX_MSG_SIZE)
            .map_err(|_| SessionError::Protocol("indirect message malformed"))?;
        if m.sender != self.sp_id || m.receiver != self.own_id {
            self.stray += 1;
            return Ok(None);
        }
        let want = self.info.dialect.indirect_uuid();
        if m.uuid != want {
            return Err(SessionError::Protocol(
                "indirect message for another service",
            ));
        }
        let mut out = [0u8; MAX_MSG_SIZE];
        out[..m.payload.len()].copy_from_slice(m.payload);
        Ok(Some((out, m.payload.len())))
    }

    /// Takes what the partition pushed into the RX buffer: an event goes to the pushed-event
    /// queue; anything else is counted as stray. Returns whether something was taken.
    pub fn take_pushed(&mut self) -> Result<bool, SessionError> {
        let Some((frame, _)) = self.take_indirect()? else {
            return Ok(false);
        };
        match decode_event(&frame) {
            Ok(e) => self.queue_pushed(e),
            Err(_) => self.stray += 1,
        }
        Ok(true)
    }

    /// Queues a pushed event for a waiter, once (an event already waiting is not repeated),
    /// at most [`MAX_PUSHED`] (the oldest goes).
    fn queue_pushed(&mut self, e: Event) {
        if self.pushed.contains(&e) {
            return;
        }
        if self.pushed.len() >= MAX_PUSHED {
            self.pushed.pop_front();
        }
        self.pushed.push_back(e);
    }

    /// How many pushed events wait to be taken.
    pub(crate) fn pushed_len(&self) -> usize {
        self.pushed.len()
    }

    /// Events pushed by the partition and not yet taken (see [`take_pushed`](Self::take_pushed)).
    pub fn pushed_events(&mut self) -> Vec<Event> {
        self.pushed.drain(..).collect()
    }

    /// Indirect messages that were neither an answer nor an event.
    pub fn stray_messages(&self) -> u64 {
        self.stray
    }

    /// Kicks (EVENT_AVAIL) a G2 session with pushed events sent only because an event it
    /// waited for did not come in time: Linux's G2 driver never sends those, so where the
    /// platform can wait (the simulated world) this stays 0 as long as the partition pushes
    /// what its driver's full RX buffer made it keep.
    pub fn kicks_for_pushed(&self) -> u64 {
        self.kicks_for_pushed
    }

    /// Counts one kick of [`kicks_for_pushed`](Self::kicks_for_pushed).
    pub(crate) fn count_kick_for_pushed(&mut self) {
        self.kicks_for_pushed += 1;
    }

    /// Gives the partition a chance to push what it holds (it runs, finds no message, and
    /// pushes its pending events), then takes what came.
    pub fn collect_pushed(&mut self) -> Result<(), SessionError> {
        if self.info.modes.messaging == Messaging::Indirect {
            self.run_partition()?;
        }
        self.take_pushed()?;
        Ok(())
    }

    /// One request over indirect messages: FFA_MSG_SEND2, FFA_RUN, the answer from the RX
    /// buffer. Pushed events met on the way are queued.
    fn exchange_indirect(
        &mut self,
        frame: &[u8],
    ) -> Result<([u8; MAX_MSG_SIZE], usize), SessionError> {
        self.send2(frame)?;
        self.run_partition()?;
        for _ in 0..=BUSY_RETRIES {
            let Some((out, n)) = self.take_indirect()? else {
                return Err(SessionError::Protocol("no answer to an indirect request"));
            };
            let header = Header::parse(&out).map_err(|_| SessionError::Protocol("bad header"))?;
            if ids::is_event(header.msg_id) && !header.is_response() {
                if let Ok(e) = decode_event(&out) {
                    self.queue_pushed(e);
                }
                self.run_partition()?;
                continue;
            }
            refused(&header, &out)?;
            return Ok((out, n));
        }
        Err(SessionError::Protocol("answer lost among pushed events"))
    }

    /// DIRECT_REQ2 to the partition. The SPMC answers FFA_ERROR(BUSY) while the partition runs
    /// another endpoint's request: that is retried with a short back-off (bounded).
    fn direct_req2(&mut self, payload: [u64; 14]) -> Result<[u64; 14], SessionError> {
        let mut backoff = 64u32;
        for _ in 0..FFA_BUSY_RETRIES {
            match self
                .ffa
                .direct_req2(self.own_id, self.sp_id, VIRTIO_MSG_DEVICE_UUID, payload)
            {
                Err(ffa::Error::Ffa(ffa::arm_ffa::FfaError::Busy)) => {
                    for _ in 0..backoff {
                        core::hint::spin_loop();
                    }
                    backoff = backoff.saturating_mul(2).min(1 << 16);
                }
                other => return Ok(other?),
            }
        }
        Err(SessionError::Busy)
    }

    /// Sends a bus request with `payload` and checks the answer is the response to it
    /// (type 0x03, same id, dev_num 0, same token); returns the answer frame.
    fn bus_request(
        &mut self,
        msg_id: u8,
        payload: &[u8],
    ) -> Result<([u8; MAX_MSG_SIZE], Header), SessionError> {
        let token = self.next_token();
        let mut frame = [0u8; MAX_MSG_SIZE];
        let n = msg::write_bus_frame(&mut frame, false, msg_id, 0, token, payload)
            .ok_or(SessionError::Protocol("request does not fit"))?;
        let (out, _) = self.exchange(&frame[..n])?;
        let header = Header::parse(&out).map_err(|_| SessionError::Protocol("bad header"))?;
        if !(header.is_bus() && header.is_response())
            || header.msg_id != msg_id
            || header.dev_num != 0
            || header.token != token
        {
            return Err(SessionError::Protocol(
                "answer does not match the bus request",
            ));
        }
        Ok((out, header))
    }

    fn negotiate_g3(&mut self, notify: bool, pushed: bool) -> Result<(), SessionError> {
        let probe = msg::VersionReqG3 {
            bus_version: 0.into(),
            transport_revision: 0.into(),
            ffa_version: msg::FFA_VERSION_1_2.into(),
        };
        let (out, h) = self.bus_request(msg::VERSION, probe.as_bytes())?;
        let offer = msg::exact::<msg::VersionRespG3>(&h, &out)
            .ok_or(SessionError::Protocol("VERSION answer is not 30 bytes"))?;
        if offer.bus_version.get() == 0 || offer.ffa_version.get() < msg::FFA_VERSION_1_2 {
            return Err(SessionError::Protocol("partition offers no usable version"));
        }
        let echo = msg::VersionReqG3 {
            bus_version: offer.bus_version,
            transport_revision: offer.transport_revision,
            ffa_version: msg::FFA_VERSION_1_2.into(),
        };
        let (out, h) = self.bus_request(msg::VERSION, echo.as_bytes())?;
        let agreed = msg::exact::<msg::VersionRespG3>(&h, &out)
            .ok_or(SessionError::Protocol("VERSION answer is not 30 bytes"))?;
        if agreed.bus_version != offer.bus_version
            || agreed.transport_revision != offer.transport_revision
        {
            return Err(SessionError::Protocol("VERSION echo not confirmed"));
        }
        let direct = msg::features::DIRECT_RX | msg::features::DIRECT_TX;
        let notif = msg::features::NOTIF_RX | msg::features::NOTIF_TX;
        let features = agreed.bus_features.get();
        if features & direct != direct {
            return Err(SessionError::Protocol(
                "partition does not offer direct messaging",
            ));
        }
        self.info.bus_features = features;
        self.info.max_areas = agreed.max_areas.get();
        self.info.ffa_version = agreed.ffa_version.get();
        // Events: pushed if asked for; a notification if both sides can, else polling.
        if pushed {
            if !self.event_configure(msg::event_method::INDIRECT, 0)? {
                return Err(SessionError::Protocol("EVENT_CONFIGURE INDIRECT refused"));
            }
            return Ok(());
        }
        if notify && features & notif == notif {
            let id: u16 = 0;
            if self
                .ffa
                .notification_bind(self.sp_id, self.own_id, 1 << id)
                .is_ok()
                && self.event_configure(msg::event_method::NOTIF, id)?
            {
                self.notif_id = Some(id);
                self.info.notified = true;
                return Ok(());
            }
        }
        if !self.event_configure(msg::event_method::POLL, 0)? {
            return Err(SessionError::Protocol("EVENT_CONFIGURE refused"));
        }
        Ok(())
    }

    fn event_configure(&mut self, method: u8, notif_id: u16) -> Result<bool, SessionError> {
        let req = msg::EventConfigureReq {
            method,
            reserved: 0,
            notif_id: notif_id.into(),
        };
        let (out, h) = self.bus_request(msg::EVENT_CONFIGURE, req.as_bytes())?;
        let result = msg::exact::<msg::Word16>(&h, &out)
            .ok_or(SessionError::Protocol("EVENT_CONFIGURE answer size"))?;
        Ok(result.value.get() == msg::RESULT_SUCCESS)
    }

    fn negotiate_g2(&mut self) -> Result<(), SessionError> {
        let req = msg::VersionReqG2 {
            bus_version: msg::BUS_VERSION_1_0.into(),
            transport_revision: msg::TRANSPORT_REVISION_1.into(),
        };
        let (out, h) = self.bus_request(msg::VERSION, req.as_bytes())?;
        let resp = msg::exact::<msg::VersionRespG2>(&h, &out)
            .ok_or(SessionError::Protocol("G2 VERSION answer is not 26 bytes"))?;
        if resp.bus_version.get() != msg::BUS_VERSION_1_0
            || resp.transport_revision.get() != msg::TRANSPORT_REVISION_1
            || resp.transport_features.get() != 0
            || resp.bus_features.get() & msg::features::DIRECT_RX == 0
        {
            return Err(SessionError::Protocol("G2 VERSION answer rejected"));
        }
        self.info.bus_features = resp.bus_features.get();
        self.info.max_areas = resp.area_num.get();
        // The G2 driver asks for NOTIF id 0 and never binds it.
        if !self.event_configure(msg::event_method::NOTIF, 0)? {
            return Err(SessionError::Protocol("EVENT_CONFIGURE refused"));
        }
        Ok(())
    }

    /// Every device number the partition offers (GET_DEVICES windows).
    pub fn devices(&mut self) -> Result<Vec<u16>, SessionError> {
        let mut found = Vec::new();
        if self.info.dialect == Dialect::G2 {
            let req = BusRequest::GetDevices {
                offset: 0,
                count: 255,
            };
            let (out, h) = self.bus_request(ids::bus::GET_DEVICES, &get_devices_payload(&req))?;
            let payload = h.payload(&out);
            if payload.len() < 7 {
                return Err(SessionError::Protocol("G2 GET_DEVICES answer too short"));
            }
            let num = u16::from_le_bytes([payload[2], payload[3]]);
            let next = u16::from_le_bytes([payload[4], payload[5]]);
            let bits = payload[6];
            if num == 0 || next != 0 || u32::from(num) != bits.count_ones() {
                return Err(SessionError::Protocol("G2 GET_DEVICES answer inconsistent"));
            }
            found.extend((0..8u16).filter(|n| bits & (1 << n) != 0));
            return Ok(found);
        }
        let mut offset = 0u16;
        for _ in 0..8192 {
            let req = BusRequest::GetDevices { offset, count: 256 };
            let token = self.next_token();
            let mut frame = [0u8; MAX_MSG_SIZE];
            let n = req
                .encode(token, &mut frame)
                .map_err(|_| SessionError::Protocol("GET_DEVICES encode"))?;
            let (out, _) = self.exchange(&frame[..n])?;
            let (h, resp) =
                BusResponse::decode(&out, GetDevicesOrder::NextThenCount, ids::bus::GET_DEVICES)
                    .map_err(|_| SessionError::Protocol("GET_DEVICES answer malformed"))?;
            if h.token != token {
                return Err(SessionError::Protocol("GET_DEVICES token"));
            }
            let BusResponse::Devices {
                offset: echoed,
                count,
                next_offset,
                bitmap,
            } = resp
            else {
                return Err(SessionError::Protocol("GET_DEVICES answer kind"));
            };
            if echoed != offset || count > 256 {
                return Err(SessionError::Protocol("GET_DEVICES window"));
            }
            for n in 0..count {
                if bitmap
                    .get(usize::from(n / 8))
                    .is_some_and(|b| b & (1 << (n % 8)) != 0)
                {
                    found.push(offset + n);
                }
            }
            if next_offset == 0 {
                return Ok(found);
            }
            if next_offset < offset.saturating_add(count) {
                return Err(SessionError::Protocol("GET_DEVICES went backwards"));
            }
            offset = next_offset;
        }
        Err(SessionError::Protocol("GET_DEVICES never ended"))
    }

    /// PING: returns the echoed value.
    pub fn ping(&mut self, data: u32) -> Result<u32, SessionError> {
        let (out, h) = self.bus_request(ids::bus::PING, &data.to_le_bytes())?;
        let p = h.payload(&out);
        let echoed: [u8; 4] = p
            .try_into()
            .map_err(|_| SessionError::Protocol("PING answer size"))?;
        Ok(u32::from_le_bytes(echoed))
    }

    /// RESET of the whole bus instance.
    pub fn reset(&mut self) -> Result<(), SessionError> {
        let (out, h) = self.bus_request(msg::RESET, &[])?;
        let r =
            msg::exact::<msg::Word16>(&h, &out).ok_or(SessionError::Protocol("RESET answer"))?;
        match r.value.get() {
            msg::RESULT_SUCCESS => Ok(()),
            other => Err(SessionError::Refused(other)),
        }
    }

    /// Shares `pages` pages at `pa` with the partition (FFA_MEM_SHARE) and announces them as a
    /// new area (AREA_SHARE). On refusal the memory is reclaimed.
    pub fn share(&mut self, pa: u64, pages: u32) -> Result<SharedArea, SessionError> {
        let desc = MemTransaction {
            sender: self.own_id,
            attributes: ffa::memory::ATTR_NORMAL_WB_INNER_SHAREABLE,
            flags: 0,
            handle: 0,
            tag: 0,
            receivers: vec![Receiver {
                endpoint: self.sp_id,
                access: DataAccess::ReadWrite,
                executable: false,
            }],
            ranges: vec![MemRange {
                address: pa,
                page_count: pages,
            }],
        };
        let handle = self.ffa.mem_send(ShareKind::Share, &desc)?;
        let id = self.next_area;
        let attrs = match self.info.dialect {
            Dialect::G3 => msg::attrs::LINUX_DEFAULT,
            Dialect::G2 => 0,
        };
        let req = msg::AreaShareReq {
            area_id: id.into(),
            mem_handle: handle.into(),
            mem_tag: 0.into(),
            page_count: pages.into(),
            sharing_attrs: attrs.into(),
        };
        let answer = self.bus_request(msg::AREA_SHARE, req.as_bytes());
        let result = answer.and_then(|(out, h)| {
            let r = msg::exact::<msg::AreaResp>(&h, &out)
                .ok_or(SessionError::Protocol("AREA_SHARE answer size"))?;
            if r.area_id.get() != id {
                return Err(SessionError::Protocol("AREA_SHARE area id"));
            }
            match r.result.get() {
                msg::RESULT_SUCCESS => Ok(()),
                other => Err(SessionError::Refused(other)),
            }
        });
        if let Err(e) = result {
            let _ = self.ffa.mem_reclaim(handle);
            return Err(e);
        }
        self.next_area = self.next_area.checked_add(1).unwrap_or(1).max(1);
        Ok(SharedArea {
            id,
            handle,
            pa,
            pages,
        })
    }

    /// Announces an already shared handle as area `id` (for tests of the partition's checks).
    pub fn area_share_raw(&mut self, req: &msg::AreaShareReq) -> Result<u16, SessionError> {
        let (out, h) = self.bus_request(msg::AREA_SHARE, req.as_bytes())?;
        let r = msg::exact::<msg::AreaResp>(&h, &out)
            .ok_or(SessionError::Protocol("AREA_SHARE answer size"))?;
        Ok(r.result.get())
    }

    /// AREA_UNSHARE, then FFA_MEM_RECLAIM.
    pub fn unshare(&mut self, area: &SharedArea) -> Result<(), SessionError> {
        for _ in 0..=BUSY_RETRIES {
            let (out, h) = self.bus_request(msg::AREA_UNSHARE, &area.id.to_le_bytes())?;
            let r = msg::exact::<msg::AreaResp>(&h, &out)
                .ok_or(SessionError::Protocol("AREA_UNSHARE answer size"))?;
            match r.result.get() {
                msg::RESULT_SUCCESS => {
                    self.ffa.mem_reclaim(area.handle)?;
                    return Ok(());
                }
                msg::RESULT_BUSY => continue,
                other => return Err(SessionError::Refused(other)),
            }
        }
        Err(SessionError::Busy)
    }

    /// EVENT_POLL once: the oldest pending event, or `None`.
    pub fn poll_event(&mut self) -> Result<Option<Event>, SessionError> {
        let token = self.next_token();
        let mut frame = [0u8; MAX_MSG_SIZE];
        let n = msg::write_bus_frame(&mut frame, false, msg::EVENT_POLL, 0, token, &[])
            .ok_or(SessionError::Protocol("EVENT_POLL encode"))?;
        let (out, _) = self.exchange(&frame[..n])?;
        let h = Header::parse(&out).map_err(|_| SessionError::Protocol("bad header"))?;
        if h.msg_id == msg::EVENT_POLL && h.is_bus() && h.is_response() {
            if usize::from(h.msg_size) != HEADER_SIZE || h.token != token || h.dev_num != 0 {
                return Err(SessionError::Protocol("EVENT_POLL empty answer malformed"));
            }
            return Ok(None);
        }
        decode_event(&out).map(Some)
    }

    /// Drains every pending event (bounded).
    pub fn drain_events(&mut self) -> Result<Vec<Event>, SessionError> {
        let mut events = Vec::new();
        for _ in 0..64 {
            match self.poll_event()? {
                Some(e) => events.push(e),
                None => break,
            }
        }
        Ok(events)
    }
}

/// `Err(ErrorFrame)` if the answer `out` (with `header`) is the bus ERROR frame.
fn refused(header: &Header, out: &[u8; MAX_MSG_SIZE]) -> Result<(), SessionError> {
    if header.is_bus() && header.is_response() && header.msg_id == msg::ERROR {
        let original = msg::exact::<msg::Word16>(header, out).map_or(0, |w| w.value.get());
        return Err(SessionError::ErrorFrame(original));
    }
    Ok(())
}

/// Decodes an event frame (device or bus event) as the driver receives it.
fn decode_event(out: &[u8; MAX_MSG_SIZE]) -> Result<Event, SessionError> {
    let h = Header::parse(out).map_err(|_| SessionError::Protocol("bad header"))?;
    if !ids::is_event(h.msg_id) {
        return Err(SessionError::Protocol("not an event"));
    }
    if !h.is_bus() {
        let (h, ev) =
            DeviceEvent::decode(out).map_err(|_| SessionError::Protocol("bad device event"))?;
        return Ok(match ev {
            DeviceEvent::Used { vq_index } => Event::Used {
                dev: h.dev_num,
                vq: vq_index,
            },
            DeviceEvent::Config {
                device_status,
                generation,
                ..
            } => Event::Config {
                dev: h.dev_num,
                status: device_status,
                generation,
            },
        });
    }
    if h.msg_id == msg::AREA_RELEASE {
        let w = msg::exact::<msg::Word16>(&h, out)
            .ok_or(SessionError::Protocol("AREA_RELEASE size"))?;
        return Ok(Event::AreaRelease {
            area: w.value.get(),
        });
    }
    let (_, ev) = BusEvent::decode(out).map_err(|_| SessionError::Protocol("bad bus event"))?;
    let BusEvent::Device { dev_num, state } = ev;
    Ok(Event::Device {
        dev: dev_num,
        state,
    })
}

fn get_devices_payload(req: &BusRequest) -> Vec<u8> {
    let mut frame = [0u8; MAX_MSG_SIZE];
    let n = req.encode(0, &mut frame).unwrap_or(HEADER_SIZE);
    frame[HEADER_SIZE..n].to_vec()
}
