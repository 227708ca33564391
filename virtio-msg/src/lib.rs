//! The virtio-msg transport ("Virtio Over Messages"), independent of any bus.
//!
//! - [`header`] and [`ids`]: the 8-byte common header and the message ID space.
//! - [`transport`]: every transport message as a typed value, with strict decoding and encoding
//!   in both wire [`Layout`]s.
//! - [`bus`]: the standard bus messages (GET_DEVICES, PING, EVENT_DEVICE).
//! - [`mem`]: [`SharedMem`], the only way device code reaches driver memory.
//! - [`device`]: the device-side transport engine, one state machine per device.
//! - [`driver`]: the driver-side client for the same messages.
//!
//! Facts come from the virtio-msg transport drafts (Dec-2025 "PR28" text and the 2026 layouts the
//! newest Linux driver speaks); see `shared/spec/virtio-msg.md`.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

extern crate alloc;

pub mod bus;
pub mod device;
pub mod driver;
pub mod error;
mod frame;
pub mod header;
pub mod ids;
pub mod layout;
pub mod mem;
pub mod transport;

pub use error::{DecodeError, EncodeError};
pub use header::Header;
pub use layout::Layout;
pub use mem::{MemError, SharedMem};
