//! The normal-world side of the virtio-msg FF-A bus: a driver library and its tools.
//!
//! - [`session`]: the bus session with the partition (VERSION, GET_DEVICES, AREA_SHARE,
//!   EVENT_POLL, …) over FFA_MSG_SEND_DIRECT_REQ2, in either driver dialect.
//! - [`channel`]: the transport's [`virtio_msg::driver::Channel`] over that session.
//! - [`virtqueue`]: the driver side of a split virtqueue.
//! - [`connection`]: a bus session and its platform ([`Connection`]), the device list.
//! - [`rng`]: a virtio-rng driver; [`blk`]: a virtio-blk driver; [`console`]: a
//!   virtio-console driver; [`vsock`]: a virtio-vsock driver (stream sockets).
//! - [`conformance`]: the conformance suite (checks tied to spec clauses, any backend).
//! - [`platform`]: what the library needs from its environment (memory, doorbell).
//! - [`sim`] (std): the default backend, the simulated FF-A world with the partition
//!   in-process.
//! - [`spkg`] (std): the SP package writer.
//! - [`qemu`] (std): running QEMU and reading the UART of what it boots.
//! - [`thirdparty`] (std): the third-party `virtio-drivers` crate's transport and HAL over a
//!   bus session, so its drivers run against our devices.
//!
//! The driver library is `no_std` + `alloc` without the `std` feature, so the bare-metal
//! normal-world test payload runs the same code over `smc`.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

#[cfg(feature = "std")]
pub mod bench;
pub mod blk;
pub mod channel;
pub mod conformance;
pub mod connection;
pub mod console;
mod driver;
#[cfg(feature = "std")]
pub mod entropy;
pub mod platform;
#[cfg(feature = "std")]
pub mod qemu;
pub mod rng;
pub mod session;
#[cfg(feature = "std")]
pub mod sim;
#[cfg(feature = "std")]
pub mod spkg;
#[cfg(feature = "std")]
pub mod thirdparty;
pub mod virtqueue;
pub mod vsock;

pub use connection::{Connection, DeviceSummary, HostError, device_name, virtio_ids};
pub use platform::Platform;
#[cfg(feature = "std")]
pub use sim::{SimConnection, SimSystem};
