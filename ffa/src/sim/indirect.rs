//! Indirect messaging and the scheduler's FFA_RUN (FF-A v1.2 (DEN0077A), "Indirect messaging",
//! "CPU cycle management interfaces"), following Hafnium's `api_ffa_msg_send2` and
//! `api_ffa_run`:
//!
//! - FFA_MSG_SEND2 copies the message in the sender's TX buffer (header and payload,
//!   [`crate::indirect`]) into the receiver's RX buffer, which the receiver then owns until
//!   FFA_RX_RELEASE. Refused: a `sender_vm_id` from anyone but a hypervisor (there is none
//!   here) or a sender without a TX buffer (DENIED), a header sender that is not the caller,
//!   a reflexive message, flags from a VM, an unknown receiver, a payload offset inside the
//!   header or `offset + size` that overflows or passes the 4 KiB buffer
//!   (INVALID_PARAMETERS); an endpoint below FF-A v1.1, or a partition that does not declare
//!   indirect messaging (DENIED); a receiver that still owns its RX buffer, or has none
//!   (BUSY).
//! - The receiver gets the "RX buffer full" framework notification — from the SPM when a
//!   partition sent it, from the hypervisor when a VM did — always for a VM, for a partition
//!   when it has notifications enabled. An RX buffer with that notification pending cannot be
//!   released (DENIED, as Hafnium's `api_release_mailbox`): the receiver gets the notification
//!   first (FFA_NOTIFICATION_GET), and FFA_MSG_WAIT does not release it either.
//! - A partition is not woken by a message: the normal world's scheduler, told by the schedule
//!   receiver interrupt (here: it knows it sent one), runs it with FFA_RUN. A waiting partition
//!   resumes from FFA_MSG_WAIT with FFA_RUN; the scheduler's FFA_RUN returns FFA_MSG_WAIT when
//!   the partition waits again. A busy or booting partition is BUSY; a dead one ABORTED.
//!
//! Not modelled: per-vCPU targets beyond the vCPU index check, FFA_YIELD/FFA_INTERRUPT from
//! a run partition, the delayed schedule receiver interrupt (accepted from partitions, ignored).

use std::sync::MutexGuard;

use arm_ffa::{
    FfaError, Interface, Version,
    interface_args::{MsgSend2Flags, TargetInfo},
};

use super::{
    messaging, props,
    reply::{Regs, encode, error, ok, refuse},
    state::{Inner, Kind, ReqKind, State},
    types::BUF_SIZE,
};
use crate::indirect;

/// Framework notification bit: RX buffer full, message from a partition (SPM bitmap bit 0).
pub(super) const SPM_RX_FULL: u64 = 1;
/// Framework notification bit: RX buffer full, message from a VM (hypervisor bitmap bit 0).
pub(super) const HYP_RX_FULL: u64 = 1 << 32;

