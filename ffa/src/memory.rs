//! FF-A memory management: transaction descriptors (FF-A v1.1 and v1.2 layouts) and how a
//! partition maps what it retrieved.
//!
//! `arm-ffa` 0.5.0 only knows the v1.1 layout (16-byte endpoint memory access descriptors);
//! an SPMC speaking v1.2 (Hafnium) uses 32-byte ones (with an impdef field). This module
//! packs and unpacks both, selected by the negotiated version.
//!
//! # Layout (FF-A v1.1 / v1.2 "memory transaction descriptor")
//!
//! ```text
//! 0   header (48 bytes): sender u16, attributes u16, flags u32, handle u64, tag u64,
//!                        EMAD size u32, EMAD count u32, EMAD array offset u32, reserved 12
//! 48  EMAD[count]: endpoint u16, permissions u8, flags u8, composite offset u32,
//!                  v1.1: reserved u64                        (16 bytes)
//!                  v1.2: impdef [u64; 2], reserved u64       (32 bytes)
//! C   composite (16 bytes): total page count u32, range count u32, reserved u64
//! C+16 constituents[range count] (16 bytes each): address u64, page count u32, reserved u32
//! ```
//!
//! Packing always puts the EMAD array at offset 48 and, when there are ranges, the composite
//! right after the EMADs (every receiver points at that one composite); without ranges (a
//! retrieve request) every composite offset is 0. The impdef field is written as zero and
//! ignored on unpack; reserved fields are written as zero and ignored on unpack.
//!
//! EMAD size accepted by [`MemTransaction::unpack`]: 16 for FF-A v1.1; 16 or 32 for v1.2 and
//! later 1.x versions (Hafnium accepts a v1.1-sized EMAD from a v1.2 endpoint too, so a peer may
//! legitimately send one). Every other size, and every other version, is rejected.

use core::mem::size_of;

use alloc::vec::Vec;

use arm_ffa::{
    Version,
    memory_management::{
        Cacheability, DataAccessPerm, InstuctionAccessPerm, MemRegionSecurity, MemTransactionFlags,
        Shareability,
    },
};
use zerocopy::{
    FromBytes, Immutable, IntoBytes, KnownLayout,
    little_endian::{U16, U32, U64},
};

/// Size of a 4 KiB FF-A page.
pub const PAGE_SIZE: u64 = 4096;

/// Memory region attributes: normal memory (bits\[5:4\] = 0b10, a field `arm-ffa` 0.5.0 keeps
/// private), write-back cacheable, inner shareable: 0x2f. This is what Linux puts in
/// `FFA_MEM_SHARE` descriptors and what Hafnium maps shared memory as.
pub const ATTR_NORMAL_WB_INNER_SHAREABLE: u16 =
    (0b10 << 4) | Cacheability::WriteBack as u16 | Shareability::Inner as u16;
/// Memory region attributes: the non-secure bit (bit 6). MBZ in send and retrieve requests; an
/// SPMC sets it in retrieve responses for normal-world memory.
pub const ATTR_NON_SECURE: u16 = MemRegionSecurity::NonSecure as u16;

/// Transaction flag: zero the memory before mapping it for the receiver (bit 0).
pub const FLAG_CLEAR: u32 = MemTransactionFlags::ZERO_MEMORY;
/// Transaction flag: the operation may be time sliced (bit 1).
pub const FLAG_TIME_SLICE: u32 = MemTransactionFlags::TIME_SLICING;
/// Retrieve request flag: zero the memory after the receiver relinquishes it (bit 2).
pub const FLAG_CLEAR_RELINQUISH: u32 = MemTransactionFlags::ZERO_AFTER_RELINQ;
/// Retrieve request/response flags: mask of the transaction type field (bits\[4:3\]).
pub const FLAG_TYPE_MASK: u32 = MemTransactionFlags::TYPE_DONATE;
/// Transaction type "share" in bits\[4:3\].
pub const FLAG_TYPE_SHARE: u32 = MemTransactionFlags::TYPE_SHARE;
/// Transaction type "lend" in bits\[4:3\].
pub const FLAG_TYPE_LEND: u32 = MemTransactionFlags::TYPE_LEND;
/// Transaction type "donate" in bits\[4:3\].
pub const FLAG_TYPE_DONATE: u32 = MemTransactionFlags::TYPE_DONATE;

