//! Device → driver events of one endpoint: EVENT_CONFIGURE (how they are delivered), the
//! queue, the doorbell, and EVENT_POLL, which drains it.
//!
//! Events are coalesced: at most one pending EVENT_USED per (device, queue), one EVENT_CONFIG
//! per device, one EVENT_DEVICE per device and one AREA_RELEASE per area. The queue therefore
//! never holds more than a fixed number of entries, whatever the driver does; `capacity` is a
//! further hard bound.

use alloc::collections::VecDeque;
use core::fmt;

use virtio_msg::{bus::BusEvent, device::DeviceTransport, transport::DeviceEvent};
use zerocopy::IntoBytes;

use super::{
    config::Endpoint,
    frame::{self, Frame, MAX_MSG_SIZE, Reply},
    msg::{self, event_method},
    services::{BusServices, ServiceError},
};

/// One pending event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingEvent {
    /// EVENT_USED for queue `vq` of device `dev`.
    Used {
        /// Device number.
        dev: u16,
        /// Queue index.
        vq: u32,
    },
    /// EVENT_CONFIG for device `dev` (built from the device's state when polled).
    Config {
        /// Device number.
        dev: u16,
    },
    /// EVENT_DEVICE for device `dev`.
    Device {
        /// Device number.
        dev: u16,
        /// Bus state (READY, REMOVED).
        state: u16,
    },
    /// AREA_RELEASE for area `area`.
    AreaRelease {
        /// Area id.
        area: u16,
    },
}

/// For the log: the bus message and its fields (`Debug`, derived, would put the formatting of
/// every field's type in the image).
impl fmt::Display for PendingEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Used { dev, vq } => write!(f, "EVENT_USED (dev {dev}, vq {vq})"),
            Self::Config { dev } => write!(f, "EVENT_CONFIG (dev {dev})"),
            Self::Device { dev, state } => write!(f, "EVENT_DEVICE (dev {dev}, state {state})"),
            Self::AreaRelease { area } => write!(f, "AREA_RELEASE (area {area})"),
        }
    }
}

impl PendingEvent {
    /// Whether `other` is the same event slot (coalescing key).
    fn same_slot(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Used { dev: a, vq: x }, Self::Used { dev: b, vq: y }) => a == b && x == y,
            (Self::Config { dev: a }, Self::Config { dev: b }) => a == b,
            (Self::Device { dev: a, .. }, Self::Device { dev: b, .. }) => a == b,
            (Self::AreaRelease { area: a }, Self::AreaRelease { area: b }) => a == b,
            _ => false,
        }
    }
}

/// A bounded, coalescing FIFO of pending events.
#[derive(Debug)]
pub struct EventQueue {
    queue: VecDeque<PendingEvent>,
    capacity: usize,
    dropped: u64,
}

impl EventQueue {
    /// An empty queue holding at most `capacity` events.
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            capacity,
            dropped: 0,
        }
    }

    /// Queues `event` unless the same slot is already pending (an EVENT_DEVICE replaces the
    /// pending state of its device). Returns whether the queue went from empty to non-empty
    /// (the moment to ring a doorbell).
    pub fn push(&mut self, event: PendingEvent) -> bool {
        let was_empty = self.queue.is_empty();
        if let Some(slot) = self.queue.iter_mut().find(|e| e.same_slot(&event)) {
            *slot = event;
            return false;
        }
        if self.queue.len() >= self.capacity || self.queue.try_reserve(1).is_err() {
            self.dropped = self.dropped.saturating_add(1);
            log::warn!("event queue full or out of memory, dropping {event}");
            return false;
        }
        self.queue.push_back(event);
        was_empty
    }

    /// Takes the oldest pending event.
    pub fn pop(&mut self) -> Option<PendingEvent> {
        self.queue.pop_front()
    }

    /// The oldest pending event, left in the queue.
    pub fn front(&self) -> Option<PendingEvent> {
        self.queue.front().copied()
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Drops every pending event.
    pub fn clear(&mut self) {
        self.queue.clear();
    }

    /// Events dropped because the queue was full (should stay 0).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Event delivery configured by EVENT_CONFIGURE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// The driver polls on its own schedule.
    Poll,
    /// Ring this FF-A notification when events become pending.
    Notify(u16),
    /// Push each event to the driver as an indirect message.
    Indirect,
}

