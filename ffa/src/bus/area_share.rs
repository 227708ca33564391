//! AREA_SHARE and AREA_UNSHARE: checking what a driver shares, retrieving and relinquishing the
//! memory through the services, and the result codes answered.

use virtio_msg::Header;
use zerocopy::IntoBytes;

use super::{
    area::AreaTable,
    config::Endpoint,
    dialect::Dialect,
    frame::{self, Frame, MAX_MSG_SIZE, Reply},
    msg::{self, attrs},
    services::{BusServices, ServiceError},
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
    out: &mut [u8; MAX_MSG_SIZE],
) -> Reply {
    let Some(req) = frame.exact::<msg::AreaShareReq>() else {
        return frame::error(&frame.header, out);
    };
    let area_id = req.area_id.get();
    let result = match retrieve(areas, &req, endpoint, services) {
        Ok(()) => msg::RESULT_SUCCESS,
        Err(ShareFailure::Busy) if endpoint.dialect.busy_allowed() => return Reply::Busy,
        Err(ShareFailure::Busy) => msg::RESULT_ERROR,
        Err(ShareFailure::Refused(why)) => {
            log::warn!(
                "vm {:#x}: AREA_SHARE of area {area_id} refused: {why}",
                endpoint.vm
            );
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
    if areas.contains(area_id) {
        return Err(ShareFailure::Refused("area id already in use"));
    }
    if areas.len() >= usize::from(config.max_areas) {
        return Err(ShareFailure::Refused("too many areas"));
    }
    if pages == 0 || u64::from(pages) > config.max_area_pages {
        return Err(ShareFailure::Refused("page count out of range"));
    }
    let kind = share_kind(req.sharing_attrs.get(), endpoint.dialect)?;
    let area = services
        .retrieve(endpoint.vm, req.mem_handle.get(), req.mem_tag.get(), kind)
        .map_err(|e| match e {
            ServiceError::Busy => ShareFailure::Busy,
            _ => ShareFailure::Refused("memory retrieve failed"),
        })?;
    // The driver's page count must describe what was retrieved, in one of its page sizes.
    let consistent = endpoint
        .dialect
        .area_page_sizes()
        .iter()
        .any(|s| u64::from(pages) * s == area.pages);
    if !consistent || !area.writable {
        let _ = services.relinquish(&area);
        return Err(ShareFailure::Refused(if consistent {
            "memory is not writable"
        } else {
            "page count does not match the retrieved memory"
        }));
    }
    areas.insert(area_id, area);
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
    let field = |shift: u32| (attrs >> shift) & 0b11;
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

/// Answers AREA_UNSHARE: relinquishes the area and forgets it; an area whose relinquish was
/// busy stays recorded (the driver retries the unshare).
pub(crate) fn unshare(
    areas: &mut AreaTable,
    frame: &Frame<'_>,
    endpoint: &Endpoint,
    services: &mut dyn BusServices,
    out: &mut [u8; MAX_MSG_SIZE],
) -> Reply {
    let Some(req) = frame.exact::<msg::Word16>() else {
        return frame::error(&frame.header, out);
    };
    let area_id = req.value.get();
    let result = match areas.remove(area_id) {
        None => msg::RESULT_ERROR,
        Some(area) => match services.relinquish(&area) {
            Ok(()) => msg::RESULT_SUCCESS,
            Err(ServiceError::Busy) => {
                // Keep it (unmapped pages are re-mapped on the next retrieve only; the
                // driver retries the unshare).
                areas.insert(area_id, area);
                msg::RESULT_BUSY
            }
            Err(e) => {
                log::warn!(
                    "vm {:#x}: relinquish of area {area_id} failed: {e}",
                    endpoint.vm
                );
                msg::RESULT_ERROR
            }
        },
    };
    let result = if result == msg::RESULT_BUSY && !endpoint.dialect.busy_allowed() {
        msg::RESULT_ERROR
    } else {
        result
    };
    area_response(&frame.header, area_id, result, out)
}

/// Relinquishes every area and empties the table (RESET, or the endpoint is gone).
pub(crate) fn relinquish_all(areas: &mut AreaTable, vm: u16, services: &mut dyn BusServices) {
    for (id, area) in areas.drain() {
        if let Err(e) = services.relinquish(&area) {
            log::warn!("vm {vm:#x}: relinquish of area {id} failed: {e}");
        }
    }
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
