//! The codec errors: why a frame was refused ([`DecodeError`]) and why a value could not be
//! written as a frame ([`EncodeError`]). Shared by the header, the transport and bus codecs and the
//! driver client, so they live in this leaf module.

/// Why a frame was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is shorter than the 8-byte header.
    #[error("frame shorter than the header")]
    Truncated,
    /// `msg_size` disagrees with the frame or with what the message needs.
    #[error("bad msg_size {got} (need {need})")]
    BadSize {
        /// Size found.
        got: usize,
        /// Size needed (smallest size for variable messages).
        need: usize,
    },
    /// The type byte does not match what was expected (request vs response, transport vs bus).
    #[error("unexpected type byte {0:#04x}")]
    BadType(u8),
    /// The message id is not known (or not allowed in this direction).
    #[error("unknown message id {0:#04x}")]
    UnknownId(u8),
    /// A reserved field or bit is not zero.
    #[error("reserved field not zero")]
    Reserved,
    /// A field is out of its allowed range.
    #[error("field out of range")]
    Range,
}

/// Why a frame could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The buffer is too small or the message exceeds the maximum size.
    #[error("message does not fit: {need} bytes")]
    TooBig {
        /// Bytes the message needs.
        need: usize,
    },
    /// A value cannot be represented in this layout (e.g. a 64-bit SHM length in Dec-2025).
    #[error("value not representable in this layout")]
    Unrepresentable,
}
