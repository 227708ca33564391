//! The device registry: which devices each driver endpoint gets.

use alloc::{boxed::Box, sync::Arc, vec::Vec};

use virtio_msg::device::{EndpointStats, VirtioDevice};

use crate::{
    devices::{
        blk::{Blk, ID_BYTES, ram::RamStore},
        console::{Console, Shell},
        rng::{EntropySource, Rng},
        vsock::{StandardServices, Vsock},
    },
    headroom::{self, ENDPOINT_HEAP_BYTES},
};

/// Size of the RAM disk each endpoint's virtio-blk device gets: 64 KiB, 128 sectors.
///
/// Every endpoint has a disk of its own, allocated (zeroed) when the endpoint is admitted and
/// freed with its bus instance, so no byte one VM writes ever reaches another. All
/// [`MAX_ENDPOINTS`](crate::partition::MAX_ENDPOINTS) disks together take 1 MiB of the image's
/// 1.66 MiB heap; the bus instances and device models take about 0.5 MiB more, vsock
/// connection buffers up to 0.25 MiB, and the page tables of the mapping window what is left
/// (they could take 0.5 MiB at most): at that extreme what does not fit is refused, never
/// aborted (`manifests/README.md`). The disk is volatile: it is lost when its endpoint is
/// destroyed, or when its slot, idle, is given to another endpoint.
pub const RAM_DISK_BYTES: usize = 64 * 1024;

/// Creates the devices one driver endpoint sees. Each endpoint gets its own device instances,
/// so no state is shared between endpoints.
///
/// The partition calls [`create`](Self::create) only when the heap has
/// [`ENDPOINT_HEAP_BYTES`] in one free block; a factory that allocates more than that must do
/// so fallibly and leave that much free after it (the bus instance is allocated infallibly
/// after the devices).
pub trait DeviceFactory {
    /// The devices for endpoint `vm`, in device-number order. `stats` are the endpoint's
    /// counters (the bus counts into them); a device may report them (the shell's `stats`).
    fn create(&mut self, vm: u16, stats: &Arc<EndpointStats>) -> Vec<Box<dyn VirtioDevice + Send>>;
}

/// Block devices for some endpoints in place of their RAM disks: the simulated world's host
/// file (`vmsg --disk`). The image has none.
///
/// Isolation is the provider's to keep: a device it hands out serves the one endpoint it was
/// made for, and no later endpoint may be handed the same store (the RAM disk dies with its
/// endpoint; a persistent store must not outlive it into another VM's hands).
pub trait DiskProvider: Send {
    /// A virtio-blk device for endpoint `vm` (created when the endpoint is admitted), or
    /// `None` for the standard RAM disk.
    fn blk(&mut self, vm: u16) -> Option<Box<dyn VirtioDevice + Send>>;
}

/// The partition's standard device set, one fresh instance per endpoint, in device-number
/// order:
///
/// | dev | device | present when |
/// |---|---|---|
/// | 0 | virtio-rng (id 4) | an entropy source exists (no source, no rng: never fake randomness) |
/// | 1 | virtio-blk (id 2), a [`RAM_DISK_BYTES`] RAM disk of the endpoint's own, or what the [`DiskProvider`] gives the endpoint | the heap has room for the disk (otherwise the endpoint is served without it, and a log line says so) |
/// | 2 | virtio-console (id 3), one port, the [`Shell`] | always |
/// | 3 | virtio-vsock (id 19), guest CID 3: the echo on port 7, the [`Shell`] on port 23 ([`StandardServices`]) | always |
///
/// Device numbers follow from what is present: without an entropy source the block device is
/// device 0, the console device 1 and the vsock device 2.
pub struct StandardDevices<E> {
    entropy: Option<E>,
    disk_bytes: usize,
    disks: Option<Box<dyn DiskProvider>>,
}

impl<E> StandardDevices<E> {
    /// The standard set; `entropy` feeds virtio-rng.
    pub fn new(entropy: Option<E>) -> Self {
        Self {
            entropy,
            disk_bytes: RAM_DISK_BYTES,
            disks: None,
        }
    }

    /// The same set, with the block device of the endpoints `disks` gives one in place of
    /// their RAM disks.
    pub fn with_disks(mut self, disks: Box<dyn DiskProvider>) -> Self {
        self.disks = Some(disks);
        self
    }

