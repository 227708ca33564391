//! Indirect messages (FFA_MSG_SEND2, FF-A v1.2 (DEN0077A) §7.2 "Indirect messaging"): the
//! partition message header that precedes the payload in the sender's TX buffer and arrives,
//! copied by the SPMC, in the receiver's RX buffer.
//!
//! The v1.2 header is 40 bytes, little-endian:
//!
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 4 | flags (MBZ) |
//! | 4 | 4 | reserved (MBZ) |
//! | 8 | 4 | offset of the payload from the start of the buffer (≥ 40) |
//! | 12 | 4 | sender id (bits 31:16) and receiver id (bits 15:0) |
//! | 16 | 4 | payload size in bytes |
//! | 20 | 4 | reserved (MBZ; missing from Linux's header until a fix backported to stable) |
//! | 24 | 16 | UUID of the service addressed, in its byte order |
//!
//! Hafnium (`api_ffa_msg_send2`) copies the header once, requires `offset ≥ 40` from a v1.2
//! sender (24 from v1.1), refuses `offset + size` that overflows or exceeds the buffer
//! (INVALID_PARAMETERS), refuses a reflexive message and a header sender that is not the
//! caller, answers BUSY while the receiver still owns its RX buffer, and checks neither the
//! UUID nor the reserved fields. [`parse`] is as strict as that and stricter where the bus
//! needs it: the payload must lie inside what was received and carry no more than one
//! virtio-msg frame's worth the caller asks for; the UUID is returned for the caller to check.

use uuid::Uuid;
use zerocopy::{
    FromBytes, Immutable, IntoBytes, KnownLayout,
    little_endian::{U16, U32},
};

/// Size of the FF-A v1.2 indirect message header.
pub const HEADER_SIZE: usize = 40;
/// [`HEADER_SIZE`] as the header's `offset` field holds it.
const HEADER_OFFSET: u32 = 40;
const _: () = assert!(HEADER_OFFSET as usize == HEADER_SIZE);

/// The FF-A v1.2 partition message header.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Header {
    flags: U32,
    reserved0: U32,
    offset: U32,
    receiver: U16,
    sender: U16,
    size: U32,
    reserved1: U32,
    uuid: [u8; 16],
}
const _: () = assert!(size_of::<Header>() == HEADER_SIZE);

/// An indirect message as received: who sent it to whom, for which service, and its payload
/// (borrowed from the buffer it was parsed from).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Sender endpoint id.
    pub sender: u16,
    /// Receiver endpoint id.
    pub receiver: u16,
    /// The service addressed.
    pub uuid: Uuid,
    /// The payload.
    pub payload: &'a [u8],
}

/// Why an indirect message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IndirectError {
    /// Shorter than the header.
    #[error("shorter than the 40-byte header")]
    Short,
    /// The payload offset overlaps the header.
    #[error("payload offset inside the header")]
    Offset,
    /// `offset + size` overflows or lies past the buffer.
    #[error("payload past the end of the buffer")]
    Size,
    /// The payload is larger than the receiver accepts.
    #[error("payload larger than accepted")]
    TooLarge,
    /// The sender and receiver are the same endpoint.
    #[error("sender is the receiver")]
    Reflexive,
    /// The message does not fit in the buffer it is written to.
    #[error("message does not fit the buffer")]
    NoRoom,
}

/// Writes a message from `sender` to `receiver` for service `uuid` with `payload` right after
/// the header (offset 40), as Linux does; returns the bytes written. The rest of `buf` is left
/// as it is (the SPMC copies only `offset + size` bytes).
pub fn write(
    buf: &mut [u8],
    sender: u16,
    receiver: u16,
    uuid: Uuid,
    payload: &[u8],
) -> Result<usize, IndirectError> {
    if sender == receiver {
        return Err(IndirectError::Reflexive);
    }
    let total = HEADER_SIZE
        .checked_add(payload.len())
        .ok_or(IndirectError::NoRoom)?;
    let size = u32::try_from(payload.len()).map_err(|_| IndirectError::NoRoom)?;
    let (head, rest) = buf
        .get_mut(..total)
        .ok_or(IndirectError::NoRoom)?
        .split_at_mut(HEADER_SIZE);
    let header = Header {
        flags: 0.into(),
        reserved0: 0.into(),
        offset: HEADER_OFFSET.into(),
        receiver: receiver.into(),
        sender: sender.into(),
        size: size.into(),
        reserved1: 0.into(),
        uuid: *uuid.as_bytes(),
    };
    head.copy_from_slice(header.as_bytes());
    // Never refused: `rest` is `payload.len()` bytes.
    payload.write_to(rest).map_err(|_| IndirectError::NoRoom)?;
    Ok(total)
}

