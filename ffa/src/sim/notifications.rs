//! Notifications (FF-A v1.2 (DEN0077A), "Notification interfaces"), global notifications
//! only: FFA_NOTIFICATION_BITMAP_CREATE/DESTROY (a VM for itself: the sim has no
//! hypervisor), FFA_NOTIFICATION_BIND/UNBIND, FFA_NOTIFICATION_SET and FFA_NOTIFICATION_GET.
//!
//! Not modelled (NOT_SUPPORTED or INVALID_PARAMETERS): per-vCPU notifications,
//! FFA_NOTIFICATION_INFO_GET and the schedule receiver interrupt.

use arm_ffa::{FfaError, Interface, notification::SuccessArgsNotificationGet};

use super::{
    reply::{error, ok, refuse, success},
    state::{Inner, Notifications, State},
};

/// FFA_NOTIFICATION_BITMAP_CREATE: a VM creates its own bitmap (there is no hypervisor in
/// the sim, so the VM plays that role for itself).
pub(super) fn bitmap_create(st: &mut State, id: u16, vm_id: u16, vcpu_cnt: u32) -> Interface {
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
pub(super) fn bitmap_destroy(st: &mut State, id: u16, vm_id: u16) -> Interface {
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
    ep.notif = Notifications::default();
    ok()
}

/// FFA_NOTIFICATION_BIND / UNBIND: called by the receiver.
pub(super) fn bind(
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
fn set_pending(
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
pub(super) fn notification_get(
    st: &mut State,
    id: u16,
    vcpu_id: u16,
    endpoint: u16,
    flags: u32,
) -> Interface {
    let what = "FFA_NOTIFICATION_GET";
    let inval = FfaError::InvalidParameters;
    if flags & !0xf != 0 {
        return refuse(id, what, (inval, "reserved flags"));
    }
    if endpoint != id {
        return refuse(id, what, (inval, "receiver must be the caller"));
    }
    if !st.is_sp(id) && flags & (2 | 8) != 0 {
        // Hafnium `ffa_notifications_is_get_valid`: a hypervisor, if any, owns those.
        return refuse(
            id,
            what,
            (
                inval,
                "a normal-world endpoint asks the SPMC for VM or hypervisor bitmaps",
            ),
        );
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
        spm_notifications: take_framework(flags & 4 != 0, &mut ep.framework, 0),
        hypervisor_notifications: take_framework(flags & 8 != 0, &mut ep.framework, 32),
    };
    success(args.into())
}

/// Reads and clears the 32 framework notification bits at `shift` of `framework` if `want`.
fn take_framework(want: bool, framework: &mut u64, shift: u32) -> Option<u32> {
    want.then(|| {
        let bits = (*framework >> shift) & 0xffff_ffff;
        *framework &= !(bits << shift);
        u32::try_from(bits).unwrap_or(0)
    })
}

/// FFA_NOTIFICATION_SET, then wakes every blocked waiter (a VM in
/// `VmEndpoint::wait_notification`).
pub(super) fn notification_set(
    inner: &Inner,
    st: &mut State,
    id: u16,
    sender: u16,
    receiver: u16,
    flags: u32,
    bitmap: u64,
) -> Interface {
    let answer = set_pending(st, id, sender, receiver, flags, bitmap);
    inner.cv.notify_all();
    answer
}
