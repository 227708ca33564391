//! The conduit: the single place an FF-A call leaves this endpoint.

/// Issues FF-A calls for one endpoint and owns its RX/TX buffers.
///
/// The real implementation is `smc #0` (S-EL1 partition, NWd payload at EL2 under an SPMD);
/// host tests and the simulated world implement it in software.
pub trait Conduit {
    /// Issues the call in `regs` (x0..x17) and returns x0..x17 as they come back.
    fn call(&mut self, regs: [u64; 18]) -> [u64; 18];
    /// The endpoint's TX buffer (the endpoint writes, the SPMC reads during the next call).
    fn tx(&mut self) -> &mut [u8];
    /// The endpoint's RX buffer (the SPMC writes during a call, the endpoint reads afterwards).
    fn rx(&self) -> &[u8];
}
