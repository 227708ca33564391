//! The simulated SPMC: decodes one FF-A call, applies the FF-A rules and answers.
//!
//! Error codes follow Hafnium (the SPMC this project targets) where the spec leaves a choice.

use std::sync::MutexGuard;

use arm_ffa::{
    FfaError, FuncId, Interface, Version, VersionOut,
    interface_args::{
        ConsoleLogChars, DirectMsgArgs, Feature, MemOpBuf, MsgWaitFlags, RxTxAddr, SuccessArgs,
        SuccessArgsFeatures, SuccessArgsIdGet, SuccessArgsSpmIdGet, TargetInfo,
    },
    memory_management::{Handle, MemReclaimFlags, SuccessArgsMemOp},
    notification::SuccessArgsNotificationGet,
    partition_info::{
        PartitionIdType, PartitionInfo, PartitionInfoGetFlags, PartitionProperties,
        SuccessArgsPartitionInfoGet,
    },
};
use uuid::Uuid;

use super::{
    Inner, SpInfo, props,
    state::{Kind, Mailbox, Pending, Regs, ReqKind, SpRun, State, encode, error},
};
use crate::memory::{MemRelinquishDesc, MemTransaction, PAGE_SIZE, ShareKind};

/// Longest console line kept before it is flushed without a newline.
const CONSOLE_LINE_MAX: usize = 1024;

/// Low 32 bits of a register (SMC32 arguments).
fn lo32(x: u64) -> u32 {
    u32::try_from(x & 0xffff_ffff).unwrap_or(0)
}

/// FFA_SUCCESS (32-bit) with `args`.
fn success(args: SuccessArgs) -> Interface {
    Interface::Success {
        target_info: TargetInfo::default(),
        args,
    }
}

/// FFA_SUCCESS without arguments.
fn ok() -> Interface {
    Interface::success32_noargs()
}

/// FFA_ERROR for a refusal, logged with its reason.
fn refuse(id: u16, what: &str, (code, why): (FfaError, &str)) -> Interface {
    log::debug!("sim: {what} from {id:#06x} refused ({code:?}): {why}");
    error(code)
}

/// Maps an `arm_ffa` decode error to the FF-A error answered for it. (Written out rather than
/// `FfaError::from`, which in arm-ffa 0.5.0 recurses forever for the memory, notification and
/// partition-info variants.)
fn decode_error(e: &arm_ffa::Error) -> FfaError {
    match e {
        arm_ffa::Error::UnrecognisedFunctionId(_)
        | arm_ffa::Error::UnrecognisedFeatureId(_)
        | arm_ffa::Error::InvalidVersionForFunctionId(..)
        | arm_ffa::Error::InvalidRegisterCount { .. } => FfaError::NotSupported,
        _ => FfaError::InvalidParameters,
    }
}

