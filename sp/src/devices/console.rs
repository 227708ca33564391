//! virtio-console (console device, device id 3; virtio 1.2 §5.3), one port, over a
//! [`ConsoleSink`].
//!
//! No device features beyond the transport's `VIRTIO_F_VERSION_1` and
//! `VIRTIO_F_ACCESS_PLATFORM` and the ring features `VIRTIO_F_INDIRECT_DESC` and
//! `VIRTIO_F_EVENT_IDX` (honoured by [`SplitQueue`] on both queues when accepted; with
//! EVENT_IDX, receive buffers filled during a transmitq notify are announced only when
//! receiveq's `used_event` asks for it): no `VIRTIO_CONSOLE_F_SIZE`, `F_MULTIPORT` or
//! `F_EMERG_WRITE`, so no configuration field is valid (§5.3.4) and the configuration space
//! is empty. Two queues: 0, receiveq (device to driver: the driver offers device-writable
//! buffers, the device returns them with the bytes it wrote) and 1, transmitq (driver to
//! device: device-readable buffers, returned with used length 0).
//!
//! What the driver transmits goes to the sink, which may queue bytes for the driver into the
//! device's [`Outbox`] (bounded: [`OUTBOX_BYTES`]; what does not fit is dropped and counted).
//! Whenever the outbox holds bytes and receiveq has buffers — at a notify of either queue —
//! the device fills receiveq buffers from it. Receive buffers filled during a transmitq notify
//! are announced through [`VirtioDevice::take_used_elsewhere`]. Two sinks ship: [`Echo`], and
//! the partition [`Shell`] (`super::shell`, which a vsock port serves as well).
//!
//! Bounds against a hostile driver: one notify serves at most `size` chains per queue and
//! starts none once its [`Budget`] is spent; a chain moves at most [`MAX_BYTES_PER_CHAIN`]
//! bytes (the rest of a bigger transmit buffer is ignored, the rest of a bigger receive buffer
//! left untouched); bytes pass in [`CHUNK`]-byte pieces through a buffer kept with the device,
//! so nothing is allocated per request beyond the chain's buffer list. A chain in the wrong
//! direction (device-writable buffers on transmitq, device-readable ones on receiveq) is
//! returned with used length 0 and nothing read or written. A buffer outside shared memory is
//! a [`DeviceError`] (DEVICE_NEEDS_RESET), as for virtio-rng.

use virtio_msg::{
    SharedMem,
    device::{
        Budget, DeviceError, QueueConfig, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_EVENT_IDX,
        VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1, VirtioDevice,
    },
};

pub use super::shell::{LINE_MAX, PROMPT, Shell};
pub use super::stream::Echo;
use super::stream::{ByteRing, Output};
use crate::virtqueue::{DescChain, MAX_INDIRECT_DESCS, SplitQueue};

/// Virtio device id of the console device.
pub const DEVICE_ID: u32 = 3;
/// Index of receiveq (port 0 input: device to driver).
pub const RECEIVEQ: u32 = 0;
/// Index of transmitq (port 0 output: driver to device).
pub const TRANSMITQ: u32 = 1;
/// Largest queue size the device accepts (both queues).
pub const QUEUE_MAX_SIZE: u16 = 64;
// An indirect table as long as the queue fits the queue's local copy.
const _: () = assert!(QUEUE_MAX_SIZE <= MAX_INDIRECT_DESCS);
/// Most bytes one chain moves, either way.
pub const MAX_BYTES_PER_CHAIN: u32 = 64 * 1024;
/// Size of the buffer bytes pass through between driver memory and the sink or outbox.
pub const CHUNK: usize = 512;
/// Capacity of the outbox: bytes waiting for receive buffers.
pub const OUTBOX_BYTES: usize = 4096;

/// Bytes waiting for the driver: a [`ByteRing`] of [`OUTBOX_BYTES`]. What does not fit is
/// dropped and counted, never blocking the sink or growing.
pub struct Outbox {
    ring: ByteRing<OUTBOX_BYTES>,
    /// Bytes dropped because the outbox was full.
    dropped: u64,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbox {
    /// An empty outbox.
    pub const fn new() -> Self {
        Self {
            ring: ByteRing::new(),
            dropped: 0,
        }
    }

    /// Queues `bytes`; returns how many fit (the rest is dropped and counted).
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let take = self.ring.push(bytes);
        let lost = bytes.len().saturating_sub(take);
        self.dropped = self.dropped.saturating_add(lost as u64);
        take
    }

    /// Moves up to `out.len()` of the oldest bytes into `out`; returns how many.
    pub fn pop(&mut self, out: &mut [u8]) -> usize {
        self.ring.pop(out)
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Bytes dropped so far because the outbox was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Forgets every waiting byte (the dropped count stays).
    pub fn clear(&mut self) {
        self.ring.clear();
    }
}

impl Output for Outbox {
    fn push(&mut self, bytes: &[u8]) -> usize {
        Outbox::push(self, bytes)
    }

