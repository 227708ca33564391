//! What the bus handlers read besides the frame: [`BusConfig`], the partition-wide settings, and
//! [`Endpoint`], the negotiated endpoint a frame came from.

use super::dialect::Dialect;

/// The default [`BusConfig::work_per_message`]: 256 KiB, four of virtio-rng's largest requests
/// (a few hundred thousand instructions), far above what a Linux driver asks per kick.
pub const WORK_PER_MESSAGE: u64 = 256 * 1024;

/// Partition-wide settings of the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// Whether the partition can ring FF-A notifications (offers NOTIF_RX|NOTIF_TX).
    pub notifications: bool,
    /// Whether the partition sends and receives indirect messages (FFA_MSG_SEND2 through its
    /// RX/TX buffers): it then offers INDIRECT_RX|INDIRECT_TX to G3 drivers, serves requests
    /// that arrive that way and accepts EVENT_CONFIGURE INDIRECT.
    pub indirect: bool,
    /// Whether G2 drivers are offered indirect messaging too (with [`indirect`](Self::indirect)):
    /// a G2 driver so offered stops polling its used rings (its 1 ms kthread) and takes pushed
    /// EVENT_USED only. On by default. Its RX buffer holds one message until its FF-A core
    /// has fetched it, so of two events raised by one message (a console kick returns buffers
    /// on both its queues) the second finds the buffer full (FFA_MSG_SEND2 BUSY); the
    /// partition's push retry timer sends it later (`sp::partition`, 100 µs backing off to
    /// 10 ms), since a G2 driver waiting for that event sends nothing (a `/dev/hwrng` read
    /// hung so under Hafnium with Linux 6.12 before the timer). Off: G2 polls even where
    /// indirect messages are offered.
    pub g2_pushed_events: bool,
    /// Most areas one endpoint may have shared at once (reported as `max_areas`).
    pub max_areas: u16,
    /// Most 4 KiB pages one area may span.
    pub max_area_pages: u64,
    /// Device work one message may cause, in bytes (virtio_msg::device::Budget): what one kick
    /// did not get to is resumed at the endpoint's next message, so that no endpoint holds the
    /// partition, and every other endpoint, for longer than this.
    pub work_per_message: u64,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            notifications: true,
            indirect: true,
            g2_pushed_events: true,
            max_areas: 256,
            max_area_pages: 16 * 1024,
            work_per_message: WORK_PER_MESSAGE,
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

impl Endpoint {
    /// Whether this endpoint is offered indirect messaging (see [`BusConfig::indirect`] and
    /// [`BusConfig::g2_pushed_events`]).
    pub(crate) fn indirect(&self) -> bool {
        self.config.indirect && (self.dialect != Dialect::G2 || self.config.g2_pushed_events)
    }
}
