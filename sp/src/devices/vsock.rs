//! virtio-vsock (socket device, device id 19; virtio 1.2 §5.10, unchanged in 1.3) over
//! [`VsockServices`]: stream sockets from the driver to services listening in the partition.
//!
//! The partition is the host side of vsock, CID 2 (`VMADDR_CID_HOST`); the driver's CID is
//! [`GUEST_CID`] in the configuration space (`struct virtio_vsock_config { le64 guest_cid; }`,
//! §5.10.4). Every endpoint has a device instance of its own, so each VM's CID space, ports and
//! connections are its own, and every VM sees itself as CID 3.
//!
//! Features (§5.10.3): `VIRTIO_VSOCK_F_STREAM` besides the transport's `VIRTIO_F_VERSION_1` and
//! `VIRTIO_F_ACCESS_PLATFORM`. Stream is the only socket type, whatever the driver accepts: a
//! driver that negotiates no type bit gets stream, as §5.10.3.2 says it should. Neither
//! `F_SEQPACKET` nor `F_NO_IMPLIED_STREAM` is offered (the device SHOULD offer the latter; with
//! stream the only type it serves, a driver that took it without `F_STREAM` could use nothing,
//! so not offering it keeps every driver on stream).
//!
//! Queues (§5.10.2): 0 rx (device to driver: device-writable buffers, one packet each), 1 tx
//! (driver to device: device-readable buffers, one packet each, returned with used length 0),
//! 2 event. The event queue's buffers are held and never used: its only event,
//! `VIRTIO_VSOCK_EVENT_TRANSPORT_RESET`, tells a driver its CID changed, which never happens.
//!
//! # Packets (§5.10.6)
//!
//! Each packet is the 44-byte `struct virtio_vsock_hdr` ([`Header`]) followed by `len` bytes of
//! payload; the header and the payload may span descriptors. What the device does with a packet
//! the driver sends (it never answers an RST with an RST):
//!
//! | packet | answer |
//! |---|---|
//! | fewer than 44 readable bytes, device-writable buffers (the wrong direction), or a header outside shared memory | dropped (no address to answer) |
//! | `src_cid` not [`GUEST_CID`] or `dst_cid` not [`HOST_CID`] (§5.10.6.3.1: the driver MUST use its CID; as vhost-vsock does) | dropped |
//! | `type` not stream (§5.10.6.3: "MUST" be answered with RST), `len` past the readable bytes, `len` not 0 on a control op, an unknown op or `INVALID` | RST (and the connection, if any, closed) |
//! | REQUEST to a port nothing listens on, or with every connection slot taken or no heap for the buffers (§5.10.6.5: "insufficient resources") | RST |
//! | REQUEST to a listening port | RESPONSE; a new connection |
//! | anything but REQUEST for a connection that does not exist, RESPONSE (the device never connects out), a second REQUEST on a connection | RST |
//! | RW within the credit the device advertised | payload to the service |
//! | RW past that credit (a driver ignoring flow control), or after the driver's SHUTDOWN with `SEND` | RST, the connection closed: its buffers never grow |
//! | CREDIT_REQUEST | CREDIT_UPDATE |
//! | SHUTDOWN with both `RCV` and `SEND` | RST, the connection closed (the clean disconnect of §5.10.6.5, as Linux answers it) |
//! | SHUTDOWN with `SEND` only | the service gets the rest of the input; once every answer went out, the device sends SHUTDOWN (both) and waits for the driver's RST |
//! | SHUTDOWN with `RCV` only | the service's output is dropped from then on |
//! | RST | the connection, if any, closed; no answer |
//!
//! # Flow control (§5.10.6.3, "Buffer Space Management")
//!
//! Every connection has a fixed receive buffer of [`CONN_RX_BYTES`] (its `buf_alloc`) and a
//! fixed transmit buffer of [`CONN_TX_BYTES`]. All [`MAX_CONNECTIONS`] slots' buffers are one
//! block of [`BUFFER_BYTES`], taken from the heap (fallibly: without room, the REQUEST gets an
//! RST) when the device accepts its first connection and given back at reset, so an endpoint
//! that never connects costs nothing and no packet makes the partition allocate more.
//! Every packet the device sends carries its `buf_alloc` and `fwd_cnt` (the bytes the service
//! took); it sends a CREDIT_UPDATE of its own when the driver's view of the free space falls
//! below half the buffer, and one for every CREDIT_REQUEST. The device sends RW payload only
//! within the driver's credit, `peer_buf_alloc - (tx_cnt - peer_fwd_cnt)` (a driver claiming
//! to have forwarded more than it was sent has no credit), and asks with CREDIT_REQUEST when
//! it has data and no credit. A service takes input only as its output has room, so a driver
//! that does not read its answers soon has no credit to send more.
//!
//! # Resources outside the queues (§5.10.6.2, "Virtqueue Flow Control")
//!
//! Answers to connections (RESPONSE, data, credit, SHUTDOWN) are state of the connection, sent
//! as rx buffers come. RSTs for packets without a connection wait in a queue of
//! [`PENDING_MAX`]; while it is full the device takes no further packet from tx (it goes on
//! once the driver has given rx buffers), so no driver can make it hold more.
//!
//! Bounds against a hostile driver: one notify serves at most `size` chains per queue and
//! round, and starts none once its [`Budget`] is spent; payload is read in [`CHUNK`]-byte
//! pieces through a buffer kept with the device; nothing is allocated per packet beyond the
//! chain's buffer list. A packet whose payload cannot be read resets its connection; an rx
//! buffer outside shared memory is a [`DeviceError`] (DEVICE_NEEDS_RESET), as for the console.

use alloc::{boxed::Box, sync::Arc, vec::Vec};

use virtio_msg::{
    SharedMem,
    device::{
        Budget, DeviceError, EndpointStats, QueueConfig, VIRTIO_F_ACCESS_PLATFORM,
        VIRTIO_F_VERSION_1, VirtioDevice,
    },
};
use zerocopy::{
    FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout,
    little_endian::{U16, U32, U64},
};

use super::{
    shell::Shell,
    stream::{Echo, Output, Ring, RingBuf},
};
use crate::virtqueue::{DescChain, SplitQueue};

/// Virtio device id of the socket device.
pub const DEVICE_ID: u32 = 19;
/// Index of the rx queue (device to driver).
pub const RXQ: u32 = 0;
/// Index of the tx queue (driver to device).
pub const TXQ: u32 = 1;
/// Index of the event queue.
pub const EVENTQ: u32 = 2;
/// Largest queue size the device accepts (every queue).
pub const QUEUE_MAX_SIZE: u16 = 64;

