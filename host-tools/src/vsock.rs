//! A virtio-vsock driver (the guest side of stream sockets, virtio 1.2 §5.10) over the
//! virtio-msg FF-A bus: connects to services listening in the partition (CID 2) and keeps
//! any number of connections, each with its own flow control.
//!
//! Queues: rx (0) keeps [`RX_BUFFERS`] page-sized device-writable buffers posted, one packet
//! each; tx (1) sends one packet at a time from one page (header and payload in one
//! descriptor) and waits for the device to return it; event (2) keeps [`EVENT_BUFFERS`]
//! 4-byte buffers posted for `VIRTIO_VSOCK_EVENT_TRANSPORT_RESET`.
//!
//! Flow control both ways: the driver sends RW payload only within the device's credit
//! (`buf_alloc - (tx_cnt - fwd_cnt)`, from the device's latest packet), asking with
//! CREDIT_REQUEST and waiting when there is none; it advertises [`RECV_BUF_ALLOC`] per
//! connection, counts what the caller has taken as forwarded, and tells the device with a
//! CREDIT_UPDATE when the device's view of the free space falls below half, and whenever the
//! device asks. Nothing the device writes is trusted: a used length that does not hold a
//! header and its `len` bytes, or a packet from another CID, is dropped.

use alloc::{collections::VecDeque, vec, vec::Vec};

use ffa::{conduit::Conduit, memory::PAGE_SIZE};
use virtio_msg::{
    device::{VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1},
    driver::DeviceClient,
};
use zerocopy::{
    FromBytes, Immutable, IntoBytes, KnownLayout,
    little_endian::{U16, U32, U64},
};

use crate::{
    connection::{Connection, HostError, virtio_ids},
    driver::{DeviceMemory, MAX_WAITS, close_device, open_device, wait_events},
    platform::Platform,
    session::BusSession,
    virtqueue::{DriverMem, DriverQueue},
};

/// Queue size the driver asks for on each queue.
pub const QUEUE_SIZE: u16 = 8;
/// Receive buffers kept posted, one page each.
pub const RX_BUFFERS: u16 = 4;
/// Size of each receive buffer: a header and up to 4052 payload bytes.
pub const RX_BUFFER_BYTES: usize = 4096;
const _: () = assert!(RX_BUFFER_BYTES as u64 == PAGE_SIZE && RX_BUFFERS <= QUEUE_SIZE);
/// Event buffers kept posted.
pub const EVENT_BUFFERS: usize = 4;
/// The partition's CID (`VMADDR_CID_HOST`).
pub const HOST_CID: u64 = 2;
/// Size of `struct virtio_vsock_hdr`.
pub const HDR_LEN: usize = 44;
/// Most payload one packet this driver sends carries (the transmit page less the header).
pub const MAX_PAYLOAD: usize = RX_BUFFER_BYTES - HDR_LEN;
/// The receive buffer each connection advertises (`buf_alloc`).
pub const RECV_BUF_ALLOC: u32 = 64 * 1024;
/// The first local port the driver uses.
pub const FIRST_LOCAL_PORT: u32 = 1024;
/// `VIRTIO_VSOCK_F_STREAM`.
pub const VIRTIO_VSOCK_F_STREAM: u64 = 1 << 0;

/// `VIRTIO_VSOCK_TYPE_STREAM`.
const TYPE_STREAM: u16 = 1;
/// SHUTDOWN flags: the sender receives no more, sends no more.
const SHUTDOWN_BOTH: u32 = 3;

/// Pages of the data area: the receive buffers, then the transmit page, then the events page.
const TX_PAGE: u64 = RX_BUFFERS as u64;
const EVENT_PAGE: u64 = TX_PAGE + 1;
const BUFFER_PAGES: u32 = RX_BUFFERS as u32 + 2;
/// Slots of [`VsockDriver::rx_heads`].
const RX_SLOTS: usize = RX_BUFFERS as usize;

/// Packet operations (`op`).
pub mod op {
    /// `VIRTIO_VSOCK_OP_REQUEST`.
    pub const REQUEST: u16 = 1;
    /// `VIRTIO_VSOCK_OP_RESPONSE`.
    pub const RESPONSE: u16 = 2;
    /// `VIRTIO_VSOCK_OP_RST`.
    pub const RST: u16 = 3;
    /// `VIRTIO_VSOCK_OP_SHUTDOWN`.
    pub const SHUTDOWN: u16 = 4;
    /// `VIRTIO_VSOCK_OP_RW`.
    pub const RW: u16 = 5;
    /// `VIRTIO_VSOCK_OP_CREDIT_UPDATE`.
    pub const CREDIT_UPDATE: u16 = 6;
    /// `VIRTIO_VSOCK_OP_CREDIT_REQUEST`.
    pub const CREDIT_REQUEST: u16 = 7;
}