/// Handles one call from endpoint `id` with its conduit's TX and RX buffers.
pub(super) fn call(inner: &Inner, id: u16, regs: &Regs, tx: &[u8], rx: &mut [u8]) -> Regs {
    if lo32(regs[0]) == u32::from(FuncId::Version) {
        return version(inner, id, lo32(regs[1]));
    }
    let mut st = inner.lock();
    let Some(ep) = st.endpoints.get_mut(&id) else {
        return encode(&error(FfaError::NotSupported));
    };
    if matches!(&ep.kind, Kind::Sp(sp) if matches!(sp.run, SpRun::Dead)) {
        return encode(&error(FfaError::Aborted));
    }
    ep.version_locked = true;
    // Decoded at v1.2 and gated by the caller's version here: `from_regs` asserts (panics)
    // when it decodes an 18-register call such as FFA_MSG_SEND_DIRECT_REQ_64 below v1.2.
    let version = ep.version;
    if let Ok(f) = FuncId::try_from(lo32(regs[0]))
        && f.minimum_ffa_version() > version
    {
        log::debug!("sim: {f:?} from {id:#06x} needs a newer version than {version}");
        return encode(&error(FfaError::NotSupported));
    }
    let iface = match Interface::from_regs(Version(1, 2), regs) {
        Ok(iface) => iface,
        Err(e) => {
            log::debug!("sim: undecodable call {:#x} from {id:#06x}: {e}", regs[0]);
            return encode(&error(decode_error(&e)));
        }
    };
    let answer = match iface {
        Interface::IdGet => success(SuccessArgsIdGet { id }.into()),
        Interface::SpmIdGet => success(SuccessArgsSpmIdGet { id: super::SPMC_ID }.into()),
        Interface::Features { feat_id, .. } => features(&st, id, feat_id),
        Interface::RxTxMap { addr, page_cnt } => rxtx_map(&mut st, id, addr, page_cnt),
        Interface::RxTxUnmap { id: who } => rxtx_unmap(&mut st, id, who),
        Interface::RxRelease { vm_id } => rx_release(&mut st, id, vm_id),
        Interface::PartitionInfoGet { uuid, flags } => {
            partition_info_get(&mut st, id, uuid, flags, rx)
        }
        Interface::MsgWait { flags, .. } => return msg_wait(inner, st, id, flags),
        Interface::MsgSendDirectReq2 {
            src_id,
            dst_id,
            uuid,
            ..
        } => {
            return vm_direct_req(
                inner,
                st,
                id,
                ReqKind::Req2,
                src_id,
                dst_id,
                Some(uuid),
                &iface,
            );
        }
        Interface::MsgSendDirectReq {
            src_id,
            dst_id,
            args,
        } => {
            let kind = match args {
                DirectMsgArgs::Args32(_) => ReqKind::Req { is_32bit: true },
                DirectMsgArgs::Args64(_) => ReqKind::Req { is_32bit: false },
                _ => {
                    return encode(&refuse(
                        id,
                        "direct request",
                        (
                            FfaError::InvalidParameters,
                            "framework messages come from the hypervisor only",
                        ),
                    ));
                }
            };
            return vm_direct_req(inner, st, id, kind, src_id, dst_id, None, &iface);
        }
        Interface::MsgSendDirectResp2 { .. } | Interface::MsgSendDirectResp { .. } => {
            return direct_resp(inner, st, id, &iface);
        }
        Interface::Error { error_code, .. } => sp_error(&mut st, id, error_code),
        Interface::MemShare {
            total_len,
            frag_len,
            buf,
        } => mem_send(&mut st, id, ShareKind::Share, total_len, frag_len, buf, tx),
        Interface::MemLend {
            total_len,
            frag_len,
            buf,
        } => mem_send(&mut st, id, ShareKind::Lend, total_len, frag_len, buf, tx),
        Interface::MemDonate {
            total_len,
            frag_len,
            buf,
        } => mem_send(&mut st, id, ShareKind::Donate, total_len, frag_len, buf, tx),
        Interface::MemRetrieveReq {
            total_len,
            frag_len,
            buf,
        } => mem_retrieve(&mut st, id, total_len, frag_len, buf, tx, rx),
        Interface::MemRelinquish => mem_relinquish(&mut st, id, tx),
        Interface::MemReclaim { handle, flags } => mem_reclaim(&mut st, id, handle, flags),
        Interface::NotificationBitmapCreate { vm_id, vcpu_cnt } => {
            bitmap_create(&mut st, id, vm_id, vcpu_cnt)
        }
        Interface::NotificationBitmapDestroy { vm_id } => bitmap_destroy(&mut st, id, vm_id),
        Interface::NotificationBind {
            sender_id,
            receiver_id,
            bitmap,
            ..
        } => bind(
            &mut st,
            id,
            sender_id,
            receiver_id,
            lo32(regs[2]),
            bitmap,
            true,
        ),
        Interface::NotificationUnbind {
            sender_id,
            receiver_id,
            bitmap,
        } => bind(
            &mut st,
            id,
            sender_id,
            receiver_id,
            lo32(regs[2]),
            bitmap,
            false,
        ),
        Interface::NotificationSet {
            sender_id,
            receiver_id,
            bitmap,
            ..
        } => {
            let answer =
                notification_set(&mut st, id, sender_id, receiver_id, lo32(regs[2]), bitmap);
            inner.cv.notify_all();
            answer
        }
        Interface::NotificationGet {
            vcpu_id,
            endpoint_id,
            ..
        } => notification_get(&mut st, id, vcpu_id, endpoint_id, lo32(regs[2])),
        Interface::ConsoleLog { chars } => console_log(&mut st, id, &chars),
        other => {
            log::debug!("sim: {other:?} from {id:#06x} is not modelled");
            error(FfaError::NotSupported)
        }
    };
    encode(&answer)
}

/// FFA_VERSION: answers the bare version (or NOT_SUPPORTED) in w0, as Hafnium: the caller's
/// version must be compatible with ours (1.x, x <= 2); v1.0 is refused too because the sim
/// has no v1.0 descriptor layouts; once the caller made any other call, only the version it
/// already has is accepted.
fn version(inner: &Inner, id: u16, requested: u32) -> Regs {
    let mut out = [0; 18];
    out[0] = u64::from(u32::from(VersionOut::NotSupported));
    let Ok(v) = Version::try_from(requested) else {
        return out;
    };
    if v.0 != 1 || v.1 > crate::FFA_VERSION.1 || v.1 < 1 {
        log::debug!("sim: FFA_VERSION {v} from {id:#06x} not supported");
        return out;
    }
    let mut st = inner.lock();
    let Some(ep) = st.endpoints.get_mut(&id) else {
        return out;
    };
    if ep.version_locked && ep.version != v {
        log::debug!(
            "sim: FFA_VERSION {v} from {id:#06x} after other calls at {}",
            ep.version
        );
        return out;
    }
    ep.version = v;
    out[0] = u64::from(u32::from(VersionOut::Version(crate::FFA_VERSION)));
    out
}