/// `VIRTIO_VSOCK_F_STREAM` (feature bit 0): stream sockets.
pub const VIRTIO_VSOCK_F_STREAM: u64 = 1 << 0;

/// `VMADDR_CID_HOST`: the partition's own CID.
pub const HOST_CID: u64 = 2;
/// The CID every driver gets in the configuration space (not reserved: §5.10.4).
pub const GUEST_CID: u64 = 3;

/// `VIRTIO_VSOCK_TYPE_STREAM`.
pub const TYPE_STREAM: u16 = 1;
/// `VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE`: the sender will receive no more data.
pub const SHUTDOWN_RCV: u32 = 1 << 0;
/// `VIRTIO_VSOCK_SHUTDOWN_F_SEND`: the sender will send no more data.
pub const SHUTDOWN_SEND: u32 = 1 << 1;

/// Size of `struct virtio_vsock_hdr`.
pub const HDR_LEN: usize = 44;
/// Connections an endpoint may have open at once; a REQUEST beyond them gets an RST.
pub const MAX_CONNECTIONS: usize = 8;
/// Each connection's receive buffer: its `buf_alloc`, the most payload the driver may have
/// sent and the service not yet taken.
pub const CONN_RX_BYTES: usize = 1024;
/// Each connection's transmit buffer: the service's output waiting for credit and rx buffers.
pub const CONN_TX_BYTES: usize = 1024;
/// RSTs waiting for rx buffers (answers to packets without a connection).
pub const PENDING_MAX: usize = 8;
/// Size of the buffer payload passes through from driver memory.
pub const CHUNK: usize = 512;

/// The port the [`StandardServices`] echo listens on (as the echo protocol's).
pub const ECHO_PORT: u32 = 7;
/// The port the [`StandardServices`] partition shell listens on.
pub const SHELL_PORT: u32 = 23;

/// `buf_alloc` as it goes on the wire.
#[allow(clippy::cast_possible_truncation)] // Checked just below.
const BUF_ALLOC: u32 = CONN_RX_BYTES as u32;
const _: () = assert!(BUF_ALLOC as usize == CONN_RX_BYTES && CONN_TX_BYTES > 0);
/// `HDR_LEN` as a bus-address offset.
const HDR_LEN_U64: u64 = HDR_LEN as u64;

/// The packet operations (`op`, §5.10.6), unknown values kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Op {
    /// `VIRTIO_VSOCK_OP_INVALID` (0).
    #[default]
    Invalid,
    /// `VIRTIO_VSOCK_OP_REQUEST` (1): connect.
    Request,
    /// `VIRTIO_VSOCK_OP_RESPONSE` (2): connection accepted.
    Response,
    /// `VIRTIO_VSOCK_OP_RST` (3): connection refused or aborted.
    Rst,
    /// `VIRTIO_VSOCK_OP_SHUTDOWN` (4): no more data one way or both (`flags`).
    Shutdown,
    /// `VIRTIO_VSOCK_OP_RW` (5): payload.
    Rw,
    /// `VIRTIO_VSOCK_OP_CREDIT_UPDATE` (6): the sender's `buf_alloc` and `fwd_cnt`.
    CreditUpdate,
    /// `VIRTIO_VSOCK_OP_CREDIT_REQUEST` (7): asks for a CREDIT_UPDATE.
    CreditRequest,
    /// Any other value.
    Unknown(u16),
}

impl From<u16> for Op {
    fn from(op: u16) -> Self {
        match op {
            0 => Self::Invalid,
            1 => Self::Request,
            2 => Self::Response,
            3 => Self::Rst,
            4 => Self::Shutdown,
            5 => Self::Rw,
            6 => Self::CreditUpdate,
            7 => Self::CreditRequest,
            other => Self::Unknown(other),
        }
    }
}

impl From<Op> for u16 {
    fn from(op: Op) -> Self {
        match op {
            Op::Invalid => 0,
            Op::Request => 1,
            Op::Response => 2,
            Op::Rst => 3,
            Op::Shutdown => 4,
            Op::Rw => 5,
            Op::CreditUpdate => 6,
            Op::CreditRequest => 7,
            Op::Unknown(other) => other,
        }
    }
}

/// `struct virtio_vsock_hdr` (virtio 1.2 §5.10.6), 44 bytes.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct RawHeader {
    /// Offset 0, length 8: source CID (upper 32 bits reserved, zero).
    src_cid: U64,
    /// Offset 8, length 8: destination CID.
    dst_cid: U64,
    /// Offset 16, length 4: source port.
    src_port: U32,
    /// Offset 20, length 4: destination port.
    dst_port: U32,
    /// Offset 24, length 4: payload bytes after the header.
    len: U32,
    /// Offset 28, length 2: socket type (`VIRTIO_VSOCK_TYPE_*`).
    socket_type: U16,
    /// Offset 30, length 2: operation (`VIRTIO_VSOCK_OP_*`).
    op: U16,
    /// Offset 32, length 4: SHUTDOWN flags (`VIRTIO_VSOCK_SHUTDOWN_F_*`).
    flags: U32,
    /// Offset 36, length 4: the sender's receive buffer for this socket.
    buf_alloc: U32,
    /// Offset 40, length 4: payload bytes the sender has received and processed (free-running).
    fwd_cnt: U32,
}
const _: () = assert!(size_of::<RawHeader>() == HDR_LEN);

/// A packet header, decoded (every field as it was on the wire).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Source CID.
    pub src_cid: u64,
    /// Destination CID.
    pub dst_cid: u64,
    /// Source port.
    pub src_port: u32,
    /// Destination port.
    pub dst_port: u32,
    /// Payload bytes after the header.
    pub len: u32,
    /// Socket type (1: stream).
    pub socket_type: u16,
    /// Operation.
    pub op: Op,
    /// SHUTDOWN flags.
    pub flags: u32,
    /// The sender's receive buffer for this socket.
    pub buf_alloc: u32,
    /// The sender's free-running count of payload bytes received and processed.
    pub fwd_cnt: u32,
}