const _: () = assert!(ATTR_NORMAL_WB_INNER_SHAREABLE == 0x2f && ATTR_NON_SECURE == 1 << 6);
const _: () = assert!(FLAG_TYPE_MASK == 0b11 << 3);

/// Relinquish flag: zero the memory after relinquishing it (bit 0).
pub const RELINQUISH_FLAG_CLEAR: u32 = 1 << 0;
/// Relinquish flag: the operation may be time sliced (bit 1).
pub const RELINQUISH_FLAG_TIME_SLICE: u32 = 1 << 1;

/// Size of the memory transaction descriptor header.
pub const HEADER_SIZE: usize = size_of::<MemTransactionDescRaw>();
/// Size of an FF-A v1.1 endpoint memory access descriptor.
pub const EMAD_SIZE_V1_1: usize = size_of::<EndpointMemAccessDescV1_1>();
/// Size of an FF-A v1.2 endpoint memory access descriptor.
pub const EMAD_SIZE_V1_2: usize = size_of::<EndpointMemAccessDescV1_2>();

/// A physically contiguous run of pages (a constituent memory region).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRange {
    /// Base address (page aligned).
    pub address: u64,
    /// Number of 4 KiB pages.
    pub page_count: u32,
}

/// The kind of memory transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareKind {
    /// FFA_MEM_SHARE.
    Share,
    /// FFA_MEM_LEND.
    Lend,
    /// FFA_MEM_DONATE.
    Donate,
}

impl ShareKind {
    /// The transaction type bits (\[4:3\]) of a retrieve request/response's flags for this kind.
    pub fn type_flag(self) -> u32 {
        match self {
            Self::Share => FLAG_TYPE_SHARE,
            Self::Lend => FLAG_TYPE_LEND,
            Self::Donate => FLAG_TYPE_DONATE,
        }
    }

    /// The kind named by the transaction type bits of `flags` (`None` if unspecified).
    pub fn from_flags(flags: u32) -> Option<Self> {
        match flags & FLAG_TYPE_MASK {
            FLAG_TYPE_SHARE => Some(Self::Share),
            FLAG_TYPE_LEND => Some(Self::Lend),
            FLAG_TYPE_DONATE => Some(Self::Donate),
            _ => None,
        }
    }
}

/// Data access permission in an endpoint memory access descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataAccess {
    /// Not specified (retrieve requests may leave it to the sender's choice).
    NotSpecified,
    /// Read-only.
    ReadOnly,
    /// Read-write.
    ReadWrite,
}

impl DataAccess {
    fn to_ffa(self) -> DataAccessPerm {
        match self {
            Self::NotSpecified => DataAccessPerm::NotSpecified,
            Self::ReadOnly => DataAccessPerm::ReadOnly,
            Self::ReadWrite => DataAccessPerm::ReadWrite,
        }
    }

    fn from_ffa(perm: DataAccessPerm) -> Self {
        match perm {
            DataAccessPerm::NotSpecified => Self::NotSpecified,
            DataAccessPerm::ReadOnly => Self::ReadOnly,
            DataAccessPerm::ReadWrite => Self::ReadWrite,
        }
    }
}

/// One receiver of a memory transaction (an endpoint memory access descriptor).
///
/// Instruction access is encoded from `executable` and the transaction type in the
/// descriptor's flags: `true` packs as "executable"; `false` packs as "not executable" when
/// the flags name LEND or DONATE (a single borrower of a lend/donate must specify it) and as
/// "not specified" otherwise (a SHARE, where FF-A/Hafnium require it unspecified in retrieve
/// requests, and send descriptors, whose flags carry no type). On unpack, "not specified" and
/// "not executable" both give `false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receiver {
    /// Receiver endpoint id.
    pub endpoint: u16,
    /// Data access permission.
    pub access: DataAccess,
    /// Instruction access: `true` = executable (the bus never asks for this).
    pub executable: bool,
}