/// FFA_FEATURES: success for the ABIs this caller may use, NOT_SUPPORTED otherwise (also
/// for every feature id: the sim has no interrupts).
fn features(st: &State, id: u16, feat: Feature) -> Interface {
    let is_sp = st.is_sp(id);
    let Feature::FuncId(f) = feat else {
        return error(FfaError::NotSupported);
    };
    let common = matches!(
        f,
        FuncId::Version
            | FuncId::Features
            | FuncId::IdGet
            | FuncId::SpmIdGet
            | FuncId::RxTxMap32
            | FuncId::RxTxMap64
            | FuncId::RxTxUnmap
            | FuncId::RxRelease
            | FuncId::PartitionInfoGet
            | FuncId::ConsoleLog32
            | FuncId::ConsoleLog64
            | FuncId::MemShare32
            | FuncId::MemShare64
            | FuncId::MemLend32
            | FuncId::MemLend64
            | FuncId::MemRetrieveReq32
            | FuncId::MemRetrieveReq64
            | FuncId::MemRelinquish
            | FuncId::MemReclaim
            | FuncId::NotificationBind
            | FuncId::NotificationUnbind
            | FuncId::NotificationSet
            | FuncId::NotificationGet
    );
    let vm_only = matches!(
        f,
        FuncId::MsgSendDirectReq32
            | FuncId::MsgSendDirectReq64
            | FuncId::MsgSendDirectReq64_2
            | FuncId::NotificationBitmapCreate
            | FuncId::NotificationBitmapDestroy
    );
    let sp_only = matches!(
        f,
        FuncId::MsgWait32
            | FuncId::MsgSendDirectResp32
            | FuncId::MsgSendDirectResp64
            | FuncId::MsgSendDirectResp64_2
            | FuncId::Error32
    );
    if common || (vm_only && !is_sp) || (sp_only && is_sp) {
        success(SuccessArgsFeatures::default().into())
    } else {
        error(FfaError::NotSupported)
    }
}

/// FFA_RXTX_MAP: one 4 KiB page each (the sim's buffers are 4 KiB); a VM's buffers must be
/// pages it owns exclusively, and stay reserved until unmapped.
fn rxtx_map(st: &mut State, id: u16, addr: RxTxAddr, page_cnt: u32) -> Interface {
    let (tx, rx) = match addr {
        RxTxAddr::Addr32 { rx, tx } => (u64::from(tx), u64::from(rx)),
        RxTxAddr::Addr64 { rx, tx } => (tx, rx),
    };
    let is_vm = !st.is_sp(id);
    let State { endpoints, mem, .. } = st;
    let Some(ep) = endpoints.get_mut(&id) else {
        return error(FfaError::NotSupported);
    };
    let inval = FfaError::InvalidParameters;
    if ep.mailbox.is_some() {
        return refuse(
            id,
            "FFA_RXTX_MAP",
            (FfaError::Denied, "buffers already mapped"),
        );
    }
    if page_cnt != 1 {
        return refuse(
            id,
            "FFA_RXTX_MAP",
            (inval, "the sim supports 4 KiB buffers only"),
        );
    }
    if tx == rx
        || tx == 0
        || rx == 0
        || !tx.is_multiple_of(PAGE_SIZE)
        || !rx.is_multiple_of(PAGE_SIZE)
    {
        return refuse(
            id,
            "FFA_RXTX_MAP",
            (inval, "buffer addresses zero, equal or misaligned"),
        );
    }
    if is_vm {
        if !mem.reserve_mailbox(id, tx) {
            return refuse(
                id,
                "FFA_RXTX_MAP",
                (FfaError::Denied, "TX page not exclusively owned"),
            );
        }
        if !mem.reserve_mailbox(id, rx) {
            mem.release_mailbox(tx);
            return refuse(
                id,
                "FFA_RXTX_MAP",
                (FfaError::Denied, "RX page not exclusively owned"),
            );
        }
    }
    ep.mailbox = Some(Mailbox {
        tx,
        rx,
        reserved: is_vm,
    });
    ep.rx_full = false;
    ok()
}

/// FFA_RXTX_UNMAP (the id field is for the hypervisor: 0 or the caller).
fn rxtx_unmap(st: &mut State, id: u16, who: u16) -> Interface {
    let State { endpoints, mem, .. } = st;
    let Some(ep) = endpoints.get_mut(&id) else {
        return error(FfaError::NotSupported);
    };
    if who != 0 && who != id {
        return refuse(
            id,
            "FFA_RXTX_UNMAP",
            (FfaError::InvalidParameters, "id of another endpoint"),
        );
    }
    let Some(mailbox) = ep.mailbox.take() else {
        return refuse(
            id,
            "FFA_RXTX_UNMAP",
            (FfaError::InvalidParameters, "no buffers mapped"),
        );
    };
    if mailbox.reserved {
        mem.release_mailbox(mailbox.tx);
        mem.release_mailbox(mailbox.rx);
    }
    ep.rx_full = false;
    ok()
}

/// FFA_RX_RELEASE: gives the RX buffer back to the producer.
fn rx_release(st: &mut State, id: u16, vm_id: u16) -> Interface {
    let Some(ep) = st.endpoints.get_mut(&id) else {
        return error(FfaError::NotSupported);
    };
    if vm_id != 0 && vm_id != id {
        return refuse(
            id,
            "FFA_RX_RELEASE",
            (FfaError::InvalidParameters, "id of another endpoint"),
        );
    }
    if ep.mailbox.is_none() || !ep.rx_full {
        return refuse(
            id,
            "FFA_RX_RELEASE",
            (FfaError::Denied, "caller does not own its RX buffer"),
        );
    }
    ep.rx_full = false;
    ok()
}

