//! The driver side: a client that speaks the transport messages to one device.
//!
//! [`DeviceClient`] encodes requests, sends them through a [`Channel`] (the bus), and checks
//! every response strictly: type, message id and exact size (the decoder), device number and
//! token (here), and every echoed field. It follows the Linux initialization sequence
//! ([`DeviceClient::initialize`]): GET_DEVICE_INFO, reset, ACKNOWLEDGE, DRIVER, features,
//! FEATURES_OK with its check; then the caller sets up queues and calls
//! [`DeviceClient::driver_ok`].
//!
//! Tokens: requests carry a counter that is never 0; events (EVENT_AVAIL) carry 0.
//!
//! - `channel`: [`Channel`] and [`ChannelError`], re-exported here.
//! - `client`: [`DeviceClient`], [`DriverError`] and the values it returns, re-exported here.

mod channel;
mod client;

pub use channel::{Channel, ChannelError};
pub use client::{
    CONFIG_READ_ATTEMPTS, DeviceClient, DriverError, RESET_POLLS, ShmRegion, VqueueInfo,
};
