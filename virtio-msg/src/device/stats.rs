//! What one driver endpoint's session has done, counted as it happens: its bus messages and
//! the work of each of its devices. The counters are atomics in one shared block
//! ([`EndpointStats`], behind an `Arc`): the bus and the transport engines add to it while
//! they serve, and a reader that runs elsewhere (the partition shell's `stats`, inside one of
//! the endpoint's own devices) copies them ([`EndpointStats::endpoint`],
//! [`EndpointStats::device`]) without a lock.
//!
//! Counters only grow (64 bits: no session reaches their wrap); each is exact on its own, a snapshot is not one instant
//! (they are read one by one, `Relaxed`).

use core::sync::atomic::{AtomicU64, Ordering};

/// Devices per endpoint that are counted (device numbers `0..COUNTED_DEVICES`); a device
/// numbered higher is served but not counted.
pub const COUNTED_DEVICES: usize = 8;

/// One counter.
#[derive(Debug, Default)]
struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    fn add(&self, n: u64) {
        // Wrapping, in principle: 2^64 messages or bytes are not reached.
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One device's counters, as the transport engine keeps them.
#[derive(Debug, Default)]
struct DeviceCounters {
    messages: Counter,
    kicks: Counter,
    chains: Counter,
    bytes: Counter,
    failures: Counter,
}

impl DeviceCounters {
    const fn new() -> Self {
        Self {
            messages: Counter::new(),
            kicks: Counter::new(),
            chains: Counter::new(),
            bytes: Counter::new(),
            failures: Counter::new(),
        }
    }
}

/// A copy of one device's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceSnapshot {
    /// Transport messages to the device.
    pub messages: u64,
    /// Notifications that reached the device (EVENT_AVAIL, and resumed work).
    pub kicks: u64,
    /// Descriptor chains it returned to the driver.
    pub chains: u64,
    /// Bytes its chains moved (what it read and wrote in the driver's buffers).
    pub bytes: u64,
    /// Times it failed (DEVICE_NEEDS_RESET set).
    pub failures: u64,
}

/// A copy of one endpoint's own counters (its devices': [`EndpointStats::device`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointSnapshot {
    /// Messages the bus received from the endpoint.
    pub messages: u64,
    /// ERROR responses it answered with.
    pub errors: u64,
    /// Memory areas the endpoint has shared and the bus holds, at the last message.
    pub areas: u64,
}

/// One endpoint's counters (see the [module docs](self)).
#[derive(Debug, Default)]
pub struct EndpointStats {
    messages: Counter,
    errors: Counter,
    areas: Counter,
    devices: [DeviceCounters; COUNTED_DEVICES],
}

impl EndpointStats {
    /// All zero.
    pub const fn new() -> Self {
        Self {
            messages: Counter::new(),
            errors: Counter::new(),
            areas: Counter::new(),
            devices: [const { DeviceCounters::new() }; COUNTED_DEVICES],
        }
    }

    /// A message arrived; `error`: it was answered with ERROR. `areas`: the areas held after it.
    pub fn message(&self, error: bool, areas: usize) {
        self.messages.add(1);
        if error {
            self.errors.add(1);
        }
        self.areas.set(u64::try_from(areas).unwrap_or(u64::MAX));
    }

    /// Device `dev` was sent a transport message.
    pub fn device_message(&self, dev: usize) {
        if let Some(d) = self.devices.get(dev) {
            d.messages.add(1);
        }
    }

    /// Device `dev` was notified and returned `chains` chains that moved `bytes`; `failed`:
    /// the notification failed the device.
    pub fn device_work(&self, dev: usize, chains: u64, bytes: u64, failed: bool) {
        if let Some(d) = self.devices.get(dev) {
            d.kicks.add(1);
            d.chains.add(chains);
            d.bytes.add(bytes);
            if failed {
                d.failures.add(1);
            }
        }
    }

    /// The endpoint's own counters now.
    pub fn endpoint(&self) -> EndpointSnapshot {
        EndpointSnapshot {
            messages: self.messages.get(),
            errors: self.errors.get(),
            areas: self.areas.get(),
        }
    }

    /// Device `dev`'s counters now (`None` past [`COUNTED_DEVICES`]).
    pub fn device(&self, dev: usize) -> Option<DeviceSnapshot> {
        let d = self.devices.get(dev)?;
        Some(DeviceSnapshot {
            messages: d.messages.get(),
            kicks: d.kicks.get(),
            chains: d.chains.get(),
            bytes: d.bytes.get(),
            failures: d.failures.get(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_device() {
        let stats = EndpointStats::new();
        stats.message(false, 2);
        stats.message(true, 1);
        stats.device_message(1);
        stats.device_work(1, 3, 12_288, false);
        stats.device_work(1, 0, 0, true);
        stats.device_work(COUNTED_DEVICES, 1, 1, true);
        stats.device_message(COUNTED_DEVICES);
        let s = stats.endpoint();
        assert_eq!((s.messages, s.errors, s.areas), (2, 1, 1));
        assert_eq!(
            stats.device(1).unwrap(),
            DeviceSnapshot {
                messages: 1,
                kicks: 2,
                chains: 3,
                bytes: 12_288,
                failures: 1
            }
        );
        assert!(
            (0..COUNTED_DEVICES)
                .filter(|&i| i != 1)
                .all(|i| stats.device(i) == Some(DeviceSnapshot::default()))
        );
        assert_eq!(stats.device(COUNTED_DEVICES), None);
    }
}