    fn room(&self) -> usize {
        self.ring.room()
    }

    fn is_empty(&self) -> bool {
        Outbox::is_empty(self)
    }
}

/// What a console serves: it gets what the driver wrote and may answer through an [`Outbox`].
pub trait ConsoleSink {
    /// The driver wrote `bytes` (a piece of its output, in order; lines may be split across
    /// calls anywhere). Bytes for the driver go into `out`.
    fn input(&mut self, bytes: &[u8], out: &mut Outbox);
    /// The driver started the device (DRIVER_OK): a greeting may go into `out`.
    fn opened(&mut self, out: &mut Outbox) {
        let _ = out;
    }
    /// The device was reset: forget any half-received input.
    fn reset(&mut self) {}
}

/// The [`Echo`] service as a console sink: what does not fit the outbox is dropped there.
impl ConsoleSink for Echo {
    fn input(&mut self, bytes: &[u8], out: &mut Outbox) {
        self.feed(bytes, out);
    }
}

/// The partition [`Shell`] as a console sink: every byte is taken (the console cannot hold
/// input back); an answer that does not fit the outbox is dropped and counted there.
impl ConsoleSink for Shell {
    fn input(&mut self, bytes: &[u8], out: &mut Outbox) {
        self.feed_all(bytes, out);
    }

    fn opened(&mut self, out: &mut Outbox) {
        self.open(out);
    }

    fn reset(&mut self) {
        Shell::reset(self);
    }
}

/// The virtio-console device model over sink `S`.
pub struct Console<S: ConsoleSink> {
    sink: S,
    receiveq: Option<SplitQueue>,
    transmitq: Option<SplitQueue>,
    /// Features the driver accepted (set at activation).
    features: u64,
    outbox: Outbox,
    /// Where bytes pass between driver memory and the sink or outbox.
    scratch: [u8; CHUNK],
    /// Receive buffers were returned during a transmitq notify (see
    /// [`VirtioDevice::take_used_elsewhere`]).
    received_elsewhere: bool,
    /// Chains returned unread because their buffers went the wrong way.
    wrong_direction: u64,
}

impl<S: ConsoleSink> Console<S> {
    /// A reset device serving `sink`.
    pub fn new(sink: S) -> Self {
        Self {
            sink,
            receiveq: None,
            transmitq: None,
            features: 0,
            outbox: Outbox::new(),
            scratch: [0; CHUNK],
            received_elsewhere: false,
            wrong_direction: 0,
        }
    }

    /// The sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The bytes waiting for receive buffers.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Chains returned unread because their buffers went the wrong way.
    pub fn wrong_direction(&self) -> u64 {
        self.wrong_direction
    }

    /// A queue over `config` honouring the ring features in `features`.
    fn queue_for(config: QueueConfig, features: u64) -> Result<SplitQueue, DeviceError> {
        Ok(SplitQueue::with_max(config, QUEUE_MAX_SIZE)?.with_features(features))
    }

    /// Serves at most `size` transmit chains, none once `budget` is spent.
    fn transmit(
        &mut self,
        queue: &mut SplitQueue,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
    ) -> Result<bool, DeviceError> {
        queue.serve_chains(mem, budget, |mem, chain| {
            let read = if chain.writable.is_empty() {
                self.feed(&*mem, chain)?
            } else {
                self.wrong_direction = self.wrong_direction.saturating_add(1);
                0
            };
            Ok((0, read))
        })
    }

    /// Hands up to [`MAX_BYTES_PER_CHAIN`] readable bytes of `chain` to the sink; returns
    /// how many.
    fn feed(&mut self, mem: &dyn SharedMem, chain: &DescChain) -> Result<u64, DeviceError> {
        let mut total: u32 = 0;
        for &(addr, len) in &chain.readable {
            let len = len.min(MAX_BYTES_PER_CHAIN.saturating_sub(total));
            let mut done: u32 = 0;
            while let Some(rest) = len.checked_sub(done).filter(|&rest| rest > 0) {
                let want = usize::try_from(rest).map_or(CHUNK, |rest| rest.min(CHUNK));
                let chunk = self.scratch.get_mut(..want).ok_or(DeviceError::Backend)?;
                let at = addr
                    .checked_add(u64::from(done))
                    .ok_or(DeviceError::Queue)?;
                mem.read(at, chunk)?;
                self.sink.input(chunk, &mut self.outbox);
                done = done.saturating_add(u32::try_from(want).map_err(|_| DeviceError::Backend)?);
            }
            total = total.saturating_add(len);
            if total == MAX_BYTES_PER_CHAIN {
                break;
            }
        }
        Ok(u64::from(total))
    }