/// A memory transaction descriptor (`FFA_MEM_SHARE/LEND` request, retrieve request and
/// retrieve response all share this format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemTransaction {
    /// Owner (sender) endpoint id.
    pub sender: u16,
    /// Memory region attributes byte (bits as in FF-A: type, cacheability, shareability).
    pub attributes: u16,
    /// Transaction flags word.
    pub flags: u32,
    /// Handle (0 in share requests; set in retrieve requests and responses).
    pub handle: u64,
    /// Tag.
    pub tag: u64,
    /// Receivers.
    pub receivers: Vec<Receiver>,
    /// Constituent ranges (empty for a retrieve request without a composite descriptor).
    pub ranges: Vec<MemRange>,
}

/// Why a descriptor could not be packed or unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    /// The buffer is too small.
    #[error("buffer too small")]
    TooSmall,
    /// An offset, count or size field is inconsistent or out of range.
    #[error("malformed descriptor")]
    Malformed,
    /// The version has no known descriptor layout.
    #[error("unsupported FF-A version for memory descriptors")]
    Version,
    /// The heap has no room for the descriptor's lists.
    #[error("no memory for the descriptor")]
    NoMemory,
}

/// FF-A v1.1/v1.2 "Memory transaction descriptor" (FF-A v1.1 table 10.20).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct MemTransactionDescRaw {
    /// Offset 0, length 2: sender (owner) endpoint id.
    pub(crate) sender: U16,
    /// Offset 2, length 2: memory region attributes.
    pub(crate) attributes: U16,
    /// Offset 4, length 4: flags.
    pub(crate) flags: U32,
    /// Offset 8, length 8: handle.
    pub(crate) handle: U64,
    /// Offset 16, length 8: tag.
    pub(crate) tag: U64,
    /// Offset 24, length 4: size of each endpoint memory access descriptor.
    pub(crate) emad_size: U32,
    /// Offset 28, length 4: count of endpoint memory access descriptors.
    pub(crate) emad_count: U32,
    /// Offset 32, length 4: offset of the first endpoint memory access descriptor.
    pub(crate) emad_offset: U32,
    /// Offset 36, length 12: reserved (MBZ).
    pub(crate) reserved: [u8; 12],
}
const _: () = assert!(size_of::<MemTransactionDescRaw>() == 48);

/// FF-A v1.1 "Endpoint memory access descriptor" (FF-A v1.1 table 10.16).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct EndpointMemAccessDescV1_1 {
    /// Offset 0, length 2: receiver endpoint id.
    pub(crate) endpoint: U16,
    /// Offset 2, length 1: permissions (bits\[1:0\] data, bits\[3:2\] instruction access).
    pub(crate) permissions: u8,
    /// Offset 3, length 1: receiver flags.
    pub(crate) flags: u8,
    /// Offset 4, length 4: offset of the composite memory region descriptor (0 = none).
    pub(crate) composite_offset: U32,
    /// Offset 8, length 8: reserved (MBZ).
    pub(crate) reserved: U64,
}
const _: () = assert!(size_of::<EndpointMemAccessDescV1_1>() == 16);

/// FF-A v1.2 "Endpoint memory access descriptor" (FF-A v1.2 memory management table 1.16).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct EndpointMemAccessDescV1_2 {
    /// Offset 0, length 2: receiver endpoint id.
    pub(crate) endpoint: U16,
    /// Offset 2, length 1: permissions (bits\[1:0\] data, bits\[3:2\] instruction access).
    pub(crate) permissions: u8,
    /// Offset 3, length 1: receiver flags.
    pub(crate) flags: u8,
    /// Offset 4, length 4: offset of the composite memory region descriptor (0 = none).
    pub(crate) composite_offset: U32,
    /// Offset 8, length 16: implementation defined value.
    pub(crate) impdef: [U64; 2],
    /// Offset 24, length 8: reserved (MBZ).
    pub(crate) reserved: U64,
}
const _: () = assert!(size_of::<EndpointMemAccessDescV1_2>() == 32);

