//! The 8-byte header every virtio-msg message starts with.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, little_endian::U16};

use crate::error::DecodeError;

/// `type` bit 0: the message is a response.
pub const TYPE_RESPONSE: u8 = 1 << 0;
/// `type` bit 1: the message is a bus message (else a transport message).
pub const TYPE_BUS: u8 = 1 << 1;
/// `type` bits 2..7: reserved, sent as 0 and ignored on receive.
pub const TYPE_RESERVED_MASK: u8 = !(TYPE_RESPONSE | TYPE_BUS);
/// Size of the header in bytes.
pub const HEADER_SIZE: usize = 8;

/// Type byte of transport requests and of transport events (both directions).
pub(crate) const TYPE_TRANSPORT_REQUEST: u8 = 0;
/// Type byte of transport responses.
pub(crate) const TYPE_TRANSPORT_RESPONSE: u8 = TYPE_RESPONSE;
/// Type byte of bus requests and bus events.
pub(crate) const TYPE_BUS_REQUEST: u8 = TYPE_BUS;
/// Type byte of bus responses.
pub(crate) const TYPE_BUS_RESPONSE: u8 = TYPE_BUS | TYPE_RESPONSE;

/// Common header, wire form. Offset 0, length 8.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct RawHeader {
    /// Offset 0, length 1: type bits.
    pub(crate) msg_type: u8,
    /// Offset 1, length 1: message id.
    pub(crate) msg_id: u8,
    /// Offset 2, length 2: device number (0 for bus messages).
    pub(crate) dev_num: U16,
    /// Offset 4, length 2: correlation token.
    pub(crate) token: U16,
    /// Offset 6, length 2: total size, header included.
    pub(crate) msg_size: U16,
}
const _: () = assert!(core::mem::size_of::<RawHeader>() == HEADER_SIZE);

/// A decoded header. `msg_type` keeps only the defined bits (reserved bits are ignored on
/// receive, as the spec requires).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Type bits ([`TYPE_RESPONSE`], [`TYPE_BUS`]).
    pub msg_type: u8,
    /// Message id.
    pub msg_id: u8,
    /// Device number.
    pub dev_num: u16,
    /// Correlation token.
    pub token: u16,
    /// Total size in bytes, header included.
    pub msg_size: u16,
}

impl Header {
    /// Parses the header of `frame` and checks that `msg_size` lies within
    /// `HEADER_SIZE..=frame.len()` (anything past `msg_size` is bus padding).
    pub fn parse(frame: &[u8]) -> Result<Self, DecodeError> {
        let (raw, _) = RawHeader::read_from_prefix(frame).map_err(|_| DecodeError::Truncated)?;
        let msg_size = raw.msg_size.get();
        let size = usize::from(msg_size);
        if size < HEADER_SIZE || size > frame.len() {
            return Err(DecodeError::BadSize {
                got: size,
                need: HEADER_SIZE,
            });
        }
        Ok(Self {
            msg_type: raw.msg_type & !TYPE_RESERVED_MASK,
            msg_id: raw.msg_id,
            dev_num: raw.dev_num.get(),
            token: raw.token.get(),
            msg_size,
        })
    }

    /// Writes the header into the first 8 bytes of `out` (reserved type bits cleared).
    /// Returns `None` if `out` is shorter than 8 bytes.
    pub fn write(&self, out: &mut [u8]) -> Option<()> {
        let raw = RawHeader {
            msg_type: self.msg_type & !TYPE_RESERVED_MASK,
            msg_id: self.msg_id,
            dev_num: self.dev_num.into(),
            token: self.token.into(),
            msg_size: self.msg_size.into(),
        };
        raw.write_to_prefix(out).ok()
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        self.msg_type & TYPE_RESPONSE != 0
    }

    /// Whether this is a bus message.
    pub fn is_bus(&self) -> bool {
        self.msg_type & TYPE_BUS != 0
    }

    /// The payload of `frame` described by this header (bytes 8..msg_size).
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame
            .get(HEADER_SIZE..usize::from(self.msg_size))
            .unwrap_or_default()
    }

    /// The header a response to this request carries: same id, dev_num and token, response bit
    /// set, `msg_size` as given.
    pub fn response(&self, msg_size: u16) -> Self {
        Self {
            msg_type: self.msg_type | TYPE_RESPONSE,
            msg_size,
            ..*self
        }
    }
}
