//! Typed FF-A calls over a [`Conduit`], built on `arm_ffa::Interface` encodings.
//!
//! Every call is encoded with `Interface::to_regs` at the negotiated version and every answer
//! decoded with `Interface::from_regs`; nothing here hand-rolls a register layout except the
//! bare `FFA_VERSION` answer (which `from_regs` cannot decode). Calls that `arm-ffa` would
//! refuse to encode (it panics on them) are rejected before they reach the conduit:
//! `Error::Ffa(NotSupported)` for an interface newer than the negotiated version,
//! `Error::Ffa(InvalidParameters)` for a malformed one.
//!
//! The two calls of every request in the message loop are recognised first and handled without
//! the generic code: FFA_MSG_SEND_DIRECT_REQ2 decoded ([`decode_regs`]) and
//! FFA_MSG_SEND_DIRECT_RESP2 encoded ([`encode_regs`]), with exactly `arm-ffa`'s layout (tests
//! compare the two on random registers); every other call goes through `arm-ffa`.
//!
//! Answers are decoded at `max(negotiated, 1.2)`: `arm-ffa` asserts (panics) when it decodes an
//! 18-register answer such as `FFA_SUCCESS64` below v1.2, and the answer comes from the other
//! side, so the decoder must not depend on it.

use alloc::vec::Vec;

use zerocopy::IntoBytes;

use arm_ffa::{
    FfaError, FuncId, Interface, Version, VersionOut,
    interface_args::{
        ConsoleLogChars, ConsoleLogChars64, DirectMsg2Args, DirectMsgArgs, MsgSend2Flags,
        MsgWaitFlags, RxTxAddr, SuccessArgs, SuccessArgsIdGet, TargetInfo, VersionFlags,
        VersionQueryType,
    },
    memory_management::{Handle, MemReclaimFlags, SuccessArgsMemOp},
    notification::{
        NotificationBindFlags, NotificationGetFlags, NotificationSetFlags,
        SuccessArgsNotificationGet,
    },
    partition_info::{
        PartitionInfo, PartitionInfoGetFlags, PartitionInfoIterator, SuccessArgsPartitionInfoGet,
    },
};

use crate::{
    conduit::Conduit,
    memory::{DescriptorError, MemRelinquishDesc, MemTransaction, ShareKind},
};

/// How many times [`Ffa::direct_req2`] resumes the callee (FFA_RUN after FFA_INTERRUPT or
/// FFA_YIELD) before it gives up with [`Error::Unexpected`].
pub const MAX_RESUMES: u32 = 1 << 16;

/// The "RX buffer full" framework notification (bit 0 of the SPM and of the hypervisor
/// framework bitmaps, FF-A v1.2 §10.2): a partition's (SPM) or a VM's (hypervisor) indirect
/// message waits in the receiver's RX buffer.
pub const RX_BUFFER_FULL: u32 = 1;

/// Largest retrieve response [`Ffa::mem_retrieve`] reassembles from fragments, in bytes.
pub const MAX_RETRIEVE_LEN: usize = 1 << 16;

