//! [`BusConfig`], the partition-wide settings of the bus.

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