impl Header {
    /// Decodes the 44 header bytes.
    pub fn decode(bytes: &[u8; HDR_LEN]) -> Self {
        let raw = RawHeader::read_from_bytes(bytes).unwrap_or_else(|_| RawHeader::new_zeroed());
        Self {
            src_cid: raw.src_cid.get(),
            dst_cid: raw.dst_cid.get(),
            src_port: raw.src_port.get(),
            dst_port: raw.dst_port.get(),
            len: raw.len.get(),
            socket_type: raw.socket_type.get(),
            op: Op::from(raw.op.get()),
            flags: raw.flags.get(),
            buf_alloc: raw.buf_alloc.get(),
            fwd_cnt: raw.fwd_cnt.get(),
        }
    }

    /// The 44 header bytes.
    pub fn encode(&self) -> [u8; HDR_LEN] {
        let raw = RawHeader {
            src_cid: U64::new(self.src_cid),
            dst_cid: U64::new(self.dst_cid),
            src_port: U32::new(self.src_port),
            dst_port: U32::new(self.dst_port),
            len: U32::new(self.len),
            socket_type: U16::new(self.socket_type),
            op: U16::new(self.op.into()),
            flags: U32::new(self.flags),
            buf_alloc: U32::new(self.buf_alloc),
            fwd_cnt: U32::new(self.fwd_cnt),
        };
        let mut bytes = [0u8; HDR_LEN];
        bytes.copy_from_slice(raw.as_bytes());
        bytes
    }
}

/// The server side of one connection, made by [`VsockServices::accept`].
pub trait VsockSession {
    /// The connection was accepted: a greeting may go into `out`.
    fn on_connect(&mut self, out: &mut dyn Output) {
        let _ = out;
    }
    /// `input` arrived (the oldest bytes not yet taken, in order; a stream, so pieces split
    /// anywhere). Takes a prefix of it and returns its length; answers go into `out`, whose
    /// room the session respects (what does not fit is lost). What is left is offered again
    /// once `out` has drained; bytes taken count as forwarded (`fwd_cnt`), so a session that
    /// takes nothing stops its peer once the receive buffer is full.
    fn on_data(&mut self, input: &[u8], out: &mut dyn Output) -> usize;
}

/// The listening side of a vsock device: which local ports have a service, and a session for
/// each connection. Sessions live in the device's fixed connection slots, so accepting one
/// allocates nothing.
pub trait VsockServices {
    /// A connection's state.
    type Session: VsockSession;
    /// A session for a new connection to local port `port`, or `None` if nothing listens
    /// there (the driver gets an RST).
    fn accept(&mut self, port: u32) -> Option<Self::Session>;
}

impl VsockSession for Echo {
    fn on_data(&mut self, input: &[u8], out: &mut dyn Output) -> usize {
        self.feed(input, out)
    }
}

impl VsockSession for Shell {
    fn on_connect(&mut self, out: &mut dyn Output) {
        self.open(out);
    }

    fn on_data(&mut self, input: &[u8], out: &mut dyn Output) -> usize {
        self.feed(input, out)
    }
}

/// The partition's services: [`Echo`] on [`ECHO_PORT`] and the partition [`Shell`] on
/// [`SHELL_PORT`].
#[derive(Clone, Debug)]
pub struct StandardServices {
    devices: &'static str,
    stats: Option<Arc<EndpointStats>>,
}

impl StandardServices {
    /// The services; the shell's `devices` command prints `devices`.
    pub const fn new(devices: &'static str) -> Self {
        Self {
            devices,
            stats: None,
        }
    }

    /// The same, with a shell whose `stats` reports `stats` (see [`Shell::with_stats`]).
    #[must_use]
    pub fn with_stats(mut self, stats: Arc<EndpointStats>) -> Self {
        self.stats = Some(stats);
        self
    }
}

/// A connection to one of the [`StandardServices`].
pub enum StandardSession {
    /// To the echo.
    Echo(Echo),
    /// To the shell.
    Shell(Shell),
}

impl VsockSession for StandardSession {
    fn on_connect(&mut self, out: &mut dyn Output) {
        match self {
            Self::Echo(echo) => echo.on_connect(out),
            Self::Shell(shell) => shell.on_connect(out),
        }
    }

    fn on_data(&mut self, input: &[u8], out: &mut dyn Output) -> usize {
        match self {
            Self::Echo(echo) => echo.on_data(input, out),
            Self::Shell(shell) => VsockSession::on_data(shell, input, out),
        }
    }
}

impl VsockServices for StandardServices {
    type Session = StandardSession;

    fn accept(&mut self, port: u32) -> Option<StandardSession> {
        match port {
            ECHO_PORT => Some(StandardSession::Echo(Echo)),
            SHELL_PORT => {
                let shell = Shell::new(self.devices);
                Some(StandardSession::Shell(match &self.stats {
                    Some(stats) => shell.with_stats(Arc::clone(stats)),
                    None => shell,
                }))
            }
            _ => None,
        }
    }
}

/// What the device counted (since it was made; reset keeps the counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VsockStats {
    /// Connections accepted.
    pub accepted: u64,
    /// REQUESTs refused: nothing listening, or no free slot.
    pub refused: u64,
    /// RSTs the device sent.
    pub resets_sent: u64,
    /// tx packets dropped unanswered: short, wrong direction, unreadable header, wrong CIDs.
    pub dropped: u64,
    /// tx packets answered with RST for breaking the protocol (type, op, lengths, state).
    pub malformed: u64,
    /// RW packets past the credit the device advertised (the connection was reset).
    pub credit_violations: u64,
    /// RSTs not sent because the pending queue was full (never, by construction; counted).
    pub resets_lost: u64,
    /// rx chains returned unused: readable buffers, or too small for a header.
    pub bad_rx_buffers: u64,
}

/// One open connection's state (its buffers are in its [`Slot`]).
struct Conn<T> {
    /// The driver's port (the key, with `local_port`).
    guest_port: u32,
    /// The partition's port, where the service listens.
    local_port: u32,
    session: T,
    /// Payload bytes the session took (free-running): our `fwd_cnt`.
    fwd_cnt: u32,
    /// The `fwd_cnt` of the last packet the device sent on this connection.
    fwd_cnt_sent: u32,
    /// Payload bytes the device sent (free-running).
    tx_cnt: u32,
    /// The driver's `buf_alloc`, from its latest packet.
    peer_buf_alloc: u32,
    /// The driver's `fwd_cnt`, from its latest packet.
    peer_fwd_cnt: u32,
    /// The SHUTDOWN flags the driver sent (permanent once sent).
    peer_shutdown: u32,
    /// RESPONSE not sent yet.
    response_due: bool,
    /// The driver's view of our free space is low and has grown: any packet will do.
    credit_update_due: bool,
    /// The driver asked (CREDIT_REQUEST): a CREDIT_UPDATE is due.
    credit_reply_due: bool,
    /// A CREDIT_REQUEST was sent and the driver's credit has not changed since.
    credit_requested: bool,
    /// SHUTDOWN (both directions) is due: the driver will send nothing and all went out.
    shutdown_due: bool,
    /// The device sent its SHUTDOWN and waits for the driver's RST.
    closing: bool,
}

