//! Direct messaging and partition scheduling: FFA_MSG_WAIT (FF-A v1.2 (DEN0077A), "CPU cycle
//! management interfaces"), FFA_MSG_SEND_DIRECT_REQ/REQ2 from a VM and
//! FFA_MSG_SEND_DIRECT_RESP/RESP2 from a partition ("Messaging interfaces"), with BUSY while a
//! partition handles another request and ABORTED once its thread has ended; the VM
//! created/destroyed framework messages (VM availability messages); and FFA_ERROR from a
//! partition (an abort during boot).
//!
//! A partition has one execution context per vCPU: a UP partition's one context serves
//! requests from every CPU, an MP partition's context `k` those made on CPU `k` (BUSY while
//! that context handles another); its other contexts start once it registered a secondary
//! entry point (FFA_SECONDARY_EP_REGISTER, during boot).
//!
//! A partition's timer (HF_INTERRUPT_ENABLE, the EL1 physical timer, FFA_INTERRUPT to a
//! waiting context) and HF_INTERRUPT_GET are here too. FFA_RUN and FFA_MSG_SEND2 are in
//! [`super::indirect`]. Not modelled (NOT_SUPPORTED): FFA_YIELD and direct requests sent by
//! partitions.

use std::{
    sync::MutexGuard,
    time::{Duration, Instant},
};

use arm_ffa::{
    FfaError, Interface, Version,
    interface_args::{DirectMsgArgs, MsgWaitFlags, SecondaryEpRegisterAddr, TargetInfo},
};
use uuid::Uuid;

use crate::conduit::HF_VIRTUAL_TIMER_INTID;

use super::{
    props,
    reply::{Regs, encode, error, ok, refuse},
    state::{Inner, Kind, Pending, ReqKind, SpRun, State},
};

/// FFA_MSG_SEND_DIRECT_REQ(2) `iface` from endpoint `id`: which request it is (framework
/// messages come from the hypervisor only), then as [`vm_direct_req`].
pub(super) fn direct_req(
    inner: &Inner,
    st: MutexGuard<'_, State>,
    (id, cpu): (u16, u16),
    iface: &Interface,
) -> Regs {
    match *iface {
        Interface::MsgSendDirectReq2 {
            src_id,
            dst_id,
            uuid,
            ..
        } => vm_direct_req(
            inner,
            st,
            (id, cpu),
            ReqKind::Req2,
            src_id,
            dst_id,
            Some(uuid),
            iface,
        ),
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
            vm_direct_req(inner, st, (id, cpu), kind, src_id, dst_id, None, iface)
        }
        // Dispatch passes direct requests only.
        _ => encode(&error(FfaError::NotSupported)),
    }
}

/// FFA_MSG_WAIT from execution context `vcpu` of a partition: ends that context's boot,
/// releases the partition's RX buffer (unless asked to retain it) and blocks until the next
/// direct request to the context. Not allowed while a request to it is pending (DENIED), nor
/// for VMs.
pub(super) fn msg_wait(
    inner: &Inner,
    mut st: MutexGuard<'_, State>,
    (id, vcpu): (u16, u16),
    flags: MsgWaitFlags,
) -> Regs {
    let Some(ep) = st.endpoints.get_mut(&id) else {
        return encode(&error(FfaError::NotSupported));
    };
    if !matches!(ep.kind, Kind::Sp(_)) {
        return encode(&refuse(
            id,
            "FFA_MSG_WAIT",
            (
                FfaError::NotSupported,
                "VMs do not receive direct requests here",
            ),
        ));
    }
    let Kind::Sp(sp) = &mut ep.kind else {
        return encode(&error(FfaError::NotSupported));
    };
    let Some(ec) = sp.ecs.get_mut(usize::from(vcpu)) else {
        return encode(&error(FfaError::NotSupported));
    };
    if ec.npi {
        // As Hafnium: a context with a virtual interrupt pending is resumed at once.
        return encode(&Interface::Interrupt {
            target_info: TargetInfo {
                endpoint_id: id,
                vcpu_id: vcpu,
            },
            interrupt_id: 0,
            is_32bit: true,
        });
    }
    match &ec.run {
        SpRun::Busy(p) if p.kind == ReqKind::Run => {
            // The scheduler's FFA_RUN ends here.
            let token = p.token;
            ec.run = SpRun::Waiting;
            st.replies.insert(token, run_ended());
            inner.cv.notify_all();
        }
        SpRun::Busy(_) => {
            return encode(&refuse(
                id,
                "FFA_MSG_WAIT",
                (FfaError::Denied, "a direct request must be answered first"),
            ));
        }
        SpRun::Dead => return encode(&error(FfaError::Aborted)),
        SpRun::Init => {
            ec.run = SpRun::Waiting;
            inner.cv.notify_all();
        }
        SpRun::Interrupted => ec.run = SpRun::Waiting,
        SpRun::Waiting => {}
    }
    // As Hafnium's FFA_MSG_WAIT: the RX buffer goes back unless retained, or unless an unread
    // message waits in it (its RX-full notification is pending).
    if let Some(ep) = st.endpoints.get_mut(&id)
        && !flags.retain_rx_buffer
        && ep.framework == 0
        && ep.rx_incoming.is_none()
    {
        ep.rx_full = false;
    }
    wait_message(inner, st, (id, vcpu))
}

