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
mod events;
mod instance;
pub mod msg;
mod services;
#[cfg(test)]
mod tests;

pub use area::{AreaMem, AreaTable};
pub use events::{EventQueue, PendingEvent};
pub use instance::{BusConfig, BusInstance, Dialect, Reply};
pub use services::{BusServices, FfaServices, RetrievedArea, Segment, ServiceError};

/// Largest virtio-msg frame the FF-A bus carries (x4..x16 of DIRECT_REQ2/RESP2; x17 stays 0).
pub const MAX_MSG_SIZE: usize = 104;

/// Number of payload registers of DIRECT_REQ2/RESP2 (x4..x17).
pub const PAYLOAD_REGS: usize = 14;

/// Bit position of the area id in a bus address.
pub const AREA_SHIFT: u32 = 48;
/// Mask of the byte offset in a bus address.
pub const AREA_OFFSET_MASK: u64 = (1 << AREA_SHIFT) - 1;

/// Builds the bus address of byte `offset` of area `area_id`.
pub const fn bus_address(area_id: u16, offset: u64) -> u64 {
    ((area_id as u64) << AREA_SHIFT) | (offset & AREA_OFFSET_MASK)
}

/// Copies a frame out of DIRECT_REQ2 payload registers (little-endian, byte 0 = LSB of x4).
pub fn regs_to_frame(regs: &[u64; PAYLOAD_REGS]) -> [u8; PAYLOAD_REGS * 8] {
    let mut out = [0u8; PAYLOAD_REGS * 8];
    for (chunk, reg) in out.chunks_exact_mut(8).zip(regs) {
        chunk.copy_from_slice(&reg.to_le_bytes());
    }
    out
}

/// Packs a frame into DIRECT_RESP2 payload registers; bytes past `frame` (and past
/// [`MAX_MSG_SIZE`]) are zero.
pub fn frame_to_regs(frame: &[u8]) -> [u64; PAYLOAD_REGS] {
    let mut bytes = [0u8; PAYLOAD_REGS * 8];
    let len = frame.len().min(MAX_MSG_SIZE);
    if let (Some(dst), Some(src)) = (bytes.get_mut(..len), frame.get(..len)) {
        dst.copy_from_slice(src);
    }
    let mut regs = [0u64; PAYLOAD_REGS];
    for (reg, chunk) in regs.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        *reg = u64::from_le_bytes(word);
    }
    regs
}