/// `struct virtio_vsock_hdr` (virtio 1.2 §5.10.6), 44 bytes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VsockHeader {
    /// Offset 0, length 8: source CID.
    pub src_cid: U64,
    /// Offset 8, length 8: destination CID.
    pub dst_cid: U64,
    /// Offset 16, length 4: source port.
    pub src_port: U32,
    /// Offset 20, length 4: destination port.
    pub dst_port: U32,
    /// Offset 24, length 4: payload bytes.
    pub len: U32,
    /// Offset 28, length 2: socket type (1: stream).
    pub socket_type: U16,
    /// Offset 30, length 2: operation ([`op`]).
    pub op: U16,
    /// Offset 32, length 4: SHUTDOWN flags.
    pub flags: U32,
    /// Offset 36, length 4: the sender's receive buffer.
    pub buf_alloc: U32,
    /// Offset 40, length 4: the sender's forwarded count.
    pub fwd_cnt: U32,
}
const _: () = assert!(size_of::<VsockHeader>() == HDR_LEN);

impl<C: Conduit, P: Platform> Connection<C, P> {
    /// Opens the first socket device.
    pub fn vsock(&mut self) -> Result<VsockDriver<'_, C, P>, HostError> {
        let dev = self
            .list_devices()?
            .into_iter()
            .find(|d| d.info.device_id == virtio_ids::VSOCK)
            .ok_or(HostError::Device("no vsock device"))?;
        VsockDriver::open(self, dev.dev_num)
    }
}

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// REQUEST sent, no answer yet.
    Connecting,
    /// RESPONSE received.
    Connected,
    /// The device sent SHUTDOWN with these flags (1: it receives no more, 2: it sends no more).
    PeerShutdown(u32),
    /// Ended by an RST (a refused connection, a reset, or the end of a clean shutdown).
    Closed,
}

/// One connection's driver-side state.
#[derive(Debug)]
struct Stream {
    local_port: u32,
    peer_port: u32,
    state: StreamState,
    /// Payload received and not yet taken by the caller.
    inbox: VecDeque<u8>,
    /// Payload the caller has taken (free-running): our `fwd_cnt`.
    fwd_cnt: u32,
    /// The `fwd_cnt` we last told the device.
    fwd_cnt_sent: u32,
    /// Payload bytes received (free-running).
    rx_cnt: u32,
    /// Payload bytes sent (free-running).
    tx_cnt: u32,
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    /// The device asked for our credit.
    credit_asked: bool,
}

impl Stream {
    fn peer_credit(&self) -> u32 {
        self.peer_buf_alloc
            .saturating_sub(self.tx_cnt.wrapping_sub(self.peer_fwd_cnt))
    }
}

/// What the driver counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VsockDriverStats {
    /// Packets received.
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Packets dropped: malformed, from another CID, or for no connection.
    pub dropped: u64,
    /// Event buffers the device used (TRANSPORT_RESET events).
    pub events: u64,
}

/// An initialised virtio-vsock device.
pub struct VsockDriver<'c, C: Conduit, P: Platform> {
    session: &'c mut BusSession<C>,
    platform: &'c P,
    dev_num: u16,
    rx: DriverQueue,
    tx: DriverQueue,
    event: DriverQueue,
    /// The rings of the three queues; the data area holds the receive buffers, the transmit
    /// page and the event buffers.
    memory: DeviceMemory,
    guest_cid: u64,
    /// Which receive buffer each posted rx head is.
    rx_heads: [Option<u16>; RX_SLOTS],
    /// Packets received and not yet handled.
    backlog: VecDeque<(VsockHeader, Vec<u8>)>,
    streams: Vec<Stream>,
    next_port: u32,
    stats: VsockDriverStats,
    closed: bool,
}