impl<T> Conn<T> {
    /// What the driver may still be sent: `peer_buf_alloc - (tx_cnt - peer_fwd_cnt)`, or 0 if
    /// the driver claims more forwarded than it was sent.
    fn peer_credit(&self) -> u32 {
        self.peer_buf_alloc
            .saturating_sub(self.tx_cnt.wrapping_sub(self.peer_fwd_cnt))
    }

    /// Takes the driver's credit information from one of its packets.
    fn update_peer_credit(&mut self, hdr: &Header) {
        if hdr.buf_alloc != self.peer_buf_alloc || hdr.fwd_cnt != self.peer_fwd_cnt {
            self.credit_requested = false;
        }
        self.peer_buf_alloc = hdr.buf_alloc;
        self.peer_fwd_cnt = hdr.fwd_cnt;
    }
}

/// A connection slot: its state when open, and where its buffers stand (their storage is the
/// device's [`Buffers`]).
struct Slot<T> {
    conn: Option<Conn<T>>,
    /// Payload received and not yet taken by the session.
    rx: Ring,
    /// The session's output not yet sent.
    tx: Ring,
}

impl<T> Slot<T> {
    const fn new() -> Self {
        Self {
            conn: None,
            rx: Ring::new(),
            tx: Ring::new(),
        }
    }

    fn close(&mut self) {
        self.conn = None;
        self.rx.clear();
        self.tx.clear();
    }

    /// Hands received payload (in `rx_buf`) to the session while it takes some, its output
    /// going to `tx_buf`; then updates what is due.
    fn pump(&mut self, rx_buf: &[u8], tx_buf: &mut [u8])
    where
        T: VsockSession,
    {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        // Each round takes at least one byte of at most CONN_RX_BYTES.
        while !self.rx.is_empty() {
            let front = self.rx.front(rx_buf);
            let mut out = RingBuf {
                ring: &mut self.tx,
                storage: &mut *tx_buf,
            };
            let taken = conn.session.on_data(front, &mut out).min(front.len());
            if taken == 0 {
                break;
            }
            self.rx.consume(rx_buf.len(), taken);
            conn.fwd_cnt = conn.fwd_cnt.wrapping_add(u32::try_from(taken).unwrap_or(0));
        }
        if conn.peer_shutdown & SHUTDOWN_RCV != 0 {
            self.tx.clear();
        }
        // The driver's view of the free space: buf_alloc less what it sent since the last
        // fwd_cnt it was told. Tell it more once that is below half and has grown.
        let told = usize::try_from(conn.fwd_cnt.wrapping_sub(conn.fwd_cnt_sent)).unwrap_or(0);
        let view = CONN_RX_BYTES.saturating_sub(told.saturating_add(self.rx.len()));
        if told > 0 && view < CONN_RX_BYTES / 2 {
            conn.credit_update_due = true;
        }
        if conn.peer_shutdown & SHUTDOWN_SEND != 0
            && !conn.closing
            && self.rx.is_empty()
            && self.tx.is_empty()
        {
            conn.shutdown_due = true;
        }
    }

    /// Whether the connection has a packet to send.
    fn has_due(&self) -> bool {
        self.conn.as_ref().is_some_and(|conn| {
            let credit = conn.peer_credit() > 0;
            conn.response_due
                || (!self.tx.is_empty() && (credit || !conn.credit_requested))
                || conn.credit_update_due
                || conn.credit_reply_due
                || conn.shutdown_due
        })
    }
}

/// The storage of every slot's buffers, in one allocation: slot `i`'s receive buffer, then its
/// transmit buffer, at `i * (CONN_RX_BYTES + CONN_TX_BYTES)`. [`BUFFER_BYTES`], a power of two:
/// a block the partition's buddy heap gives without rounding up.
struct Buffers(Box<[u8]>);

/// Bytes of both buffers of one slot.
const SLOT_BYTES: usize = CONN_RX_BYTES + CONN_TX_BYTES;
/// Bytes of every slot's buffers (16 KiB): taken from the heap, fallibly, when the first
/// connection is accepted, and given back when the device is reset.
pub const BUFFER_BYTES: usize = MAX_CONNECTIONS * SLOT_BYTES;
const _: () = assert!(BUFFER_BYTES.is_power_of_two());

impl Buffers {
    /// The buffers, if the heap has room for them.
    fn try_new() -> Option<Self> {
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(BUFFER_BYTES).ok()?;
        bytes.resize(BUFFER_BYTES, 0);
        Some(Self(bytes.into_boxed_slice()))
    }

    /// Slot `i`'s (receive, transmit) storage; empty for a slot that does not exist.
    fn of(&mut self, i: usize) -> (&mut [u8], &mut [u8]) {
        let at = i.saturating_mul(SLOT_BYTES);
        let both = self
            .0
            .get_mut(at..at.saturating_add(SLOT_BYTES))
            .unwrap_or(&mut []);
        if both.len() < SLOT_BYTES {
            return (&mut [], &mut []);
        }
        both.split_at_mut(CONN_RX_BYTES)
    }
}

/// Slot `i`'s storage in `buffers`, or none (empty: nothing fits) when there are none.
fn storage(buffers: &mut Option<Buffers>, i: usize) -> (&mut [u8], &mut [u8]) {
    match buffers {
        Some(b) => b.of(i),
        None => (&mut [], &mut []),
    }
}

/// RSTs waiting for rx buffers: `(driver's port, partition's port)` of each, oldest first.
struct Pending {
    entries: [(u32, u32); PENDING_MAX],
    start: usize,
    len: usize,
}

