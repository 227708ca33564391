//! FF-A partition properties: the bits of the partition-info descriptor's properties field
//! (FF-A v1.2, FFA_PARTITION_INFO_GET, Table 6.2), as a partition's manifest declares them.

/// Receives direct requests (FFA_MSG_SEND_DIRECT_REQ).
pub const DIRECT_REQ_RECV: u32 = 1 << 0;
/// Sends direct requests.
pub const DIRECT_REQ_SEND: u32 = 1 << 1;
/// Sends and receives indirect messages.
pub const INDIRECT_MSG: u32 = 1 << 2;
/// Receives notifications.
pub const NOTIFICATION_RECV: u32 = 1 << 3;
/// Wants the "VM created" framework message.
pub const VM_CREATED: u32 = 1 << 6;
/// Wants the "VM destroyed" framework message.
pub const VM_DESTROYED: u32 = 1 << 7;
/// Runs in AArch64 state.
pub const AARCH64: u32 = 1 << 8;
/// Receives FFA_MSG_SEND_DIRECT_REQ2.
pub const DIRECT_REQ2_RECV: u32 = 1 << 9;
/// Sends FFA_MSG_SEND_DIRECT_REQ2.
pub const DIRECT_REQ2_SEND: u32 = 1 << 10;
