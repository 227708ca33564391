//! The FF-A version this code speaks and the UUIDs of the virtio-msg FF-A bus roles.

/// The FF-A version this code speaks.
pub const FFA_VERSION: arm_ffa::Version = arm_ffa::Version(1, 2);

/// The virtio-msg FF-A device-role UUID (the SP serves it; drivers send to it).
pub const VIRTIO_MSG_DEVICE_UUID: uuid::Uuid =
    uuid::Uuid::from_u128(0xc66028b5_2498_4aa1_9de7_77da6122abf0);
/// The virtio-msg FF-A driver-role UUID (G3).
pub const VIRTIO_MSG_DRIVER_UUID: uuid::Uuid =
    uuid::Uuid::from_u128(0xbd7fd089_6795_472b_b47f_db0c5d9a719d);