impl Pending {
    const fn new() -> Self {
        Self {
            entries: [(0, 0); PENDING_MAX],
            start: 0,
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len >= PENDING_MAX
    }

    fn push(&mut self, entry: (u32, u32)) -> bool {
        if self.is_full() {
            return false;
        }
        let at = self
            .start
            .saturating_add(self.len)
            .checked_rem(PENDING_MAX)
            .unwrap_or(0);
        if let Some(slot) = self.entries.get_mut(at) {
            *slot = entry;
            self.len = self.len.saturating_add(1);
            true
        } else {
            false
        }
    }

    fn pop(&mut self) -> Option<(u32, u32)> {
        if self.len == 0 {
            return None;
        }
        let entry = self.entries.get(self.start).copied();
        self.start = self
            .start
            .saturating_add(1)
            .checked_rem(PENDING_MAX)
            .unwrap_or(0);
        self.len = self.len.saturating_sub(1);
        entry
    }

    fn clear(&mut self) {
        self.start = 0;
        self.len = 0;
    }
}

/// A packet to write into an rx chain: its header, and how many payload bytes follow from
/// the transmit buffer of slot `data_from`.
struct Outgoing {
    header: Header,
    data_from: Option<usize>,
}

/// The virtio-vsock device model over services `S`.
pub struct Vsock<S: VsockServices> {
    services: S,
    rxq: Option<SplitQueue>,
    txq: Option<SplitQueue>,
    /// The connection slots.
    slots: [Slot<S::Session>; MAX_CONNECTIONS],
    /// Their buffers, from the first connection to the next reset.
    buffers: Option<Buffers>,
    pending: Pending,
    /// The slot the next rx buffer is offered to first (round robin).
    next_slot: usize,
    /// tx waits: the pending queue was full.
    tx_stalled: bool,
    /// Where payload passes between driver memory and a receive buffer.
    scratch: [u8; CHUNK],
    /// Queues that got used buffers during the current notify (bit per queue).
    used: u64,
    /// Queues other than the notified one that got used buffers.
    used_elsewhere: u64,
    stats: VsockStats,
}

impl<S: VsockServices> Vsock<S> {
    /// A reset device serving `services`.
    pub fn new(services: S) -> Self {
        Self {
            services,
            rxq: None,
            txq: None,
            // Built in place: `[const { Slot::new() }; N]` keeps a 232-byte constant slot
            // (all zero but the `None` niche) in the image to copy from.
            slots: core::array::from_fn(|_| Slot::new()),
            buffers: None,
            pending: Pending::new(),
            next_slot: 0,
            tx_stalled: false,
            scratch: [0; CHUNK],
            used: 0,
            used_elsewhere: 0,
            stats: VsockStats::default(),
        }
    }

    /// The services.
    pub fn services(&self) -> &S {
        &self.services
    }

    /// What the device counted.
    pub fn stats(&self) -> VsockStats {
        self.stats
    }

    /// Open connections: `(driver's port, partition's port)` of each.
    pub fn connections(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_ref().map(|c| (c.guest_port, c.local_port)))
    }

    /// RSTs waiting for rx buffers.
    pub fn pending_resets(&self) -> usize {
        self.pending.len
    }

    /// Bytes of the connection `(guest_port, local_port)` waiting: (received and not taken by
    /// the service, the service's output not yet sent).
    pub fn buffered(&self, guest_port: u32, local_port: u32) -> Option<(usize, usize)> {
        self.find(guest_port, local_port)
            .and_then(|i| self.slots.get(i))
            .map(|s| (s.rx.len(), s.tx.len()))
    }

    fn find(&self, guest_port: u32, local_port: u32) -> Option<usize> {
        self.slots.iter().position(|s| {
            s.conn
                .as_ref()
                .is_some_and(|c| c.guest_port == guest_port && c.local_port == local_port)
        })
    }

    /// Runs slot `i`'s session over what it received (see [`Slot::pump`]).
    fn pump(&mut self, i: usize) {
        let (rx_buf, tx_buf) = storage(&mut self.buffers, i);
        if let Some(s) = self.slots.get_mut(i) {
            s.pump(rx_buf, tx_buf);
        }
    }

    /// Closes slot `slot` (if any) and queues an RST to the driver's `guest_port` from
    /// `local_port`.
    fn rst(&mut self, slot: Option<usize>, guest_port: u32, local_port: u32) {
        if let Some(s) = slot.and_then(|i| self.slots.get_mut(i)) {
            s.close();
        }
        if !self.pending.push((guest_port, local_port)) {
            self.stats.resets_lost = self.stats.resets_lost.saturating_add(1);
        }
    }

    /// The packet `hdr` broke the protocol: RST, and its connection closed.
    fn malformed(&mut self, slot: Option<usize>, hdr: &Header) {
        log::debug!(
            "vsock: {:?} from port {} to {} (type {}, len {}) refused with RST",
            hdr.op,
            hdr.src_port,
            hdr.dst_port,
            hdr.socket_type,
            hdr.len
        );
        self.stats.malformed = self.stats.malformed.saturating_add(1);
        self.rst(slot, hdr.src_port, hdr.dst_port);
    }

    /// Serves one tx packet; returns the payload bytes it moved.
    fn receive(&mut self, mem: &dyn SharedMem, chain: &DescChain) -> u64 {
        let dropped = |stats: &mut VsockStats| stats.dropped = stats.dropped.saturating_add(1);
        if !chain.writable.is_empty() || chain.readable_len() < HDR_LEN_U64 {
            dropped(&mut self.stats);
            return 0;
        }
        let mut raw = [0u8; HDR_LEN];
        if gather(mem, &chain.readable, 0, &mut raw).is_err() {
            dropped(&mut self.stats);
            return 0;
        }
        let hdr = Header::decode(&raw);
        if hdr.src_cid != GUEST_CID || hdr.dst_cid != HOST_CID {
            log::debug!(
                "vsock: packet from CID {} to CID {} dropped",
                hdr.src_cid,
                hdr.dst_cid
            );
            dropped(&mut self.stats);
            return 0;
        }
        let slot = self.find(hdr.src_port, hdr.dst_port);
        if let Some(conn) = slot
            .and_then(|i| self.slots.get_mut(i))
            .and_then(|s| s.conn.as_mut())
        {
            conn.update_peer_credit(&hdr);
        }
        if hdr.op == Op::Rst {
            if let Some(s) = slot.and_then(|i| self.slots.get_mut(i)) {
                s.close();
            }
            return 0;
        }
        let payload_room = chain.readable_len().saturating_sub(HDR_LEN_U64);
        if hdr.socket_type != TYPE_STREAM
            || u64::from(hdr.len) > payload_room
            || (hdr.op != Op::Rw && hdr.len != 0)
        {
            self.malformed(slot, &hdr);
            return 0;
        }
        let Some(i) = slot else {
            if hdr.op == Op::Request {
                self.accept(&hdr);
            } else {
                self.malformed(None, &hdr);
            }
            return 0;
        };
        match hdr.op {
            Op::Rw => self.receive_data(mem, chain, i, &hdr),
            Op::CreditUpdate => 0,
            Op::CreditRequest => {
                if let Some(conn) = self.slots.get_mut(i).and_then(|s| s.conn.as_mut()) {
                    conn.credit_reply_due = true;
                }
                0
            }
            Op::Shutdown => {
                let both = SHUTDOWN_RCV | SHUTDOWN_SEND;
                let shut = self
                    .slots
                    .get_mut(i)
                    .and_then(|s| s.conn.as_mut())
                    .map_or(0, |conn| {
                        conn.peer_shutdown |= hdr.flags & both;
                        conn.peer_shutdown
                    });
                if shut == both {
                    self.rst(Some(i), hdr.src_port, hdr.dst_port);
                } else {
                    self.pump(i);
                }
                0
            }
            // A second REQUEST, a RESPONSE (the device never connects out), INVALID, unknown.
            _ => {
                self.malformed(Some(i), &hdr);
                0
            }
        }
    }

