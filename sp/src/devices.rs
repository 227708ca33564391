//! Device models: each generic over a small backend trait, reaching driver memory only through
//! [`SharedMem`](virtio_msg::SharedMem) and a device-side [`SplitQueue`](crate::virtqueue::SplitQueue).
//!
//! - [`rng`], [`blk`], [`console`], [`vsock`]: virtio-rng, virtio-blk, virtio-console and
//!   virtio-vsock.
//! - [`shell`]: the partition shell, which the console and a vsock port both serve.
//! - [`stream`]: the bounded byte queue, output and echo that the streaming devices and their
//!   services share.

pub mod blk;
pub mod console;
pub mod rng;
pub mod shell;
pub mod stream;
pub mod vsock;
