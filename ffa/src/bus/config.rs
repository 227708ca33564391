//! What the bus handlers read besides the frame: [`BusConfig`], the partition-wide settings, and
//! [`Endpoint`], the negotiated endpoint a frame came from.

use super::dialect::Dialect;

/// Partition-wide settings of the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// Whether the partition can ring FF-A notifications (offers NOTIF_RX|NOTIF_TX).
    pub notifications: bool,
    /// Most areas one endpoint may have shared at once (reported as `max_areas`).
    pub max_areas: u16,
    /// Most 4 KiB pages one area may span.
    pub max_area_pages: u64,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            notifications: true,
            max_areas: 256,
            max_area_pages: 16 * 1024,
        }
    }
}

/// The endpoint a frame came from, once its dialect is latched: what every handler may ask.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Endpoint {
    /// Its FF-A endpoint id.
    pub(crate) vm: u16,
    /// The partition's settings.
    pub(crate) config: BusConfig,
    /// The dialect it speaks.
    pub(crate) dialect: Dialect,
}