    /// A REQUEST for a connection that does not exist yet.
    fn accept(&mut self, hdr: &Header) {
        let Some(session) = self.services.accept(hdr.dst_port) else {
            log::debug!(
                "vsock: REQUEST from port {} to port {}: nothing listens there",
                hdr.src_port,
                hdr.dst_port
            );
            self.stats.refused = self.stats.refused.saturating_add(1);
            self.rst(None, hdr.src_port, hdr.dst_port);
            return;
        };
        if self.buffers.is_none() {
            self.buffers = Buffers::try_new();
            if self.buffers.is_none() {
                log::warn!(
                    "vsock: no heap for the {BUFFER_BYTES} bytes of connection buffers: \
                     REQUEST to port {} refused",
                    hdr.dst_port
                );
                self.stats.refused = self.stats.refused.saturating_add(1);
                self.rst(None, hdr.src_port, hdr.dst_port);
                return;
            }
        }
        let free = self
            .slots
            .iter()
            .position(|s| s.conn.is_none())
            .or_else(|| {
                // Every slot taken: one that waits for the driver's RST after our SHUTDOWN is
                // given up (with an RST of ours), as the spec's timeout would end it.
                let (i, guest_port, local_port) =
                    self.slots.iter().enumerate().find_map(|(i, s)| {
                        let c = s.conn.as_ref().filter(|c| c.closing)?;
                        Some((i, c.guest_port, c.local_port))
                    })?;
                self.rst(Some(i), guest_port, local_port);
                Some(i)
            });
        let Some(i) = free else {
            log::debug!(
                "vsock: REQUEST from port {} to port {}: every connection slot taken",
                hdr.src_port,
                hdr.dst_port
            );
            self.stats.refused = self.stats.refused.saturating_add(1);
            self.rst(None, hdr.src_port, hdr.dst_port);
            return;
        };
        let (_, tx_buf) = storage(&mut self.buffers, i);
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        s.rx.clear();
        s.tx.clear();
        let conn = s.conn.insert(Conn {
            guest_port: hdr.src_port,
            local_port: hdr.dst_port,
            session,
            fwd_cnt: 0,
            fwd_cnt_sent: 0,
            tx_cnt: 0,
            peer_buf_alloc: hdr.buf_alloc,
            peer_fwd_cnt: hdr.fwd_cnt,
            peer_shutdown: 0,
            response_due: true,
            credit_update_due: false,
            credit_reply_due: false,
            credit_requested: false,
            shutdown_due: false,
            closing: false,
        });
        conn.session.on_connect(&mut RingBuf {
            ring: &mut s.tx,
            storage: tx_buf,
        });
        self.stats.accepted = self.stats.accepted.saturating_add(1);
    }

    /// An RW packet for slot `i`: its payload into the receive buffer, then to the session.
    fn receive_data(
        &mut self,
        mem: &dyn SharedMem,
        chain: &DescChain,
        i: usize,
        hdr: &Header,
    ) -> u64 {
        let len = usize::try_from(hdr.len).unwrap_or(usize::MAX);
        let Some((shut, room)) = self.slots.get(i).and_then(|s| {
            let conn = s.conn.as_ref()?;
            let room = CONN_RX_BYTES.saturating_sub(s.rx.len());
            Some((
                conn.peer_shutdown & SHUTDOWN_SEND != 0 || conn.closing,
                room,
            ))
        }) else {
            return 0;
        };
        if shut {
            self.malformed(Some(i), hdr);
            return 0;
        }
        if len > room {
            log::debug!(
                "vsock: {len} bytes from port {} past the {room} of credit: RST",
                hdr.src_port
            );
            self.stats.credit_violations = self.stats.credit_violations.saturating_add(1);
            self.rst(Some(i), hdr.src_port, hdr.dst_port);
            return 0;
        }
        let Self {
            slots,
            scratch,
            buffers,
            ..
        } = self;
        let Some(s) = slots.get_mut(i) else {
            return 0;
        };
        let (rx_buf, _) = storage(buffers, i);
        let mut done = 0usize;
        let mut unreadable = false;
        while done < len {
            let want = len.saturating_sub(done).min(CHUNK);
            let Some(chunk) = scratch.get_mut(..want) else {
                break;
            };
            let at = HDR_LEN_U64.saturating_add(u64::try_from(done).unwrap_or(u64::MAX));
            if gather(mem, &chain.readable, at, chunk).is_err() {
                unreadable = true;
                break;
            }
            s.rx.push(rx_buf, chunk);
            done = done.saturating_add(want);
        }
        if unreadable {
            // Half a payload would corrupt the stream: the connection ends.
            log::debug!("vsock: payload from port {} unreadable: RST", hdr.src_port);
            self.rst(Some(i), hdr.src_port, hdr.dst_port);
        } else {
            self.pump(i);
        }
        u64::try_from(done).unwrap_or(u64::MAX)
    }

    /// Takes tx packets while the pending queue has room for an answer, at most `size`
    /// chains and none once `budget` is spent. Returns whether it took any.
    fn serve_tx(
        &mut self,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
    ) -> Result<bool, DeviceError> {
        let Some(mut queue) = self.txq.take() else {
            return Ok(false);
        };
        let result = self.serve_tx_from(&mut queue, mem, budget);
        self.txq = Some(queue);
        let took = result?;
        if took {
            self.used |= 1 << TXQ;
        }
        Ok(took)
    }

