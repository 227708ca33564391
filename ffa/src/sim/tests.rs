//! Tests of the simulated world, mostly through the typed calls ([`Ffa`](crate::calls::Ffa)) as real
//! endpoints would make them, one file per FF-A area.

mod contexts;
mod indirect;
mod memory;
mod messaging;
mod notifications;
mod relinquish;
mod setup;
mod support;
mod timer;