    /// Fills receive buffers from the outbox while it has bytes, at most `size` chains and
    /// none once `budget` is spent. (Not `SplitQueue::serve_chains`: it must stop before taking
    /// a buffer once the outbox is empty.) Returns whether the driver is to be notified
    /// ([`SplitQueue::notify_due`]).
    fn receive(
        &mut self,
        queue: &mut SplitQueue,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
    ) -> Result<bool, DeviceError> {
        let mut used = false;
        for _ in 0..queue.size() {
            if budget.is_spent() || self.outbox.is_empty() {
                break;
            }
            let Some(chain) = queue.pop(mem)? else {
                break;
            };
            let written = if chain.readable.is_empty() {
                self.drain(mem, &chain.writable)?
            } else {
                self.wrong_direction = self.wrong_direction.saturating_add(1);
                0
            };
            queue.push_used(mem, chain.head, written)?;
            budget.spend_chain(u64::from(written));
            used = true;
        }
        queue.notify_due(&*mem, used)
    }

    /// Moves outbox bytes into the writable buffers `writable` (in order), at most
    /// [`MAX_BYTES_PER_CHAIN`]; returns the number written.
    fn drain(
        &mut self,
        mem: &mut dyn SharedMem,
        writable: &[(u64, u32)],
    ) -> Result<u32, DeviceError> {
        let mut written: u32 = 0;
        for &(addr, len) in writable {
            let len = len.min(MAX_BYTES_PER_CHAIN.saturating_sub(written));
            let mut done: u32 = 0;
            while let Some(rest) = len.checked_sub(done).filter(|&rest| rest > 0) {
                if self.outbox.is_empty() {
                    return Ok(written.saturating_add(done));
                }
                let want = usize::try_from(rest).map_or(CHUNK, |rest| rest.min(CHUNK));
                let chunk = self.scratch.get_mut(..want).ok_or(DeviceError::Backend)?;
                let n = self.outbox.pop(chunk);
                let piece = chunk.get(..n).ok_or(DeviceError::Backend)?;
                let at = addr
                    .checked_add(u64::from(done))
                    .ok_or(DeviceError::Queue)?;
                mem.write(at, piece)?;
                done = done.saturating_add(u32::try_from(n).map_err(|_| DeviceError::Backend)?);
            }
            written = written.saturating_add(len);
            if written == MAX_BYTES_PER_CHAIN || self.outbox.is_empty() {
                break;
            }
        }
        Ok(written)
    }

    /// Fills receiveq from the outbox, if both have something; whether the driver is to be
    /// notified of receive buffers returned.
    fn flush_outbox(
        &mut self,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
    ) -> Result<bool, DeviceError> {
        if self.outbox.is_empty() {
            return Ok(false);
        }
        let Some(mut queue) = self.receiveq.take() else {
            return Ok(false);
        };
        let result = self.receive(&mut queue, mem, budget);
        self.receiveq = Some(queue);
        result
    }
}

impl<S: ConsoleSink> VirtioDevice for Console<S> {
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
        2
    }

    fn queue_max_size(&self, index: u32) -> u16 {
        if index == RECEIVEQ || index == TRANSMITQ {
            QUEUE_MAX_SIZE
        } else {
            0
        }
    }

    fn activate(
        &mut self,
        features: u64,
        queues: &[Option<QueueConfig>],
    ) -> Result<(), DeviceError> {
        self.features = features;
        let config = |i: usize| {
            queues
                .get(i)
                .copied()
                .flatten()
                .map(|c| Self::queue_for(c, features))
        };
        self.receiveq = config(0).transpose()?;
        self.transmitq = config(1).transpose()?;
        self.sink.opened(&mut self.outbox);
        Ok(())
    }

    fn activate_queue(&mut self, index: u32, config: QueueConfig) -> Result<(), DeviceError> {
        let queue = Some(Self::queue_for(config, self.features)?);
        match index {
            RECEIVEQ => self.receiveq = queue,
            TRANSMITQ => self.transmitq = queue,
            _ => return Err(DeviceError::Queue),
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.receiveq = None;
        self.transmitq = None;
        self.features = 0;
        self.outbox.clear();
        self.sink.reset();
        self.received_elsewhere = false;
    }

    fn reset_queue(&mut self, index: u32) {
        match index {
            RECEIVEQ => self.receiveq = None,
            TRANSMITQ => self.transmitq = None,
            _ => {}
        }
    }

    fn notify(
        &mut self,
        index: u32,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
    ) -> Result<bool, DeviceError> {
        match index {
            RECEIVEQ => self.flush_outbox(mem, budget),
            TRANSMITQ => {
                let Some(mut queue) = self.transmitq.take() else {
                    return Ok(false);
                };
                let result = self.transmit(&mut queue, mem, budget);
                self.transmitq = Some(queue);
                let used = result?;
                if self.flush_outbox(mem, budget)? {
                    self.received_elsewhere = true;
                }
                Ok(used)
            }
            _ => Ok(false),
        }
    }

    fn take_used_elsewhere(&mut self) -> u64 {
        if core::mem::take(&mut self.received_elsewhere) {
            1 << RECEIVEQ
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests;