/// "Composite memory region descriptor" (FF-A v1.1 table 10.13).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct CompositeMemRegionDescRaw {
    /// Offset 0, length 4: total page count (sum of the constituents' page counts).
    pub(crate) total_page_count: U32,
    /// Offset 4, length 4: count of constituent memory region descriptors.
    pub(crate) range_count: U32,
    /// Offset 8, length 8: reserved (MBZ).
    pub(crate) reserved: U64,
}
const _: () = assert!(size_of::<CompositeMemRegionDescRaw>() == 16);

/// "Constituent memory region descriptor" (FF-A v1.1 table 10.14).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct ConstituentMemRegionDescRaw {
    /// Offset 0, length 8: base address (4 KiB aligned).
    pub(crate) address: U64,
    /// Offset 8, length 4: number of 4 KiB pages.
    pub(crate) page_count: U32,
    /// Offset 12, length 4: reserved (MBZ).
    pub(crate) reserved: U32,
}
const _: () = assert!(size_of::<ConstituentMemRegionDescRaw>() == 16);

/// "Descriptor to relinquish a memory region" header (FF-A v1.1 table 16.25); the endpoint ids
/// (u16 each) follow.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct MemRelinquishDescRaw {
    /// Offset 0, length 8: handle.
    pub(crate) handle: U64,
    /// Offset 8, length 4: flags.
    pub(crate) flags: U32,
    /// Offset 12, length 4: count of endpoint ids that follow.
    pub(crate) endpoint_count: U32,
}
const _: () = assert!(size_of::<MemRelinquishDescRaw>() == 16);

const COMPOSITE_SIZE: usize = size_of::<CompositeMemRegionDescRaw>();
const CONSTITUENT_SIZE: usize = size_of::<ConstituentMemRegionDescRaw>();

/// The EMAD size written for `version`.
fn emad_size_for(version: Version) -> Result<usize, DescriptorError> {
    match version {
        Version(1, 1) => Ok(EMAD_SIZE_V1_1),
        Version(1, minor) if minor >= 2 => Ok(EMAD_SIZE_V1_2),
        _ => Err(DescriptorError::Version),
    }
}

/// Whether a descriptor of `version` may carry EMADs of `size` bytes.
fn emad_size_accepted(version: Version, size: usize) -> Result<bool, DescriptorError> {
    let own = emad_size_for(version)?;
    Ok(size == own || size == EMAD_SIZE_V1_1)
}

/// The permissions byte for `receiver` in a descriptor with transaction `flags`.
fn permissions_byte(receiver: &Receiver, flags: u32) -> u8 {
    let instr = if receiver.executable {
        InstuctionAccessPerm::Executable
    } else if matches!(
        ShareKind::from_flags(flags),
        Some(ShareKind::Lend | ShareKind::Donate)
    ) {
        InstuctionAccessPerm::NotExecutable
    } else {
        InstuctionAccessPerm::NotSpecified
    };
    receiver.access.to_ffa() as u8 | instr as u8
}

/// Decodes a permissions byte; the reserved encodings (0b11) of either field are malformed.
fn parse_permissions(byte: u8) -> Result<(DataAccess, bool), DescriptorError> {
    let data = DataAccessPerm::try_from(byte).map_err(|_| DescriptorError::Malformed)?;
    let instr = InstuctionAccessPerm::try_from(byte).map_err(|_| DescriptorError::Malformed)?;
    Ok((
        DataAccess::from_ffa(data),
        instr == InstuctionAccessPerm::Executable,
    ))
}

/// `buf[offset..offset + len]`, or `TooSmall`.
fn slice_at(buf: &[u8], offset: usize, len: usize) -> Result<&[u8], DescriptorError> {
    let end = offset.checked_add(len).ok_or(DescriptorError::TooSmall)?;
    buf.get(offset..end).ok_or(DescriptorError::TooSmall)
}

