//! Raw exchanges for the checks: a frame sent as it is in DIRECT_REQ2, the whole answer
//! (x4..x17) kept, and the expectations the checks share.

use alloc::{format, string::String, vec, vec::Vec};

use ffa::{
    Conduit, VIRTIO_MSG_DEVICE_UUID,
    bus::{Dialect, MAX_MSG_SIZE, PAYLOAD_REGS, frame_to_regs, msg, regs_to_frame},
    memory::PAGE_SIZE,
};
use virtio_msg::{
    Header, Layout,
    header::HEADER_SIZE,
    transport::{TransportRequest, TransportResponse},
};

use super::check::{Stop, ensure};
use crate::{
    channel::G2_MSG_SIZE,
    connection::Connection,
    platform::Platform,
    session::{BusSession, SharedArea},
};

/// Times an FFA_ERROR(BUSY) from the SPMC is retried.
const FFA_BUSY_RETRIES: usize = 1000;

/// Every byte of a DIRECT_RESP2 payload (x4..x17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Answer {
    pub(super) bytes: [u8; PAYLOAD_REGS * 8],
}

impl Answer {
    /// Whether it is the all-zero busy sentinel.
    pub(super) fn is_busy(&self) -> bool {
        self.bytes.iter().all(|b| *b == 0)
    }

    /// The header (whose `msg_size` must lie within the bus maximum).
    pub(super) fn header(&self) -> Result<Header, Stop> {
        let limit = self.bytes.get(..MAX_MSG_SIZE).unwrap_or_default();
        Header::parse(limit).map_err(|e| {
            Stop::Fail(format!(
                "answer header does not parse ({e}): {}",
                hex(self.bytes.get(..16).unwrap_or_default())
            ))
        })
    }

    /// The type byte as sent (reserved bits included).
    pub(super) fn raw_type(&self) -> u8 {
        self.bytes.first().copied().unwrap_or(0)
    }

    /// `msg_size` as sent.
    pub(super) fn msg_size(&self) -> usize {
        let lo = self.bytes.get(6).copied().unwrap_or(0);
        let hi = self.bytes.get(7).copied().unwrap_or(0);
        usize::from(u16::from_le_bytes([lo, hi]))
    }

    /// The frame: bytes 0..msg_size (at most the whole payload).
    pub(super) fn frame(&self) -> &[u8] {
        let n = self.msg_size().min(self.bytes.len());
        self.bytes.get(..n).unwrap_or_default()
    }

    /// The payload: bytes 8..msg_size.
    pub(super) fn payload(&self) -> &[u8] {
        self.frame().get(HEADER_SIZE..).unwrap_or_default()
    }

    /// Whether every byte after `msg_size` (bus padding, and x17) is zero.
    pub(super) fn padding_is_zero(&self) -> bool {
        let n = self.msg_size().min(self.bytes.len());
        self.bytes
            .get(n..)
            .unwrap_or_default()
            .iter()
            .all(|b| *b == 0)
    }

    /// Whether bytes 104..112 (x17) are zero.
    pub(super) fn x17_is_zero(&self) -> bool {
        self.bytes
            .get(MAX_MSG_SIZE..)
            .unwrap_or_default()
            .iter()
            .all(|b| *b == 0)
    }

    /// The first bytes, in hex, for failure reasons.
    pub(super) fn describe(&self) -> String {
        hex(self.frame().get(..24).unwrap_or(self.frame()))
    }

    /// Decodes the answer as the transport response to `request_id` in `layout`.
    pub(super) fn transport(
        &self,
        layout: Layout,
        request_id: u8,
    ) -> Result<(Header, TransportResponse<'_>), Stop> {
        TransportResponse::decode(self.frame(), layout, request_id).map_err(|e| {
            Stop::Fail(format!(
                "answer to {request_id:#04x} does not decode ({e}): {}",
                self.describe()
            ))
        })
    }
}

/// Bytes in hex.
pub(super) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Sends `frame` (at most [`MAX_MSG_SIZE`] bytes, the rest zero) in one DIRECT_REQ2 and returns
/// the whole answer. FFA_ERROR(BUSY) from the SPMC is retried; the busy sentinel is not.
pub(super) fn send<C: Conduit>(session: &mut BusSession<C>, frame: &[u8]) -> Result<Answer, Stop> {
    send_regs(session, frame_to_regs(frame))
}

/// Sends payload registers as they are.
pub(super) fn send_regs<C: Conduit>(
    session: &mut BusSession<C>,
    regs: [u64; PAYLOAD_REGS],
) -> Result<Answer, Stop> {
    let (own, sp) = (session.own_id(), session.sp_id());
    for _ in 0..FFA_BUSY_RETRIES {
        match session
            .ffa()
            .direct_req2(own, sp, VIRTIO_MSG_DEVICE_UUID, regs)
        {
            Err(ffa::Error::Ffa(ffa::arm_ffa::FfaError::Busy)) => core::hint::spin_loop(),
            Ok(r) => {
                return Ok(Answer {
                    bytes: regs_to_frame(&r),
                });
            }
            Err(e) => return Err(Stop::Fail(format!("DIRECT_REQ2 failed: {e}"))),
        }
    }
    Err(Stop::Fail(String::from("SPMC stayed busy")))
}

/// A bus request frame.
pub(super) fn bus_frame(msg_id: u8, token: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_SIZE + payload.len()];
    let n = msg::write_bus_frame(&mut out, false, msg_id, 0, token, payload).unwrap_or(0);
    out.truncate(n);
    out
}

