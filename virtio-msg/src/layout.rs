//! Which revision of the transport message layouts a session speaks.

/// The wire layout of the transport messages, chosen per session (per bus instance).
///
/// The two revisions differ in GET_DEVICE_INFO, GET/SET_VQUEUE, GET_SHM and the minimum message
/// size; everything else is shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// The layouts of the spec after the review of its v1 patch (Linaro `virtio-msg` branch,
    /// 2026; readable only through the Linux headers `virtio_msg_protocol.h` of the G3 driver,
    /// Arm PoC v2): GET_DEVICE_INFO with a device UUID and 32-bit admin fields (52 bytes), a flags
    /// word in GET/SET_VQUEUE (ENABLED / ENABLE), 64-bit GET_SHM, minimum message size 52.
    V1Review,
    /// The layouts of Linaro virtio-msg-spec PR #28 (merged Dec 2025, the newest full spec
    /// text), spoken by the G2 single-file Linux driver: 32-byte
    /// GET_DEVICE_INFO with `num_feature_bits`, reserved words in GET/SET_VQUEUE, 32-bit GET_SHM.
    /// SET_VQUEUE is accepted both as 48 bytes (reserved words) and as 44 bytes (no reserved
    /// word at payload +12), because G2 kernels are built with either header.
    Pr28,
}

impl Layout {
    /// The smallest maximum message size a bus must advertise for this layout.
    pub const fn min_max_size(self) -> u16 {
        match self {
            Self::V1Review => 52,
            Self::Pr28 => 48,
        }
    }
}