/// Mutable `buf[offset..offset + len]`, or `TooSmall`.
fn slice_at_mut(buf: &mut [u8], offset: usize, len: usize) -> Result<&mut [u8], DescriptorError> {
    let end = offset.checked_add(len).ok_or(DescriptorError::TooSmall)?;
    buf.get_mut(offset..end).ok_or(DescriptorError::TooSmall)
}

/// Writes `value` at `offset` in `buf`.
fn write_at<T: IntoBytes + Immutable>(
    buf: &mut [u8],
    offset: usize,
    value: &T,
) -> Result<(), DescriptorError> {
    value
        .write_to(slice_at_mut(buf, offset, size_of::<T>())?)
        .map_err(|_| DescriptorError::TooSmall)
}

/// Reads a `T` at `offset` in `buf`.
fn read_at<T: FromBytes>(buf: &[u8], offset: usize) -> Result<T, DescriptorError> {
    T::read_from_bytes(slice_at(buf, offset, size_of::<T>())?)
        .map_err(|_| DescriptorError::TooSmall)
}

fn to_u32(value: usize) -> Result<u32, DescriptorError> {
    u32::try_from(value).map_err(|_| DescriptorError::Malformed)
}

fn to_usize(value: u32) -> Result<usize, DescriptorError> {
    usize::try_from(value).map_err(|_| DescriptorError::Malformed)
}

impl MemTransaction {
    /// A retrieve request (no composite) for `handle` shared by `sender` with the single
    /// `receiver`: transaction type from `kind`, attributes left "not specified" (the SPMC
    /// fills them in the response). Fails only if the heap has no room for the receiver list.
    pub fn retrieve_request(
        sender: u16,
        handle: u64,
        tag: u64,
        kind: ShareKind,
        receiver: Receiver,
    ) -> Result<Self, DescriptorError> {
        let mut receivers = Vec::new();
        receivers
            .try_reserve_exact(1)
            .map_err(|_| DescriptorError::NoMemory)?;
        receivers.push(receiver);
        Ok(Self {
            sender,
            attributes: 0,
            flags: kind.type_flag(),
            handle,
            tag,
            receivers,
            ranges: Vec::new(),
        })
    }

    /// The length [`MemTransaction::pack`] writes for `version`.
    pub fn packed_len(&self, version: Version) -> Result<usize, DescriptorError> {
        Ok(self.layout(emad_size_for(version)?)?.1)
    }

    /// (composite offset or 0, total length) for EMADs of `emad_size` bytes.
    fn layout(&self, emad_size: usize) -> Result<(usize, usize), DescriptorError> {
        if self.receivers.is_empty() {
            return Err(DescriptorError::Malformed);
        }
        let emads_end = self
            .receivers
            .len()
            .checked_mul(emad_size)
            .and_then(|n| n.checked_add(HEADER_SIZE))
            .ok_or(DescriptorError::Malformed)?;
        if self.ranges.is_empty() {
            return Ok((0, emads_end));
        }
        let end = self
            .ranges
            .len()
            .checked_mul(CONSTITUENT_SIZE)
            .and_then(|n| n.checked_add(emads_end))
            .and_then(|n| n.checked_add(COMPOSITE_SIZE))
            .ok_or(DescriptorError::Malformed)?;
        Ok((emads_end, end))
    }

