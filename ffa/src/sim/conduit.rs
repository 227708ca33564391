//! [`SimConduit`]: the [`Conduit`] through which an endpoint of the simulated world makes its
//! FF-A calls (the sim's `smc #0`), with that endpoint's RX and TX buffers. Each call goes to
//! the simulated SPMC ([`super::dispatch::call`]).

use std::sync::Arc;

use super::{
    dispatch,
    reply::Regs,
    state::{Inner, Owner},
    types::{BUF_SIZE, simulating},
};
use crate::conduit::Conduit;

/// A [`Conduit`] into a `World` for one endpoint, with its own 4 KiB RX and TX buffers.
pub struct SimConduit {
    inner: Arc<Inner>,
    id: u16,
    tx: Vec<u8>,
    rx: Vec<u8>,
    /// VM conduits keep the world alive (partition conduits must not, or it never shuts
    /// down).
    _owner: Option<Arc<Owner>>,
}

impl SimConduit {
    /// A conduit for endpoint `id`; `owner` keeps the world alive while the conduit lives.
    pub(super) fn new(inner: Arc<Inner>, id: u16, owner: Option<Arc<Owner>>) -> Self {
        Self {
            inner,
            id,
            tx: vec![0; BUF_SIZE],
            rx: vec![0; BUF_SIZE],
            _owner: owner,
        }
    }

    /// The endpoint this conduit calls for.
    pub fn id(&self) -> u16 {
        self.id
    }
}

impl Conduit for SimConduit {
    // Out of line: the benchmark takes the simulator's cost out by function.
    #[inline(never)]
    fn call(&mut self, regs: Regs) -> Regs {
        simulating(|| dispatch::call(&self.inner, self.id, &regs, &self.tx, &mut self.rx))
    }

    fn tx(&mut self) -> &mut [u8] {
        &mut self.tx
    }

    fn interrupt_get(&mut self) -> Option<u32> {
        simulating(|| dispatch::interrupt_get(&self.inner, self.id))
    }

    fn rx(&self) -> &[u8] {
        &self.rx
    }
}