impl<'c, C: Conduit, P: Platform> VsockDriver<'c, C, P> {
    /// Initialises device `dev_num` of `conn` as a socket device and posts its buffers.
    pub fn open(conn: &'c mut Connection<C, P>, dev_num: u16) -> Result<Self, HostError> {
        let (session, platform) = conn.parts();
        let ring_len = DriverQueue::layout(QUEUE_SIZE)?.total.next_multiple_of(16);
        let ring_pages = u32::try_from((3 * ring_len).div_ceil(PAGE_SIZE)).unwrap_or(u32::MAX);
        let (memory, (rx, tx, event, guest_cid)) = open_device(
            session,
            platform,
            dev_num,
            (virtio_ids::VSOCK, "not a vsock device"),
            (ring_pages, BUFFER_PAGES),
            |client, memory| {
                let features = client.initialize(
                    VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM | VIRTIO_VSOCK_F_STREAM,
                )?;
                log::debug!("vsock features {features:#x}");
                let mut cid = [0u8; 8];
                client.get_config(0, &mut cid)?;
                let guest_cid = u64::from_le_bytes(cid);
                for q in 0..3 {
                    if client.get_vqueue(q)?.max_size < u32::from(QUEUE_SIZE) {
                        return Err(HostError::Device("vsock queue too small"));
                    }
                }
                let ring = &memory.ring;
                let mut queues = Vec::new();
                for q in 0..3u64 {
                    let at = q * ring_len;
                    queues.push(DriverQueue::new(
                        platform,
                        QUEUE_SIZE,
                        ring.pa + at,
                        ring.bus(at),
                    )?);
                }
                let (Some(event), Some(tx), Some(rx)) = (queues.pop(), queues.pop(), queues.pop())
                else {
                    return Err(HostError::Device("vsock queues"));
                };
                client.set_vqueue(0, rx.queue_config())?;
                client.set_vqueue(1, tx.queue_config())?;
                client.set_vqueue(2, event.queue_config())?;
                client.driver_ok()?;
                Ok((rx, tx, event, guest_cid))
            },
        )?;
        let mut driver = Self {
            session,
            platform,
            dev_num,
            rx,
            tx,
            event,
            memory,
            guest_cid,
            rx_heads: [None; RX_SLOTS],
            backlog: VecDeque::new(),
            streams: Vec::new(),
            next_port: FIRST_LOCAL_PORT,
            stats: VsockDriverStats::default(),
            closed: false,
        };
        driver.post_buffers()?;
        Ok(driver)
    }

    /// The CID the device gave this driver.
    pub fn guest_cid(&self) -> u64 {
        self.guest_cid
    }

    /// What the driver counted.
    pub fn stats(&self) -> VsockDriverStats {
        self.stats
    }

    fn client(&mut self) -> Result<DeviceClient<&mut BusSession<C>>, HostError> {
        let layout = self.session.info().dialect.layout();
        Ok(DeviceClient::new(&mut *self.session, self.dev_num, layout)?)
    }

    /// Posts every receive buffer and the event buffers, and tells the device.
    fn post_buffers(&mut self) -> Result<(), HostError> {
        for i in 0..RX_SLOTS {
            self.post_rx(i)?;
        }
        let size = u32::try_from(size_of::<u32>()).unwrap_or(4);
        for i in 0..EVENT_BUFFERS as u64 {
            let at = EVENT_PAGE * PAGE_SIZE + i * 4;
            self.event
                .add(self.platform, &[], &[(self.memory.buffer.bus(at), size)])?;
        }
        self.rx.publish(self.platform)?;
        self.event.publish(self.platform)?;
        let mut client = self.client()?;
        client.notify_avail(0)?;
        client.notify_avail(2)?;
        Ok(())
    }

    /// Puts receive buffer `i` in the rx ring (published by the caller).
    fn post_rx(&mut self, i: usize) -> Result<(), HostError> {
        let at = u64::try_from(i).unwrap_or(0) * PAGE_SIZE;
        let len = u32::try_from(RX_BUFFER_BYTES).unwrap_or(u32::MAX);
        let head = self
            .rx
            .add(self.platform, &[], &[(self.memory.buffer.bus(at), len)])?;
        if let Some(slot) = self.rx_heads.get_mut(i) {
            *slot = Some(head);
        }
        Ok(())
    }

