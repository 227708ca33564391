//! Everything FF-A, above the `arm-ffa` crate (which is pure data).
//!
//! - [`arch`]: aarch64 support shared by the partition and the NWd payload (the SMC conduit,
//!   exception reports, volatile copies).
//! - [`conduit`]: [`Conduit`], the single place an FF-A call is issued, with the endpoint's RX/TX
//!   buffers.
//! - [`ids`]: the FF-A version this code speaks and the virtio-msg FF-A UUIDs.
//! - [`calls`]: typed FF-A calls ([`Ffa`]).
//! - [`indirect`]: the FF-A v1.2 header of indirect messages (FFA_MSG_SEND2).
//! - [`memory`]: memory transaction descriptors in the FF-A v1.1 and v1.2 layouts, and
//!   [`memory::NsMapper`], how a partition maps memory it retrieved.
//! - [`bus`]: the virtio-msg FF-A bus binding (Arm DEN0153), device side.
//! - `sim` (feature `sim`): a simulated FF-A world for host tests and `make run`.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
// No panic path: everything this crate decodes or computes can come from the normal world,
// which is hostile, and a panic in the secure world stops the partition for every VM (a denial
// of service of the machine). Bad input is refused with the protocol's error instead; the few
// operations that provably cannot fail say why where they are allowed. Tests may panic.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

extern crate alloc;

pub mod arch;
pub mod bus;
pub mod calls;
pub mod conduit;
pub mod ids;
pub mod indirect;
pub mod memory;
// The simulated world is host test infrastructure (std only, never built into an image): an
// overflow there is a harness bug that fails the test loudly (tests build with overflow
// checks). It stays under the other denials.
#[cfg(feature = "sim")]
#[allow(clippy::arithmetic_side_effects)]
pub mod sim;

pub use arm_ffa;
pub use calls::{Error, Ffa};
pub use conduit::Conduit;
pub use ids::{FFA_VERSION, VIRTIO_MSG_DEVICE_UUID, VIRTIO_MSG_DRIVER_UUID};