    /// Packs the descriptor for FF-A `version` (1.1 or 1.2 layout) into `buf`; returns its length.
    ///
    /// Fails with `Malformed` if there are no receivers, a range is not page aligned, the total
    /// page count does not fit in 32 bits or the descriptor is longer than `u32::MAX`; with
    /// `TooSmall` if `buf` cannot hold it.
    pub fn pack(&self, version: Version, buf: &mut [u8]) -> Result<usize, DescriptorError> {
        let emad_size = emad_size_for(version)?;
        let (composite_offset, total_len) = self.layout(emad_size)?;
        to_u32(total_len)?;
        let total_pages = self.ranges.iter().try_fold(0u32, |sum, r| {
            if !r.address.is_multiple_of(PAGE_SIZE) {
                return Err(DescriptorError::Malformed);
            }
            sum.checked_add(r.page_count)
                .ok_or(DescriptorError::Malformed)
        })?;
        let out = buf.get_mut(..total_len).ok_or(DescriptorError::TooSmall)?;
        out.fill(0);

        let header = MemTransactionDescRaw {
            sender: self.sender.into(),
            attributes: self.attributes.into(),
            flags: self.flags.into(),
            handle: self.handle.into(),
            tag: self.tag.into(),
            emad_size: to_u32(emad_size)?.into(),
            emad_count: to_u32(self.receivers.len())?.into(),
            emad_offset: to_u32(HEADER_SIZE)?.into(),
            reserved: [0; 12],
        };
        write_at(out, 0, &header)?;

        let composite_offset_u32 = to_u32(composite_offset)?;
        let mut offset = HEADER_SIZE;
        for receiver in &self.receivers {
            let permissions = permissions_byte(receiver, self.flags);
            if emad_size == EMAD_SIZE_V1_1 {
                let emad = EndpointMemAccessDescV1_1 {
                    endpoint: receiver.endpoint.into(),
                    permissions,
                    flags: 0,
                    composite_offset: composite_offset_u32.into(),
                    reserved: 0.into(),
                };
                write_at(out, offset, &emad)?;
            } else {
                let emad = EndpointMemAccessDescV1_2 {
                    endpoint: receiver.endpoint.into(),
                    permissions,
                    flags: 0,
                    composite_offset: composite_offset_u32.into(),
                    impdef: [0.into(); 2],
                    reserved: 0.into(),
                };
                write_at(out, offset, &emad)?;
            }
            offset = offset
                .checked_add(emad_size)
                .ok_or(DescriptorError::Malformed)?;
        }

        if !self.ranges.is_empty() {
            let composite = CompositeMemRegionDescRaw {
                total_page_count: total_pages.into(),
                range_count: to_u32(self.ranges.len())?.into(),
                reserved: 0.into(),
            };
            write_at(out, composite_offset, &composite)?;
            let mut offset = composite_offset
                .checked_add(COMPOSITE_SIZE)
                .ok_or(DescriptorError::Malformed)?;
            for range in &self.ranges {
                let constituent = ConstituentMemRegionDescRaw {
                    address: range.address.into(),
                    page_count: range.page_count.into(),
                    reserved: 0.into(),
                };
                write_at(out, offset, &constituent)?;
                offset = offset
                    .checked_add(CONSTITUENT_SIZE)
                    .ok_or(DescriptorError::Malformed)?;
            }
        }
        Ok(total_len)
    }