/// HF_INTERRUPT_GET from execution context `vcpu` of endpoint `id`: its pending virtual
/// interrupt of lowest id, taken: the timer's ([`HF_VIRTUAL_TIMER_INTID`], 3), then the
/// notification pending interrupt (5); else none. `None` for VMs (the interface is a
/// partition's).
pub(super) fn interrupt_get(st: &mut State, id: u16, vcpu: u16) -> Option<u32> {
    let ec = st.ec_mut(id, vcpu)?;
    Some(if core::mem::take(&mut ec.timer_pending) {
        HF_VIRTUAL_TIMER_INTID
    } else if core::mem::take(&mut ec.npi) {
        crate::conduit::HF_NPI_INTID
    } else {
        crate::conduit::HF_INVALID_INTID
    })
}

/// HF_INTERRUPT_ENABLE of `intid` from execution context `vcpu` of endpoint `id`: whether it
/// was enabled. Only the timer's interrupt is modelled (the notification pending interrupt is
/// signalled whether or not it was enabled, as the partitions here rely on); `None` for VMs.
pub(super) fn interrupt_enable(st: &mut State, id: u16, vcpu: u16, intid: u32) -> Option<bool> {
    let ec = st.ec_mut(id, vcpu)?;
    match intid {
        HF_VIRTUAL_TIMER_INTID => ec.timer_enabled = true,
        crate::conduit::HF_NPI_INTID => {}
        _ => return Some(false),
    }
    Some(true)
}

/// Arms (`Some(micros)`) or stops (`None`) the EL1 physical timer of execution context `vcpu`
/// of endpoint `id`, as Hafnium emulates it: one deadline per context; stopping it leaves an
/// interrupt that already fired pending. Returns whether `id` is a partition.
pub(super) fn timer_set(inner: &Inner, id: u16, vcpu: u16, micros: Option<u32>) -> bool {
    let mut st = inner.lock();
    let Some(ec) = st.ec_mut(id, vcpu) else {
        return false;
    };
    ec.timer = micros.map(|us| Instant::now() + Duration::from_micros(u64::from(us)));
    inner.cv.notify_all();
    true
}

/// Fires the armed timer of partition `id`'s context `vcpu` now, whatever its deadline (the
/// inline world's stand-in for time passing); returns whether it fired with its interrupt
/// enabled (the context is then to be resumed with FFA_INTERRUPT).
pub(super) fn timer_fire(st: &mut State, id: u16, vcpu: u16) -> bool {
    let Some(ec) = st.ec_mut(id, vcpu) else {
        return false;
    };
    if ec.timer.take().is_none() || !ec.timer_enabled {
        return false;
    }
    ec.timer_pending = true;
    true
}

/// What the scheduler's FFA_RUN returns once the partition it ran waits again.
fn run_ended() -> Regs {
    encode(&Interface::MsgWait {
        flags: MsgWaitFlags::default(),
        is_32bit: true,
    })
}

/// Blocks execution context `vcpu` of partition `id` until a message is delivered to it (or
/// the world shuts down).
fn wait_message(inner: &Inner, mut st: MutexGuard<'_, State>, (id, vcpu): (u16, u16)) -> Regs {
    loop {
        let shutdown = st.shutdown;
        let Some(ec) = st.ec_mut(id, vcpu) else {
            return encode(&error(FfaError::Aborted));
        };
        if let Some(msg) = ec.inbox.take() {
            return msg;
        }
        if shutdown || matches!(ec.run, SpRun::Dead) {
            return encode(&error(FfaError::Aborted));
        }
        // The timer, as Hafnium's emulation: a deadline that passed while the context waits
        // (or passed while it ran) fires once; an enabled interrupt then resumes the context
        // with FFA_INTERRUPT, and stays pending until HF_INTERRUPT_GET takes it.
        let now = Instant::now();
        if ec.timer.is_some_and(|t| t <= now) {
            ec.timer = None;
            ec.timer_pending |= ec.timer_enabled;
        }
        if ec.timer_pending {
            ec.run = SpRun::Interrupted;
            return encode(&Interface::Interrupt {
                target_info: TargetInfo {
                    endpoint_id: id,
                    vcpu_id: vcpu,
                },
                interrupt_id: HF_VIRTUAL_TIMER_INTID,
                is_32bit: true,
            });
        }
        st = match ec.timer {
            Some(t) => inner.wait_timeout(st, t.saturating_duration_since(now)),
            None => inner.wait(st),
        };
    }
}

