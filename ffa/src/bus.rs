//! The virtio-msg FF-A bus binding, device side. Being written.