    /// Unpacks a descriptor written for FF-A `version`; every offset and count is checked
    /// against `buf`.
    ///
    /// Rules: at least one EMAD; EMAD size as in the module docs; EMAD array offset at least 48
    /// and 16-byte aligned; EMADs inside `buf`; reserved permission encodings rejected; all
    /// EMADs name the same composite offset; a non-zero composite offset is 8-byte aligned, lies
    /// after the EMAD array and its composite and constituents lie inside `buf`; constituent
    /// addresses are page aligned; the total page count equals the sum of the constituents'.
    /// Structures extending past the end of `buf` give `TooSmall`, inconsistent fields
    /// `Malformed`. Allocation is bounded by `buf.len()`.
    pub fn unpack(version: Version, buf: &[u8]) -> Result<Self, DescriptorError> {
        emad_size_for(version)?;
        let header: MemTransactionDescRaw = read_at(buf, 0)?;
        let emad_size = to_usize(header.emad_size.get())?;
        // 0 is never accepted; tested here too, so that `chunks_exact` below has no panic path.
        if emad_size == 0 || !emad_size_accepted(version, emad_size)? {
            return Err(DescriptorError::Malformed);
        }
        let emad_count = to_usize(header.emad_count.get())?;
        let emad_offset = to_usize(header.emad_offset.get())?;
        if emad_count == 0 || emad_offset < HEADER_SIZE || !emad_offset.is_multiple_of(16) {
            return Err(DescriptorError::Malformed);
        }
        let emads_len = emad_count
            .checked_mul(emad_size)
            .ok_or(DescriptorError::TooSmall)?;
        let emads = slice_at(buf, emad_offset, emads_len)?;
        // `slice_at` found the EMADs inside `buf`, so this fits; checked all the same.
        let emads_end = emad_offset
            .checked_add(emads_len)
            .ok_or(DescriptorError::TooSmall)?;

        // Bounded by buf.len() / 16 thanks to the slice check above.
        let mut receivers = Vec::new();
        receivers
            .try_reserve_exact(emad_count)
            .map_err(|_| DescriptorError::NoMemory)?;
        let mut composite_offset = None;
        // `emad_size` is 16 or 32 (`emad_size_accepted`), never 0.
        for emad in emads.chunks_exact(emad_size) {
            // The first 8 bytes are common to the v1.1 and v1.2 layouts.
            let common: EndpointMemAccessDescV1_1 = read_at(emad, 0)?;
            let (access, executable) = parse_permissions(common.permissions)?;
            receivers.push(Receiver {
                endpoint: common.endpoint.get(),
                access,
                executable,
            });
            let this = common.composite_offset.get();
            match composite_offset {
                None => composite_offset = Some(this),
                Some(first) if first != this => return Err(DescriptorError::Malformed),
                Some(_) => {}
            }
        }

        let composite_offset = to_usize(composite_offset.unwrap_or(0))?;
        let ranges = if composite_offset == 0 {
            Vec::new()
        } else {
            if composite_offset < emads_end || !composite_offset.is_multiple_of(8) {
                return Err(DescriptorError::Malformed);
            }
            let composite: CompositeMemRegionDescRaw = read_at(buf, composite_offset)?;
            let range_count = to_usize(composite.range_count.get())?;
            let constituents = slice_at(
                buf,
                composite_offset
                    .checked_add(COMPOSITE_SIZE)
                    .ok_or(DescriptorError::TooSmall)?,
                range_count
                    .checked_mul(CONSTITUENT_SIZE)
                    .ok_or(DescriptorError::TooSmall)?,
            )?;
            let mut ranges = Vec::new();
            ranges
                .try_reserve_exact(range_count)
                .map_err(|_| DescriptorError::NoMemory)?;
            let mut total: u64 = 0;
            // Cannot panic: CONSTITUENT_SIZE is 16, never 0.
            for chunk in constituents.chunks_exact(CONSTITUENT_SIZE) {
                let c: ConstituentMemRegionDescRaw = read_at(chunk, 0)?;
                if !c.address.get().is_multiple_of(PAGE_SIZE) {
                    return Err(DescriptorError::Malformed);
                }
                total = total.saturating_add(u64::from(c.page_count.get()));
                ranges.push(MemRange {
                    address: c.address.get(),
                    page_count: c.page_count.get(),
                });
            }
            if total != u64::from(composite.total_page_count.get()) {
                return Err(DescriptorError::Malformed);
            }
            ranges
        };

        Ok(Self {
            sender: header.sender.get(),
            attributes: header.attributes.get(),
            flags: header.flags.get(),
            handle: header.handle.get(),
            tag: header.tag.get(),
            receivers,
            ranges,
        })
    }

    /// Total pages over all ranges (saturating).
    pub fn total_pages(&self) -> u64 {
        self.ranges
            .iter()
            .fold(0u64, |sum, r| sum.saturating_add(u64::from(r.page_count)))
    }
}

/// A memory relinquish descriptor (`FFA_MEM_RELINQUISH`, same layout in every version).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemRelinquishDesc {
    /// Handle of the memory region.
    pub handle: u64,
    /// Flags (`RELINQUISH_FLAG_*`).
    pub flags: u32,
    /// Endpoints relinquishing access (at least one).
    pub endpoints: Vec<u16>,
}

