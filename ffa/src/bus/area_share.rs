//! AREA_SHARE and AREA_UNSHARE: checking what a driver shares, retrieving and relinquishing the
//! memory through the services, and the result codes answered.
//!
//! # Relinquish
//!
//! Every retrieved area is relinquished exactly once, and it stays in the area table (mapped,
//! its id taken, counted against the quota) until that succeeded. A failed relinquish makes the
//! area [`AreaState::RelinquishPending`]: no device may use it any more, and it is retried:
//! - when the driver repeats AREA_UNSHARE for it (a G3 driver answered BUSY does, every second);
//! - otherwise by the partition itself, one area per message from that endpoint; a G3 driver
//!   then gets AREA_RELEASE for it, so it knows it may reclaim;
//! - for every area at RESET, at a change of dialect and when the endpoint is destroyed
//!   ([`relinquish_all`]); what is still pending after that stays pending.
//!
//! What the driver is answered for AREA_UNSHARE (what each relinquish error means is in
//! `services`):
//!
//! | relinquish | G3 | G2 (never repeats AREA_UNSHARE) |
//! |---|---|---|
//! | succeeded | SUCCESS | SUCCESS |
//! | transient (BUSY, RETRY, ABORTED, NO_MEMORY) | BUSY; retried at the driver's repeat | ERROR; retried by the partition |
//! | refused (INVALID_PARAMETERS, DENIED) | ERROR; retried by the partition, then AREA_RELEASE | ERROR; retried by the partition |
//! | unknown area id | ERROR | ERROR |
//!
//! Until the relinquish succeeds the driver's FFA_MEM_RECLAIM of that memory is refused by the
//! SPMC; the area id cannot be shared again (AREA_SHARE answers ERROR).

use virtio_msg::Header;
use zerocopy::IntoBytes;

use super::{
    area::{AreaState, AreaTable},
    config::Endpoint,
    dialect::Dialect,
    events::{Events, PendingEvent},
    frame::{self, Frame, MAX_MSG_SIZE, Reply},
    lifecycle::Lifecycle,
    msg::{self, attrs},
    services::{BusServices, RetrievedArea, ServiceError},
};
use crate::memory::ShareKind;

