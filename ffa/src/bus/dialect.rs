//! The two driver generations the bus serves, and every way they differ, in one place.
//!
//! An endpoint's [`Dialect`] is latched from what the wire shows (the size of its first VERSION,
//! or a RESET) and then asked: each handler calls a method here ("may I answer busy?", "which
//! GET_DEVICES layout?") instead of branching on the dialect itself. Nothing outside this file
//! matches on [`Dialect`]. Facts: `shared/spec/virtio-msg-ffa.md` (G3) and
//! `shared/spec/virtio-msg-ffa-g2.md` (G2); where a spec and the driver disagree, the driver we
//! pair with wins.

use virtio_msg::{Layout, bus::GetDevicesOrder, header::HEADER_SIZE};

use super::msg;

/// Which Linux driver generation an endpoint speaks, latched from its first VERSION.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// The single-file 2026 driver (`virtio_msg_ffa.c`): 16-byte VERSION, Dec-2025 transport
    /// layouts, GET_DEVICES answered with the device count, no EVENT_POLL, no busy handling.
    G2,
    /// Arm's PoC v2 driver (ALP2 bus): 20-byte VERSION probe + echo, 2026 transport layouts,
    /// EVENT_POLL, busy sentinel.
    G3,
}

/// How an endpoint negotiates VERSION.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handshake {
    /// G3: a 20-byte request ([`msg::VersionReqG3`]). Version 0/0 probes; the device offers
    /// its version and the driver echoes it to commit. Answered with [`msg::VersionRespG3`].
    /// The bus is open to other messages only once a version is agreed.
    ProbeAndEcho,
    /// G2: one 16-byte request ([`msg::VersionReqG2`]) that must name bus 1.0 / revision 1,
    /// answered with [`msg::VersionRespG2`]. Only a request naming that version opens the bus;
    /// any other is answered with zero versions and features (the driver then fails its probe)
    /// and the bus stays closed to everything but VERSION and RESET.
    Single,
}

impl Handshake {
    /// Size of this handshake's VERSION request frame.
    pub(crate) const fn request_size(self) -> usize {
        match self {
            Self::ProbeAndEcho => const { HEADER_SIZE + size_of::<msg::VersionReqG3>() },
            Self::Single => const { HEADER_SIZE + size_of::<msg::VersionReqG2>() },
        }
    }
}

/// How GET_DEVICES is asked and answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeviceListing {
    /// G2: one window at offset 0 (any other offset is an error). The answer's `count` is the
    /// number of devices (it sizes the driver's device array), `next_offset` is 0, the fields
    /// are in [`GetDevicesOrder::CountThenNext`] order and the bitmap is `bitmap_len` bytes
    /// (32 cover the 255 device numbers the driver asks for). The driver scans bitmap byte 0
    /// only, so only the first `addressable` device numbers are reachable.
    DeviceCount {
        /// Device numbers the driver can reach.
        addressable: usize,
        /// Bitmap bytes in the answer.
        bitmap_len: usize,
    },
    /// G3: windows as asked; the answer covers `min(count, what fits)` device numbers from
    /// `offset`, `count` is that window size and `next_offset` the next window with devices
    /// (0 = none), in `order`.
    Windows {
        /// Field order of the answer.
        order: GetDevicesOrder,
    },
}

impl Dialect {
    /// Both dialects, in the order the latch tries them.
    const ALL: [Self; 2] = [Self::G3, Self::G2];

