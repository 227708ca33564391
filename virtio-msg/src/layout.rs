//! Which revision of the transport message layouts a session speaks.

/// The wire layout of the transport messages, chosen per session (per bus instance).
///
/// The two revisions differ in GET_DEVICE_INFO, GET/SET_VQUEUE, GET_SHM and the minimum message
/// size; everything else is shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// The 2026 layouts spoken by the newest Linux driver (G3 / Arm PoC v2): GET_DEVICE_INFO with
    /// a device UUID and 32-bit admin fields (52 bytes), a flags word in GET/SET_VQUEUE
    /// (ENABLED / ENABLE), 64-bit GET_SHM, minimum message size 52.
    V2026,
    /// The Dec-2025 ("PR28") layouts spoken by the G2 single-file Linux driver: 32-byte
    /// GET_DEVICE_INFO with `num_feature_bits`, reserved words in GET/SET_VQUEUE, 32-bit GET_SHM.
    /// SET_VQUEUE is accepted both as 48 bytes (reserved words) and as 44 bytes (no reserved
    /// word at payload +12), because G2 kernels are built with either header.
    Dec2025,
}

impl Layout {
    /// The smallest maximum message size a bus must advertise for this layout.
    pub const fn min_max_size(self) -> u16 {
        match self {
            Self::V2026 => 52,
            Self::Dec2025 => 48,
        }
    }
}
