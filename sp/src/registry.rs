//! The device registry: which devices each driver endpoint gets.

use alloc::{boxed::Box, vec::Vec};

use virtio_msg::device::VirtioDevice;

use crate::devices::rng::{EntropySource, Rng};

/// Creates the devices one driver endpoint sees. Each endpoint gets its own device instances,
/// so no state is shared between endpoints.
pub trait DeviceFactory {
    /// The devices for endpoint `vm`, in device-number order.
    fn create(&mut self, vm: u16) -> Vec<Box<dyn VirtioDevice + Send>>;
}

/// The partition's standard device set, one fresh instance per endpoint, in device-number
/// order:
///
/// | dev | device | present when |
/// |---|---|---|
/// | 0 | virtio-rng (id 4) | an entropy source exists (no source, no rng: never fake randomness) |
pub struct StandardDevices<E> {
    entropy: Option<E>,
}

impl<E> StandardDevices<E> {
    /// The standard set; `entropy` feeds virtio-rng.
    pub fn new(entropy: Option<E>) -> Self {
        Self { entropy }
    }
}

impl<E: EntropySource + Clone + Send + 'static> DeviceFactory for StandardDevices<E> {
    fn create(&mut self, _vm: u16) -> Vec<Box<dyn VirtioDevice + Send>> {
        let mut devices: Vec<Box<dyn VirtioDevice + Send>> = Vec::new();
        if let Some(source) = &self.entropy {
            devices.push(Box::new(Rng::new(source.clone())));
        }
        devices
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::rng::CountingEntropy;

    #[test]
    fn rng_only_with_an_entropy_source() {
        let mut with = StandardDevices::new(Some(CountingEntropy::default()));
        let devices = with.create(1);
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].device_id(), 4);
        let mut without = StandardDevices::<CountingEntropy>::new(None);
        assert!(without.create(1).is_empty());
    }
}