    /// The same set with RAM disks of `bytes` each (a whole number of 512-byte sectors), or
    /// no block device for 0.
    pub fn with_disk_bytes(mut self, bytes: usize) -> Self {
        self.disk_bytes = bytes;
        self
    }

    /// A RAM disk for endpoint `vm`, if the heap has room for it and, after it, for the
    /// endpoint's remaining allocations.
    fn disk(&self, vm: u16) -> Option<RamStore> {
        if self.disk_bytes == 0 {
            return None;
        }
        let disk = match RamStore::new(self.disk_bytes, disk_id(vm)) {
            Ok(disk) => disk,
            Err(e) => {
                log::warn!(
                    "endpoint {vm:#x}: no {}-byte RAM disk ({e}): served without a block device",
                    self.disk_bytes
                );
                return None;
            }
        };
        // The disk took its block fallibly; the boxes and the bus instance that follow cannot
        // fail softly, so they need the headroom the partition checked before the disk.
        if !headroom::available(ENDPOINT_HEAP_BYTES) {
            log::warn!(
                "endpoint {vm:#x}: no heap left beside a RAM disk: served without a block device"
            );
            return None;
        }
        Some(disk)
    }
}

/// The GET_ID string of endpoint `vm`'s disk: `vmsg-ram-` and the endpoint id in hex,
/// NUL-padded.
fn disk_id(vm: u16) -> [u8; ID_BYTES] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digit = |shift: u16| {
        HEX.get(usize::from(
            vm.checked_shr(u32::from(shift)).unwrap_or(0) & 0xf,
        ))
        .copied()
        .unwrap_or(b'?')
    };
    let mut id = [0u8; ID_BYTES];
    let name = b"vmsg-ram-"
        .iter()
        .copied()
        .chain([digit(12), digit(8), digit(4), digit(0)]);
    for (slot, byte) in id.iter_mut().zip(name) {
        *slot = byte;
    }
    id
}

/// What the shell's `devices` command prints (on the console and on vsock) for an endpoint
/// with or without the rng and the block device.
fn device_list(rng: bool, blk: bool) -> &'static str {
    match (rng, blk) {
        (true, true) => {
            "0 virtio-rng (id 4)\n1 virtio-blk (id 2)\n2 virtio-console (id 3)\n\
             3 virtio-vsock (id 19)"
        }
        (true, false) => "0 virtio-rng (id 4)\n1 virtio-console (id 3)\n2 virtio-vsock (id 19)",
        (false, true) => "0 virtio-blk (id 2)\n1 virtio-console (id 3)\n2 virtio-vsock (id 19)",
        (false, false) => "0 virtio-console (id 3)\n1 virtio-vsock (id 19)",
    }
}