    /// Its name, for log lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::G2 => "G2",
            Self::G3 => "G3",
        }
    }

    /// The transport layout this dialect pairs with.
    pub fn layout(self) -> Layout {
        match self {
            Self::G2 => Layout::Pr28,
            Self::G3 => Layout::V1Review,
        }
    }

    // ---- negotiation -------------------------------------------------------------------------

    /// The dialect whose VERSION request is `msg_size` bytes long (the latch), if any.
    pub(crate) fn of_version_request(msg_size: u16) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.handshake().request_size() == usize::from(msg_size))
    }

    /// The dialect a RESET shows: G2 never sends RESET, so a RESET means a G3 driver.
    pub(crate) fn of_reset() -> Self {
        Self::G3
    }

    /// How this dialect negotiates VERSION.
    pub(crate) fn handshake(self) -> Handshake {
        match self {
            Self::G2 => Handshake::Single,
            Self::G3 => Handshake::ProbeAndEcho,
        }
    }

    /// Whether VERSION offers FF-A notifications (NOTIF_RX|NOTIF_TX, when the partition can
    /// ring them). G2 has no notification path: it polls its used rings, or takes pushed
    /// EVENT_USED where indirect messages are offered.
    pub(crate) fn offers_notifications(self) -> bool {
        matches!(self, Self::G3)
    }

    // ---- busy ----------------------------------------------------------------------------------

    /// Whether the driver handles "busy, retry": the all-zero busy sentinel and the BUSY
    /// result code. G2 has neither (an all-zero RESP2 is data to it), so it is refused instead.
    pub(crate) fn busy_allowed(self) -> bool {
        matches!(self, Self::G3)
    }

    // ---- GET_DEVICES ---------------------------------------------------------------------------

    /// How GET_DEVICES is answered.
    pub(crate) fn device_listing(self) -> DeviceListing {
        match self {
            Self::G2 => DeviceListing::DeviceCount {
                addressable: 8,
                bitmap_len: 32,
            },
            Self::G3 => DeviceListing::Windows {
                order: GetDevicesOrder::NextThenCount,
            },
        }
    }

    // ---- AREA_SHARE ----------------------------------------------------------------------------

    /// Whether `sharing_attrs` 0 is accepted as a plain share with the pool's attributes (the
    /// G2 driver sends 0); otherwise the attributes must spell out RW, XN, shareable, WB normal,
    /// NS.
    pub(crate) fn accepts_zero_share_attrs(self) -> bool {
        matches!(self, Self::G2)
    }

    /// The page sizes, in 4 KiB FF-A pages, that AREA_SHARE's `page_count` may count in: G3
    /// counts FF-A pages; G2 counts Linux pages (4, 16 or 64 KiB).
    pub(crate) fn area_page_sizes(self) -> &'static [u64] {
        match self {
            Self::G2 => &[1, 4, 16],
            Self::G3 => &[1],
        }
    }

    /// Whether the driver shares all the memory it will use before it sets up any device, so
    /// that an endpoint with no area at FEATURES_OK has no shared memory at all (its rings
    /// would be raw physical addresses). G2 shares its whole DMA pool at bus probe, before the
    /// first GET_DEVICE_INFO; G3 exports ring memory per allocation, after FEATURES_OK.
    pub(crate) fn shares_memory_before_devices(self) -> bool {
        matches!(self, Self::G2)
    }

    // ---- events ------------------------------------------------------------------------------

    /// Whether device → driver events are queued (and notifications rung). G2 drivers never
    /// poll for events; they watch the used rings themselves.
    pub(crate) fn queues_events(self) -> bool {
        matches!(self, Self::G3)
    }

    /// Whether the driver takes EVENT_USED pushed by FFA_MSG_SEND2, and nothing else, when the
    /// partition offers indirect messaging. G2 does: with INDIRECT_RX|INDIRECT_TX offered it
    /// stops polling the used rings and its RX callback accepts only EVENT_USED (others are
    /// logged as unsupported and dropped), so only those are pushed.
    pub(crate) fn takes_pushed_used_only(self) -> bool {
        matches!(self, Self::G2)
    }

    /// The service UUID a partition's indirect message to the driver carries: G3 addresses the
    /// driver role (`bd7fd089-…`); G2's RX callback matches the partition's own UUID
    /// (`c66028b5-…`, the device role) and drops anything else.
    pub fn indirect_uuid(self) -> uuid::Uuid {
        match self {
            Self::G2 => crate::ids::VIRTIO_MSG_DEVICE_UUID,
            Self::G3 => crate::ids::VIRTIO_MSG_DRIVER_UUID,
        }
    }

    /// Whether EVENT_POLL is served (else it is an unknown message: ERROR).
    pub(crate) fn serves_event_poll(self) -> bool {
        matches!(self, Self::G3)
    }

    /// Whether EVENT_CONFIGURE binds a delivery method (once; POLL or NOTIF). G2 asks for NOTIF
    /// with id 0 but never binds it: it is accepted and nothing is rung.
    pub(crate) fn binds_event_delivery(self) -> bool {
        matches!(self, Self::G3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_request_size_latches_the_dialect() {
        assert_eq!(Dialect::of_version_request(20), Some(Dialect::G3));
        assert_eq!(Dialect::of_version_request(16), Some(Dialect::G2));
        for size in [0, 8, 12, 15, 17, 19, 21, 104] {
            assert_eq!(Dialect::of_version_request(size), None, "size {size}");
        }
        assert_eq!(Dialect::of_reset(), Dialect::G3);
    }

    #[test]
    fn policy_table() {
        let g2 = Dialect::G2;
        let g3 = Dialect::G3;
        assert_eq!((g2.layout(), g3.layout()), (Layout::Pr28, Layout::V1Review));
        assert_eq!((g2.name(), g3.name()), ("G2", "G3"));
        assert!(!g2.busy_allowed() && g3.busy_allowed());
        assert!(!g2.offers_notifications() && g3.offers_notifications());
        assert!(g2.accepts_zero_share_attrs() && !g3.accepts_zero_share_attrs());
        assert!(g2.shares_memory_before_devices() && !g3.shares_memory_before_devices());
        assert!(!g2.queues_events() && g3.queues_events());
        assert!(!g2.serves_event_poll() && g3.serves_event_poll());
        assert!(!g2.binds_event_delivery() && g3.binds_event_delivery());
    }
}