/// The partition-info descriptor of partition `info` for `uuid`.
fn partition_info(info: &SpInfo, uuid: Uuid) -> PartitionInfo {
    let p = info.properties;
    let bit = |b: u32| p & b != 0;
    PartitionInfo {
        uuid,
        partition_id: info.id,
        partition_id_type: PartitionIdType::PeEndpoint {
            execution_ctx_count: info.exec_ctx_count,
        },
        props: PartitionProperties {
            support_direct_req_rec: bit(props::DIRECT_REQ_RECV),
            support_direct_req_send: bit(props::DIRECT_REQ_SEND),
            support_direct_req2_rec: Some(bit(props::DIRECT_REQ2_RECV)),
            support_direct_req2_send: Some(bit(props::DIRECT_REQ2_SEND)),
            support_indirect_msg: bit(props::INDIRECT_MSG),
            support_notif_rec: bit(props::NOTIFICATION_RECV),
            subscribe_vm_created: bit(props::VM_CREATED),
            subscribe_vm_destroyed: bit(props::VM_DESTROYED),
            is_aarch64: bit(props::AARCH64),
        },
    }
}

/// FFA_PARTITION_INFO_GET: with the nil UUID one descriptor per (partition, UUID) with the
/// UUID filled in (only the first UUID of each partition for a v1.1 caller); with a UUID one
/// descriptor per partition serving it, UUID field zero (as Hafnium).
fn partition_info_get(
    st: &mut State,
    id: u16,
    uuid: Uuid,
    flags: PartitionInfoGetFlags,
    rx: &mut [u8],
) -> Interface {
    let Some(version) = st.endpoints.get(&id).map(|e| e.version) else {
        return error(FfaError::NotSupported);
    };
    let mut list = Vec::new();
    for ep in st.endpoints.values() {
        let Kind::Sp(sp) = &ep.kind else { continue };
        for u in &sp.info.uuids {
            if uuid.is_nil() || *u == uuid {
                list.push(partition_info(&sp.info, *u));
                if version < Version(1, 2) {
                    break;
                }
            }
        }
    }
    if list.is_empty() {
        return refuse(
            id,
            "FFA_PARTITION_INFO_GET",
            (FfaError::InvalidParameters, "no partition serves the UUID"),
        );
    }
    let count = u32::try_from(list.len()).unwrap_or(u32::MAX);
    if flags.count_only {
        return success(SuccessArgsPartitionInfoGet { count, size: None }.into());
    }
    let Some(ep) = st.endpoints.get_mut(&id) else {
        return error(FfaError::NotSupported);
    };
    if ep.mailbox.is_none() || ep.rx_full {
        return refuse(
            id,
            "FFA_PARTITION_INFO_GET",
            (FfaError::Busy, "RX buffer not mapped or not released"),
        );
    }
    if list.len().saturating_mul(PartitionInfo::DESC_SIZE) > rx.len() {
        return refuse(
            id,
            "FFA_PARTITION_INFO_GET",
            (FfaError::NoMemory, "descriptors do not fit the RX buffer"),
        );
    }
    rx.fill(0);
    PartitionInfo::pack(version, &list, rx, uuid.is_nil());
    ep.rx_full = true;
    let size = u32::try_from(PartitionInfo::DESC_SIZE).ok();
    success(SuccessArgsPartitionInfoGet { count, size }.into())
}

/// FFA_MSG_WAIT from a partition: ends its boot, releases its RX buffer (unless asked to
/// retain it) and blocks until the next direct request. Not allowed while a request is
/// pending (DENIED), nor for VMs.
fn msg_wait(inner: &Inner, mut st: MutexGuard<'_, State>, id: u16, flags: MsgWaitFlags) -> Regs {
    let Some(ep) = st.endpoints.get_mut(&id) else {
        return encode(&error(FfaError::NotSupported));
    };
    let Kind::Sp(sp) = &mut ep.kind else {
        return encode(&refuse(
            id,
            "FFA_MSG_WAIT",
            (
                FfaError::NotSupported,
                "VMs do not receive direct requests here",
            ),
        ));
    };
    match sp.run {
        SpRun::Busy(_) => {
            return encode(&refuse(
                id,
                "FFA_MSG_WAIT",
                (FfaError::Denied, "a direct request must be answered first"),
            ));
        }
        SpRun::Dead => return encode(&error(FfaError::Aborted)),
        SpRun::Init => {
            sp.run = SpRun::Waiting;
            inner.cv.notify_all();
        }
        SpRun::Waiting => {}
    }
    if !flags.retain_rx_buffer {
        ep.rx_full = false;
    }
    wait_message(inner, st, id)
}

/// Blocks partition `id` until a message is delivered to it (or the world shuts down).
fn wait_message(inner: &Inner, mut st: MutexGuard<'_, State>, id: u16) -> Regs {
    loop {
        let shutdown = st.shutdown;
        let Some(sp) = st.sp_mut(id) else {
            return encode(&error(FfaError::Aborted));
        };
        if let Some(msg) = sp.inbox.take() {
            return msg;
        }
        if shutdown || matches!(sp.run, SpRun::Dead) {
            return encode(&error(FfaError::Aborted));
        }
        st = inner.wait(st);
    }
}

