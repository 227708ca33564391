//! The virtio-msg transport ("Virtio Over Messages"), independent of any bus.
//!
//! Modules, leaves first; each imports only modules above it in this list (except the tests of
//! `frame`, which run every codec), and `tests/module_tree.rs` checks that no file imports one
//! that imports it back:
//! - [`error`]: [`DecodeError`] and [`EncodeError`], the codec errors.
//! - [`layout`] and [`ids`]: the wire [`Layout`]s and the message ID space.
//! - [`header`]: the 8-byte common header and the type bytes.
//! - `frame` (private): the helpers every codec shares and the decoding rules they enforce.
//! - [`transport`]: every transport message as a typed value, with strict decoding and encoding
//!   in both wire [`Layout`]s (values, raw wire structs and codecs side by side).
//! - [`bus`]: the standard bus messages (GET_DEVICES, PING, EVENT_DEVICE), laid out the same way.
//! - [`mem`]: [`SharedMem`], the only way device code reaches driver memory.
//! - [`device`]: the device-side transport engine, one state machine per device.
//! - [`driver`]: the driver-side client for the same messages.
//!
//! Facts come from the virtio-msg transport drafts (Dec-2025 "PR28" text and the 2026 layouts the
//! newest Linux driver speaks); see `shared/spec/virtio-msg.md`.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
// No panic path: everything this crate decodes or computes can come from the normal world,
// which is hostile, and a panic in the secure world stops the partition for every VM (a denial
// of service of the machine). Bad input is refused with the protocol's error instead; the few
// operations that provably cannot fail say why where they are allowed. Tests may panic.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
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
