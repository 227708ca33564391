//! Frames on the FF-A bus, both ways: the size limit, packing into DIRECT_REQ2/RESP2 payload
//! registers, an incoming frame parsed once ([`Frame`]), and the answers written back
//! ([`Reply`]; ERROR frames, bus responses, the empty transport response).

use virtio_msg::{
    Header,
    error::DecodeError,
    header::{HEADER_SIZE, TYPE_BUS, TYPE_RESPONSE},
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::msg;

/// Largest virtio-msg frame the FF-A bus carries (x4..x16 of DIRECT_REQ2/RESP2; x17 stays 0).
pub const MAX_MSG_SIZE: usize = 104;
/// [`MAX_MSG_SIZE`] as a `msg_size` value.
pub(crate) const MAX_MSG_SIZE_U16: u16 = 104;
const _: () = assert!(MAX_MSG_SIZE_U16 as usize == MAX_MSG_SIZE);
/// [`HEADER_SIZE`] as a `msg_size` value.
const HEADER_SIZE_U16: u16 = 8;
const _: () = assert!(HEADER_SIZE_U16 as usize == HEADER_SIZE);

/// Number of payload registers of DIRECT_REQ2/RESP2 (x4..x17).
pub const PAYLOAD_REGS: usize = 14;

/// Copies a frame out of DIRECT_REQ2 payload registers (little-endian, byte 0 = LSB of x4).
pub fn regs_to_frame(regs: &[u64; PAYLOAD_REGS]) -> [u8; PAYLOAD_REGS * 8] {
    let mut out = [0u8; PAYLOAD_REGS * 8];
    let (words, _) = out.as_chunks_mut::<8>();
    for (word, reg) in words.iter_mut().zip(regs) {
        *word = reg.to_le_bytes();
    }
    out
}

/// Packs a frame into DIRECT_RESP2 payload registers; bytes past `frame` (and past
/// [`MAX_MSG_SIZE`]) are zero.
pub fn frame_to_regs(frame: &[u8]) -> [u64; PAYLOAD_REGS] {
    let mut bytes = [0u8; PAYLOAD_REGS * 8];
    let len = frame.len().min(MAX_MSG_SIZE);
    if let Some(src) = frame.get(..len) {
        // Never refused: `len` is at most MAX_MSG_SIZE.
        let _ = src.write_to_prefix(&mut bytes);
    }
    let mut regs = [0u64; PAYLOAD_REGS];
    let (words, _) = bytes.as_chunks::<8>();
    for (reg, word) in regs.iter_mut().zip(words) {
        *reg = u64::from_le_bytes(*word);
    }
    regs
}

/// An incoming frame whose header was parsed once, on arrival: every handler (and the
/// virtio-msg decoders, through their `decode_payload` entry points) reads `header` and
/// `payload` and never parses the bytes again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame<'a> {
    /// The parsed header; `msg_size` lies within the frame.
    pub(crate) header: Header,
    /// Bytes 8..msg_size of the frame (the bus padding after `msg_size` is not included).
    pub(crate) payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Parses the header of `bytes` ([`Header::parse`]) and takes the payload it describes.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let header = Header::parse(bytes)?;
        Ok(Self {
            header,
            payload: header.payload(bytes),
        })
    }

    /// The payload as one `T`, which it must fill exactly (`msg_size` = 8 + size of `T`).
    pub(crate) fn exact<T: FromBytes + KnownLayout + Immutable>(&self) -> Option<T> {
        T::read_from_bytes(self.payload).ok()
    }
}

/// What to answer a DIRECT_REQ2 with.
///
/// The all-zero busy sentinel means exactly "busy, retry" and nothing else: it is only ever
/// the answer to a request that could be served later (and only to a G3 driver, which retries;
/// see [`super::Dialect`]). Every other failure is an ERROR frame or a result code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A frame of this many bytes was written to the output buffer.
    Frame(usize),
    /// The all-zero busy sentinel (G3 only: the driver retries).
    Busy,
}

