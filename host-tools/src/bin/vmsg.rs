//! `vmsg`: drive the virtio-msg secure partition from the normal world.
fn main() {}