/// Parses the message at the start of `buf` (what was received: an RX buffer, or a copy of
/// it), accepting a payload of at most `max_payload` bytes.
pub fn parse(buf: &[u8], max_payload: usize) -> Result<Message<'_>, IndirectError> {
    let (header, _) = Header::read_from_prefix(buf).map_err(|_| IndirectError::Short)?;
    let offset = usize::try_from(header.offset.get()).map_err(|_| IndirectError::Size)?;
    let size = usize::try_from(header.size.get()).map_err(|_| IndirectError::Size)?;
    if offset < HEADER_SIZE {
        return Err(IndirectError::Offset);
    }
    let end = offset.checked_add(size).ok_or(IndirectError::Size)?;
    let payload = buf.get(offset..end).ok_or(IndirectError::Size)?;
    if size > max_payload {
        return Err(IndirectError::TooLarge);
    }
    let (sender, receiver) = (header.sender.get(), header.receiver.get());
    if sender == receiver {
        return Err(IndirectError::Reflexive);
    }
    Ok(Message {
        sender,
        receiver,
        uuid: Uuid::from_bytes(header.uuid),
        payload,
    })
}

/// The sender and receiver ids a header in `buf` names, without checking the rest (what an
/// SPMC reads before it validates the message).
pub fn endpoints(buf: &[u8]) -> Option<(u16, u16)> {
    let (header, _) = Header::read_from_prefix(buf).ok()?;
    Some((header.sender.get(), header.receiver.get()))
}

/// `offset + size` of the message in `buf` as an SPMC checks it: `None` if the header is short,
/// the offset overlaps a header of `min_offset` bytes, or the sum overflows or exceeds `limit`.
pub fn total_size(buf: &[u8], min_offset: usize, limit: usize) -> Option<usize> {
    let (header, _) = Header::read_from_prefix(buf).ok()?;
    let offset = usize::try_from(header.offset.get()).ok()?;
    let size = usize::try_from(header.size.get()).ok()?;
    let total = offset.checked_add(size)?;
    (offset >= min_offset && total <= limit).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{VIRTIO_MSG_DEVICE_UUID, VIRTIO_MSG_DRIVER_UUID};

    #[test]
    fn written_as_linux_lays_it_out() {
        let mut buf = [0xAAu8; 64];
        let n = write(&mut buf, 0x0001, 0x8001, VIRTIO_MSG_DEVICE_UUID, &[1, 2, 3]).unwrap();
        assert_eq!(n, 43);
        assert_eq!(&buf[0..8], &[0; 8]);
        assert_eq!(&buf[8..12], &40u32.to_le_bytes());
        // send_recv_id = sender << 16 | receiver, little-endian.
        assert_eq!(&buf[12..16], &0x0001_8001u32.to_le_bytes());
        assert_eq!(&buf[16..20], &3u32.to_le_bytes());
        assert_eq!(&buf[20..24], &[0; 4]);
        // The UUID in its byte order: c66028b5-2498-...
        assert_eq!(&buf[24..28], &[0xc6, 0x60, 0x28, 0xb5]);
        assert_eq!(&buf[40..43], &[1, 2, 3]);
        assert_eq!(buf[43], 0xAA, "nothing past the message is written");
        let m = parse(&buf, 104).unwrap();
        assert_eq!(
            m,
            Message {
                sender: 1,
                receiver: 0x8001,
                uuid: VIRTIO_MSG_DEVICE_UUID,
                payload: &[1, 2, 3],
            }
        );
        assert_eq!(endpoints(&buf), Some((1, 0x8001)));
        assert_eq!(total_size(&buf, 40, 4096), Some(43));
    }

    fn with(offset: u32, size: u32) -> [u8; 128] {
        let mut buf = [0u8; 128];
        write(&mut buf, 2, 0x8001, VIRTIO_MSG_DRIVER_UUID, &[7; 8]).unwrap();
        buf[8..12].copy_from_slice(&offset.to_le_bytes());
        buf[16..20].copy_from_slice(&size.to_le_bytes());
        buf
    }

    #[test]
    fn bad_headers_are_refused() {
        assert_eq!(parse(&[0; 39], 104), Err(IndirectError::Short));
        assert_eq!(parse(&with(24, 8), 104), Err(IndirectError::Offset));
        assert_eq!(parse(&with(39, 8), 104), Err(IndirectError::Offset));
        assert_eq!(parse(&with(40, 89), 104), Err(IndirectError::Size));
        assert_eq!(parse(&with(u32::MAX, 8), 104), Err(IndirectError::Size));
        assert_eq!(parse(&with(40, u32::MAX), 104), Err(IndirectError::Size));
        assert_eq!(parse(&with(40, 88), 16), Err(IndirectError::TooLarge));
        assert_eq!(total_size(&with(40, u32::MAX), 40, 4096), None);
        assert_eq!(total_size(&with(32, 8), 40, 4096), None);
        assert_eq!(total_size(&with(32, 8), 24, 4096), Some(40));
        // A later offset is allowed (the payload need not follow the header).
        let late = with(48, 8);
        assert_eq!(parse(&late, 104).unwrap().payload, &late[48..56]);
        let mut reflexive = with(40, 8);
        reflexive[12..16].copy_from_slice(&0x8001_8001u32.to_le_bytes());
        assert_eq!(parse(&reflexive, 104), Err(IndirectError::Reflexive));
        let mut small = [0u8; 41];
        assert_eq!(
            write(&mut small, 1, 2, Uuid::nil(), &[0; 2]),
            Err(IndirectError::NoRoom)
        );
        assert_eq!(
            write(&mut small, 1, 1, Uuid::nil(), &[]),
            Err(IndirectError::Reflexive)
        );
    }
}
