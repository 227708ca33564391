//! The frame-level pieces every codec shares: opening a frame (header, type byte, payload),
//! checking a payload against the raw struct it must hold, and writing a frame. The codecs sit
//! beside the types they encode, in [`crate::transport`] and [`crate::bus`]; their raw structs are
//! one payload layout each (offsets are payload offsets: the wire offset is 8 more), with
//! little-endian fields of alignment 1, so the structs have no padding.
//!
//! Decoding rules, in the order they are checked:
//! 1. the header parses and `msg_size` lies within the frame (bytes past `msg_size` are bus
//!    padding and ignored) — [`DecodeError::Truncated`], [`DecodeError::BadSize`];
//! 2. the type byte (reserved bits masked) is exactly the expected one — [`DecodeError::BadType`];
//! 3. bus messages carry `dev_num` 0 — [`DecodeError::Range`];
//! 4. the id is one this decoder accepts; for responses it must also equal the id of the request
//!    being answered — [`DecodeError::UnknownId`] (carrying the id found in the frame);
//! 5. `msg_size` is exactly the size of the message in the session's layout (variable messages:
//!    fixed part plus the declared length, with checked arithmetic) — [`DecodeError::BadSize`];
//! 6. reserved fields are zero — [`DecodeError::Reserved`]; enumerated fields and counts are in
//!    range — [`DecodeError::Range`].
//!
//! Encoding writes the header and exactly `msg_size` bytes, nothing past them (padding is the
//! bus's business). It refuses with [`EncodeError::Unrepresentable`] every value its decoder would
//! refuse, so what encodes also decodes to the same value; the one exception is the device UUID,
//! which the Dec-2025 GET_DEVICE_INFO cannot carry and which is dropped.

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, little_endian::U32};

use crate::{
    error::{DecodeError, EncodeError},
    header::{HEADER_SIZE, Header},
};

// ---------------------------------------------------------------------------------------------
// Decoding helpers
// ---------------------------------------------------------------------------------------------

/// Parses the header, checks the type byte and returns the header and the payload.
pub(crate) fn open(frame: &[u8], want_type: u8) -> Result<(Header, &[u8]), DecodeError> {
    let header = Header::parse(frame)?;
    if header.msg_type != want_type {
        return Err(DecodeError::BadType(header.msg_type));
    }
    Ok((header, header.payload(frame)))
}

/// The size error for `payload` when the payload should be `need_payload` bytes.
pub(crate) fn bad_size(payload: &[u8], need_payload: usize) -> DecodeError {
    DecodeError::BadSize {
        got: HEADER_SIZE.saturating_add(payload.len()),
        need: HEADER_SIZE.saturating_add(need_payload),
    }
}

/// The payload must be empty.
pub(crate) fn empty(payload: &[u8]) -> Result<(), DecodeError> {
    if payload.is_empty() {
        Ok(())
    } else {
        Err(bad_size(payload, 0))
    }
}

/// The payload must be exactly one `T`.
pub(crate) fn exact<T: FromBytes + KnownLayout + Immutable>(
    payload: &[u8],
) -> Result<&T, DecodeError> {
    T::ref_from_bytes(payload).map_err(|_| bad_size(payload, size_of::<T>()))
}

/// The payload must be a `T` followed by exactly `tail_len(t)` bytes (`None` = the declared
/// length overflows). Returns the fixed part and the tail.
pub(crate) fn with_tail<T: FromBytes + KnownLayout + Immutable>(
    payload: &[u8],
    tail_len: impl FnOnce(&T) -> Option<usize>,
) -> Result<(&T, &[u8]), DecodeError> {
    let (fixed, tail) =
        T::ref_from_prefix(payload).map_err(|_| bad_size(payload, size_of::<T>()))?;
    let need = tail_len(fixed).and_then(|n| n.checked_add(size_of::<T>()));
    match need {
        Some(need) if need == payload.len() => Ok((fixed, tail)),
        Some(need) => Err(bad_size(payload, need)),
        None => Err(bad_size(payload, usize::MAX)),
    }
}

/// A byte count from a 32-bit wire field.
pub(crate) fn byte_len(n: U32) -> Option<usize> {
    usize::try_from(n.get()).ok()
}

/// A reserved field must be zero.
pub(crate) fn reserved_zero(value: u32) -> Result<(), DecodeError> {
    if value == 0 {
        Ok(())
    } else {
        Err(DecodeError::Reserved)
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding helpers
// ---------------------------------------------------------------------------------------------

/// Writes a frame: `header` (its `msg_size` is replaced by the real size) followed by `parts`.
/// Fails with [`EncodeError::TooBig`] if the frame exceeds `out` or `u16::MAX` bytes.
pub(crate) fn emit(
    out: &mut [u8],
    mut header: Header,
    parts: &[&[u8]],
) -> Result<usize, EncodeError> {
    let need = parts
        .iter()
        .try_fold(HEADER_SIZE, |acc, part| acc.checked_add(part.len()))
        .ok_or(EncodeError::TooBig { need: usize::MAX })?;
    header.msg_size = u16::try_from(need).map_err(|_| EncodeError::TooBig { need })?;
    let frame = out.get_mut(..need).ok_or(EncodeError::TooBig { need })?;
    let (head, mut rest) = frame
        .split_at_mut_checked(HEADER_SIZE)
        .ok_or(EncodeError::TooBig { need })?;
    header.write(head).ok_or(EncodeError::TooBig { need })?;
    for part in parts {
        let (dst, tail) = core::mem::take(&mut rest)
            .split_at_mut_checked(part.len())
            .ok_or(EncodeError::TooBig { need })?;
        // `dst` was split off at `part.len()`: never refused. (`write_to`, not
        // `copy_from_slice`, so that the image keeps no panic location for it.)
        part.write_to(dst)
            .map_err(|_| EncodeError::TooBig { need })?;
        rest = tail;
    }
    Ok(need)
}

/// A header for [`emit`] (`msg_size` filled in there).
pub(crate) fn head(msg_type: u8, msg_id: u8, dev_num: u16, token: u16) -> Header {
    Header {
        msg_type,
        msg_id,
        dev_num,
        token,
        msg_size: 0,
    }
}

/// A length for a 32-bit wire field; anything wider cannot fit a frame anyway.
pub(crate) fn wire_len(len: usize) -> Result<U32, EncodeError> {
    u32::try_from(len)
        .map(U32::new)
        .map_err(|_| EncodeError::TooBig { need: len })
}

/// A value for a narrower wire field, or [`EncodeError::Unrepresentable`].
pub(crate) fn narrow<T: TryFrom<V>, V>(value: V) -> Result<T, EncodeError> {
    T::try_from(value).map_err(|_| EncodeError::Unrepresentable)
}

/// Fails with [`EncodeError::Unrepresentable`] unless `ok`.
pub(crate) fn representable(ok: bool) -> Result<(), EncodeError> {
    if ok {
        Ok(())
    } else {
        Err(EncodeError::Unrepresentable)
    }
}