/// FFA_MSG_SEND2 from endpoint `id`, the message read from its TX buffer `tx`.
pub(super) fn msg_send2(
    inner: &Inner,
    st: &mut State,
    id: u16,
    sender_vm_id: u16,
    flags: MsgSend2Flags,
    tx: &[u8],
) -> Interface {
    let what = "FFA_MSG_SEND2";
    let inval = FfaError::InvalidParameters;
    if sender_vm_id != 0 {
        return refuse(id, what, (inval, "only a hypervisor names the sender"));
    }
    let Some(sender) = st.endpoints.get(&id) else {
        return error(FfaError::NotSupported);
    };
    if sender.mailbox.is_none() {
        return refuse(id, what, (FfaError::Denied, "sender has no TX buffer"));
    }
    let sender_version = sender.version;
    let sender_is_sp = st.is_sp(id);
    let sender_indirect = match &sender.kind {
        Kind::Sp(sp) => sp.info.properties & props::INDIRECT_MSG != 0,
        Kind::Vm => true,
    };
    // The header is read once; everything below checks this copy.
    let Some((header_sender, receiver)) = indirect::endpoints(tx) else {
        return refuse(id, what, (inval, "no message header"));
    };
    if header_sender != id {
        return refuse(id, what, (inval, "header sender is not the caller"));
    }
    if receiver == id {
        return refuse(id, what, (inval, "sender and receiver are the same"));
    }
    if !sender_is_sp && flags.delay_schedule_receiver {
        return refuse(id, what, (inval, "flags from the normal world"));
    }
    let Some(target) = st.endpoints.get_mut(&receiver) else {
        return refuse(id, what, (inval, "receiver does not exist"));
    };
    let receiver_indirect = match &target.kind {
        Kind::Sp(sp) => sp.info.properties & props::INDIRECT_MSG != 0,
        Kind::Vm => true,
    };
    if sender_version < Version(1, 1)
        || target.version < Version(1, 1)
        || !sender_indirect
        || !receiver_indirect
    {
        return refuse(
            id,
            what,
            (
                FfaError::Denied,
                "an endpoint does not support indirect messages",
            ),
        );
    }
    if target.mailbox.is_none() || target.rx_full || target.rx_incoming.is_some() {
        return refuse(
            id,
            what,
            (FfaError::Busy, "receiver's RX buffer is not free"),
        );
    }
    let min_offset = if sender_version >= Version(1, 2) {
        indirect::HEADER_SIZE
    } else {
        24
    };
    let Some(total) = indirect::total_size(tx, min_offset, BUF_SIZE) else {
        return refuse(
            id,
            what,
            (inval, "payload overlaps the header or is too big"),
        );
    };
    let mut bytes = vec![0u8; BUF_SIZE];
    if let (Some(dst), Some(src)) = (bytes.get_mut(..total), tx.get(..total)) {
        dst.copy_from_slice(src);
    }
    let receiver_is_vm = matches!(target.kind, Kind::Vm);
    target.rx_full = true;
    target.rx_incoming = Some(bytes);
    if receiver_is_vm || target.notif.enabled {
        target.framework |= if sender_is_sp {
            SPM_RX_FULL
        } else {
            HYP_RX_FULL
        };
    }
    inner.cv.notify_all();
    ok()
}

/// FFA_RUN from endpoint `id` (the normal-world scheduler) of partition vCPU `target`: blocks
/// until the partition waits again, and returns its FFA_MSG_WAIT.
pub(super) fn run(
    inner: &Inner,
    st: MutexGuard<'_, State>,
    (id, cpu): (u16, u16),
    target: TargetInfo,
) -> Regs {
    let what = "FFA_RUN";
    if st.is_sp(id) {
        return encode(&refuse(
            id,
            what,
            (FfaError::Denied, "only the normal world schedules"),
        ));
    }
    let sp_id = target.endpoint_id;
    let vcpus = match st.endpoints.get(&sp_id).map(|e| &e.kind) {
        Some(Kind::Sp(sp)) => sp.info.exec_ctx_count,
        _ => {
            return encode(&refuse(
                id,
                what,
                (FfaError::InvalidParameters, "target is not a partition"),
            ));
        }
    };
    if u32::from(target.vcpu_id) >= u32::from(vcpus) {
        return encode(&refuse(
            id,
            what,
            (FfaError::InvalidParameters, "no such vCPU"),
        ));
    }
    // An MP partition's context k is pinned to CPU k (Hafnium `ffa_cpu_cycles_run_checks`).
    if vcpus > 1 && target.vcpu_id != cpu {
        return encode(&refuse(
            id,
            what,
            (
                FfaError::InvalidParameters,
                "an MP partition's vCPU runs on its own CPU only",
            ),
        ));
    }
    let msg = encode(&Interface::Run {
        target_info: target,
        is_32bit: true,
    });
    messaging::deliver_request(inner, st, ReqKind::Run, (id, cpu), sp_id, None, msg)
}

/// Copies an indirect message accepted for endpoint `id` into its RX buffer `rx` (see
/// `Endpoint::rx_incoming`).
pub(super) fn deliver(inner: &Inner, id: u16, rx: &mut [u8]) {
    let mut st = inner.lock();
    if let Some(bytes) = st.endpoints.get_mut(&id).and_then(|e| e.rx_incoming.take()) {
        let n = bytes.len().min(rx.len());
        let (head, tail) = rx.split_at_mut(n);
        head.copy_from_slice(bytes.get(..n).unwrap_or_default());
        tail.fill(0);
    }
}
