//! Setup and discovery (FF-A v1.2 (DEN0077A), "Setup and discovery interfaces"):
//! FFA_VERSION, FFA_FEATURES, FFA_ID_GET, FFA_SPM_ID_GET, FFA_RXTX_MAP, FFA_RXTX_UNMAP,
//! FFA_RX_RELEASE (RX buffer ownership), FFA_PARTITION_INFO_GET, and FFA_CONSOLE_LOG.
//!
//! Error codes follow Hafnium where the spec leaves a choice.

use arm_ffa::{
    FfaError, FuncId, Interface, Version, VersionOut,
    interface_args::{
        ConsoleLogChars, Feature, RxTxAddr, SuccessArgsFeatures, SuccessArgsIdGet,
        SuccessArgsSpmIdGet,
    },
    partition_info::{
        PartitionIdType, PartitionInfo, PartitionInfoGetFlags, PartitionProperties,
        SuccessArgsPartitionInfoGet,
    },
};
use uuid::Uuid;

use super::{
    props,
    reply::{Regs, error, ok, refuse, success},
    state::{Inner, Kind, Mailbox, State},
    types::{SPMC_ID, SpInfo},
};
use crate::memory::PAGE_SIZE;

/// Longest console line kept before it is flushed without a newline: Hafnium's per-vCPU log
/// buffer is 256 bytes with the last kept for the terminator, and it prints the line as soon as
/// 255 characters are in it (`api_ffa_console_log`, `LOG_BUFFER_SIZE` in `inc/hf/vcpu.h`), so
/// a longer line comes out as two.
pub(super) const CONSOLE_LINE_MAX: usize = 255;

/// FFA_ID_GET: the caller's own endpoint id.
pub(super) fn id_get(id: u16) -> Interface {
    success(SuccessArgsIdGet { id }.into())
}

/// FFA_SPM_ID_GET: the SPMC's endpoint id.
pub(super) fn spm_id_get() -> Interface {
    success(SuccessArgsSpmIdGet { id: SPMC_ID }.into())
}

/// FFA_VERSION: answers the bare version (or NOT_SUPPORTED) in w0, as Hafnium: the caller's
/// version must be compatible with ours (1.x, x <= 2); v1.0 is refused too because the sim
/// has no v1.0 descriptor layouts; once the caller made any other call, only the version it
/// already has is accepted.
pub(super) fn version(inner: &Inner, id: u16, requested: u32) -> Regs {
    let mut out = [0; 18];
    out[0] = u64::from(u32::from(VersionOut::NotSupported));
    let Ok(v) = Version::try_from(requested) else {
        return out;
    };
    if v.0 != 1 || v.1 > crate::ids::FFA_VERSION.1 || v.1 < 1 {
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
    out[0] = u64::from(u32::from(VersionOut::Version(crate::ids::FFA_VERSION)));
    out
}

/// FFA_FEATURES: success for the ABIs this caller may use, NOT_SUPPORTED otherwise (also
/// for every feature id: the sim has no interrupts).
pub(super) fn features(st: &State, id: u16, feat: Feature) -> Interface {
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
            | FuncId::MsgSend2
    );
    let vm_only = matches!(
        f,
        FuncId::MsgSendDirectReq32
            | FuncId::MsgSendDirectReq64
            | FuncId::MsgSendDirectReq64_2
            | FuncId::NotificationBitmapCreate
            | FuncId::NotificationBitmapDestroy
            | FuncId::Run32
    );
    let sp_only = matches!(
        f,
        FuncId::MsgWait32
            | FuncId::MsgSendDirectResp32
            | FuncId::MsgSendDirectResp64
            | FuncId::MsgSendDirectResp64_2
            | FuncId::Error32
            | FuncId::SecondaryEpRegister32
            | FuncId::SecondaryEpRegister64
    );
    if common || (vm_only && !is_sp) || (sp_only && is_sp) {
        success(SuccessArgsFeatures::default().into())
    } else {
        error(FfaError::NotSupported)
    }
}

/// FFA_RXTX_MAP: one 4 KiB page each (the sim's buffers are 4 KiB); a VM's buffers must be
/// pages it owns exclusively, and stay reserved until unmapped.
pub(super) fn rxtx_map(st: &mut State, id: u16, addr: RxTxAddr, page_cnt: u32) -> Interface {
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
pub(super) fn rxtx_unmap(st: &mut State, id: u16, who: u16) -> Interface {
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
pub(super) fn rx_release(st: &mut State, id: u16, vm_id: u16) -> Interface {
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
    if ep.framework != 0 {
        return refuse(
            id,
            "FFA_RX_RELEASE",
            (
                FfaError::Denied,
                "an RX-full notification is pending: get it first",
            ),
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
pub(super) fn partition_info_get(
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

/// FFA_CONSOLE_LOG: characters accumulate per endpoint; a newline or NUL ends a line.
pub(super) fn console_log(st: &mut State, id: u16, chars: &ConsoleLogChars) -> Interface {
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
