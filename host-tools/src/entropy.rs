//! Entropy for the simulated partition's virtio-rng: the operating system's generator.

use sp::devices::rng::{EntropyError, EntropySource};

/// The host operating system's random number generator (`getrandom`).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsEntropy;

impl EntropySource for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        getrandom::fill(buf).map_err(|_| EntropyError)
    }
}