/// FFA_MSG_SEND_DIRECT_REQ(2) from a VM to a partition. Blocks until the partition answers.
#[allow(clippy::too_many_arguments)]
fn vm_direct_req(
    inner: &Inner,
    st: MutexGuard<'_, State>,
    id: u16,
    kind: ReqKind,
    src: u16,
    dst: u16,
    uuid: Option<Uuid>,
    iface: &Interface,
) -> Regs {
    let inval = FfaError::InvalidParameters;
    if st.is_sp(id) {
        return encode(&refuse(
            id,
            "direct request",
            (
                FfaError::NotSupported,
                "requests from partitions are not modelled",
            ),
        ));
    }
    if src != id || src == dst {
        return encode(&refuse(
            id,
            "direct request",
            (inval, "source is not the caller, or targets itself"),
        ));
    }
    deliver_request(inner, st, kind, src, dst, uuid, encode(iface))
}

/// Delivers a direct request (or framework message) from `src` to partition `dst` and waits
/// for its answer.
pub(super) fn deliver_request(
    inner: &Inner,
    mut st: MutexGuard<'_, State>,
    kind: ReqKind,
    src: u16,
    dst: u16,
    uuid: Option<Uuid>,
    msg: Regs,
) -> Regs {
    if st.shutdown {
        return encode(&error(FfaError::Aborted));
    }
    let token = st.next_token;
    let Some(ep) = st.endpoints.get_mut(&dst) else {
        return encode(&refuse(
            src,
            "direct request",
            (FfaError::InvalidParameters, "no such partition"),
        ));
    };
    let receiver_version = ep.version;
    let Kind::Sp(sp) = &mut ep.kind else {
        return encode(&refuse(
            src,
            "direct request",
            (FfaError::InvalidParameters, "target is not a partition"),
        ));
    };
    if let Some(uuid) = uuid
        && !uuid.is_nil()
        && !sp.info.uuids.contains(&uuid)
    {
        return encode(&refuse(
            src,
            "direct request",
            (
                FfaError::InvalidParameters,
                "UUID not served by the partition",
            ),
        ));
    }
    let p = sp.info.properties;
    let supported = match kind {
        ReqKind::Req2 => p & props::DIRECT_REQ2_RECV != 0 && receiver_version >= Version(1, 2),
        ReqKind::Req { .. } => p & props::DIRECT_REQ_RECV != 0,
        ReqKind::VmCreated => p & props::VM_CREATED != 0,
        ReqKind::VmDestroyed => p & props::VM_DESTROYED != 0,
    };
    if !supported {
        return encode(&refuse(
            src,
            "direct request",
            (
                FfaError::Denied,
                "partition does not receive this kind of message",
            ),
        ));
    }
    match sp.run {
        SpRun::Dead => return encode(&error(FfaError::Aborted)),
        SpRun::Init | SpRun::Busy(_) => {
            return encode(&refuse(
                src,
                "direct request",
                (FfaError::Busy, "partition is busy"),
            ));
        }
        SpRun::Waiting => {}
    }
    sp.run = SpRun::Busy(Pending {
        token,
        caller: src,
        kind,
    });
    sp.inbox = Some(msg);
    st.next_token += 1;
    inner.cv.notify_all();
    loop {
        if let Some(answer) = st.replies.remove(&token) {
            return answer;
        }
        st = inner.wait(st);
    }
}

/// FFA_MSG_SEND_DIRECT_RESP(2) from a partition: must answer its pending request with the
/// matching ABI (else DENIED) and swapped ids (else INVALID_PARAMETERS); then blocks for the
/// next request.
fn direct_resp(inner: &Inner, mut st: MutexGuard<'_, State>, id: u16, iface: &Interface) -> Regs {
    let (src, dst, kind) = match *iface {
        Interface::MsgSendDirectResp2 { src_id, dst_id, .. } => {
            (src_id, dst_id, Some(ReqKind::Req2))
        }
        Interface::MsgSendDirectResp {
            src_id,
            dst_id,
            args,
        } => (
            src_id,
            dst_id,
            match args {
                DirectMsgArgs::Args32(_) => Some(ReqKind::Req { is_32bit: true }),
                DirectMsgArgs::Args64(_) => Some(ReqKind::Req { is_32bit: false }),
                DirectMsgArgs::VmCreatedAck { .. } => Some(ReqKind::VmCreated),
                DirectMsgArgs::VmDestructedAck { .. } => Some(ReqKind::VmDestroyed),
                _ => None,
            },
        ),
        _ => (0, 0, None),
    };
    let Some(sp) = st.sp_mut(id) else {
        return encode(&refuse(
            id,
            "direct response",
            (
                FfaError::NotSupported,
                "VMs do not answer direct requests here",
            ),
        ));
    };
    let pending = match &sp.run {
        SpRun::Busy(p) => p,
        SpRun::Dead => return encode(&error(FfaError::Aborted)),
        SpRun::Init | SpRun::Waiting => {
            return encode(&refuse(
                id,
                "direct response",
                (FfaError::Denied, "no direct request pending"),
            ));
        }
    };
    if kind != Some(pending.kind) {
        return encode(&refuse(
            id,
            "direct response",
            (FfaError::Denied, "response ABI does not match the request"),
        ));
    }
    if src != id || dst != pending.caller {
        return encode(&refuse(
            id,
            "direct response",
            (
                FfaError::InvalidParameters,
                "ids are not the request's, swapped",
            ),
        ));
    }
    let token = pending.token;
    sp.run = SpRun::Waiting;
    st.replies.insert(token, encode(iface));
    inner.cv.notify_all();
    wait_message(inner, st, id)
}

