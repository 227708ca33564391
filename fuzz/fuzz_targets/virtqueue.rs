//! The device-side split virtqueue (`sp::virtqueue::SplitQueue`) over rings and descriptors the
//! fuzzer writes: popping and returning chains never panics, takes at most `size` chains per
//! pass, and every chain it hands out has between 1 and `size` buffers whose ends do not
//! overflow. (Whether a buffer lies in shared memory is checked where it is used: every access
//! goes through `SharedMem`, which here refuses anything outside the one region.)
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use sp::virtqueue::SplitQueue;
use virtio_msg::{device::QueueConfig, mem::VecMem};

/// Where the region sits on the bus (area 1, offset 0).
const BASE: u64 = 1 << 48;
/// Size of the shared region.
const LEN: usize = 16 * 1024;

#[derive(Arbitrary, Debug)]
struct Setup {
    size_log2: u8,
    desc: u16,
    driver: u16,
    device: u16,
    passes: u8,
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(setup) = Setup::arbitrary(&mut u) else {
        return;
    };
    // The one shared region: every access outside it is refused.
    let mut region = VecMem::new(BASE, LEN);
    let fill = u.take_rest();
    for (b, f) in region.bytes.iter_mut().zip(fill.iter().cycle()) {
        *b = *f;
    }
    let size = 1u16 << (setup.size_log2 % 16);
    let config = QueueConfig {
        size,
        desc_addr: BASE + u64::from(setup.desc & !15) % LEN as u64,
        driver_addr: BASE + u64::from(setup.driver & !1) % LEN as u64,
        device_addr: BASE + u64::from(setup.device & !3) % LEN as u64,
    };
    let Ok(mut queue) = SplitQueue::new(config) else {
        return;
    };
    for pass in 0..(setup.passes % 4) + 1 {
        let mut taken = 0usize;
        loop {
            match queue.pop(&mut region) {
                Ok(Some(chain)) => {
                    taken += 1;
                    assert!(
                        taken <= usize::from(size),
                        "more chains than the queue holds"
                    );
                    let buffers = chain.readable.len() + chain.writable.len();
                    assert!(buffers >= 1 && buffers <= usize::from(size));
                    for &(addr, len) in chain.readable.iter().chain(&chain.writable) {
                        assert!(addr.checked_add(u64::from(len)).is_some());
                    }
                    let written = u32::try_from(chain.writable_len().min(u64::from(u32::MAX)))
                        .unwrap_or(u32::MAX);
                    if queue.push_used(&mut region, chain.head, written).is_err() {
                        break;
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        // The driver moves its index on between passes.
        let idx = (region.bytes.len() / 2 + usize::from(pass)) % LEN;
        region.bytes[idx] = region.bytes[idx].wrapping_add(1);
    }
});
