//! Normal-world virtio-msg FF-A driver library.