/// FFA_ERROR from a partition: FFA_ERROR(ABORTED) during boot aborts it (FF-A v1.2 §8.5);
/// anything else is NOT_SUPPORTED (as Hafnium: a request must be answered with a direct
/// response).
fn sp_error(st: &mut State, id: u16, code: FfaError) -> Interface {
    let booting = st
        .sp_mut(id)
        .is_some_and(|sp| matches!(sp.run, SpRun::Init));
    if booting && code == FfaError::Aborted {
        log::warn!("sim: partition {id:#06x} aborted during boot");
        st.abort_sp(id);
        return error(FfaError::Aborted);
    }
    refuse(
        id,
        "FFA_ERROR",
        (
            FfaError::NotSupported,
            "FFA_ERROR is only an abort during boot",
        ),
    )
}

/// The descriptor bytes a memory ABI names: in the TX buffer, not fragmented.
fn descriptor<'a>(
    st: &State,
    id: u16,
    total_len: u32,
    frag_len: u32,
    buf: Option<MemOpBuf>,
    tx: &'a [u8],
) -> Result<&'a [u8], (FfaError, &'static str)> {
    if buf.is_some() {
        return Err((FfaError::NotSupported, "descriptor outside the TX buffer"));
    }
    if total_len != frag_len {
        return Err((
            FfaError::NotSupported,
            "fragmented descriptors are not modelled",
        ));
    }
    if st.endpoints.get(&id).is_none_or(|e| e.mailbox.is_none()) {
        return Err((FfaError::InvalidParameters, "TX buffer not mapped"));
    }
    let len = usize::try_from(total_len).unwrap_or(usize::MAX);
    match tx.get(..len) {
        Some(bytes) if len > 0 => Ok(bytes),
        _ => Err((
            FfaError::InvalidParameters,
            "descriptor length zero or larger than TX",
        )),
    }
}

/// FFA_MEM_SHARE / LEND / DONATE.
fn mem_send(
    st: &mut State,
    id: u16,
    kind: ShareKind,
    total_len: u32,
    frag_len: u32,
    buf: Option<MemOpBuf>,
    tx: &[u8],
) -> Interface {
    let what = "memory send";
    let bytes = match descriptor(st, id, total_len, frag_len, buf, tx) {
        Ok(b) => b,
        Err(r) => return refuse(id, what, r),
    };
    let Some(version) = st.endpoints.get(&id).map(|e| e.version) else {
        return error(FfaError::NotSupported);
    };
    let desc = match MemTransaction::unpack(version, bytes) {
        Ok(d) => d,
        Err(e) => {
            log::debug!("sim: {what} from {id:#06x}: {e}");
            return error(FfaError::InvalidParameters);
        }
    };
    let State { endpoints, mem, .. } = st;
    let is_sp = |e: u16| {
        endpoints
            .get(&e)
            .is_some_and(|ep| matches!(ep.kind, Kind::Sp(_)))
    };
    match mem.send(id, kind, &desc, &is_sp) {
        Ok(handle) => success(
            SuccessArgsMemOp {
                handle: Handle(handle),
            }
            .into(),
        ),
        Err(r) => refuse(id, what, r),
    }
}

/// FFA_MEM_RETRIEVE_REQ: the response goes to the caller's RX buffer in its version's
/// layout, and the caller then owns its RX buffer.
fn mem_retrieve(
    st: &mut State,
    id: u16,
    total_len: u32,
    frag_len: u32,
    buf: Option<MemOpBuf>,
    tx: &[u8],
    rx: &mut [u8],
) -> Interface {
    let what = "FFA_MEM_RETRIEVE_REQ";
    let bytes = match descriptor(st, id, total_len, frag_len, buf, tx) {
        Ok(b) => b,
        Err(r) => return refuse(id, what, r),
    };
    let Some(ep) = st.endpoints.get(&id) else {
        return error(FfaError::NotSupported);
    };
    let version = ep.version;
    if ep.rx_full {
        return refuse(id, what, (FfaError::Busy, "RX buffer not released"));
    }
    let req = match MemTransaction::unpack(version, bytes) {
        Ok(d) => d,
        Err(e) => {
            log::debug!("sim: {what} from {id:#06x}: {e}");
            return error(FfaError::InvalidParameters);
        }
    };
    let resp = match st.mem.retrieve(id, &req) {
        Ok(resp) => resp,
        Err(r) => return refuse(id, what, r),
    };
    rx.fill(0);
    let len = match resp.pack(version, rx) {
        Ok(len) => len,
        Err(e) => {
            log::debug!("sim: {what} from {id:#06x}: response does not fit: {e}");
            st.mem.undo_retrieve(id, req.handle);
            return error(FfaError::NoMemory);
        }
    };
    if let Some(ep) = st.endpoints.get_mut(&id) {
        ep.rx_full = true;
    }
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    Interface::MemRetrieveResp {
        total_len: len,
        frag_len: len,
    }
}