    /// Takes every packet the device has written into the backlog and reposts the buffers;
    /// returns whether there was any. Sends nothing.
    fn collect(&mut self) -> Result<bool, HostError> {
        let mut any = false;
        while let Some((head, written)) = self.rx.pop_used(self.platform)? {
            any = true;
            let Some(i) = self.rx_heads.iter().position(|h| *h == Some(head)) else {
                return Err(HostError::Device("rx buffer the driver never posted"));
            };
            let n = usize::try_from(written).unwrap_or(0).min(RX_BUFFER_BYTES);
            let mut bytes = vec![0u8; n];
            let pa = self.memory.buffer.pa + u64::try_from(i).unwrap_or(0) * PAGE_SIZE;
            DriverMem::read(self.platform, pa, &mut bytes)?;
            self.post_rx(i)?;
            match parse(&bytes) {
                Some((hdr, payload))
                    if hdr.src_cid.get() == HOST_CID && hdr.dst_cid.get() == self.guest_cid =>
                {
                    self.stats.packets_in += 1;
                    self.backlog.push_back((hdr, payload.to_vec()));
                }
                _ => {
                    log::warn!("vsock: malformed packet of {n} bytes dropped");
                    self.stats.dropped += 1;
                }
            }
        }
        while self.event.pop_used(self.platform)?.is_some() {
            any = true;
            self.stats.events += 1;
            let at = EVENT_PAGE * PAGE_SIZE;
            self.event
                .add(self.platform, &[], &[(self.memory.buffer.bus(at), 4)])?;
            self.event.publish(self.platform)?;
            self.client()?.notify_avail(2)?;
        }
        if any {
            self.rx.publish(self.platform)?;
            self.client()?.notify_avail(0)?;
        }
        Ok(any)
    }

    /// Handles the backlog: data into inboxes, state changes, answers (CREDIT_UPDATE).
    fn handle(&mut self) -> Result<(), HostError> {
        while let Some((hdr, payload)) = self.backlog.pop_front() {
            let local = hdr.dst_port.get();
            let peer = hdr.src_port.get();
            let Some(s) = self
                .streams
                .iter_mut()
                .find(|s| s.local_port == local && s.peer_port == peer)
            else {
                self.stats.dropped += 1;
                continue;
            };
            s.peer_buf_alloc = hdr.buf_alloc.get();
            s.peer_fwd_cnt = hdr.fwd_cnt.get();
            match hdr.op.get() {
                op::RESPONSE if s.state == StreamState::Connecting => {
                    s.state = StreamState::Connected;
                }
                op::RST => s.state = StreamState::Closed,
                op::SHUTDOWN => {
                    let before = match s.state {
                        StreamState::PeerShutdown(f) => f,
                        _ => 0,
                    };
                    s.state = StreamState::PeerShutdown(before | (hdr.flags.get() & SHUTDOWN_BOTH));
                }
                op::RW => {
                    s.rx_cnt = s
                        .rx_cnt
                        .wrapping_add(u32::try_from(payload.len()).unwrap_or(0));
                    s.inbox.extend(payload);
                }
                op::CREDIT_REQUEST => s.credit_asked = true,
                op::CREDIT_UPDATE => {}
                other => {
                    log::warn!("vsock: op {other} from port {peer} ignored");
                }
            }
        }
        // Answers after the backlog is empty (sending waits, which collects more).
        let due: Vec<u32> = self
            .streams
            .iter()
            .filter(|s| s.credit_asked && s.state != StreamState::Closed)
            .map(|s| s.local_port)
            .collect();
        for local in due {
            if let Some(s) = self.stream_mut(local) {
                s.credit_asked = false;
            }
            self.send_control(local, op::CREDIT_UPDATE, 0)?;
        }
        Ok(())
    }