    fn serve_tx_from(
        &mut self,
        queue: &mut SplitQueue,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
    ) -> Result<bool, DeviceError> {
        let mut took = false;
        self.tx_stalled = false;
        for _ in 0..queue.size() {
            if budget.is_spent() {
                break;
            }
            // One packet causes at most one RST that has no connection to wait in.
            if self.pending.is_full() {
                self.tx_stalled = true;
                break;
            }
            let Some(chain) = queue.pop(mem)? else {
                break;
            };
            let work = self.receive(&*mem, &chain);
            queue.push_used(mem, chain.head, 0)?;
            budget.spend_chain(work);
            took = true;
        }
        Ok(took)
    }

    /// Whether any packet waits for an rx buffer.
    fn has_output(&self) -> bool {
        self.pending.len > 0 || self.slots.iter().any(Slot::has_due)
    }

    /// The next packet for an rx chain with `room` payload bytes: a pending RST first, then
    /// the connections in turn.
    fn next_packet(&mut self, room: usize) -> Option<Outgoing> {
        if let Some((guest_port, local_port)) = self.pending.pop() {
            self.stats.resets_sent = self.stats.resets_sent.saturating_add(1);
            return Some(Outgoing {
                header: Header {
                    op: Op::Rst,
                    ..reply_header(guest_port, local_port)
                },
                data_from: None,
            });
        }
        let n = self.slots.len();
        for k in 0..n {
            let i = self.next_slot.saturating_add(k).checked_rem(n).unwrap_or(0);
            let Some(s) = self.slots.get_mut(i) else {
                continue;
            };
            let Some(conn) = s.conn.as_mut() else {
                continue;
            };
            let credit = usize::try_from(conn.peer_credit()).unwrap_or(usize::MAX);
            let data = s.tx.len().min(credit).min(room);
            let mut header = reply_header(conn.guest_port, conn.local_port);
            let mut data_from = None;
            if conn.response_due {
                conn.response_due = false;
                header.op = Op::Response;
            } else if data > 0 {
                header.op = Op::Rw;
                header.len = u32::try_from(data).unwrap_or(0);
                conn.tx_cnt = conn.tx_cnt.wrapping_add(header.len);
                data_from = Some(i);
            } else if conn.credit_update_due || conn.credit_reply_due {
                conn.credit_reply_due = false;
                header.op = Op::CreditUpdate;
            } else if !s.tx.is_empty() && credit == 0 && !conn.credit_requested {
                conn.credit_requested = true;
                header.op = Op::CreditRequest;
            } else if conn.shutdown_due {
                conn.shutdown_due = false;
                conn.closing = true;
                header.op = Op::Shutdown;
                header.flags = SHUTDOWN_RCV | SHUTDOWN_SEND;
            } else {
                continue;
            }
            // Every packet tells the driver our credit.
            conn.credit_update_due = false;
            conn.fwd_cnt_sent = conn.fwd_cnt;
            header.fwd_cnt = conn.fwd_cnt;
            self.next_slot = i.saturating_add(1).checked_rem(n).unwrap_or(0);
            return Some(Outgoing { header, data_from });
        }
        None
    }

    /// Fills rx buffers with waiting packets, one each, at most `size` chains and none once
    /// `budget` is spent. (Not `SplitQueue::serve_chains`: it must stop before taking a buffer
    /// once nothing waits.)
    fn fill_rx(&mut self, mem: &mut dyn SharedMem, budget: &mut Budget) -> Result<(), DeviceError> {
        let Some(mut queue) = self.rxq.take() else {
            return Ok(());
        };
        let result = self.fill_rx_from(&mut queue, mem, budget);
        self.rxq = Some(queue);
        if result? {
            self.used |= 1 << RXQ;
        }
        Ok(())
    }

    fn fill_rx_from(
        &mut self,
        queue: &mut SplitQueue,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
    ) -> Result<bool, DeviceError> {
        let mut used = false;
        for _ in 0..queue.size() {
            if budget.is_spent() || !self.has_output() {
                break;
            }
            let Some(chain) = queue.pop(mem)? else {
                break;
            };
            let writable = chain.writable_len();
            let packet = if chain.readable.is_empty() && writable >= HDR_LEN_U64 {
                let room =
                    usize::try_from(writable.saturating_sub(HDR_LEN_U64)).unwrap_or(usize::MAX);
                self.next_packet(room)
            } else {
                self.stats.bad_rx_buffers = self.stats.bad_rx_buffers.saturating_add(1);
                None
            };
            let written = match packet {
                Some(packet) => self.deliver(mem, &chain, &packet)?,
                None => 0,
            };
            queue.push_used(mem, chain.head, written)?;
            budget.spend_chain(u64::from(written));
            used = true;
        }
        Ok(used)
    }

    /// Writes `packet` into `chain`'s writable buffers; returns the bytes written.
    fn deliver(
        &mut self,
        mem: &mut dyn SharedMem,
        chain: &DescChain,
        packet: &Outgoing,
    ) -> Result<u32, DeviceError> {
        scatter(mem, &chain.writable, 0, &packet.header.encode())?;
        let len = usize::try_from(packet.header.len).unwrap_or(0);
        if let Some(i) = packet.data_from {
            let (_, tx_buf) = storage(&mut self.buffers, i);
            let Some(s) = self.slots.get_mut(i) else {
                return Err(DeviceError::Backend);
            };
            let mut done = 0usize;
            while done < len {
                let front = s.tx.front(tx_buf);
                let piece = front.get(..len.saturating_sub(done).min(front.len()));
                let Some(piece) = piece.filter(|p| !p.is_empty()) else {
                    break;
                };
                let at = HDR_LEN_U64.saturating_add(u64::try_from(done).unwrap_or(u64::MAX));
                scatter(mem, &chain.writable, at, piece)?;
                let n = piece.len();
                s.tx.consume(CONN_TX_BYTES, n);
                done = done.saturating_add(n);
            }
            // Room in the transmit buffer: the session may take more input.
            self.pump(i);
        }
        u32::try_from(HDR_LEN.saturating_add(len)).map_err(|_| DeviceError::Backend)
    }