/// Why an AREA_SHARE was not carried out.
enum ShareFailure {
    /// The SPMC was busy; the driver may retry.
    Busy,
    /// Refused, for this reason.
    Refused(&'static str),
}

/// Answers AREA_SHARE: retrieves the memory and records the area, or refuses.
pub(crate) fn share(
    areas: &mut AreaTable,
    frame: &Frame<'_>,
    endpoint: &Endpoint,
    services: &mut dyn BusServices,
    log: &mut Lifecycle,
    out: &mut [u8; MAX_MSG_SIZE],
) -> Reply {
    let Some(req) = frame.exact::<msg::AreaShareReq>() else {
        return frame::error(&frame.header, out);
    };
    let area_id = req.area_id.get();
    let handle = req.mem_handle.get();
    let result = match retrieve(areas, &req, endpoint, services) {
        Ok(()) => {
            log.line(format_args!(
                "area {area_id} shared: handle {handle:#x}, {} pages",
                req.page_count.get()
            ));
            msg::RESULT_SUCCESS
        }
        Err(ShareFailure::Busy) if endpoint.dialect.busy_allowed() => {
            log.line(format_args!(
                "area {area_id}: retrieve busy, driver retries"
            ));
            return Reply::Busy;
        }
        Err(ShareFailure::Busy) => {
            log.line(format_args!("area {area_id}: retrieve busy, refused"));
            msg::RESULT_ERROR
        }
        Err(ShareFailure::Refused(why)) => {
            log.line(format_args!("area {area_id} refused: {why}"));
            msg::RESULT_ERROR
        }
    };
    area_response(&frame.header, area_id, result, out)
}

/// Checks an AREA_SHARE request, retrieves its memory and records it in `areas`.
fn retrieve(
    areas: &mut AreaTable,
    req: &msg::AreaShareReq,
    endpoint: &Endpoint,
    services: &mut dyn BusServices,
) -> Result<(), ShareFailure> {
    let area_id = req.area_id.get();
    let pages = req.page_count.get();
    let config = &endpoint.config;
    if area_id == 0 {
        return Err(ShareFailure::Refused("area id 0 is reserved"));
    }
    match areas.state(area_id) {
        None => {}
        Some(AreaState::Live) => return Err(ShareFailure::Refused("area id already in use")),
        Some(AreaState::RelinquishPending { .. }) => {
            return Err(ShareFailure::Refused(
                "area id held until its relinquish succeeds",
            ));
        }
    }
    if areas.len() >= usize::from(config.max_areas) {
        return Err(ShareFailure::Refused("too many areas"));
    }
    if pages == 0 || u64::from(pages) > config.max_area_pages {
        return Err(ShareFailure::Refused("page count out of range"));
    }
    let kind = share_kind(req.sharing_attrs.get(), endpoint.dialect)?;
    // Room for the row first: once the memory is retrieved it must be recorded.
    if !areas.try_reserve_one() {
        return Err(ShareFailure::Refused("no memory for the area table"));
    }
    let handle = req.mem_handle.get();
    let area = match services.retrieve(endpoint.vm, handle, req.mem_tag.get(), kind) {
        Ok(area) => area,
        Err(ServiceError::Busy) => return Err(ShareFailure::Busy),
        Err(ServiceError::StillRetrieved) => {
            // Retrieved, unusable, and the SPMC refused it back: we hold it until it does.
            areas.insert(area_id, RetrievedArea::unmapped(handle), SELF_RETRY);
            return Err(ShareFailure::Refused(
                "memory unusable; relinquish failed, retried",
            ));
        }
        Err(_) => return Err(ShareFailure::Refused("memory retrieve failed")),
    };
    // The driver's page count must describe what was retrieved, in one of its page sizes.
    let consistent = endpoint
        .dialect
        .area_page_sizes()
        .iter()
        .any(|&s| u64::from(pages).checked_mul(s) == Some(area.pages));
    if !consistent || !area.writable {
        let relinquished = services.relinquish(&area).is_ok();
        if !relinquished {
            // Still ours (and mapped): keep it, unusable, until a retry gives it back.
            areas.insert(area_id, area, SELF_RETRY);
        }
        return Err(ShareFailure::Refused(match (consistent, relinquished) {
            (true, true) => "memory is not writable",
            (false, true) => "page count does not match the retrieved memory",
            (true, false) => "memory is not writable; relinquish failed, retried",
            (false, false) => "page count does not match; relinquish failed, retried",
        }));
    }
    areas.insert(area_id, area, AreaState::Live);
    Ok(())
}

/// Validates `sharing_attrs`; returns the transaction type to retrieve.
fn share_kind(attrs: u32, dialect: Dialect) -> Result<ShareKind, ShareFailure> {
    if attrs == 0 && dialect.accepts_zero_share_attrs() {
        return Ok(ShareKind::Share);
    }
    let kind = match attrs & attrs::TYPE_MASK {
        0 => ShareKind::Share,
        1 => ShareKind::Lend,
        _ => return Err(ShareFailure::Refused("donation is not accepted")),
    };
    let field = |shift: u32| attrs.checked_shr(shift).unwrap_or(0) & 0b11;
    let ok = attrs & attrs::MBZ_MASK == 0
        && attrs & attrs::WRITABLE != 0
        && attrs & attrs::EXECUTABLE == 0
        && matches!(field(attrs::SHAREABILITY_SHIFT), 2 | 3)
        && field(attrs::CACHEABILITY_SHIFT) == 3
        && field(attrs::MEM_TYPE_SHIFT) == 2
        && attrs & attrs::NON_SECURE != 0;
    if ok {
        Ok(kind)
    } else {
        Err(ShareFailure::Refused(
            "sharing attributes must be RW, XN, shareable, WB normal, NS",
        ))
    }
}

/// An area whose relinquish the partition retries on its own.
const SELF_RETRY: AreaState = AreaState::RelinquishPending {
    driver_retries: false,
};

/// Answers AREA_UNSHARE: relinquishes the area and forgets it, or keeps it pending (see the
/// module docs for the answers).
pub(crate) fn unshare(
    areas: &mut AreaTable,
    frame: &Frame<'_>,
    endpoint: &Endpoint,
    services: &mut dyn BusServices,
    log: &mut Lifecycle,
    out: &mut [u8; MAX_MSG_SIZE],
) -> Reply {
    let Some(req) = frame.exact::<msg::Word16>() else {
        return frame::error(&frame.header, out);
    };
    let area_id = req.value.get();
    log.line(format_args!("AREA_UNSHARE area {area_id}"));
    let result = if !areas.contains(area_id) {
        msg::RESULT_ERROR
    } else {
        match relinquish(areas, area_id, services, log) {
            Ok(()) => msg::RESULT_SUCCESS,
            Err(ServiceError::Busy | ServiceError::NoSpace) if endpoint.dialect.busy_allowed() => {
                // The driver repeats AREA_UNSHARE; the retry comes with it.
                areas.set_state(
                    area_id,
                    AreaState::RelinquishPending {
                        driver_retries: true,
                    },
                );
                msg::RESULT_BUSY
            }
            Err(_) => msg::RESULT_ERROR,
        }
    };
    area_response(&frame.header, area_id, result, out)
}

/// Relinquishes area `id` (usable or pending): forgets it if that succeeded, else leaves it in
/// the table, pending a retry by the partition (the caller may change that).
fn relinquish(
    areas: &mut AreaTable,
    id: u16,
    services: &mut dyn BusServices,
    log: &mut Lifecycle,
) -> Result<(), ServiceError> {
    let Some(area) = areas.get(id) else {
        return Ok(());
    };
    let handle = area.handle;
    match services.relinquish(area) {
        Ok(()) => {
            areas.remove(id);
            log.line(format_args!("area {id} relinquished: handle {handle:#x}"));
            Ok(())
        }
        Err(e) => {
            areas.set_state(id, SELF_RETRY);
            log.line(format_args!(
                "area {id}: relinquish of handle {handle:#x} failed ({e}); kept, retried"
            ));
            Err(e)
        }
    }
}

/// Retries the relinquish of one area the partition retries itself (the first after `cursor`,
/// which is updated), on a message from the endpoint. A G3 driver is told with AREA_RELEASE.
pub(crate) fn retry_pending(
    areas: &mut AreaTable,
    cursor: &mut u16,
    endpoint: Option<&Endpoint>,
    events: &mut Events,
    services: &mut dyn BusServices,
    log: &mut Lifecycle,
) {
    let Some(id) = areas.next_self_retry(*cursor) else {
        return;
    };
    *cursor = id;
    if relinquish(areas, id, services, log).is_ok()
        && let Some(endpoint) = endpoint
    {
        events.queue(PendingEvent::AreaRelease { area: id }, endpoint, services);
    }
}

/// Relinquishes every area (RESET, a change of dialect, the endpoint is gone); those whose
/// relinquish fails stay in the table, pending. Returns (relinquished, still pending).
pub(crate) fn relinquish_all(
    areas: &mut AreaTable,
    services: &mut dyn BusServices,
    log: &mut Lifecycle,
) -> (usize, usize) {
    let mut done: usize = 0;
    let mut after = None;
    while let Some(id) = areas.next_id(after) {
        after = Some(id);
        if relinquish(areas, id, services, log).is_ok() {
            done = done.saturating_add(1);
        }
    }
    (done, areas.len())
}

/// The AREA_SHARE / AREA_UNSHARE response: area id and result.
fn area_response(
    request: &Header,
    area_id: u16,
    result: u16,
    out: &mut [u8; MAX_MSG_SIZE],
) -> Reply {
    let resp = msg::AreaResp {
        area_id: area_id.into(),
        result: result.into(),
    };
    frame::bus_response(request, resp.as_bytes(), out)
}
