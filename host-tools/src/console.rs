//! A virtio-console driver (one port, no features) over the virtio-msg FF-A bus: receiveq
//! (queue 0) keeps one page-sized device-writable buffer posted, transmitq (queue 1) sends
//! from one page. Enough to talk to the partition's console shell line by line.

use alloc::{string::String, vec::Vec};

use ffa::{conduit::Conduit, memory::PAGE_SIZE};
use virtio_msg::{
    device::{VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1},
    driver::DeviceClient,
};

use crate::{
    connection::{Connection, HostError, virtio_ids},
    driver::{DeviceMemory, MAX_WAITS, close_device, open_device, wait_events},
    platform::Platform,
    session::BusSession,
    virtqueue::{DriverMem, DriverQueue},
};

/// Queue size the driver asks for on both queues.
pub const QUEUE_SIZE: u16 = 8;
/// Size of the receive buffer and of the largest write.
pub const BUFFER_BYTES: usize = 4096;
const _: () = assert!(BUFFER_BYTES as u64 == PAGE_SIZE);
/// The partition shell's prompt.
pub const PROMPT: &str = "> ";

impl<C: Conduit, P: Platform> Connection<C, P> {
    /// Opens the first console device.
    pub fn console(&mut self) -> Result<ConsoleDriver<'_, C, P>, HostError> {
        let dev = self
            .list_devices()?
            .into_iter()
            .find(|d| d.info.device_id == virtio_ids::CONSOLE)
            .ok_or(HostError::Device("no console device"))?;
        ConsoleDriver::open(self, dev.dev_num)
    }
}

/// An initialised virtio-console device.
pub struct ConsoleDriver<'c, C: Conduit, P: Platform> {
    session: &'c mut BusSession<C>,
    platform: &'c P,
    dev_num: u16,
    rx: DriverQueue,
    tx: DriverQueue,
    /// The rings of both queues; the data area's page 0 is the receive buffer, page 1 the
    /// transmit buffer.
    memory: DeviceMemory,
    closed: bool,
}

impl<'c, C: Conduit, P: Platform> ConsoleDriver<'c, C, P> {
    /// Initialises device `dev_num` of `conn` as a console and posts the receive buffer.
    pub fn open(conn: &'c mut Connection<C, P>, dev_num: u16) -> Result<Self, HostError> {
        let ring = conn.ring_features();
        let (session, platform) = conn.parts();
        let ring_len = DriverQueue::layout(QUEUE_SIZE)?.total.next_multiple_of(16);
        let ring_pages = u32::try_from((2 * ring_len).div_ceil(PAGE_SIZE)).unwrap_or(u32::MAX);
        let (memory, (rx, tx)) = open_device(
            session,
            platform,
            dev_num,
            (virtio_ids::CONSOLE, "not a console device"),
            (ring_pages, 2),
            |client, memory| {
                let features =
                    client.initialize(VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM | ring)?;
                for q in [0, 1] {
                    if client.get_vqueue(q)?.max_size < u32::from(QUEUE_SIZE) {
                        return Err(HostError::Device("console queue too small"));
                    }
                }
                let ring = &memory.ring;
                let rx = DriverQueue::new(platform, QUEUE_SIZE, ring.pa, ring.bus(0))?
                    .with_features(features);
                let tx =
                    DriverQueue::new(platform, QUEUE_SIZE, ring.pa + ring_len, ring.bus(ring_len))?
                        .with_features(features);
                client.set_vqueue(0, rx.queue_config())?;
                client.set_vqueue(1, tx.queue_config())?;
                client.driver_ok()?;
                Ok((rx, tx))
            },
        )?;
        let mut driver = Self {
            session,
            platform,
            dev_num,
            rx,
            tx,
            memory,
            closed: false,
        };
        driver.post_receive()?;
        Ok(driver)
    }

    fn client(&mut self) -> Result<DeviceClient<&mut BusSession<C>>, HostError> {
        let layout = self.session.info().dialect.layout();
        Ok(DeviceClient::new(&mut *self.session, self.dev_num, layout)?)
    }

    /// Posts the receive buffer and tells the device.
    fn post_receive(&mut self) -> Result<(), HostError> {
        let len = u32::try_from(BUFFER_BYTES).unwrap_or(u32::MAX);
        self.rx
            .add(self.platform, &[], &[(self.memory.buffer.bus(0), len)])?;
        if self.rx.publish(self.platform)? {
            self.client()?.notify_avail(0)?;
        }
        Ok(())
    }

    /// Takes what the device has written so far (reposting the receive buffer).
    fn take_received(&mut self, out: &mut Vec<u8>) -> Result<bool, HostError> {
        let Some((_, written)) = self.rx.pop_used(self.platform)? else {
            return Ok(false);
        };
        let n = usize::try_from(written).unwrap_or(0).min(BUFFER_BYTES);
        let mut bytes = alloc::vec![0u8; n];
        DriverMem::read(self.platform, self.memory.buffer.pa, &mut bytes)?;
        out.extend_from_slice(&bytes);
        self.post_receive()?;
        Ok(true)
    }

    /// Sends `bytes` (at most [`BUFFER_BYTES`]) and waits until the device has taken them.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), HostError> {
        if bytes.len() > BUFFER_BYTES {
            return Err(HostError::Device("console write longer than a page"));
        }
        let at = PAGE_SIZE;
        DriverMem::write(self.platform, self.memory.buffer.pa + at, bytes)?;
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.tx
            .add(self.platform, &[(self.memory.buffer.bus(at), len)], &[])?;
        if self.tx.publish(self.platform)? {
            self.client()?.notify_avail(1)?;
        }
        for _ in 0..MAX_WAITS {
            if self.tx.pop_used(self.platform)?.is_some() {
                return Ok(());
            }
            if !self.tx.prepare_wait(self.platform)? {
                wait_events(self.session, self.platform, self.dev_num, 1)?;
            }
        }
        Err(HostError::Device("transmit buffer never returned"))
    }

    /// Reads until the output ends with `end` (G3: waits for EVENT_USED on receiveq; G2:
    /// kicks receiveq and looks).
    pub fn read_until(&mut self, end: &str) -> Result<String, HostError> {
        let mut out = Vec::new();
        for _ in 0..MAX_WAITS {
            while self.take_received(&mut out)? {}
            if out.ends_with(end.as_bytes()) {
                return String::from_utf8(out)
                    .map_err(|_| HostError::Device("console output is not UTF-8"));
            }
            if !self.rx.prepare_wait(self.platform)? {
                wait_events(self.session, self.platform, self.dev_num, 0)?;
            }
        }
        Err(HostError::Device("console output never ended as expected"))
    }

    /// Runs one shell command line: sends `line` and a newline, returns the answer up to
    /// (not including) the next prompt.
    pub fn command(&mut self, line: &str) -> Result<String, HostError> {
        let mut bytes = Vec::from(line.as_bytes());
        bytes.push(b'\n');
        self.write(&bytes)?;
        let mut answer = self.read_until(PROMPT)?;
        answer.truncate(answer.len() - PROMPT.len());
        Ok(answer)
    }

    /// Resets the device and takes the shared memory back.
    pub fn close(&mut self) -> Result<(), HostError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        close_device(self.session, self.platform, self.dev_num, &self.memory)
    }
}

impl<C: Conduit, P: Platform> Drop for ConsoleDriver<'_, C, P> {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("closing the console device failed: {e}");
        }
    }
}
