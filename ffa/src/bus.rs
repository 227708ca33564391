//! The virtio-msg FF-A bus binding (Arm DEN0153), device side.
//!
//! Each normal-world endpoint that talks to the partition gets its own [`BusInstance`]: its
//! negotiation state and dialect, its devices, its shared-memory areas and its event queue.
//! Frames arrive in FFA_MSG_SEND_DIRECT_REQ2 (x4..x17, at most [`MAX_MSG_SIZE`] bytes) and each
//! one gets exactly one answer frame for DIRECT_RESP2.
//!
//! Two driver generations are served, latched per endpoint from what the wire shows:
//! - [`Dialect::G3`] (Arm PoC v2 / ALP2 bus; 2026 transport layouts): VERSION probe + echo
//!   (20-byte request), EVENT_POLL, busy sentinel, exact-size checks everywhere.
//! - [`Dialect::G2`] (the 2026 single-file Linux driver; Dec-2025 transport layouts): one
//!   16-byte VERSION, GET_DEVICES `{0, 255}` answered with the device count, no event polling, no
//!   busy handling.

mod area;
mod config;
mod dialect;
mod events;
mod frame;
mod instance;
pub mod msg;
mod services;
#[cfg(test)]
mod tests;

pub use area::{AREA_OFFSET_MASK, AREA_SHIFT, AreaMem, AreaTable, bus_address};
pub use config::BusConfig;
pub use dialect::Dialect;
pub use events::{EventQueue, PendingEvent};
pub use frame::{MAX_MSG_SIZE, PAYLOAD_REGS, Reply, frame_to_regs, regs_to_frame};
pub use instance::BusInstance;
pub use services::{BusServices, FfaServices, RetrievedArea, Segment, ServiceError};
