//! virtio-rng (entropy device, device id 4; virtio 1.x §5.4).
//!
//! One request queue (index 0), no configuration space, no device features beyond the
//! transport's `VIRTIO_F_VERSION_1` and `VIRTIO_F_ACCESS_PLATFORM` and the ring features
//! `VIRTIO_F_INDIRECT_DESC` and `VIRTIO_F_EVENT_IDX` (honoured by [`SplitQueue`] when
//! accepted). The driver makes device-writable buffers available; the device fills them from
//! its [`EntropySource`] and returns each with the number of bytes written.
//!
//! Bounds against a hostile driver: one notify handles at most `size` chains (whatever the
//! available index says) and stops once its [`Budget`] is spent (the engine resumes the rest
//! at the driver's next message), and each chain gets at most [`MAX_BYTES_PER_REQUEST`]
//! bytes — the spec lets the device use less than the whole buffer (§5.4.6.1), and the cap
//! keeps the time one chain takes bounded even when a driver offers gigabytes. Entropy
//! is copied out in [`CHUNK`]-byte pieces through a buffer kept with the device, so nothing
//! is allocated or cleared per request.

use virtio_msg::{
    SharedMem,
    device::{
        Budget, DeviceError, QueueConfig, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_EVENT_IDX,
        VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1, VirtioDevice,
    },
};

use crate::virtqueue::{MAX_INDIRECT_DESCS, SplitQueue};

/// Virtio device id of the entropy device.
pub const DEVICE_ID: u32 = 4;
/// Largest request-queue size the device accepts.
pub const QUEUE_MAX_SIZE: u16 = 64;
// An indirect table as long as the queue fits the queue's local copy.
const _: () = assert!(QUEUE_MAX_SIZE <= MAX_INDIRECT_DESCS);
/// Most bytes returned for one request (the rest of a bigger buffer is left untouched).
pub const MAX_BYTES_PER_REQUEST: u32 = 64 * 1024;
/// Size of the buffer entropy passes through on its way to driver memory (a page: one copy
/// per 4 KiB request).
pub const CHUNK: usize = 4096;

/// Why an entropy source could not deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("entropy source failure")]
pub struct EntropyError;

/// Where the device's random bytes come from.
pub trait EntropySource {
    /// Fills all of `buf` with random bytes, or fails without a partial result to rely on.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError>;
}

impl<S: EntropySource + ?Sized> EntropySource for &mut S {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        (**self).fill(buf)
    }
}

/// The virtio-rng device model over entropy source `S`.
pub struct Rng<S: EntropySource> {
    source: S,
    queue: Option<SplitQueue>,
    /// Features the driver accepted (set at activation).
    features: u64,
    /// Where entropy passes on its way to driver memory: kept with the device, so that no
    /// request pays for clearing it.
    scratch: [u8; CHUNK],
}

impl<S: EntropySource> Rng<S> {
    /// A reset device drawing from `source`.
    pub fn new(source: S) -> Self {
        Self {
            source,
            queue: None,
            features: 0,
            scratch: [0; CHUNK],
        }
    }

    /// The entropy source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Fills the writable buffers `writable` (in order) with up to [`MAX_BYTES_PER_REQUEST`]
    /// bytes; returns the number written.
    fn fill_chain<M: SharedMem + ?Sized>(
        &mut self,
        mem: &mut M,
        writable: &[(u64, u32)],
    ) -> Result<u32, DeviceError> {
        let buf = &mut self.scratch;
        let mut written: u32 = 0;
        for &(addr, len) in writable {
            // `written <= MAX_BYTES_PER_REQUEST`: each buffer adds at most what is left.
            let len = len.min(MAX_BYTES_PER_REQUEST.saturating_sub(written));
            let mut done: u32 = 0;
            // `rest` is `len - done`, bytes still to fill in this buffer.
            while let Some(rest) = len.checked_sub(done).filter(|&rest| rest > 0) {
                let want = usize::try_from(rest).map_or(CHUNK, |rest| rest.min(CHUNK));
                let chunk = buf.get_mut(..want).ok_or(DeviceError::Backend)?;
                self.source.fill(chunk).map_err(|e| {
                    log::warn!("virtio-rng: {e}");
                    DeviceError::Backend
                })?;
                // `addr + len` does not overflow (the queue checked it) and `done < len`;
                // checked anyway, refusing the chain rather than writing elsewhere.
                let at = addr
                    .checked_add(u64::from(done))
                    .ok_or(DeviceError::Queue)?;
                mem.write(at, chunk)?;
                // `want <= rest`, so `done` stays at most `len`.
                done = done.saturating_add(u32::try_from(want).map_err(|_| DeviceError::Backend)?);
            }
            written = written.saturating_add(len);
            if written == MAX_BYTES_PER_REQUEST {
                break;
            }
        }
        Ok(written)
    }
}