/// The event state of one endpoint: the queue and how the driver asked to be told.
#[derive(Debug)]
pub(crate) struct Events {
    queue: EventQueue,
    delivery: Option<Delivery>,
    /// Events pushed so far (the first is logged).
    pushed: u64,
    /// The last push stopped at an event the driver's busy RX buffer refused (it is still
    /// queued): [`push`](Self::push) is to be tried again.
    blocked: bool,
}

impl Events {
    /// No events, no delivery configured; at most `capacity` pending events.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queue: EventQueue::new(capacity),
            delivery: None,
            pushed: 0,
            blocked: false,
        }
    }

    /// Number of pending events.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Drops every pending event and the delivery configuration.
    pub(crate) fn reset(&mut self) {
        self.queue.clear();
        self.delivery = None;
        self.blocked = false;
    }

    /// Answers EVENT_CONFIGURE.
    pub(crate) fn configure(
        &mut self,
        frame: &Frame<'_>,
        endpoint: &Endpoint,
        out: &mut [u8; MAX_MSG_SIZE],
    ) -> Reply {
        let Some(req) = frame.exact::<msg::EventConfigureReq>() else {
            return frame::error(&frame.header, out);
        };
        if req.reserved != 0 {
            return frame::error(&frame.header, out);
        }
        let result = if !endpoint.dialect.binds_event_delivery() {
            // Accept and ring nothing.
            msg::RESULT_SUCCESS
        } else if self.delivery.is_some() {
            return frame::error(&frame.header, out);
        } else {
            match req.method {
                event_method::POLL => {
                    self.delivery = Some(Delivery::Poll);
                    msg::RESULT_SUCCESS
                }
                event_method::NOTIF if endpoint.config.notifications && req.notif_id.get() < 64 => {
                    self.delivery = Some(Delivery::Notify(req.notif_id.get()));
                    msg::RESULT_SUCCESS
                }
                event_method::INDIRECT if endpoint.config.indirect => {
                    self.delivery = Some(Delivery::Indirect);
                    msg::RESULT_SUCCESS
                }
                _ => msg::RESULT_ERROR,
            }
        };
        let resp = msg::Word16 {
            value: result.into(),
        };
        frame::bus_response(&frame.header, resp.as_bytes(), out)
    }

    /// Answers EVENT_POLL: the oldest pending event as the frame the driver receives, or an
    /// empty response if none is pending.
    pub(crate) fn poll(
        &mut self,
        frame: &Frame<'_>,
        endpoint: &Endpoint,
        devices: &[DeviceTransport],
        out: &mut [u8; MAX_MSG_SIZE],
    ) -> Reply {
        if !endpoint.dialect.serves_event_poll() || !frame.payload.is_empty() {
            return frame::error(&frame.header, out);
        }
        while let Some(event) = self.queue.pop() {
            if let Some(n) = encode(event, devices, out) {
                return Reply::Frame(n);
            }
        }
        frame::bus_response(&frame.header, &[], out)
    }

    /// How events reach the driver of `endpoint`: what its EVENT_CONFIGURE asked for, or, for
    /// a driver that takes pushed EVENT_USED only, pushes whenever the partition offers
    /// indirect messaging.
    fn delivery(&self, endpoint: &Endpoint) -> Option<Delivery> {
        if endpoint.dialect.takes_pushed_used_only() {
            return endpoint.indirect().then_some(Delivery::Indirect);
        }
        self.delivery
    }

    /// Whether events wait to be pushed: the last push stopped at one the driver's busy RX
    /// buffer refused, and events are still queued (an EVENT_POLL may have taken them since).
    #[inline]
    pub(crate) fn awaits_push(&self) -> bool {
        self.blocked && !self.queue.is_empty()
    }

    /// Queues `event` and rings the driver's doorbell if the queue just became non-empty.
    /// Pushed events go out with [`push`](Self::push), once the message is answered.
    pub(crate) fn queue(
        &mut self,
        event: PendingEvent,
        endpoint: &Endpoint,
        services: &mut dyn BusServices,
    ) {
        let pushed_used = matches!(event, PendingEvent::Used { .. })
            && self.delivery(endpoint) == Some(Delivery::Indirect);
        if !endpoint.dialect.queues_events() && !pushed_used {
            return;
        }
        if self.queue.push(event)
            && let Some(Delivery::Notify(id)) = self.delivery
            && let Err(e) = services.notify(endpoint.vm, id)
        {
            log::warn!("vm {:#x}: notification {id} failed: {e}", endpoint.vm);
        }
    }
}