/// FFA_MSG_SEND_DIRECT_REQ(2) from a VM on CPU `cpu` to a partition. Blocks until the
/// partition answers.
#[allow(clippy::too_many_arguments)]
fn vm_direct_req(
    inner: &Inner,
    st: MutexGuard<'_, State>,
    (id, cpu): (u16, u16),
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
    deliver_request(inner, st, kind, (src, cpu), dst, uuid, encode(iface))
}

/// Delivers a direct request (or framework message) from `src` on CPU `cpu` to partition
/// `dst` — to its execution context for that CPU — and waits for its answer.
pub(super) fn deliver_request(
    inner: &Inner,
    mut st: MutexGuard<'_, State>,
    kind: ReqKind,
    (src, cpu): (u16, u16),
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
        ReqKind::Run => true,
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
    let Some(ec) = sp.ec_for_cpu(cpu).and_then(|k| sp.ecs.get_mut(k)) else {
        return encode(&refuse(
            src,
            "direct request",
            (
                FfaError::InvalidParameters,
                "the partition has no execution context for this CPU",
            ),
        ));
    };
    match ec.run {
        SpRun::Dead => return encode(&error(FfaError::Aborted)),
        SpRun::Init | SpRun::Busy(_) | SpRun::Interrupted => {
            return encode(&refuse(
                src,
                "direct request",
                (FfaError::Busy, "partition is busy"),
            ));
        }
        SpRun::Waiting => {}
    }
    ec.run = SpRun::Busy(Pending {
        token,
        caller: src,
        kind,
    });
    ec.inbox = Some(msg);
    // Run with notifications pending, a partition that takes them gets its notification
    // pending interrupt (Hafnium `api_vcpu_prepare_run`).
    if kind == ReqKind::Run
        && ep.notif.enabled
        && (ep.framework | ep.notif.from_sp.pending | ep.notif.from_vm.pending) != 0
    {
        ec.npi = true;
    }
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
pub(super) fn direct_resp(
    inner: &Inner,
    mut st: MutexGuard<'_, State>,
    (id, vcpu): (u16, u16),
    iface: &Interface,
) -> Regs {
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
    let Some(ec) = st.ec_mut(id, vcpu) else {
        return encode(&refuse(
            id,
            "direct response",
            (
                FfaError::NotSupported,
                "VMs do not answer direct requests here",
            ),
        ));
    };
    let pending = match &ec.run {
        SpRun::Busy(p) => p,
        SpRun::Dead => return encode(&error(FfaError::Aborted)),
        SpRun::Init | SpRun::Waiting | SpRun::Interrupted => {
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
    ec.run = SpRun::Waiting;
    st.replies.insert(token, encode(iface));
    inner.cv.notify_all();
    wait_message(inner, st, (id, vcpu))
}

/// FFA_ERROR from a partition: FFA_ERROR(ABORTED) during boot aborts it (FF-A v1.2 §8.5);
/// anything else is NOT_SUPPORTED (as Hafnium: a request must be answered with a direct
/// response).
pub(super) fn sp_error(st: &mut State, (id, vcpu): (u16, u16), code: FfaError) -> Interface {
    let booting = st
        .ec_mut(id, vcpu)
        .is_some_and(|ec| matches!(ec.run, SpRun::Init));
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

/// FFA_SECONDARY_EP_REGISTER from execution context `vcpu` of partition `id`: records the
/// entry point its other contexts start at. As Hafnium (`api_ffa_secondary_ep_register`): a
/// UP partition (or a VM) gets NOT_SUPPORTED, a context that is no longer booting DENIED; a
/// later registration replaces an earlier one.
pub(super) fn secondary_ep_register(
    st: &mut State,
    (id, vcpu): (u16, u16),
    entry: SecondaryEpRegisterAddr,
) -> Interface {
    let what = "FFA_SECONDARY_EP_REGISTER";
    let Some(sp) = st.sp_mut(id).filter(|sp| sp.ecs.len() > 1) else {
        return refuse(
            id,
            what,
            (
                FfaError::NotSupported,
                "only an MP partition has secondary contexts",
            ),
        );
    };
    let booting = sp
        .ecs
        .get(usize::from(vcpu))
        .is_some_and(|ec| matches!(ec.run, SpRun::Init));
    if !booting {
        return refuse(id, what, (FfaError::Denied, "only while the context boots"));
    }
    sp.secondary_ep = Some(match entry {
        SecondaryEpRegisterAddr::Addr32(a) => u64::from(a),
        SecondaryEpRegisterAddr::Addr64(a) => a,
    });
    ok()
}