/// A failed FF-A call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The callee answered FFA_ERROR with this code.
    #[error("FFA_ERROR {0:?}")]
    Ffa(FfaError),
    /// The callee answered FFA_ERROR with a code outside the spec.
    #[error("FFA_ERROR with unknown code {0}")]
    UnknownErrorCode(i32),
    /// The answer did not decode as an FF-A interface.
    #[error("undecodable FF-A answer (x0 = {0:#x})")]
    Decode(u64),
    /// The answer was a valid interface but not one this call can return.
    #[error("unexpected FF-A answer")]
    Unexpected,
    /// An indirect message was malformed or did not fit.
    #[error("indirect message: {0}")]
    Indirect(#[from] crate::indirect::IndirectError),
    /// A memory descriptor was malformed or did not fit.
    #[error("memory descriptor: {0}")]
    Descriptor(#[from] crate::memory::DescriptorError),
}

/// An endpoint's FF-A interface: typed calls over its [`Conduit`] at a fixed FF-A version.
pub struct Ffa<C: Conduit> {
    conduit: C,
    version: Version,
    last: [u64; 18],
}

/// `iface`, built where it is used. A constant interface borrowed as `&Interface::IdGet` is
/// promoted to a static: a whole `Interface` (160 bytes, nearly all zero) in the image's
/// .rodata per call site, where building it on the stack takes an instruction or two.
#[inline(always)]
fn runtime(iface: Interface) -> Interface {
    iface
}

/// The low 32 bits of a register (the `w` view of an SMC32 result).
fn low32(x: u64) -> u32 {
    let [a, b, c, d, ..] = x.to_le_bytes();
    u32::from_le_bytes([a, b, c, d])
}

/// `arm-ffa` asserts that bit 31 of an encoded version is clear.
fn version_encodable(version: Version) -> bool {
    version.0 < 0x8000
}

/// Rejects interfaces that `Interface::to_regs` would panic on at `version`.
fn check_encodable(iface: &Interface, version: Version) -> Result<(), Error> {
    use DirectMsgArgs as A;
    let malformed = match iface {
        Interface::MsgSendDirectReq { args, .. } => match args {
            A::VersionReq { version, .. } => !version_encodable(*version),
            A::VersionResp { .. }
            | A::PowerPsciResp { .. }
            | A::VmCreatedAck { .. }
            | A::VmDestructedAck { .. } => true,
            _ => false,
        },
        Interface::MsgSendDirectResp { args, .. } => match args {
            A::VersionResp {
                version: Some(version),
            } => !version_encodable(*version),
            A::VersionReq { .. }
            | A::PowerPsciReq32 { .. }
            | A::PowerPsciReq64 { .. }
            | A::PowerWarmBootReq { .. }
            | A::VmCreated { .. }
            | A::VmDestructed { .. } => true,
            _ => false,
        },
        Interface::Version { input_version, .. } => !version_encodable(*input_version),
        Interface::VersionOut {
            output_version: VersionOut::Version(v),
        } => !version_encodable(*v),
        Interface::PartitionInfoGetRegs {
            start_index,
            info_tag,
            ..
        } => *start_index == 0 && *info_tag != 0,
        Interface::MemPermGet { page_cnt, .. } => {
            if version <= Version(1, 2) {
                *page_cnt != 1
            } else {
                *page_cnt == 0
            }
        }
        _ => false,
    };
    if malformed {
        return Err(Error::Ffa(FfaError::InvalidParameters));
    }
    if iface.minimum_ffa_version() > version {
        return Err(Error::Ffa(FfaError::NotSupported));
    }
    Ok(())
}

/// FFA_MSG_SEND_DIRECT_REQ2 (SMC64).
const DIRECT_REQ2: u32 = 0xc400_008d;

/// Decodes an answer as `Interface::from_regs` does at `version`; FFA_ERROR becomes `Err`.
/// FFA_MSG_SEND_DIRECT_REQ2 (FF-A 1.2 and later), the message loop's request, is decoded here
/// directly: sender and receiver from x1, the UUID from x2/x3 (`arm-ffa`'s
/// `UuidHelper::from_u64_regs`), the message from x4–x17.
///
/// Out of line, so that the benchmark can count it as the partition's own decoding.
#[inline(never)]
pub fn decode_regs(version: Version, regs: &[u64; 18]) -> Result<Interface, Error> {
    let [x0, x1, x2, x3, message @ ..] = *regs;
    if low32(x0) == DIRECT_REQ2 && version >= Version(1, 2) {
        // x1: sender in bits 31:16, receiver in 15:0 (the rest ignored, as `arm-ffa` does).
        let id = |shift: u32| u16::try_from(x1.wrapping_shr(shift) & 0xffff).unwrap_or(0);
        return Ok(Interface::MsgSendDirectReq2 {
            src_id: id(16),
            dst_id: id(0),
            uuid: uuid::Uuid::from_u128_le(u128::from(x2) | u128::from(x3) << 64),
            args: DirectMsg2Args(message),
        });
    }
    decode(version, regs)
}

/// Encodes `iface` at `version` into `regs` (all zero on entry), as `Interface::to_regs` does;
/// an interface `arm-ffa` would refuse (it panics on them) is `Err` and leaves `regs` zero.
/// FFA_MSG_SEND_DIRECT_RESP2 (FF-A 1.2 and later), the message loop's answer, is encoded here
/// directly: x1 = sender << 16 | receiver, x2 = x3 = 0, the message in x4–x17.
///
/// Out of line, so that the benchmark can count it as the partition's own encoding.
#[inline(never)]
pub fn encode_regs(iface: &Interface, version: Version, regs: &mut [u64; 18]) -> Result<(), Error> {
    if let Interface::MsgSendDirectResp2 {
        src_id,
        dst_id,
        args,
    } = iface
        && version >= Version(1, 2)
    {
        let [x0, x1, x2, x3, message @ ..] = regs;
        *x0 = u64::from(DIRECT_RESP2);
        *x1 = u64::from(*src_id) << 16 | u64::from(*dst_id);
        *x2 = 0;
        *x3 = 0;
        *message = args.0;
        return Ok(());
    }
    check_encodable(iface, version)?;
    iface.to_regs(version, regs);
    Ok(())
}

/// FFA_MSG_SEND_DIRECT_RESP2 (SMC64).
const DIRECT_RESP2: u32 = 0xc400_008e;

/// Decodes an answer with `arm-ffa`; FFA_ERROR becomes `Err`.
fn decode(version: Version, regs: &[u64; 18]) -> Result<Interface, Error> {
    match Interface::from_regs(version, regs) {
        Ok(Interface::Error { error_code, .. }) => Err(Error::Ffa(error_code)),
        Ok(iface) => Ok(iface),
        Err(_) => {
            let fid = low32(regs[0]);
            if fid == u32::from(FuncId::Error32) || fid == u32::from(FuncId::Error64) {
                // Also reached for FFA_ERROR64 (v1.3) from a peer newer than the decoder.
                let code = i32::from_le_bytes(low32(regs[2]).to_le_bytes());
                Err(FfaError::try_from(code).map_or(Error::UnknownErrorCode(code), Error::Ffa))
            } else {
                Err(Error::Decode(regs[0]))
            }
        }
    }
}

impl<C: Conduit> Ffa<C> {
    /// Wraps a conduit; calls are encoded for `crate::ids::FFA_VERSION` until [`Ffa::version`]
    /// negotiates otherwise.
    pub fn new(conduit: C) -> Self {
        Self {
            conduit,
            version: crate::ids::FFA_VERSION,
            last: [0; 18],
        }
    }

    /// Wraps the conduit of another execution context of an endpoint that negotiated
    /// `version` already (FFA_VERSION is the endpoint's, made once, by its first context).
    pub fn on_context(conduit: C, version: Version) -> Self {
        Self {
            conduit,
            version,
            last: [0; 18],
        }
    }

    /// The conduit (for its RX/TX buffers).
    pub fn conduit(&mut self) -> &mut C {
        &mut self.conduit
    }

    /// The version calls are encoded for.
    pub fn negotiated(&self) -> Version {
        self.version
    }

    /// The registers of the last answer, as they came back (for answering a message that did
    /// not decode, e.g. an unknown framework message: its sender is in x1).
    pub fn last_answer(&self) -> &[u64; 18] {
        &self.last
    }

    fn decode_version(&self) -> Version {
        self.version.max(Version(1, 2))
    }

    /// Issues `iface` and decodes the answer (FFA_ERROR becomes `Err`).
    pub fn call(&mut self, iface: &Interface) -> Result<Interface, Error> {
        let mut regs = [0u64; 18];
        encode_regs(iface, self.version, &mut regs)?;
        self.last = self.conduit.call(regs);
        decode_regs(self.decode_version(), &self.last)
    }

    /// Issues `iface` and expects FFA_SUCCESS; returns its arguments.
    fn call_success(&mut self, iface: &Interface) -> Result<SuccessArgs, Error> {
        match self.call(iface)? {
            Interface::Success { args, .. } => Ok(args),
            _ => Err(Error::Unexpected),
        }
    }

    /// FFA_VERSION: offers `version`; returns the callee's version and records the version
    /// used for encodings (the lower of the two compatible versions).
    ///
    /// A callee of another major version, or one whose common version with `version` is below
    /// 1.1 (no descriptor layout here), gives `Err(Ffa(NotSupported))` and leaves the recorded
    /// version unchanged, as does a NOT_SUPPORTED answer.
    pub fn version(&mut self, version: Version) -> Result<Version, Error> {
        let iface = Interface::Version {
            input_version: version,
            flags: VersionFlags {
                query_type: VersionQueryType::Negotiate,
            },
        };
        check_encodable(&iface, self.version)?;
        let mut regs = [0u64; 18];
        iface.to_regs(self.version, &mut regs);
        self.last = self.conduit.call(regs);
        // The answer is a bare version (or -1) in w0, which `from_regs` cannot decode.
        let callee = match VersionOut::try_from(low32(self.last[0])) {
            Ok(VersionOut::Version(v)) => v,
            Ok(VersionOut::NotSupported) => return Err(Error::Ffa(FfaError::NotSupported)),
            Ok(VersionOut::InvalidParameter) => {
                return Err(Error::Ffa(FfaError::InvalidParameters));
            }
            Err(_) => return Err(Error::Decode(self.last[0])),
        };
        let agreed = version.min(callee);
        if callee.0 != version.0 || agreed < Version(1, 1) {
            return Err(Error::Ffa(FfaError::NotSupported));
        }
        self.version = agreed;
        Ok(callee)
    }

    /// FFA_ID_GET.
    pub fn id_get(&mut self) -> Result<u16, Error> {
        let args = self.call_success(&runtime(Interface::IdGet))?;
        SuccessArgsIdGet::try_from(args)
            .map(|a| a.id)
            .map_err(|_| Error::Unexpected)
    }

    /// FFA_RXTX_MAP (64-bit) of `page_count` 4 KiB pages each.
    pub fn rxtx_map(&mut self, tx_addr: u64, rx_addr: u64, page_count: u32) -> Result<(), Error> {
        self.call_success(&Interface::RxTxMap {
            addr: RxTxAddr::Addr64 {
                rx: rx_addr,
                tx: tx_addr,
            },
            page_cnt: page_count,
        })?;
        Ok(())
    }

    /// FFA_RX_RELEASE.
    pub fn rx_release(&mut self) -> Result<(), Error> {
        // w1 (the VM id) is MBZ at the virtual FF-A instance.
        self.call_success(&runtime(Interface::RxRelease { vm_id: 0 }))?;
        Ok(())
    }

    /// FFA_PARTITION_INFO_GET for `uuid` (nil = all); reads the descriptors from the RX
    /// buffer and releases it.
    pub fn partition_info_get(&mut self, uuid: uuid::Uuid) -> Result<Vec<PartitionInfo>, Error> {
        let flags = PartitionInfoGetFlags { count_only: false };
        let args = self.call_success(&Interface::PartitionInfoGet { uuid, flags })?;
        // The RX buffer is ours until released, whatever it holds.
        let infos = self.read_partition_info(flags, args);
        let released = self.rx_release();
        let infos = infos?;
        released?;
        Ok(infos)
    }

    fn read_partition_info(
        &self,
        flags: PartitionInfoGetFlags,
        args: SuccessArgs,
    ) -> Result<Vec<PartitionInfo>, Error> {
        let info =
            SuccessArgsPartitionInfoGet::try_from((flags, args)).map_err(|_| Error::Unexpected)?;
        // Descriptors are at least the v1.1 24 bytes; a newer SPMC may write longer ones (FF-A
        // v1.3: 48 bytes, Hafnium does so for every caller above v1.0) and the caller steps by
        // the size it reports, reading the fields it knows (forward compatibility).
        let size = info
            .size
            .and_then(|s| usize::try_from(s).ok())
            .filter(|s| *s >= PartitionInfo::DESC_SIZE)
            .ok_or(Error::Descriptor(DescriptorError::Malformed))?;
        let count = usize::try_from(info.count)
            .map_err(|_| Error::Descriptor(DescriptorError::TooSmall))?;
        let rx = self.conduit.rx();
        let total = count
            .checked_mul(size)
            .filter(|t| *t <= rx.len())
            .ok_or(Error::Descriptor(DescriptorError::TooSmall))?;
        // `PartitionInfoIterator` asserts a version in 1.1..=1.2; the known fields are the same.
        // Cannot panic (`clamp`): the lower bound is below the upper one.
        let version = self.version.clamp(Version(1, 1), Version(1, 2));
        let mut infos = Vec::new();
        infos
            .try_reserve_exact(count)
            .map_err(|_| Error::Descriptor(DescriptorError::NoMemory))?;
        // Cannot panic: `size` is at least `PartitionInfo::DESC_SIZE`, never 0 (filtered above).
        for desc in rx.get(..total).unwrap_or_default().chunks_exact(size) {
            let known = desc
                .get(..PartitionInfo::DESC_SIZE)
                .ok_or(Error::Descriptor(DescriptorError::TooSmall))?;
            let mut iter = PartitionInfoIterator::new(version, known, 1)
                .map_err(|_| Error::Descriptor(DescriptorError::TooSmall))?;
            match iter.next() {
                Some(Ok(info)) => infos.push(info),
                _ => return Err(Error::Descriptor(DescriptorError::Malformed)),
            }
        }
        Ok(infos)
    }

    /// FFA_SECONDARY_EP_REGISTER (64-bit): the address the SPMC starts this partition's other
    /// execution contexts at. Only an MP partition, and only while it boots.
    pub fn secondary_ep_register(&mut self, entry: u64) -> Result<(), Error> {
        self.call_success(&Interface::SecondaryEpRegister {
            entrypoint: arm_ffa::interface_args::SecondaryEpRegisterAddr::Addr64(entry),
        })
        .map(|_| ())
    }

    /// FFA_MSG_WAIT (64-bit form when the version allows): returns the next message.
    ///
    /// FFA_MSG_WAIT64 exists from FF-A v1.3 only, so at v1.2 this is the 32-bit form. The RX
    /// buffer is not retained (the call releases it).
    pub fn msg_wait(&mut self) -> Result<Interface, Error> {
        self.msg_wait_with(MsgWaitFlags::default())
    }

    /// [`msg_wait`](Self::msg_wait) keeping the RX buffer as it is (flag "retain RX buffer
    /// ownership"): for a partition that releases its RX buffer itself (FFA_RX_RELEASE after
    /// each use), and whose other execution contexts may be using the buffer meanwhile — a
    /// plain FFA_MSG_WAIT from one context would release it under another's retrieve (Hafnium
    /// `api_ffa_msg_wait`).
    pub fn msg_wait_retaining_rx(&mut self) -> Result<Interface, Error> {
        self.msg_wait_with(MsgWaitFlags {
            retain_rx_buffer: true,
        })
    }

    fn msg_wait_with(&mut self, flags: MsgWaitFlags) -> Result<Interface, Error> {
        let is_32bit = self.version < FuncId::MsgWait64.minimum_ffa_version();
        self.call(&Interface::MsgWait { flags, is_32bit })
    }

    /// FFA_MSG_SEND_DIRECT_REQ2 from `src` to `dst` for service `uuid`; returns x4..x17 of
    /// the DIRECT_RESP2. FFA_INTERRUPT and FFA_YIELD answers are resumed with FFA_RUN.
    ///
    /// FFA_RUN targets the endpoint/vCPU in w1 of the FFA_INTERRUPT/FFA_YIELD answer (`dst`,
    /// vCPU as given, when w1 names no endpoint). After [`MAX_RESUMES`] resumptions this gives
    /// up with [`Error::Unexpected`]. A DIRECT_RESP2 that is not from `dst` to `src` is
    /// [`Error::Unexpected`] too.
    pub fn direct_req2(
        &mut self,
        src: u16,
        dst: u16,
        uuid: uuid::Uuid,
        payload: [u64; 14],
    ) -> Result<[u64; 14], Error> {
        let mut answer = self.call(&Interface::MsgSendDirectReq2 {
            src_id: src,
            dst_id: dst,
            uuid,
            args: DirectMsg2Args(payload),
        })?;
        let mut resumes = 0u32;
        loop {
            match answer {
                Interface::MsgSendDirectResp2 {
                    src_id,
                    dst_id,
                    args,
                } => {
                    if src_id != dst || dst_id != src {
                        return Err(Error::Unexpected);
                    }
                    return Ok(args.0);
                }
                Interface::Interrupt { .. } | Interface::Yield { .. } => {
                    resumes = resumes
                        .checked_add(1)
                        .filter(|&r| r <= MAX_RESUMES)
                        .ok_or(Error::Unexpected)?;
                    let mut target_info = TargetInfo::from(low32(self.last[1]));
                    if target_info.endpoint_id == 0 {
                        target_info.endpoint_id = dst;
                    }
                    answer = self.call(&Interface::Run {
                        target_info,
                        is_32bit: true,
                    })?;
                }
                _ => return Err(Error::Unexpected),
            }
        }
    }

    /// FFA_MSG_SEND_DIRECT_RESP2 from `src` to `dst` (the request's sender) with `payload` in
    /// x4..x17; returns the next message (the message loop: `msg = ffa.direct_resp2(..)?`).
    pub fn direct_resp2(
        &mut self,
        src: u16,
        dst: u16,
        payload: [u64; 14],
    ) -> Result<Interface, Error> {
        self.call(&Interface::MsgSendDirectResp2 {
            src_id: src,
            dst_id: dst,
            args: DirectMsg2Args(payload),
        })
    }

    /// FFA_MSG_SEND_DIRECT_RESP (32- or 64-bit by `args`) from `src` to `dst`; answers a
    /// DIRECT_REQ, including framework messages (e.g. `DirectMsgArgs::VmCreatedAck`). Returns
    /// the next message.
    pub fn direct_resp(
        &mut self,
        src: u16,
        dst: u16,
        args: DirectMsgArgs,
    ) -> Result<Interface, Error> {
        self.call(&Interface::MsgSendDirectResp {
            src_id: src,
            dst_id: dst,
            args,
        })
    }

    /// FFA_ERROR (32-bit) with `code` as the answer to the current message; returns the next
    /// message.
    pub fn error_answer(&mut self, code: FfaError) -> Result<Interface, Error> {
        self.call(&Interface::Error {
            target_info: TargetInfo::default(),
            error_code: code,
            error_arg: 0,
            is_32bit: true,
        })
    }

    /// FFA_MEM_SHARE / LEND / DONATE of the descriptor `tx` (written to the TX buffer here);
    /// returns the global handle.
    pub fn mem_send(&mut self, kind: ShareKind, desc: &MemTransaction) -> Result<u64, Error> {
        let len = desc.pack(self.version, self.conduit.tx())?;
        let len = u32::try_from(len).map_err(|_| DescriptorError::TooSmall)?;
        let iface = match kind {
            ShareKind::Share => Interface::MemShare {
                total_len: len,
                frag_len: len,
                buf: None,
            },
            ShareKind::Lend => Interface::MemLend {
                total_len: len,
                frag_len: len,
                buf: None,
            },
            ShareKind::Donate => Interface::MemDonate {
                total_len: len,
                frag_len: len,
                buf: None,
            },
        };
        let args = self.call_success(&iface)?;
        SuccessArgsMemOp::try_from(args)
            .map(|a| a.handle.0)
            .map_err(|_| Error::Unexpected)
    }

    /// FFA_MEM_RETRIEVE_REQ with the retrieve request `req` (written to the TX buffer here);
    /// returns the retrieve response decoded from the RX buffer, which is then released.
    ///
    /// A fragmented response is reassembled (FFA_RX_RELEASE, then FFA_MEM_FRAG_RX for the next
    /// fragment) up to [`MAX_RETRIEVE_LEN`] bytes. The response is not compared with `req`; the
    /// caller checks it (handle, ranges, permissions). If the response cannot be collected or
    /// decoded after the SPMC accepted the request, the memory is relinquished (best effort,
    /// for the first receiver of `req`) before the error is returned.
    pub fn mem_retrieve(&mut self, req: &MemTransaction) -> Result<MemTransaction, Error> {
        let len = req.pack(self.version, self.conduit.tx())?;
        let len = u32::try_from(len).map_err(|_| DescriptorError::TooSmall)?;
        let answer = self.call(&Interface::MemRetrieveReq {
            total_len: len,
            frag_len: len,
            buf: None,
        })?;
        let result = match answer {
            Interface::MemRetrieveResp {
                total_len,
                frag_len,
            } => self
                .collect_retrieve_response(req.handle, total_len, frag_len)
                .and_then(|bytes| {
                    MemTransaction::unpack(self.version, &bytes).map_err(Error::from)
                }),
            _ => Err(Error::Unexpected),
        };
        if result.is_err()
            && let Some(receiver) = req.receivers.first()
            && let Err(e) = self.mem_relinquish(req.handle, receiver.endpoint)
        {
            log::warn!(
                "relinquishing handle {:#x} after a failed retrieve: {e}",
                req.handle
            );
        }
        result
    }

    /// Copies the retrieve response out of the RX buffer (fetching further fragments) and
    /// releases the buffer after each fragment.
    fn collect_retrieve_response(
        &mut self,
        handle: u64,
        total_len: u32,
        mut frag_len: u32,
    ) -> Result<Vec<u8>, Error> {
        let total = usize::try_from(total_len).map_err(|_| DescriptorError::TooSmall)?;
        let mut whole = Vec::new();
        loop {
            // The RX buffer holds a fragment and is ours: copy it out, then give it back.
            let copied = self.copy_fragment(&mut whole, frag_len, total);
            let released = self.rx_release();
            copied?;
            released?;
            if whole.len() == total {
                return Ok(whole);
            }
            let frag_offset = u32::try_from(whole.len()).map_err(|_| DescriptorError::TooSmall)?;
            match self.call(&Interface::MemFragRx {
                handle: Handle(handle),
                frag_offset,
                endpoint_id: 0,
            })? {
                Interface::MemFragTx {
                    handle: Handle(h),
                    frag_len: n,
                    ..
                } if h == handle => frag_len = n,
                _ => return Err(Error::Unexpected),
            }
        }
    }

    fn copy_fragment(&self, whole: &mut Vec<u8>, frag_len: u32, total: usize) -> Result<(), Error> {
        if total > MAX_RETRIEVE_LEN {
            return Err(DescriptorError::TooSmall.into());
        }
        let n = usize::try_from(frag_len).map_err(|_| DescriptorError::Malformed)?;
        let fits = whole
            .len()
            .checked_add(n)
            .is_some_and(|new_len| n > 0 && new_len <= total);
        if !fits {
            return Err(DescriptorError::Malformed.into());
        }
        let fragment = self
            .conduit
            .rx()
            .get(..n)
            .ok_or(DescriptorError::TooSmall)?;
        whole
            .try_reserve_exact(n)
            .map_err(|_| DescriptorError::NoMemory)?;
        whole.extend_from_slice(fragment);
        Ok(())
    }

    /// FFA_MEM_RELINQUISH of `handle` for `endpoint` (descriptor written to the TX buffer).
    pub fn mem_relinquish(&mut self, handle: u64, endpoint: u16) -> Result<(), Error> {
        MemRelinquishDesc::pack_parts(handle, 0, &[endpoint], self.conduit.tx())?;
        self.call_success(&runtime(Interface::MemRelinquish))?;
        Ok(())
    }

    /// FFA_MEM_RECLAIM of `handle`.
    pub fn mem_reclaim(&mut self, handle: u64) -> Result<(), Error> {
        self.call_success(&Interface::MemReclaim {
            handle: Handle(handle),
            flags: MemReclaimFlags::default(),
        })?;
        Ok(())
    }

    /// FFA_FEATURES for function `fid`: whether the callee implements it.
    pub fn supports(&mut self, fid: FuncId) -> Result<bool, Error> {
        match self.call(&Interface::Features {
            feat_id: arm_ffa::interface_args::Feature::FuncId(fid),
            input_properties: 0,
        }) {
            Ok(Interface::Success { .. }) => Ok(true),
            Ok(_) => Err(Error::Unexpected),
            Err(Error::Ffa(FfaError::NotSupported)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// FFA_NOTIFICATION_BITMAP_CREATE for endpoint `vm_id` with `vcpu_count` vCPUs (a
    /// normal-world endpoint without a hypervisor creates its own).
    pub fn notification_bitmap_create(&mut self, vm_id: u16, vcpu_count: u32) -> Result<(), Error> {
        self.call_success(&Interface::NotificationBitmapCreate {
            vm_id,
            vcpu_cnt: vcpu_count,
        })?;
        Ok(())
    }

    /// FFA_NOTIFICATION_BIND: lets `sender` signal the notifications in `bitmap` to `receiver`.
    pub fn notification_bind(
        &mut self,
        sender: u16,
        receiver: u16,
        bitmap: u64,
    ) -> Result<(), Error> {
        self.call_success(&Interface::NotificationBind {
            sender_id: sender,
            receiver_id: receiver,
            flags: NotificationBindFlags {
                per_vcpu_notification: false,
            },
            bitmap,
        })?;
        Ok(())
    }

    /// FFA_NOTIFICATION_SET: signals the (global) notifications in `bitmap` from `sender` to
    /// `receiver`.
    pub fn notification_set(
        &mut self,
        sender: u16,
        receiver: u16,
        bitmap: u64,
    ) -> Result<(), Error> {
        self.call_success(&Interface::NotificationSet {
            sender_id: sender,
            receiver_id: receiver,
            flags: NotificationSetFlags {
                delay_schedule_receiver: false,
                vcpu_id: None,
            },
            bitmap,
        })?;
        Ok(())
    }

    /// FFA_NOTIFICATION_GET of the global notifications pending for `receiver` from SPs
    /// (bitmap) and clears them.
    pub fn notification_get(&mut self, receiver: u16) -> Result<u64, Error> {
        let flags = NotificationGetFlags {
            sp_bitmap_id: true,
            vm_bitmap_id: false,
            spm_bitmap_id: false,
            hyp_bitmap_id: false,
        };
        let args = self.call_success(&Interface::NotificationGet {
            vcpu_id: 0,
            endpoint_id: receiver,
            flags,
        })?;
        SuccessArgsNotificationGet::try_from((flags, args))
            .map(|n| n.sp_notifications.unwrap_or(0))
            .map_err(|_| Error::Unexpected)
    }

    /// FFA_NOTIFICATION_GET of the framework notifications pending for `receiver` (the SPM's
    /// and the hypervisor's bitmaps) and clears them; returns whether either says "RX buffer
    /// full" (bit 0: a message from a partition, or from a VM, waits in the RX buffer).
    ///
    /// An SPMC refuses FFA_RX_RELEASE while an RX-full notification is pending (Hafnium:
    /// `api_release_mailbox`), so a receiver gets it before it releases the buffer.
    ///
    /// `from_vms`: the receiver is a partition, which gets messages from VMs too (the
    /// hypervisor bitmap). A normal-world endpoint must not ask the SPMC for the hypervisor (or
    /// VM) bitmaps — Hafnium refuses it with INVALID_PARAMETERS (`ffa_notifications_is_get_valid`):
    /// a hypervisor, if there is one, owns them.
    pub fn rx_full_get(&mut self, receiver: u16, from_vms: bool) -> Result<bool, Error> {
        let flags = NotificationGetFlags {
            sp_bitmap_id: false,
            vm_bitmap_id: false,
            spm_bitmap_id: true,
            hyp_bitmap_id: from_vms,
        };
        let args = self.call_success(&Interface::NotificationGet {
            vcpu_id: 0,
            endpoint_id: receiver,
            flags,
        })?;
        let got =
            SuccessArgsNotificationGet::try_from((flags, args)).map_err(|_| Error::Unexpected)?;
        let full = |bits: Option<u32>| bits.unwrap_or(0) & RX_BUFFER_FULL != 0;
        Ok(full(got.spm_notifications) || full(got.hypervisor_notifications))
    }

    /// FFA_MSG_SEND2 of the message already written to the TX buffer.
    pub fn msg_send2(&mut self) -> Result<(), Error> {
        self.call_success(&Interface::MsgSend2 {
            sender_vm_id: 0,
            flags: MsgSend2Flags::default(),
        })?;
        Ok(())
    }

    /// Writes an indirect message from `sender` to `receiver` for service `uuid` into the TX
    /// buffer ([`crate::indirect::write`]) and sends it with FFA_MSG_SEND2. FFA_ERROR(BUSY)
    /// (the receiver still owns its RX buffer) is returned as it is, for the caller to retry.
    pub fn send_indirect(
        &mut self,
        sender: u16,
        receiver: u16,
        uuid: uuid::Uuid,
        payload: &[u8],
    ) -> Result<(), Error> {
        crate::indirect::write(self.conduit.tx(), sender, receiver, uuid, payload)?;
        self.msg_send2()
    }

    /// Copies the indirect message in the RX buffer (header and payload, at most `out.len()`
    /// bytes) into `out`, then releases the buffer; returns the bytes copied. The copy is what
    /// the caller parses ([`crate::indirect::parse`]), so nothing is read twice from a buffer
    /// the SPMC may refill once released.
    pub fn take_indirect(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        let rx = self.conduit.rx();
        let total = crate::indirect::total_size(rx, crate::indirect::HEADER_SIZE, rx.len())
            .ok_or(Error::Indirect(crate::indirect::IndirectError::Size))
            .map(|t| t.min(out.len()));
        if let Ok(n) = total
            && let Some(src) = rx.get(..n)
        {
            // Never refused: `n` is at most `out.len()`.
            let _ = src.write_to_prefix(out);
        }
        let released = self.rx_release();
        let n = total?;
        released?;
        Ok(n)
    }

    /// FFA_RUN of vCPU `vcpu` of `target` (the normal-world scheduler giving a partition CPU
    /// time, e.g. after an indirect message to it); returns the answer the partition's
    /// execution ends with (FFA_MSG_WAIT once it waits again).
    pub fn run(&mut self, target: u16, vcpu: u16) -> Result<Interface, Error> {
        self.call(&Interface::Run {
            target_info: TargetInfo {
                endpoint_id: target,
                vcpu_id: vcpu,
            },
            is_32bit: true,
        })
    }

    /// FFA_CONSOLE_LOG (64-bit) of `bytes`, split into as many calls as needed.
    ///
    /// Each call carries up to 128 bytes (x2..x17). Needs FF-A v1.2 (`NotSupported` below).
    pub fn console_log(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let mut chars = ConsoleLogChars64::default();
            let taken = chars.push(rest);
            rest = rest.get(taken..).unwrap_or_default();
            self.call_success(&Interface::ConsoleLog {
                chars: ConsoleLogChars::Chars64(chars),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
