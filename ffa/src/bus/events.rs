//! The per-endpoint queue of device → driver events, drained by EVENT_POLL.
//!
//! Events are coalesced: at most one pending EVENT_USED per (device, queue), one EVENT_CONFIG
//! per device, one EVENT_DEVICE per device and one AREA_RELEASE per area. The queue therefore
//! never holds more than a fixed number of entries, whatever the driver does; `capacity` is a
//! further hard bound.

use alloc::collections::VecDeque;

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
        if self.queue.len() >= self.capacity {
            self.dropped = self.dropped.saturating_add(1);
            log::warn!("event queue full, dropping {event:?}");
            return false;
        }
        self.queue.push_back(event);
        was_empty
    }

    /// Takes the oldest pending event.
    pub fn pop(&mut self) -> Option<PendingEvent> {
        self.queue.pop_front()
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
