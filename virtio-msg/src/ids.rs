//! Message ids. Transport and bus messages have separate id spaces (type bit 1 selects).
//!
//! Ranges in both spaces: 0x00–0x3F standard requests, 0x40–0x7F standard events, 0x80–0xBF
//! implementation-defined (bus-specific) requests, 0xC0–0xFF implementation-defined events.

/// Transport message ids.
pub mod transport {
    /// GET_DEVICE_INFO.
    pub const GET_DEVICE_INFO: u8 = 0x02;
    /// GET_DEVICE_FEATURES.
    pub const GET_DEVICE_FEATURES: u8 = 0x03;
    /// SET_DRIVER_FEATURES.
    pub const SET_DRIVER_FEATURES: u8 = 0x04;
    /// GET_CONFIG.
    pub const GET_CONFIG: u8 = 0x05;
    /// SET_CONFIG.
    pub const SET_CONFIG: u8 = 0x06;
    /// GET_DEVICE_STATUS.
    pub const GET_DEVICE_STATUS: u8 = 0x07;
    /// SET_DEVICE_STATUS.
    pub const SET_DEVICE_STATUS: u8 = 0x08;
    /// GET_VQUEUE.
    pub const GET_VQUEUE: u8 = 0x09;
    /// SET_VQUEUE.
    pub const SET_VQUEUE: u8 = 0x0A;
    /// RESET_VQUEUE.
    pub const RESET_VQUEUE: u8 = 0x0B;
    /// GET_SHM.
    pub const GET_SHM: u8 = 0x0C;
    /// EVENT_CONFIG (device → driver event).
    pub const EVENT_CONFIG: u8 = 0x40;
    /// EVENT_AVAIL (driver → device event).
    pub const EVENT_AVAIL: u8 = 0x41;
    /// EVENT_USED (device → driver event).
    pub const EVENT_USED: u8 = 0x42;
}

/// Standard bus message ids.
pub mod bus {
    /// GET_DEVICES.
    pub const GET_DEVICES: u8 = 0x02;
    /// PING.
    pub const PING: u8 = 0x03;
    /// EVENT_DEVICE (device-side bus → driver-side bus event).
    pub const EVENT_DEVICE: u8 = 0x40;
}

/// Whether `id` is in an event range (bit 6 set).
pub const fn is_event(id: u8) -> bool {
    id & 0x40 != 0
}
