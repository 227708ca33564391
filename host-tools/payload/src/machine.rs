//! What the payload needs from the machine it runs on: [`Machine`] (the image implements it
//! over `smc`, host tests over the simulated FF-A world).

use ffa::Conduit;
use vmsg_host::Platform;

/// What the flow needs from the machine it runs on.
pub trait Machine {
    /// The FF-A conduit (`smc` on the machine).
    type Conduit: Conduit;
    /// Driver memory.
    type Platform: Platform;

    /// A conduit over the endpoint's RX/TX buffers; `None` while another one is alive (each
    /// bus session owns one, and they are opened one after the other).
    fn conduit(&mut self) -> Option<Self::Conduit>;
    /// (TX address, RX address, pages of each) for `FFA_RXTX_MAP`.
    fn rxtx(&self) -> (u64, u64, u32);
    /// Driver memory for rings and buffers.
    fn platform(&self) -> &Self::Platform;
    /// How a missing FF-A showed itself (called after `FFA_VERSION` got no answer).
    fn no_ffa_reason(&self) -> &'static str;
}