/// FFA_MEM_RELINQUISH (relinquish descriptor in the TX buffer).
fn mem_relinquish(st: &mut State, id: u16, tx: &[u8]) -> Interface {
    let what = "FFA_MEM_RELINQUISH";
    if st.endpoints.get(&id).is_none_or(|e| e.mailbox.is_none()) {
        return refuse(
            id,
            what,
            (FfaError::InvalidParameters, "TX buffer not mapped"),
        );
    }
    let Ok(desc) = MemRelinquishDesc::unpack(tx) else {
        return refuse(
            id,
            what,
            (
                FfaError::InvalidParameters,
                "malformed relinquish descriptor",
            ),
        );
    };
    match st
        .mem
        .relinquish(id, desc.handle, desc.flags, &desc.endpoints)
    {
        Ok(()) => ok(),
        Err(r) => refuse(id, what, r),
    }
}

/// FFA_MEM_RECLAIM.
fn mem_reclaim(st: &mut State, id: u16, handle: Handle, flags: MemReclaimFlags) -> Interface {
    match st.mem.reclaim(id, handle.0, flags.zero_memory) {
        Ok(()) => ok(),
        Err(r) => refuse(id, "FFA_MEM_RECLAIM", r),
    }
}

/// FFA_NOTIFICATION_BITMAP_CREATE: a VM creates its own bitmap (there is no hypervisor in
/// the sim, so the VM plays that role for itself).
fn bitmap_create(st: &mut State, id: u16, vm_id: u16, vcpu_cnt: u32) -> Interface {
    let what = "FFA_NOTIFICATION_BITMAP_CREATE";
    if st.is_sp(id) || vm_id != id {
        return refuse(
            id,
            what,
            (FfaError::InvalidParameters, "only a VM, for itself"),
        );
    }
    let Some(ep) = st.endpoints.get_mut(&id) else {
        return error(FfaError::NotSupported);
    };
    if ep.notif.enabled {
        return refuse(id, what, (FfaError::Denied, "bitmap already created"));
    }
    ep.notif.enabled = true;
    ep.notif.vcpu_count = vcpu_cnt.max(1);
    ok()
}

/// FFA_NOTIFICATION_BITMAP_DESTROY.
fn bitmap_destroy(st: &mut State, id: u16, vm_id: u16) -> Interface {
    let what = "FFA_NOTIFICATION_BITMAP_DESTROY";
    if st.is_sp(id) || vm_id != id {
        return refuse(
            id,
            what,
            (FfaError::InvalidParameters, "only a VM, for itself"),
        );
    }
    let Some(ep) = st.endpoints.get_mut(&id) else {
        return error(FfaError::NotSupported);
    };
    if !ep.notif.enabled {
        return refuse(id, what, (FfaError::Denied, "no bitmap"));
    }
    if ep.notif.from_sp.pending | ep.notif.from_vm.pending != 0 {
        return refuse(id, what, (FfaError::Denied, "notifications pending"));
    }
    ep.notif = super::state::Notifications::default();
    ok()
}

/// FFA_NOTIFICATION_BIND / UNBIND: called by the receiver.
fn bind(
    st: &mut State,
    id: u16,
    sender: u16,
    receiver: u16,
    flags: u32,
    bitmap: u64,
    is_bind: bool,
) -> Interface {
    let what = if is_bind {
        "FFA_NOTIFICATION_BIND"
    } else {
        "FFA_NOTIFICATION_UNBIND"
    };
    let inval = FfaError::InvalidParameters;
    if flags != 0 {
        return refuse(
            id,
            what,
            (inval, "per-vCPU notifications are not supported"),
        );
    }
    if receiver != id || sender == receiver {
        return refuse(
            id,
            what,
            (
                inval,
                "receiver must be the caller, sender another endpoint",
            ),
        );
    }
    if bitmap == 0 {
        return refuse(id, what, (inval, "empty bitmap"));
    }
    if is_bind && !st.endpoints.contains_key(&sender) {
        return refuse(id, what, (inval, "sender does not exist"));
    }
    let sender_is_sp = st.is_sp(sender);
    let Some(ep) = st.endpoints.get_mut(&id) else {
        return error(FfaError::NotSupported);
    };
    if !ep.notif.enabled {
        return refuse(
            id,
            what,
            (
                FfaError::NotSupported,
                "notifications not enabled for the receiver",
            ),
        );
    }
    let map = if sender_is_sp {
        &mut ep.notif.from_sp
    } else {
        &mut ep.notif.from_vm
    };
    let bits = || (0..64).filter(move |b| bitmap & (1u64 << b) != 0);
    for b in bits() {
        let bound = map.bound.get(b).copied().flatten();
        let allowed = if is_bind {
            bound.is_none_or(|s| s == sender)
        } else {
            bound == Some(sender)
        };
        if !allowed {
            return refuse(
                id,
                what,
                (FfaError::Denied, "notification bound to another sender"),
            );
        }
    }
    if map.pending & bitmap != 0 {
        return refuse(id, what, (FfaError::Denied, "notifications pending"));
    }
    for b in bits() {
        if let Some(slot) = map.bound.get_mut(b) {
            *slot = is_bind.then_some(sender);
        }
    }
    ok()
}

