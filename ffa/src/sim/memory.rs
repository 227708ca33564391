//! Memory management (FF-A v1.2 (DEN0077A), "Memory management interfaces"): the ABIs
//! FFA_MEM_SHARE, FFA_MEM_LEND, FFA_MEM_DONATE, FFA_MEM_RETRIEVE_REQ/RESP,
//! FFA_MEM_RELINQUISH and FFA_MEM_RECLAIM. Here the call's descriptor is taken from the TX
//! buffer and decoded, and the answer (or the retrieve response in RX) is given; the
//! transaction rules themselves are [`super::ns_memory::Memory`]'s.
//!
//! Not modelled (NOT_SUPPORTED): fragmented descriptors (FFA_MEM_FRAG_RX/TX), descriptors
//! outside the TX buffer; FFA_MEM_DONATE is refused by the memory model.

use arm_ffa::{
    FfaError, Interface,
    interface_args::MemOpBuf,
    memory_management::{Handle, MemReclaimFlags, SuccessArgsMemOp},
};

use super::{
    reply::{Refusal, error, ok, refuse, success},
    state::{Kind, State},
};
use crate::memory::{MemRelinquishDesc, MemTransaction, ShareKind};

/// The descriptor bytes a memory ABI names: in the TX buffer, not fragmented.
fn descriptor<'a>(
    st: &State,
    id: u16,
    total_len: u32,
    frag_len: u32,
    buf: Option<MemOpBuf>,
    tx: &'a [u8],
) -> Result<&'a [u8], Refusal> {
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
pub(super) fn mem_send(
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
pub(super) fn mem_retrieve(
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
pub(super) fn mem_relinquish(st: &mut State, id: u16, tx: &[u8]) -> Interface {
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
pub(super) fn mem_reclaim(
    st: &mut State,
    id: u16,
    handle: Handle,
    flags: MemReclaimFlags,
) -> Interface {
    match st.mem.reclaim(id, handle.0, flags.zero_memory) {
        Ok(()) => ok(),
        Err(r) => refuse(id, "FFA_MEM_RECLAIM", r),
    }
}