    /// Serves both directions until neither moves: what waits goes to rx buffers, tx
    /// packets are taken (while an answer has somewhere to wait), their answers delivered.
    /// Each round takes at least one tx chain, so this ends with the chains the driver made
    /// available (or the budget).
    fn run(&mut self, mem: &mut dyn SharedMem, budget: &mut Budget) -> Result<(), DeviceError> {
        loop {
            self.fill_rx(mem, budget)?;
            if !self.serve_tx(mem, budget)? {
                return Ok(());
            }
        }
    }

    /// Drops every connection and waiting answer (a reset, or a lost rx or tx queue).
    fn drop_connections(&mut self) {
        for s in self.slots.iter_mut() {
            s.close();
        }
        self.pending.clear();
        self.next_slot = 0;
        self.tx_stalled = false;
    }

    /// Whether the connection buffers are allocated (from the first connection to reset).
    pub fn holds_buffers(&self) -> bool {
        self.buffers.is_some()
    }

    /// Whether tx waits for rx buffers (its answers' queue is full).
    pub fn tx_stalled(&self) -> bool {
        self.tx_stalled
    }
}

/// The header of a packet from the partition's `local_port` to the driver's `guest_port`,
/// with the device's `buf_alloc` (op, len, flags and fwd_cnt for the caller to set).
fn reply_header(guest_port: u32, local_port: u32) -> Header {
    Header {
        src_cid: HOST_CID,
        dst_cid: GUEST_CID,
        src_port: local_port,
        dst_port: guest_port,
        socket_type: TYPE_STREAM,
        buf_alloc: BUF_ALLOC,
        ..Header::default()
    }
}

/// Reads `out.len()` bytes at byte `offset` of the buffers `bufs` taken as one stream.
fn gather(
    mem: &dyn SharedMem,
    bufs: &[(u64, u32)],
    offset: u64,
    out: &mut [u8],
) -> Result<(), DeviceError> {
    walk(bufs, offset, out.len(), |addr, at, n| {
        let piece = out
            .get_mut(at..at.saturating_add(n))
            .ok_or(DeviceError::Backend)?;
        mem.read(addr, piece).map_err(DeviceError::from)
    })
}

/// Writes `data` at byte `offset` of the buffers `bufs` taken as one stream.
fn scatter(
    mem: &mut dyn SharedMem,
    bufs: &[(u64, u32)],
    offset: u64,
    data: &[u8],
) -> Result<(), DeviceError> {
    walk(bufs, offset, data.len(), |addr, at, n| {
        let piece = data
            .get(at..at.saturating_add(n))
            .ok_or(DeviceError::Backend)?;
        mem.write(addr, piece).map_err(DeviceError::from)
    })
}

/// Calls `f(bus address, position in the caller's bytes, length)` for each piece of the `len`
/// bytes at byte `offset` of `bufs`; an error if they do not hold that many.
fn walk(
    bufs: &[(u64, u32)],
    mut offset: u64,
    len: usize,
    mut f: impl FnMut(u64, usize, usize) -> Result<(), DeviceError>,
) -> Result<(), DeviceError> {
    let mut done = 0usize;
    for &(addr, buf_len) in bufs {
        if done >= len {
            break;
        }
        let buf_len = u64::from(buf_len);
        if offset >= buf_len {
            offset = offset.saturating_sub(buf_len);
            continue;
        }
        let here = buf_len.saturating_sub(offset);
        let n = usize::try_from(here)
            .unwrap_or(usize::MAX)
            .min(len.saturating_sub(done));
        // `addr + buf_len` does not wrap (the queue checked it) and `offset < buf_len`.
        f(addr.saturating_add(offset), done, n)?;
        done = done.saturating_add(n);
        offset = 0;
    }
    if done < len {
        return Err(DeviceError::Queue);
    }
    Ok(())
}

impl<S: VsockServices> VirtioDevice for Vsock<S> {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM | VIRTIO_VSOCK_F_STREAM
    }

    fn config_size(&self) -> u32 {
        8
    }

    fn read_config(&self, offset: u32, buf: &mut [u8]) {
        let config = GUEST_CID.to_le_bytes();
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (k, byte) in buf.iter_mut().enumerate() {
            *byte = start
                .checked_add(k)
                .and_then(|i| config.get(i))
                .copied()
                .unwrap_or(0);
        }
    }

    fn num_queues(&self) -> u32 {
        3
    }

    fn queue_max_size(&self, index: u32) -> u16 {
        if index <= EVENTQ { QUEUE_MAX_SIZE } else { 0 }
    }

    fn activate(
        &mut self,
        _features: u64,
        queues: &[Option<QueueConfig>],
    ) -> Result<(), DeviceError> {
        let config = |i: usize| {
            queues
                .get(i)
                .copied()
                .flatten()
                .map(|c| SplitQueue::with_max(c, QUEUE_MAX_SIZE))
        };
        self.rxq = config(0).transpose()?;
        self.txq = config(1).transpose()?;
        // The event queue is checked, then left alone: its buffers are never used.
        config(2).transpose()?;
        self.drop_connections();
        Ok(())
    }

    fn activate_queue(&mut self, index: u32, config: QueueConfig) -> Result<(), DeviceError> {
        let queue = Some(SplitQueue::with_max(config, QUEUE_MAX_SIZE)?);
        match index {
            RXQ => self.rxq = queue,
            TXQ => self.txq = queue,
            EVENTQ => {}
            _ => return Err(DeviceError::Queue),
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.rxq = None;
        self.txq = None;
        self.drop_connections();
        self.buffers = None;
        self.used = 0;
        self.used_elsewhere = 0;
    }

    fn reset_queue(&mut self, index: u32) {
        match index {
            // Packets in a lost queue are gone: no stream survives that.
            RXQ => {
                self.rxq = None;
                self.drop_connections();
            }
            TXQ => {
                self.txq = None;
                self.drop_connections();
            }
            _ => {}
        }
    }

    fn notify(
        &mut self,
        index: u32,
        mem: &mut dyn SharedMem,
        budget: &mut Budget,
    ) -> Result<bool, DeviceError> {
        self.used = 0;
        // Every notify serves both directions (the event queue's buffers just wait).
        let result = self.run(mem, budget);
        let used = core::mem::take(&mut self.used);
        let bit = 1u64.checked_shl(index).unwrap_or(0);
        self.used_elsewhere = used & !bit;
        result?;
        Ok(used & bit != 0)
    }

    fn take_used_elsewhere(&mut self) -> u64 {
        core::mem::take(&mut self.used_elsewhere)
    }
}

#[cfg(test)]
mod tests;
