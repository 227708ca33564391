//! The device side: what a device model implements ([`VirtioDevice`]) and the transport
//! engine that runs one device's state machine over virtio-msg ([`DeviceTransport`]).
//!
//! - `model`: [`VirtioDevice`], its errors, [`QueueConfig`] and the transport feature bits,
//!   re-exported here.
//! - `engine`: [`DeviceTransport`], re-exported here.
//! - `stats`: [`EndpointStats`], the counters of an endpoint's session.
//! - `mock` (tests and the `test-utils` feature): a configurable mock device.

mod engine;
#[cfg(any(test, feature = "test-utils"))]
pub mod mock;
mod model;
pub mod stats;
#[cfg(test)]
mod tests;

pub use engine::{DEFAULT_MAX_SIZE, DeviceTransport, Event, MAX_QUEUES, Refusal};
pub use model::{
    Budget, ConfigRejected, DeviceError, QueueConfig, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_EVENT_IDX,
    VIRTIO_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED, VIRTIO_F_RING_RESET, VIRTIO_F_VERSION_1,
    VirtioDevice, need_event,
};
pub use stats::EndpointStats;