impl MemRelinquishDesc {
    /// Length of the descriptor as packed.
    pub fn packed_len(&self) -> Result<usize, DescriptorError> {
        self.endpoints
            .len()
            .checked_mul(2)
            .and_then(|n| n.checked_add(size_of::<MemRelinquishDescRaw>()))
            .ok_or(DescriptorError::Malformed)
    }

    /// Packs into `buf`; returns the length. No endpoints is `Malformed`.
    pub fn pack(&self, buf: &mut [u8]) -> Result<usize, DescriptorError> {
        Self::pack_parts(self.handle, self.flags, &self.endpoints, buf)
    }

    /// Packs the descriptor of `handle`, `flags` and `endpoints` into `buf` without building
    /// one (no allocation: a relinquish must work with the heap exhausted); returns the length.
    pub fn pack_parts(
        handle: u64,
        flags: u32,
        endpoints: &[u16],
        buf: &mut [u8],
    ) -> Result<usize, DescriptorError> {
        if endpoints.is_empty() {
            return Err(DescriptorError::Malformed);
        }
        to_u32(endpoints.len())?;
        let len = endpoints
            .len()
            .checked_mul(2)
            .and_then(|n| n.checked_add(size_of::<MemRelinquishDescRaw>()))
            .ok_or(DescriptorError::Malformed)?;
        let out = buf.get_mut(..len).ok_or(DescriptorError::TooSmall)?;
        // arm-ffa encodes this layout; it cannot panic now that `out` is known to fit.
        let written = arm_ffa::memory_management::MemRelinquishDesc {
            handle: arm_ffa::memory_management::Handle(handle),
            flags,
        }
        .pack(endpoints, out);
        debug_assert_eq!(written, len);
        Ok(len)
    }

    /// Unpacks from `buf`; the endpoint count is checked against `buf` and must be non-zero.
    pub fn unpack(buf: &[u8]) -> Result<Self, DescriptorError> {
        let (desc, endpoints) = arm_ffa::memory_management::MemRelinquishDesc::unpack(buf)
            .map_err(|_| DescriptorError::TooSmall)?;
        // Bounded: arm-ffa checked count * 2 + 16 <= buf.len().
        let endpoints: Vec<u16> = endpoints.collect();
        if endpoints.is_empty() {
            return Err(DescriptorError::Malformed);
        }
        Ok(Self {
            handle: desc.handle.0,
            flags: desc.flags,
            endpoints,
        })
    }
}

/// Maps memory retrieved from another endpoint into this partition and gives byte access to
/// it. The real partition maps it into its stage-1 tables (non-secure, non-executable); the
/// simulated world checks every access against what the endpoint retrieved.
pub trait NsMapper {
    /// Makes `range` accessible; returns the base address to use with `read`/`write` for it.
    fn map(&mut self, range: MemRange, writable: bool) -> Result<u64, MapError>;
    /// Removes a mapping made by `map` (same base and page count).
    fn unmap(&mut self, base: u64, page_count: u32);
    /// Copies from mapped memory at `addr`. The caller keeps the access inside one mapping.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MapError>;
    /// Copies to mapped memory at `addr`. The caller keeps the access inside one mapping.
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MapError>;
}

/// A mapper lent out (the aarch64 image keeps its stage-1 mapper in a `'static` place, since
/// live page tables must never be dropped).
impl<M: NsMapper + ?Sized> NsMapper for &mut M {
    fn map(&mut self, range: MemRange, writable: bool) -> Result<u64, MapError> {
        (**self).map(range, writable)
    }
    fn unmap(&mut self, base: u64, page_count: u32) {
        (**self).unmap(base, page_count);
    }
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MapError> {
        (**self).read(addr, buf)
    }
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MapError> {
        (**self).write(addr, data)
    }
}

/// A mapping or access failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// No room left to map (tables or address space exhausted).
    #[error("no room to map")]
    NoSpace,
    /// The address is not mapped (or not writable for a write).
    #[error("address not mapped")]
    NotMapped,
}

#[cfg(test)]
mod tests;