    /// Collects and handles what the device sent, waiting the dialect's way at most `waits`
    /// times until `done` holds.
    fn wait_until(
        &mut self,
        waits: usize,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<bool, HostError> {
        for k in 0..=waits {
            self.collect()?;
            self.handle()?;
            if done(self) {
                return Ok(true);
            }
            if k < waits {
                wait_events(self.session, self.platform, self.dev_num, 0)?;
            }
        }
        Ok(false)
    }

    fn stream(&self, local: u32) -> Option<&Stream> {
        self.streams.iter().find(|s| s.local_port == local)
    }

    fn stream_mut(&mut self, local: u32) -> Option<&mut Stream> {
        self.streams.iter_mut().find(|s| s.local_port == local)
    }

    /// Where connection `local` stands.
    pub fn state(&self, local: u32) -> Option<StreamState> {
        self.stream(local).map(|s| s.state)
    }

    /// Sends one packet of `op` with `payload` on connection `local` and waits until the
    /// device has taken it.
    fn send_packet(
        &mut self,
        local: u32,
        op_code: u16,
        flags: u32,
        payload: &[u8],
    ) -> Result<(), HostError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(HostError::Device(
                "vsock packet longer than the transmit page",
            ));
        }
        let guest_cid = self.guest_cid;
        let s = self
            .stream_mut(local)
            .ok_or(HostError::Device("no such vsock connection"))?;
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        if op_code == op::RW {
            s.tx_cnt = s.tx_cnt.wrapping_add(len);
        }
        s.fwd_cnt_sent = s.fwd_cnt;
        let hdr = VsockHeader {
            src_cid: U64::new(guest_cid),
            dst_cid: U64::new(HOST_CID),
            src_port: U32::new(s.local_port),
            dst_port: U32::new(s.peer_port),
            len: U32::new(len),
            socket_type: U16::new(TYPE_STREAM),
            op: U16::new(op_code),
            flags: U32::new(flags),
            buf_alloc: U32::new(RECV_BUF_ALLOC),
            fwd_cnt: U32::new(s.fwd_cnt),
        };
        let mut bytes = Vec::with_capacity(HDR_LEN + payload.len());
        bytes.extend_from_slice(hdr.as_bytes());
        bytes.extend_from_slice(payload);
        let at = TX_PAGE * PAGE_SIZE;
        DriverMem::write(self.platform, self.memory.buffer.pa + at, &bytes)?;
        let total = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.tx
            .add(self.platform, &[(self.memory.buffer.bus(at), total)], &[])?;
        self.tx.publish(self.platform)?;
        self.client()?.notify_avail(1)?;
        self.stats.packets_out += 1;
        for _ in 0..MAX_WAITS {
            if self.tx.pop_used(self.platform)?.is_some() {
                return Ok(());
            }
            // The device may hold tx until it has somewhere to put its answers.
            self.collect()?;
            wait_events(self.session, self.platform, self.dev_num, 1)?;
        }
        Err(HostError::Device("vsock transmit buffer never returned"))
    }

    fn send_control(&mut self, local: u32, op_code: u16, flags: u32) -> Result<(), HostError> {
        self.send_packet(local, op_code, flags, &[])
    }

    /// Connects to the partition's `port`: REQUEST, then waits for RESPONSE. Returns the
    /// local port of the new connection; a refusal (RST) is an error.
    pub fn connect(&mut self, port: u32) -> Result<u32, HostError> {
        let local = self.next_port;
        self.next_port = self.next_port.wrapping_add(1).max(FIRST_LOCAL_PORT);
        self.streams.retain(|s| s.local_port != local);
        self.streams.push(Stream {
            local_port: local,
            peer_port: port,
            state: StreamState::Connecting,
            inbox: VecDeque::new(),
            fwd_cnt: 0,
            fwd_cnt_sent: 0,
            rx_cnt: 0,
            tx_cnt: 0,
            peer_buf_alloc: 0,
            peer_fwd_cnt: 0,
            credit_asked: false,
        });
        self.send_control(local, op::REQUEST, 0)?;
        self.wait_until(MAX_WAITS, |d| {
            d.state(local) != Some(StreamState::Connecting)
        })?;
        match self.state(local) {
            Some(StreamState::Connected) => Ok(local),
            Some(StreamState::Closed) => {
                self.streams.retain(|s| s.local_port != local);
                Err(HostError::Device("vsock connection refused"))
            }
            _ => Err(HostError::Device("no answer to the vsock REQUEST")),
        }
    }

    /// Sends `bytes` on connection `local`, in packets within the device's credit (asking for
    /// more and waiting when it has none).
    pub fn send(&mut self, local: u32, mut bytes: &[u8]) -> Result<(), HostError> {
        while !bytes.is_empty() {
            // The device's latest credit may wait in packets collected while sending.
            self.handle()?;
            let s = self
                .stream(local)
                .ok_or(HostError::Device("no such vsock connection"))?;
            if s.state != StreamState::Connected {
                return Err(HostError::Device("vsock connection not open for sending"));
            }
            let credit = usize::try_from(s.peer_credit()).unwrap_or(usize::MAX);
            if credit == 0 {
                let before = (s.peer_buf_alloc, s.peer_fwd_cnt);
                self.send_control(local, op::CREDIT_REQUEST, 0)?;
                let got = self.wait_until(MAX_WAITS, |d| {
                    d.stream(local).is_none_or(|s| {
                        (s.peer_buf_alloc, s.peer_fwd_cnt) != before
                            || s.state != StreamState::Connected
                    })
                })?;
                if !got {
                    return Err(HostError::Device("the vsock device never gave credit"));
                }
                continue;
            }
            let n = bytes.len().min(credit).min(MAX_PAYLOAD);
            let (now, rest) = bytes.split_at(n);
            self.send_packet(local, op::RW, 0, now)?;
            bytes = rest;
        }
        Ok(())
    }

    /// Takes what connection `local` has received so far, telling the device the freed
    /// credit when its view runs low. Collects until the device has nothing more: it answers
    /// within the request that brought it what to answer (each repost of rx buffers is such
    /// a request), so this returns what it had to say without waiting for events.
    pub fn recv(&mut self, local: u32) -> Result<Vec<u8>, HostError> {
        let mut data = Vec::new();
        for _ in 0..MAX_WAITS {
            let more = self.collect()?;
            self.handle()?;
            data.extend(self.take(local)?);
            if !more {
                break;
            }
        }
        Ok(data)
    }

    /// The inbox of `local`, taken, and a CREDIT_UPDATE if the device's view of our free
    /// space is below half.
    fn take(&mut self, local: u32) -> Result<Vec<u8>, HostError> {
        let s = self
            .stream_mut(local)
            .ok_or(HostError::Device("no such vsock connection"))?;
        let data: Vec<u8> = s.inbox.drain(..).collect();
        s.fwd_cnt = s
            .fwd_cnt
            .wrapping_add(u32::try_from(data.len()).unwrap_or(0));
        let unreported = s.rx_cnt.wrapping_sub(s.fwd_cnt_sent);
        let open = matches!(
            s.state,
            StreamState::Connected | StreamState::PeerShutdown(_)
        );
        if open && s.fwd_cnt != s.fwd_cnt_sent && unreported > RECV_BUF_ALLOC / 2 {
            self.send_control(local, op::CREDIT_UPDATE, 0)?;
        }
        Ok(data)
    }

    /// Reads from `local` until what was read ends with `end` (or the connection closes).
    pub fn read_until(&mut self, local: u32, end: &[u8]) -> Result<Vec<u8>, HostError> {
        let mut out = Vec::new();
        for _ in 0..MAX_WAITS {
            out.extend(self.recv(local)?);
            if out.ends_with(end) {
                return Ok(out);
            }
            if matches!(
                self.state(local),
                Some(StreamState::Closed | StreamState::PeerShutdown(_))
            ) {
                break;
            }
            wait_events(self.session, self.platform, self.dev_num, 0)?;
        }
        if out.ends_with(end) {
            return Ok(out);
        }
        Err(HostError::Device("vsock answer never ended as expected"))
    }

    /// Reads from `local` until `len` bytes arrived.
    pub fn read_exact(&mut self, local: u32, len: usize) -> Result<Vec<u8>, HostError> {
        let mut out = Vec::new();
        for _ in 0..MAX_WAITS {
            out.extend(self.recv(local)?);
            if out.len() >= len {
                return Ok(out);
            }
            wait_events(self.session, self.platform, self.dev_num, 0)?;
        }
        Err(HostError::Device("vsock answer shorter than expected"))
    }

    /// Ends connection `local` cleanly: SHUTDOWN (both directions), then waits for the
    /// device's RST.
    pub fn shutdown(&mut self, local: u32) -> Result<(), HostError> {
        if self.state(local) != Some(StreamState::Closed) {
            self.send_control(local, op::SHUTDOWN, SHUTDOWN_BOTH)?;
            let done = self.wait_until(MAX_WAITS, |d| {
                d.state(local).is_none_or(|s| s == StreamState::Closed)
            })?;
            if !done {
                return Err(HostError::Device("no RST after the vsock SHUTDOWN"));
            }
        }
        self.streams.retain(|s| s.local_port != local);
        Ok(())
    }

    /// Aborts connection `local` with an RST.
    pub fn reset_stream(&mut self, local: u32) -> Result<(), HostError> {
        if self.state(local).is_some_and(|s| s != StreamState::Closed) {
            self.send_control(local, op::RST, 0)?;
        }
        self.streams.retain(|s| s.local_port != local);
        Ok(())
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

impl<C: Conduit, P: Platform> Drop for VsockDriver<'_, C, P> {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("closing the vsock device failed: {e}");
        }
    }
}

/// A packet's header and payload, if `bytes` holds a header and its `len` bytes.
fn parse(bytes: &[u8]) -> Option<(VsockHeader, &[u8])> {
    let (hdr, rest) = VsockHeader::read_from_prefix(bytes).ok()?;
    let len = usize::try_from(hdr.len.get()).ok()?;
    Some((hdr, rest.get(..len)?))
}
