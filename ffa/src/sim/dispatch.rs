//! The simulated SPMC's front door: decodes one FF-A call and dispatches it to the handler
//! of its FF-A area ([`setup`], [`messaging`], [`indirect`], [`memory`], [`notifications`]). Common
//! rules applied here, before any handler: an unknown caller is NOT_SUPPORTED, a partition
//! whose thread ended gets ABORTED, an ABI newer than the caller's negotiated version is
//! NOT_SUPPORTED (FF-A v1.2 (DEN0077A), FFA_VERSION and each ABI's "introduced in"), any
//! call but FFA_VERSION locks the version, and a call that is not modelled is NOT_SUPPORTED.
//!
//! Error codes follow Hafnium (the SPMC this project targets) where the spec leaves a choice.

use arm_ffa::{FfaError, FuncId, Interface, Version};

use super::{
    indirect, memory, messaging, notifications,
    reply::{Regs, encode, error},
    setup,
    state::{Inner, Kind, SpRun},
};
use crate::memory::ShareKind;

/// Low 32 bits of a register (SMC32 arguments).
fn lo32(x: u64) -> u32 {
    u32::try_from(x & 0xffff_ffff).unwrap_or(0)
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

/// Handles one call from endpoint `id` on CPU (a VM) or execution context (a partition)
/// `vcpu`, with its conduit's TX and RX buffers; an indirect message accepted for it
/// meanwhile is in its RX buffer when the call returns.
pub(super) fn call(
    inner: &Inner,
    (id, vcpu): (u16, u16),
    regs: &Regs,
    tx: &[u8],
    rx: &mut [u8],
) -> Regs {
    let answer = handle(inner, id, vcpu, regs, tx, rx);
    indirect::deliver(inner, id, rx);
    answer
}

/// Hafnium's paravirtualised HF_INTERRUPT_GET from endpoint `id`'s execution context `vcpu`
/// (not an FF-A call: not counted, no version gate).
pub(super) fn interrupt_get(inner: &Inner, id: u16, vcpu: u16) -> Option<u32> {
    messaging::interrupt_get(&mut inner.lock(), id, vcpu)
}

/// Hafnium's HF_INTERRUPT_ENABLE of `intid` from endpoint `id`'s execution context `vcpu`
/// (not an FF-A call).
pub(super) fn interrupt_enable(inner: &Inner, id: u16, vcpu: u16, intid: u32) -> Option<bool> {
    messaging::interrupt_enable(&mut inner.lock(), id, vcpu, intid)
}

/// The EL1 physical timer of endpoint `id`'s execution context `vcpu`, armed or stopped
/// (trapped and emulated by the SPMC; not an FF-A call).
pub(super) fn timer_set(inner: &Inner, id: u16, vcpu: u16, micros: Option<u32>) -> bool {
    messaging::timer_set(inner, id, vcpu, micros)
}

/// Handles one call (see [`call`]).
fn handle(inner: &Inner, id: u16, vcpu: u16, regs: &Regs, tx: &[u8], rx: &mut [u8]) -> Regs {
    inner.lock().count_call(id, lo32(regs[0]));
    if lo32(regs[0]) == u32::from(FuncId::Version) {
        return setup::version(inner, id, lo32(regs[1]));
    }
    let mut st = inner.lock();
    let Some(ep) = st.endpoints.get_mut(&id) else {
        return encode(&error(FfaError::NotSupported));
    };
    if let Kind::Sp(sp) = &ep.kind
        && sp
            .ecs
            .get(usize::from(vcpu))
            .is_none_or(|ec| matches!(ec.run, SpRun::Dead))
    {
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
        Interface::IdGet => setup::id_get(id),
        Interface::SpmIdGet => setup::spm_id_get(),
        Interface::Features { feat_id, .. } => setup::features(&st, id, feat_id),
        Interface::RxTxMap { addr, page_cnt } => setup::rxtx_map(&mut st, id, addr, page_cnt),
        Interface::RxTxUnmap { id: who } => setup::rxtx_unmap(&mut st, id, who),
        Interface::RxRelease { vm_id } => setup::rx_release(&mut st, id, vm_id),
        Interface::PartitionInfoGet { uuid, flags } => {
            setup::partition_info_get(&mut st, id, uuid, flags, rx)
        }
        Interface::ConsoleLog { chars } => setup::console_log(&mut st, id, &chars),
        Interface::MsgWait { flags, .. } => {
            return messaging::msg_wait(inner, st, (id, vcpu), flags);
        }
        Interface::MsgSendDirectReq2 { .. } | Interface::MsgSendDirectReq { .. } => {
            return messaging::direct_req(inner, st, (id, vcpu), &iface);
        }
        Interface::MsgSendDirectResp2 { .. } | Interface::MsgSendDirectResp { .. } => {
            return messaging::direct_resp(inner, st, (id, vcpu), &iface);
        }
        Interface::Error { error_code, .. } => messaging::sp_error(&mut st, (id, vcpu), error_code),
        Interface::SecondaryEpRegister { entrypoint } => {
            messaging::secondary_ep_register(&mut st, (id, vcpu), entrypoint)
        }
        Interface::MsgSend2 {
            sender_vm_id,
            flags,
        } => indirect::msg_send2(inner, &mut st, id, sender_vm_id, flags, tx),
        Interface::Run { target_info, .. } => {
            return indirect::run(inner, st, (id, vcpu), target_info);
        }
        Interface::MemShare {
            total_len,
            frag_len,
            buf,
        } => memory::mem_send(&mut st, id, ShareKind::Share, total_len, frag_len, buf, tx),
        Interface::MemLend {
            total_len,
            frag_len,
            buf,
        } => memory::mem_send(&mut st, id, ShareKind::Lend, total_len, frag_len, buf, tx),
        Interface::MemDonate {
            total_len,
            frag_len,
            buf,
        } => memory::mem_send(&mut st, id, ShareKind::Donate, total_len, frag_len, buf, tx),
        Interface::MemRetrieveReq {
            total_len,
            frag_len,
            buf,
        } => memory::mem_retrieve(&mut st, id, total_len, frag_len, buf, tx, rx),
        Interface::MemRelinquish => memory::mem_relinquish(&mut st, id, tx),
        Interface::MemReclaim { handle, flags } => memory::mem_reclaim(&mut st, id, handle, flags),
        Interface::NotificationBitmapCreate { vm_id, vcpu_cnt } => {
            notifications::bitmap_create(&mut st, id, vm_id, vcpu_cnt)
        }
        Interface::NotificationBitmapDestroy { vm_id } => {
            notifications::bitmap_destroy(&mut st, id, vm_id)
        }
        Interface::NotificationBind {
            sender_id,
            receiver_id,
            bitmap,
            ..
        } => notifications::bind(
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
        } => notifications::bind(
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
        } => notifications::notification_set(
            inner,
            &mut st,
            id,
            sender_id,
            receiver_id,
            lo32(regs[2]),
            bitmap,
        ),
        Interface::NotificationGet {
            vcpu_id,
            endpoint_id,
            ..
        } => notifications::notification_get(&mut st, id, vcpu_id, endpoint_id, lo32(regs[2])),
        other => {
            log::debug!("sim: {other:?} from {id:#06x} is not modelled");
            error(FfaError::NotSupported)
        }
    };
    encode(&answer)
}