/// An ERROR frame naming no request (msg_id 0, dev_num 0, token 0): the answer when a frame
/// could not be written (unreachable with a [`MAX_MSG_SIZE`] buffer, but never the busy
/// sentinel either way).
const FALLBACK_ERROR: [u8; 10] = [
    TYPE_BUS | TYPE_RESPONSE,
    msg::ERROR,
    0,
    0,
    0,
    0,
    10,
    0,
    0,
    0,
];
const _: () = assert!(FALLBACK_ERROR.len() <= MAX_MSG_SIZE);

/// A written frame of `written` bytes, or [`FALLBACK_ERROR`] if it did not fit.
fn frame_or_error(written: Option<usize>, out: &mut [u8; MAX_MSG_SIZE]) -> Reply {
    match written {
        Some(n) => Reply::Frame(n),
        None => {
            out.fill(0);
            // Always `Some`: FALLBACK_ERROR is shorter than the buffer (asserted above).
            if let Some(head) = out.first_chunk_mut() {
                *head = FALLBACK_ERROR;
            }
            Reply::Frame(FALLBACK_ERROR.len())
        }
    }
}

/// ERROR frame for `request`: echoes its dev_num and token, and carries its msg_id.
pub(crate) fn error(request: &Header, out: &mut [u8; MAX_MSG_SIZE]) -> Reply {
    let payload = msg::Word16 {
        value: u16::from(request.msg_id).into(),
    };
    let written = msg::write_bus_frame(
        out,
        true,
        msg::ERROR,
        request.dev_num,
        request.token,
        payload.as_bytes(),
    );
    frame_or_error(written, out)
}

/// ERROR frame for bytes that did not even parse as a header: echoes what can be read.
pub(crate) fn error_raw(bytes: &[u8], out: &mut [u8; MAX_MSG_SIZE]) -> Reply {
    let byte = |i: usize| bytes.get(i).copied().unwrap_or(0);
    let header = Header {
        msg_type: 0,
        msg_id: byte(1),
        dev_num: u16::from_le_bytes([byte(2), byte(3)]),
        token: u16::from_le_bytes([byte(4), byte(5)]),
        msg_size: 0,
    };
    error(&header, out)
}

/// The ERROR frame answering the request in `request` (what can be read of its header is
/// echoed), as DIRECT_RESP2 payload registers: the answer to a request refused before any bus
/// instance sees it (no room for another endpoint, a service the partition does not offer).
/// Both driver dialects read it as a failed exchange; it is never the busy sentinel.
pub fn refusal(request: &[u8]) -> [u64; PAYLOAD_REGS] {
    let mut out = [0u8; MAX_MSG_SIZE];
    let n = match error_raw(request, &mut out) {
        Reply::Frame(n) => n,
        Reply::Busy => FALLBACK_ERROR.len(),
    };
    frame_to_regs(out.get(..n).unwrap_or(&FALLBACK_ERROR))
}

/// The response to bus request `request` carrying `payload` (dev_num 0, msg_id and token
/// echoed); an ERROR frame if it does not fit.
pub(crate) fn bus_response(
    request: &Header,
    payload: &[u8],
    out: &mut [u8; MAX_MSG_SIZE],
) -> Reply {
    match msg::write_bus_frame(out, true, request.msg_id, 0, request.token, payload) {
        Some(n) => Reply::Frame(n),
        None => error(request, out),
    }
}

/// The bare acknowledgement frame of a bus-level exchange: type 0x03, `msg_id`, dev_num 0,
/// `token`, size 8.
pub(crate) fn bus_ack(msg_id: u8, token: u16, out: &mut [u8; MAX_MSG_SIZE]) -> Reply {
    let written = msg::write_bus_frame(out, true, msg_id, 0, token, &[]);
    frame_or_error(written, out)
}

/// A transport response to `request` with no payload (an 8-byte header).
pub(crate) fn empty_transport_response(request: &Header, out: &mut [u8; MAX_MSG_SIZE]) -> Reply {
    let h = Header {
        msg_type: (request.msg_type & !TYPE_BUS) | TYPE_RESPONSE,
        msg_size: HEADER_SIZE_U16,
        ..*request
    };
    let written = h.write(out).map(|()| HEADER_SIZE);
    frame_or_error(written, out)
}