impl<S: EntropySource> VirtioDevice for Rng<S> {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX
    }

    fn config_size(&self) -> u32 {
        0
    }

    fn read_config(&self, _offset: u32, buf: &mut [u8]) {
        // No configuration space; the engine never calls this with a non-empty range.
        buf.fill(0);
    }

    fn num_queues(&self) -> u32 {
        1
    }

    fn queue_max_size(&self, index: u32) -> u16 {
        if index == 0 { QUEUE_MAX_SIZE } else { 0 }
    }

    fn activate(
        &mut self,
        features: u64,
        queues: &[Option<QueueConfig>],
    ) -> Result<(), DeviceError> {
        self.features = features;
        self.queue = match queues.first().copied().flatten() {
            Some(config) => Some(self.queue_for(config)?),
            None => None,
        };
        Ok(())
    }

    fn activate_queue(&mut self, index: u32, config: QueueConfig) -> Result<(), DeviceError> {
        if index != 0 {
            return Err(DeviceError::Queue);
        }
        self.queue = Some(self.queue_for(config)?);
        Ok(())
    }

    fn reset(&mut self) {
        self.queue = None;
        self.features = 0;
    }

    fn reset_queue(&mut self, index: u32) {
        if index == 0 {
            self.queue = None;
        }
    }

    fn notify(
        &mut self,
        index: u32,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
    ) -> Result<bool, DeviceError> {
        if index != 0 {
            return Ok(false);
        }
        // Take the queue out while filling so `self.source` can be borrowed alongside it.
        let Some(mut queue) = self.queue.take() else {
            return Ok(false);
        };
        let result = self.serve(&mut queue, mem, budget);
        self.queue = Some(queue);
        result
    }
}

impl<S: EntropySource> Rng<S> {
    /// The request queue over `config`, honouring the negotiated ring features.
    fn queue_for(&self, config: QueueConfig) -> Result<SplitQueue, DeviceError> {
        Ok(SplitQueue::with_max(config, QUEUE_MAX_SIZE)?.with_features(self.features))
    }

    /// Serves at most `size` available chains of `queue`, and none once `budget` is spent.
    fn serve(
        &mut self,
        queue: &mut SplitQueue,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
    ) -> Result<bool, DeviceError> {
        queue.serve_chains(mem, budget, |mem, chain| {
            let written = self.fill_chain(mem, &chain.writable)?;
            Ok((written, u64::from(written)))
        })
    }
}

/// Deterministic "entropy" for tests only: byte `i` of the stream is `i as u8` (plus a seed).
#[cfg(any(test, feature = "test-utils"))]
#[derive(Clone, Debug, Default)]
pub struct CountingEntropy {
    /// Bytes handed out so far.
    pub produced: u64,
}

#[cfg(any(test, feature = "test-utils"))]
impl CountingEntropy {
    /// The byte at stream position `pos`.
    pub fn byte_at(pos: u64) -> u8 {
        pos.to_le_bytes()[0]
    }
}

#[cfg(any(test, feature = "test-utils"))]
impl EntropySource for CountingEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        for b in buf {
            *b = Self::byte_at(self.produced);
            self.produced = self.produced.wrapping_add(1);
        }
        Ok(())
    }
}

/// An entropy source for tests that delivers `budget` bytes (all 0xa5) and then fails every
/// request that needs more.
#[cfg(any(test, feature = "test-utils"))]
#[derive(Clone, Debug, Default)]
pub struct FailingEntropy {
    /// Bytes still deliverable before failing.
    pub budget: usize,
}

#[cfg(any(test, feature = "test-utils"))]
impl EntropySource for FailingEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        self.budget = self.budget.checked_sub(buf.len()).ok_or(EntropyError)?;
        buf.fill(0xa5);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
