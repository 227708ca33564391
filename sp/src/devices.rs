//! Device models: each generic over a small backend trait, reaching driver memory only through
//! [`SharedMem`](virtio_msg::SharedMem) and a device-side [`SplitQueue`](crate::virtqueue::SplitQueue).

pub mod blk;
pub mod console;
pub mod rng;