impl<E: EntropySource + Clone + Send + 'static> DeviceFactory for StandardDevices<E> {
    fn create(&mut self, vm: u16, stats: &Arc<EndpointStats>) -> Vec<Box<dyn VirtioDevice + Send>> {
        let mut devices: Vec<Box<dyn VirtioDevice + Send>> = Vec::new();
        if let Some(source) = &self.entropy {
            devices.push(Box::new(Rng::new(source.clone())));
        }
        let rng = !devices.is_empty();
        let provided = self.disks.as_mut().and_then(|d| d.blk(vm));
        let blk = match provided {
            Some(device) => {
                devices.push(device);
                true
            }
            None => match self.disk(vm) {
                Some(disk) => {
                    devices.push(Box::new(Blk::new(disk)));
                    true
                }
                None => false,
            },
        };
        let list = device_list(rng, blk);
        let shell = Shell::new(list).with_stats(Arc::clone(stats));
        devices.push(Box::new(Console::new(shell)));
        let services = StandardServices::new(list).with_stats(Arc::clone(stats));
        devices.push(Box::new(Vsock::new(services)));
        devices
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::rng::CountingEntropy;

    #[test]
    fn rng_blk_and_console_with_an_entropy_source() {
        let mut with = StandardDevices::new(Some(CountingEntropy::default()));
        let devices = with.create(1, &Arc::default());
        assert_eq!(devices.len(), 4);
        assert_eq!(devices[0].device_id(), 4);
        assert_eq!(devices[1].device_id(), 2);
        assert_eq!(devices[2].device_id(), 3);
        assert_eq!(devices[2].num_queues(), 2);
        assert_eq!(devices[3].device_id(), 19);
        assert_eq!(devices[3].num_queues(), 3);
        let mut cid = [0u8; 8];
        devices[3].read_config(0, &mut cid);
        assert_eq!(u64::from_le_bytes(cid), 3);
        let mut capacity = [0u8; 8];
        devices[1].read_config(0, &mut capacity);
        assert_eq!(u64::from_le_bytes(capacity), (RAM_DISK_BYTES / 512) as u64);
        // No source, no rng: the block device is device 0, the console device 1, vsock 2.
        let mut without = StandardDevices::<CountingEntropy>::new(None);
        let devices = without.create(1, &Arc::default());
        assert_eq!(devices.len(), 3);
        assert_eq!(devices[0].device_id(), 2);
        assert_eq!(devices[1].device_id(), 3);
        assert_eq!(devices[2].device_id(), 19);
    }

    #[test]
    fn no_disk_without_heap_for_it() {
        // A disk the heap cannot give: the endpoint gets the rng, the console and vsock, nothing
        // aborts.
        let mut huge = StandardDevices::new(Some(CountingEntropy::default()))
            .with_disk_bytes(usize::MAX & !511);
        let devices = huge.create(1, &Arc::default());
        assert_eq!(devices.len(), 3);
        assert_eq!(devices[0].device_id(), 4);
        assert_eq!(devices[1].device_id(), 3);
        assert_eq!(devices[2].device_id(), 19);
        let mut none = StandardDevices::new(Some(CountingEntropy::default())).with_disk_bytes(0);
        assert_eq!(none.create(1, &Arc::default()).len(), 3);
    }

    #[test]
    fn the_device_models_fit_the_endpoint_headroom() {
        use crate::devices::{
            blk::ram::RamStore,
            vsock::{BUFFER_BYTES, StandardServices},
        };
        // The models are boxed infallibly when an endpoint is admitted (the disk and the vsock
        // connection buffers are fallible allocations of their own), each in a block of the
        // buddy heap, a power of two: together they must leave an eighth of the checked
        // headroom to the bus instance and its engines.
        let block = |bytes: usize| bytes.next_power_of_two();
        let models = [
            size_of::<Rng<CountingEntropy>>(),
            size_of::<Blk<RamStore>>(),
            size_of::<Console<Shell>>(),
            size_of::<Vsock<StandardServices>>(),
        ];
        let total: usize = models.iter().map(|&m| block(m)).sum();
        assert!(
            total <= ENDPOINT_HEAP_BYTES * 7 / 8,
            "rng, blk, console, vsock: {models:?} take {total} bytes"
        );
        // The connection buffers are one block, no bigger than what they hold.
        assert_eq!(block(BUFFER_BYTES), BUFFER_BYTES);
    }

    #[test]
    fn a_disk_provider_replaces_the_ram_disk_of_the_endpoints_it_serves() {
        /// Endpoint 2 gets a read-only 8-sector RAM store, once.
        struct One(Option<RamStore>);
        impl DiskProvider for One {
            fn blk(&mut self, vm: u16) -> Option<Box<dyn VirtioDevice + Send>> {
                let store = self.0.take_if(|_| vm == 2)?;
                Some(Box::new(Blk::new(store.with_read_only(true))))
            }
        }
        let store = RamStore::new(8 * 512, disk_id(0xf00d)).unwrap();
        let mut set = StandardDevices::new(Some(CountingEntropy::default()))
            .with_disks(Box::new(One(Some(store))));
        let capacity = |devices: &[Box<dyn VirtioDevice + Send>]| {
            let mut bytes = [0u8; 8];
            devices[1].read_config(0, &mut bytes);
            (devices[1].device_id(), u64::from_le_bytes(bytes))
        };
        let ram = (2, (RAM_DISK_BYTES / 512) as u64);
        assert_eq!(capacity(&set.create(1, &Arc::default())), ram);
        let served = set.create(2, &Arc::default());
        assert_eq!(served.len(), 4);
        assert_eq!(capacity(&served), (2, 8));
        assert_ne!(
            served[1].features() & crate::devices::blk::VIRTIO_BLK_F_RO,
            0
        );
        // Handed out once: the same endpoint id admitted again gets a RAM disk.
        assert_eq!(capacity(&set.create(2, &Arc::default())), ram);
    }

    #[test]
    fn disk_ids_name_the_endpoint() {
        assert_eq!(&disk_id(0x8001), b"vmsg-ram-8001\0\0\0\0\0\0\0");
        assert_eq!(&disk_id(0x00af), b"vmsg-ram-00af\0\0\0\0\0\0\0");
    }
}
