//! The standard bus messages as typed values, and the constants their fields use.

/// Field order of the GET_DEVICES response, which differs between revisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GetDevicesOrder {
    /// `offset, count, next_offset, bitmap` (Dec-2025 spec text; the G2 Linux driver).
    CountThenNext,
    /// `offset, next_offset, count, bitmap` (2026 Linux driver, G3).
    NextThenCount,
}

/// EVENT_DEVICE state: the device is ready (ADDED in 2026 naming).
pub const DEVICE_STATE_READY: u16 = 0x0001;
/// EVENT_DEVICE state: the device is gone.
pub const DEVICE_STATE_REMOVED: u16 = 0x0002;

/// A standard bus request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusRequest {
    /// GET_DEVICES (0x02): a window of device numbers.
    GetDevices {
        /// First device number of the window (the spec asks for a multiple of 8).
        offset: u16,
        /// Window size in device numbers (the spec asks for a multiple of 8).
        count: u16,
    },
    /// PING (0x03).
    Ping {
        /// Value to echo.
        data: u32,
    },
}

/// A standard bus response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusResponse<'a> {
    /// GET_DEVICES response.
    Devices {
        /// Echo of the window start.
        offset: u16,
        /// Device numbers covered (bitmap holds `ceil(count / 8)` bytes).
        count: u16,
        /// Next window start, 0 = no more devices.
        next_offset: u16,
        /// Presence bitmap, LSB first: bit n of byte b = device `offset + 8b + n`.
        bitmap: &'a [u8],
    },
    /// PING response: the echo.
    Ping {
        /// The echoed value.
        data: u32,
    },
}

/// A standard bus event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusEvent {
    /// EVENT_DEVICE (0x40).
    Device {
        /// Device number concerned.
        dev_num: u16,
        /// [`DEVICE_STATE_READY`], [`DEVICE_STATE_REMOVED`] or another state value.
        state: u16,
    },
}
