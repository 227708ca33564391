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
//!
//! Where things are:
//! - `instance`: [`BusInstance`], its state and the dispatch of each frame;
//! - `frame`: framing (size limit, registers), the frame parsed once on arrival, the answers
//!   ([`Reply`], ERROR);
//! - `dialect`: [`Dialect`], every G2/G3 difference, asked by the handlers below;
//! - `negotiation`: VERSION, the dialect latch, bus features, the RESET answer;
//! - `area_share`: AREA_SHARE / AREA_UNSHARE → retrieve / relinquish;
//! - `area`: the area table, bus addresses and [`AreaMem`], the devices' view of shared memory;
//! - `lifecycle`: the rate-limited memory-lifecycle log of an instance;
//! - `events`: EVENT_CONFIGURE, the coalescing event queue, doorbells, EVENT_POLL;
//! - `routing`: transport messages to devices, GET_DEVICES windows, PING;
//! - `config`: [`BusConfig`] and what a handler knows of the endpoint;
//! - [`msg`]: the bus messages' ids and wire layouts;
//! - `services`: [`BusServices`], what the bus needs from the partition runtime.
//!
//! Module imports flow one way: `instance` → the concerns (`negotiation`, `area_share`,
//! `events`, `routing`) → `area`, `config`, `dialect`, `frame`, `services` → `msg`.

mod area;
mod area_share;
mod config;
mod dialect;
mod events;
mod frame;
mod instance;
mod lifecycle;
pub mod msg;
mod negotiation;
mod routing;
mod services;
#[cfg(test)]
mod tests;

pub use area::{AREA_OFFSET_MASK, AREA_SHIFT, AreaMem, AreaState, AreaTable, bus_address};
pub use config::{BusConfig, WORK_PER_MESSAGE};
pub use dialect::Dialect;
pub use events::{EventQueue, PendingEvent};
pub use frame::{MAX_MSG_SIZE, PAYLOAD_REGS, Reply, frame_to_regs, refusal, regs_to_frame};
pub use instance::BusInstance;
pub use services::{
    BusServices, FfaServices, Mailbox, RetrievedArea, SEND_RETRIES, Segment, ServiceError, Stash,
};