/// A frame with a hand-made header: `msg_type`, `msg_id`, `dev_num`, `token`, `msg_size`,
/// then `payload` (whatever `msg_size` says).
pub(super) fn raw_frame(
    msg_type: u8,
    msg_id: u8,
    dev_num: u16,
    token: u16,
    msg_size: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_SIZE + payload.len());
    out.push(msg_type);
    out.push(msg_id);
    out.extend_from_slice(&dev_num.to_le_bytes());
    out.extend_from_slice(&token.to_le_bytes());
    out.extend_from_slice(&msg_size.to_le_bytes());
    out.extend_from_slice(payload);
    out.truncate(MAX_MSG_SIZE);
    out
}

/// Encodes a transport request for `dev` with `token` in `layout`.
pub(super) fn transport_frame(
    layout: Layout,
    dev: u16,
    token: u16,
    req: &TransportRequest<'_>,
) -> Result<Vec<u8>, Stop> {
    let mut out = vec![0u8; MAX_MSG_SIZE];
    let n = req.encode(layout, dev, token, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// Sends a transport request and returns the answer.
pub(super) fn transport<C: Conduit>(
    session: &mut BusSession<C>,
    dev: u16,
    token: u16,
    req: &TransportRequest<'_>,
) -> Result<Answer, Stop> {
    let layout = session.info().dialect.layout();
    let frame = transport_frame(layout, dev, token, req)?;
    send(session, &frame)
}

/// Checks that `answer` is the bus ERROR frame for a request `msg_id` on `dev_num` with
/// `token`: type 0x03, id 0x87, the request's dev_num and token, 10 bytes, original id.
pub(super) fn expect_error(
    answer: &Answer,
    msg_id: u8,
    dev_num: u16,
    token: u16,
) -> Result<(), Stop> {
    ensure!(
        !answer.is_busy(),
        "request {msg_id:#04x} answered with the busy sentinel, not ERROR"
    );
    let h = answer.header()?;
    ensure!(
        answer.raw_type() == 0x03 && h.msg_id == msg::ERROR,
        "request {msg_id:#04x}: expected ERROR (type 0x03, id 0x87), got {}",
        answer.describe()
    );
    ensure!(
        answer.msg_size() == 10,
        "ERROR frame is {} bytes, not 10",
        answer.msg_size()
    );
    ensure!(
        h.dev_num == dev_num && h.token == token,
        "ERROR for {msg_id:#04x} echoes dev_num {} token {:#x}, sent {dev_num} {token:#x}",
        h.dev_num,
        h.token
    );
    let original = answer
        .payload()
        .get(..2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .unwrap_or(0xFFFF);
    ensure!(
        original == u16::from(msg_id),
        "ERROR names message {original:#x}, sent {msg_id:#04x}"
    );
    ensure!(answer.padding_is_zero(), "ERROR frame padding not zero");
    Ok(())
}

/// Checks that `answer` is the 8-byte event acknowledgement with `token`.
pub(super) fn expect_ack(answer: &Answer, token: u16) -> Result<(), Stop> {
    let h = answer.header()?;
    ensure!(
        answer.raw_type() == 0x03
            && h.msg_id == msg::EVENT_ACK
            && h.dev_num == 0
            && h.token == token
            && answer.msg_size() == HEADER_SIZE,
        "EVENT_AVAIL (token {token:#x}) not answered with the 8-byte ack \
         (type 0x03, id 0, dev 0, same token): {}",
        answer.describe()
    );
    ensure!(answer.padding_is_zero(), "ack padding not zero");
    Ok(())
}

/// The largest message the dialect's driver works with (G2: its 48-byte VIRTIO_MSG_MIN_SIZE;
/// G3: the bus maximum).
pub(super) fn max_size(dialect: Dialect) -> usize {
    match dialect {
        Dialect::G2 => G2_MSG_SIZE,
        Dialect::G3 => MAX_MSG_SIZE,
    }
}

/// Allocates `pages` pages and shares them as a new area.
pub(super) fn share<C: Conduit, P: Platform>(
    conn: &mut Connection<C, P>,
    pages: u32,
) -> Result<SharedArea, Stop> {
    let (session, platform) = conn.parts();
    let pa = platform
        .alloc_pages(pages)
        .ok_or_else(|| Stop::Fail(String::from("out of driver memory")))?;
    session.share(pa, pages).map_err(|e| {
        platform.free_pages(pa, pages);
        Stop::Fail(format!("FFA_MEM_SHARE + AREA_SHARE: {e}"))
    })
}

/// Unshares `area` (AREA_UNSHARE + FFA_MEM_RECLAIM) and frees its pages.
pub(super) fn unshare<C: Conduit, P: Platform>(
    conn: &mut Connection<C, P>,
    area: &SharedArea,
) -> Result<(), Stop> {
    let (session, platform) = conn.parts();
    session.unshare(area).map_err(|e| {
        Stop::Fail(format!(
            "AREA_UNSHARE + FFA_MEM_RECLAIM of area {}: {e}",
            area.id
        ))
    })?;
    platform.free_pages(area.pa, area.pages);
    Ok(())
}

/// Pages of a ring of `size` descriptors.
pub(super) fn ring_pages(size: u16) -> Result<u32, Stop> {
    let total = crate::virtqueue::DriverQueue::layout(size)?.total;
    Ok(u32::try_from(total.div_ceil(PAGE_SIZE)).unwrap_or(u32::MAX))
}