/// FFA_NOTIFICATION_SET: called by the sender; the bits must be bound to it.
fn notification_set(
    st: &mut State,
    id: u16,
    sender: u16,
    receiver: u16,
    flags: u32,
    bitmap: u64,
) -> Interface {
    let what = "FFA_NOTIFICATION_SET";
    let inval = FfaError::InvalidParameters;
    const PER_VCPU: u32 = 1;
    const DELAY_SRI: u32 = 1 << 1;
    if flags & PER_VCPU != 0
        || flags >> 16 != 0
        || flags & !(PER_VCPU | DELAY_SRI | 0xffff_0000) != 0
    {
        return refuse(id, what, (inval, "per-vCPU or reserved flags"));
    }
    if sender != id {
        return refuse(id, what, (inval, "sender must be the caller"));
    }
    if bitmap == 0 {
        return refuse(id, what, (inval, "empty bitmap"));
    }
    let sender_is_sp = st.is_sp(id);
    if !sender_is_sp && flags & DELAY_SRI != 0 {
        return refuse(id, what, (inval, "delay-SRI flag from the normal world"));
    }
    let Some(ep) = st.endpoints.get_mut(&receiver) else {
        return refuse(id, what, (inval, "receiver does not exist"));
    };
    if !ep.notif.enabled {
        return refuse(
            id,
            what,
            (
                FfaError::Denied,
                "notifications not enabled for the receiver",
            ),
        );
    }
    let map = if sender_is_sp {
        &mut ep.notif.from_sp
    } else {
        &mut ep.notif.from_vm
    };
    let bound = (0..64)
        .filter(|b| bitmap & (1u64 << b) != 0)
        .all(|b| map.bound.get(b).copied().flatten() == Some(sender));
    if !bound {
        return refuse(
            id,
            what,
            (FfaError::Denied, "notification not bound to the sender"),
        );
    }
    map.pending |= bitmap;
    ok()
}

/// FFA_NOTIFICATION_GET: the receiver reads and clears its pending global notifications.
fn notification_get(st: &mut State, id: u16, vcpu_id: u16, endpoint: u16, flags: u32) -> Interface {
    let what = "FFA_NOTIFICATION_GET";
    let inval = FfaError::InvalidParameters;
    if flags & !0xf != 0 {
        return refuse(id, what, (inval, "reserved flags"));
    }
    if endpoint != id {
        return refuse(id, what, (inval, "receiver must be the caller"));
    }
    let Some(ep) = st.endpoints.get_mut(&id) else {
        return error(FfaError::NotSupported);
    };
    if !ep.notif.enabled {
        return refuse(id, what, (FfaError::Denied, "notifications not enabled"));
    }
    if u32::from(vcpu_id) >= ep.notif.vcpu_count {
        return refuse(id, what, (inval, "vCPU id out of range"));
    }
    let take = |want: bool, pending: &mut u64| want.then(|| core::mem::take(pending));
    let args = SuccessArgsNotificationGet {
        sp_notifications: take(flags & 1 != 0, &mut ep.notif.from_sp.pending),
        vm_notifications: take(flags & 2 != 0, &mut ep.notif.from_vm.pending),
        spm_notifications: (flags & 4 != 0).then_some(0),
        hypervisor_notifications: (flags & 8 != 0).then_some(0),
    };
    success(args.into())
}

/// FFA_CONSOLE_LOG: characters accumulate per endpoint; a newline or NUL ends a line.
fn console_log(st: &mut State, id: u16, chars: &ConsoleLogChars) -> Interface {
    let bytes = match chars {
        ConsoleLogChars::Chars32(c) => c.bytes(),
        ConsoleLogChars::Chars64(c) => c.bytes(),
    };
    if bytes.is_empty() {
        return refuse(
            id,
            "FFA_CONSOLE_LOG",
            (FfaError::InvalidParameters, "no characters"),
        );
    }
    let State {
        endpoints, console, ..
    } = st;
    let Some(ep) = endpoints.get_mut(&id) else {
        return error(FfaError::NotSupported);
    };
    for &b in bytes {
        if b != b'\n' && b != 0 {
            ep.console_buf.push(b);
        }
        if b == b'\n' || b == 0 || ep.console_buf.len() >= CONSOLE_LINE_MAX {
            let line = String::from_utf8_lossy(&core::mem::take(&mut ep.console_buf)).into_owned();
            log::info!("[{id:#06x}] {line}");
            console.push((id, line));
        }
    }
    ok()
}