impl Events {
    /// Sends the pending events to the driver as indirect messages, oldest first, when it asked
    /// for them that way; returns how many went. Stops at the first one the driver's RX buffer
    /// is too busy to take (it stays queued for the endpoint's next message); an event the SPMC
    /// refuses outright is dropped (and logged) rather than retried forever.
    pub(crate) fn push(
        &mut self,
        endpoint: &Endpoint,
        devices: &[DeviceTransport],
        services: &mut dyn BusServices,
    ) -> usize {
        if self.delivery(endpoint) != Some(Delivery::Indirect) {
            return 0;
        }
        let uuid = endpoint.dialect.indirect_uuid();
        let mut sent = 0usize;
        self.blocked = false;
        while let Some(event) = self.queue.front() {
            let mut out = [0u8; MAX_MSG_SIZE];
            let result = match encode(event, devices, &mut out).and_then(|n| out.get(..n)) {
                Some(frame) => services.push_indirect(endpoint.vm, uuid, frame),
                // Nothing to send for it (its device is gone).
                None => Ok(()),
            };
            match result {
                Ok(()) => {
                    if self.pushed == 0 {
                        log::info!(
                            "vm {:#x}: events pushed by FFA_MSG_SEND2 from now on (first: {event})",
                            endpoint.vm
                        );
                    }
                    self.pushed = self.pushed.saturating_add(1);
                    sent = sent.saturating_add(1);
                }
                Err(ServiceError::Busy) => {
                    self.blocked = true;
                    break;
                }
                Err(e) => log::warn!("vm {:#x}: {event} not pushed ({e}); dropped", endpoint.vm),
            }
            self.queue.pop();
        }
        sent
    }
}

/// Encodes a pending event as the frame the driver receives (events carry token 0).
fn encode(
    event: PendingEvent,
    devices: &[DeviceTransport],
    out: &mut [u8; MAX_MSG_SIZE],
) -> Option<usize> {
    let result = match event {
        PendingEvent::Used { dev, vq } => DeviceEvent::Used { vq_index: vq }.encode(dev, out),
        PendingEvent::Config { dev } => {
            let d = devices.get(usize::from(dev))?;
            DeviceEvent::Config {
                device_status: d.status(),
                generation: d.generation(),
                offset: 0,
                data: &[],
            }
            .encode(dev, out)
        }
        PendingEvent::Device { dev, state } => BusEvent::Device {
            dev_num: dev,
            state,
        }
        .encode(out),
        PendingEvent::AreaRelease { area } => {
            return msg::write_bus_frame(out, false, msg::AREA_RELEASE, 0, 0, &area.to_le_bytes());
        }
    };
    result.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_events_coalesce_per_queue() {
        let mut q = EventQueue::new(8);
        assert!(q.push(PendingEvent::Used { dev: 0, vq: 0 }));
        assert!(!q.push(PendingEvent::Used { dev: 0, vq: 0 }));
        assert!(!q.push(PendingEvent::Used { dev: 0, vq: 1 }));
        assert!(!q.push(PendingEvent::Used { dev: 1, vq: 0 }));
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop(), Some(PendingEvent::Used { dev: 0, vq: 0 }));
        assert_eq!(q.pop(), Some(PendingEvent::Used { dev: 0, vq: 1 }));
        assert_eq!(q.pop(), Some(PendingEvent::Used { dev: 1, vq: 0 }));
        assert_eq!(q.pop(), None);
        assert!(q.push(PendingEvent::Config { dev: 0 }));
    }

    #[test]
    fn device_event_replaces_state_and_capacity_bounds() {
        let mut q = EventQueue::new(2);
        q.push(PendingEvent::Device { dev: 3, state: 1 });
        q.push(PendingEvent::Device { dev: 3, state: 2 });
        assert_eq!(q.len(), 1);
        q.push(PendingEvent::AreaRelease { area: 1 });
        q.push(PendingEvent::AreaRelease { area: 2 });
        assert_eq!(q.len(), 2);
        assert_eq!(q.dropped(), 1);
        assert_eq!(q.pop(), Some(PendingEvent::Device { dev: 3, state: 2 }));
    }
}
